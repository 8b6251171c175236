"""The busy street again, with real turned heads and partly hidden faces (issue 17), for recall by yaw.

A sibling of ``bench.street`` (same camera, background, figures, noise, codec; what it stands for is
said there), cast from lfw-dev instead of the bundled photos, because those give yaw only up to ~0.3
and a warp of a frontal photo does not turn a head. Every face is a real photo of a real person at
the pose it was taken, its yaw measured by the gate's own measure (``bench.yawindex``): lfw-dev has
73 photos at 0.30-0.45 and 7 beyond the gate's 0.45, all real three-quarter views.

Walk kinds (``Walk.kind``), each walked by listed and by unlisted people:

- ``yaw a-b``: the whole passage at one photo's pose, by the photo's yaw bucket;
- ``glance a-b, then frontal``: the head turned (a photo at that yaw) for the first half of the
  passage and frontal (another photo of the person, yaw < 0.15) for the second: a walker glancing
  aside, then looking ahead;
- ``sunglasses`` and ``hand``: a frontal photo with dark lenses over both eyes, or a hand over the
  mouth and chin (placed from the photo's own landmarks).

A lamp post stands in front of everyone at 62 % of the width: every walker is partly hidden by it
for a moment. Faces are 80-140 px high, the sizes every walk in ``bench.street`` was recalled at,
so what this measures is pose and occlusion, not size. The watch list is a different, frontal
photo of each listed person (as a real reference would be) plus 100 frontal photos of people who
never walk; unlisted walkers are nobody on it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from bench import street, yawindex

SIZES = (80, 141)
FRONTAL = 0.15  # a reference photo, and the frontal half of a glance, are below this yaw
POLE_X, POLE_W = int(0.62 * street.SIZE[0]), 26
STAGGER = 8  # frames between two walkers entering: not a crowd all stepping in at once, hidden behind each other


@dataclass(frozen=True)
class Walk(street.Walk):
    kind: str = ""
    views: tuple = ()  # ((first frame, Face), ...): the photo shown from that frame on
    cover: str = ""  # "", "sunglasses" or "hand"

    def view(self, i: int) -> street.Face:
        face = self.face
        for start, f in self.views:
            if i >= start:
                face = f
        return face


CUTOUTS = Path(__file__).resolve().parent / "out" / "turned-heads"


def _face(p: yawindex.Photo) -> street.Face:
    return street.Face(p.person, _cutout(p.path, p.box), p.box, p.yaw)


@cache
def _cutout(path: Path, box: tuple) -> Path:
    """The photo with all but the head greyed out: LFW's crops hold parts of other people's faces at
    their edges, which would walk along beside the head (a second face no real walker carries).
    Cached in bench/out; the watch list uses the original photos."""
    out = CUTOUTS / path.parent.name / path.name.replace(".jpg", ".png")
    if not out.exists():
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        t, r, b, lft = box
        mask = np.zeros(img.shape[:2], np.float32)
        cv2.ellipse(mask, ((lft + r) // 2, (t + b) // 2 - (b - t) // 8), (int(0.62 * (r - lft)), int(0.95 * (b - t))),
                    0, 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 3)[..., None]
        grey = np.full_like(img, int(img.mean()))
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), (img * mask + grey * (1 - mask)).astype(np.uint8))
    return out


@cache
def landmarks(path: Path, box: tuple) -> np.ndarray:
    from edge.face import api

    return api.align(api.load_image(path), box)[1]


@cache
def _alone(path: Path) -> bool:
    """The photo holds one face only, as a watch-list reference must (``edge.watchlist.folder``)."""
    from edge.face import api

    return len(api.detect(api.load_image(path), 1024, 1)) == 1


def cast(seed: int = 17, listed_per_kind: int = 8, unlisted_per_kind: int = 8, distractors: int = 100):
    """(listed [(kind, views, cover)], unlisted [...], references {person: path})."""
    rng = np.random.default_rng(seed)
    photos = [p for p in yawindex.index() if p.found]
    by_person: dict[str, list[yawindex.Photo]] = {}
    for p in photos:
        by_person.setdefault(p.person, []).append(p)
    frontal = {person: sorted((p for p in ps if p.yaw < FRONTAL), key=lambda p: p.yaw)
               for person, ps in by_person.items() if len(ps) >= 2}
    people = sorted(p for p, fs in frontal.items() if fs)
    rng.shuffle(people)
    half = len(people) // 2
    ref: dict[str, yawindex.Photo] = {}  # the most frontal photo holding one face only, looked for when needed

    def reference(person: str) -> yawindex.Photo | None:
        if person not in ref:
            ref[person] = next((p for p in frontal[person] if _alone(p.path)), None)
        return ref[person]

    pools = {"listed": people[:half], "unlisted": people[half:]}  # listed people never walk unlisted
    casts: dict[str, list] = {"listed": [], "unlisted": []}
    for side, n in (("listed", listed_per_kind), ("unlisted", unlisted_per_kind)):
        mine = set(pools[side])
        walked = [p for p in photos if p.person in mine and (side == "unlisted" or (
            reference(p.person) is not None and p.path != ref[p.person].path))]
        for lo, hi in yawindex.YAW_BUCKETS:
            b = yawindex.yaw_bucket(lo)
            pool = [p for p in walked if lo <= p.yaw < hi]
            take = rng.permutation(len(pool))[:n]
            casts[side] += [(f"yaw {b}", ((0, _face(pool[k])),), "") for k in take]
            if lo >= 0.3:  # glancing: turned, then another, frontal photo of the same person
                pairs = [(p, q) for p in pool for q in walked if q.person == p.person and q.yaw < FRONTAL
                         and q.path != p.path]
                take = rng.permutation(len(pairs))[:n]
                casts[side] += [(f"glance {b}, then frontal", ((0, _face(pairs[k][0])), (0.5, _face(pairs[k][1]))),
                                 "") for k in take]
        ahead = [p for p in walked if p.yaw < FRONTAL]
        for cover in ("sunglasses", "hand"):
            take = rng.permutation(len(ahead))[:n]
            casts[side] += [(cover, ((0, _face(ahead[k])),), cover) for k in take]
    refs = {p: ref[p].path for p in {v[1].person for _, views, _ in casts["listed"] for v in views}}
    others = [p for p in pools["listed"] if p not in refs and reference(p) is not None][:distractors]
    refs.update({p: ref[p].path for p in others})  # on the list, never walking
    return casts["listed"], casts["unlisted"], refs


class Scene(street.Scene):
    def __init__(self, in_view: int = 6, seed: int = 17, noise: float = 5.0, **cast_args):
        rng = np.random.default_rng(seed)
        self.noise = noise
        self.bg = street._background(seed)
        self._noise = [rng.normal(0, noise, (street.SIZE[1], street.SIZE[0], 3)).astype(np.int16) for _ in range(3)]
        listed, unlisted, self.references = cast(seed, **cast_args)
        todo = [(True, c) for c in listed] + [(False, c) for c in unlisted]
        todo = [todo[k] for k in rng.permutation(len(todo))]
        self.walks = []
        active: list[Walk] = []
        lanes = np.linspace(20, street.SIZE[1] - 480, 12).astype(int)
        i, last, height = 0, -STAGGER, None
        while todo:
            active = [w for w in active if i < w.frames().stop]
            height = int(rng.integers(*SIZES)) if height is None else height
            room = [min([abs(w.y - min(int(ln), street.SIZE[1] - 6 * height)) / max(w.height, height)
                         for w in active] + [9.0]) for ln in lanes]
            if len(active) < in_view and i - last >= STAGGER and max(room) >= 1.0:  # one at a time, in a free lane
                last = i
                is_listed, (kind, views, cover) = todo.pop()
                best = max(room)
                y = int(rng.choice([ln for ln, r in zip(lanes, room, strict=True) if r >= min(best, 2.0)]))
                y = max(10, min(y, street.SIZE[1] - 6 * height))  # faces do not overlap, bodies may
                near = min(active, key=lambda w: abs(w.y - y), default=None)  # they cross, not one behind the other
                way = (-1 if near.speed > 0 else 1) if near is not None and abs(near.y - y) < 2 * height else \
                    (1 if rng.random() < 0.5 else -1)
                speed = float(rng.uniform(4.0, 7.0)) * height / street.FPS * way
                walk = Walk(len(self.walks), views[0][1], is_listed, height, i + int(rng.integers(0, 6)), y, speed,
                            tuple(int(c) for c in rng.integers(30, 230, 3)), kind, (), cover)
                shown = [f for f in walk.frames() if walk.box(f) is not None]  # the face wholly in view
                at = [(shown[min(len(shown) - 1, int(frac * len(shown)))] if frac else 0, f) for frac, f in views]
                walk = dataclasses.replace(walk, views=tuple(at))
                self.walks.append(walk)
                active.append(walk)
                height = None
            i += 1
        self.n_frames = max(w.frames().stop for w in self.walks) + int(street.FPS)
        self.walks.sort(key=lambda w: w.height)  # nearer (bigger) people are drawn over farther ones
        self.walks_by_id = {w.id: w for w in self.walks}

    def draw(self, img: np.ndarray, w: Walk, i: int) -> None:
        face = w.view(i)
        shown = dataclasses.replace(w, face=face) if face is not w.face else w
        street._draw(img, shown, i)
        if w.cover:
            _cover(img, shown, i)

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as BGR, noise included (deterministic), as ``street.Scene.frame`` with the lamp post."""
        img = self.bg.copy()
        for w in self.walks:
            if i in w.frames():
                self.draw(img, w, i)
        cv2.rectangle(img, (POLE_X, 0), (POLE_X + POLE_W, street.SIZE[1]), (70, 72, 75), -1)
        noise = self._noise[i % len(self._noise)]
        noisy = img.astype(np.int16) + np.roll(noise, (i * 7919) % (street.SIZE[0] - 8), axis=1)
        return np.clip(noisy, 0, 255).astype(np.uint8)


