"""Frame capture: a thread that keeps only the newest frame.

The consumer (detection) always gets the latest frame; a frame it had no time for is overwritten and
counted as dropped, so lag never grows. A source that ends or breaks is reopened with exponential
backoff; each state change is reported through ``on_state(state, reason)``. A file source is read at
its own frame rate (``realtime``) so it behaves like a camera, and may ``loop`` for demos.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Frame:
    image: np.ndarray  # BGR as decoded
    seq: int  # frames read from this source so far (across reconnects: the camera's frame clock)
    time: float  # wall-clock time of capture (time.time())
    pos: int = -1  # its position in the stream: frames read since the source was last opened, from 0
    #                (a file's frame index; -1: not known)


NETWORK_TIMEOUT_MS = 5000  # a stalled network camera fails its read after this, not FFmpeg's 30 s
# One decoding thread per camera (one camera, one core): 12 % less CPU per 1080p H.264 frame than
# FFmpeg's automatic threads, and the decode cost is then measurable per camera (docs/detection.md).
DECODE_THREADS = 1
# RTSP over TCP (interleaved): no frames torn by lost UDP packets when the box is busy.
RTSP_OPTIONS = "rtsp_transport;tcp"


def open_source(source: str) -> cv2.VideoCapture:
    if source.isdigit():
        return cv2.VideoCapture(int(source), cv2.CAP_V4L2)
    if source.startswith("/dev/video") and source[len("/dev/video"):].isdigit():
        return cv2.VideoCapture(int(source[len("/dev/video"):]), cv2.CAP_V4L2)  # V4L2 opens by index
    if source.startswith("/dev/"):  # another device node (a udev symlink, say): let OpenCV choose
        return cv2.VideoCapture(source, cv2.CAP_ANY)
    threads = [cv2.CAP_PROP_N_THREADS, DECODE_THREADS]
    if "://" in source:
        if source.startswith("rtsp://"):
            os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", RTSP_OPTIONS)  # this process only
        return cv2.VideoCapture(source, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS,
                                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS,
                                                         *threads])
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, threads)


def is_file(source: str) -> bool:
    return "://" not in source and not source.isdigit() and not source.startswith("/dev/")


class Capture:
    def __init__(self, source: str, loop: bool = False, realtime: bool = True,
                 max_backoff: float = 30.0, on_state=None):
        self.source = source
        self.loop = loop
        self.realtime = realtime and is_file(source)
        self.max_backoff = max_backoff
        self.on_state = on_state or (lambda state, reason: None)
        self.stats = {"frames_read": 0, "frames_dropped": 0, "reconnects": 0, "read_errors": 0,
                      "decode_ms": 0.0, "width": 0, "height": 0}  # decode_ms: CPU per frame, moving average
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._consumed = True
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"capture:{source}", daemon=True)
        self.up: bool | None = None  # unknown until the first open succeeds or fails

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def latest(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not handed out before, or None after ``timeout`` seconds."""
        with self._cond:
            if self._consumed and not self._cond.wait_for(
                lambda: not self._consumed or self._stop.is_set(), timeout
            ):
                return None
            if self._consumed:
                return None
            self._consumed = True
            return self._latest

    def _publish(self, image: np.ndarray, pos: int) -> None:
        with self._cond:
            if not self._consumed:
                self.stats["frames_dropped"] += 1
            self.stats["frames_read"] += 1
            self._latest = Frame(image, int(self.stats["frames_read"]), time.time(), pos)
            self._consumed = False
            self._cond.notify()

    def _set_state(self, up: bool, reason: str) -> None:
        if up != self.up:
            self.up = up
            self.on_state("up" if up else "down", reason)

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            cap = open_source(self.source)
            if not cap.isOpened():
                cap.release()
                self._set_state(False, "cannot open source")
                self._wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                self.stats["reconnects"] += 1
                continue
            reason = self._read_all(cap)
            cap.release()
            if self._stop.is_set():
                break
            if reason == "end" and self.loop:
                continue  # a demo file starts again at once
            self._set_state(False, "source ended" if reason == "end" else "read failed")
            if reason == "ok-then-fail":
                backoff = 1.0
            self._wait(backoff)
            backoff = min(backoff * 2, self.max_backoff)
            self.stats["reconnects"] += 1

    def _read_all(self, cap: cv2.VideoCapture) -> str:
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        period = 1.0 / fps if self.realtime and 1.0 <= fps <= 240.0 else 0.0
        next_t = time.monotonic()
        got_any = False
        pos = 0
        while not self._stop.is_set():
            c0 = time.thread_time()  # decoding runs in this thread (DECODE_THREADS = 1)
            ok, image = cap.read()
            if not ok or image is None or image.size == 0:
                if is_file(self.source) and got_any:
                    return "end"
                self.stats["read_errors"] += 1
                return "ok-then-fail" if got_any else "fail"
            ms = (time.thread_time() - c0) * 1000
            self.stats["decode_ms"] = round(ms if not got_any else self.stats["decode_ms"] * 0.95 + ms * 0.05, 2)
            if not got_any:
                got_any = True
                self.stats["height"], self.stats["width"] = image.shape[:2]
                self._set_state(True, "frames arriving")
            self._publish(image, pos)
            pos += 1
            if period:
                next_t += period
                delay = next_t - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)
                else:
                    next_t = time.monotonic()
        return "stopped"

    def _wait(self, seconds: float) -> None:
        self._stop.wait(seconds)
