"""One camera, one OS process: capture -> detect -> track -> quality gate -> encode once per track.

A track is encoded from its best views: a frontal, sharp view (``Quality.good``) at once; a lesser
one (turned, blurred) is held up to ``encode.hold_s`` for a better one, and the best held is encoded
when the hold ends or the track does. After the first encode, only a view better by
``encode.improve_ratio`` is encoded again, and held the same way when it is not frontal and sharp
(at most ``encode.max_per_track``: not spent on a turned view a frontal one follows).

The process sends small JSON stage messages to the daemon over a bounded queue: ``encoding`` (a
track's descriptor and live crop, memory only), ``camera`` (up/down) and ``health`` (counters, once a
second). Matching happens in the daemon, where the watch list is. Nothing here touches the disk.
Models are loaded in this process, after it has started, never at import time.
"""

from __future__ import annotations

import os
import queue
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge.alerts import messages
from edge.config import CameraConfig, Config
from edge.face import api, encoder, quality
from edge.face import model as face_model
from edge.pipeline.capture import Capture
from edge.pipeline.detect import Strategy
from edge.pipeline.tracker import Track, Tracker

REJUDGE_S = 0.2  # an encoded track's view is judged again (for a better one to encode) at most this often


@dataclass
class Counters:
    frames_processed: int = 0
    faces: int = 0
    encodes: int = 0
    rejected_small: int = 0
    rejected_blurred: int = 0
    rejected_turned: int = 0
    rejected_cut: int = 0  # faces cut by the frame's edge (judged once wholly in view)
    rejected_undetected: int = 0  # a box in which the face model finds no face (its landmarks): not encoded
    not_authorised: int = 0  # faces seen while matching is off (outside a deployment window)
    messages_dropped: int = 0
    detect_ms: float = 0.0  # moving averages
    encode_ms: float = 0.0
    lag_ms: float = 0.0
    fps: float = 0.0


@dataclass
class Held:
    """A track's view on its way to the encoder; a turned or blurred one waits in ``CameraWorker.held``
    up to ``encode.hold_s`` for a better one (memory only)."""

    track: Track
    since: float  # frame time of the first view held
    chip: np.ndarray
    qual: quality.Quality
    crop: np.ndarray  # the operator's crop and context, from that view's frame
    context: np.ndarray
    frame_time: float
    frame_no: int
    box: tuple[int, int, int, int]


