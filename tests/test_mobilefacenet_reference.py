"""The shipped MobileFaceNet ONNX is the published network: on real faces, aligned the box's way, its
embeddings equal those of the reference .tflite run by the TFLite interpreter (ai-edge-litert)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.face import mobilefacenet, yunet

DATA = Path(__file__).resolve().parent / "data"
TFLITE = DATA / "models" / "MobileFaceNet.tflite"


def _chips() -> np.ndarray:
    chips = []
    for person in sorted(p for p in (DATA / "media" / "identities").iterdir() if p.is_dir()):
        for f in sorted(person.iterdir())[:2]:
            bgr = cv2.imread(str(f))
            face = max(yunet.detect(bgr), key=lambda x: x.box[2] - x.box[0])
            chips.append(mobilefacenet.align(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), face.landmarks))
    return np.stack(chips)


def _tflite(chips: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(TFLITE))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    n = int(inp["shape"][0])  # the published graph takes a fixed batch (2)
    x = (chips.astype(np.float32) - 127.5) / 128.0  # NHWC, as published
    x = np.concatenate([x, np.repeat(x[-1:], -len(x) % n, axis=0)])
    emb = []
    for k in range(0, len(x), n):
        it.set_tensor(inp["index"], x[k:k + n])
        it.invoke()
        emb.append(it.get_tensor(out["index"]).astype(np.float64))
    e = np.concatenate(emb)[:len(chips)]
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def test_the_onnx_and_the_reference_tflite_give_the_same_embeddings_on_real_faces():
    import hashlib

    assert hashlib.sha256(TFLITE.read_bytes()).hexdigest() == \
        "d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"  # the published file
    chips = _chips()
    assert len(chips) >= 8
    onnx, ref = mobilefacenet.encode(chips).astype(np.float64), _tflite(chips)
    assert np.abs(onnx - ref).max() < 1e-4  # measured: ~4e-7
    assert np.allclose(np.sum(onnx * ref, axis=1), 1.0, atol=1e-6)  # cosine 1 for every face
    # and the comparison can fail: another face's reference embedding is far from this one's
    assert (np.sum(onnx * np.roll(ref, 2, axis=0), axis=1) < 0.9).all()
