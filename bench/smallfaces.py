"""Small faces on a busy street (issue 17): recall by face size and by yaw, ours next to the naive loop.

The scene is ``bench.street`` (what it stands for is said there): 1080p at 25 fps, about five people
in view, faces 40-160 px, brisk walkers, sensor noise, MPEG-4 losses. Three things in one run:

- **offline, frame by frame**: our camera code path (``CameraWorker.process``, the real detection
  strategy, tracker, quality gate and encoder, matching as the daemon does) fed every frame, and
  face_recognition's naive loop (detect at half scale with upsampling, encode every face, compare)
  fed every ``NAIVE_STEP``-th frame, which is already more than it keeps up with live (about
  1.2 fps on one core). A walk is *recalled* when a track on it matched its person; a *false
  alert* is a match to a listed person on any other walk. CPU time per frame is process time, not
  wall time: other work on the box does not count against either.
- **live**: ``edge run`` with both cameras reading the street at 25 fps once through (camera A the
  MPEG-4 file, camera B the same street as H.264 from a real RTSP server on 127.0.0.1): recall of the
  same listed walks per camera, each hit placed exactly (its audit record names the frame's position
  in the stream and the face's box), false alerts, processed fps, dropped frames, CPU per processed
  frame of each camera process (decoding included) and decoding alone, and lag in the first and
  last quarter of the run (frame age when processed; frames the reading is behind the feed); then
  the same with ``BENCH_STREET_LOAD`` (4) processes spinning on the CPU beside it: a loaded box.
- **CPU by step**: where a frame's CPU goes in the offline run (a profile taken with process time).

Run alone: python -m bench.smallfaces  (about 15 minutes on a quiet box: the naive loop ~4, ours ~1,
the turned heads ~5, each live run ~2; ``BENCH_STREET_PARTS=offline,live`` for fewer parts,
``BENCH_STREET_SECONDS`` for a shorter street)
"""

from __future__ import annotations

import contextlib
import cProfile
import dataclasses
import json
import os
import pstats
import queue
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np

from bench import street
from edge.pipeline.tracker import iou

DEBUG = bool(os.environ.get("BENCH_DEBUG"))
REPO = Path(__file__).resolve().parent.parent
NAIVE_STEP = 5  # the naive loop sees every 5th frame (5 fps): four times what it manages live
SECONDS = float(os.environ.get("BENCH_STREET_SECONDS", 90))  # ~90 walks, ~30 listed: 7 or more per size bucket
LISTED_SHARE = 1 / 3  # one round of sizes in three is by listed people


def decoded(path: Path, limit: int = 0):
    """The frames of a video file, decoded (BGR)."""
    cap = cv2.VideoCapture(str(path))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        yield frame
        limit -= 1
        if limit == 0:
            break
    cap.release()


def _walk_at(scene: street.Scene, i: int, box) -> street.Walk | None:
    best, best_iou = None, 0.3
    for walk in scene.walks:  # faces partly out of the frame too: a detector may box those
        gt = walk.box(i, whole=False) if i in walk.frames() else None
        v = iou(box, gt) if gt else 0.0
        if v >= best_iou:
            best, best_iou = walk, v
    return best


