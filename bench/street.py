"""A busy street seen by a fixed 1080p camera, generated, with ground truth for every face in every frame.

What it stands for: a camera over a concourse or pavement, people crossing at brisk walking pace
(4-7 face heights a second, so a 40 px face moves ~10 px a frame at 25 fps), at several distances
(face heights 40-160 px, equal numbers in each size bucket), about five people in view at any time,
sensor noise on every frame and a codec's losses on top. The faces are real photographs (the bundled
LFW identities and portraits, at the pose they were taken: some turned), pasted on simple walking
figures over a fixed, textured background. It is not a real street: no lighting changes, no motion
blur, no shadows, every head upright. It is hard in the ways issue 17 is about: small, moving,
noisy faces, many at once.

Each walk is one person crossing once; a walk by a *listed* person should raise an alert, any
other alert is false. ``Scene.walks`` lists them, ``Scene.frame(i)`` renders frame ``i`` and
``Scene.faces(i)`` gives the ground-truth boxes (top, right, bottom, left) in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
MEDIA = REPO / "tests" / "data" / "media"
LISTED = ("John_Salley", "John_Savage", "John_Schneider")  # their first usable photo goes on the list
UNLISTED_IDS = ("John_Shimkus", "John_Simm")
PORTRAITS = {"obama": ("obama.jpg", "obama2.jpg", "obama3.jpg"), "biden": ("biden.jpg", "biden2.jpg"),
             "kit_harington": ("kit_harington_john1.jpeg", "kit_harington_john2.jpeg"),
             "rose_leslie": ("rose_leslie_img1.jpg", "rose_leslie_img2.jpg"),
             "alex_lacamoire": ("alex-lacamoire.png", "alex_lacamoire1.jpg")}
BUCKETS = ((32, 40), (40, 60), (60, 80), (80, 120), (120, 161))
YAW_BUCKETS = ((0.0, 0.15), (0.15, 0.3), (0.3, 0.45), (0.45, 9.0))
SIZE = (1920, 1080)
FPS = 25.0


@dataclass(frozen=True)
class Face:
    person: str
    path: Path
    box: tuple[int, int, int, int]  # the face in the photo, as the detector boxes it
    yaw: float  # as the quality gate measures it on the photo
    turn: int = 0  # degrees the head is turned by (a cylinder warp of the photo, see ``turned``)


@dataclass(frozen=True)
class Walk:
    id: int
    face: Face
    listed: bool
    height: int  # face box height in the frame, px
    start: int  # first frame
    y: int  # face top, px
    speed: float  # px per frame, signed
    colour: tuple[int, int, int]

    @property
    def person(self) -> str:
        return self.face.person

    def box(self, i: int, whole: bool = True) -> tuple[int, int, int, int] | None:
        """The face box in frame ``i``, or None when the face is not wholly in the frame (``whole``)
        or not in it at all."""
        w = self.height * (self.face.box[1] - self.face.box[3]) / (self.face.box[2] - self.face.box[0])
        x0 = -w - 2 * self.height if self.speed > 0 else SIZE[0] + 2 * self.height
        left = x0 + self.speed * (i - self.start)
        top = self.y + int(2 * np.sin((i - self.start) * 0.6))  # a little bob in the step
        box = (top, int(left + w), top + self.height, int(left))
        inside = box[3] >= 0 and box[1] < SIZE[0] if whole else box[1] > 0 and box[3] < SIZE[0]
        return box if inside and i >= self.start else None

    def frames(self) -> range:
        span = int((SIZE[0] + 4 * self.height + 2 * self.height) / abs(self.speed)) + 2
        return range(self.start, self.start + span)


PEOPLE = (*LISTED, *UNLISTED_IDS, *PORTRAITS)


def faces(people=PEOPLE) -> dict[str, list[Face]]:
    """Every usable photo per person: the face found with the box's own detector, its yaw measured."""
    return {p: _faces_of(p) for p in people if _faces_of(p)}


