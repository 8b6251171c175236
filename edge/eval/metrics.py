"""Accuracy figures from descriptors: open-set identification and verification. Pure numpy.

Open-set identification is how a watch-list system is judged (ISO/IEC 19795-1, NIST FRVT 1:N):
some identities are enrolled (the "list"), each with ``refs`` reference images; every other image of
an enrolled identity is a *mated* search, every image of a non-enrolled identity a *non-mated* one.
The decision rule is the live matcher's (``edge.watchlist.base.Matcher``): the nearest template wins
and it is a hit when its distance is at or under the threshold.

- FNIR(t): share of mated searches that do not return their own identity at rank 1 within t
  (a listed person walks past and the box stays silent or names someone else).
- FPIR(t): share of non-mated searches that return anyone within t (an unlisted person alerts).
- rank-1 rate: share of mated searches whose nearest template is their own (threshold ignored).

Verification compares every pair of images: FNMR(t) = same-person pairs farther than t, FMR(t) =
different-person pairs at or within t; the EER is where the two are equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import EdgeError
from edge.watchlist.operating import distances

THRESHOLDS = np.round(np.arange(0.20, 1.0001, 0.01), 2)  # the grid every curve is reported on
MAX_IMPOSTOR_PAIRS = 2_000_000  # above this, different-person pairs are sampled (with the seed)


# -- open-set identification ---------------------------------------------------------------------

@dataclass
class Split:
    enrolled: np.ndarray  # identity indices on the list
    gallery: np.ndarray  # row indices of the reference images (the list's templates)
    mated: np.ndarray  # row indices of the other images of enrolled identities
    non_mated: np.ndarray  # row indices of every image of a non-enrolled identity


def make_splits(labels: np.ndarray, n_splits: int, enrol_share: float, refs: int, seed: int) -> list[Split]:
    """``n_splits`` random lists, reproducible from ``seed``."""
    idents, counts = np.unique(labels, return_counts=True)
    eligible = idents[counts > refs]  # an enrolled identity needs refs + at least one mated search
    k = min(max(1, int(enrol_share * len(idents) + 0.5)), len(idents) - 1, len(eligible))
    if k < 1 or len(idents) < 2:
        raise EdgeError(f"need at least 2 identities with a usable face, and one with more than {refs} "
                         f"usable images to evaluate identification")
    rng = np.random.default_rng(seed)
    splits = []
    for _ in range(n_splits):
        enrolled = np.sort(rng.choice(eligible, size=k, replace=False))
        gallery, mated = [], []
        for ident in enrolled:
            rows = np.flatnonzero(labels == ident)
            chosen = rng.choice(len(rows), size=refs, replace=False)
            gallery += list(rows[chosen])
            mated += list(np.delete(rows, chosen))
        non_mated = np.flatnonzero(~np.isin(labels, enrolled))
        splits.append(Split(enrolled, np.sort(np.array(gallery)), np.sort(np.array(mated)), non_mated))
    return splits


@dataclass
class Searches:
    """One split's searches: the nearest template's identity and distance for every probe."""

    mated_label: np.ndarray
    mated_nearest: np.ndarray  # identity of the nearest template
    mated_dist: np.ndarray
    non_mated_label: np.ndarray
    non_mated_dist: np.ndarray

    def fnir(self, thresholds, idents=None) -> np.ndarray:
        keep = _keep(self.mated_label, idents)
        if not keep.any():
            return np.full(np.shape(thresholds), np.nan)
        hit = (self.mated_nearest[keep] == self.mated_label[keep])[:, None] & (
            self.mated_dist[keep][:, None] <= np.atleast_1d(thresholds)[None, :])
        return (1.0 - hit.mean(0)).reshape(np.shape(thresholds))

    def fpir(self, thresholds, idents=None) -> np.ndarray:
        keep = _keep(self.non_mated_label, idents)
        if not keep.any():
            return np.full(np.shape(thresholds), np.nan)
        alert = self.non_mated_dist[keep][:, None] <= np.atleast_1d(thresholds)[None, :]
        return alert.mean(0).reshape(np.shape(thresholds))

    def rank1(self) -> float:
        return float((self.mated_nearest == self.mated_label).mean())

    def counts(self, idents=None) -> tuple[int, int]:
        return int(_keep(self.mated_label, idents).sum()), int(_keep(self.non_mated_label, idents).sum())


def _keep(labels: np.ndarray, idents) -> np.ndarray:
    return np.ones(len(labels), bool) if idents is None else np.isin(labels, list(idents))


def search(desc: np.ndarray, labels: np.ndarray, split: Split) -> Searches:
    templates, owners = desc[split.gallery], labels[split.gallery]

    def nearest(rows):  # in blocks, so that a big data set does not need a huge distance matrix
        near, dist = [np.zeros(0, np.int64)], [np.zeros(0)]
        for s in range(0, len(rows), 4096):
            d = distances(desc[rows[s:s + 4096]], templates)
            i = d.argmin(1)
            near.append(owners[i])
            dist.append(d[np.arange(len(i)), i])
        return np.concatenate(near), np.concatenate(dist)

    m_near, m_dist = nearest(split.mated)
    _, n_dist = nearest(split.non_mated)
    return Searches(labels[split.mated], m_near, m_dist, labels[split.non_mated], n_dist)


# -- verification --------------------------------------------------------------------------------

@dataclass
class Pairs:
    i: np.ndarray
    j: np.ndarray
    dist: np.ndarray
    genuine: np.ndarray  # bool: same identity
    sampled: bool  # True when different-person pairs were sampled, not enumerated


def pairs(desc: np.ndarray, labels: np.ndarray, seed: int, max_impostor: int = MAX_IMPOSTOR_PAIRS) -> Pairs:
    n = len(desc)
    if n * (n - 1) // 2 <= max_impostor:
        i, j = np.triu_indices(n, 1)
        sampled = False
    else:  # every same-person pair, and a seeded sample of the different-person ones
        gi, gj = [], []
        for ident in np.unique(labels):
            rows = np.flatnonzero(labels == ident)
            a, b = np.triu_indices(len(rows), 1)
            gi.append(rows[a])
            gj.append(rows[b])
        rng = np.random.default_rng(seed)
        si, sj = rng.integers(0, n, max_impostor), rng.integers(0, n, max_impostor)
        diff = labels[si] != labels[sj]
        i = np.concatenate(gi + [si[diff]])
        j = np.concatenate(gj + [sj[diff]])
        sampled = True
    dist = np.concatenate([np.linalg.norm(desc[i[s:s + 500_000]] - desc[j[s:s + 500_000]], axis=1)
                           for s in range(0, max(len(i), 1), 500_000)]) if len(i) else np.zeros(0)
    return Pairs(i, j, dist, labels[i] == labels[j], sampled)


def fnmr_fmr(p: Pairs, thresholds, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(FNMR, FMR) at each threshold over the pairs selected by ``keep`` (NaN where there are none)."""
    t = np.atleast_1d(thresholds)
    keep = np.ones(len(p.dist), bool) if keep is None else keep
    out = []
    for sel, farther in ((keep & p.genuine, True), (keep & ~p.genuine, False)):
        d = np.sort(p.dist[sel])
        if not len(d):
            out.append(np.full(np.shape(thresholds), np.nan))
            continue
        within = np.searchsorted(d, t, side="right") / len(d)
        out.append((1.0 - within if farther else within).reshape(np.shape(thresholds)))
    return out[0], out[1]


