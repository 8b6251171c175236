"""YuNet (OpenCV Zoo, MIT): face boxes, 5 landmarks and a score, through OpenCV's ``FaceDetectorYN``.

Plain tuples and arrays out, in the manner of :mod:`edge.face.api`: a :class:`Face` is a box
``(top, right, bottom, left)`` in the pixels of the image passed in, its five landmarks as a (5, 2)
float32 array (the person's right eye, left eye, nose tip, right and left mouth corners: the order of the
ArcFace alignment template, :mod:`edge.face.mobilefacenet`) and YuNet's score. The weights are checked at
load (:mod:`edge.face.weights`). One detector per process and score threshold; the net is small (230 kB).
"""

from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from edge.face import weights

WEIGHTS = "face_detection_yunet_2026may.onnx"
SCORE = 0.9  # docs/models.md: 94 % of 32 px faces at 0.9 on a noisy 1080p frame
NMS = 0.3
TOP_K = 5000

Box = tuple[int, int, int, int]  # top, right, bottom, left


class Face(NamedTuple):
    box: Box
    landmarks: np.ndarray  # (5, 2) float32, image coordinates
    score: float


_detectors: dict[float, cv2.FaceDetectorYN] = {}


def _detector(width: int, height: int, score: float) -> cv2.FaceDetectorYN:
    """One detector per process and score threshold, set to each input size in turn (the live pipeline
    scans regions of every size: a resize costs nothing measurable, a new detector ~3 ms)."""
    det = _detectors.get(score)
    if det is None:
        # OpenCV's DNN warns about targets on every create; errors still show
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        model = np.frombuffer(weights.load(WEIGHTS), dtype=np.uint8)
        det = cv2.FaceDetectorYN.create("onnx", model, np.zeros(0, np.uint8), (width, height), score, NMS, TOP_K)
        _detectors[score] = det
    det.setInputSize((width, height))
    return det


def detect(bgr: np.ndarray, score: float = SCORE, scale: float = 1.0) -> list[Face]:
    """Faces in a BGR image, optionally looked for on a copy resized by ``scale``; coordinates in ``bgr``."""
    img = bgr
    if bgr.ndim == 2:
        img = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
    elif bgr.shape[2] == 4:
        img = cv2.cvtColor(bgr, cv2.COLOR_BGRA2BGR)
    if scale != 1.0:
        img = cv2.resize(img, (max(1, round(img.shape[1] * scale)), max(1, round(img.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    h, w = img.shape[:2]
    _, rows = _detector(w, h, score).detect(img)
    faces: list[Face] = []
    if rows is None:
        return faces
    H, W = bgr.shape[:2]
    for r in rows:
        x, y, bw, bh = (float(v) / scale for v in r[:4])
        top, left = max(0, int(round(y))), max(0, int(round(x)))
        bottom, right = min(H, int(round(y + bh))), min(W, int(round(x + bw)))
        if bottom <= top or right <= left:
            continue
        pts = (np.asarray(r[4:14], dtype=np.float32).reshape(5, 2) / scale).astype(np.float32)
        faces.append(Face((top, right, bottom, left), pts, float(r[14])))
    return faces