@cache
def _faces_of(person: str) -> list[Face]:
    from edge.face import api, quality

    if person in PORTRAITS:
        paths = [MEDIA / "faces" / f for f in PORTRAITS[person]]
    else:
        paths = sorted((MEDIA / "identities" / person).glob("*.jpg"))
    out = []
    for path in paths:
        rgb = api.load_image(path)
        boxes = api.detect(rgb, 1024, 1)
        if len(boxes) != 1:
            continue
        _, q = quality.gate(rgb, boxes[0], 0, 0.0, 9.0)
        out.append(Face(person, path, boxes[0], round(q.yaw, 3)))
    return out


TURNS = (0, 15, 25, 35)  # degrees; walks take turns, left or right


@cache
def _photo(path: Path, turn: int = 0, centre: float = 0.5, radius: float = 0.3) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return img if turn == 0 else _turn(img, turn, centre * img.shape[1], radius * img.shape[1])


@cache
def turned(face: Face, turn: int) -> Face | None:
    """``face`` with the head turned by ``turn`` degrees: the photo wrapped round a vertical cylinder
    through the face and rotated (the near cheek widens, the far one narrows, the nose moves off the
    eye line); re-detected and its yaw measured as the box measures it. None if the detector no
    longer finds it."""
    from edge.face import api, quality

    if turn == 0:
        return face
    rgb = np.ascontiguousarray(_photo(face.path, turn, *_head(face))[:, :, ::-1])
    w = rgb.shape[1]
    boxes = [b for b in api.detect(rgb, 1024, 1) if iou_(b, face.box) > 0.3 and b[3] > 2 and b[1] < w - 3]
    if not boxes:  # not found, or pushed against the photo's edge (the warp smears there)
        return None
    _, q = quality.gate(rgb, boxes[0], 0, 0.0, 9.0)
    return Face(face.person, face.path, boxes[0], round(q.yaw, 3), turn)


def _head(face: Face) -> tuple[float, float]:
    """(centre x, radius) of the head's cylinder, as fractions of the photo's width."""
    w = cv2.imread(str(face.path), cv2.IMREAD_REDUCED_GRAYSCALE_8).shape[1] * 8
    t, r, b, lft = face.box
    return (lft + r) / 2 / w, 0.8 * (r - lft) / w


def iou_(a, b) -> float:
    ih = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iw = max(0, min(a[1], b[1]) - max(a[3], b[3]))
    union = (a[2] - a[0]) * (a[1] - a[3]) + (b[2] - b[0]) * (b[1] - b[3]) - ih * iw
    return ih * iw / union if union else 0.0