class Tally:
    """Per walk: seen (a detection on it), encoded, matched; alerts that were false."""

    def __init__(self, scene: street.Scene, played: int = 0):
        self.scene = scene
        self.played = played or scene.n_frames  # walks that ended by this frame count
        self.seen: set[int] = set()
        self.encoded: set[int] = set()
        self.recalled: set[int] = set()
        self.false_alerts: set[tuple] = set()
        self.false_on: dict[tuple, str] = {}  # false alert -> the kind of walk it was on (bench.turned)
        self.false_walks: dict[str, set] = defaultdict(set)  # kind -> walks with a false alert on them

    def alert(self, walk: street.Walk | None, person: str, key) -> None:
        if walk is not None and walk.listed and walk.person == person:
            self.recalled.add(walk.id)
        else:
            self.false_alerts.add(key)
            self.false_on.setdefault(key, getattr(walk, "kind", "") if walk is not None else "(no walk)")
            self.false_walks[self.false_on[key]].add(walk.id if walk is not None else key)

    def rows(self) -> dict:
        listed = [w for w in self.scene.walks if w.listed and w.frames().stop <= self.played]
        by_size, by_yaw = defaultdict(lambda: [0, 0]), defaultdict(lambda: [0, 0])
        for w in listed:
            for table, key in ((by_size, street.bucket(w.height)), (by_yaw, street.yaw_bucket(w.face.yaw))):
                table[key][1] += 1
                table[key][0] += w.id in self.recalled
        seen = defaultdict(lambda: [0, 0])
        for w in (w for w in self.scene.walks if w.frames().stop <= self.played):
            seen[street.bucket(w.height)][1] += 1
            seen[street.bucket(w.height)][0] += w.id in self.seen
        kinds: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))  # bench.turned's walk kinds
        for w in (w for w in self.scene.walks if getattr(w, "kind", "") and w.frames().stop <= self.played):
            k = kinds[w.kind]
            side = "listed" if w.listed else "unlisted"
            k[side] += 1
            if w.listed:
                k["seen"] += w.id in self.seen
                k["encoded"] += w.id in self.encoded
                k["recalled"] += w.id in self.recalled
        for kind in self.false_on.values():
            kinds[kind]["false"] += 1
        for kind, walks in self.false_walks.items():
            kinds[kind]["false_walks"] = len(walks)
        return {"recall_by_size": dict(by_size), "recall_by_yaw": dict(by_yaw), "seen_by_size": dict(seen),
                "by_kind": {k: dict(v) for k, v in kinds.items()},
                "false_alerts": len(self.false_alerts), "recalled": len(self.recalled), "listed": len(listed)}


def ours(scene: street.Scene, frames, refs: dict | None = None, daemon_match: bool = False, **detect) -> dict:
    """``daemon_match``: decide hits as the daemon does (the operating point it derives for the list's
    size, a track's views fused); else each encoding alone at the plain distance cap."""
    from edge import config
    from edge.face import api
    from edge.face import model as face_model
    from edge.pipeline.camera import CameraWorker
    from edge.pipeline.capture import Frame
    from edge.pipeline.fusion import TrackFusion
    from edge.watchlist import operating
    from edge.watchlist.base import Matcher

    cfg = config.parse('box_id = "bench"\n[[cameras]]\nid = "a"\nsource = "street"\n')
    for key, value in detect.items():
        setattr(cfg.detect, key, value)
    matcher = Matcher(face_model.cap(cfg))
    wl = watchlist(refs, face_model.for_config(cfg))  # the box's own templates of the list, as it loads a folder
    if daemon_match:
        m = cfg.match
        op, _ = operating.for_list(operating.load_calibration(m.calibration or None, cfg.model), len(wl),
                                   face_model.cap(cfg), m.target_fpir, m.rule)
        wl = dataclasses.replace(wl, operating=op)
    matcher.swap(wl)
    fusion = TrackFusion()
    out: queue.Queue = queue.Queue()
    allowed = threading.Event()
    allowed.set()
    worker = CameraWorker(cfg.cameras[0], cfg, out, threading.Event(),
                          allowed)
    api.warm_up()
    tally = Tally(scene)
    track_walk: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    cpu = 0.0
    n = 0
    prof = cProfile.Profile(time.process_time)  # CPU by step: process time, as the total
    for i, frame in enumerate(frames):
        t0 = time.process_time()
        prof.enable()
        worker.process(Frame(frame, i + 1, i / street.FPS, i))
        prof.disable()
        cpu += time.process_time() - t0
        n += 1
        for t in worker.tracker.tracks.values():
            if t.updated and t.last_seen == i / street.FPS:
                w = _walk_at(scene, i, t.box)
                if w is not None:
                    track_walk[t.id][w.id] += 1
                    tally.seen.add(w.id)
        while not out.empty():
            msg = json.loads(out.get_nowait())
            if msg["type"] != "encoding":
                continue
            tid = int(msg["track_id"].rsplit("-", 1)[1])
            votes = track_walk.get(tid)
            walk = scene.walks_by_id[max(votes, key=votes.get)] if votes else None
            if walk is not None:
                tally.encoded.add(walk.id)
            if DEBUG:
                print("encode", tid, walk and (walk.id, walk.kind if hasattr(walk, "kind") else "", walk.person),
                      i, msg["quality"], msg["encode_no"])
            probe = np.asarray(msg["descriptor"], dtype=np.float32)
            hit = matcher.match(fusion.add(msg["track_id"], probe, i / street.FPS) if daemon_match else probe,
                                msg.get("model"))
            if hit is not None:
                at = _walk_at(scene, msg["frame_no"], tuple(msg["box"]))  # the face encoded, as live
                tally.alert(at, hit[0].ref, ("track", tid))
                if DEBUG:
                    print("match", tid, walk and (walk.id, walk.person, walk.height), hit[0].ref, round(hit[1], 3),
                          msg["quality"])
    if DEBUG:
        for w in scene.walks:
            print("walk", w.id, w.person, w.listed, w.height, w.face.yaw, "seen" if w.id in tally.seen else "-",
                  "enc" if w.id in tally.encoded else "-", "REC" if w.id in tally.recalled else "")
    r = tally.rows()
    r.update(name="edge pipeline", frames=n, cpu_ms_per_frame=1000 * cpu / max(1, n), steps=steps(prof, n),
             encodes=worker.counters.encodes, tracks=worker.tracker.started)
    return r


