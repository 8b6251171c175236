"""Tracking that holds a face across a walk, so each person is encoded once, not every frame.

SORT-style, with DeepSORT's appearance check on re-joins; a pure class, no I/O, no images.

- **Prediction.** Each track carries a small constant-velocity Kalman filter per coordinate (box
  centre x, y and face height), stepped by the frames' own timestamps, so a skipped pass or a burst
  of dropped frames is just a longer step. Noise is in units of the face's height: a near face moves
  more pixels than a far one. A new track's velocity is unknown (up to ``max_speed`` face heights a
  second), so its uncertainty, and with it the search region and gate, starts wide and narrows as
  detections arrive.
- **Association** is on the predicted box: a detection overlapping the prediction (IoU >=
  ``iou_threshold``) or whose centre lies within ``gate`` standard deviations of the predicted centre
  (a fast mover whose boxes do not overlap from one pass to the next), with a similar size, joins
  the track; cheapest pairs first (Mahalanobis distance).
- **Lost tracks.** A track without a detection is kept as lost for ``lost_s`` seconds. A detection
  where it was heading re-joins it: same id, so it is not encoded or alerted again. After a short
  gap (up to ``TRUST_S``: a missed pass, a burst of dropped frames) motion alone decides, as it does
  for a track seen in the pass before however long ago that was (a slow box). After a longer gap
  with passes missed, a track that already has a descriptor is re-joined only on appearance: the
  detection starts a *pending* track that the camera encodes as any new one, and :meth:`Tracker.settle`
  merges it into the lost track when the descriptors are within ``reid_distance`` (the same
  person, as DeepSORT does) or keeps it apart when they are not (someone else stepped in where
  the lost one was heading) or when there is no descriptor (its face failed the quality gate, or
  matching is off): an extra track is harmless, a person hidden in another's track is not. A new
  track near a lost one's prediction (within twice the gate) may merge the same way. A lost track
  never encoded has nothing to hide and re-joins by motion.

Descriptors live in memory only, on the track, and go with it when it ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge.face.api import Box

MEASURE_STD = 0.1  # detector jitter, face heights
ACCEL_STD = 3.0  # how fast a walker changes velocity, face heights per s^1.5 (white-noise acceleration)
SIZE_RATIO = 1.5  # a gated (non-overlapping) join needs heights within this ratio
REID_GATE = 2.0  # appearance may merge a new track this many gates from a lost track's prediction
LOOK_FACE = 0.25  # a lookout's margin: this share of the face height, plus the prediction's uncertainty,
LOOK_SPEED = 0.1  # plus this share of the distance the track is predicted to have moved
LOOK_MISSED = 2  # passes without a detection after which a lost track is no longer looked for around
TRUST_S = 0.3  # missed, and unseen longer than this: an encoded track re-joins only on appearance


def iou(a: Box, b: Box) -> float:
    at, ar, ab, al = a
    bt, br, bb, bl = b
    ih = max(0, min(ab, bb) - max(at, bt))
    iw = max(0, min(ar, br) - max(al, bl))
    inter = ih * iw
    union = (ab - at) * (ar - al) + (bb - bt) * (br - bl) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Kalman1D:
    """Constant velocity along one coordinate: state (x, v), covariance [[pxx, pxv], [pxv, pvv]]."""

    x: float
    v: float
    pxx: float
    pxv: float
    pvv: float

    def predicted(self, dt: float, q: float) -> tuple[float, float, float, float, float]:
        """(x, v, pxx, pxv, pvv) after ``dt`` seconds, with white-noise acceleration density ``q``."""
        dt = max(0.0, dt)
        x = self.x + self.v * dt
        pxx = self.pxx + 2 * dt * self.pxv + dt * dt * self.pvv + q * dt ** 3 / 3
        pxv = self.pxv + dt * self.pvv + q * dt * dt / 2
        pvv = self.pvv + q * dt
        return x, self.v, pxx, pxv, pvv

    def step(self, dt: float, q: float, z: float, r: float) -> None:
        """Predict ``dt`` ahead, then take the measurement ``z`` with variance ``r``."""
        x, v, pxx, pxv, pvv = self.predicted(dt, q)
        s = pxx + r
        kx, kv = pxx / s, pxv / s
        y = z - x
        self.x, self.v = x + kx * y, v + kv * y
        self.pxx, self.pxv, self.pvv = (1 - kx) * pxx, (1 - kx) * pxv, pvv - kv * pxv


@dataclass(frozen=True)
class Lookout:
    """Where to look for a track's face this pass: its predicted box and a margin around it (px)."""

    box: Box
    margin: int
    encoded: bool = False  # the track has a descriptor already (its look can wait on a slow box)


