"""More cameras on one box: the real daemon, 1080p 25 fps feeds, figures from `edge status --json`.

Feeds are the Hamilton clip upscaled to 1920x1080 at 25 fps (MPEG-4, written to a temp dir, never
committed) and looped: 2, 4 and 8 of them at once, each its own camera process, on this box as it
is (2 cores in CI). A crowd clip tiles 4 or 9 copies of the clip in each 1080p frame to show what
more faces per frame cost. Each run: start `edge run`, wait until every camera is up and 5 s more
(models loaded, caches warm), then measure a window of ``SECONDS``:

- processed fps per camera (frames the detector/tracker took) and frames dropped (read but
  overwritten by a newer frame before the pipeline got to them: latest-frame capture, so lag
  never grows), from the camera counters;
- frame -> alert latency p50/p95/p99 (the daemon's ``latency_ms``: from frame capture to the
  alert leaving for the console), over all alerts since start;
- CPU used by the whole process tree (cores busy), and the box's 1-minute load average: a figure
  taken while something else loads the box says so.

Run alone: python -m bench.cameras           (about 6 minutes)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import psutil

from edge.config import DetectConfig

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "tests" / "data" / "media" / "video" / "short_hamilton_clip.mp4"
LIN = REPO / "tests" / "data" / "media" / "faces" / "lin-manuel-miranda.png"
SECONDS = 30.0
FEEDS = (2, 4, 8)
CROWD = (1, 4, 9)  # copies of the clip tiled in each frame


def make_feed(dst: Path, tiles: int = 1, size=(1920, 1080), fps: float = 25.0) -> Path:
    """The clip upscaled (tiles=1) or tiled n x n (tiles=n*n) into 1080p frames at ``fps``."""
    side = int(round(tiles ** 0.5))
    cap = cv2.VideoCapture(str(CLIP))
    out = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    tile_w, tile_h = size[0] // side, size[1] // side
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        t = cv2.resize(frame, (tile_w, tile_h), interpolation=cv2.INTER_LINEAR)
        row = np.hstack([t] * side)
        canvas = np.zeros((size[1], size[0], 3), np.uint8)
        grid = np.vstack([row] * side)
        canvas[: grid.shape[0], : grid.shape[1]] = grid
        out.write(canvas)
    cap.release()
    out.release()
    return dst


def write_config(tmp: Path, feeds: list[Path], endpoint: str) -> Path:
    wl = tmp / "watchlist"
    wl.mkdir(exist_ok=True)
    shutil.copy(LIN, wl / "WL-2026-0001.png")
    return daemon_config(tmp, "bench-box", {f"cam{i + 1}": str(f) for i, f in enumerate(feeds)}, wl, endpoint,
                         loop=True, extra=["[health]", "log_interval = 10.0"])


def daemon_config(tmp: Path, box_id: str, cameras: dict[str, str], watchlist: Path, endpoint: str,
                  loop: bool = False, extra: list[str] | None = None) -> Path:
    """A bench box's edge.toml: these cameras (id -> source), a folder watch list, no deployment window."""
    lines = [f'box_id = "{box_id}"', f'state_dir = "{tmp / "state"}"']
    for cid, src in cameras.items():
        lines += ["[[cameras]]", f'id = "{cid}"', f'source = "{src}"'] + (["loop = true"] if loop else [])
    lines += ["[alerts]", f'endpoint = "{endpoint}"', "[watchlist]", f'folder = "{watchlist}"', *(extra or []),
              "[deployment]", "required = false"]  # no signed deployment window needed to measure
    (tmp / "edge.toml").write_text("\n".join(lines) + "\n")
    return tmp / "edge.toml"


