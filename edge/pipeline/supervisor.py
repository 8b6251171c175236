"""The daemon's handle on one camera process: start, stop, restart (the watchdog lives in the daemon)."""

from __future__ import annotations

from edge.config import CameraConfig, Config
from edge.pipeline.camera import camera_main


class CameraProcess:
    """One camera's process handle, restartable."""

    def __init__(self, ctx, cam: CameraConfig, cfg: Config, out, encode_allowed):
        """``cam`` and ``cfg`` go to the camera process as they are: typed dataclasses (they pickle)."""
        self.cam, self.cfg, self.out, self.encode_allowed = cam, cfg, out, encode_allowed
        self.ctx = ctx
        self.stop_event = ctx.Event()
        self.proc = None
        self.restarts = 0
        self.state = "starting"
        self.stats: dict = {}
        self.next_restart = 0.0

    def start(self) -> None:
        self.stop_event.clear()
        proc = self.ctx.Process(
            target=camera_main, name=f"edge-camera-{self.cam.id}",
            args=(self.cam, self.cfg, self.out, self.stop_event, self.encode_allowed),
            daemon=True,
        )
        proc.start()
        self.proc = proc

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self.proc is not None:
            self.proc.join(timeout)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join(2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()
