"""The daemon's handle on one camera process: start, stop, restart (the watchdog lives in the daemon)."""

from __future__ import annotations

import dataclasses

from edge.pipeline.camera import camera_main


class CameraProcess:
    """One camera's process handle, restartable."""

    def __init__(self, ctx, cam, cfg_dict, out, encode_allowed):
        self.cam, self.cfg_dict, self.out, self.encode_allowed = cam, cfg_dict, out, encode_allowed
        self.ctx = ctx
        self.stop_event = ctx.Event()
        self.proc = None
        self.restarts = 0
        self.state = "starting"
        self.stats: dict = {}
        self.next_restart = 0.0

    def start(self) -> None:
        self.stop_event.clear()
        self.proc = self.ctx.Process(
            target=camera_main, name=f"edge-camera-{self.cam.id}",
            args=(dataclasses.asdict(self.cam), self.cfg_dict, self.out, self.stop_event, self.encode_allowed),
            daemon=True,
        )
        self.proc.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self.proc is not None:
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()