STEPS = (  # (step, [(module file, function)]): where a frame's CPU goes in the camera code path
    ("looks around tracks (YuNet)", [("pipeline/detect.py", "around_tracks")]),
    ("background model", [("pipeline/detect.py", "regions")]),
    ("moving regions (YuNet)", [("pipeline/detect.py", "in_regions")]),
    ("whole frame: 640 px, or a band at the fine scale (YuNet)", [("pipeline/detect.py", "whole")]),
    ("tracker", [("pipeline/tracker.py", "update"), ("pipeline/tracker.py", "lookouts")]),
    ("alignment and quality gate", [("face/model.py", "prepare"), ("face/quality.py", "gate")]),
    ("encoder", [("face/model.py", "encode"), ("face/api.py", "encode_chips")]),
    ("crops and messages", [("pipeline/camera.py", "send")]),
)


def steps(prof: cProfile.Profile, frames: int) -> dict[str, float]:
    """CPU ms per frame by step (``STEPS``) from a profile taken with process time; the rest as "other"."""
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]  # (file, line, function) -> (.., .., tt, ct, ..)
    out = {}
    for name, funcs in STEPS:
        cum = sum(v[3] for (file, _, fn), v in stats.items() if any(file.endswith(f) and fn == g for f, g in funcs))
        out[name] = 1000 * cum / max(1, frames)
    return out


def steps_table(row: dict, decode_ms: float | None = None) -> str:
    lines = ["| step | CPU ms per frame |", "|---|---:|"]
    lines += [f"| {k} | {v:.1f} |" for k, v in row["steps"].items()]
    other = row["cpu_ms_per_frame"] - sum(row["steps"].values())
    lines.append(f"| other (colour conversion around faces, frame bookkeeping, the profiler) | {other:.1f} |")
    lines.append(f"| all, decoding apart | {row['cpu_ms_per_frame']:.1f} |")
    if decode_ms is not None:
        lines.append(f"| decoding (MPEG-4 1080p, one thread) | {decode_ms:.1f} |")
    return "\n".join(lines)


def naive(scene: street.Scene, frames, step: int = NAIVE_STEP, refs: dict | None = None) -> dict:
    import face_recognition

    wl = watchlist(refs)
    known, names = wl.templates, [e.ref for e in wl.entries]
    tally = Tally(scene)
    cpu, n = 0.0, 0
    for i, frame in enumerate(frames):
        if i % step:
            continue
        t0 = time.process_time()
        small = cv2.resize(frame, (0, 0), fx=0.5, fy=0.5)  # face_recognition's own example
        rgb = np.ascontiguousarray(small[:, :, ::-1])
        locs = face_recognition.face_locations(rgb)
        encs = face_recognition.face_encodings(rgb, locs)
        matches = []
        for loc, enc in zip(locs, encs, strict=True):
            d = face_recognition.face_distance(known, enc)
            if len(d) and d.min() <= 0.6:
                matches.append((loc, names[int(np.argmin(d))]))
        cpu += time.process_time() - t0
        n += 1
        for (top, right, bottom, left) in locs:
            w = _walk_at(scene, i, (top * 2, right * 2, bottom * 2, left * 2))
            if w is not None:
                tally.seen.add(w.id)
        for (top, right, bottom, left), ref in matches:
            w = _walk_at(scene, i, (top * 2, right * 2, bottom * 2, left * 2))
            tally.alert(w, ref, ("frame", i, top, left))
    r = tally.rows()
    r.update(name=f"naive face_recognition loop (half scale, every {step}th frame)", frames=n,
             cpu_ms_per_frame=1000 * cpu / max(1, n))
    return r


