"""The operating point: how a hit is decided, derived from a target false-alert rate for *this* list.

A raw distance threshold does not hold its false-alert rate as a list grows: every extra entry is one
more chance for a passer-by to fall within it (1,000 entries at 0.6 alert on most people). So the
issuer signs a *target* FPIR (the share of passers-by who may alert, e.g. 1 in 1,000) and the
threshold is derived for the list's size from a :class:`Calibration` of non-mated searches
(``edge eval --calibrate``; a default one ships with the box, docs/eval.md says how it was made).

Decision rules (one home: :func:`scores` and :meth:`OperatingPoint.hits`):

- ``distance``: the nearest entry's distance ``d1`` is at or under the threshold (the classic rule; for a
  cosine model, plain cosine);
- ``ratio``: the list is its own cohort: ``d1 / min(d2, 0.8)`` (``d2`` the second-nearest
  *entry*) is at or under the threshold, and ``d1`` at or under the distance cap. A passer-by tends
  to be about as far from the nearest entry as from the next one; a listed person is much nearer
  their own entry than any other. On lfw-dev, with dlib's ResNet, it misses far fewer listed people at
  the same FPIR (docs/eval.md, ``make bench``).

Each face model is matched by the rule that won for it on held-out lfw-dev people (:data:`ADOPTED_RULE`,
``make bench`` section accuracy): dlib's by the ratio rule; MobileFaceNet's by plain cosine (the ratio
rule, cohort score normalisation and mirrored views gave it nothing beyond their spread). A rule of
``None`` means the model's adopted one.

Both rules also keep the box's distance cap (``match.threshold`` and the list's threshold floor).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edge.errors import EdgeError
from edge.face import model as face_model
from edge.watchlist import pairtail
from edge.watchlist.pairtail import PairTail

RULES = ("ratio", "distance")
DEFAULT_RULE = "ratio"  # dlib's (lists and boxes from before models were named)
ADOPTED_RULE = {"dlib-resnet": "ratio", "yunet-mobilefacenet": "distance"}  # face model id -> its rule
DEFAULT_TARGET_FPIR = 0.001  # 1 false alert per 1,000 passers-by
MAX_TARGET = 0.02  # a calibration keeps the lowest 2 % of scores: targets above that cannot be placed
RATIO_D2_CAP = 0.8  # a second-nearest entry farther than this counts as this far (tiny lists)
TAIL_FIT = 30  # short tail: under this many samples in a point, a power-law fit; a long tail is fitted from this rank
FIT_BELOW = 100  # a long tail (2 x this many kept): below this many samples within a point, FPIR is its fit
CAL_FORMAT = "edge-calibration"
CAL_VERSION = 3  # version 3 adds the photo pairs' tail (``pairs``); 2 names its face model; a version 1 file is dlib's
CAL_READS = (1, 2, 3)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances between descriptors, in float64 (as the matcher ranks them)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d: np.ndarray = np.sqrt(np.maximum((a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :], 0.0))
    return d


def scores(d1: npt.ArrayLike, d2: npt.ArrayLike, rule: str) -> np.ndarray:
    """The decision score of searches with nearest distance ``d1`` and second-nearest entry ``d2``."""
    near: np.ndarray = np.asarray(d1, dtype=np.float64)
    if rule == "distance":
        return near
    if rule == "ratio":
        ratio: np.ndarray = near / np.minimum(np.asarray(d2, dtype=np.float64), RATIO_D2_CAP)
        return ratio
    raise EdgeError(f"unknown decision rule {rule!r} (use one of: {', '.join(RULES)})")


def fused(total: np.ndarray, count: npt.ArrayLike, norm_total: npt.ArrayLike) -> np.ndarray:
    """The descriptor a track's views are decided on (edge.pipeline.fusion; ``edge eval``'s tracks): their mean
    (``total`` / ``count``), scaled back to their mean length (``norm_total`` / ``count``). A mean of unit
    vectors is shorter than its views, so it would come out nearer every template than any view and alert
    more than the calibration says; scaled, a cosine model's mean is a unit vector again. Rows of a 2-D
    ``total`` are fused alike."""
    t = np.asarray(total, np.float64)
    length = np.asarray(norm_total, np.float64) / np.asarray(count, np.float64)
    out: np.ndarray = t * (length[..., None] if t.ndim > 1 else length) / np.maximum(
        np.linalg.norm(t, axis=-1, keepdims=True), 1e-12)
    return out


@dataclass(frozen=True)
class OperatingPoint:
    rule: str
    threshold: float  # on the rule's score
    cap: float  # the nearest distance must also be at or under this
    list_size: int
    target_fpir: float
    expected_fpir: float  # at this point, for this list size, from the calibration (and the list)
    calibration: str = ""
    extrapolated: bool = False  # the list is larger than the calibration reached

    def hits(self, d1: npt.ArrayLike, d2: npt.ArrayLike) -> np.ndarray:
        return (np.asarray(d1) <= self.cap) & (scores(d1, d2, self.rule) <= self.threshold)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("threshold", "cap"):  # rounded down: never more lenient than derived
            d[k] = math.floor(float(d[k]) * 1e5) / 1e5
        d["expected_fpir"] = float(f"{d['expected_fpir']:.4g}")
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OperatingPoint:
        return cls(rule=str(d["rule"]), threshold=float(d["threshold"]), cap=float(d.get("cap", 2.0)),
                   list_size=int(d.get("list_size", 0)), target_fpir=float(d.get("target_fpir", 0.0)),
                   expected_fpir=float(d.get("expected_fpir", 0.0)), calibration=str(d.get("calibration", "")),
                   extrapolated=bool(d.get("extrapolated", False)))

    def describe(self) -> str:
        return (f"{self.rule} rule at {self.threshold:.3f} (distance cap {self.cap:.2f}) for {self.list_size} "
                f"entries: expected false alerts {one_in(self.expected_fpir)} passers-by"
                + (" (extrapolated beyond the calibration)" if self.extrapolated else ""))


def one_in(fpir: float) -> str:
    """``1 per 1,234`` for a rate (what an operator reads)."""
    if fpir <= 0:
        return "fewer than 1 per 1,000,000"
    return f"1 per {max(1, round(1 / fpir)):,}"


@dataclass
class Calibration:
    """Lowest scores of simulated non-mated searches per list size, per rule (docs/eval.md)."""

    name: str
    source: str
    identities: int
    sizes: list[int]
    samples: dict[int, int]  # searches simulated per size
    low: dict[str, dict[int, list[list[float]]]] = field(default_factory=dict)  # rule -> size -> [[score, d1]]
    nearest_q90: dict[int, float] = field(default_factory=dict)  # 90th percentile of passers-by's nearest distance
    model: dict[str, Any] | None = None  # the face model whose distances these are (FaceModel.ref(); None: dlib)
    pairs: PairTail | None = None  # version 3: different-person photo pairs' tail (the distance rule's FPIR)

    @property
    def model_id(self) -> str:
        return face_model.of(self.model, f"calibration {self.name}").id

    def ratio_cap(self, n: int) -> float:
        """The ratio rule's own distance cap for a list of ``n``: nearer than 90 % of passers-by's nearest
        entry. It tightens as the list grows (more entries, nearer neighbours) and costs few listed
        people, whose own entry is nearer than that; beyond the calibrated sizes it follows the trend
        of the last two in log size."""
        sizes = [s for s in self.sizes if s in self.nearest_q90]
        if not sizes:
            return 2.0
        x, y = np.log(sizes), np.array([self.nearest_q90[s] for s in sizes])
        if n <= sizes[-1] or len(sizes) < 2:
            return float(np.interp(np.log(max(n, 1)), x, y))
        slope = min(0.0, (y[-1] - y[-2]) / (x[-1] - x[-2]))
        return float(y[-1] + slope * (np.log(n) - x[-1]))

    def fpir(self, rule: str, n: int, threshold: float, cap: float) -> tuple[float, bool]:
        """(expected FPIR, extrapolated) of ``rule`` at ``threshold``/``cap`` on a list of ``n`` entries."""
        n = max(1, int(n))
        sizes = self.sizes
        if rule == "distance" and self.pairs is not None:  # any entry within t: 1 - (1 - FMR)^n
            return self.pairs.fpir(n, min(threshold, cap)), n > sizes[-1]
        if n >= sizes[-1]:
            f = self._at(rule, sizes[-1], threshold, cap)
            if rule == "distance":  # every further entry is another chance: 1 - (1 - f)^(n / largest)
                f = 1.0 - (1.0 - f) ** (n / sizes[-1])
            # the ratio rule is held at the largest size: at a fixed ratio its FPIR falls slowly as the
            # list grows (nearest and second-nearest close up), so holding it over-states, never under-
            return f, n > sizes[-1]
        hi = next(i for i, s in enumerate(sizes) if s >= n)
        if sizes[hi] == n or hi == 0:
            return self._at(rule, sizes[hi], threshold, cap), False
        a, b = sizes[hi - 1], sizes[hi]
        w = (np.log(n) - np.log(a)) / (np.log(b) - np.log(a))  # FPIR is smooth in log list size
        return float((1 - w) * self._at(rule, a, threshold, cap) + w * self._at(rule, b, threshold, cap)), False

    def _at(self, rule: str, size: int, threshold: float, cap: float) -> float:
        low = np.asarray(self.low[rule][size], dtype=np.float64).reshape(-1, 2)
        n = self.samples[size]
        k = int(((low[:, 0] <= threshold) & (low[:, 1] <= cap)).sum())
        s = np.sort(low[low[:, 1] <= cap, 0])
        fitted = len(s) >= 2 * FIT_BELOW  # a tail long enough to fit (10,000 searches a size and more)
        if k >= (FIT_BELOW if fitted else TAIL_FIT):
            return k / n
        ranks = np.arange(1, len(s) + 1) / n
        if fitted:
            # the sparse lower tail is estimated, not counted: a target of 1 in 1,000 sits at the calibration's
            # two or three closest look-alike pairs (each repeated in every simulated list that holds it), an
            # extreme that the next people searched do not share. log FPIR is near linear in the score over the
            # kept tail: fitted on its ranks TAIL_FIT.. (on lfw-dev FPIR 1 in 1,000 to 2 in 100), read at the
            # threshold (docs/eval.md: held out, 27 % missed at 1,000 entries instead of 34 %, FPIR held)
            slope, icpt = np.polyfit(s[TAIL_FIT:], np.log(ranks[TAIL_FIT:]), 1)
            return float(min(1.0, np.exp(icpt + slope * threshold))) if slope > 0 else k / n
        # a short tail: P(score <= t) ~ c t^a (the nearest of many far points), fitted on the ranks 5..100
        # under the cap (the very lowest few are single look-alike pairs, not a trend)
        s = s[:100]
        if len(s) < 20 or threshold <= 0:
            return k / n
        a, logc = np.polyfit(np.log(np.maximum(s[4:], 1e-6)), np.log(ranks[4:len(s)]), 1)
        return float(max(k / n if k > 4 else 0.0, min(TAIL_FIT / n, np.exp(logc) * threshold ** max(a, 1.0))))

    def threshold_for(self, rule: str, n: int, target: float, cap: float) -> tuple[float, float, bool]:
        """(the most lenient threshold whose expected FPIR is within ``target``, that FPIR, extrapolated)."""
        cands = sorted({round(float(s), 5) for size in self.sizes for s, d in self.low[rule][size] if d <= cap})
        lo, hi = 0.0, (cands[-1] if cands else cap)
        best = 0.0
        for _ in range(40):  # FPIR only grows with the threshold: bisect
            mid = (lo + hi) / 2
            if self.fpir(rule, n, mid, cap)[0] <= target:
                best, lo = mid, mid
            else:
                hi = mid
        f, extra = self.fpir(rule, n, best, cap)
        return best, f, extra

    def to_json(self) -> dict[str, Any]:
        return {"format": CAL_FORMAT, "version": CAL_VERSION, "name": self.name, "source": self.source,
                "model": self.model or face_model.get(face_model.DLIB).ref(),
                "identities": self.identities, "sizes": self.sizes,
                "nearest_q90": {str(k): round(v, 4) for k, v in self.nearest_q90.items()},
                "samples": {str(k): v for k, v in self.samples.items()},
                "low": {r: {str(k): v for k, v in by.items()}
                        for r, by in self.low.items()},
                **({"pairs": self.pairs.to_json()} if self.pairs is not None else {})}

    @classmethod
    def from_json(cls, d: object) -> Calibration:
        if not isinstance(d, dict) or d.get("format") != CAL_FORMAT:
            raise EdgeError("not an edge calibration file (make one with 'edge eval --calibrate')")
        if d.get("version") not in CAL_READS:
            raise EdgeError(f"unsupported calibration version {d.get('version')} (this box reads versions "
                            f"{', '.join(map(str, CAL_READS))})")
        if d["version"] >= 2 and not isinstance(d.get("model"), dict):
            raise EdgeError(f"the calibration file does not name its face model (version {d['version']} must)")
        if d["version"] >= 3 and not isinstance(d.get("pairs"), dict):
            raise EdgeError("the calibration file has no photo pairs' tail (version 3 must)")
        model = d.get("model") if d["version"] >= 2 else None
        face_model.of(model, "the calibration file")  # a model this box has, with these weights
        try:
            sizes = sorted(int(s) for s in d["sizes"])
            return cls(name=str(d["name"]), source=str(d["source"]), identities=int(d["identities"]),
                       sizes=sizes, samples={int(k): int(v) for k, v in d["samples"].items()},
                       low={r: {int(k): v for k, v in by.items()} for r, by in d["low"].items()},
                       nearest_q90={int(k): float(v) for k, v in d.get("nearest_q90", {}).items()}, model=model,
                       pairs=PairTail.from_json(d["pairs"]) if d["version"] >= 3 else None)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise EdgeError("the calibration file is damaged (a field is missing or of the wrong type)") from None


def load_calibration(path: str | Path | None = None, model_id: str = face_model.DLIB) -> Calibration:
    """A calibration file, or the one that ships with the box for face model ``model_id`` when ``path`` is
    empty (read once per file version: every list load asks for it). A calibration of another model than
    the one matching is refused in one sentence: its distances mean nothing to it."""
    m = face_model.get(model_id)
    where = Path(path) if path else Path(str(resources.files("edge.watchlist").joinpath(m.calibration)))
    try:
        st = where.stat()
    except OSError as exc:
        if not path:
            raise EdgeError(f"no calibration ships for face model {m.id}: name one (match.calibration, "
                            "--calibration) made with 'edge eval --calibrate'") from None
        raise EdgeError(f"cannot read calibration file {path}: {exc.strerror}") from None
    cal = _read_calibration(str(where), st.st_mtime_ns, st.st_size)
    if cal.model_id != m.id:
        raise EdgeError(f"calibration {cal.name} was made with face model {cal.model_id}, not {m.id} (the model "
                        "matching): its distances do not apply")
    return cal


@functools.lru_cache(maxsize=4)
def _read_calibration(path: str, _mtime_ns: int, _size: int) -> Calibration:
    try:
        return Calibration.from_json(json.loads(Path(path).read_text()))
    except OSError as exc:
        raise EdgeError(f"cannot read calibration file {path}: {exc.strerror}") from None
    except ValueError:
        raise EdgeError(f"calibration file {path} is not valid JSON") from None


def adopted_rule(model_id: str) -> str:
    """The decision rule a face model's lists are matched by when nothing names another."""
    return ADOPTED_RULE.get(model_id, DEFAULT_RULE)


