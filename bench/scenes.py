"""A generated walking-people scene: what a camera over a busy pavement sees, with ground truth.

It stands for the situation of issue 14: a 1080p camera at 25 fps over a street, people walking
briskly across it (500-1000 px/s, faces 110-220 px, each 2-3.5 s in view), several in view at once
in different lanes (nearer lanes bigger faces), and a feed that loses frames (single frames and
bursts, as a busy network camera or an overloaded box does). The faces are real photos of real
people (``tests/data/media/identities``, one photo per walk, never the one reserved as the person's
watch-list reference) pasted with a soft edge onto a head-and-shoulders figure in front of a
blurred, noisy street-like background made with numpy and OpenCV. Motion blur follows the speed.

:func:`make_scene` writes a real video file (MPEG-4 part 2 via ``cv2.VideoWriter``) so the real
camera code decodes it, and returns the :class:`Scene`: the walks, the scene time of every frame
written (frames dropped are missing from the file; their time is not) and, per frame, where each
walk's face is. :func:`run_camera` drives the live ``CameraWorker.process`` over the decoded file
with those times and :func:`score` turns what it tracked into tracks and encodes per walk.

Used by ``tests/test_tracker.py`` and ``bench/walks.py``; test tooling, not part of the box.
"""

from __future__ import annotations

import dataclasses
import json
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from edge.config import Config

REPO = Path(__file__).resolve().parent.parent
IDENTITIES = REPO / "tests" / "data" / "media" / "identities"
LANES = ((300, 110, 150), (560, 140, 180), (830, 180, 220))  # face-centre y, face height range (px)

Box = tuple[int, int, int, int]  # top, right, bottom, left, as edge.face.api


def people() -> list[str]:
    return sorted(p.name for p in IDENTITIES.iterdir() if p.is_dir())


def reference_photo(person: str) -> Path:
    """The photo kept back for the watch list: walks never use it."""
    return sorted((IDENTITIES / person).glob("*.jpg"))[0]


def walk_photos(person: str) -> list[Path]:
    return sorted((IDENTITIES / person).glob("*.jpg"))[1:]


@dataclass
class Walk:
    id: int
    person: str
    photo: Path
    t0: float  # scene seconds: enters view
    t1: float  # leaves view
    x0: float  # face centre x at t0 (px)
    vx: float  # px/s, signed
    y: float  # face centre y (lane)
    h0: float  # face height at t0 and t1 (px): a person nearing the camera grows
    h1: float
    bob: float  # vertical bob amplitude (px), two steps a second
    colour: tuple[int, int, int] = (90, 90, 90)

    def box(self, t: float) -> Box | None:
        """The face box at scene time ``t`` (unclipped), or None when the person is not in view."""
        if not self.t0 <= t <= self.t1:
            return None
        a = (t - self.t0) / (self.t1 - self.t0)
        h = self.h0 + a * (self.h1 - self.h0)
        cx = self.x0 + self.vx * (t - self.t0)
        cy = self.y + self.bob * np.sin(2 * np.pi * 2.0 * (t - self.t0))
        return (int(cy - h / 2), int(cx + h / 2), int(cy + h / 2), int(cx - h / 2))


@dataclass
class Scene:
    path: Path
    size: tuple[int, int]  # width, height
    fps: float
    walks: list[Walk]
    times: list[float]  # scene time of each frame in the file
    dropped: int  # frames of the scene missing from the file
    truth: list[dict[int, Box]] = field(default_factory=list)  # per frame: walk id -> visible face box

    @property
    def seconds(self) -> float:
        return self.times[-1] if self.times else 0.0