def start_daemon(cfg: Path):
    """`edge run` on ``cfg``, its output in daemon.log beside it -> (process, open log file)."""
    log = open(cfg.parent / "daemon.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)], stdout=log,
                            stderr=subprocess.STDOUT)
    return proc, log


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(cfg: Path) -> dict | None:
    r = subprocess.run([sys.executable, "-m", "edge", "status", "--config", str(cfg), "--json", "--timeout", "2"],
                       capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def _cpu_seconds(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def stop(proc: subprocess.Popen, timeout: float = 90) -> None:
    """SIGTERM the daemon; if it has to be killed, its camera processes are killed too (they outlive it)."""
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(proc.pid).children(recursive=True)
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def measure(feeds: list[Path], seconds: float = SECONDS, label: str = "") -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-cams-") as tmp_name:
        tmp = Path(tmp_name)
        cfg = write_config(tmp, feeds, f"tcp://127.0.0.1:{_free_port()}")
        proc, log = start_daemon(cfg)
        try:
            ps = psutil.Process(proc.pid)
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                st = _status(cfg)
                if st and st["cameras"] and all(c["state"] == "up" and c["stats"] for c in st["cameras"].values()):
                    break
                if proc.poll() is not None:
                    raise RuntimeError((tmp / "daemon.log").read_text()[-2000:])
                time.sleep(1)
            else:
                raise RuntimeError("cameras did not come up: " + (tmp / "daemon.log").read_text()[-2000:])
            time.sleep(5)
            a, cpu_a, t_a = _status(cfg), _cpu_seconds(ps), time.monotonic()
            time.sleep(seconds)
            b, cpu_b, t_b = _status(cfg), _cpu_seconds(ps), time.monotonic()
        finally:
            stop(proc)
            log.close()
    dt = t_b - t_a
    per_cam = {}
    for cid, cam in b["cameras"].items():
        sa, sb = a["cameras"][cid]["stats"], cam["stats"]
        d = {k: sb.get(k, 0) - sa.get(k, 0) for k in ("frames_read", "frames_processed", "frames_dropped", "faces",
                                                       "encodes", "tracks_started")}
        passes = max(1, d["frames_processed"] // DetectConfig.every_n_frames)  # detection passes
        per_cam[cid] = {"read_fps": d["frames_read"] / dt, "processed_fps": d["frames_processed"] / dt,
                        "dropped": d["frames_dropped"],
                        "dropped_pct": 100 * d["frames_dropped"] / max(1, d["frames_read"]),
                        "faces_per_detection": d["faces"] / passes, "detect_ms": sb.get("detect_ms", 0.0),
                        "encodes": d["encodes"], "tracks": d["tracks_started"]}
    lat = b.get("latency_ms", {})
    return {"label": label, "feeds": len(feeds), "seconds": round(dt, 1),
            "processed_fps": round(float(np.mean([c["processed_fps"] for c in per_cam.values()])), 1),
            "processed_fps_min": round(min(c["processed_fps"] for c in per_cam.values()), 1),
            "read_fps": round(float(np.mean([c["read_fps"] for c in per_cam.values()])), 1),
            "dropped": sum(c["dropped"] for c in per_cam.values()),
            "dropped_pct": round(float(np.mean([c["dropped_pct"] for c in per_cam.values()])), 1),
            "faces_per_detection": round(float(np.mean([c["faces_per_detection"] for c in per_cam.values()])), 2),
            "detect_ms": round(float(np.mean([c["detect_ms"] for c in per_cam.values()])), 1),
            "encodes_per_track": round(sum(c["encodes"] for c in per_cam.values())
                                       / max(1, sum(c["tracks"] for c in per_cam.values())), 2),
            "cores_busy": round((cpu_b - cpu_a) / dt, 2), "load_avg": round(os.getloadavg()[0], 1),
            "alerts": b.get("alerts_sent", 0), "latency_n": lat.get("n", 0),
            "p50_ms": lat.get("p50"), "p95_ms": lat.get("p95"), "p99_ms": lat.get("p99"),
            "per_camera": {k: {kk: round(vv, 1) for kk, vv in v.items()} for k, v in per_cam.items()}}


def run(feeds=FEEDS, crowd=CROWD, seconds: float = SECONDS) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-feeds-") as tmp_name:
        tmp = Path(tmp_name)
        clips = {t: make_feed(tmp / f"hamilton-1080p-x{t}.mp4", t) for t in sorted({1, *crowd})}
        for n in feeds:
            rows.append(measure([clips[1]] * n, seconds, f"{n} feeds, 1 face per frame"))
        for t in crowd:
            rows.append(measure([clips[t]], seconds, f"1 feed, clip tiled x{t}"))
    return rows


def table(rows: list[dict]) -> str:
    out = ["| run | processed fps per camera (min) | read fps | dropped frames | faces per detection | "
           "detect ms | encodes per track | cores busy (box load) | alerts | latency p50 / p95 / p99 ms (n) |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lat = f"{r['p50_ms']} / {r['p95_ms']} / {r['p99_ms']} ({r['latency_n']})" if r["latency_n"] else "no alerts"
        out.append(f"| {r['label']} | {r['processed_fps']} ({r['processed_fps_min']}) | {r['read_fps']} | "
                   f"{r['dropped']} ({r['dropped_pct']} %) | {r['faces_per_detection']} | {r['detect_ms']} | "
                   f"{r['encodes_per_track']} | "
                   f"{r['cores_busy']} ({r['load_avg']}) | {r['alerts']} | {lat} |")
    return "\n".join(out)


def main() -> None:
    seconds = float(os.environ.get("BENCH_SECONDS", SECONDS))
    print(f"1080p 25 fps feeds (Hamilton clip upscaled, looped) on a {os.cpu_count()}-core box, "
          f"{seconds:.0f} s per run:\n")
    print(table(run(seconds=seconds)))


if __name__ == "__main__":
    main()