def derive(cal: Calibration, n: int, target: float, cap: float, rule: str | None = None,
           own: tuple[np.ndarray, np.ndarray] | None = None) -> OperatingPoint:
    """The operating point for a list of ``n`` entries that meets ``target`` FPIR.

    ``own``: (d1, d2) of the list's own entries searched against the rest of the list (build time:
    N different-person searches of this list's population). Their FPIR is pooled with the
    calibration's, weighted by the number of searches, so a list of unusually alike faces is
    held to the target too. ``rule`` None: the calibration's model's adopted rule.
    """
    rule = rule or adopted_rule(cal.model_id)
    if rule not in RULES:
        raise EdgeError(f"unknown decision rule {rule!r} (use one of: {', '.join(RULES)})")
    if not 0.0 < target <= MAX_TARGET:
        raise EdgeError(f"target false-alert rate {target} must be more than 0 and at most {MAX_TARGET}")
    if rule == "ratio":
        cap = min(cap, cal.ratio_cap(n))
    thr, f, extra = cal.threshold_for(rule, n, target, cap)
    if own is not None and len(own[0]) >= 2:
        d1, d2 = own
        m = len(d1)
        w_cal = cal.samples[min(cal.sizes, key=lambda s: abs(np.log(s) - np.log(max(n, 1))))]

        def pooled(t: float) -> float:
            return (w_cal * cal.fpir(rule, n, t, cap)[0]
                    + np.count_nonzero((d1 <= cap) & (scores(d1, d2, rule) <= t))) / (w_cal + m)

        while thr > 0 and pooled(thr) > target:
            thr *= 0.995
        f = pooled(thr)
    return OperatingPoint(rule, float(thr), float(cap), int(n), float(target), float(f), cal.name, extra)


