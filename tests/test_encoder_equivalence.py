"""The fast encoders compute dlib's descriptors: same numbers (|Δ| ≤ 1e-3), same match decisions.

Chips are the real ones: every face found in tests/data/media/faces/ and in the first images of each
identity in tests/data/media/identities/, aligned by edge.face.api.chip as the pipeline does.
"""

from __future__ import annotations

import sys
from itertools import combinations

import numpy as np
import pytest
from conftest import MEDIA

from edge.errors import EdgeError
from edge.face import api, dlib_model, encoder, models

TOLERANCE = 1e-3
THRESHOLD = 0.6  # match.threshold: a hit is a distance at or under this
PER_IDENTITY = 4



def _images():
    yield from sorted((MEDIA / "faces").iterdir())
    for person in sorted((MEDIA / "identities").iterdir()):
        yield from sorted(person.iterdir())[:PER_IDENTITY]


@pytest.fixture(scope="module")
def chips_and_reference():
    chips = []
    for path in _images():
        rgb = api.load_image(path)
        boxes = api.detect(rgb, max_width=800, upsample=1 if rgb.shape[1] < 400 else 0)
        chips += [api.chip(rgb, box) for box in boxes]
    assert len(chips) >= 40
    return chips, encoder.get("dlib").encode(chips)


def _decisions(desc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.array(list(combinations(range(len(desc)), 2)))
    dist = np.linalg.norm(desc[pairs[:, 0]] - desc[pairs[:, 1]], axis=1)
    return dist, dist <= THRESHOLD


@pytest.mark.parametrize("backend", ["onnx", "cv2dnn"])
def test_same_descriptors_and_same_match_decisions(chips_and_reference, backend):
    chips, ref = chips_and_reference
    got = encoder.get(backend).encode(chips)  # one batch
    one_by_one = np.concatenate([encoder.get(backend).encode([c]) for c in chips[:5]])

    assert got.shape == ref.shape and got.dtype == np.float32
    assert np.abs(got - ref).max() <= TOLERANCE
    assert np.abs(one_by_one - ref[:5]).max() <= TOLERANCE
    ref_dist, ref_match = _decisions(ref)
    dist, match = _decisions(got)
    assert ref_match.any() and not ref_match.all()  # the set has both hits and misses
    assert np.array_equal(match, ref_match)
    assert np.abs(dist - ref_dist).max() <= TOLERANCE


def test_onnx_is_the_default():  # onnx and onnxruntime are dependencies: they must be there
    assert api.encoder_name("auto") == "onnx"
    assert api.encoder_name("dlib") == "dlib"


def test_missing_runtimes_fall_back_cleanly(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    monkeypatch.setattr(encoder, "_instances", {})
    with pytest.raises(EdgeError, match="onnxruntime is not installed"):
        encoder.get("onnx")
    assert encoder.get("auto").name == "cv2dnn"

    monkeypatch.setitem(sys.modules, "onnx", None)  # without onnx no graph can be built
    monkeypatch.setattr(encoder, "_instances", {})
    assert encoder.get("auto").name == "dlib"


def test_threads_follow_the_configuration(monkeypatch):
    from edge.face import runtime

    monkeypatch.setattr(runtime, "_threads", None)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert encoder.threads() == 3
    encoder.set_threads(1)
    assert encoder.threads() == 1


def test_damaged_model_file_is_one_clear_error():
    data = models.model_path(models.RESNET).read_bytes()
    layers = dlib_model.parse(data)
    assert sum(layer.kind == "con" for layer in layers) == 29
    for bad in (data[: len(data) // 2], data[:-1], b"\x01\x01\x01\x03xyz" + data[18:], b""):
        with pytest.raises(EdgeError, match="ResNet model file"):
            dlib_model.parse(bad)
