"""The pose of every lfw-dev photo of a person with 2+ photos, as the quality gate measures it.

Yaw is the gate's own measure (``edge.face.quality``: the nose's offset from the eye midpoint over
the eye distance, from the 5-point landmarks), on the photo at its own size. A photo the HOG
detector does not find (upsampled once) is measured on the box LFW's own framing puts every face in
(the median of the found boxes), so the faces the detector misses have a yaw too. Cached in
bench/out (lfw-dev is for tuning and measuring only; nothing of it is committed).

Run alone: python -m bench.yawindex   (prints the photos per yaw bucket, found and missed)
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

LFW = Path(__file__).resolve().parents[2] / "shared" / "media" / "lfw-dev"
CACHE = Path(__file__).resolve().parent / "out" / "lfw-dev-yaw.json"


@dataclass(frozen=True)
class Photo:
    person: str
    path: Path
    box: tuple[int, int, int, int]  # top, right, bottom, left
    found: bool  # the HOG detector (upsample 1) found it; else ``box`` is LFW's framing
    yaw: float
    pitch: float  # nose below the eye line over eye distance (larger: head tilted down)
    sharpness: float


def people(root: Path = LFW) -> dict[str, list[Path]]:
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(folder.glob("*.jpg"))
        if len(files) >= 2:
            out[folder.name] = files
    return out


def index(root: Path = LFW) -> list[Photo]:
    pp = people(root)
    paths = [p for fs in pp.values() for p in fs]
    key = hashlib.sha256("\n".join(str(p.relative_to(root)) for p in paths).encode()).hexdigest()[:16]
    if CACHE.exists():
        data = json.loads(CACHE.read_text())
        if data.get("key") == key:
            return [Photo(r["person"], root / r["path"], tuple(r["box"]), r["found"], r["yaw"], r["pitch"],
                          r["sharpness"]) for r in data["photos"]]
    photos = _measure(pp)
    CACHE.parent.mkdir(exist_ok=True)
    CACHE.write_text(json.dumps({"key": key, "photos": [
        {"person": p.person, "path": str(p.path.relative_to(root)), "box": list(p.box), "found": p.found,
         "yaw": p.yaw, "pitch": p.pitch, "sharpness": p.sharpness} for p in photos]}))
    return photos


def _measure(pp: dict[str, list[Path]]) -> list[Photo]:
    from edge.face import api

    found, missed = [], []
    for person, files in pp.items():
        for path in files:
            rgb = api.load_image(path)
            h, w = rgb.shape[:2]
            boxes = api.detect(rgb, 0, 1)
            if boxes:  # the face LFW is framed on: the one nearest the centre
                box = min(boxes, key=lambda b: abs((b[1] + b[3]) / 2 - w / 2) + abs((b[0] + b[2]) / 2 - h / 2))
                found.append((person, path, rgb, box))
            else:
                missed.append((person, path, rgb))
    framing = tuple(int(v) for v in np.median([b for *_, b in found], axis=0))
    out = [_photo(person, path, rgb, box, True) for person, path, rgb, box in found]
    out += [_photo(person, path, rgb, framing, False) for person, path, rgb in missed]
    return sorted(out, key=lambda p: str(p.path))


def _photo(person, path, rgb, box, found: bool) -> Photo:
    from edge.face import api, quality

    chip, pts = api.align(rgb, box)
    q = quality.assess(box, chip, pts, 0, 0.0, 9.0)
    eye_a, eye_b = pts[0:2].mean(axis=0), pts[2:4].mean(axis=0)
    d = float(np.linalg.norm(eye_a - eye_b)) or 1.0
    axis = (eye_b - eye_a) / d
    normal = np.array([-axis[1], axis[0]])
    pitch = float(np.dot(pts[4] - (eye_a + eye_b) / 2, normal)) / d
    return Photo(person, path, tuple(int(v) for v in box), found, round(q.yaw, 3), round(abs(pitch), 3),
                 round(q.sharpness, 1))


def descriptors(photos: list[Photo]) -> np.ndarray:
    """(n, 128) descriptors of ``photos``' faces (the gate's chip, encoded whatever the gate says), cached."""
    from edge.face import api

    cache = CACHE.with_suffix(".npz")
    key = hashlib.sha256("\n".join(f"{p.path}{p.box}" for p in photos).encode()).hexdigest()[:16]
    if cache.exists():
        z = np.load(cache)
        if str(z["key"]) == key:
            return z["d"]
    api.warm_up()
    chips = [api.align(api.load_image(p.path), p.box)[0] for p in photos]
    d = np.concatenate([api.encode_chips(chips[k:k + 64]) for k in range(0, len(chips), 64)])
    np.savez(cache, d=d, key=key)
    return d


def matched(photos: list[Photo]) -> dict[str, tuple[int, int, int, int]]:
    """Per yaw bucket of the probe: (probes, hits on their own reference, probes of people left off
    the list, false hits among those), deciding as the box does for a list of every person's most
    frontal photo (the operating point it derives for that size: ratio rule, 1 in 1,000)."""
    from edge.watchlist import operating

    d = descriptors(photos)
    rows: dict[str, list[int]] = {}
    for k, p in enumerate(photos):
        rows.setdefault(p.person, []).append(k)
    ref = {person: min(ks, key=lambda k: photos[k].yaw) for person, ks in rows.items()}
    people = sorted(ref)
    refs = np.array([ref[p] for p in people])
    op, _ = operating.for_list(operating.load_calibration(), len(refs), 0.6, 0.001, "ratio")
    dist = operating.distances(d, d[refs])
    out: dict[str, list[int]] = {}
    for k, p in enumerate(photos):
        if k == ref[p.person] or photos[ref[p.person]].yaw >= 0.15:
            continue
        own = people.index(p.person)
        row = out.setdefault(yaw_bucket(p.yaw), [0, 0, 0, 0])
        order = np.argsort(dist[k])
        d1, d2 = dist[k][order[0]], dist[k][order[1]]
        row[0] += 1
        row[1] += bool(order[0] == own and op.hits([d1], [d2])[0])
        rest = order[order != own]  # the same probe, its person off the list
        row[2] += 1
        row[3] += bool(op.hits([dist[k][rest[0]]], [dist[k][rest[1]]])[0])
    return {b: tuple(v) for b, v in out.items()}


def distances(photos: list[Photo]) -> dict[str, dict]:
    """Per yaw bucket of the probe photo: its distance to its own person's most frontal other photo
    (the reference a watch list would hold) and to the nearest other person's reference."""
    d = descriptors(photos)
    rows: dict[str, list[int]] = {}
    for k, p in enumerate(photos):
        rows.setdefault(p.person, []).append(k)
    ref = {person: min(ks, key=lambda k: photos[k].yaw) for person, ks in rows.items()}
    refs = np.array(list(ref.values()))
    ref_person = [photos[k].person for k in refs]
    out: dict[str, dict] = {}
    for k, p in enumerate(photos):
        if k == ref[p.person] or photos[ref[p.person]].yaw >= 0.15:
            continue
        dist = np.linalg.norm(d[refs] - d[k], axis=1)
        own = float(dist[ref_person.index(p.person)])
        other = float(np.min([v for v, q in zip(dist, ref_person, strict=True) if q != p.person]))
        b = out.setdefault(yaw_bucket(p.yaw), {"own": [], "other": []})
        b["own"].append(own)
        b["other"].append(other)
    return out


