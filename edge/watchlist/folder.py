"""A simple local watch list: a folder of ``<reference_number>.jpg|png`` files.

For development and demos only; real lists arrive as signed, encrypted bundles.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.face import api
from edge.face import model as face_model
from edge.watchlist.base import Entry, WatchList

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def encode_reference(path: Path, m: face_model.FaceModel) -> tuple[np.ndarray, bytes]:
    """One reference image -> (the model's descriptor, JPEG of the face for the operator). Exactly one face."""
    rgb = api.load_image(path)
    faces = m.find(rgb)
    if not faces:
        raise EdgeError(f"{path.name}: no face found")
    if len(faces) > 1:
        raise EdgeError(f"{path.name}: {len(faces)} faces found, expected one")
    chip, _ = m.prepare(rgb, faces[0], m.gate(0, 0.0, 1.0))
    return m.encode([chip])[0], api.jpeg(api.crop(rgb, faces[0].box, margin=0.4))


def load_folder(folder: str | Path, m: face_model.FaceModel | None = None) -> WatchList:
    m = m or face_model.get(face_model.DLIB)
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgeError(f"watch-list folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EdgeError(f"watch-list folder {folder} holds no .jpg or .png images")
    entries, templates = [], []
    digest = hashlib.sha256()
    for path in files:
        desc, face = encode_reference(path, m)
        entries.append(Entry(ref=path.stem, category="other", reason="local list", image_jpeg=face))
        templates.append(desc)
        digest.update(path.read_bytes())
    return WatchList(
        list_id="folder-" + digest.hexdigest()[:16],
        entries=entries,
        templates=np.stack(templates),
        owners=np.arange(len(entries)),
        issuer="local folder",
        model=m.id,
    )