def eer(p: Pairs) -> tuple[float, float]:
    """(equal error rate, the threshold where it occurs); NaN without both kinds of pair."""
    if not p.genuine.any() or p.genuine.all():
        return float("nan"), float("nan")
    cands = np.unique(p.dist)
    fnmr, fmr = fnmr_fmr(p, cands)
    k = int(np.argmin(np.abs(fnmr - fmr)))
    return float((fnmr[k] + fmr[k]) / 2), float(cands[k])


# -- summaries -----------------------------------------------------------------------------------

def spread(values) -> dict:
    """mean / sd / min / max over splits, ignoring splits where the figure is undefined (NaN)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if not len(v):
        return {"mean": None, "sd": None, "min": None, "max": None, "splits": 0}
    return {"mean": _r(v.mean()), "sd": _r(v.std()), "min": _r(v.min()), "max": _r(v.max()), "splits": len(v)}


def _r(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else round(x, 4)


def recommend(thresholds: np.ndarray, fpir_by_split: np.ndarray, max_fpir: float) -> float | None:
    """The most lenient grid threshold at which *every* split's FPIR is within ``max_fpir``.

    FPIR only rises as the threshold loosens, so this is the threshold that meets the target with
    the fewest missed listed people. None when even the strictest grid threshold misses it.
    """
    ok = np.flatnonzero((fpir_by_split <= max_fpir).all(0))
    return float(thresholds[ok[-1]]) if len(ok) else None
