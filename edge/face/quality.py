"""The quality gate: skip faces too small, too blurred or turned too far away to be worth encoding.

All measures are cheap next to the encoder (landmarks < 1 ms, Laplacian on a 150 px chip < 1 ms),
which is the point: the gate decides whether to spend ~80 ms on a face. The same function serves the
live pipeline, enrolment and `edge eval`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.face import api

# A view this frontal (lfw-dev: the nearest to a frontal reference, docs/detection.md) and this sharp is
# not worth waiting to improve on. Sensor noise alone gives ~40 (noise sd 4 grey levels), so the bar
# is well above it: a quarter of the sharpness the score counts in full.
GOOD_YAW = 0.15
GOOD_SHARPNESS = 100.0


@dataclass(frozen=True)
class Quality:
    height: int  # face box height in image pixels
    sharpness: float  # variance of the Laplacian on the aligned grey chip
    yaw: float  # |nose offset from eye midpoint| / eye distance: 0 frontal, ~0.5+ profile
    ok: bool
    reason: str  # "" when ok, else "small" / "blurred" / "turned"
    score: float  # higher is a better view of the same face
    good: bool = False  # ok, frontal and sharp: the camera encodes it at once, a lesser view may wait


def gate(rgb: np.ndarray, box: api.Box, min_face_px: int, min_sharpness: float,
         max_yaw: float) -> tuple[np.ndarray, Quality]:
    """(the aligned chip to encode, its Quality): the one way a face is prepared and judged."""
    chip, pts = api.align(rgb, box)
    return chip, assess(box, chip, pts, min_face_px, min_sharpness, max_yaw)


def assess(box: api.Box, chip: np.ndarray, pts: np.ndarray, min_face_px: int, min_sharpness: float,
           max_yaw: float) -> Quality:
    top, right, bottom, left = box
    height = bottom - top
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    # dlib 5-point: 0,1 = one eye's corners, 2,3 = the other eye's corners, 4 = nose base
    eye_a, eye_b = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)
    eye_dist = float(np.linalg.norm(eye_a - eye_b)) or 1.0
    mid = (eye_a + eye_b) / 2.0
    axis = (eye_b - eye_a) / eye_dist
    yaw = abs(float(np.dot(pts[4] - mid, axis))) / eye_dist
    reason = ""
    if height < min_face_px:
        reason = "small"
    elif sharpness < min_sharpness:
        reason = "blurred"
    elif yaw > max_yaw:
        reason = "turned"
    score = min(height, 200) / 200.0 * min(sharpness, 400.0) / 400.0 * max(0.0, 1.0 - yaw)
    good = reason == "" and yaw <= GOOD_YAW and sharpness >= max(GOOD_SHARPNESS, min_sharpness)
    return Quality(height, sharpness, yaw, reason == "", reason, score, good)
