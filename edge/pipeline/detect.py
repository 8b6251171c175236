"""Where and how hard to look for faces in each frame: the detection strategy of a camera process.

Whole-frame scans find new faces; cheap passes in between only follow the live tracks. Every
``full_every``-th pass scans the whole frame (every ``fine_every``-th of those at the configured
upsampling, to find small faces; the rest at upsample 0). Other passes look only around where
each track is predicted to be (``Tracker.lookouts``). HOG cost grows with the pixels scanned, so
this is most of the saving next to detecting everything on every frame.
"""

from __future__ import annotations

import numpy as np

from edge.face import api
from edge.pipeline.tracker import iou

SMALL_FACE_PX = 100  # at detection scale, HOG at upsample 0 finds faces from ~80 px only


class Strategy:
    def __init__(self, det: dict):
        self.det = det
        self.passes = 0  # detection passes so far
        self.full_passes = 0  # of which whole-frame scans

    def detect(self, rgb: np.ndarray, tracks: list) -> list[api.Box]:
        """Boxes of the faces in ``rgb`` this pass, given the ``tracks`` to follow (objects with the
        predicted ``.box`` and a search ``.margin`` in pixels around it)."""
        det = self.det
        self.passes += 1
        if (self.passes - 1) % det["full_every"] and tracks:
            return distinct(self.around_tracks(rgb, tracks, []), det["track_iou"])
        self.full_passes += 1
        fine = (self.full_passes - 1) % det["fine_every"] == 0
        boxes = api.detect(rgb, det["max_width"], det["upsample"] if fine else 0)
        if not fine and det["upsample"]:
            boxes += self.around_tracks(rgb, tracks, boxes)  # small tracked faces a coarse scan cannot see
        return distinct(boxes, det["track_iou"])

    def around_tracks(self, rgb: np.ndarray, tracks: list, boxes: list) -> list[api.Box]:
        """Detect in a region around each track's predicted box not already covered by ``boxes``."""
        det = self.det
        h, w = rgb.shape[:2]
        scale = min(1.0, det["max_width"] / w)
        found = []
        for track in tracks:
            if any(iou(track.box, b) >= det["track_iou"] for b in boxes):
                continue
            top, right, bottom, left = track.box
            m = track.margin
            t, b = max(0, top - m), min(h, bottom + m)
            lft, r = max(0, left - m), min(w, right + m)
            if b - t < (bottom - top) // 2 or r - lft < (right - left) // 2:
                continue  # predicted out of the frame
            region = np.ascontiguousarray(rgb[t:b, lft:r])
            small = (bottom - top) * scale < SMALL_FACE_PX
            for bt, br, bb, bl in api.detect(region, int(region.shape[1] * scale) or 1,
                                             det["upsample"] if small else 0):
                found.append((bt + t, br + lft, bb + t, bl + lft))
        return found


def distinct(boxes: list, overlap: float) -> list:
    """One box per face: drop a box that overlaps an earlier one (a scan and a look around a track
    can both find the same face, which would otherwise start a second track)."""
    kept: list = []
    for b in boxes:
        if all(iou(b, k) < overlap for k in kept):
            kept.append(b)
    return kept
