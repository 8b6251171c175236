"""`edge watch`: a minimal terminal console. It speaks the console protocol (CURVE, acks, resume),
so it needs the console key pair (``edge console keygen``) registered on the box. Its position and
what it has received are kept in ``<data>/watch.db``, apart from the web console's own store, under the same
retention rule as the web console's (``retention.apply_per_box``, at start and at exit: each box's alerts no
longer than that box keeps them, nothing longer than the default period; the boxes are told what went)."""

from __future__ import annotations

import queue
import time

from edge.alerts import messages, retention
from edge.codec import printable
from edge.console import keys
from edge.console.link import BoxLink
from edge.console.store import Store


def describe(msg: dict) -> str:
    if msg["type"] == "alert":
        enc = messages.encounter_of(msg)
        group = f"  sighting {msg.get('sighting', 1)} of encounter {enc[:8]}" if enc != msg["alert_id"] else ""
        if msg.get("decision"):
            d = msg["decision"]
            group += f" ({msg['state']} · {d.get('action') or d.get('reason')} · by {d.get('operator')})"
        return (f"ALERT  {msg['time']}  camera {msg['camera_id']}  ref {msg['ref']}"
                f"{' (' + msg['category'] + ')' if msg.get('category') else ''}  "
                f"distance {msg['distance']:.3f} (threshold {msg['threshold']}"
                f"{', model ' + str(msg['model']) if msg.get('model') else ''})  track {msg['track_id']}{group}  "
                f"crop {len(messages.unb64(msg['crop_jpeg']))} B")
    if msg["event"] == "audit_checkpoint" and isinstance(msg.get("checkpoint"), dict):
        return f"EVENT  {msg['time']}  {msg['box_id']}  audit_checkpoint  seq {msg['checkpoint'].get('seq')}"
    details = {k: v for k, v in msg.items()
               if k not in {"v", "type", "event_id", "box_id", "time", "event", "outbox", "seq", "prev"}}
    return f"EVENT  {msg['time']}  {msg['box_id']}  {msg['event']}  {details if details else ''}".rstrip()


def watch(box: str, data: str, count: int = 0, timeout: float = 0, out=print) -> list[dict]:
    """Print alerts/events from the box ``ENDPOINT=KEY`` until ``count`` alerts or ``timeout`` seconds."""
    endpoint, box_key = keys.parse_box(box, "the box to watch (ENDPOINT=KEY)")
    key_pair = keys.load(data)
    store = Store(keys.data_dir(data) / "watch.db")
    policy = retention.Policy(retention.DEFAULT_DAYS, "edge watch")
    retention.apply_per_box(store, policy)  # what an earlier run kept past its period
    notices: queue.Queue = queue.Queue()
    link = BoxLink(endpoint, box_key, key_pair, store, on_change=lambda kind, d: notices.put((kind, d)),
                   name="edge-watch")
    link.start()
    got: list[dict] = []
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while deadline is None or time.monotonic() < deadline:
            try:
                kind, msg = notices.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "link":
                if msg["state"] == "refused":
                    out(f"the box at {endpoint} refused this console's key: register {data}/console.pub there")
                continue
            if kind in ("alert", "event"):
                got.append(msg)
                out(printable(describe(msg)))
            if count and sum(m["type"] == "alert" for m in got) >= count:
                break
    finally:
        link.stop()
        retention.apply_per_box(store, policy)  # with the period the box said in this run's hello
        store.close()
    return got
