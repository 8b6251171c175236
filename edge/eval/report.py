"""The evaluation report: one JSON-able dict (``--json``, format ``edge-eval/1``) and its text table.

Every key is described in docs/eval.md. The dict holds only plain numbers, strings and lists, rounded
to 4 decimals, with no times or absolute paths: the same data, settings and seed give the same JSON.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from edge.eval import metrics
from edge.eval.dataset import NO_GROUP, Dataset
from edge.eval.encode import Encoded

FORMAT = "edge-eval/1"
TABLE_THRESHOLDS = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70)


@dataclass
class Settings:
    threshold: float = 0.6  # the operating threshold (match.threshold)
    threshold_floor: float = 0.6  # the box refuses a more lenient one (match.threshold_floor)
    splits: int = 10
    seed: int = 0
    enrol_share: float = 0.5
    refs: int = 1
    max_fpir: float | None = None  # --recommend target
    encoder: str = "auto"
    detect: dict | None = None
    quality: dict | None = None


def build(ds: Dataset, enc: Encoded, s: Settings) -> dict:
    desc, labels = enc.descriptors, enc.labels
    splits = metrics.make_splits(labels, s.splits, s.enrol_share, s.refs, s.seed)
    searches = [metrics.search(desc, labels, sp) for sp in splits]
    grid = np.union1d(metrics.THRESHOLDS, [round(s.threshold, 4)])
    at = int(np.searchsorted(grid, round(s.threshold, 4)))
    fnir = np.stack([x.fnir(grid) for x in searches])
    fpir = np.stack([x.fpir(grid) for x in searches])
    mated, non_mated = np.array([x.counts() for x in searches]).T
    pairs = metrics.pairs(desc, labels, s.seed)
    fnmr, fmr = metrics.fnmr_fmr(pairs, grid)
    eer, eer_t = metrics.eer(pairs)
    return {
        "format": FORMAT,
        "dataset": ds.root.as_posix(),
        "settings": asdict(s),
        "images": {
            "identities": len(ds.identities),
            "total": len(ds.images),
            "usable": len(enc.paths),
            "unusable": [{"path": p, "reason": r} for p, r in enc.unusable],
            "several_faces": enc.several_faces,
        },
        "identification": {
            "enrolled_identities": len(splits[0].enrolled),
            "identities": int(len(np.unique(labels))),
            "mated_searches_per_split": metrics.spread(mated),
            "non_mated_searches_per_split": metrics.spread(non_mated),
            "fpir_resolution": _r(1.0 / non_mated.min()),
            "at_threshold": {"threshold": s.threshold, "fnir": metrics.spread(fnir[:, at]),
                             "fpir": metrics.spread(fpir[:, at])},
            "rank1": metrics.spread([x.rank1() for x in searches]),
            "curve": {
                "thresholds": _list(grid),
                "fnir_mean": _list(fnir.mean(0)), "fnir_sd": _list(fnir.std(0)),
                "fpir_mean": _list(fpir.mean(0)), "fpir_sd": _list(fpir.std(0)),
                "fnir_by_split": [_list(row) for row in fnir],
                "fpir_by_split": [_list(row) for row in fpir],
            },
        },
        "verification": {
            "genuine_pairs": int(pairs.genuine.sum()),
            "impostor_pairs": int((~pairs.genuine).sum()),
            "impostor_pairs_sampled": pairs.sampled,
            "eer": _r(eer), "eer_threshold": _r(eer_t),
            "at_threshold": {"threshold": s.threshold, "fnmr": _r(fnmr[at]), "fmr": _r(fmr[at])},
            "roc": {"thresholds": _list(grid), "fmr": _list(fmr), "tmr": _list(1.0 - fnmr)},
        },
        "groups": _groups(ds, enc, searches, pairs, s.threshold),
        "recommendation": (_recommend(grid, fnir, fpir, non_mated.min(), s.max_fpir, s.threshold_floor)
                           if s.max_fpir is not None else None),
    }


def _groups(ds: Dataset, enc: Encoded, searches, pairs: metrics.Pairs, t: float) -> list[dict]:
    if not ds.groups:
        return []
    by_group: dict[str, list[int]] = {}
    for i, name in enumerate(ds.identities):
        by_group.setdefault(ds.group_of(name), []).append(i)
    group_of_row = np.array([ds.group_of(ds.identities[x]) for x in enc.labels])
    rows = []
    for g in sorted(by_group, key=lambda g: (g == NO_GROUP, g)):
        idents = by_group[g]
        within = (group_of_row[pairs.i] == g) & (group_of_row[pairs.j] == g)
        fnmr, fmr = metrics.fnmr_fmr(pairs, t, within)
        counts = np.array([x.counts(idents) for x in searches])
        rows.append({
            "group": g,
            "identities": len(idents),
            "images": int(np.isin(enc.labels, idents).sum()),
            "unusable": sum(1 for p, _ in enc.unusable if ds.group_of(p.split("/", 1)[0]) == g),
            "mated_searches": int(counts[:, 0].sum()),
            "non_mated_searches": int(counts[:, 1].sum()),
            "fnir": metrics.spread([x.fnir(t, idents) for x in searches]),
            "fpir": metrics.spread([x.fpir(t, idents) for x in searches]),
            "genuine_pairs": int((within & pairs.genuine).sum()),
            "impostor_pairs": int((within & ~pairs.genuine).sum()),
            "fnmr": _r(fnmr), "fmr": _r(fmr),
        })
    return rows


def _recommend(grid, fnir, fpir, min_non_mated: int, max_fpir: float, floor: float) -> dict:
    thr = metrics.recommend(grid, fpir, max_fpir)
    need = math.ceil(3.0 / max_fpir)  # rule of three: 0 alerts in n searches bounds FPIR by 3/n (95 %)
    k = None if thr is None else int(np.searchsorted(grid, thr))
    return {
        "max_fpir": max_fpir,
        "threshold": thr,
        "fnir": None if k is None else metrics.spread(fnir[:, k]),
        "fpir": None if k is None else metrics.spread(fpir[:, k]),
        "non_mated_searches_needed": need,
        "demonstrable": bool(min_non_mated >= need),
        "threshold_floor": floor,
        "above_floor": bool(thr is not None and thr > floor),
    }


def _r(x) -> float | None:
    return None if x is None or np.isnan(x) else round(float(x), 4)


def _list(a) -> list:
    return [_r(x) for x in np.asarray(a, dtype=np.float64)]


# -- the terminal table -------------------------------------------------------------------------

def _pm(sp: dict | None) -> str:
    if not sp or sp["mean"] is None:
        return "n/a"
    return f"{sp['mean']:.4f} ± {sp['sd']:.4f}"


def format_text(rep: dict) -> str:
    st, im, idn, ver = rep["settings"], rep["images"], rep["identification"], rep["verification"]
    t = st["threshold"]
    curve = idn["curve"]
    out = [
        f"Dataset {rep['dataset']}: {im['total']} images of {im['identities']} identities, "
        f"{im['usable']} usable, {len(im['unusable'])} with no usable face.",
        "",
        f"Open-set identification ({st['splits']} random splits, seed {st['seed']}): "
        f"{idn['enrolled_identities']} of {idn['identities']} identities on the list, "
        f"{st['refs']} reference image(s) each.",
        f"Per split: ~{idn['mated_searches_per_split']['mean']:.0f} searches by listed people, "
        f"~{idn['non_mated_searches_per_split']['mean']:.0f} by unlisted people "
        f"(so an FPIR below 1/{idn['non_mated_searches_per_split']['min']:.0f} = "
        f"{idn['fpir_resolution']:.2g} cannot be seen).",
        "",
        "  threshold    FNIR (listed, missed)  FPIR (unlisted, alerted)",
    ]
    shown = sorted(set(TABLE_THRESHOLDS) | {t})
    for thr in shown:
        k = curve["thresholds"].index(round(thr, 4))
        fn = {"mean": curve["fnir_mean"][k], "sd": curve["fnir_sd"][k]}
        fp = {"mean": curve["fpir_mean"][k], "sd": curve["fpir_sd"][k]}
        mark = "*" if thr == t else " "
        out.append(f"{mark} {thr:8.2f}      {_pm(fn):>18}      {_pm(fp):>18}")
    out += [
        f"  (* = the current threshold; ± is the spread over the {st['splits']} splits)",
        f"Rank-1 identification rate: {_pm(idn['rank1'])}",
        "",
        f"Verification: {ver['genuine_pairs']} same-person pairs, {ver['impostor_pairs']} different-person "
        f"pairs{' (sampled)' if ver['impostor_pairs_sampled'] else ''}.",
        f"  EER {_f(ver['eer'])} at threshold {_f(ver['eer_threshold'])}; at {t:.2f}: "
        f"FNMR {_f(ver['at_threshold']['fnmr'])}, FMR {_f(ver['at_threshold']['fmr'])}",
    ]
    if rep["groups"]:
        out += ["", f"By group at threshold {t:.2f} (small counts: wide uncertainty):",
                f"  {'group':<16} {'ids':>4} {'images':>6} {'FNIR':>18} {'FPIR':>18} {'FNMR':>7} {'FMR':>7}"]
        for g in rep["groups"]:
            out.append(f"  {g['group'][:16]:<16} {g['identities']:>4} {g['images']:>6} {_pm(g['fnir']):>18} "
                       f"{_pm(g['fpir']):>18} {_f(g['fnmr']):>7} {_f(g['fmr']):>7}")
    rec = rep["recommendation"]
    if rec:
        out += ["", _recommend_text(rec, idn["non_mated_searches_per_split"]["min"])]
    if im["unusable"]:
        out += ["", f"No usable face ({len(im['unusable'])} images, left out of every figure):"]
        out += [f"  {u['path']}: {u['reason']}" for u in im["unusable"]]
    return "\n".join(out)


def _f(x) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _recommend_text(rec: dict, non_mated: int) -> str:
    if rec["threshold"] is None:
        return f"No threshold on the grid keeps FPIR within {rec['max_fpir']} in every split."
    lines = [f"Recommended threshold for FPIR <= {rec['max_fpir']}: {rec['threshold']:.2f} "
             f"(FNIR {_pm(rec['fnir'])}, FPIR {_pm(rec['fpir'])}); the most lenient grid threshold "
             f"meeting the target in every split."]
    if not rec["demonstrable"]:
        lines.append(f"  Caution: only {non_mated:.0f} unlisted searches per split; showing an FPIR of "
                     f"{rec['max_fpir']} needs at least {rec['non_mated_searches_needed']} (rule of three).")
    if rec["above_floor"]:
        lines.append(f"  Note: this is more lenient than the threshold floor {rec['threshold_floor']} "
                     f"(match.threshold_floor); the box will refuse it.")
    return "\n".join(lines)