_WL: dict = {}


def watchlist(refs: dict | None = None, model=None):
    """The watch list of ``refs`` (person -> photo; default: the street's) with templates of face ``model``
    (default: dlib's, as the naive loop compares), loaded once."""
    from edge.face import model as face_model
    from edge.watchlist.folder import load_folder

    refs = street.references() if refs is None else refs
    m = model or face_model.get(face_model.DLIB)
    key = (m.id, *sorted((p, str(path)) for p, path in refs.items()))
    if key not in _WL:
        folder = Path(tempfile.mkdtemp(prefix="street-wl-"))
        for person, path in refs.items():
            _one_face(path, folder / f"{person}.png", m)
        _WL[key] = load_folder(folder, m)
    return _WL[key]


def _one_face(src: Path, dest: Path, m) -> None:
    """A reference photo as the SPOC would crop it: where the model finds several faces (YuNet finds a
    news photo's bystanders that HOG missed), the one nearest the centre (LFW centres the named person)."""
    import cv2

    from edge.face import api

    rgb = api.load_image(src)
    faces = m.find(rgb)
    if len(faces) > 1:
        h, w = rgb.shape[:2]
        keep = min(faces, key=lambda f: ((f.box[1] + f.box[3]) / 2 - w / 2) ** 2
                   + ((f.box[0] + f.box[2]) / 2 - h / 2) ** 2)
        rgb = rgb.copy()
        for f in faces:  # the others greyed out, as a SPOC's crop leaves them out
            if f is not keep:
                t, r, b, l_ = f.box
                rgb[t:b, l_:r] = 128
    cv2.imwrite(str(dest), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def kind_table(ours_row: dict, naive_row: dict, kinds) -> str:
    """Per walk kind (bench.turned): what became of the listed walks in each pipeline, and false alerts."""
    out = ["| walk kind | listed walks | ours: tracked | ours: encoded | ours: recalled | naive: recalled | "
           "unlisted walks | false alerts, ours / naive (walks they were on) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for kind in kinds:
        o, n = ours_row["by_kind"].get(kind, {}), naive_row["by_kind"].get(kind, {})
        listed = o.get("listed", 0)

        def pct(v: int, of: int = listed) -> str:
            return f"{v}/{of} ({100 * v / of:.0f} %)" if of else "-"
        out.append(f"| {kind} | {listed} | {pct(o.get('seen', 0))} | {pct(o.get('encoded', 0))} | "
                   f"{pct(o.get('recalled', 0))} | {pct(n.get('recalled', 0))} | {o.get('unlisted', 0)} | "
                   f"{o.get('false', 0)} ({o.get('false_walks', 0)}) / "
                   f"{n.get('false', 0)} ({n.get('false_walks', 0)}) |")
    extra = {k for r in (ours_row, naive_row) for k in r["by_kind"] if k not in kinds}
    for kind in sorted(extra):  # false alerts on no walk at all
        o, n = ours_row["by_kind"].get(kind, {}), naive_row["by_kind"].get(kind, {})
        out.append(f"| {kind} | - | - | - | - | - | - | {o.get('false', 0)} / {n.get('false', 0)} |")
    out.append(f"| all | {ours_row['listed']} | | | {ours_row['recalled']} | {naive_row['recalled']} | | "
               f"{ours_row['false_alerts']} / {naive_row['false_alerts']} |")
    return "\n".join(out)


def turned_heads(tmp: Path) -> tuple[dict, dict, str]:
    """Recall by yaw and occlusion on bench.turned's scene (real turned heads from lfw-dev), ours and
    the naive loop in the same run; (ours, naive, the table)."""
    from bench import turned

    scene = turned.Scene()
    print(f"turned heads (bench.turned): {scene.summary()}, watch list of {len(scene.references)}\n")
    video = scene.write(tmp / "turned.mp4")
    rows = [ours(scene, decoded(video), scene.references, daemon_match=True),
            naive(scene, decoded(video), refs=scene.references)]
    return rows[0], rows[1], kind_table(rows[0], rows[1], turned.KINDS)


def table(rows: list[dict], key: str, title: str) -> str:
    buckets = sorted({b for r in rows for b in r[key]}, key=lambda b: float(b.split("-")[0].rstrip("+")))
    out = [f"| {title} | " + " | ".join(buckets) + " | false alerts | processed fps | CPU ms per frame |",
           "|---|" + "---:|" * (len(buckets) + 3)]
    for r in rows:
        cells = []
        for b in buckets:
            got, of = r[key].get(b, (0, 0))
            cells.append(f"{got}/{of} ({100 * got / of:.0f} %)" if of else "-")
        fps = r.get("processed_fps") or f"({1000 / max(1e-6, r['cpu_ms_per_frame']):.1f} on one core)"
        out.append(f"| {r['name']} | " + " | ".join(cells) + f" | {r['false_alerts']} | {fps} | "
                   f"{r['cpu_ms_per_frame']:.1f} |")
    return "\n".join(out)


@contextlib.contextmanager
def hogs(n: int):
    """``n`` processes that spin on the CPU (other work on the box: a loaded box), ended afterwards."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


def live(scene: street.Scene, video: Path, tmp: Path, load: int = 0) -> dict:
    """``edge run`` with camera A on the MPEG-4 file and camera B on the same street as H.264 from a
    real RTSP server, until each has read the whole scene once; with ``load`` processes spinning on
    the CPU beside it (a loaded box). Each hit (alert or sighting) is placed exactly: its audit
    record carries the frame's position in the camera's stream (``frame_no``; both feeds start the
    scene at 0) and the face's box in it, matched to the ground truth of that frame."""
    with hogs(load):
        out = _live(scene, video, tmp / f"live-{load}")
    out["load"] = load
    return out


def _live(scene: street.Scene, video: Path, tmp: Path) -> dict:
    import subprocess

    import psutil

    from bench.cameras import _cpu_seconds, _free_port, daemon_config, start_daemon, stop
    from edge import config
    from edge.codec import parse_time
    from edge.errors import EdgeError
    from edge.pipeline.control import request

    server = REPO / "tests" / "rtsp_camera.py"
    tmp.mkdir()
    h264 = video.with_name(video.stem + "-h264.mp4")
    if not h264.exists():
        subprocess.run(["/usr/bin/python3", str(server), "--transcode", str(video), str(h264)], check=True)
    port = _free_port()
    rtsp = subprocess.Popen(["/usr/bin/python3", str(server), "--port", str(port), "--file", str(h264)],
                            stdout=subprocess.PIPE, text=True)
    assert rtsp.stdout.readline().strip() == "ready"
    wl = tmp / "watchlist"
    wl.mkdir()
    for person, path in street.references().items():
        (wl / f"{person}{path.suffix}").write_bytes(path.read_bytes())
    cams = {"file": str(video), "rtsp": f"rtsp://127.0.0.1:{port}/cam"}
    cfg = daemon_config(tmp, "bench-box", cams, wl, f"tcp://127.0.0.1:{_free_port()}", loop=True)
    proc, log = start_daemon(cfg)
    endpoint = config.load(str(cfg)).control_endpoint  # asked from here: no `edge status` process a second
    n = scene.n_frames
    samples: list[tuple[float, float, dict]] = []  # (wall time, CPU s of the process tree, camera stats)
    try:
        ps = psutil.Process(proc.pid)
        deadline = time.monotonic() + 180 + 3 * n / street.FPS  # a box far slower than real time: what it read
        while time.monotonic() < deadline:
            try:
                st = request(endpoint, {"cmd": "status"}, 2.0)
            except EdgeError:
                st = {"cameras": {}}
            stats = {cid: c["stats"] for cid, c in st["cameras"].items() if c.get("stats")}
            samples.append((time.time(), _cpu_seconds(ps), stats))
            if len(stats) == len(cams) and all(s.get("frames_read", 0) > n + street.FPS for s in stats.values()):
                break  # each camera has read the whole street once, and a second more
            if proc.poll() is not None:
                raise RuntimeError("edge run ended: " + (tmp / "daemon.log").read_text()[-2000:])
            time.sleep(1.0)
        if len(samples[-1][2]) < len(cams):
            raise RuntimeError("the cameras did not come up: " + (tmp / "daemon.log").read_text()[-2000:])
    finally:
        stop(proc)
        log.close()
        rtsp.kill()
        rtsp.wait()
    hits = []
    for path in sorted((tmp / "state").rglob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and rec.get("kind") in ("alert", "sighting"):  # every hit: a
                    hits.append(rec["data"])  # passage's first opens an alert, later ones join it
    out = {"load_avg": os.getloadavg()[0], "cameras": {}}
    for cid in cams:
        series = [(t, cpu, s[cid]) for t, cpu, s in samples if cid in s and s[cid].get("frames_read", 0) > 0]
        end = next(((t, s) for t, _, s in series if s["frames_read"] >= n), (series[-1][0], series[-1][2]))
        tally, unplaced = Tally(scene, min(n, end[1]["frames_read"])), 0  # walks it read to their end
        for rec in (r for r in hits if r.get("camera_id") == cid and isinstance(r.get("frame_no"), int)):
            at, pos = parse_time(rec["time"]).timestamp(), rec["frame_no"]
            if pos >= n or at > end[0] + 3 or (at > end[0] and pos < n // 2):
                continue  # not the street's first pass on this camera (the file loops, RTSP goes on)
            walk = _walk_at(scene, pos, tuple(rec["box"]))
            unplaced += walk is None
            tally.alert(walk, rec["ref"], rec.get("track_id"))
            if DEBUG:
                print("hit", cid, rec["ref"], pos, rec["box"], rec["distance"], rec.get("track_id"),
                      walk and (walk.id, walk.person, walk.height))
        r = tally.rows()
        r.update(_live_figures(series, end), name=f"edge run, camera {cid} "
                 f"({'MPEG-4 file' if cid == 'file' else 'RTSP H.264'}, live)", unplaced=unplaced,
                 size=f"{end[1].get('width')}x{end[1].get('height')}", reconnects=end[1].get("reconnects", 0))
        if DEBUG:
            for w in scene.walks:
                if w.listed and w.id not in tally.recalled and w.frames().stop <= tally.played:
                    print("missed", cid, w.id, w.person, w.height, w.face.yaw, w.frames())
        out["cameras"][cid] = r
    window = [(t, cpu) for t, cpu, s in samples if len(s) == len(cams)]
    (t0, c0), (t1, c1) = window[len(window) // 10], window[-1]  # after the models were loaded
    out["cores_busy"] = round((c1 - c0) / max(1e-6, t1 - t0), 2)
    return out


def _live_figures(series: list, end: tuple) -> dict:
    """One camera's rates over its first pass of the street, from its counters sampled once a second:
    processed fps, dropped frames, CPU per processed frame (all of the camera process: decoding
    included) and decoding alone, and lag in the first and the last quarter: the age of a frame when
    processed (``lag_ms``) and how far reading is behind the feed's 25 fps (frames)."""
    series = [p for p in series if p[0] <= end[0] + 1]
    (ta, _, a), (tb, _, b) = series[len(series) // 10], series[-1]  # after the first frames (caches warm)
    dt = max(1e-6, tb - ta)
    d = {k: b.get(k, 0) - a.get(k, 0) for k in ("frames_read", "frames_processed", "frames_dropped", "cpu_s")}
    decode = float(np.mean([s.get("decode_ms", 0.0) for _, _, s in series[len(series) // 10:]]))  # per frame read
    t_up = series[0][0] - series[0][2]["frames_read"] / street.FPS  # when the feed's first frame arrived
    q = max(1, len(series) // 4)

    def lag(part: list) -> tuple[float, float]:
        return (round(float(np.mean([s.get("lag_ms", 0.0) for _, _, s in part])), 1),
                round(float(np.mean([(t - t_up) * street.FPS - s["frames_read"] for t, _, s in part])), 1))

    return {"processed_fps": round(d["frames_processed"] / dt, 1), "read_fps": round(d["frames_read"] / dt, 1),
            "dropped_pct": round(100 * d["frames_dropped"] / max(1, d["frames_read"]), 1),
            "cpu_ms_per_frame": round((1000 * d["cpu_s"] - decode * d["frames_read"])
                                      / max(1, d["frames_processed"]), 1),
            "cores": round(d["cpu_s"] / dt, 2), "decode_ms": decode,
            "detect_ms": round(b.get("detect_ms", 0.0), 1), "lag_first": lag(series[:q]), "lag_last": lag(series[-q:])}


def live_table(res: dict) -> str:
    rows = ["| camera | source | processed fps (read) | dropped | CPU ms per processed frame, decoding apart "
            "(camera cores) | decode CPU ms per frame read | "
            "lag: frame age ms, frames behind the feed (first → last quarter) | "
            "hits not on a face | reconnects |", "|---|---|---:|---:|---:|---:|---|---:|---:|"]
    for cid, r in res["cameras"].items():
        (a1, b1), (a2, b2) = r["lag_first"], r["lag_last"]
        rows.append(f"| {cid} | {r['name'].split('(')[1].split(',')[0]} {r['size']} | {r['processed_fps']} "
                    f"({r['read_fps']}) | {r['dropped_pct']} % | {r['cpu_ms_per_frame']} ({r['cores']}) | "
                    f"{r['decode_ms']:.1f} | {a1}, {b1} → {a2}, {b2} | {r['unplaced']} | {r['reconnects']} |")
    rows.append(f"\nwhole box, both cameras: {res['cores_busy']} cores busy (the daemon and both camera processes); "
                f"1-minute load average {res['load_avg']:.1f} (other work on the box shares the two cores"
                + (f"; {res['load']} of it processes this bench started, each spinning on a core)" if res.get("load")
                   else ")"))
    return "\n".join(rows)


LOAD = int(os.environ.get("BENCH_STREET_LOAD", 4))  # the loaded run: this many processes spinning beside the box


def main() -> None:
    scene = street.Scene(seconds=SECONDS, in_view=6, listed_share=LISTED_SHARE)
    print(f"busy street: {scene.summary()}\n")
    with tempfile.TemporaryDirectory(prefix="bench-street-") as tmp_name:
        video = scene.write(Path(tmp_name) / "street.mp4")  # through the codec, as a camera's stream is
        parts = os.environ.get("BENCH_STREET_PARTS", "offline,turned,live,loaded").split(",")
        rows = [naive(scene, decoded(video)), ours(scene, decoded(video), daemon_match=True)] \
            if "offline" in parts else []  # matched as the daemon matches: like for like with the live rows
        res = live(scene, video, Path(tmp_name)) if "live" in parts else None
        loaded = live(scene, video, Path(tmp_name), LOAD) if "loaded" in parts else None
        heads = turned_heads(Path(tmp_name))[2] if "turned" in parts else None
    for r in (res, loaded):
        rows += [dict(c, name=c["name"] + (f", box loaded by {LOAD} spinning processes" if r is loaded else ""))
                 for c in r["cameras"].values()] if r else []
    if rows:
        print(table(rows, "recall_by_size", "listed walks recalled, by face height (px)"))
        print()
        print(table(rows, "recall_by_yaw", "listed walks recalled, by yaw"))
        print()
        print(table([r for r in rows if "seen_by_size" in r and "processed_fps" not in r], "seen_by_size",
                    "all walks detected, by face height (px)"))
    ours_row = next((r for r in rows if "steps" in r), None)
    if ours_row:
        decode = res["cameras"]["file"]["decode_ms"] if res else None
        print("\nwhere a frame's CPU goes (ours, offline, every frame fed; process time):\n")
        print(steps_table(ours_row, decode))
    if heads:
        print("\nturned and partly hidden heads (bench.turned: real lfw-dev photos at their own pose, faces "
              "80-140 px; yaw as the quality gate measures it):\n")
        print(heads)
    for r, what in ((res, "as the box is"), (loaded, f"with {LOAD} processes spinning beside it: a loaded box")):
        if r is None:
            continue
        print(f"\nlive, {what}: `edge run`, both cameras reading the street at 25 fps once through (figures after "
              "the first tenth):\n")
        print(live_table(r))


if __name__ == "__main__":
    main()