YAW_BUCKETS = ((0.0, 0.15), (0.15, 0.3), (0.3, 0.45), (0.45, 9.0))


def yaw_bucket(yaw: float) -> str:
    for lo, hi in YAW_BUCKETS:
        if lo <= yaw < hi:
            return f"{lo:.2f}-{hi:.2f}" if hi < 9 else f"{lo:.2f}+"
    return "other"


def main() -> None:
    photos = index()
    print(f"{len(photos)} photos of {len({p.person for p in photos})} people")
    c = Counter((yaw_bucket(p.yaw), p.found) for p in photos)
    for lo, _ in YAW_BUCKETS:
        b = yaw_bucket(lo)
        print(f"yaw {b}: found {c[(b, True)]}, missed by the detector {c[(b, False)]}")
    print("\n| probe yaw | probes | own reference: median distance | <= 0.6 | <= 0.5 | nearest other reference: "
          "median | <= 0.6 |\n|---|---:|---:|---:|---:|---:|---:|")
    dist = distances([p for p in photos if p.found])
    for lo, _ in YAW_BUCKETS:
        b = dist.get(yaw_bucket(lo))
        if b:
            own, other = np.array(b["own"]), np.array(b["other"])
            print(f"| {yaw_bucket(lo)} | {len(own)} | {np.median(own):.3f} | {np.mean(own <= 0.6):.0%} | "
                  f"{np.mean(own <= 0.5):.0%} | {np.median(other):.3f} | {np.mean(other <= 0.6):.1%} |")
    print("\nmatched as the box decides, a list of every person's most frontal photo (795):\n\n"
          "| probe yaw | probes | hit on their own reference | their person left off the list: false hits |\n"
          "|---|---:|---:|---:|")
    for lo, _ in YAW_BUCKETS:
        n, hits, m, false = matched([p for p in photos if p.found]).get(yaw_bucket(lo), (0, 0, 0, 0))
        if n:
            print(f"| {yaw_bucket(lo)} | {n} | {hits} ({hits / n:.0%}) | {false} ({false / m:.1%}) |")


if __name__ == "__main__":
    main()
