"""Small faces in a 1080p frame (issues 17, 23): a generated busy street (bench.street) whose faces are
32-60 px high, fed frame by frame to the real camera code path (detection strategy, tracker,
quality gate, encoder). A 640-px downscale of the frame makes them 11-20 px: no detector sees them
there (YuNet finds faces from ~32 px at the scale it scans, dlib's HOG from ~80)."""

from __future__ import annotations

import json
import queue
import threading

import pytest

from bench import street
from edge import config
from edge.errors import ConfigError
from edge.pipeline.tracker import iou

PEOPLE = ("John_Shimkus", "John_Simm", "obama", "biden")


def _worker(extra: str = ""):
    from edge.pipeline.camera import CameraWorker

    cfg = config.parse('box_id = "t"\n[[cameras]]\nid = "street"\nsource = "street.mp4"\n' + extra)
    allowed = threading.Event()
    allowed.set()
    out: queue.Queue = queue.Queue()
    return CameraWorker(cfg.cameras[0], cfg, out, threading.Event(),
                        allowed), out


def _run(scene, worker) -> dict[int, int]:
    """Frames in which each walk had a track on it."""
    from edge.pipeline.capture import Frame

    seen: dict[int, int] = {}
    for i in range(scene.n_frames):
        worker.process(Frame(scene.frame(i), i + 1, i / street.FPS))
        for t in worker.tracker.tracks.values():
            if not t.updated or t.last_seen != i / street.FPS:
                continue
            for walk, gt in scene.faces(i):
                if iou(t.box, gt) >= 0.3:
                    seen[walk.id] = seen.get(walk.id, 0) + 1
    return seen


@pytest.fixture(scope="module")
def scene():
    return street.Scene(seconds=3.0, in_view=4, buckets=((45, 61),), people=PEOPLE, seed=3, turns=False)


def test_faces_45_to_60_px_in_1080p_are_found_and_encoded(scene):
    worker, out = _worker()
    seen = _run(scene, worker)
    in_view = [w for w in scene.walks if sum(w.box(i) is not None for i in range(scene.n_frames)) >= 13]
    assert len(in_view) >= 4 and all(45 <= w.height <= 60 for w in in_view)
    missed = [(w.id, w.height) for w in in_view if w.id not in seen]
    assert not missed, f"faces in view >= 0.5 s never found: {missed}"
    encoded = [json.loads(out.get_nowait()) for _ in range(out.qsize())]
    assert sum(m["type"] == "encoding" for m in encoded) >= len(in_view)


def test_faces_32_to_39_px_in_1080p_are_found_on_every_pass():
    """Issue 23: faces 32-39 px high (brow to chin, as the scene measures them) are found on nearly every
    detection pass while in view, so each stays one track from which its best view is chosen. HOG, at
    the scale that makes a 40 px face 80 px high, found them on 60-90 % of the passes, and a walker
    lost between passes is a new track, another encode and another alert."""
    scene = street.Scene(seconds=2.4, in_view=4, buckets=((32, 40),), people=PEOPLE, seed=8, turns=False)
    worker, _ = _worker()
    seen = _run(scene, worker)
    every = worker.cfg.detect.every_n_frames
    passes = {w.id: sum(w.box(i) is not None for i in range(0, scene.n_frames, every)) for w in scene.walks}
    in_view = [w for w in scene.walks if passes[w.id] >= 13 // every]
    assert len(in_view) >= 4 and all(32 <= w.height < 40 for w in in_view)
    found = {w.id: (w.height, seen.get(w.id, 0), passes[w.id]) for w in in_view}
    assert all(n >= 0.85 * of for _, n, of in found.values()), f"(height, passes found, passes in view): {found}"


def test_a_face_too_small_to_encode_is_still_tracked(scene):
    worker, out = _worker("[quality]\nmin_face_px = 100\n")
    seen = _run(scene, worker)
    assert len(seen) >= 4
    msgs = [json.loads(out.get_nowait()) for _ in range(out.qsize())]
    assert not [m for m in msgs if m["type"] == "encoding"]
    assert worker.counters.rejected_small > 0


@pytest.mark.parametrize("value, message", [
    (10, "detect.min_face_px: must be between 20 and 1000"),
    (2000, "detect.min_face_px: must be between 20 and 1000"),
])
def test_min_face_px_to_detect_is_validated(value, message):
    with pytest.raises(ConfigError, match=message):
        config.parse(f'box_id = "t"\n[[cameras]]\nid = "a"\nsource = "x"\n[detect]\nmin_face_px = {value}\n')
    with pytest.raises(ConfigError, match="detect.scan_budget_px"):
        config.parse('box_id = "t"\n[[cameras]]\nid = "a"\nsource = "x"\n[detect]\nscan_budget_px = 10\n')
