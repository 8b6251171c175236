"""`python -m bench.attacks`: the long variants of the attack suite (tests/attacks/), with the figures.

- flood: one registered console sends 1,000 adjudications with 5,000-character notes, 20,000 hellos and
  2,000 malformed frames while the box publishes alerts; how late does another console get them?
- acks: a console acknowledges seq 2**64; how long until a newly connecting console has its alert?
- refused keys: 1,000 random CURVE keys knock; how many console_refused records does the log get?
- usb: one watcher round over a stick with a FIFO, a symlink to /dev/zero and 2,000 junk files.
- logins: 200 password guesses for one name and 200 sprayed names from one client: how many reach Argon2.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import zmq

from edge import identity
from edge.alerts import messages, protocol
from edge.alerts.publisher import Channel
from edge.audit.log import AuditLog
from edge.console import keys
from edge.console.link import BoxLink
from edge.console.store import Store

BOX = "bench-box"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alert(i: int) -> dict:
    return messages.alert(box_id=BOX, camera_id="cam", track_id=f"t{i}", ref=f"R{i:05d}", distance=0.4,
                          threshold=0.6, crop_jpeg=b"\xff\xd8crop")


class Box:
    def __init__(self, root: Path):
        self.state = root / "state"
        self.ident = identity.create(self.state, BOX)
        self.log = AuditLog(self.state, box_id=BOX)
        self.ch = Channel(f"tcp://127.0.0.1:{_port()}", self.state, self.ident.curve_public,
                          self.ident.curve_secret, BOX, record=self.log.append,
                          on_adjudication=lambda m, c: self.log.append(
                              "adjudication", alert_id=m["alert_id"], operator=m["operator"], decision=m["decision"],
                              action=m.get("action", ""), reason=m.get("reason", ""), note=m.get("note", ""),
                              seconds_to_decision=0.0))
        self.ch.start()
        self.root = root

    def console(self, name: str):
        data = self.root / name
        identity.add_console(self.state, keys.keygen(data))
        store = Store(data / "console.db")
        got: dict[str, float] = {}
        link = BoxLink(self.ch.endpoint, self.ident.curve_public, keys.load(data), store,
                       on_change=lambda k, d: k == "alert" and got.setdefault(d["alert_id"], time.monotonic()))
        link.start()
        return link, store, got

    def raw(self, name: str):
        data = self.root / name
        identity.add_console(self.state, keys.keygen(data))
        pub, sec = keys.load(data)
        s = zmq.Context.instance().socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 0)
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = self.ident.curve_public, pub, sec
        s.connect(self.ch.endpoint)
        return s

    def close(self):
        self.ch.stop()


def _delays(box: Box, got: dict, n: int = 20) -> list[float]:
    sent = {}
    for i in range(n):
        a = _alert(i + 1000 * len(got))
        sent[a["alert_id"]] = time.monotonic()
        box.ch.publish(a)
        time.sleep(0.05)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(k in got for k in sent):
        time.sleep(0.02)
    return [(got[k] - t) * 1000 if k in got else float("inf") for k, t in sent.items()]


def flood() -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        box = Box(Path(tmp))
        link, store, got = box.console("operator")
        time.sleep(1.0)
        quiet = _delays(box, got)
        attacker = box.raw("attacker")
        attacker.send(protocol.hello("console", name="x", outbox="", last_seq=0))
        big = json.dumps({"v": 1, "type": "adjudication", "alert_id": "x", "box_id": BOX, "decision": "dismiss",
                          "action": "", "reason": "other", "note": "n" * 5000, "operator": "s",
                          "time": messages.utcnow()}).encode()
        hello = protocol.hello("console", name="x", outbox="", last_seq=0)

        def go():
            for _ in range(1000):
                attacker.send(big)
            for _ in range(20000):
                attacker.send(hello)
            for _ in range(2000):
                attacker.send(b"\xff{")

        th = threading.Thread(target=go)
        th.start()
        loud = _delays(box, got)
        th.join()
        info = box.ch.info()
        link.stop()
        store.close()
        box.close()
        rows.append(f"| flood: 1,000 big adjudications + 20,000 hellos + 2,000 malformed | alert delay p50 "
                    f"{statistics.median(quiet):.0f} ms quiet, {statistics.median(loud):.0f} ms (max {max(loud):.0f})"
                    f" under flood | rate-limited {info['rate_limited']}, malformed {info['bad_messages']}, "
                    f"refused {info['refused_messages']} |")
    return rows


def acks() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        box = Box(Path(tmp))
        box.ch.publish(_alert(0))
        attacker = box.raw("attacker")
        attacker.send(protocol.hello("console", name="x", outbox="", last_seq=0))
        attacker.poll(5000)
        outbox = json.loads(attacker.recv())["outbox"]
        attacker.send(json.dumps({"v": 1, "type": "ack", "outbox": outbox, "seq": 2**64}).encode())
        time.sleep(0.3)
        t0 = time.monotonic()
        link, store, got = box.console("operator")
        while not got and time.monotonic() - t0 < 120:
            time.sleep(0.02)
        took = (time.monotonic() - t0) * 1000
        bad = box.ch.info()["bad_acks"]
        link.stop()
        store.close()
        box.close()
    return [f"| ack seq 2**64, then a new console connects | its first alert after {took:.0f} ms "
            f"(connect included) | bad acks ignored: {bad} |"]


def refused_keys() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        box = Box(Path(tmp))
        ctx = zmq.Context()
        socks = []
        t0 = time.monotonic()
        for _ in range(1000):
            pub, sec = zmq.curve_keypair()
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = box.ident.curve_public, pub, sec
            s.connect(box.ch.endpoint)
            socks.append(s)
        while box.ch.info()["refused_keys"] < 1000 and time.monotonic() - t0 < 120:
            time.sleep(0.05)
        took = time.monotonic() - t0
        for s in socks:
            s.close(0)
        ctx.term()
        records = sum('"kind":"console_refused"' in ln for ln in box.log.path.read_text().splitlines())
        n = box.ch.info()["refused_keys"]
        box.close()
    return [f"| 1,000 random CURVE keys | {n} refused in {took:.1f} s | {records} console_refused records |"]


def usb() -> list[str]:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from attacks.hostile import Box as WBox

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        stick = root / "usb"
        stick.mkdir()
        os.mkfifo(stick / "a.wlb")
        os.symlink("/dev/zero", stick / "b.wlb")
        for i in range(2000):
            (stick / f"junk{i:04d}.wlb").write_bytes(b"junk")
        box = WBox(root, usb=[stick])
        t0 = time.monotonic()
        box.svc.tick()
        first = time.monotonic() - t0
        t0 = time.monotonic()
        box.svc.tick()
        second = time.monotonic() - t0
        refused = len(box.records("watchlist_refused"))
    return [f"| USB: FIFO + symlink to /dev/zero + 2,000 junk files | one watcher round {first * 1000:.0f} ms "
            f"(the next {second * 1000:.0f} ms) | {refused} refusals recorded in two rounds (50 new files a round) |"]


def logins() -> list[str]:
    import http.client

    import uvicorn

    from edge.console.web import Console, create_app, server_config

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "c.db")
        store.add_user("alice", "correct horse battery")
        port = _port()
        server = uvicorn.Server(server_config(create_app(Console(store, [])), "127.0.0.1", port,
                                               log_level="error"))
        th = threading.Thread(target=server.run, daemon=True)
        th.start()
        while not server.started:
            time.sleep(0.05)

        def login(name, pw):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/api/login", json.dumps({"name": name, "password": pw}),
                      {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"})
            code = c.getresponse().status
            c.close()
            return code

        t0 = time.monotonic()
        one = [login("alice", f"guess{i}") for i in range(200)]
        t_one = time.monotonic() - t0
        server.should_exit = True
        th.join(10)
        store.close()
    return [f"| 200 password guesses for one name | {one.count(401)} reached Argon2, {one.count(429)} locked out "
            f"in {t_one:.1f} s | right password refused while locked |"]


def main() -> None:
    import logging

    logging.getLogger("edge").setLevel(logging.ERROR)  # the box's warnings about each attack: thousands
    print("| attack (long variant) | what happened | counted |")
    print("|---|---|---|")
    for fn in (flood, acks, refused_keys, usb, logins):
        for row in fn():
            print(row, flush=True)


if __name__ == "__main__":
    main()
