"""A track's best view is the one encoded (issue 17): turned or blurred views wait for a better one.

Real turned heads, not warped ones: four lfw-dev photos in tests/data/bestview (two people, each
once turned and once frontal; yaw as the quality gate measures it in these frames: Schwarzenegger
0001 ~0.38, inside the gate's 0.45; Whitman 0002 ~0.5, beyond it; the other two < 0.1), and
Whitman 0003 blurred (the same photo, a Gaussian blur: out of focus, or moving fast). Each
passage is one head moving across a 960x540 frame at 100 px a second with sensor noise, its photo
switched part-way (the head turning), fed frame by frame to the camera code path
(``CameraWorker.process``: detection strategy, tracker, quality gate, encoder). Which view an
encoding came from is known from its frame time.
"""

from __future__ import annotations

import json
import queue
import threading
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import config

DATA = Path(__file__).parent / "data" / "bestview"
TURNED = "Arnold_Schwarzenegger_0001.jpg"  # yaw ~0.38: the gate lets it through, but it is turned
FRONTAL = "Arnold_Schwarzenegger_0042.jpg"
AWAY = "Christine_Todd_Whitman_0002.jpg"  # yaw ~0.5: beyond the gate's 0.45
AHEAD = "Christine_Todd_Whitman_0003.jpg"
BLUR = 2.5  # Gaussian sigma, px: sharpness ~46 against ~200 (sensor noise alone gives ~40)
FPS = 25.0
SIZE = (960, 540)


