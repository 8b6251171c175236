"""Dataset images -> descriptors, through exactly the live pipeline's steps.

``api.detect`` (with the config's ``detect.max_width`` / ``detect.upsample``) -> ``api.chip`` ->
``quality.gate`` (alignment and the config's quality thresholds) -> ``api.encode_chips`` (the config's encoder
backend). These are the functions the camera process calls; nothing is re-implemented here. An image
whose face the live gate would skip is not encoded: it is counted and listed with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from edge.config import DetectConfig, QualityConfig
from edge.errors import EdgeError
from edge.eval.dataset import Dataset
from edge.face import api, quality


@dataclass
class Encoded:
    descriptors: np.ndarray  # (n, 128) float32, one row per usable image
    labels: np.ndarray  # (n,) int: identity index into Dataset.identities
    paths: list[str]  # dataset-relative path of each usable image
    unusable: list[tuple[str, str]]  # (dataset-relative path, reason) of images with no usable face
    several_faces: int = 0  # usable images that held more than one face (the largest was used)


def encode_image(rgb: np.ndarray, det: DetectConfig, qual: QualityConfig,
                 encoder: str | None) -> tuple[np.ndarray | None, str, int]:
    """(descriptor or None, reason it is unusable or "", faces found) for the largest face in ``rgb``."""
    boxes = api.detect(rgb, det.max_width, det.upsample)
    if not boxes:
        return None, "no face found", 0
    box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[1] - b[3]))
    chip, q = quality.gate(rgb, box, qual.min_face_px, qual.min_sharpness, qual.max_yaw)
    if not q.ok:
        return None, f"quality gate: {q.reason}", len(boxes)
    return api.encode_chips([chip], encoder)[0], "", len(boxes)


def encode_dataset(ds: Dataset, det: DetectConfig | None = None, qual: QualityConfig | None = None,
                   encoder: str | None = None,
                   progress: Callable[[Iterable], Iterable] = lambda it: it) -> Encoded:
    det, qual = det or DetectConfig(), qual or QualityConfig()
    api.warm_up(encoder)
    descs, labels, paths, unusable, several = [], [], [], [], 0
    for ident, path in progress(ds.images):
        rel = ds.relpath(path)
        try:
            desc, reason, faces = encode_image(api.load_image(path), det, qual, encoder)
        except EdgeError as exc:
            desc, reason, faces = None, str(exc).replace(str(path), "the file"), 0
        if desc is None:
            unusable.append((rel, reason))
            continue
        several += faces > 1
        descs.append(desc)
        labels.append(ident)
        paths.append(rel)
    return Encoded(np.asarray(descs, dtype=np.float32).reshape(-1, 128), np.asarray(labels, dtype=np.int64),
                   paths, unusable, several)
