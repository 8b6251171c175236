"""Where and how hard to look for faces in each frame: the detection strategy of a camera process.

dlib's HOG detector finds faces from about 80 px at the scale it scans, and its cost follows the
pixels scanned (about 70 ns a pixel, pyramid included). A whole 1080p frame scanned at 2x, to find
40 px faces, is 0.6 s of CPU: too much for 25 fps. The cameras are fixed, so the strategy spends the
pixels where a new face can be (docs/detection.md has the numbers):

- **around where each track is predicted to be** (``Tracker.lookouts``), every pass, rescaled so
  the face is 100-200 px high (``TRACK_FACE_PX``): cheap whatever the face size, and a small face
  stays tracked until it is big enough to encode;
- **where the picture changed** (``detect.motion``), every ``motion_every``-th pass: a background
  model on a 480 px copy marks the moving regions; those not explained by a tracked person are
  scanned at the scale that makes a ``detect.min_face_px`` face 80 px high (less for a large region:
  a tall moving region is a near person with a large face), at most ``detect.scan_budget_px``
  scaled pixels a pass (looks around tracks not counted), those passed over first next time;
- **the whole frame** every ``full_every``-th pass, downscaled to ``max_width`` (every
  ``fine_every``-th of those upsampled): for faces that do not move.

Scans run on the grey frame (dlib's HOG takes grey or RGB; grey is ~20 % cheaper, same boxes).
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.config import DetectConfig
from edge.face import api
from edge.pipeline.tracker import Lookout, iou

HOG_FACE_PX = 80  # dlib's frontal HOG finds faces from about this height at the scale it scans
TRACK_FACE_PX = (100, 200)  # a tracked face outside these heights is rescaled into them for the look
MOTION_WIDTH = 480  # the background model runs on a copy this wide
MIN_REGION_SCALE = 0.5  # the coarsest scale a moving region is scanned at (unless over the budget)
WARM_UP = 3  # passes before the background model's verdicts are used
LOOK_BUDGET = 2  # looks around tracks scan at most this many detect.scan_budget_px a pass
CATCH_UP = 4  # a motion scan after n x its interval (frames dropped) may scan n budgets' worth, up to this


def fine_scale(det: DetectConfig) -> float:
    """The scale at which a ``detect.min_face_px`` face is ``HOG_FACE_PX`` high."""
    return HOG_FACE_PX / det.min_face_px


def smallest_face(det: DetectConfig, width: int) -> int:
    """The smallest face height (frame px) the settings ``det`` find in a frame ``width`` px wide."""
    scale = min(1.0, det.max_width / width) * 2 ** det.upsample
    whole = HOG_FACE_PX / scale  # by the whole-frame scans
    return int(round(min(whole, det.min_face_px) if det.motion else whole))


class Motion:
    """Regions where a fixed camera's picture changed: OpenCV's MOG2 background model on a small copy."""

    def __init__(self):
        self.model = cv2.createBackgroundSubtractorMOG2(history=250, varThreshold=25, detectShadows=False)
        self.frames = 0
        self.open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self.grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))

    def regions(self, grey: np.ndarray, tracked: list[api.Box]) -> list[api.Box]:
        """Boxes (frame px) of moving regions, with the people already tracked (``tracked``: their
        face boxes) left out."""
        h, w = grey.shape[:2]
        f = MOTION_WIDTH / w
        small = cv2.resize(grey, (MOTION_WIDTH, max(1, round(h * f))), interpolation=cv2.INTER_AREA)
        mask = self.model.apply(small)
        self.frames += 1
        if self.frames <= WARM_UP:  # the model has not seen the background yet: everything "moves"
            return []
        for top, right, bottom, left in tracked:  # the head and the body below it
            fh = bottom - top
            mask[max(0, int((top - fh // 2) * f)):int((bottom + 7 * fh) * f) + 1,
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

    def detect(self, image: np.ndarray, tracks: list[Lookout], frame: int | None = None) -> list[api.Box]:
        """Boxes of the faces in ``image`` (RGB or grey) this pass, given the ``tracks`` to follow
        (``Tracker.lookouts``: the predicted ``.box`` and a search ``.margin`` in pixels around it).
        ``frame`` is the frame's number in the camera's stream (``Frame.seq``); without it, passes
        are taken to be ``every_n_frames`` apart."""
        det = self.det
        grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        self.passes += 1
        frame = self.passes * det.every_n_frames if frame is None else frame
        self.scanned_px = 0
        boxes = self.around_tracks(grey, tracks, [])
        nominal, last = det.motion_every * det.every_n_frames, self._last.get("motion")
        moved = self.motion is not None and self.due("motion", frame, det.motion_every)
        if moved and self.motion is not None:  # a track not looked for (over the budget) is left to this scan
            looked = [t.box for t in tracks if id(t) not in self._unlooked]
            regions = self.motion.regions(grey, looked + boxes)
            # as many pixels per second of the stream on a box behind real time (up to CATCH_UP x a pass's)
            behind = 1.0 if last is None else min(CATCH_UP, max(1.0, (frame - last) / nominal))
            boxes += self.in_regions(grey, regions, int(det.scan_budget_px * behind))
        # the whole frame on a pass without the motion scan (unless twice overdue): the cost spread
        if self.due("full", frame, det.full_every * (2 if moved else 1)) or not tracks:
            self.full_passes += 1
            fine = self.due("fine", frame, det.full_every * det.fine_every)
            boxes += api.detect(grey, det.max_width, det.upsample if fine else 0)
            h, w = grey.shape[:2]
            self.scanned_px += int(min(w, det.max_width) * h * min(1.0, det.max_width / w)
                                   * (4 if fine and det.upsample else 1))
        return distinct(boxes, det.track_iou)

    def around_tracks(self, grey: np.ndarray, tracks: list[Lookout], boxes: list) -> list[api.Box]:
        """Detect around each track's predicted box (``Tracker.lookouts``: ``.box`` and a search
        ``.margin``) not already covered by ``boxes``, rescaled so the face is 100-200 px high."""
        det = self.det
        h, w = grey.shape[:2]
        plans = []
        for track in tracks:
            if any(iou(track.box, b) >= det.track_iou for b in boxes):
                continue
            top, right, bottom, left = track.box
            m = track.margin
            if min(h, bottom + m) - max(0, top - m) < (bottom - top) // 2 or \
                    min(w, right + m) - max(0, left - m) < (right - left) // 2:
                continue  # predicted out of the frame
            fh = max(1, bottom - top)
            lo, hi = TRACK_FACE_PX
            scale = min(fine_scale(det), lo / fh) if fh < lo else min(1.0, hi / fh)
            region = (top - m, right + m, bottom + m, left - m)
            cost = (min(h, region[2]) - max(0, region[0])) * (min(w, region[1]) - max(0, region[3])) * scale * scale
            plans.append((track.encoded, cost, id(track), region, scale))
        # at most LOOK_BUDGET x detect.scan_budget_px a pass: on a box far behind real time the predictions
        # are wide and the looks costly; tracks not yet encoded go first, then the surest (cheapest)
        plans.sort(key=lambda p: p[:2])
        found, spent, budget = [], 0.0, LOOK_BUDGET * det.scan_budget_px
        self._unlooked = set()
        for _, cost, key, region, scale in plans:
            if spent and spent + cost > budget:
                self._unlooked.add(key)
                continue
            spent += cost
            found += self._scan(grey, region, scale)
        return found

    def in_regions(self, grey: np.ndarray, regions: list[api.Box], budget: int = 0) -> list[api.Box]:
        """Scan moving regions within the pixel ``budget`` (``detect.scan_budget_px``), those that
        waited longest first."""
        det = self.det
        budget = budget or det.scan_budget_px
        pad = det.min_face_px // 2
        plans = []
        for top, right, bottom, left in regions:
            # a moving region n px tall holds faces of at least ~n/10 (a person is ~7 heads tall)
            scale = max(MIN_REGION_SCALE, min(fine_scale(det), HOG_FACE_PX * 10 / max(1, bottom - top)))
            box = (top - pad, right + pad, bottom + pad, left - pad)
            area = max(1, (box[2] - box[0]) * (box[1] - box[3]))
            scale = min(scale, (budget / area) ** 0.5)  # a cut, a flash: the whole frame moved
            cell = (top // 120, left // 120)
            plans.append((-self._waited.get(cell, 0), (bottom - top) * (right - left), cell, box, scale))
        plans.sort(key=lambda p: p[:2])
        found, waited, spent = [], {}, 0
        for neg_wait, _, cell, box, scale in plans:
            cost = int((box[2] - box[0]) * (box[1] - box[3]) * scale * scale)
            if spent and spent + cost > budget:
                waited[cell] = 1 - neg_wait
                continue
            spent += cost
            found += self._scan(grey, box, scale)
        self._waited = waited
        self.regions_waiting = len(waited)
        return found

    def _scan(self, grey: np.ndarray, box: api.Box, scale: float) -> list[api.Box]:
        h, w = grey.shape[:2]
        t, r, b, lft = max(0, int(box[0])), min(w, int(box[1])), min(h, int(box[2])), max(0, int(box[3]))
        if b - t < 8 or r - lft < 8:
            return []
        region = grey[t:b, lft:r]
        if scale != 1.0:
            interp = cv2.INTER_LINEAR if scale > 1.0 else cv2.INTER_AREA
            region = cv2.resize(region, (max(1, round((r - lft) * scale)), max(1, round((b - t) * scale))),
                                interpolation=interp)
        self.scanned_px += region.shape[0] * region.shape[1]
        found = []
        for bt, br, bb, bl in api.detect(np.ascontiguousarray(region), 0, 0):
            found.append((int(bt / scale) + t, int(br / scale) + lft, int(bb / scale) + t, int(bl / scale) + lft))
        return found


def distinct(boxes: list, overlap: float) -> list:
    """One box per face: drop a box that overlaps an earlier one (a scan and a look around a track
    can both find the same face, which would otherwise start a second track)."""
    kept: list = []
    for b in boxes:
        if all(iou(b, k) < overlap for k in kept):
            kept.append(b)
    return kept
