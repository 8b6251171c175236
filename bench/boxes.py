"""Past one box: several boxes, each its own process, state dir and keys, feeding one console.

Each box process runs the real alert channel (CURVE + outbox, edge/alerts/publisher.py) and
publishes ``ALERTS`` synthetic alerts at ``RATE`` per second, with a real-sized crop. One console
(the real BoxLink + console store, in this process) follows all of them. Measured: alerts
delivered per box, lost (published but never delivered), duplicated, out of order, and
publish -> delivered latency.

Run alone: python -m bench.boxes        (about 30 s)
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

BOXES, ALERTS, RATE = 3, 500, 25.0

BOX = """
import sys, time
from edge import identity
from edge.alerts import messages
from edge.alerts.publisher import Channel
state, endpoint, box_id, total, rate = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
ident = identity.create(state, box_id)
ch = Channel(endpoint, state, ident.curve_public, ident.curve_secret, box_id)
ch.start()
print("ready", flush=True)
sys.stdin.readline()  # go
crop = b"\\xff\\xd8" + bytes(12_000)  # about a real face crop
t0 = time.monotonic()
for i in range(total):
    ch.publish(messages.alert(box_id=box_id, camera_id="cam1", track_id=f"{box_id}-{i}", ref=f"R{i:05d}",
                              distance=0.4, threshold=0.6, crop_jpeg=crop, reference_jpeg=crop))
    time.sleep(max(0.0, t0 + (i + 1) / rate - time.monotonic()))
print("done", flush=True)
sys.stdin.readline()  # stop
ch.stop()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def run(boxes: int = BOXES, alerts: int = ALERTS, rate: float = RATE) -> list[dict]:
    from edge import identity
    from edge.console import keys
    from edge.console.link import BoxLink
    from edge.console.store import Store

    with tempfile.TemporaryDirectory(prefix="bench-boxes-") as tmp_name:
        tmp = Path(tmp_name)
        pub = keys.keygen(tmp / "console")
        store = Store(tmp / "console" / "console.db")
        got: dict[str, list[tuple[str, float]]] = {}

        def on_change(kind: str, d: dict) -> None:
            if kind == "alert":
                got.setdefault(d["box_id"], []).append((d["ref"], time.time() - _ts(d["time"])))

        procs, links = [], []
        try:
            for b in range(boxes):
                box_id, state, endpoint = f"box-{b + 1}", tmp / f"box-{b + 1}", f"tcp://127.0.0.1:{_free_port()}"
                ident = identity.create(state, box_id)
                identity.add_console(state, pub)
                p = subprocess.Popen([sys.executable, "-c", BOX, str(state), endpoint, box_id, str(alerts), str(rate)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                assert p.stdout.readline().startswith("ready")
                procs.append(p)
                links.append(BoxLink(endpoint, ident.curve_public, keys.load(tmp / "console"), store,
                                     on_change=on_change))
                links[-1].start()
            t0 = time.monotonic()
            for p in procs:
                p.stdin.write("go\n")
                p.stdin.flush()
            for p in procs:
                assert p.stdout.readline().startswith("done")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and sum(len(v) for v in got.values()) < boxes * alerts:
                time.sleep(0.1)
            elapsed = time.monotonic() - t0
        finally:
            for link in links:
                link.stop()
            for p in procs:
                if p.poll() is None:
                    p.stdin.write("stop\n")
                    p.stdin.flush()
                    try:
                        p.wait(10)
                    except subprocess.TimeoutExpired:
                        p.kill()
            store.close()
    rows = []
    expected = [f"R{i:05d}" for i in range(alerts)]
    for b in range(boxes):
        refs = [r for r, _ in got.get(f"box-{b + 1}", [])]
        lat = np.asarray([ms for _, ms in got.get(f"box-{b + 1}", [])]) * 1000
        rows.append({"box": f"box-{b + 1}", "published": alerts, "delivered": len(set(refs)),
                     "lost": len(set(expected) - set(refs)), "duplicated": len(refs) - len(set(refs)),
                     "in_order": refs == expected[: len(refs)], "seconds": round(elapsed, 1),
                     "p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
                     "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None})
    return rows


def table(rows: list[dict]) -> str:
    out = ["| box | published | delivered | lost | duplicated | in order | publish->console p50 / p99 ms |",
           "|---|---:|---:|---:|---:|---|---|"]
    out += [f"| {r['box']} | {r['published']} | {r['delivered']} | {r['lost']} | {r['duplicated']} | "
            f"{'yes' if r['in_order'] else 'NO'} | {r['p50_ms']} / {r['p99_ms']} |" for r in rows]
    return "\n".join(out)


def main() -> None:
    rows = run()
    print(f"{BOXES} boxes (separate processes, state dirs and keys), {ALERTS} alerts each at {RATE:.0f}/s, "
          f"one console, {os.cpu_count()}-core box:\n")
    print(table(rows))


if __name__ == "__main__":
    main()
