"""A box slower than real time (issue 17): the capture keeps only the newest frame, so the camera code
sees every 3rd or 4th frame of the stream. Detection and the scans for new faces must follow the
stream's frames (``Frame.seq``), not the frames processed, or a face in view for 0.5 s is passed over.

The scene is bench.street's fixed 1080p street with noise; the people are real photos, 45-50 px high,
each seen for 13 frames (0.52 s: stepping out from behind a pillar and behind the next one), one
after another, fed to the real camera code path (detection strategy, tracker, quality gate, encoder).
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading

from bench import street
from edge import config

PEOPLE = ("John_Shimkus", "John_Simm", "obama", "biden")
SHOWN = 13  # frames each person is in view: 0.52 s at 25 fps


@dataclasses.dataclass(frozen=True)
class Glimpse(street.Walk):
    """A walker seen only between ``start`` and ``until`` (hidden by pillars before and after)."""

    x: int = 800  # face left at ``start``, px
    until: int = 0

    def box(self, i: int, whole: bool = True):
        if not self.start <= i < self.until:
            return None
        fb = self.face.box
        w = self.height * (fb[1] - fb[3]) / (fb[2] - fb[0])
        left = self.x + self.speed * (i - self.start)
        return (self.y, int(left + w), self.y + self.height, int(left))

    def frames(self) -> range:
        return range(self.start, self.until)


def _scene() -> street.Scene:
    scene = street.Scene(seconds=4.0, in_view=0, people=PEOPLE, seed=5, turns=False)
    pool = street.faces(PEOPLE)
    scene.walks = [Glimpse(k, pool[p][0], False, 45 + k, 10 + 20 * k, 300 + 140 * k, 10.0 * (-1) ** k,
                           (60 + 40 * k, 90, 160), x=500 + 250 * k, until=10 + 20 * k + SHOWN)
                   for k, p in enumerate(PEOPLE)]
    scene.walks_by_id = {w.id: w for w in scene.walks}
    return scene


def _worker():
    from edge.pipeline.camera import CameraWorker

    cfg = config.parse('box_id = "t"\n[[cameras]]\nid = "street"\nsource = "street.mp4"\n')
    allowed = threading.Event()
    allowed.set()
    out: queue.Queue = queue.Queue()
    return CameraWorker(cfg.cameras[0], cfg, out, threading.Event(), allowed), out


def test_a_slow_box_still_finds_and_encodes_small_faces_in_view_half_a_second():
    from edge.pipeline.capture import Frame

    scene = _scene()
    worker, out = _worker()
    for i in range(0, scene.n_frames, 4):  # a box at a quarter of real time: 3 frames of 4 dropped
        worker.process(Frame(scene.frame(i), i + 1, i / street.FPS))
    encoded = set()
    for msg in (json.loads(out.get_nowait()) for _ in range(out.qsize())):
        if msg["type"] == "encoding":
            i = round(msg["frame_time"] * street.FPS)
            encoded |= {w.id for w in scene.walks if i in w.frames()}
    missed = [(w.id, w.height, w.start) for w in scene.walks if w.id not in encoded]
    assert not missed, f"faces in view 0.5 s never encoded on a slow box: {missed}"


def test_a_slow_box_bounds_the_pixels_it_scans_around_tracks_and_still_encodes_everyone():
    """At an eighth of real time the predictions are wide (0.3 s between passes), and the looks around
    five tracks of 100-160 px faces would scan ~1 Mpx a pass: they stay within the look budget
    (``detect.LOOK_BUDGET`` x ``detect.scan_budget_px``; tracks not yet encoded first, the rest left
    to the motion scan), and the walkers are still encoded. (One of the five, fast and crossing
    the others' columns, is found neither before nor now: the motion scan leaves out the body below
    each tracked face, and a farther face passing through it is not looked for there;
    docs/detection.md, what is left.)"""
    from edge.pipeline import detect
    from edge.pipeline.capture import Frame

    scene = street.Scene(seconds=5.0, in_view=5, buckets=((100, 161),), people=PEOPLE, seed=7, turns=False)
    worker, out = _worker()
    strategy, looks = worker.strategy, []
    scan, around = strategy._scan, strategy.around_tracks

    def counted_scan(*a):
        looks[-1][1] += 1
        return scan(*a)

    def counted_around(image, tracks):
        looks.append([strategy.scanned_px, 0])
        strategy._scan = counted_scan
        try:
            return around(image, tracks)
        finally:
            strategy._scan = scan
            looks[-1][0] = strategy.scanned_px - looks[-1][0]

    strategy.around_tracks = counted_around
    for i in range(0, scene.n_frames, 8):
        worker.process(Frame(scene.frame(i), i + 1, i / street.FPS))
    budget = detect.LOOK_BUDGET * worker.cfg.detect.scan_budget_px
    over = [(px, n) for px, n in looks if px > budget and n > 1]
    assert not over, f"passes that looked around tracks beyond the budget ({budget} px): {over}"
    encoded = set()
    for msg in (json.loads(out.get_nowait()) for _ in range(out.qsize())):
        if msg["type"] == "encoding":
            i = round(msg["frame_time"] * street.FPS)
            encoded |= {w.id for w, gt in scene.faces(i) if street.iou_(gt, tuple(msg["box"])) > 0.3}
    in_view = [w for w in scene.walks if sum(w.box(i) is not None for i in range(0, scene.n_frames, 8)) >= 3]
    assert len(in_view) >= 4
    assert len([w for w in in_view if w.id in encoded]) >= len(in_view) - 1
