"""Track fusion: a track's views are matched as one descriptor, the mean of its encodes so far.

The mean is scaled back to its views' mean length (``operating.fused``): for a cosine model a unit vector
again, so that its distances mean what the calibration's do.

A camera encodes a track once, and again only for a clearly better view (``encode.max_per_track``).
Deciding on the mean of those views instead of on each frame alone misses fewer listed people at the
same false-alert rate (``make bench``, section accuracy: on lfw-dev, the mean of two photos of a
person against one). Descriptors live here in memory only, for ``memory_s`` after a track's last
encode, and at most ``max_tracks`` tracks are held (the oldest go first); nothing is written.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from edge.watchlist.operating import fused


class TrackFusion:
    def __init__(self, memory_s: float = 30.0, max_tracks: int = 4096):
        self.memory_s = memory_s
        self.max_tracks = max_tracks
        self._views: OrderedDict[str, tuple[np.ndarray, int, float, float]] = OrderedDict()  # sum, count, last, norms

    def add(self, track_id: str, descriptor: np.ndarray, now: float) -> np.ndarray:
        """Add one view of ``track_id``; returns the descriptor to match: the mean of its views."""
        self._expire(now)
        d = np.asarray(descriptor, np.float64)
        total, n, _, norms = self._views.pop(track_id, (np.zeros(d.shape, np.float64), 0, now, 0.0))
        if total.shape != d.shape:  # views of another model are not averaged in
            total, n, norms = np.zeros(d.shape, np.float64), 0, 0.0
        total, norms = total + d, norms + float(np.linalg.norm(d))
        self._views[track_id] = (total, n + 1, now, norms)
        while len(self._views) > self.max_tracks:
            self._forget(next(iter(self._views)))
        return fused(total, n + 1, norms).astype(np.float32)

    def views(self, track_id: str) -> int:
        return self._views.get(track_id, (None, 0, 0.0, 0.0))[1]

    def clear(self) -> None:
        for tid in list(self._views):
            self._forget(tid)

    def _expire(self, now: float) -> None:
        while self._views:
            tid, (_, _, last, _) = next(iter(self._views.items()))
            if now - last < self.memory_s:
                return
            self._forget(tid)

    def _forget(self, track_id: str) -> None:
        total = self._views.pop(track_id)[0]
        total.fill(0.0)  # overwritten before it is let go, like a purged list