def _cover(img: np.ndarray, w: Walk, i: int) -> None:
    """Sunglasses or a hand over the face, placed by the photo's landmarks."""
    box = w.box(i, whole=False)
    if box is None:
        return
    fb = w.face.box
    s = w.height / (fb[2] - fb[0])
    pts = (landmarks(w.face.path, fb) - np.float32([fb[3], fb[0]])) * s + np.float32([box[3], box[0]])
    eye_a, eye_b, nose = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0), pts[4]
    d = float(np.linalg.norm(eye_a - eye_b))
    if w.cover == "sunglasses":
        for e in (eye_a, eye_b):
            cv2.ellipse(img, (int(e[0]), int(e[1])), (int(0.36 * d), int(0.24 * d)), 0, 0, 360, (25, 22, 20), -1)
        cv2.line(img, tuple(int(v) for v in eye_a), tuple(int(v) for v in eye_b), (25, 22, 20), max(1, int(d / 12)))
    else:  # a hand: palm over mouth and chin, fingers up one cheek
        c = nose + np.float32([0.1 * d, 0.75 * d])
        cv2.ellipse(img, (int(c[0]), int(c[1])), (int(0.75 * d), int(0.5 * d)), 10, 0, 360, (105, 140, 190), -1)
        for k in range(3):
            x = int(c[0] + (0.35 + 0.2 * k) * d)
            cv2.line(img, (x, int(c[1])), (x + int(0.1 * d), int(c[1] - 0.9 * d)), (100, 134, 182),
                     max(2, int(d / 6)))


KINDS = [f"yaw {yawindex.yaw_bucket(lo)}" for lo, _ in yawindex.YAW_BUCKETS] + [
    f"glance {yawindex.yaw_bucket(lo)}, then frontal" for lo, _ in yawindex.YAW_BUCKETS[2:]] + ["sunglasses", "hand"]
