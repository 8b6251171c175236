"""Open-set accuracy at watch-list sizes: ``edge eval --list-sizes`` and ``make bench`` (bench.accuracy).

Each split halves the *people* at random: half A calibrates (``operating.calibrate``, as
``edge eval --calibrate`` does), half B is searched, so every figure is measured on people the
calibration never saw. On half B a list of N entries holds listed people (``refs`` reference photos
each; their other photos are the mated searches) and, to reach N, people with a single photo as extra
entries; everyone else in half B walks past (non-mated searches). With ``fuse`` > 1 a search is the
mean of that many photos of one person (a track's best views fused into one descriptor).

Per size and rule: FNIR at FPIR 1 % and 0.1 % (the DET points, threshold set on the split itself),
the DET curve, and the operating point the calibration derives for the target, with the FPIR and
FNIR it gives on half B.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.face import model as face_model
from edge.watchlist import operating

LEVELS = (0.01, 0.001)
RULE_NAMES = {"ratio": "ratio d1/d2", "distance": "plain nearest distance"}
DET_FPIR = np.logspace(-3, -0.3, 28)  # FPIR points of the DET curve per size


@dataclass
class Searched:
    entry: np.ndarray  # identity of the nearest entry
    d1: np.ndarray
    d2: np.ndarray


def search(probes: np.ndarray, templates: np.ndarray, owners: np.ndarray) -> Searched:
    """Nearest and second-nearest *entry* (an entry's distance: its nearest template), as the box does."""
    order = np.argsort(owners, kind="stable")
    owners = np.asarray(owners)[order]
    d = operating.distances(probes, np.asarray(templates)[order])
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    ids = owners[starts]
    per = d if len(starts) == len(owners) else np.minimum.reduceat(d, starts, axis=1)  # per-entry minimum
    if per.shape[1] == 1:
        return Searched(ids[per.argmin(1)], per[:, 0], np.full(len(probes), np.inf))
    two = np.argpartition(per, 1, axis=1)[:, :2]
    v = np.take_along_axis(per, two, 1)
    order = np.argsort(v, axis=1)
    two, v = np.take_along_axis(two, order, 1), np.take_along_axis(v, order, 1)
    return Searched(ids[two[:, 0]], v[:, 0], v[:, 1])


def _tracks(desc, groups) -> list[np.ndarray]:
    """Each group of rows is one track's views in order; the descriptors the box decides on are the fused
    running means of its views (operating.fused, as edge.pipeline.fusion: the first view alone, then the first
    two fused, ...)."""
    out = []
    for g in groups:
        v = desc[g].astype(np.float64)
        out.append(operating.fused(np.cumsum(v, axis=0), np.arange(1, len(g) + 1),
                                   np.cumsum(np.linalg.norm(v, axis=1))))
    return out


_calibrations: dict[tuple, operating.Calibration] = {}


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _half_a(desc, ref_desc, labels, a: np.ndarray, seed: int, reps: int, model_id: str) -> operating.Calibration:
    """Half A's calibration (the same half for every list size and option of a split: made once per process,
    keyed by what it is made of)."""
    key = (_digest(desc), _digest(ref_desc), _digest(labels), a.tobytes(), seed, reps, model_id)
    if key not in _calibrations:
        if len(_calibrations) >= 64:
            _calibrations.clear()
        keep = np.isin(labels, a)
        if len(np.unique(labels[keep])) >= operating.MIN_CAL_PEOPLE:
            _calibrations[key] = operating.calibrate(desc[keep], labels[keep], f"half-A-{seed}", "held-out half",
                                                     seed=seed, reps=reps, model_id=model_id, templates=ref_desc[keep])
        else:  # too few people to calibrate on: the box's own calibration (then half A is simply unused)
            _calibrations[key] = operating.load_calibration(model_id=model_id)
    return _calibrations[key]


def run_split(desc, labels, n: int, seed: int, target: float, cap: float, refs: int = 1, fuse: int = 1,
              reps: int = 20, min_photos: int = 2, ref_desc=None,
              rules: tuple[str, ...] = operating.RULES, model_id: str = face_model.DLIB) -> dict:
    """One split; listed people need ``min_photos`` (at least refs + fuse) photos, so that options can be
    compared on the same people. A search is a track of ``fuse`` photos of one person, decided as the box
    decides: on each running mean of its views, found (or alerting) if any decision is a hit. Reference
    templates come from ``ref_desc`` (e.g. mirrored and averaged) when given."""
    rng = np.random.default_rng(seed)
    ref_desc = desc if ref_desc is None else ref_desc
    ids, counts = np.unique(labels, return_counts=True)
    need = max(min_photos, refs + max(1, fuse))
    multi, single = rng.permutation(ids[counts >= need]), rng.permutation(ids[counts == 1])
    a = np.concatenate([multi[0::2], single[0::2], ids[(counts > 1) & (counts < need)]])
    multi, single = multi[1::2], single[1::2]
    k = min(len(multi) // 2, max(1, n // 2))
    fill = max(0, n - k - len(single))  # few single-photo people: other people fill the list
    if k < 1 or k + fill >= len(multi):
        raise EdgeError(f"not enough people for a list of {n} (half of the data set is held out for calibration)")
    extra = np.concatenate([single[: n - k - fill], multi[k:k + fill]])
    walkers = np.concatenate([multi[k + fill:], single[n - k - fill:]])
    gallery, owner, mated = [], [], []
    for i in multi[:k]:
        rows = rng.permutation(np.flatnonzero(labels == i))
        gallery += list(rows[:refs])
        owner += [i] * refs
        rest = rows[refs:]
        mated += [rest[:fuse]] if fuse > 1 else [np.array([r]) for r in rest]
    for i in extra:
        gallery.append(np.flatnonzero(labels == i)[0])
        owner.append(i)
    non_mated = ([rng.permutation(np.flatnonzero(labels == i))[:fuse] for i in walkers] if fuse > 1
                 else [np.array([r]) for r in np.flatnonzero(np.isin(labels, walkers))])
    gallery_rows, owners = np.array(gallery), np.array(owner)
    cal = _half_a(desc, ref_desc, labels, np.sort(a), seed, reps, model_id)
    truth = np.array([labels[g[0]] for g in mated])
    views = [len(g) for g in mated], [len(g) for g in non_mated]
    ms = search(np.concatenate(_tracks(desc, mated)), ref_desc[gallery_rows], owners)
    ns = search(np.concatenate(_tracks(desc, non_mated)), ref_desc[gallery_rows], owners)
    m_track = np.repeat(np.arange(len(mated)), views[0])
    n_track = np.repeat(np.arange(len(non_mated)), views[1])
    correct = ms.entry == np.repeat(truth, views[0])
    out: dict[str, Any] = {"n": n, "mated": len(truth), "non_mated": len(non_mated), "calibration": cal.name,
                           "rules": {}}
    for rule in rules:
        # a track's best decision: the lowest score of its views (for a listed person, of those naming them)
        m_sc = np.full(len(mated), np.inf)
        np.minimum.at(m_sc, m_track, np.where(correct & (ms.d1 <= cap), operating.scores(ms.d1, ms.d2, rule), np.inf))
        n_sc = np.full(len(non_mated), np.inf)
        np.minimum.at(n_sc, n_track, np.where(ns.d1 <= cap, operating.scores(ns.d1, ns.d2, rule), np.inf))

        def at(f, m_sc=m_sc, n_sc=n_sc):  # FNIR where FPIR is f on this split
            return 1.0 - float((m_sc <= np.quantile(n_sc, f, method="lower")).mean())

        op = operating.derive(cal, n, target, cap, rule)
        found, alerted = np.zeros(len(mated), bool), np.zeros(len(non_mated), bool)
        np.logical_or.at(found, m_track, correct & op.hits(ms.d1, ms.d2))
        np.logical_or.at(alerted, n_track, op.hits(ns.d1, ns.d2))
        out["rules"][rule] = {
            "fnir_at": {str(f): at(f) for f in LEVELS},
            "det": [[float(f), at(f)] for f in DET_FPIR],
            "threshold": op.threshold, "cap": op.cap, "expected_fpir": op.expected_fpir,
            "fpir": float(alerted.mean()), "fnir": 1.0 - float(found.mean()),
        }
    return out


def evaluate(desc, labels, sizes, splits: int, seed: int, target: float, cap: float, refs: int = 1,
             fuse: int = 1, min_photos: int = 2, ref_desc=None,
             rules: tuple[str, ...] = operating.RULES, model_id: str = face_model.DLIB) -> dict:
    """Every size over ``splits`` random splits -> {"sizes": {n: {rule: {figure: spread}}}, ...} (JSON-able)."""
    from edge.eval.metrics import spread

    out: dict[str, Any] = {"target_fpir": target, "cap": cap, "refs": refs, "fuse": fuse, "splits": splits,
                           "min_photos": min_photos, "model": model_id,
                           "adopted_rule": operating.adopted_rule(model_id), "sizes": {}}
    for n in sizes:
        runs = [run_split(desc, labels, n, seed + s, target, cap, refs, fuse, min_photos=min_photos,
                          ref_desc=ref_desc, rules=rules, model_id=model_id)
                for s in range(splits)]
        size = {"mated": runs[0]["mated"], "non_mated": runs[0]["non_mated"], "rules": {},
                "calibration": runs[0]["calibration"]}
        for rule in rules:
            rs = [r["rules"][rule] for r in runs]
            size["rules"][rule] = {
                **{f"fnir_at_fpir_{f}": spread([r["fnir_at"][str(f)] for r in rs]) for f in LEVELS},
                **{k: spread([r[k] for r in rs]) for k in ("fpir", "fnir", "expected_fpir", "threshold", "cap")},
                "det": np.mean([r["det"] for r in rs], axis=0).round(4).tolist(),
            }
        out["sizes"][str(n)] = size
    return out


def pct(s: dict) -> str:
    return "n/a" if s["mean"] is None else f"{100 * s['mean']:.1f} % ± {100 * s['sd']:.1f}"


def format_table(rep: dict) -> str:
    lines = []
    for n, size in rep["sizes"].items():
        lines += [f"{rep['model']}, list of {n} entries ({size['mated']} mated / {size['non_mated']} non-mated "
                  "searches per split; "
                  f"refs {rep['refs']}, fuse {rep['fuse']}, listed people with {rep['min_photos']}+ photos; "
                  f"mean ± sd over {rep['splits']} splits; "
                  f"calibration {size['calibration']})", "",
                  "| rule | FNIR at FPIR 1 % | FNIR at FPIR 0.1 % | "
                  f"at the target {operating.one_in(rep['target_fpir'])}: FPIR measured | expected | FNIR | "
                  "threshold | distance cap |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for rule, r in size["rules"].items():
            name = RULE_NAMES[rule] + (" (adopted)" if rule == rep["adopted_rule"] else "")
            lines.append(f"| {name} | {pct(r['fnir_at_fpir_0.01'])} | {pct(r['fnir_at_fpir_0.001'])} | "
                         f"{pct(r['fpir'])} | {pct(r['expected_fpir'])} | {pct(r['fnir'])} | "
                         f"{r['threshold']['mean']:.3f} | {r['cap']['mean']:.3f} |")
        lines.append("")
    return "\n".join(lines)