class CameraWorker:
    def __init__(self, cam: CameraConfig, cfg: Config, out, stop_event, encode_allowed):
        self.cam_id = cam.id
        self.cam = cam
        self.cfg = cfg
        self.out = out
        self.stop_event = stop_event
        self.encode_allowed = encode_allowed  # multiprocessing.Event: inside an authorised window
        self.counters = Counters()
        self.model = face_model.for_config(cfg)  # prepares and encodes each face (edge/face/model.py)
        self.epoch = int(time.time()) % 1_000_000  # keeps track ids unique across restarts
        det = cfg.detect
        self.tracker = Tracker(det.track_iou, det.track_lost_s, det.track_gate, det.track_reid_distance,
                               det.track_max_speed)
        self.capture: Capture | None = None
        self._last_t: float | None = None
        self._interval = 0.0
        self._last_pass: int | None = None  # Frame.seq of the last detection pass
        self.strategy = Strategy(det)  # where to look for faces in each frame (edge.pipeline.detect)
        self.held: dict[int, Held] = {}  # track id -> its best view, not encoded yet

    # -- messages -------------------------------------------------------------------------------
    def send(self, kind: str, **fields) -> None:
        try:  # the wire encoder refuses a NaN (an encoder fault): that message is dropped and counted
            self.out.put_nowait(messages.dumps(messages.stage(kind, camera_id=self.cam_id, **fields)).decode())
        except (queue.Full, messages.MessageError):
            self.counters.messages_dropped += 1

    def on_state(self, state: str, reason: str) -> None:
        self.send("camera", state=state, reason=reason, source_kind=_source_kind(self.cam.source))

    def health(self) -> dict:
        t = self.tracker
        stats = dict(vars(self.counters))
        stats.update(self.capture.stats if self.capture else {})
        stats.update(tracks_started=t.started, tracks_ended=t.ended, tracks_active=len(t.tracks),
                     tracks_rejoined=t.rejoined, tracks_refused=t.refused,
                     up=bool(self.capture and self.capture.up),
                     cpu_s=round(time.process_time(), 3))  # this camera's CPU so far, decoding included
        return stats

    # -- lifecycle ------------------------------------------------------------------------------
    def run(self) -> None:
        cv2.setNumThreads(self.cfg.encode.threads)
        capture = self.start()
        try:
            last_health = 0.0
            parent = os.getppid()
            while not self.stop_event.is_set() and os.getppid() == parent:  # a killed daemon ends us too
                frame = capture.latest(timeout=0.5)
                if frame is not None:
                    self.process(frame)
                if time.monotonic() - last_health >= 1.0:
                    last_health = time.monotonic()
                    self.send("health", stats=self.health())
        finally:
            self.stop()

    def start(self) -> Capture:
        encoder.set_threads(self.cfg.encode.threads)  # one camera process, one core
        self.model.warm_up()  # load the face model here, in this process (dlib's: HOG, landmarks, its encoder)
        self.capture = Capture(self.cam.source, self.cam.loop, self.cam.realtime,
                               self.cfg.health.reconnect_max_backoff, self.on_state)
        self.capture.start()
        return self.capture

    def stop(self) -> None:
        if self.capture:
            self.capture.stop()
        self.send("health", stats=self.health())

    def _face(self, face, at: api.Box, box: api.Box) -> face_model.Face:
        """The face detected at ``at`` (frame px) as the model prepares it in the region around it, where it
        is ``box``: YuNet's landmarks from the detection itself (no second landmark run), or for dlib's
        model the HOG-like box its landmark model reads."""
        if self.model.id == face_model.DLIB:
            return face_model.Face(_dlib_box(box), None, 1.0)
        if face is None or face.landmarks is None:  # (a live track holds its detection: not expected)
            return face_model.Face(box, None, 1.0)
        shift = np.array((at[3] - box[3], at[0] - box[0]), dtype=np.float32)
        return face_model.Face(box, face.landmarks - shift, face.score)

    # -- the per-frame work -----------------------------------------------------------------------
    def process(self, frame) -> None:
        c = self.counters
        det, q, enc = self.cfg.detect, self.cfg.quality, self.cfg.encode
        c.frames_processed += 1
        now = time.monotonic()
        if self._last_t is not None:  # average the interval, not the rate (1/dt is biased upwards)
            self._interval = _ema(self._interval, now - self._last_t)
            c.fps = round(1.0 / max(1e-6, self._interval), 2)
        self._last_t = now
        if self._last_pass is not None and 0 <= frame.seq - self._last_pass < det.every_n_frames:
            return  # between detections the tracks simply carry on
        self._last_pass = frame.seq  # by frames of the stream, not frames processed: after dropped frames, at once
        t0 = time.perf_counter()
        faces = self.strategy.detect(frame.image, self.tracker.lookouts(frame.time), frame.seq)
        c.detect_ms = _ema(c.detect_ms, (time.perf_counter() - t0) * 1000)
        c.faces += len(faces)
        found = {f.box: f for f in faces}  # a track joined this pass holds its detection's box
        live = self.tracker.update(list(found), frame.time)
        if live and not self.encode_allowed.is_set():
            c.not_authorised += len(live)
            for track in live:
                self.tracker.settle(track, None)  # no descriptor: a pending re-join stays a track of its own
            live = []
            self.held.clear()  # nothing is encoded outside an authorised window, later either
        chosen: list[Held] = []
        gate = self.model.gate(q.min_face_px, q.min_sharpness, q.max_yaw)
        for track in live:
            if track.encodes >= enc.max_per_track or track.encodes and frame.time - track.judged < REJUDGE_S:
                continue
            if _cut(track.box, frame.image.shape):  # YuNet finds a face partly out of the frame: judged once whole
                c.rejected_cut += 1
                self.tracker.settle(track, None)
                continue
            track.judged = frame.time
            rgb, box = _around(frame.image, track.box)  # the face and its context, in RGB; box in that region
            chip, qual = self.model.prepare(rgb, self._face(found.get(track.box), track.box, box), gate)
            if not qual.ok:
                setattr(c, f"rejected_{qual.reason}", getattr(c, f"rejected_{qual.reason}") + 1)
                self.tracker.settle(track, None)
                continue
            if track.encodes and qual.score < track.best_score * enc.improve_ratio:
                continue
            held = self.held.get(track.id)
            if held is not None and qual.score <= held.qual.score and not qual.good:
                continue  # the view already held is better
            view = Held(track, held.since if held else frame.time, chip, qual, api.crop(rgb, box).copy(),
                        api.context(rgb, box), frame.time, frame.pos, track.box)
            if not qual.good and not track.pending and enc.hold_s > 0:
                self.held[track.id] = view  # a turned or blurred view: wait for a better one
                continue
            self.held.pop(track.id, None)
            chosen.append(view)
        for tid, held in list(self.held.items()):  # holds that ended: the best view seen is encoded
            if frame.time - held.since >= enc.hold_s or tid not in self.tracker.tracks:
                del self.held[tid]
                chosen.append(held)
        if chosen:
            t1 = time.perf_counter()
            descs = self.model.encode([v.chip for v in chosen])
            c.encode_ms = _ema(c.encode_ms, (time.perf_counter() - t1) * 1000 / len(chosen))
            for view, desc in zip(chosen, descs, strict=True):
                track, qual = view.track, view.qual
                c.encodes += 1
                if track.pending:  # a new track that may be a lost one back: the descriptor decides
                    owner = self.tracker.settle(track, desc)
                    if owner is not track and (owner.encodes >= enc.max_per_track or qual.score
                                               < owner.best_score * enc.improve_ratio):
                        continue  # the same person, already encoded as well: nothing new to send
                    track = owner
                track.encodes += 1
                track.best_score = qual.score
                track.descriptor = desc
                self.send("encoding", track_id=f"{self.cam_id}-{self.epoch}-{track.id}",
                          frame_time=view.frame_time, frame_no=view.frame_no, box=list(view.box),
                          descriptor=[round(float(x), 6) for x in desc],
                          crop_jpeg=messages.b64(api.jpeg(view.crop)),
                          context_jpeg=messages.b64(api.jpeg(view.context, 80)),
                          quality=round(qual.score, 4), encode_no=track.encodes, model=self.model.id)
        c.lag_ms = _ema(c.lag_ms, (time.time() - frame.time) * 1000)



