"""The quality gate: skip faces too small, too blurred or turned too far away to be worth encoding.

All measures are cheap next to the encoder (landmarks < 1 ms, Laplacian on the aligned chip < 1 ms),
which is the point: the gate decides whether to spend an encode on a face. Each face model
(:mod:`edge.face.model`) has its own :class:`Gate` (sharpness is measured on *its* chip, yaw from *its*
landmarks); :func:`judge` is the one decision. The same function serves the live pipeline, enrolment and
`edge eval`. :func:`gate` and :func:`assess` are the dlib model's (its 150 px chip, dlib's 5 points).
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
class Gate:
    """One model's quality thresholds (config ``quality.*`` overrides the first three)."""

    min_face_px: int
    min_sharpness: float  # variance of the Laplacian on the model's aligned grey chip
    max_yaw: float  # the model's yaw measure (see :func:`yaw`)
    good_yaw: float = GOOD_YAW  # a view this frontal and ...
    good_sharpness: float = GOOD_SHARPNESS  # ... this sharp is not worth waiting to improve on
    yaw_unit: float = 1.0  # this model's yaw where dlib's measure reads 1 (the view score's scale)


DLIB_GATE = Gate(40, 15.0, 0.45)


@dataclass(frozen=True)
class Quality:
    height: int  # face box height in image pixels
    sharpness: float  # variance of the Laplacian on the aligned grey chip
    yaw: float  # |nose offset from eye midpoint| / eye distance: 0 frontal, ~0.5+ profile
    ok: bool
    reason: str  # "" when ok, else "small" / "blurred" / "turned"
    score: float  # higher is a better view of the same face
    good: bool = False  # ok, frontal and sharp: the camera encodes it at once, a lesser view may wait


def gate(rgb: np.ndarray, box: api.Box, min_face_px: int, min_sharpness: float | None,
         max_yaw: float | None) -> tuple[np.ndarray, Quality]:
    """(the aligned chip to encode, its Quality) by the dlib model (None: its own bar)."""
    chip, pts = api.align(rgb, box)
    return chip, assess(box, chip, pts, min_face_px, min_sharpness, max_yaw)


def yaw(eye_a: np.ndarray, eye_b: np.ndarray, nose: np.ndarray) -> float:
    """|nose offset from the eye midpoint along the eye axis| / eye distance: 0 frontal, ~0.5+ profile."""
    eye_dist = float(np.linalg.norm(eye_a - eye_b)) or 1.0
    axis = (eye_b - eye_a) / eye_dist
    return abs(float(np.dot(nose - (eye_a + eye_b) / 2.0, axis))) / eye_dist


def sharpness(chip: np.ndarray) -> float:
    """Variance of the Laplacian on the grey chip."""
    return float(cv2.Laplacian(cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var())


def assess(box: api.Box, chip: np.ndarray, pts: np.ndarray, min_face_px: int, min_sharpness: float | None,
           max_yaw: float | None) -> Quality:
    """The dlib model's judgement: dlib 5-point (0,1 = one eye's corners, 2,3 = the other's, 4 = nose base)."""
    turn = yaw(pts[0:2].mean(axis=0), pts[2:4].mean(axis=0), pts[4])
    g = Gate(min_face_px, DLIB_GATE.min_sharpness if min_sharpness is None else min_sharpness,
             DLIB_GATE.max_yaw if max_yaw is None else max_yaw)
    return judge(box, sharpness(chip), turn, g)


def judge(box: api.Box, sharp: float, turn: float, g: Gate) -> Quality:
    """The one decision: small, blurred or turned (in that order), the view's score, and whether it is good."""
    top, right, bottom, left = box
    height = bottom - top
    reason = ""
    if height < g.min_face_px:
        reason = "small"
    elif sharp < g.min_sharpness:
        reason = "blurred"
    elif turn > g.max_yaw:
        reason = "turned"
    # the score ranks views of one face; sharpness counts in full from 4x the good bar
    score = (min(height, 200) / 200.0 * min(sharp, 4 * g.good_sharpness) / (4 * g.good_sharpness)
             * max(0.0, 1.0 - turn / g.yaw_unit))
    good = reason == "" and turn <= g.good_yaw and sharp >= max(g.good_sharpness, g.min_sharpness)
    return Quality(height, sharp, turn, reason == "", reason, score, good)
