"""Walking people (issue 14): tracks, encodes and alerts per walk, next to the naive per-frame loop.

The scene is :mod:`bench.scenes`: people crossing a 1080p 25 fps street view at 500-1000 px/s,
faces 110-220 px, 2-3.5 s in view, several at once, frames lost singly and in bursts. Two of the
five people are on the watch list (from their reserved reference photos, never the walk photos).

- **camera path**: every decoded frame of one scene through ``CameraWorker.process`` (detect, track,
  quality gate, encode) with the scene's frame times; tracks and encodes per walk against ground
  truth. Deterministic, and the same measure as ``tests/test_tracker.py``.
- **live box**: ``edge run`` with two scene videos as two cameras (real capture at the files' own
  25 fps, real decoding, the box's own frame drops under load), the watch list loaded; tracks,
  encodes and alerts from ``edge status`` after both files have played, per walk and per listed walk.
  The daemon alerts once per *encounter* (a listed person's presence across tracks and cameras,
  ``alerts.encounter_gap_s``): the same two people walk again and again within the gap here, so
  alerts are about one per listed person; *sightings* (one per matched track) show the tracking.
- **naive loop**: face_recognition's video example (find faces, encode each, compare with the
  known faces, every frame) alerts once per frame in which a listed person matches. Run on every
  ``NAIVE_STEP``-th frame of the first scene at half resolution with one upsampling (it finds the
  same faces as full resolution; a full 1080p upsampled pass takes seconds per frame), and scaled
  up by ``NAIVE_STEP``: an estimate, said so in the table.

Run alone: python -m bench.walks         (about 3 minutes)
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import cv2

from bench import scenes

LISTED = ("John_Salley", "John_Simm")
WALKS = 16  # per camera
NAIVE_STEP = 5


def camera_path(scene: scenes.Scene) -> dict:
    t0 = time.process_time()
    run = scenes.run_camera(scene)
    fps = len(scene.times) / (time.process_time() - t0)  # one core, decoding included
    return {**scenes.score(scene, run), "fps": round(fps, 1)}


def naive(scene: scenes.Scene, step: int = NAIVE_STEP) -> dict:
    import face_recognition

    known = [face_recognition.face_encodings(face_recognition.load_image_file(str(scenes.reference_photo(p))))[0]
             for p in LISTED]
    hits, frames = 0, 0
    t0 = time.process_time()
    for i, (img, _t) in enumerate(scenes.frames(scene)):
        if i % step:
            continue
        frames += 1
        small = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(small, cv2.COLOR_BGR2RGB)
        locations = face_recognition.face_locations(rgb, number_of_times_to_upsample=1)
        for enc in face_recognition.face_encodings(rgb, locations):
            hits += sum(bool(m) for m in face_recognition.compare_faces(known, enc, tolerance=0.6))
    listed = sum(w.person in LISTED for w in scene.walks)
    return {"frames": frames, "step": step, "alerts": hits * step, "listed_walks": listed,
            "alerts_per_listed_walk": round(hits * step / max(1, listed), 1),
            "s_per_frame": round((time.process_time() - t0) / max(1, frames), 2)}


def live(tmp: Path, feeds: list[scenes.Scene]) -> dict:
    from bench.cameras import _free_port, _status, daemon_config, start_daemon, stop

    wl = tmp / "watchlist"
    wl.mkdir()
    for i, person in enumerate(LISTED):
        (wl / f"WL-WALK-{i + 1}.jpg").write_bytes(scenes.reference_photo(person).read_bytes())
    cfg = daemon_config(tmp, "bench-walks", {f"cam{i + 1}": str(sc.path) for i, sc in enumerate(feeds)}, wl,
                        f"tcp://127.0.0.1:{_free_port()}")
    proc, log = start_daemon(cfg)
    try:
        deadline = time.monotonic() + 180 + max(sc.seconds for sc in feeds)
        while True:  # until every camera has read its whole file once (a file that ends is reopened)
            st = _status(cfg)
            if st and len(st["cameras"]) == len(feeds) and all(
                    c["stats"].get("frames_read", 0) >= len(sc.times) for c, sc in zip(st["cameras"].values(), feeds,
                                                                                         strict=True)):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / "daemon.log").read_text()[-2000:])
            time.sleep(0.5)
        time.sleep(1.0)  # the last encodings reach the daemon
        st = _status(cfg)
    finally:
        stop(proc)
        log.close()
    cams = list(st["cameras"].values())
    walks = sum(len(sc.walks) for sc in feeds)
    listed = sum(w.person in LISTED for sc in feeds for w in sc.walks)
    read = sum(c["stats"]["frames_read"] for c in cams)
    return {"walks": walks, "listed_walks": listed,
            "tracks_per_walk": round(sum(c["stats"]["tracks_started"] for c in cams) / walks, 2),
            "encodes_per_walk": round(sum(c["stats"]["encodes"] for c in cams) / walks, 2),
            "alerts": st["alerts_sent"], "alerts_per_listed_walk": round(st["alerts_sent"] / max(1, listed), 2),
            "sightings": st.get("sightings", st["alerts_sent"]),  # matched tracks (per-track alerts before encounters)
            "sightings_per_listed_walk": round(st.get("sightings", st["alerts_sent"]) / max(1, listed), 2),
            "dropped_pct": round(100 * sum(c["stats"]["frames_dropped"] for c in cams) / max(1, read), 1),
            "load_avg": round(os.getloadavg()[0], 1)}


def run() -> dict:
    from edge.face import api

    api.warm_up("auto")
    with tempfile.TemporaryDirectory(prefix="bench-walks-") as tmp_name:
        tmp = Path(tmp_name)
        feeds = [scenes.make_scene(tmp / f"walks-{k}.mp4", walks=WALKS, seed=k) for k in (0, 1)]
        out = {"scene": {"walks": len(feeds[0].walks), "frames": len(feeds[0].times), "dropped": feeds[0].dropped,
                         "listed_walks": sum(w.person in LISTED for w in feeds[0].walks)}}
        out["camera_path"] = camera_path(feeds[0])
        (tmp / "live").mkdir()
        out["live"] = live(tmp / "live", feeds)
        out["naive"] = naive(feeds[0])
    cp = out["camera_path"]
    cp.pop("per_walk")
    return out


def table(r: dict) -> str:
    sc, cp, lv, nv = r["scene"], r["camera_path"], r["live"], r["naive"]
    lines = ["| path | walks (listed) | tracks per walk | encodes per walk | alerts per listed walk "
             "| sightings per listed walk | frames/s per core |",
             "|---|---:|---:|---:|---:|---:|---:|",
             f"| naive face_recognition loop, one alert per matched frame (every {nv['step']}th frame, x{nv['step']}) "
             f"| {sc['walks']} ({nv['listed_walks']}) | — | — | {nv['alerts_per_listed_walk']} | — "
             f"| {1 / max(1e-6, nv['s_per_frame']):.1f} (half size) |",
             f"| edge camera path, in process, every frame ({sc['frames']} frames, {sc['dropped']} lost) "
             f"| {cp['walks']} ({sc['listed_walks']}) | {cp['tracks_per_walk']} | {cp['encodes_per_walk']} | — | — "
             f"| {cp['fps']} |",
             f"| edge box live, 2 cameras ({lv['dropped_pct']} % more dropped by the box, load {lv['load_avg']}) "
             f"| {lv['walks']} ({lv['listed_walks']}) | {lv['tracks_per_walk']} | {lv['encodes_per_walk']} "
             f"| {lv['alerts_per_listed_walk']} ({lv['alerts']} alerts) | {lv['sightings_per_listed_walk']} | — |"]
    return "\n".join(lines)


def main() -> None:
    r = run()
    print(f"Walking people, 1080p 25 fps, {WALKS} walks per camera, listed: {', '.join(LISTED)}; "
          f"camera path: {r['camera_path']['walks_found']} of {r['camera_path']['walks']} walks tracked, "
          f"{r['camera_path']['false_tracks']} false tracks; naive: {r['naive']['s_per_frame']} s per frame.\n")
    print(table(r))
    print("\n" + json.dumps(r, default=float))


if __name__ == "__main__":
    main()
