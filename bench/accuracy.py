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

from edge.eval import scale
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


def main() -> None:
    if not LFW.is_dir():
        print(f"(skipped: {LFW} is not here)")
        return
    desc, labels = encodings()
    print(f"lfw-dev: {len(desc)} usable faces of {len(np.unique(labels))} people; calibrated on half the people, "
          f"measured on the other half; distance cap {CAP}\n")
    target = operating.DEFAULT_TARGET_FPIR
    print(scale.format_table(scale.evaluate(desc, labels, SIZES, SPLITS, 0, target, CAP)))
    print("track fusion (each search the mean of 2 photos of one person) and 2 reference photos per entry, "
          "list of 100:\n")
    print(scale.format_table(scale.evaluate(desc, labels, (100,), SPLITS, 0, target, CAP, refs=1, fuse=2)))
    print(scale.format_table(scale.evaluate(desc, labels, (100,), SPLITS, 0, target, CAP, refs=2)))


if __name__ == "__main__":
    main()
