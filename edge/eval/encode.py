"""Dataset images -> descriptors, through exactly the face model's steps (``edge.face.model``).

``find`` (the model's detector on a still) -> ``prepare`` (alignment and the model's quality gate, with the
config's ``quality.*`` where set) -> ``encode``. These are the functions the camera process and ``enrol build``
call; nothing is re-implemented here. An image whose face the gate would skip is not encoded: it is counted
and listed with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from edge.config import QualityConfig
from edge.errors import EdgeError
from edge.eval.dataset import Dataset
from edge.face import api, model


@dataclass
class Encoded:
    descriptors: np.ndarray  # (n, dim) float32, one row per usable image
    labels: np.ndarray  # (n,) int: identity index into Dataset.identities
    paths: list[str]  # dataset-relative path of each usable image
    unusable: list[tuple[str, str]]  # (dataset-relative path, reason) of images with no usable face
    several_faces: int = 0  # usable images that held more than one face (the largest was used)
    model: str = model.DLIB  # the face model that made the descriptors


def encode_image(rgb: np.ndarray, m: model.FaceModel, qual: QualityConfig) -> tuple[np.ndarray | None, str, int]:
    """(descriptor or None, reason it is unusable or "", faces found) for the largest face in ``rgb``."""
    faces = m.find(rgb)
    if not faces:
        return None, "no face found", 0
    face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[1] - f.box[3]))
    chip, q = m.prepare(rgb, face, m.gate(qual.min_face_px, qual.min_sharpness, qual.max_yaw))
    if not q.ok:
        return None, f"quality gate: {q.reason}", len(faces)
    return m.encode([chip])[0], "", len(faces)


def encode_dataset(ds: Dataset, qual: QualityConfig | None = None, model_id: str = model.DLIB,
                   encoder: str | None = None,
                   progress: Callable[[Iterable], Iterable] = lambda it: it) -> Encoded:
    qual = qual or QualityConfig()
    m = model.DlibResNet(encoder) if model_id == model.DLIB else model.get(model_id)
    m.warm_up()
    descs, labels, paths, unusable, several = [], [], [], [], 0
    for ident, path in progress(ds.images):
        rel = ds.relpath(path)
        try:
            desc, reason, faces = encode_image(api.load_image(path), m, qual)
        except EdgeError as exc:
            desc, reason, faces = None, str(exc).replace(str(path), "the file"), 0
        if desc is None:
            unusable.append((rel, reason))
            continue
        several += faces > 1
        descs.append(desc)
        labels.append(ident)
        paths.append(rel)
    return Encoded(np.asarray(descs, dtype=np.float32).reshape(-1, m.dim), np.asarray(labels, dtype=np.int64),
                   paths, unusable, several, m.id)