def _turn(img: np.ndarray, turn: int, cx: float, radius: float) -> np.ndarray:
    h, w = img.shape[:2]
    theta = np.radians(turn)
    xs = np.arange(w, dtype=np.float32)
    u = np.clip((xs - cx) / radius, -1.0, 1.0)
    src = cx + radius * np.sin(np.arcsin(u) - theta)
    src = np.where(np.abs(xs - cx) <= radius, src, xs).astype(np.float32)
    map_x = np.repeat(src[None, :], h, axis=0)
    map_y = np.repeat(np.arange(h, dtype=np.float32)[:, None], w, axis=1)
    return cv2.remap(img, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def references() -> dict[str, Path]:
    """The watch list: the first photo of each listed person (never used in a walk)."""
    return {p: faces()[p][0].path for p in LISTED}


def _background(seed: int) -> np.ndarray:
    """A fixed street: sky, building fronts with windows, a pavement; textured, no faces."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = (200, 190, 170)
    x = 0
    while x < w:
        bw = int(rng.integers(160, 420))
        top = int(rng.integers(40, 260))
        colour = tuple(int(c) for c in rng.integers(60, 200, 3))
        cv2.rectangle(img, (x, top), (x + bw, h), colour, -1)
        for wy in range(top + 30, int(h * 0.62), 90):
            for wx in range(x + 20, x + bw - 40, 70):
                cv2.rectangle(img, (wx, wy), (wx + 36, wy + 50), tuple(int(c * 0.55) for c in colour), -1)
        x += bw
    img[int(h * 0.62):] = (120, 125, 128)
    tex = rng.normal(0, 9, (h // 4, w // 4, 3)).astype(np.float32)
    img = np.clip(img + cv2.resize(tex, (w, h), interpolation=cv2.INTER_LINEAR), 0, 255).astype(np.uint8)
    return cv2.GaussianBlur(img, (3, 3), 0)


class Scene:
    def __init__(self, seconds: float = 40.0, in_view: int = 5, listed_share: float = 0.25,
                 buckets=BUCKETS, seed: int = 17, noise: float = 5.0, people=None, turns: bool = True):
        rng = np.random.default_rng(seed)
        self.n_frames = int(seconds * FPS)
        self.noise = noise
        self.bg = _background(seed)
        self._noise = [rng.normal(0, noise, (SIZE[1], SIZE[0], 3)).astype(np.int16) for _ in range(3)]
        pool = faces(PEOPLE if people is None else people)
        refs = {fs[0].path for p, fs in pool.items() if p in LISTED}
        listed = [f for p in LISTED if p in pool for f in pool[p] if f.path not in refs]
        unlisted = [f for p, fs in pool.items() if p not in LISTED for f in fs]
        self.walks: list[Walk] = []
        active: list[Walk] = []
        lanes = np.linspace(120, SIZE[1] - 260, 8).astype(int)
        for i in range(self.n_frames):
            active = [w for w in active if i < w.frames().stop]
            while len(active) < in_view and i < self.n_frames - 2 * FPS:
                k = len(self.walks)  # sizes take turns; every few rounds, all sizes are listed people
                is_listed = bool(listed) and (not unlisted or (k // len(buckets)) % round(1 / listed_share) == 0)
                face = (listed if is_listed else unlisted)[int(rng.integers(len(listed if is_listed else unlisted)))]
                if turns:  # some heads are turned: a different number of degrees per round of sizes
                    turn = TURNS[(k // len(buckets) + k) % len(TURNS)] * (1 if rng.random() < 0.5 else -1)
                    face = turned(face, turn) or face
                lo, hi = buckets[k % len(buckets)]
                height = int(rng.integers(lo, hi))
                free = [int(ln) for ln in lanes if all(abs(w.y - ln) >= 1.6 * max(w.height, 60) for w in active)]
                y = free[int(rng.integers(len(free)))] if free else int(rng.choice(lanes))
                y = min(y, SIZE[1] - 6 * height)  # the figure fits below its head
                speed = float(rng.uniform(4.0, 7.0)) * height / FPS * (1 if rng.random() < 0.5 else -1)
                walk = Walk(len(self.walks), face, is_listed, height, i + int(rng.integers(0, 6)), max(10, y),
                            speed, tuple(int(c) for c in rng.integers(30, 230, 3)))
                self.walks.append(walk)
                active.append(walk)
        self.walks.sort(key=lambda w: w.height)  # nearer (bigger) people are drawn over farther ones
        self.walks_by_id = {w.id: w for w in self.walks}
        self._rng_seed = seed

    def faces(self, i: int) -> list[tuple[Walk, tuple[int, int, int, int]]]:
        out = []
        for w in self.walks:
            if i in w.frames():
                box = w.box(i)
                if box is not None and box[1] < SIZE[0] and box[3] >= 0:
                    out.append((w, box))
        return out

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as BGR, noise included (deterministic)."""
        img = self.bg.copy()
        for w in self.walks:
            if i in w.frames():
                _draw(img, w, i)
        noise = self._noise[i % len(self._noise)]
        shift = (i * 7919) % (SIZE[0] - 8)
        noisy = img.astype(np.int16) + np.roll(noise, shift, axis=1)
        return np.clip(noisy, 0, 255).astype(np.uint8)

    def write(self, path: Path, fourcc: str = "mp4v") -> Path:
        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, SIZE)
        if not out.isOpened():
            raise RuntimeError(f"cannot write {path}")
        for i in range(self.n_frames):
            out.write(self.frame(i))
        out.release()
        return path

    def summary(self) -> dict:
        return {"frames": self.n_frames, "walks": len(self.walks), "listed": sum(w.listed for w in self.walks),
                "in_view_mean": round(float(np.mean([len(self.faces(i)) for i in range(0, self.n_frames, 25)])), 1)}


