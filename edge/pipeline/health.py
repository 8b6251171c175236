"""Health figures: latency percentiles and the `edge status` / periodic log rendering."""

from __future__ import annotations

from collections import deque

import numpy as np


class Latency:
    """Frame -> alert latency over the last ``size`` alerts, in milliseconds."""

    def __init__(self, size: int = 1000):
        self.samples: deque[float] = deque(maxlen=size)

    def add(self, ms: float) -> None:
        self.samples.append(ms)

    def summary(self) -> dict:
        if not self.samples:
            return {"n": 0}
        a = np.asarray(self.samples)
        return {"n": len(a), "p50": round(float(np.percentile(a, 50)), 1),
                "p95": round(float(np.percentile(a, 95)), 1), "p99": round(float(np.percentile(a, 99)), 1)}


def camera_line(cam_id: str, cam: dict) -> str:
    s = cam.get("stats", {})
    state = cam.get("state", "starting")
    return (f"{cam_id:<10} {state:<9} {s.get('fps', 0):5.1f} fps  lag {s.get('lag_ms', 0):6.0f} ms  "
            f"read {s.get('frames_read', 0):6d}  dropped {s.get('frames_dropped', 0):6d}  "
            f"faces {s.get('faces', 0):5d}  tracks {s.get('tracks_started', 0):4d}  "
            f"encodes {s.get('encodes', 0):4d}  restarts {cam.get('restarts', 0)}")


def duration(seconds: float) -> str:
    """``3 h 25 min``, ``4 min 10 s``, ``12 s``."""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 60} min {s % 60} s" if s >= 60 else f"{s} s"


def latency_text(lat: dict) -> str:
    """``p50 / p95 / p99 55 / 165 / 181 ms (20 alerts)``, or that there is none yet."""
    if not lat or not lat.get("n"):
        return "no alerts yet"
    return f"p50 / p95 / p99 {lat['p50']:.0f} / {lat['p95']:.0f} / {lat['p99']:.0f} ms ({lat['n']:,} alerts)"


def format_status(st: dict) -> str:
    wl = st.get("watchlist") or {}
    lines = [
        f"box {st.get('box_id')}  up {duration(st.get('uptime_s', 0))}",
        f"face model: {(st.get('model') or {}).get('name', 'unknown')}",
        "watch list: " + (f"{wl.get('entries', 0)} entries, id {wl.get('list_id')}, issuer {wl.get('issuer')}"
                          + (f", expires {wl['not_after']}" if wl.get("not_after") else "")
                          + (f", templates made here from its images (it was built for {wl['templates_from']})"
                             if wl.get("templates_from", wl.get("model")) != wl.get("model") else "")
                          if wl else "none loaded (no matching)"),
        f"alerts: {st.get('alerts_sent', 0):,} encounters ({st.get('sightings', 0):,} sightings), "
        f"{(st.get('decisions') or {}).get('total', 0):,} decided; frame->alert latency "
        f"{latency_text(st.get('latency_ms', {}))}",
    ]
    if st.get("accuracy"):
        from edge.pipeline import live

        lines.append(live.format_line(st["accuracy"]))
    dep = st.get("deployment") or {}
    if dep and not dep.get("deployment_required"):  # said first: nothing signed limits where and when it matches
        lines.insert(0, "WARNING: MATCHING WITHOUT AUTHORISATION: [deployment] required = false, no signed "
                        "deployment window is needed")
    if dep.get("deployment_required"):
        auth = dep.get("authorised", {})
        lines.append("deployment: " + ", ".join(
            f"{cam} {'authorised (' + win + ')' if win else 'NOT AUTHORISED: no matching'}"
            for cam, win in sorted(auth.items())))
    lines.append("cameras:")
    for cam_id, cam in sorted(st.get("cameras", {}).items()):
        lines.append("  " + camera_line(cam_id, cam))
    for key, value in sorted(st.get("extra", {}).items()):
        lines.append(f"{key}: {value}")
    return "\n".join(lines)