def plan(walks: int = 8, seed: int = 0, size=(1920, 1080), gap=(0.9, 1.6)) -> list[Walk]:
    """``walks`` walks, one starting every ``gap`` seconds, so two or three overlap in time."""
    rng = np.random.default_rng(seed)
    width = size[0]
    names = people()
    out: list[Walk] = []
    t = 0.3
    last_person = ""
    lane_free = [0.0] * len(LANES)
    for i in range(walks):
        person = rng.choice([p for p in names if p != last_person])
        last_person = person
        free = [k for k in range(len(LANES)) if lane_free[k] <= t] or [int(np.argmin(lane_free))]
        lane = int(rng.choice(free))
        y, hmin, hmax = LANES[lane]
        h0 = float(rng.uniform(hmin, hmax))
        h1 = float(np.clip(h0 * rng.uniform(0.9, 1.15), 110, 220))
        speed = float(rng.uniform(500, 1000))
        duration = float(min(rng.uniform(2.0, 3.5), (width - 0.2 * h0) / speed))
        duration = max(duration, 1.8)
        direction = 1 if rng.random() < 0.5 else -1
        path = speed * duration
        lo, hi = 0.1 * h0, width - 0.1 * h0 - path  # the face stays (mostly) in frame throughout
        start = float(rng.uniform(lo, max(lo, hi)))
        x0 = start if direction > 0 else width - start
        photos = walk_photos(person)
        out.append(Walk(i, str(person), photos[int(rng.integers(len(photos)))], t, t + duration, x0,
                        direction * speed, float(y + rng.uniform(-30, 30)), h0, h1, float(0.04 * h0),
                        tuple(int(c) for c in rng.integers(40, 200, 3))))
        lane_free[lane] = t + duration + 0.3
        t += float(rng.uniform(*gap))
    return out