# -- making a calibration (edge eval --calibrate) ---------------------------------------------------

CAL_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
MIN_CAL_PEOPLE = 50  # fewer say nothing about a tail of 1 in 1,000
KEEP_SHARE = MAX_TARGET  # the lowest 2 % of each size's scores are kept


def calibrate(desc: np.ndarray, labels: np.ndarray, name: str, source: str, seed: int = 0,
              reps: int = 20, sizes: Sequence[int] = CAL_SIZES, model_id: str = face_model.DLIB,
              templates: np.ndarray | None = None) -> Calibration:
    """Simulate non-mated searches: each identity's face against ``reps`` random lists of others.

    ``templates``: the same faces as the lists hold them, when references are made differently from what a
    camera searches with (a model's references averaged with their mirror image); else ``desc``.

    Two people's faces nearer than the model's ``same_face`` distance (the one face re-saved: enrol warns of
    it) are one photo filed under two names, not a passer-by and an entry: such a pair is left out of every
    search (one such pair, in every repetition that lists it, would otherwise set the tail)."""
    rng = np.random.default_rng(seed)
    idents = np.unique(labels)
    if len(idents) < MIN_CAL_PEOPLE:
        raise EdgeError(f"a calibration needs faces of at least {MIN_CAL_PEOPLE} different people "
                        f"(this data set has {len(idents)} with a usable face)")
    one = np.array([rng.choice(np.flatnonzero(labels == i)) for i in idents])
    p = np.asarray(desc, np.float64)[one]
    dm = distances(p, p if templates is None else np.asarray(templates, np.float64)[one])
    m = len(p)
    same = dm < face_model.get(model_id).same_face
    same[np.arange(m), np.arange(m)] = False
    dm[same] = np.inf
    rows = np.arange(m)[:, None]
    # a random list holds at most half of the people: larger ones would be nearly the same list every time; a
    # larger size asked for is simulated at half (extrapolating from there, not from the size below it)
    usable = [s for s in sizes if s <= m // 2]
    if len(usable) < len(sizes) and (not usable or usable[-1] < m // 2):
        usable.append(max(1, m // 2))
    samples: dict[int, int] = {}
    low: dict[str, dict[int, list[list[float]]]] = {r: {} for r in RULES}
    q90: dict[int, float] = {}
    for size in usable:
        d1s, d2s = [], []
        for _ in range(reps):
            keys = rng.random((m, m))
            keys[np.arange(m), np.arange(m)] = 2.0  # never the probe's own face
            pick = np.argpartition(keys, size - 1, axis=1)[:, :size] if size < m else None
            d = dm[rows, pick]
            if size == 1:
                d1s.append(d[:, 0])
                d2s.append(np.full(m, np.inf))
                continue
            two = np.partition(d, 1, axis=1)[:, :2]
            d1s.append(two[:, 0])
            d2s.append(two[:, 1])
        d1, d2 = np.concatenate(d1s), np.concatenate(d2s)
        samples[size] = len(d1)
        q90[size] = float(np.quantile(d1, 0.9))
        keep = max(TAIL_FIT * 2, int(KEEP_SHARE * len(d1)))
        for rule in RULES:
            s = scores(d1, d2, rule)
            order = np.argsort(s)[:keep]
            low[rule][size] = [[round(float(s[i]), 4), round(float(d1[i]), 4)] for i in order]
    tail = pair_tail(desc, labels, face_model.get(model_id).same_face, templates)
    return Calibration(name, source, m, usable, samples, low, q90, face_model.get(model_id).ref(), tail)


def pair_tail(desc: np.ndarray, labels: np.ndarray, same_face: float, templates: np.ndarray | None = None,
              keep: int = pairtail.KEEP) -> PairTail:
    """Every photo against every photo of another person (as ``templates`` holds it, when the list's references
    are made otherwise): the number of pairs and the lowest ``keep`` distances (pairtail). Pairs nearer than
    ``same_face`` (one photo filed under two names) are left out, as in the simulated searches."""
    p = np.asarray(desc, np.float64)
    t = p if templates is None else np.asarray(templates, np.float64)
    labels = np.asarray(labels)
    pairs, best = 0, np.zeros(0)
    for s in range(0, len(p), 512):
        rows = np.arange(s, min(s + 512, len(p)))
        d = distances(p[rows], t)
        ok = (labels[rows][:, None] != labels[None, :]) & (d >= same_face)
        if templates is None:
            ok &= np.arange(len(t))[None, :] > rows[:, None]  # each pair once
        v = d[ok]
        pairs += len(v)
        best = np.concatenate([best, v if len(v) <= keep else np.partition(v, keep)[:keep]])
        if len(best) > keep:
            best = np.partition(best, keep)[:keep]
    return PairTail(pairs, tuple(float(x) for x in np.sort(best)))


def own_searches(templates: np.ndarray, owners: np.ndarray, limit: int = 5000,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Entries' first templates searched against the rest of the list: (d1, d2) per searched entry.

    At most ``limit`` entries are searched (a seeded sample), so a 100,000-entry list stays quick.
    """
    t = np.asarray(templates, np.float64)
    t = t.reshape(len(t), -1)
    owners = np.asarray(owners, dtype=np.int64)
    firsts = np.unique(owners, return_index=True)[1]
    if len(firsts) < 3:
        return np.zeros(0), np.zeros(0)
    if len(firsts) > limit:
        firsts = np.sort(np.random.default_rng(seed).choice(firsts, size=limit, replace=False))
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])  # rows of one entry are contiguous
    d1s, d2s = [], []
    for s in range(0, len(firsts), 512):
        rows = firsts[s:s + 512]
        d = distances(t[rows], t)
        d[owners[rows][:, None] == owners[None, :]] = np.inf  # not its own entry
        per = d if len(starts) == len(owners) else np.minimum.reduceat(d, starts, axis=1)
        two = np.partition(per, 1, axis=1)[:, :2]
        d1s.append(two[:, 0])
        d2s.append(two[:, 1])
    return np.concatenate(d1s), np.concatenate(d2s)


# -- the box: the operating point of a list it loads -------------------------------------------------

def for_list(cal: Calibration, n: int, cap: float, target: float, rule: str | None = None,
             signed: dict[str, Any] | None = None) -> tuple[OperatingPoint, str]:
    """(the operating point the box matches this list at, "" or the one sentence it is refused for).

    ``target`` is the stricter of the box's ``match.target_fpir`` and the list's signed
    ``policy.target_fpir``. A list that carries a signed operating point is matched at it (capped by
    the box's distance cap), after the box re-checks it with its own calibration: one expected to
    alert on more passers-by than the target is refused. A list without one (version 1, a folder)
    gets a point derived here for its size.
    """
    if signed is None:
        return derive(cal, n, target, cap, rule), ""
    try:
        op = OperatingPoint.from_json(signed)
        if op.rule not in RULES or not 0.0 < op.threshold < 10.0:
            raise ValueError
    except (KeyError, TypeError, ValueError):
        return derive(cal, n, target, cap, rule), "its signed operating point is not one this box understands"
    op = OperatingPoint(op.rule, op.threshold, min(op.cap, cap), n, target, 0.0, cal.name)
    f, extra = cal.fpir(op.rule, n, op.threshold, op.cap)
    op = OperatingPoint(op.rule, op.threshold, op.cap, n, target, f, cal.name, extra)
    if f > target * 1.001:
        return op, (f"at its operating point ({op.rule} rule at {op.threshold:.3f}) this list of {n} entries is "
                    f"expected to alert on {one_in(f)} passers-by, more than its policy of {one_in(target)}: "
                    "rebuild it with 'enrol build' (which derives the threshold for the list's size)")
    return op, ""
