"""Soak: `kill -9` the real daemon at random points while alerts flow, many times over.

One box (`edge run`: the Hamilton clip looped on two cameras, Lin-Manuel Miranda on the list, so
alerts keep coming) and one console (the real link and store) that stays up throughout. ``KILLS``
times: wait a random 2-9 s of running, SIGKILL the daemon and its camera processes (what systemd
does to the unit's control group), start it again. At the end the daemon is stopped cleanly and
the console given time to catch up. Then:

- every alert in the box's outbox reached the console exactly once (lost = 0, duplicated = 0);
- every alert the audit log recorded is among them;
- the audit chain verifies (``edge audit verify``'s check).

Run alone: python -m bench.kill9        (about 4 minutes for 20 kills)
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "tests" / "data" / "media" / "video" / "short_hamilton_clip.mp4"
LIN = REPO / "tests" / "data" / "media" / "faces" / "lin-manuel-miranda.png"
KILLS = 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(tmp: Path, endpoint: str) -> Path:
    (tmp / "watchlist").mkdir()
    shutil.copy(LIN, tmp / "watchlist" / "WL-2026-0001.png")
    lines = ['box_id = "soak-box"', f'state_dir = "{tmp / "state"}"']
    for cam in ("cam1", "cam2"):
        lines += ["[[cameras]]", f'id = "{cam}"', f'source = "{CLIP}"', "loop = true"]
    lines += ["[alerts]", f'endpoint = "{endpoint}"', "[watchlist]", f'folder = "{tmp / "watchlist"}"',
              "[deployment]", "required = false"]
    (tmp / "edge.toml").write_text("\n".join(lines) + "\n")
    return tmp / "edge.toml"


def _start(cfg: Path, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", "run", "--config", str(cfg)], stdout=log,
                            stderr=subprocess.STDOUT)


def _kill_tree(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    with contextlib.suppress(psutil.Error):
        children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(60)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _outbox_alerts(state: Path) -> list[str]:
    db = sqlite3.connect(state / "outbox.db")
    try:
        return [r[0] for r in db.execute("SELECT msg_id FROM messages WHERE type='alert' ORDER BY seq")]
    finally:
        db.close()


def run(kills: int = KILLS, seed: int = 9) -> dict:
    from edge import identity
    from edge.audit.verify import verify_log
    from edge.console import keys
    from edge.console.link import BoxLink
    from edge.console.store import Store

    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="bench-kill9-") as tmp_name:
        tmp = Path(tmp_name)
        endpoint = f"tcp://127.0.0.1:{_free_port()}"
        cfg = _config(tmp, endpoint)
        state = tmp / "state"
        ident = identity.create(state, "soak-box")
        identity.add_console(state, keys.keygen(tmp / "console"))
        store = Store(tmp / "console" / "console.db")
        delivered: list[str] = []
        link = BoxLink(endpoint, ident.curve_public, keys.load(tmp / "console"), store,
                       on_change=lambda kind, d: kind == "alert" and delivered.append(d["alert_id"]))
        link.start()
        log = open(tmp / "daemon.log", "w")
        killed_at = []
        t0 = time.monotonic()
        try:
            for _ in range(kills):
                proc = _start(cfg, log)
                time.sleep(rng.uniform(2.0, 9.0))
                killed_at.append(len(delivered))
                _kill_tree(proc)
            proc = _start(cfg, log)
            time.sleep(10)
            _kill_tree(proc, signal.SIGTERM)  # a clean stop at the end
            outbox = _outbox_alerts(state)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not set(outbox) <= set(delivered):
                time.sleep(0.2)
        finally:
            link.stop()
            log.close()
        res = verify_log(state)
        audit_alerts = [r["data"].get("alert_id") for r in res.records if r["kind"] == "alert"]
        in_store = {a["alert_id"] for a in store.open_alerts()}
        store.close()
        return {"kills": kills, "seconds": round(time.monotonic() - t0), "alerts_in_outbox": len(outbox),
                "delivered": len(set(delivered)), "lost": len(set(outbox) - set(delivered)),
                "duplicated": len(delivered) - len(set(delivered)), "in_console_store": len(in_store),
                "audit_alerts": len(audit_alerts),
                "audit_alerts_not_delivered": len(set(audit_alerts) - set(delivered)),
                "audit_chain": "verifies" if res.ok else f"BROKEN: {res.summary()}",
                "resends_dropped_by_console": link.counts.get("duplicates", 0),
                "delivered_before_each_kill": killed_at}


def main() -> None:
    r = run()
    print(f"`edge run` killed with SIGKILL {r['kills']} times at random points (2-9 s apart) while two cameras "
          f"produced alerts; one console connected throughout ({r['seconds']} s):\n")
    print("| alerts in the box's outbox | delivered to the console | lost | duplicated | audit alert records "
          "| of which not delivered | audit chain |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    print(f"| {r['alerts_in_outbox']} | {r['delivered']} | {r['lost']} | {r['duplicated']} | {r['audit_alerts']} | "
          f"{r['audit_alerts_not_delivered']} | {r['audit_chain']} |")
    print(f"\n(resent after restarts and dropped by the console as already seen: {r['resends_dropped_by_console']}; "
          f"delivered before each kill: {json.dumps(r['delivered_before_each_kill'])})")


if __name__ == "__main__":
    main()