def _cut(box: api.Box, shape: tuple) -> bool:
    """Whether the face at ``box`` touches the frame's edge (YuNet's boxes are clipped to the frame)."""
    top, right, bottom, left = box
    return top <= 0 or left <= 0 or bottom >= shape[0] or right >= shape[1]


def _dlib_box(box: api.Box) -> api.Box:
    """The box dlib's HOG detector gives the face YuNet boxed as ``box`` (brow to chin: rows 12-93 %,
    columns 2-98 % of YuNet's, the median over the bundled identities), what dlib's landmark model reads."""
    top, right, bottom, left = box
    h, w = bottom - top, right - left
    return (top + round(0.12 * h), left + round(0.98 * w), top + round(0.93 * h), left + round(0.02 * w))


def _around(image: np.ndarray, box: api.Box, margin: float = 2.0) -> tuple[np.ndarray, api.Box]:
    """(RGB of the region ``margin`` face sizes around ``box``, the box in it): what the landmark
    model, the aligned chip, the crop and the context view (``api.context``: 2 face sizes) read,
    without converting the whole frame."""
    top, right, bottom, left = box
    h, w = image.shape[:2]
    m = int(max(bottom - top, right - left) * margin) + 2
    y0, x0 = max(0, top - m), max(0, left - m)
    region = api.to_rgb(np.ascontiguousarray(image[y0:min(h, bottom + m), x0:min(w, right + m)]))
    return region, (top - y0, right - x0, bottom - y0, left - x0)


def _ema(old: float, new: float, k: float = 0.1) -> float:
    return new if old == 0.0 else old + k * (new - old)


def _source_kind(source: str) -> str:
    if "://" in source:
        return source.split("://", 1)[0]
    return "device" if source.isdigit() or source.startswith("/dev/") else "file"


def camera_main(cam: CameraConfig, cfg: Config, out, stop_event, encode_allowed) -> None:
    """Entry point of a camera process (multiprocessing 'spawn' target)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the daemon decides when cameras stop
    CameraWorker(cam, cfg, out, stop_event, encode_allowed).run()
