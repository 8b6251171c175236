"""The watch list as the daemon holds it: in memory only, swapped atomically.

Loaders (``folder.load_folder`` for development, the encrypted bundle for real use) all return a
:class:`WatchList`; the matcher does not care where it came from.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from edge.face import model as face_model
from edge.watchlist.operating import OperatingPoint

CATEGORIES = ("wanted", "missing person", "known offender", "other")


class ImageStore(Protocol):
    """Reads reference image ``i`` from a stored bundle (``bundle_v2.ImageStore``)."""

    def read(self, i: int) -> bytes: ...

    def close(self) -> None: ...

    def __len__(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Image:
    """Provenance of one reference image (bundle v2): its SHA-256 and, if the issuer gave them, the
    system it came from and the date it was taken. The JPEG itself stays in the stored bundle."""

    sha256: str  # 64 hex digits
    source: str = ""
    taken: str = ""  # YYYY-MM-DD


@dataclass(frozen=True, slots=True)
class Entry:
    ref: str  # police reference number; never a name
    category: str = "other"
    reason: str = ""
    image_jpeg: bytes = b""  # the reference image held in memory (folder and v1 lists; v2: see WatchList.image)
    images: tuple[Image, ...] = ()  # provenance of each reference image (v2 bundles)


@dataclass
class WatchList:
    list_id: str
    entries: list[Entry]
    templates: np.ndarray  # (n, dim) float32 of ``model``; several rows may belong to one entry
    owners: np.ndarray  # (n,) int: index into entries for each template row
    issuer: str = "local"
    sequence: int = 0
    not_after: datetime | None = None
    threshold_floor: float | None = None
    meta: dict = field(default_factory=dict)
    row_images: np.ndarray | None = None  # (n,) int: image number of each template row (v2 bundles)
    image_store: ImageStore | None = None  # reads image i from the stored bundle
    operating: OperatingPoint | None = None  # how hits are decided for this list (edge/watchlist/operating.py)
    model: str = face_model.DLIB  # the face model whose templates these are (edge/face/model.py)

    def __post_init__(self) -> None:
        self._by_ref: dict[str, int] | None = None  # ref -> entry index, built on first use
        self.dim = face_model.get(self.model).dim
        self.templates = np.ascontiguousarray(self.templates, dtype=np.float32).reshape(-1, self.dim)
        self.owners = np.asarray(self.owners, dtype=np.int64)
        self._sq = np.einsum("ij,ij->i", self.templates, self.templates)
        # rows of one entry are contiguous (every loader writes them so): per-entry minima by segment
        self._starts = np.flatnonzero(np.r_[True, self.owners[1:] != self.owners[:-1]]) if len(self.owners) else \
            np.zeros(0, np.int64)
        self._one_per_entry = len(self._starts) == len(self.owners)

    def __len__(self) -> int:
        return len(self.entries)

    def nearest(self, probe: np.ndarray) -> tuple[int, float]:
        """(entry index, Euclidean distance) of the closest template; (-1, inf) for an empty list."""
        idx, dist = self.nearest_batch(np.asarray(probe, dtype=np.float32).reshape(1, self.dim))
        return int(idx[0]), float(dist[0])

    def nearest_batch(self, probes: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """Exact nearest entry and its distance for each of (k, dim) probes: the matcher's own search
        (:meth:`nearest2_batch`) without the second-nearest."""
        idx, d1, _ = self.nearest2_batch(probes, chunk)
        return idx, d1.astype(np.float32)

    def rows_of(self, entry_index: int) -> np.ndarray:
        """The template rows of one entry."""
        return np.flatnonzero(self.owners == entry_index)

    def matched_row(self, entry: Entry, probe: np.ndarray) -> int:
        """The row of ``entry`` nearest to ``probe`` (the template, and so the image, that matched); -1 if
        the entry is not in this list."""
        index = self._index_of(entry)
        rows = self.rows_of(index) if index >= 0 else np.zeros(0, np.int64)
        if not len(rows):
            return -1
        d = self.templates[rows] - np.asarray(probe, dtype=np.float32).reshape(1, self.dim)
        return int(rows[int(np.argmin(np.einsum("ij,ij->i", d, d)))])

    def _index_of(self, entry: Entry) -> int:
        if self._by_ref is None:
            self._by_ref = {e.ref: i for i, e in enumerate(self.entries)}
        i = self._by_ref.get(entry.ref, -1)
        return i if i >= 0 and i < len(self.entries) and self.entries[i] is entry else -1

    def image(self, row: int) -> bytes:
        """The reference JPEG of a template row: read, decrypted and verified from the stored bundle
        (v2), or the entry's image held in memory (folder and v1 lists); b"" if there is none."""
        if not 0 <= row < len(self.owners) or not self.entries:
            return b""
        if self.image_store is None or self.row_images is None:
            return self.entries[int(self.owners[row])].image_jpeg
        return self.image_store.read(int(self.row_images[row]))

    def nearest2_batch(self, probes: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(nearest entry, its distance, the second-nearest *entry*'s distance) for each of (k, dim) probes.

        One matrix product per block of whole entries: |t|^2 - 2 p.t ranks templates like the distance
        does, and batching probes turns k matrix-vector products (memory-bound: the whole list is read k
        times) into one. The second-nearest is another entry's best template (the list as its own cohort,
        edge/watchlist/operating.py); inf when the list has one entry.
        """
        probes = np.ascontiguousarray(probes, dtype=np.float32)
        if probes.ndim != 2 or probes.shape[1] != self.dim:
            raise face_model.OtherModel(f"a probe of {probes.shape[-1]} numbers is not a {self.model} descriptor "
                                        f"({self.dim}): it is never compared with this list")
        k = len(probes)
        inf = np.full(k, np.inf, dtype=np.float64)
        if len(self.templates) == 0:
            return np.full(k, -1, dtype=np.int64), inf, inf.copy()
        b1, b2, arg = inf.copy(), inf.copy(), np.zeros(k, dtype=np.int64)
        rows = np.arange(k)
        starts = self._starts
        for s in range(0, len(starts), chunk):  # blocks of whole entries
            e0, e1 = s, min(s + chunk, len(starts))
            r0 = starts[e0]
            r1 = starts[e1] if e1 < len(starts) else len(self.templates)
            d2 = probes @ self.templates[r0:r1].T
            d2 *= -2.0
            d2 += self._sq[r0:r1]
            if not self._one_per_entry:
                d2 = np.minimum.reduceat(d2, starts[e0:e1] - r0, axis=1)
            i1 = np.argmin(d2, axis=1)  # two passes of min are cheaper than a partition
            c1 = d2[rows, i1].astype(np.float64)
            if d2.shape[1] >= 2:
                d2[rows, i1] = np.inf
                c2 = d2.min(axis=1).astype(np.float64)
            else:
                c2 = inf
            new1 = c1 < b1
            b2 = np.where(new1, np.minimum(b1, c2), np.minimum(b2, c1))
            arg = np.where(new1, i1 + e0, arg)
            b1 = np.where(new1, c1, b1)
        pp = np.einsum("ij,ij->i", probes, probes).astype(np.float64)
        entry = self.owners[starts[arg]]
        return entry, np.sqrt(np.maximum(b1 + pp, 0.0)), np.sqrt(np.maximum(b2 + pp, 0.0))

    def wipe(self) -> None:
        """Overwrite the templates in memory before letting go of them (purge)."""
        self.templates.fill(0)
        self.entries = []
        self._by_ref = None
        if self.image_store is not None:
            self.image_store.close()
            self.image_store = None


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

    def match(self, probe: np.ndarray, model: str | None = None) -> tuple[Entry, float] | None:
        return self.match_batch(np.asarray(probe, dtype=np.float32).reshape(1, -1), model)[0]

    def match_batch(self, probes: np.ndarray, model: str | None = None) -> list[tuple[Entry, float] | None]:
        """For each probe, (entry, distance) when it is a hit under the list's operating point, else None.

        A list without an operating point (tests, tools) is matched on the plain distance threshold.
        Either way the box's own ``threshold`` caps the distance. ``model``: the face model that made the
        probes (None: the list's); probes of another model than the list's are refused (``OtherModel``,
        one sentence), never compared.
        """
        wl = self._list
        if wl is None or (wl.not_after is not None and datetime.now(wl.not_after.tzinfo) >= wl.not_after):
            return [None] * len(probes)  # past its signed end a list never matches, whatever purges it
        if model is not None and model != wl.model:
            raise face_model.OtherModel(f"descriptors of face model {model} are never compared with the list in "
                                        f"force ({wl.model} templates)")
        idx, d1, d2 = wl.nearest2_batch(probes)
        hit = d1 <= self.threshold
        if wl.operating is not None:
            hit &= wl.operating.hits(d1, d2)
        return [(wl.entries[i], float(d)) if i >= 0 and h else None
                for i, d, h in zip(idx, d1, hit, strict=True)]
