"""Where and how hard to look for faces in each frame: the detection strategy of a camera process.

The detector is YuNet (:mod:`edge.face.yunet`): a face box (forehead to chin), five landmarks and a
score in one run, from about ``FACE_PX`` (32) px high at the scale it scans, for ~65 ns of CPU a
scanned pixel (one thread): a whole 1080p frame is ~135 ms, too much for every frame of two 25 fps
cameras on two cores. The cameras are fixed, so the strategy spends the pixels where a new face can be
(docs/detection.md has the numbers):

- **around where each track is predicted to be** (``Tracker.lookouts``), every pass, rescaled so
  the face is 32-64 px high (``TRACK_FACE_PX``): cheap whatever the face size (~1 ms a track), and a
  small face stays tracked until it is big enough to encode;
- **where the picture changed** (``detect.motion``), every ``motion_every``-th pass: a background
  model on a 480 px copy marks the moving regions; those not explained by a tracked person are
  scanned at the scale that makes a ``detect.min_face_px`` face ``FACE_PX`` high (less for a large
  region: a tall moving region is a near person with a large face), at most
  ``detect.scan_budget_px`` scaled pixels a pass (looks around tracks not counted), those passed
  over first next time;
- **the whole frame** every ``full_every``-th pass: downscaled to ``max_width`` (faces from
  ``FACE_PX`` at that scale: ~96 px in 1080p at 640), and, with ``detect.upsample``, on every other
  such pass one of ``fine_every`` horizontal bands of it at the motion scan's scale instead: small
  faces that do not move, found within 2 x ``full_every`` x ``fine_every`` passes (2.6 s at 25 fps).

Every scan returns YuNet's faces: box, landmarks and score, so no separate landmark pass is needed.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from edge.config import DetectConfig
from edge.face import yunet
from edge.face.yunet import Face
from edge.pipeline.tracker import Lookout, iou

FACE_PX = 32  # YuNet finds faces (its box, forehead to chin) from about this height at the scale it scans
SCORE = 0.7  # YuNet's score threshold: at its default 0.9 a quarter of 40-59 px street faces go unfound a frame
TRACK_FACE_PX = (32, 64)  # a tracked face outside these heights is rescaled into them for the look
MAX_SCALE = 2.0  # never enlarge more than this (a detect.min_face_px under FACE_PX)
MOTION_WIDTH = 480  # the background model runs on a copy this wide
MIN_REGION_SCALE = 0.3  # the coarsest scale a moving region is scanned at (unless over the budget)
WARM_UP = 3  # passes before the background model's verdicts are used
LOOK_BUDGET = 2  # looks around tracks scan at most this many detect.scan_budget_px a pass
CATCH_UP = 4  # a motion scan after n x its interval (frames dropped) may scan n budgets' worth, up to this


def fine_scale(det: DetectConfig) -> float:
    """The scale at which a ``detect.min_face_px`` face is ``FACE_PX`` high."""
    return min(MAX_SCALE, FACE_PX / det.min_face_px)


def smallest_face(det: DetectConfig, width: int) -> int:
    """The smallest face height (frame px) the settings ``det`` find in a frame ``width`` px wide."""
    whole = FACE_PX / min(1.0, det.max_width / width)  # by the coarse whole-frame scans
    return int(round(min(whole, det.min_face_px) if det.motion or det.upsample else whole))


class Motion:
    """Regions where a fixed camera's picture changed: OpenCV's MOG2 background model on a small copy."""

    def __init__(self):
        self.model = cv2.createBackgroundSubtractorMOG2(history=250, varThreshold=25, detectShadows=False)
        self.frames = 0
        self.open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))

    def regions(self, image: np.ndarray, tracked: list[yunet.Box]) -> list[yunet.Box]:
        """Boxes (frame px) of moving regions in ``image`` (BGR, BGRA or grey), with the people already
        tracked (``tracked``: their face boxes) left out."""
        h, w = image.shape[:2]
        f = MOTION_WIDTH / w
        if image.ndim == 3:  # grey, then resized: half the CPU of resizing the colour frame (1.7 vs 3.2 ms)
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
        small = cv2.resize(image, (MOTION_WIDTH, max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        mask = self.model.apply(small)
        self.frames += 1
        if self.frames <= WARM_UP:  # the model has not seen the background yet: everything "moves"
            return []
        for top, right, bottom, left in tracked:  # the head and the body below it
            fh = bottom - top
            mask[max(0, int((top - fh // 2) * f)):int((bottom + 6 * fh) * f) + 1,
                 max(0, int((left - fh) * f)):int((right + fh) * f) + 1] = 0
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, self.open)  # specks of noise
        mask = cv2.dilate(mask, self.grow, iterations=2)
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        out = []
        for x, y, bw, bh, area in stats[1:n]:
            if area < 12:
                continue
            out.append((int(y / f), min(w, int((x + bw) / f)), min(h, int((y + bh) / f)), int(x / f)))
        return out


class Strategy:
    def __init__(self, det: DetectConfig):
        self.det = det
        self.passes = 0  # detection passes so far
        self.full_passes = 0  # of which whole-frame scans
        self.motion = Motion() if det.motion else None
        self.scanned_px = 0  # scaled pixels scanned in the last pass
        self.regions_waiting = 0  # moving regions left for the next pass (over the budget)
        self._waited: dict[tuple, int] = {}  # coarse region cell -> passes it has waited
        self._last: dict[str, int] = {}  # scan kind -> the frame it last ran on
        self._unlooked: set[int] = set()  # lookouts (by id) passed over this pass: over the budget
        self._band = 0  # the next band of the fine whole-frame scan

    def due(self, kind: str, frame: int, passes: int) -> bool:
        """Whether the scan ``kind``, run every ``passes`` detection passes, is due on ``frame``: by
        frames elapsed since it last ran (``passes`` x ``every_n_frames``), not by passes counted, so a
        box that drops frames still looks for new faces as often in stream time (each pass then
        does more of the scans)."""
        last = self._last.get(kind)
        if last is not None and 0 <= frame - last < passes * self.det.every_n_frames:
            return False
        self._last[kind] = frame
        return True

    def detect(self, image: np.ndarray, tracks: list[Lookout], frame: int | None = None) -> list[Face]:
        """The faces in ``image`` (BGR as decoded, BGRA or grey) this pass, given the ``tracks`` to
        follow (``Tracker.lookouts``: the predicted ``.box`` and a search ``.margin`` in pixels around
        it). ``frame`` is the frame's number in the camera's stream (``Frame.seq``); without it, passes
        are taken to be ``every_n_frames`` apart."""
        det = self.det
        self.passes += 1
        frame = self.passes * det.every_n_frames if frame is None else frame
        self.scanned_px = 0
        faces = self.around_tracks(image, tracks)
        nominal, last = det.motion_every * det.every_n_frames, self._last.get("motion")
        moved = self.motion is not None and self.due("motion", frame, det.motion_every)
        if moved and self.motion is not None:  # a track not looked for (over the budget) is left to this scan
            looked = [t.box for t in tracks if id(t) not in self._unlooked]
            regions = self.motion.regions(image, looked + [f.box for f in faces])
            # as many pixels per second of the stream on a box behind real time (up to CATCH_UP x a pass's)
            behind = 1.0 if last is None else min(CATCH_UP, max(1.0, (frame - last) / nominal))
            faces += self.in_regions(image, regions, int(det.scan_budget_px * behind))
        # the whole frame on a pass without the motion scan (unless twice overdue): the cost spread
        if self.due("full", frame, det.full_every * (2 if moved else 1)) or not tracks:
            self.full_passes += 1
            faces += self.whole(image)
        return distinct(faces, det.track_iou)

    def whole(self, image: np.ndarray) -> list[Face]:
        """The whole frame: at ``detect.max_width``, and (``detect.upsample``) on every other call the
        next of ``fine_every`` bands of it at the fine scale instead, so no pass pays for both."""
        det = self.det
        h, w = image.shape[:2]
        coarse = min(1.0, det.max_width / w)
        if not det.upsample or self.full_passes % 2:
            return self._scan(image, (0, w, h, 0), coarse)
        k, self._band = self._band % det.fine_every, self._band + 1
        step = math.ceil(h / det.fine_every)
        over = int(FACE_PX / coarse)  # each band reaches a face into the next; a larger face is the coarse scan's
        return self._scan(image, (k * step, w, (k + 1) * step + over, 0), fine_scale(det))

    def around_tracks(self, image: np.ndarray, tracks: list[Lookout]) -> list[Face]:
        """Detect around each track's predicted box (``Tracker.lookouts``: ``.box`` and a search
        ``.margin``), rescaled so the face is ``TRACK_FACE_PX`` high."""
        det = self.det
        h, w = image.shape[:2]
        plans = []
        for track in tracks:
            top, right, bottom, left = track.box
            m = track.margin
            if min(h, bottom + m) - max(0, top - m) < (bottom - top) // 2 or \
                    min(w, right + m) - max(0, left - m) < (right - left) // 2:
                continue  # predicted out of the frame
            fh = max(1, bottom - top)
            lo, hi = TRACK_FACE_PX
            scale = min(MAX_SCALE, lo / fh) if fh < lo else min(1.0, hi / fh)
            region = (top - m, right + m, bottom + m, left - m)
            cost = (min(h, region[2]) - max(0, region[0])) * (min(w, region[1]) - max(0, region[3])) * scale * scale
            plans.append((track.encoded, cost, id(track), region, scale))
        # at most LOOK_BUDGET x detect.scan_budget_px a pass: on a box far behind real time the predictions
        # are wide and the looks costly; tracks not yet encoded go first, then the surest (cheapest)
        plans.sort(key=lambda p: p[:2])
        found: list[Face] = []
        spent, budget = 0.0, LOOK_BUDGET * det.scan_budget_px
        self._unlooked = set()
        for _, cost, key, region, scale in plans:
            if spent and spent + cost > budget:
                self._unlooked.add(key)
                continue
            spent += cost
            found += self._scan(image, region, scale)
        return found

    def in_regions(self, image: np.ndarray, regions: list[yunet.Box], budget: int = 0) -> list[Face]:
        """Scan moving regions within the pixel ``budget`` (``detect.scan_budget_px``), those that
        waited longest first."""
        det = self.det
        budget = budget or det.scan_budget_px
        pad = det.min_face_px // 2
        plans = []
        for top, right, bottom, left in regions:
            # a moving region n px tall holds faces of at least ~n/8 (a person is ~7 heads tall)
            scale = max(MIN_REGION_SCALE, min(fine_scale(det), FACE_PX * 8 / max(1, bottom - top)))
            box = (top - pad, right + pad, bottom + pad, left - pad)
            area = max(1, (box[2] - box[0]) * (box[1] - box[3]))
            scale = min(scale, (budget / area) ** 0.5)  # a cut, a flash: the whole frame moved
            cell = (top // 120, left // 120)
            plans.append((-self._waited.get(cell, 0), (bottom - top) * (right - left), cell, box, scale))
        plans.sort(key=lambda p: p[:2])
        found: list[Face] = []
        waited, spent = {}, 0
        for neg_wait, _, cell, box, scale in plans:
            cost = int((box[2] - box[0]) * (box[1] - box[3]) * scale * scale)
            if spent and spent + cost > budget:
                waited[cell] = 1 - neg_wait
                continue
            spent += cost
            found += self._scan(image, box, scale)
        self._waited = waited
        self.regions_waiting = len(waited)
        return found

    def _scan(self, image: np.ndarray, box: yunet.Box, scale: float) -> list[Face]:
        """YuNet on the region ``box`` of ``image`` resized by ``scale``; faces in frame coordinates."""
        h, w = image.shape[:2]
        t, r, b, lft = max(0, int(box[0])), min(w, int(box[1])), min(h, int(box[2])), max(0, int(box[3]))
        if b - t < 8 or r - lft < 8:
            return []
        self.scanned_px += round((b - t) * scale) * round((r - lft) * scale)
        found = []
        for f in yunet.detect(image[t:b, lft:r], SCORE, scale):
            top, right, bottom, left = f.box
            found.append(Face((top + t, right + lft, bottom + t, left + lft),
                              f.landmarks + np.array((lft, t), dtype=np.float32), f.score))
        return found


def distinct(faces: list[Face], overlap: float) -> list[Face]:
    """One face per person: drop a face whose box overlaps an earlier one's (a scan and a look around a
    track can both find the same face, which would otherwise start a second track)."""
    kept: list[Face] = []
    for f in faces:
        if all(iou(f.box, k.box) < overlap for k in kept):
            kept.append(f)
    return kept
