"""MobileFaceNet (sirius-ai/MobileFaceNet_TF, Apache-2.0) run by onnxruntime: aligned 112x112 faces -> 192-d.

Alignment: a similarity transform from the five landmarks to the ArcFace template (the network was trained
on faces aligned so). Input: RGB, NCHW float, ``(x - 127.5) / 128``. Output: 192 values, L2-normalised here,
compared by cosine similarity. The graph is ``edge/face/weights/mobilefacenet.onnx``, checked at load; it is
equivalent to the published ``.tflite`` (tests/test_mobilefacenet.py).
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.face import weights
from edge.face.runtime import threads

WEIGHTS = "mobilefacenet.onnx"
SIZE = 112
DIM = 192
# ArcFace's 112x112 template: the person's right eye, left eye, nose tip, right and left mouth corners
TEMPLATE = np.array([(38.2946, 51.6963), (73.5318, 51.5014), (56.0252, 71.7366),
                     (41.5493, 92.3655), (70.7299, 92.2041)], dtype=np.float32)

_sessions: dict[int, object] = {}


def align(rgb: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 112x112 RGB face the network takes, from an image and its five landmarks."""
    pts = np.asarray(landmarks, dtype=np.float32).reshape(5, 2)
    m, _ = cv2.estimateAffinePartial2D(pts, TEMPLATE, method=cv2.LMEDS)
    if m is None:
        raise EdgeError("the face's landmarks do not define an alignment")
    return np.ascontiguousarray(cv2.warpAffine(rgb, m, (SIZE, SIZE), borderValue=0.0))


def _session():
    n = threads()
    sess = _sessions.get(n)
    if sess is None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = n
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        sess = ort.InferenceSession(weights.load(WEIGHTS), opts, providers=["CPUExecutionProvider"])
        _sessions[n] = sess
    return sess


def encode(chips: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """Aligned 112x112 RGB uint8 faces -> (n, 192) float32, each of unit length."""
    if len(chips) == 0:
        return np.zeros((0, DIM), dtype=np.float32)
    x = np.stack([np.asarray(c, dtype=np.float32) for c in chips])
    x = ((x - 127.5) / 128.0).transpose(0, 3, 1, 2)
    sess = _session()
    out = sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(x, dtype=np.float32)})[0]
    out = np.asarray(out, dtype=np.float32).reshape(len(chips), DIM)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)