def _draw(img: np.ndarray, w: Walk, i: int) -> None:
    h = w.height
    fb = w.face.box
    box = w.box(i)
    if box is None:  # the face is partly outside: still draw the figure where it is
        wf = h * (fb[1] - fb[3]) / (fb[2] - fb[0])
        x0 = -wf - 2 * h if w.speed > 0 else SIZE[0] + 2 * h
        left = int(x0 + w.speed * (i - w.start))
        box = (w.y, int(left + wf), w.y + h, left)
    top, right, bottom, left = box
    cx = (left + right) // 2
    # body: shoulders and torso, then legs swinging with the step
    cv2.rectangle(img, (cx - int(1.1 * h), bottom + h // 5), (cx + int(1.1 * h), bottom + int(3.2 * h)), w.colour, -1)
    swing = int(0.5 * h * np.sin((i - w.start) * 0.6))
    dark = tuple(int(c * 0.4) for c in w.colour)
    hip, foot = bottom + int(3.2 * h), bottom + int(5.5 * h)
    cv2.line(img, (cx - h // 3, hip), (cx - h // 3 + swing, foot), dark, max(2, h // 3))
    cv2.line(img, (cx + h // 3, hip), (cx + h // 3 - swing, foot), dark, max(2, h // 3))
    cv2.rectangle(img, (cx - h // 5, bottom - 2), (cx + h // 5, bottom + h // 4), (120, 150, 190), -1)  # neck
    # head: the photo around the detector's box, scaled so the box is h px high, with an oval mask
    photo = _photo(w.face.path, w.face.turn, *_head(w.face)) if w.face.turn else _photo(w.face.path)
    s = h / (fb[2] - fb[0])
    pad = 0.7 * (fb[2] - fb[0])
    st, sl = fb[0] - pad * 1.1, fb[3] - pad
    sb, sr = fb[2] + pad * 0.5, fb[1] + pad
    out_h, out_w = int((sb - st) * s), int((sr - sl) * s)
    m = np.float32([[s, 0, -sl * s], [0, s, -st * s]])
    head = cv2.warpAffine(photo, m, (out_w, out_h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)
    mask = np.zeros((out_h, out_w), np.float32)
    cv2.ellipse(mask, (out_w // 2, int(out_h * 0.52)), (int(out_w * 0.42), int(out_h * 0.5)), 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, h / 20))[..., None]
    y0, x0 = int(top - pad * 1.1 * s), int(left - pad * s)
    ya, xa = max(0, y0), max(0, x0)
    yb, xb = min(img.shape[0], y0 + out_h), min(img.shape[1], x0 + out_w)
    if yb <= ya or xb <= xa:
        return
    hs, ms = head[ya - y0:yb - y0, xa - x0:xb - x0], mask[ya - y0:yb - y0, xa - x0:xb - x0]
    roi = img[ya:yb, xa:xb]
    roi[:] = (hs * ms + roi * (1 - ms)).astype(np.uint8)


def bucket(height: int, buckets=BUCKETS) -> str:
    for lo, hi in buckets:
        if lo <= height < hi:
            return f"{lo}-{hi - 1}" if hi < 161 else f"{lo}+"
    return "other"


def yaw_bucket(yaw: float) -> str:
    for lo, hi in YAW_BUCKETS:
        if lo <= yaw < hi:
            return f"{lo:.2f}-{hi:.2f}" if hi < 9 else f"{lo:.2f}+"
    return "other"
