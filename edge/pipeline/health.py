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


def format_status(st: dict) -> str:
    wl = st.get("watchlist") or {}
    lines = [
        f"box {st.get('box_id')}  up {st.get('uptime_s', 0):.0f} s",
        "watch list: " + (f"{wl.get('entries', 0)} entries, id {wl.get('list_id')}, issuer {wl.get('issuer')}"
                          + (f", expires {wl['not_after']}" if wl.get("not_after") else "")
                          if wl else "none loaded (no matching)"),
        f"alerts: {st.get('alerts_sent', 0)} encounters ({st.get('sightings', 0)} sightings), "
        f"{(st.get('decisions') or {}).get('total', 0)} decided; frame->alert latency {st.get('latency_ms', {})}",
    ]
    if st.get("accuracy"):
        from edge.eval import live

        lines.append(live.format_line(st["accuracy"]))
    dep = st.get("deployment") or {}
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
