"""`edge watch`: a minimal terminal console that subscribes to a box and prints what arrives."""

from __future__ import annotations

import time

import zmq

from edge.alerts import messages


def describe(msg: dict) -> str:
    if msg["type"] == "alert":
        return (f"ALERT  {msg['time']}  camera {msg['camera_id']}  ref {msg['ref']}"
                f"{' (' + msg['category'] + ')' if msg.get('category') else ''}  "
                f"distance {msg['distance']:.3f} (threshold {msg['threshold']})  track {msg['track_id']}  "
                f"crop {len(messages.unb64(msg['crop_jpeg']))} B")
    details = {k: v for k, v in msg.items() if k not in {"v", "type", "event_id", "box_id", "time", "event"}}
    return f"EVENT  {msg['time']}  {msg['box_id']}  {msg['event']}  {details if details else ''}".rstrip()


def watch(endpoint: str, count: int = 0, timeout: float = 0, out=print) -> list[dict]:
    """Print alerts/events from ``endpoint`` until ``count`` alerts or ``timeout`` seconds."""
    sock = zmq.Context.instance().socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    got: list[dict] = []
    deadline = time.monotonic() + timeout if timeout else None
    try:
        while True:
            wait = 500 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
            if deadline is not None and wait == 0:
                break
            if not sock.poll(min(wait, 500)):
                continue
            frames = sock.recv_multipart()
            try:
                msg = messages.loads(frames[-1], allowed={"alert", "event"})
            except messages.MessageError as exc:
                out(f"ignored a malformed message: {exc}")
                continue
            got.append(msg)
            out(describe(msg))
            if count and sum(m["type"] == "alert" for m in got) >= count:
                break
    finally:
        sock.close()
    return got
