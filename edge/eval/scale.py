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

from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import EdgeError
from edge.watchlist import operating

LEVELS = (0.01, 0.001)
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


def _probe(desc, rows, fuse, rng):
    """One search per row: the row's own descriptor, or the mean of ``fuse`` photos of the same person."""
    return desc[rows] if fuse <= 1 else np.stack([desc[rng.choice(g, size=min(fuse, len(g)), replace=False)].mean(0)
                                                  for g in rows])


def run_split(desc, labels, n: int, seed: int, target: float, cap: float, refs: int = 1, fuse: int = 1,
              reps: int = 10, min_photos: int = 2) -> dict:
    """One split; listed people need ``min_photos`` (at least refs + fuse) photos, so that options can be
    compared on the same people."""
    rng = np.random.default_rng(seed)
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
        mated += [rest] if fuse > 1 else [np.array([r]) for r in rest]
    for i in extra:
        gallery.append(np.flatnonzero(labels == i)[0])
        owner.append(i)
    non_mated = ([np.flatnonzero(labels == i) for i in walkers] if fuse > 1
                 else [np.array([r]) for r in np.flatnonzero(np.isin(labels, walkers))])
    gallery_rows, owners = np.array(gallery), np.array(owner)
    keep = np.isin(labels, a)
    if len(np.unique(labels[keep])) >= operating.MIN_CAL_PEOPLE:
        cal = operating.calibrate(desc[keep], labels[keep], f"half-A-{seed}", "held-out half", seed=seed, reps=reps)
    else:  # too few people to calibrate on: the box's own calibration (then half A is simply unused)
        cal = operating.load_calibration()
    m_rows = [g[:1] if fuse <= 1 else g for g in mated]
    n_rows = [g[:1] if fuse <= 1 else g for g in non_mated]
    mp = _probe(desc, [g[0] for g in m_rows] if fuse <= 1 else m_rows, fuse, rng)
    np_ = _probe(desc, [g[0] for g in n_rows] if fuse <= 1 else n_rows, fuse, rng)
    truth = np.array([labels[g[0]] for g in m_rows])
    ms, ns = search(mp, desc[gallery_rows], owners), search(np_, desc[gallery_rows], owners)
    correct = ms.entry == truth
    out: dict[str, Any] = {"n": n, "mated": len(truth), "non_mated": len(np_), "calibration": cal.name, "rules": {}}
    for rule in operating.RULES:
        m_sc = np.where(ms.d1 <= cap, operating.scores(ms.d1, ms.d2, rule), np.inf)
        n_sc = np.where(ns.d1 <= cap, operating.scores(ns.d1, ns.d2, rule), np.inf)
        def at(f, m_sc=m_sc, n_sc=n_sc):  # FNIR where FPIR is f on this split
            return 1.0 - float((correct & (m_sc <= np.quantile(n_sc, f, method="lower"))).mean())

        op = operating.derive(cal, n, target, cap, rule)
        out["rules"][rule] = {
            "fnir_at": {str(f): at(f) for f in LEVELS},
            "det": [[float(f), at(f)] for f in DET_FPIR],
            "threshold": op.threshold, "cap": op.cap, "expected_fpir": op.expected_fpir,
            "fpir": float(op.hits(ns.d1, ns.d2).mean()),
            "fnir": 1.0 - float((correct & op.hits(ms.d1, ms.d2)).mean()),
        }
    return out


def evaluate(desc, labels, sizes, splits: int, seed: int, target: float, cap: float, refs: int = 1,
             fuse: int = 1, min_photos: int = 2) -> dict:
    """Every size over ``splits`` random splits -> {"sizes": {n: {rule: {figure: spread}}}, ...} (JSON-able)."""
    from edge.eval.metrics import spread

    out: dict[str, Any] = {"target_fpir": target, "cap": cap, "refs": refs, "fuse": fuse, "splits": splits,
                           "min_photos": min_photos, "adopted_rule": operating.DEFAULT_RULE, "sizes": {}}
    for n in sizes:
        runs = [run_split(desc, labels, n, seed + s, target, cap, refs, fuse, min_photos=min_photos)
                for s in range(splits)]
        size = {"mated": runs[0]["mated"], "non_mated": runs[0]["non_mated"], "rules": {},
                "calibration": runs[0]["calibration"]}
        for rule in operating.RULES:
            rs = [r["rules"][rule] for r in runs]
            size["rules"][rule] = {
                **{f"fnir_at_fpir_{f}": spread([r["fnir_at"][str(f)] for r in rs]) for f in LEVELS},
                **{k: spread([r[k] for r in rs]) for k in ("fpir", "fnir", "expected_fpir", "threshold", "cap")},
                "det": np.mean([r["det"] for r in rs], axis=0).round(4).tolist(),
            }
        out["sizes"][str(n)] = size
    return out


def _pct(s: dict) -> str:
    return "n/a" if s["mean"] is None else f"{100 * s['mean']:.1f} % ± {100 * s['sd']:.1f}"


def format_table(rep: dict) -> str:
    lines = []
    for n, size in rep["sizes"].items():
        lines += [f"list of {n} entries ({size['mated']} mated / {size['non_mated']} non-mated searches per split; "
                  f"refs {rep['refs']}, fuse {rep['fuse']}, listed people with {rep['min_photos']}+ photos; "
                  f"mean ± sd over {rep['splits']} splits; "
                  f"calibration {size['calibration']})", "",
                  "| rule | FNIR at FPIR 1 % | FNIR at FPIR 0.1 % | "
                  f"at the target {operating.one_in(rep['target_fpir'])}: FPIR measured | expected | FNIR | "
                  "threshold | distance cap |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for rule, r in size["rules"].items():
            name = "ratio d1/d2 (adopted)" if rule == rep["adopted_rule"] else "plain nearest distance"
            lines.append(f"| {name} | {_pct(r['fnir_at_fpir_0.01'])} | {_pct(r['fnir_at_fpir_0.001'])} | "
                         f"{_pct(r['fpir'])} | {_pct(r['expected_fpir'])} | {_pct(r['fnir'])} | "
                         f"{r['threshold']['mean']:.3f} | {r['cap']['mean']:.3f} |")
        lines.append("")
    return "\n".join(lines)