@dataclass
class Track:
    id: int
    box: Box
    first_seen: float
    last_seen: float
    hits: int = 1  # passes with a detection
    missed: int = 0  # passes without one since the last
    encodes: int = 0
    best_score: float = 0.0
    judged: float = float("-inf")  # when the camera last judged its view (quality gate)
    descriptor: np.ndarray | None = None  # memory only, dropped with the track
    updated: bool = True  # had a detection in the latest pass
    motion: list[Kalman1D] = field(default_factory=list)  # centre x, centre y, height
    aspect: float = 1.0  # width / height of the last box
    candidates: list[tuple[float, int]] = field(default_factory=list)  # pending: (gate distance, lost id)

    @property
    def pending(self) -> bool:
        return bool(self.candidates)

    @property
    def height(self) -> float:
        return max(1.0, self.motion[2].x)


@dataclass
class Tracker:
    iou_threshold: float = 0.3
    lost_s: float = 1.0  # a track without a detection is kept this long, to be re-joined
    gate: float = 3.0  # standard deviations of the predicted centre a detection may be from it
    reid_distance: float = 0.5  # descriptors this close are the same person (re-joins only)
    max_speed: float = 10.0  # face heights per second a new track may move
    tracks: dict[int, Track] = field(default_factory=dict)
    next_id: int = 1
    started: int = 0  # distinct tracks (a pending one counts once settled apart)
    ended: int = 0
    rejoined: int = 0  # lost tracks re-joined: by motion, or merged by appearance
    refused: int = 0  # re-joins the appearance check refused

    # -- prediction -------------------------------------------------------------------------------
    def predict(self, track: Track, now: float) -> tuple[Box, float, float]:
        """(predicted box at ``now``, std of its centre in px (per axis, the two combined), speed in px/s)."""
        box, sx, sy, speed = self._predict(track, now)
        return box, math.hypot(sx, sy) / math.sqrt(2), speed

    def lookouts(self, now: float) -> list[Lookout]:
        """Where to look for each track at ``now``: its predicted box, with a margin of a quarter of
        the face's height (context for the detector) plus the prediction's uncertainty (``gate``
        standard deviations: wide for a new track whose velocity is not known yet, and for a lost
        one, narrow for a steady walker) plus a tenth of the distance it is predicted to have moved
        (a walker may slow or turn), at most two face heights. The margin the camera used before
        predictions, half a face height, scanned as many pixels in the walking scene as this does.
        A track lost for more than ``LOOK_MISSED`` passes is left to the whole-frame scans."""
        out = []
        for t in self.tracks.values():
            if t.missed > LOOK_MISSED:
                continue
            box, sigma, speed = self.predict(t, now)
            face = box[2] - box[0]
            out.append(Lookout(box, int(min(2 * face, LOOK_FACE * face + self.gate * sigma
                                            + LOOK_SPEED * speed * (now - t.last_seen))), t.encodes > 0))
        return out

    def _predict(self, track: Track, now: float):
        dt = now - track.last_seen
        h = track.height
        q = (ACCEL_STD * h) ** 2
        (cx, vx, pxx, _, _), (cy, vy, pyy, _, _) = (k.predicted(dt, q) for k in track.motion[:2])
        ph = track.motion[2].predicted(dt, q * 0.1)
        h = max(4.0, ph[0])
        w = h * track.aspect
        box = (int(round(cy - h / 2)), int(round(cx + w / 2)), int(round(cy + h / 2)), int(round(cx - w / 2)))
        return box, math.sqrt(pxx), math.sqrt(pyy), math.hypot(vx, vy)

    def _distance(self, track: Track, now: float, box: Box) -> tuple[float, Box]:
        """(Mahalanobis distance of ``box``'s centre from the prediction, the predicted box)."""
        pred, sx, sy, _ = self._predict(track, now)
        r = (MEASURE_STD * track.height) ** 2
        t, rt, b, lf = box
        pt, pr, pb, pl = pred
        dx, dy = (lf + rt - pl - pr) / 2, (t + b - pt - pb) / 2
        return math.sqrt(dx * dx / (sx * sx + r) + dy * dy / (sy * sy + r)), pred

    # -- association ------------------------------------------------------------------------------
    def update(self, boxes: list[Box], now: float) -> list[Track]:
        """Associate this pass's detections; returns the tracks with a detection in it (some may
        be pending: call :meth:`settle` for those once their descriptor is known, or is not)."""
        for t in list(self.tracks.values()):
            if t.pending:  # never settled: no appearance evidence, it stays a track of its own
                self.settle(t, None)
        for t in self.tracks.values():
            t.updated = False
        pairs = []
        for tid, t in self.tracks.items():
            for bi, b in enumerate(boxes):
                d, pred = self._distance(t, now, b)
                overlap = iou(pred, b) >= self.iou_threshold
                h = b[2] - b[0]
                sized = 1 / SIZE_RATIO <= h / t.height <= SIZE_RATIO
                if overlap or d <= self.gate * REID_GATE and sized:
                    pairs.append((d if overlap else max(d, 1e-6) + 0.5, tid, bi, overlap, d <= self.gate))
        pairs.sort()
        used_t, used_b = set(), set()
        maybe: dict[int, list[tuple[float, int]]] = {}  # detection -> lost tracks it may be
        for d, tid, bi, overlap, gated in pairs:
            if tid in used_t or bi in used_b:
                continue
            t = self.tracks[tid]
            if t.missed and t.descriptor is not None and now - t.last_seen > TRUST_S:
                maybe.setdefault(bi, []).append((d, tid))  # appearance decides, in settle()
            elif overlap or gated:
                self._join(t, boxes[bi], now)
                if t.missed:
                    self.rejoined += 1
                t.missed = 0
                used_t.add(tid)
                used_b.add(bi)
        for bi, b in enumerate(boxes):
            if bi in used_b:
                continue
            t = self._new(b, now)
            t.candidates = sorted(c for c in maybe.get(bi, []) if c[1] not in used_t)
            if not t.pending:
                self.started += 1
        for tid in list(self.tracks):
            t = self.tracks[tid]
            if not t.updated:
                t.missed += 1
                if now - t.last_seen > self.lost_s:
                    self._end(tid)
        return [t for t in self.tracks.values() if t.updated]

    def settle(self, track: Track, descriptor: np.ndarray | None) -> Track:
        """Decide a pending track: the lost track it is, or itself. The nearest candidate whose
        descriptor is within ``reid_distance`` of ``descriptor`` takes it over; a farther one is
        refused, and without a descriptor it stays apart. Returns the track now holding the box."""
        candidates, track.candidates = track.candidates, []
        if not candidates:
            return track
        alive = [self.tracks[tid] for _, tid in candidates
                 if tid in self.tracks and not self.tracks[tid].updated and self.tracks[tid].descriptor is not None]
        owner = None
        if descriptor is not None and alive:
            dist, owner = min(((float(np.linalg.norm(t.descriptor - descriptor)), t) for t in alive),
                              key=lambda p: p[0])
            if dist > self.reid_distance:
                owner = None
                self.refused += 1
        if owner is None:
            self.started += 1
            return track
        self._join(owner, track.box, track.last_seen)
        owner.missed = 0
        self.rejoined += 1
        del self.tracks[track.id]
        return owner

    # -- track life -------------------------------------------------------------------------------
    def _new(self, box: Box, now: float) -> Track:
        top, right, bottom, left = box
        h = float(bottom - top)
        r = (MEASURE_STD * h) ** 2
        v0 = (self.max_speed * h / 2) ** 2  # unknown velocity: +-2 sigma covers max_speed
        motion = [Kalman1D((left + right) / 2, 0.0, r, 0.0, v0), Kalman1D((top + bottom) / 2, 0.0, r, 0.0, v0),
                  Kalman1D(h, 0.0, r, 0.0, (0.5 * h) ** 2)]
        t = Track(self.next_id, box, now, now, motion=motion, aspect=(right - left) / max(1.0, h))
        self.tracks[t.id] = t
        self.next_id += 1
        return t

    def _join(self, t: Track, box: Box, now: float) -> None:
        top, right, bottom, left = box
        h = float(bottom - top)
        dt = now - t.last_seen
        r = (MEASURE_STD * t.height) ** 2
        q = (ACCEL_STD * t.height) ** 2
        t.motion[0].step(dt, q, (left + right) / 2, r)
        t.motion[1].step(dt, q, (top + bottom) / 2, r)
        t.motion[2].step(dt, q * 0.1, h, r)
        t.box, t.last_seen, t.updated, t.aspect = box, now, True, (right - left) / max(1.0, h)
        t.hits += 1

    def _end(self, tid: int) -> None:
        self.tracks[tid].descriptor = None
        del self.tracks[tid]
        self.ended += 1