@cache
def _head(name: str, height: int = 120, blur: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(the photo scaled so its face box is ``height`` px high, the face's oval mask), BGR."""
    from edge.face import api

    rgb = api.load_image(DATA / name)
    h, w = rgb.shape[:2]
    box = min(api.detect(rgb, 0, 1), key=lambda b: abs(b[1] + b[3] - w) + abs(b[0] + b[2] - h))
    s = height / (box[2] - box[0])
    img = cv2.resize(np.ascontiguousarray(rgb[:, :, ::-1]), (0, 0), fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    if blur:
        img = cv2.GaussianBlur(img, (0, 0), blur)
    mask = np.zeros(img.shape[:2], np.float32)
    cx, cy = int((box[1] + box[3]) / 2 * s), int((box[0] + box[2]) / 2 * s)
    cv2.ellipse(mask, (cx, cy), (int(0.85 * height), int(1.1 * height)), 0, 0, 360, 1.0, -1)
    return img, cv2.GaussianBlur(mask, (0, 0), 6)[..., None]


def _frame(i: int, head: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    rng = np.random.default_rng(i % 3)
    img = np.full((SIZE[1], SIZE[0], 3), 128, np.float32)
    img[SIZE[1] // 2:] = 100  # a floor
    if head is not None:
        photo, mask = head
        x, y = 120 + 4 * i, 120
        roi = img[y:y + photo.shape[0], x:x + photo.shape[1]]
        roi[:] = photo * mask + roi * (1 - mask)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _passage(views: list[tuple[int, tuple]], frames: int) -> list[np.ndarray]:
    """Frame i shows the last view whose first frame is <= i (None: nobody in the frame)."""
    return [_frame(i, [v for start, v in views if start <= i][-1]) for i in range(frames)]


def _run(frames: list[np.ndarray], extra: str = ""):
    """(encodings as (frame index shown, track id, descriptor, frame index sent at), track ids seen
    per frame, the worker)."""
    from edge.pipeline.camera import CameraWorker
    from edge.pipeline.capture import Frame

    # dlib's gate and encoder: the yaw and sharpness bars here are its measures (docs/models.md)
    cfg = config.parse('box_id = "t"\nmodel = "dlib-resnet"\n[[cameras]]\nid = "c"\nsource = "x.mp4"\n' + extra)
    allowed = threading.Event()
    allowed.set()
    out: queue.Queue = queue.Queue()
    worker = CameraWorker(cfg.cameras[0], cfg, out, threading.Event(), allowed)
    tracked: list[set[int]] = []
    enc = []
    for i, img in enumerate(frames):
        worker.process(Frame(img, i + 1, i / FPS))
        tracked.append({t.id for t in worker.tracker.tracks.values() if t.updated and t.last_seen == i / FPS})
        for m in (json.loads(out.get_nowait()) for _ in range(out.qsize())):
            if m["type"] == "encoding":
                enc.append((round(m["frame_time"] * FPS), int(m["track_id"].rsplit("-", 1)[1]),
                            np.array(m["descriptor"]), i))
    return enc, tracked, worker


@cache
def _descriptor(name: str, blur: float = 0.0) -> np.ndarray:
    from edge.face import api

    img = _frame(0, _head(name, blur=blur))
    rgb = np.ascontiguousarray(img[:, :, ::-1])
    return api.encode(rgb, api.detect(rgb, 0, 0))[0]


def test_the_views_are_what_the_test_says():
    """The gate's own measures on these frames: otherwise the tests below prove nothing."""
    from edge.face import api, quality

    def measured(head):
        rgb = np.ascontiguousarray(_frame(0, head)[:, :, ::-1])
        (box,) = api.detect(rgb, 0, 0)
        return quality.gate(rgb, box, 40, 15.0, 0.45)[1]

    turned, frontal, away, ahead = (measured(_head(n)) for n in (TURNED, FRONTAL, AWAY, AHEAD))
    blurred = measured(_head(AHEAD, blur=BLUR))
    assert turned.ok and 0.3 <= turned.yaw <= 0.45 and not turned.good
    assert frontal.yaw < 0.1 and frontal.score > 1.2 * turned.score
    assert away.reason == "turned"
    assert ahead.good and ahead.yaw < 0.15
    assert blurred.ok and not blurred.good and blurred.sharpness < ahead.sharpness / 2


def test_turned_then_frontal_the_frontal_view_is_encoded():
    frames = _passage([(0, _head(TURNED)), (8, _head(FRONTAL))], 24)
    enc, tracked, _ = _run(frames)
    assert enc, "the passage was never encoded"
    assert len({tid for _, tid, _, _ in enc}) == 1
    early = [i for i, _, _, _ in enc if i < 8]
    assert not early, f"encoded from the turned view (frames {early}) while a frontal one followed within 0.3 s"
    d = enc[0][2]
    assert np.linalg.norm(d - _descriptor(FRONTAL)) < np.linalg.norm(d - _descriptor(TURNED))


def test_blurred_then_sharp_the_sharp_view_is_encoded():
    frames = _passage([(0, _head(AHEAD, blur=BLUR)), (8, _head(AHEAD))], 24)
    enc, _, _ = _run(frames)
    assert enc, "the passage was never encoded"
    early = [i for i, _, _, _ in enc if i < 8]
    assert not early, f"encoded from the blurred view (frames {early}) while a sharp one followed within 0.3 s"


def test_turned_beyond_the_gate_is_tracked_not_encoded_then_encoded_once_it_turns():
    """The gate's yaw, from 5 landmarks, jitters by about +-0.05 from frame to frame on the same head
    (this one measures 0.43-0.60): its limit is set to 0.40 here so that every frame of the turned
    part is beyond it."""
    frames = _passage([(0, _head(AWAY)), (30, _head(AHEAD))], 44)
    enc, tracked, worker = _run(frames, "[quality]\nmax_yaw = 0.4\n")
    before = set().union(*tracked[:30])
    assert before and all(tracked[i] for i in range(2, 30, 2)), "the turned face was not tracked"
    assert worker.counters.rejected_turned >= 10
    assert enc and all(i >= 30 for i, _, _, _ in enc), [i for i, _, _, _ in enc]
    assert {tid for _, tid, _, _ in enc} <= before, "encoded on a new track, not the one that held the turned face"


def test_a_track_seen_only_turned_is_encoded_once_the_hold_ends():
    """A view the gate lets through is not lost to waiting: when nothing better comes within
    ``encode.hold_s``, the best turned view is encoded; one that leaves the picture first too."""
    frames = _passage([(0, _head(TURNED))], 30)
    enc, _, _ = _run(frames, "[encode]\nhold_s = 0.4\n")
    assert len(enc) == 1, [(i, sent) for i, _, _, sent in enc]
    shown, _, _, sent = enc[0]
    assert 0.4 * FPS - 2 <= sent <= 0.4 * FPS + 2 and shown <= sent, (shown, sent)
    frames = _passage([(0, _head(TURNED)), (6, None)], 40)
    enc, _, _ = _run(frames, "[encode]\nhold_s = 0.4\n")
    assert len(enc) == 1 and enc[0][0] < 6, [(i, sent) for i, _, _, sent in enc]


@pytest.mark.parametrize("value", [-0.1, 6.0])
def test_hold_s_is_validated(value):
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="encode.hold_s: must be between 0 and 5"):
        config.parse(f'box_id = "t"\n[[cameras]]\nid = "a"\nsource = "x"\n[encode]\nhold_s = {value}\n')
