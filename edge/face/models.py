"""Locate and load the dlib model files shipped by the `face-recognition-models` package.

The package's own ``__init__`` imports ``pkg_resources`` (gone from new setuptools), so we find its
folder without importing it. Models are loaded lazily, once per process, never at import time:
each camera worker loads its own copy after it has forked/spawned.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from edge.errors import EdgeError

SHAPE_5 = "shape_predictor_5_face_landmarks.dat"
RESNET = "dlib_face_recognition_resnet_model_v1.dat"


def model_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EdgeError(
            "the face-recognition-models package is not installed; run 'make install' "
            "(or pip install face-recognition-models)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "models"


def model_path(name: str) -> Path:
    path = model_dir() / name
    if not path.is_file():
        raise EdgeError(f"model file {name} is missing from the face-recognition-models package")
    return path


def _dlib():
    try:
        import dlib
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise EdgeError("dlib is not installed; install the prebuilt 'dlib-bin' wheel") from exc
    return dlib


@lru_cache(maxsize=1)
def detector():
    """dlib's HOG frontal face detector."""
    return _dlib().get_frontal_face_detector()


@lru_cache(maxsize=1)
def shape_predictor():
    """dlib's 5-point landmark model (used for alignment)."""
    return _dlib().shape_predictor(str(model_path(SHAPE_5)))


@lru_cache(maxsize=1)
def resnet():
    """dlib's ResNet face descriptor model (128-d)."""
    return _dlib().face_recognition_model_v1(str(model_path(RESNET)))
