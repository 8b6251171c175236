"""Accuracy at watch-list scale on lfw-dev: the plain nearest distance against the adopted ratio rule.

lfw-dev (../shared/media/lfw-dev: 795 people with 2+ photos, 2,015 with one) is encoded once through
the live pipeline's own steps (edge.eval.encode) and cached in bench/out; edge.eval.scale does the
rest (calibrated on half of the people, measured on the other half; see its docstring): FNIR of each
rule at FPIR 1 % and 0.1 % over several random splits, and what the default policy gives.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from edge.eval import plot, scale
from edge.watchlist import operating

LFW = Path(__file__).resolve().parents[2] / "shared" / "media" / "lfw-dev"
CACHE = Path(__file__).resolve().parent / "out" / "lfw-dev-encodings.npz"
SIZES = (100, 1000)
SPLITS = 6
CAP = 0.6  # match.threshold's default: the box's distance cap


def encodings(root: Path = LFW) -> tuple[np.ndarray, np.ndarray]:
    """(descriptors, identity labels) of every usable lfw-dev image, through the live pipeline."""
    from edge.eval import dataset, encode

    ds = dataset.load(root)
    key = hashlib.sha256("\n".join(ds.relpath(p) for _, p in ds.images).encode()).hexdigest()[:16]
    if CACHE.exists():
        z = np.load(CACHE)
        if str(z["key"]) == key:
            return z["d"], z["l"]
    t0 = time.monotonic()
    enc = encode.encode_dataset(ds, encoder="auto")
    print(f"encoded {len(enc.descriptors)} of {len(ds.images)} images in {time.monotonic() - t0:.0f} s")
    CACHE.parent.mkdir(exist_ok=True)
    np.savez(CACHE, d=enc.descriptors, l=enc.labels, key=key)
    return enc.descriptors, enc.labels


def modelled(desc, labels, n: int, target: float, seed: int = 0, draws: int = 200_000) -> dict:
    """FPIR and FNIR of the default operating point for a list of ``n`` when ``n`` is beyond what lfw-dev
    can hold (10,000): the two nearest of n impostors are drawn from the pooled different-person
    distance distribution (order statistics of n draws: every passer-by alike), a listed person's own
    distance from the same-person pairs. Checked against the measurement at 1,000 (printed beside it)."""
    rng = np.random.default_rng(seed)
    ids = np.unique(labels)
    one = np.array([rng.choice(np.flatnonzero(labels == i)) for i in ids])
    p = desc[one]
    pooled = np.sort(operating.distances(p, p)[np.triu_indices(len(p), 1)])
    genuine = []
    for i in ids:
        rows = np.flatnonzero(labels == i)
        if len(rows) > 1:
            d = desc[rows[1:]] - desc[rows[0]]
            genuine += list(np.sqrt((d * d).sum(1)))
    genuine = np.asarray(genuine)

    def two_nearest(k, size):
        u1 = rng.beta(1, k, size)
        u2 = u1 + (1 - u1) * rng.beta(1, k - 1, size)
        at = lambda u: pooled[np.minimum((u * len(pooled)).astype(np.int64), len(pooled) - 1)]  # sorted: quantiles
        return at(u1), at(u2)

    cal = operating.load_calibration()
    op = operating.derive(cal, n, target, CAP)
    n1, n2 = two_nearest(n, draws)
    g = rng.choice(genuine, draws)
    i1, i2 = two_nearest(n - 1, draws)
    own = g < i1
    d1, d2 = np.where(own, g, i1), np.where(own, i1, np.minimum(g, i2))
    return {"n": n, "fpir": float(op.hits(n1, n2).mean()), "fnir": 1.0 - float((own & op.hits(d1, d2)).mean()),
            "expected": op.expected_fpir, "threshold": op.threshold, "cap": op.cap, "extrapolated": op.extrapolated}


def main() -> None:
    if not LFW.is_dir():
        print(f"(skipped: {LFW} is not here)")
        return
    desc, labels = encodings()
    print(f"lfw-dev: {len(desc)} usable faces of {len(np.unique(labels))} people; calibrated on half the people, "
          f"measured on the other half; distance cap {CAP}\n")
    target = operating.DEFAULT_TARGET_FPIR
    rep = scale.evaluate(desc, labels, SIZES, SPLITS, 0, target, CAP)
    print(scale.format_table(rep))
    print(f"DET per list size: {plot.scale_plot(rep, CACHE.parent / 'accuracy-det.png')}\n")
    print("the same people (listed people with 3+ photos), list of 100: one photo per search and entry; "
          "track fusion (each search the mean of 2 photos of the person); 2 reference photos per entry:\n")
    for refs, fuse in ((1, 1), (1, 2), (2, 1)):
        rep = scale.evaluate(desc, labels, (100,), SPLITS, 0, target, CAP, refs=refs, fuse=fuse, min_photos=3)
        print(scale.format_table(rep))
    print("the shipped calibration's default point, modelled (pooled distances; see bench/accuracy.py) — "
          "1,000 is measured above, 10,000 is beyond lfw-dev:\n")
    print("| list size | threshold | distance cap | expected FPIR | modelled FPIR | modelled FNIR |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (100, 1000, 10_000):
        m = modelled(desc, labels, n, target)
        print(f"| {n:,}{' (extrapolated)' if m['extrapolated'] else ''} | {m['threshold']:.3f} | {m['cap']:.3f} | "
              f"{100 * m['expected']:.2f} % | {100 * m['fpir']:.2f} % | {100 * m['fnir']:.1f} % |")


if __name__ == "__main__":
    main()
