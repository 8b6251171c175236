"""The real daemon (``edge.pipeline.daemon.Daemon.run``: audit log, deployment gate, watch-list service
with its USB watcher, control socket, CURVE alert channel) in its own process, with the camera
processes replaced by a feeder: each line on stdin is one ``encoding`` stage message (a real face
descriptor) put on the daemon's stage queue exactly as a camera process would. So a scenario can
decide exactly which faces are seen, and still ``kill -9`` the box.

    python tests/scenario_box.py CONFIG      # then: {"camera_id": ..., "track_id": ..., "descriptor": [...]}
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import SimpleNamespace

from edge import config
from edge.alerts import messages
from edge.pipeline.daemon import Daemon


class FedCamera(SimpleNamespace):
    """Stands where a CameraProcess handle would: always alive, its faces come from the feeder."""

    def alive(self) -> bool:
        return True

    def stop(self) -> None:
        pass


def start_feeder(daemon: Daemon) -> None:
    daemon.queue = daemon.ctx.Queue(maxsize=512)
    for cam in daemon.cfg.cameras:
        daemon.cameras[cam.id] = FedCamera(cam=cam, state="up", stats={}, restarts=0, proc=None,
                                           encode_allowed=threading.Event(), stop_event=threading.Event())

    def feed():
        for line in sys.stdin:
            msg = messages.loads(line.strip(), allowed={"encoding"}) if line.strip().startswith("{") else None
            if msg is None:
                continue
            daemon.queue.put(line.strip())
            daemon.cameras[msg["camera_id"]].stats["faces"] = daemon.cameras[msg["camera_id"]].stats.get("faces", 0) + 1

    threading.Thread(target=feed, daemon=True).start()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")  # as `edge run`
    cfg = config.load(sys.argv[1])
    daemon = Daemon(cfg)
    daemon.start_cameras = lambda: start_feeder(daemon)
    daemon.run()


def encoding(camera_id: str, track_id: str, descriptor) -> str:
    """One stage message as a camera process sends it (the crop is a stand-in JPEG)."""
    return messages.dumps(messages.stage("encoding", camera_id=camera_id, track_id=track_id, frame_time=time.time(),
                                         descriptor=[float(x) for x in descriptor],
                                         crop_jpeg=messages.b64(b"\xff\xd8crop"), quality=1.0)).decode()


if __name__ == "__main__":
    main()
