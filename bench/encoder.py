"""Face encoder candidates side by side: ms per face and faces/s/core, in one run.

Every candidate encodes the same real aligned chips (edge.face.api.chip on the bundled faces) and
must return dlib's descriptors (its max |Δ| against dlib is printed). Rows run pinned to as many
CPUs as they have threads (a camera process: one thread, one core). Two clocks are read: wall time
per face (latency) and the process's CPU time per face (all its threads); faces/s/core is faces per
CPU-second, which other processes on the box do not disturb as much as they disturb wall time.

Run alone: python -m bench.encoder
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
FACES = ["obama.jpg", "biden.jpg", "alex-lacamoire.png", "lin-manuel-miranda.png",
         "rose_leslie_img1.jpg", "kit_harington_john1.jpeg", "johnsnow_test1.jpg", "obama2.jpg"]
BATCH = 8
MIN_SECONDS = 0.7  # per candidate and round
ROUNDS = 4  # the best round is reported (as timeit does): the least disturbed by other processes


def chips() -> list[np.ndarray]:
    from edge.face import api

    out = []
    for name in FACES:
        rgb = api.load_image(REPO / "tests" / "data" / "media" / "faces" / name)
        out += [api.chip(rgb, box) for box in api.detect(rgb, max_width=800)[:1]]
    return out


def _pin(threads: int) -> None:
    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0) | set(range(os.cpu_count() or 1)))
        os.sched_setaffinity(0, set(cpus[:threads]))
    cv2.setNumThreads(threads)


def _one_round(encode: Callable, batches: list[list[np.ndarray]]) -> tuple[float, float]:
    """(wall, CPU) ms per face over at least MIN_SECONDS of encoding."""
    faces, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < MIN_SECONDS:
        for b in batches:
            encode(b)
            faces += len(b)
    return 1000 * (time.perf_counter() - t0) / faces, 1000 * (time.process_time() - c0) / faces


def _candidates() -> list[tuple[str, int, int, Callable[[int], object]]]:
    """(label, threads, chips per call, factory(threads) -> encoder)."""
    from edge.face import encoder, onnx_encoder

    out = [("dlib-bin wheel", 1, 1, lambda t: encoder.DlibEncoder()),
           ("dlib-bin wheel, batched", 1, BATCH, lambda t: encoder.DlibEncoder())]
    if "onnx" in encoder.available():
        out += [("ONNX graph on onnxruntime", 1, 1, onnx_encoder.OnnxEncoder),
                ("ONNX graph on onnxruntime, batched", 1, BATCH, onnx_encoder.OnnxEncoder),
                ("ONNX graph on onnxruntime", 2, 1, onnx_encoder.OnnxEncoder),
                ("ONNX graph on onnxruntime, batched", 2, BATCH, onnx_encoder.OnnxEncoder)]
    if "cv2dnn" in encoder.available():
        out += [("ONNX graph on OpenCV DNN", 1, 1, lambda t: onnx_encoder.CvDnnEncoder()),
                ("ONNX graph on OpenCV DNN, batched", 1, BATCH, lambda t: onnx_encoder.CvDnnEncoder())]
    return out


def measure() -> list[dict]:
    """Rounds interleave the candidates, so a busy spell on the box hits them all alike."""
    faces = chips()
    saved = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    rows, runs, reference = [], [], None
    try:
        for label, threads, per_call, factory in _candidates():
            _pin(threads)
            enc = factory(threads)
            got = enc.encode(faces)  # also the warm-up
            reference = got if reference is None else reference  # the first candidate is dlib
            runs.append((threads, enc.encode, [faces[i : i + per_call] for i in range(0, len(faces), per_call)]))
            rows.append({"candidate": label, "threads": threads, "chips_per_call": per_call,
                         "max_abs_diff_vs_dlib": float(np.abs(got - reference).max()), "wall": [], "cpu": []})
        for _ in range(ROUNDS):
            for row, (threads, encode, batches) in zip(rows, runs, strict=True):
                _pin(threads)
                wall, cpu = _one_round(encode, batches)
                row["wall"].append(wall)
                row["cpu"].append(cpu)
    finally:
        if saved is not None:
            os.sched_setaffinity(0, saved)
    for r in rows:
        r["ms_per_face"], r["cpu_ms_per_face"] = min(r.pop("wall")), min(r.pop("cpu"))
        r["faces_per_s_per_core"] = 1000 / r["cpu_ms_per_face"]
        r["speedup_per_core"] = r["faces_per_s_per_core"] / rows[0]["faces_per_s_per_core"]
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| candidate | threads | chips/call | ms per face (wall) | CPU ms per face | faces/s/core "
             "| vs dlib per core | max abs diff vs dlib |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['candidate']} | {r['threads']} | {r['chips_per_call']} | {r['ms_per_face']:.1f} | "
                     f"{r['cpu_ms_per_face']:.1f} | "
                     f"{r['faces_per_s_per_core']:.0f} | {r['speedup_per_core']:.1f}x | "
                     f"{r['max_abs_diff_vs_dlib']:.1e} |")
    return "\n".join(lines)


def run(report: Callable[[str], None] = print) -> list[dict]:
    """Measure every candidate, hand the table to ``report`` (a line printer), return the rows."""
    rows = measure()
    from edge.face import api

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    report(f"Face encoder, {len(chips())} real 150x150 chips, {os.cpu_count()} CPUs (load average {load:.1f}); "
           f"default backend: {api.encoder_name('auto')}\n")
    report(table(rows))
    return rows


def main() -> None:
    run(print)


if __name__ == "__main__":
    main()
