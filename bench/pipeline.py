"""Naive per-frame face_recognition loop vs our pipeline, on the same clip, in one run.

The naive loop is face_recognition's own video example: every frame, find faces (HOG, upsample 1),
encode every face, compare with the known faces. Ours is the live camera code path
(edge.pipeline.camera.CameraWorker.process) fed every frame of the clip, with matching as the daemon
does it. A *true hit* is a frame in which the listed person is identified: for the naive loop a frame
where a face matched; for ours a frame in which a track already matched to the person is alive.

Run alone: python -m bench.pipeline
"""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "tests" / "data" / "media" / "video" / "short_hamilton_clip.mp4"
KNOWN = {"WL-2026-0001": REPO / "demo" / "watchlist" / "WL-2026-0001.png",
         "WL-2026-0002": REPO / "demo" / "watchlist" / "WL-2026-0002.png"}


def read_frames(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def naive(frames: list[np.ndarray]) -> dict:
    """face_recognition's examples/facerec_from_video_file.py, minus the drawing."""
    import face_recognition

    known_names = list(KNOWN)
    known = [face_recognition.face_encodings(face_recognition.load_image_file(str(p)))[0] for p in KNOWN.values()]
    hits, encodes, alerts = 0, 0, set()
    t0 = time.process_time()
    for i, frame in enumerate(frames):
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        locations = face_recognition.face_locations(rgb)
        encodings = face_recognition.face_encodings(rgb, locations)
        encodes += len(encodings)
        found = False
        for enc in encodings:
            matches = face_recognition.compare_faces(known, enc, tolerance=0.6)
            for name, m in zip(known_names, matches, strict=True):
                if m:
                    found = True
                    alerts.add((i, name))  # the naive loop would alert on every such frame
        hits += found
    elapsed = time.process_time() - t0
    return {"name": "naive face_recognition loop", "frames": len(frames), "seconds": elapsed,
            "fps": len(frames) / elapsed, "encodes": encodes, "true_hit_frames": hits, "alerts": len(alerts)}


def ours(frames: list[np.ndarray], model_id: str, backend: str = "auto", **detect) -> dict:
    """The camera code path of a box running face model ``model_id``, its list (the demo's two references) loaded
    as the box loads a folder: its own templates, the operating point derived for the list's size."""
    import dataclasses

    from edge import config
    from edge.face import model as face_model
    from edge.pipeline.camera import CameraWorker
    from edge.pipeline.capture import Frame
    from edge.watchlist import operating
    from edge.watchlist.base import Matcher
    from edge.watchlist.folder import load_folder

    cfg = config.parse(f'box_id = "bench"\nmodel = "{model_id}"\n[[cameras]]\nid = "a"\nsource = "clip"\n')
    cfg.encode.backend = backend
    for key, value in detect.items():
        setattr(cfg.detect, key, value)
    matcher = Matcher(face_model.cap(cfg))
    wl = load_folder(REPO / "demo" / "watchlist", face_model.for_config(cfg))
    m = cfg.match
    op, _ = operating.for_list(operating.load_calibration(m.calibration or None, cfg.model), len(wl),
                               face_model.cap(cfg), m.target_fpir, m.rule)
    matcher.swap(dataclasses.replace(wl, operating=op))
    out: queue.Queue = queue.Queue()
    allowed = threading.Event()
    allowed.set()
    worker = CameraWorker(cfg.cameras[0], cfg, out, threading.Event(),
                          allowed)
    from edge.face import api

    face_model.for_config(cfg).warm_up()
    matched_tracks: set[int] = set()
    alerts: set[tuple[str, str]] = set()
    hits = 0
    t0 = time.process_time()
    for i, frame in enumerate(frames):
        worker.process(Frame(frame, i + 1, float(i)))
        while not out.empty():
            msg = json.loads(out.get_nowait())
            if msg["type"] != "encoding":
                continue
            hit = matcher.match(np.asarray(msg["descriptor"], dtype=np.float32))
            if hit is not None:
                matched_tracks.add(int(msg["track_id"].rsplit("-", 1)[1]))
                alerts.add((msg["track_id"], hit[0].ref))
        hits += any(t.id in matched_tracks and t.missed == 0 for t in worker.tracker.tracks.values())
    elapsed = time.process_time() - t0
    c = worker.counters
    d = cfg.detect
    enc = f"{api.encoder_name(backend)} encoder" if model_id == face_model.DLIB else "YuNet, MobileFaceNet"
    return {"name": f"edge pipeline, {model_id} ({enc}, detect every {d.every_n_frames})", "frames": len(frames),
            "seconds": elapsed, "fps": len(frames) / elapsed, "encodes": c.encodes,
            "true_hit_frames": hits, "alerts": len(alerts), "tracks": worker.tracker.started}


def run() -> list[dict]:
    frames = read_frames(CLIP)
    base = naive(frames)
    rows = [base]
    from edge.face import model as face_model

    for model_id, backend in ((face_model.DLIB, "dlib"), (face_model.DLIB, "auto"), (face_model.DEFAULT, "auto")):
        r = ours(frames, model_id, backend)
        if rows[-1]["name"] == r["name"]:
            continue
        r["speedup"] = r["fps"] / base["fps"]
        r["hits_vs_naive"] = r["true_hit_frames"] / max(1, base["true_hit_frames"])
        rows.append(r)
    return rows


def table(rows: list[dict]) -> str:
    head = "| path | frames/s | encodes | true-hit frames | alerts | speed vs naive | hits vs naive |"
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['fps']:.1f} | {r['encodes']} | {r['true_hit_frames']} | {r['alerts']} | "
                     f"{r.get('speedup', 1.0):.1f}x | {100 * r.get('hits_vs_naive', 1.0):.0f} % |")
    return "\n".join(lines)


def main() -> None:
    rows = run()
    print(f"Hamilton clip, {rows[0]['frames']} frames of 640x360, every frame, one process, one core each:\n")
    print(table(rows))


if __name__ == "__main__":
    main()