def background(size=(1920, 1080), seed: int = 0) -> np.ndarray:
    """A street-like backdrop: sky, building fronts with windows, pavement; blurred, with grain."""
    rng = np.random.default_rng(seed + 1000)
    w, h = size
    img = np.zeros((h, w, 3), np.float32)
    horizon = int(h * 0.45)
    img[:horizon] = np.linspace(200, 150, horizon)[:, None, None] * np.array([1.0, 0.95, 0.85])
    img[horizon:] = np.linspace(110, 70, h - horizon)[:, None, None] * np.array([1.0, 1.0, 1.0])
    x = 0
    while x < w:
        bw = int(rng.integers(150, 400))
        top = int(rng.integers(40, horizon - 60))
        colour = rng.uniform(60, 180, 3)
        img[top:horizon + 120, x:x + bw] = colour
        for wy in range(top + 20, horizon + 60, 70):
            for wx in range(x + 15, x + bw - 40, 60):
                img[wy:wy + 40, wx:wx + 30] = colour * 0.45
        x += bw + int(rng.integers(0, 30))
    for k in range(-8, 9):  # pavement joints converging on the horizon
        cv2.line(img, (w // 2 + k * 40, horizon + 120), (w // 2 + k * 400, h), (60, 60, 60), 3)
    img += rng.normal(0, 18, (h, w, 1)).astype(np.float32)
    img = cv2.GaussianBlur(img, (0, 0), 2.0)
    return np.clip(img, 0, 255).astype(np.uint8)


def _sprite(photo: Path) -> tuple[np.ndarray, float, float]:
    """(BGR photo, face height in it, face centre y offset from the photo centre, both in photo px)."""
    from edge.face import api

    bgr = cv2.imread(str(photo))
    boxes = api.detect(api.to_rgb(bgr), 0, 1)
    if not boxes:
        return bgr, bgr.shape[0] * 0.75, 0.0
    top, right, bottom, left = max(boxes, key=lambda b: b[2] - b[0])
    return bgr, float(bottom - top), (top + bottom) / 2 - bgr.shape[0] / 2


def _paste(frame: np.ndarray, img: np.ndarray, alpha: np.ndarray, x: int, y: int) -> None:
    """Blend ``img`` (with ``alpha`` in 0..1) onto ``frame`` with its top-left at (x, y), clipped."""
    fh, fw = frame.shape[:2]
    ih, iw = img.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(fw, x + iw), min(fh, y + ih)
    if x1 <= x0 or y1 <= y0:
        return
    sub = img[y0 - y:y1 - y, x0 - x:x1 - x].astype(np.float32)
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x, None]
    dst = frame[y0:y1, x0:x1]
    dst[:] = (sub * a + dst.astype(np.float32) * (1 - a)).astype(np.uint8)


def render(bg: np.ndarray, walks: list[Walk], sprites: dict, t: float, grain: np.ndarray) -> np.ndarray:
    frame = bg.copy()
    for walk in sorted(walks, key=lambda w: w.y):  # farther lanes first, nearer ones over them
        box = walk.box(t)
        if box is None:
            continue
        top, right, bottom, left = box
        h = bottom - top
        cx, cy = (left + right) / 2, (top + bottom) / 2
        cv2.ellipse(frame, (int(cx), int(cy + 1.9 * h)), (int(0.95 * h), int(1.5 * h)), 0, 0, 360,
                    walk.colour, -1)  # shoulders and body
        bgr, face_h, dy = sprites[walk.photo]
        s = h / face_h
        img = cv2.resize(bgr, None, fx=s, fy=s, interpolation=cv2.INTER_LINEAR)
        blur = max(1, int(abs(walk.vx) / 250))  # 1/250 s exposure
        if blur > 1:
            img = cv2.blur(img, (blur, 1))
        ih, iw = img.shape[:2]
        alpha = np.zeros((ih, iw), np.float32)
        cv2.ellipse(alpha, (iw // 2, ih // 2), (int(iw * 0.47), int(ih * 0.5)), 0, 0, 360, 1.0, -1)
        alpha = cv2.GaussianBlur(alpha, (0, 0), max(1.0, 0.04 * iw))
        _paste(frame, img, alpha, int(cx - iw / 2), int(cy - dy * s - ih / 2))
    return cv2.add(frame, grain)


def make_scene(dst: Path, walks: int = 8, seed: int = 0, size=(1920, 1080), fps: float = 25.0,
               drop: float = 0.08, bursts: int = 3, burst_len=(3, 8), fourcc: str = "mp4v") -> Scene:
    """Render the scene to ``dst`` and return it with its ground truth.

    ``drop`` is the share of single frames lost at random; ``bursts`` runs of ``burst_len`` frames
    are lost as well. The file holds only the frames not lost, at ``fps``.
    """
    ws = plan(walks, seed, size)
    rng = np.random.default_rng(seed + 7)
    n = int((max(w.t1 for w in ws) + 0.5) * fps)
    lost = set(np.flatnonzero(rng.random(n) < drop).tolist())
    for _ in range(bursts):
        start = int(rng.integers(0, n))
        lost.update(range(start, start + int(rng.integers(burst_len[0], burst_len[1] + 1))))
    bg = background(size, seed)
    grains = [rng.integers(0, 10, (size[1], size[0], 3), dtype=np.uint8) for _ in range(3)]
    sprites = {w.photo: _sprite(w.photo) for w in ws}
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not out.isOpened():
        raise RuntimeError(f"cannot write {dst} with {fourcc}")
    scene = Scene(Path(dst), size, fps, ws, [], len(lost & set(range(n))))
    for k in range(n):
        if k in lost:
            continue
        t = k / fps
        out.write(render(bg, ws, sprites, t, grains[k % 3]))
        scene.times.append(t)
        scene.truth.append({w.id: b for w in ws if (b := _visible(w.box(t), size)) is not None})
    out.release()
    return scene


def _visible(box: Box | None, size) -> Box | None:
    """The box clipped to the frame when at least 60 % of the face is in it, else None."""
    if box is None:
        return None
    top, right, bottom, left = box
    ct, cr, cb, cl = max(0, top), min(size[0], right), min(size[1], bottom), max(0, left)
    if cr <= cl or cb <= ct or (cr - cl) * (cb - ct) < 0.6 * (right - left) * (bottom - top):
        return None
    return (ct, cr, cb, cl)


def frames(scene: Scene):
    """The file decoded by OpenCV (FFmpeg), frame by frame, with each frame's scene time."""
    cap = cv2.VideoCapture(str(scene.path))
    try:
        for t in scene.times:
            ok, img = cap.read()
            if not ok:
                break
            yield img, t
    finally:
        cap.release()


# -- driving the camera code path, and scoring it ---------------------------------------------------

def worker_config(**detect) -> Config:
    from edge import config

    cfg = config.parse('box_id = "scene"\n[[cameras]]\nid = "a"\nsource = "scene"\n')
    for key, value in detect.items():
        setattr(cfg.detect, key, value)
    return cfg


def run_camera(scene: Scene, cfg: Config | None = None, t_offset: float = 1.8e9) -> dict:
    """Every frame of the file through ``CameraWorker.process`` (detect, track, gate, encode), as
    the camera process does, with each frame stamped with its capture time (scene time plus a
    wall-clock-like offset). Returns what was tracked per frame and what was sent."""
    from edge.pipeline.camera import CameraWorker
    from edge.pipeline.capture import Frame

    cfg = cfg or worker_config()
    out: queue.Queue = queue.Queue()
    allowed = threading.Event()
    allowed.set()
    worker = CameraWorker(cfg.cameras[0], cfg, out, threading.Event(), allowed)
    seen: list[list[tuple[int, Box]]] = []  # per frame: (track id, box) of tracks detected in it
    for i, (img, t) in enumerate(frames(scene)):
        now = t + t_offset
        worker.process(Frame(img, i + 1, now))
        seen.append([(tr.id, tuple(tr.box)) for tr in worker.tracker.tracks.values() if tr.last_seen == now])
    encodings = []
    while not out.empty():
        msg = json.loads(out.get_nowait())
        if msg["type"] == "encoding":
            encodings.append(msg)
    return {"seen": seen, "encodings": encodings, "counters": dataclasses.asdict(worker.counters),
            "tracks_started": worker.tracker.started}


def iou(a: Box, b: Box) -> float:
    ih = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0, min(a[1], b[1]) - max(a[3], b[3]))
    inter = ih * iw
    union = (a[2] - a[0]) * (a[1] - a[3]) + (b[2] - b[0]) * (b[1] - b[3]) - inter
    return inter / union if union > 0 else 0.0


def score(scene: Scene, run: dict) -> dict:
    """Tracks and encodes per walk. Each track belongs to the walk its boxes overlapped most often
    (IoU >= 0.3 with the true face box); tracks that never overlapped a walk are ``false_tracks``.
    Tracks per walk are over the walks found (a walk never tracked does not lower it); encodes per
    walk count every descriptor computed (``encodes``), sent or not, over all walks."""
    votes: dict[int, dict[int, int]] = {}
    for truth, seen in zip(scene.truth, run["seen"], strict=False):
        for tid, box in seen:
            best = max(truth.items(), key=lambda kv: iou(kv[1], box), default=None)
            v = votes.setdefault(tid, {})
            if best is not None and iou(best[1], box) >= 0.3:
                v[best[0]] = v.get(best[0], 0) + 1
    owner = {tid: max(v, key=v.get) for tid, v in votes.items() if v}
    per_walk = {w.id: sorted(t for t, o in owner.items() if o == w.id) for w in scene.walks}
    encodes = {w.id: 0 for w in scene.walks}
    for msg in run["encodings"]:
        tid = int(msg["track_id"].rsplit("-", 1)[1])
        if tid in owner:
            encodes[owner[tid]] += 1
    n = len(scene.walks)
    return {"walks": n, "walks_found": sum(1 for v in per_walk.values() if v),
            "tracks": sum(len(v) for v in per_walk.values()),
            "tracks_per_walk": round(sum(len(v) for v in per_walk.values()) / max(1, sum(1 for v in per_walk.values()
                                                                                     if v)), 2),
            "max_tracks_in_a_walk": max((len(v) for v in per_walk.values()), default=0),
            "false_tracks": sum(1 for tid in votes if tid not in owner),
            "encodes": run["counters"]["encodes"], "encodes_per_walk": round(run["counters"]["encodes"] / n, 2),
            "encodings_sent": len(run["encodings"]),
            "walks_encoded": sum(1 for v in encodes.values() if v), "per_walk": per_walk}
