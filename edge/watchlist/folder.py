"""A simple local watch list: a folder of ``<reference_number>.jpg|png`` files.

For development and demos only; real lists arrive as signed, encrypted bundles.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.face import api
from edge.watchlist.base import Entry, WatchList

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def encode_reference(path: Path, encoder: str | None = None) -> tuple[np.ndarray, bytes]:
    """One reference image -> (descriptor, JPEG of the face for the operator). Exactly one face."""
    rgb = api.load_image(path)
    boxes = api.detect(rgb, max_width=1024, upsample=1)
    if not boxes:
        raise EdgeError(f"{path.name}: no face found")
    if len(boxes) > 1:
        raise EdgeError(f"{path.name}: {len(boxes)} faces found, expected one")
    desc = api.encode(rgb, boxes, encoder)[0]
    return desc, api.jpeg(api.crop(rgb, boxes[0], margin=0.4))


def load_folder(folder: str | Path, encoder: str | None = None) -> WatchList:
    folder = Path(folder)
    if not folder.is_dir():
        raise EdgeError(f"watch-list folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise EdgeError(f"watch-list folder {folder} holds no .jpg or .png images")
    entries, templates = [], []
    digest = hashlib.sha256()
    for path in files:
        desc, face = encode_reference(path, encoder)
        entries.append(Entry(ref=path.stem, category="other", reason="local list", image_jpeg=face))
        templates.append(desc)
        digest.update(path.read_bytes())
    return WatchList(
        list_id="folder-" + digest.hexdigest()[:16],
        entries=entries,
        templates=np.stack(templates),
        owners=np.arange(len(entries)),
        issuer="local folder",
    )
