"""Encoder backends: aligned 150x150 RGB chips -> 128-d descriptors.

``dlib`` (the ResNet in the dlib-bin wheel) is the reference and the fallback. Other backends
register here under a name and must produce the same descriptors (see tests/test_encoder_equivalence).
``get(None)`` returns the default: the fastest available backend. ``onnx`` (dlib's own network and
weights as an ONNX graph run by onnxruntime, see edge/face/onnx_encoder.py and docs/encoder.md) is
preferred, then ``cv2dnn`` (the same graph on OpenCV's DNN module), then ``dlib``; a backend whose
runtime is missing or cannot start falls back to the next.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from edge.errors import EdgeError
from edge.face import models
from edge.face.runtime import set_threads, threads  # noqa: F401  (the encoder's settings, re-exported)


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
    if preferred and name in _DEFAULT_ORDER:
        _DEFAULT_ORDER.remove(name)
    if preferred:
        _DEFAULT_ORDER.insert(0, name)
    elif name not in _DEFAULT_ORDER:
        _DEFAULT_ORDER.append(name)


def available() -> list[str]:
    return list(_BACKENDS)


def get(name: str | None = None):
    """The encoder called ``name``, or the default when ``name`` is None or "auto"."""
    if name in (None, "auto"):
        if "auto" not in _instances:  # resolved once: a backend that cannot start is not retried
            errors = []
            for candidate in _DEFAULT_ORDER:
                try:
                    _instances["auto"] = get(candidate)
                    break
                except EdgeError as exc:
                    errors.append(f"{candidate}: {exc}")
            else:
                raise EdgeError("no face encoder is available (" + "; ".join(errors) + ")")
        return _instances["auto"]
    if name not in _BACKENDS:
        raise EdgeError(f"unknown encoder {name!r}; choose one of {', '.join(_BACKENDS)}")
    if name not in _instances:
        _instances[name] = _BACKENDS[name]()
    return _instances[name]


def _register_optional() -> None:
    from edge.face import onnx_encoder

    if importlib.util.find_spec("onnx") is None:  # both build the graph with the onnx package
        return
    register("cv2dnn", onnx_encoder.CvDnnEncoder, preferred=True)  # ~8x dlib; OpenCV is always there
    if importlib.util.find_spec("onnxruntime") is not None:
        register("onnx", onnx_encoder.OnnxEncoder, preferred=True)  # ~20x dlib: first choice


_register_optional()
