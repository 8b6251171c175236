"""Encoder backends: aligned 150x150 RGB chips -> 128-d descriptors.

``dlib`` (the ResNet in the dlib-bin wheel) is the reference and the fallback. Other backends
register here under a name and must produce the same descriptors (see tests/test_encoder_equivalence).
``get(None)`` returns the default: the fastest available backend.
"""

from __future__ import annotations

import numpy as np

from edge.errors import EdgeError
from edge.face import models


class DlibEncoder:
    name = "dlib"

    def encode(self, chips: list[np.ndarray]) -> np.ndarray:
        net = models.resnet()
        out = net.compute_face_descriptor([np.ascontiguousarray(c) for c in chips])
        return np.asarray([np.asarray(d) for d in out], dtype=np.float32).reshape(len(chips), 128)


_BACKENDS: dict[str, type] = {"dlib": DlibEncoder}
_DEFAULT_ORDER = ["dlib"]
_instances: dict[str, object] = {}


def register(name: str, cls: type, preferred: bool = False) -> None:
    _BACKENDS[name] = cls
    if preferred:
        _DEFAULT_ORDER.insert(0, name)
    elif name not in _DEFAULT_ORDER:
        _DEFAULT_ORDER.append(name)


def available() -> list[str]:
    return list(_BACKENDS)


def get(name: str | None = None):
    """The encoder called ``name``, or the default when ``name`` is None or "auto"."""
    if name in (None, "auto"):
        last = None
        for candidate in _DEFAULT_ORDER:
            try:
                return get(candidate)
            except EdgeError as exc:
                last = exc
        raise last or EdgeError("no face encoder is available")
    if name not in _BACKENDS:
        raise EdgeError(f"unknown encoder {name!r}; choose one of {', '.join(_BACKENDS)}")
    if name not in _instances:
        _instances[name] = _BACKENDS[name]()
    return _instances[name]
