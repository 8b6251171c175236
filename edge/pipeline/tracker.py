"""IoU tracking: each person in view becomes one track, so each person is encoded once, not every frame.

Detections are greedily associated with live tracks by box overlap (highest IoU first). A track that
goes ``max_missed`` processed frames without a detection ends; its descriptor and crop (memory only)
go with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edge.face.api import Box


def iou(a: Box, b: Box) -> float:
    at, ar, ab, al = a
    bt, br, bb, bl = b
    ih = max(0, min(ab, bb) - max(at, bt))
    iw = max(0, min(ar, br) - max(al, bl))
    inter = ih * iw
    union = (ab - at) * (ar - al) + (bb - bt) * (br - bl) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    id: int
    box: Box
    first_seen: float
    last_seen: float
    hits: int = 1  # frames with a detection
    missed: int = 0
    encodes: int = 0
    best_score: float = 0.0
    descriptor: np.ndarray | None = None  # memory only, dropped with the track
    updated: bool = True  # had a detection in the latest frame


@dataclass
class Tracker:
    iou_threshold: float = 0.3
    max_missed: int = 12
    tracks: dict[int, Track] = field(default_factory=dict)
    next_id: int = 1
    started: int = 0
    ended: int = 0

    def update(self, boxes: list[Box], now: float) -> list[Track]:
        """Associate this frame's detections; returns the tracks that have a detection in it."""
        for t in self.tracks.values():
            t.updated = False
        pairs = sorted(
            ((iou(t.box, b), tid, bi) for tid, t in self.tracks.items() for bi, b in enumerate(boxes)),
            reverse=True,
        )
        used_t, used_b = set(), set()
        for score, tid, bi in pairs:
            if score < self.iou_threshold:
                break
            if tid in used_t or bi in used_b:
                continue
            t = self.tracks[tid]
            t.box, t.last_seen, t.missed, t.updated = boxes[bi], now, 0, True
            t.hits += 1
            used_t.add(tid)
            used_b.add(bi)
        for bi, b in enumerate(boxes):
            if bi not in used_b:
                self.tracks[self.next_id] = Track(self.next_id, b, now, now)
                self.next_id += 1
                self.started += 1
        for tid in list(self.tracks):
            t = self.tracks[tid]
            if not t.updated:
                t.missed += 1
                if t.missed > self.max_missed:
                    t.descriptor = None
                    del self.tracks[tid]
                    self.ended += 1
        return [t for t in self.tracks.values() if t.updated]
