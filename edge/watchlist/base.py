"""The watch list as the daemon holds it: in memory only, swapped atomically.

Loaders (``folder.load_folder`` for development, the encrypted bundle for real use) all return a
:class:`WatchList`; the matcher does not care where it came from.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

CATEGORIES = ("wanted", "missing person", "known offender", "other")


@dataclass(frozen=True)
class Entry:
    ref: str  # police reference number; never a name
    category: str = "other"
    reason: str = ""
    image_jpeg: bytes = b""  # the reference image the operator compares against


@dataclass
class WatchList:
    list_id: str
    entries: list[Entry]
    templates: np.ndarray  # (n, 128) float32; several rows may belong to one entry
    owners: np.ndarray  # (n,) int: index into entries for each template row
    issuer: str = "local"
    sequence: int = 0
    not_after: datetime | None = None
    threshold_floor: float | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.templates = np.ascontiguousarray(self.templates, dtype=np.float32).reshape(-1, 128)
        self.owners = np.asarray(self.owners, dtype=np.int64)
        self._sq = np.einsum("ij,ij->i", self.templates, self.templates)

    def __len__(self) -> int:
        return len(self.entries)

    def nearest(self, probe: np.ndarray) -> tuple[int, float]:
        """(entry index, Euclidean distance) of the closest template; (-1, inf) for an empty list."""
        if len(self.templates) == 0:
            return -1, float("inf")
        p = np.asarray(probe, dtype=np.float32)
        d2 = self._sq - 2.0 * (self.templates @ p) + float(p @ p)
        i = int(np.argmin(d2))
        return int(self.owners[i]), float(np.sqrt(max(0.0, float(d2[i]))))

    def wipe(self) -> None:
        """Overwrite the templates in memory before letting go of them (purge)."""
        self.templates.fill(0)
        self.entries = []


class Matcher:
    """Holds the list in force. ``swap`` replaces it in one step; ``match`` never sees half a list."""

    def __init__(self, threshold: float):
        self.threshold = threshold
        self._list: WatchList | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> WatchList | None:
        return self._list

    def swap(self, new: WatchList | None) -> WatchList | None:
        with self._lock:
            old, self._list = self._list, new
        return old

    def match(self, probe: np.ndarray) -> tuple[Entry, float] | None:
        wl = self._list
        if wl is None:
            return None
        idx, dist = wl.nearest(probe)
        if idx < 0 or dist > self.threshold:
            return None
        return wl.entries[idx], dist
