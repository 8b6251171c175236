"""The model weights that ship inside the project (``edge/face/weights/``), each checked at load.

Provenance, licences and checksums: ``edge/face/weights/PROVENANCE.md`` and ``docs/models.md``. A file is
read once per process, its SHA-256 compared with the one pinned here, and its bytes handed to the runtime
(never the path, so what was checked is what runs). A wrong or missing file is refused in one sentence.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from edge.errors import EdgeError

FOLDER = Path(__file__).resolve().parent / "weights"

# name -> SHA-256 of the file as published (see PROVENANCE.md)
PINNED: dict[str, str] = {
    "face_detection_yunet_2026may.onnx": "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
    "mobilefacenet.onnx": "42417535354dc9fc042dc2ad1e8dfb7f8722737f81b92f38aee8e28048d859d1",
}
MAX_BYTES = 64 * 1024 * 1024


def sha256(name: str) -> str:
    """The pinned SHA-256 of a shipped weights file (what templates, bundles and records name)."""
    try:
        return PINNED[name]
    except KeyError:
        raise EdgeError(f"{name} is not a model file this version ships") from None


def check(data: bytes, name: str) -> bytes:
    """``data`` if its SHA-256 is the one pinned for ``name``; else one sentence."""
    found = hashlib.sha256(data).hexdigest()
    if found != sha256(name):
        raise EdgeError(f"model weights {name} fail their checksum (SHA-256 {found[:16]}…, expected "
                        f"{sha256(name)[:16]}…): reinstall the software, do not run with these weights")
    return data


@cache
def load(name: str, folder: Path = FOLDER) -> bytes:
    """The checked bytes of a shipped weights file (once per process)."""
    path = folder / name
    sha256(name)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise EdgeError(f"model weights {name} are {size} bytes, more than any shipped model")
        data = path.read_bytes()
    except OSError as exc:
        raise EdgeError(f"model weights {name} cannot be read ({exc.strerror}): reinstall the software") from None
    return check(data, name)
