"""Hostile consoles on the alert channel (issue 15, items 4 and 7): a registered console that floods,
sends oversized or malformed frames, or acknowledges what it was never sent cannot hold back another
console's alert; unregistered keys cannot flood the audit log with console_refused records."""

from __future__ import annotations

import json
import logging
import time

import pytest
import zmq
from conftest import free_port, wait_for

from edge import identity
from edge.alerts import messages, protocol
from edge.alerts.publisher import REFUSED_PER_HOUR, Channel
from edge.audit.log import AuditLog
from edge.console import keys
from edge.console.link import BoxLink
from edge.console.store import Store

BOX = "box-1"


def alert(i: int) -> dict:
    return messages.alert(box_id=BOX, camera_id="cam-a", track_id=f"t{i}", ref=f"R{i:04d}", distance=0.4,
                          threshold=0.6, crop_jpeg=b"\xff\xd8crop", category="wanted")


class Raw:
    """A registered console that speaks the protocol by hand (a script, not the console's code)."""

    def __init__(self, tmp, state, endpoint, box_key, name="attacker"):
        data = tmp / name
        identity.add_console(state, keys.keygen(data))
        pub, sec = keys.load(data)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_serverkey, self.sock.curve_publickey, self.sock.curve_secretkey = box_key, pub, sec
        self.sock.connect(endpoint)

    def send(self, obj) -> None:
        self.sock.send(obj if isinstance(obj, bytes) else json.dumps(obj).encode())

    def box_hello(self) -> dict:
        self.send(json.loads(protocol.hello("console", name="x", outbox="", last_seq=0)))
        assert self.sock.poll(10000), "the box did not answer"
        while True:
            msg = json.loads(self.sock.recv())
            if msg["type"] == "hello":
                return msg

    def close(self):
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def box(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    state = tmp_path / "state"
    ident = identity.create(state, BOX)
    log = AuditLog(state, box_id=BOX)

    def on_adjudication(msg, console):  # recorded as the daemon records it: the note goes in the log
        log.append("adjudication", alert_id=msg["alert_id"], operator=msg["operator"], decision=msg["decision"],
                   action=str(msg.get("action", "")), reason=str(msg.get("reason", "")),
                   note=str(msg.get("note", "")), console=console, seconds_to_decision=0.0)

    ch = Channel(f"tcp://127.0.0.1:{free_port()}", state, ident.curve_public, ident.curve_secret, BOX,
                 on_adjudication=on_adjudication, record=log.append)
    ch.start()
    ch.state, ch.ident, ch.log, ch.raws, ch.links = state, ident, log, [], []

    def raw(name="attacker"):
        ch.raws.append(Raw(tmp_path, state, ch.endpoint, ident.curve_public, name))
        return ch.raws[-1]

    def operator():
        data = tmp_path / "operator"
        identity.add_console(state, keys.keygen(data))
        store = Store(data / "console.db")
        got: list[dict] = []
        link = BoxLink(ch.endpoint, ident.curve_public, keys.load(data), store,
                       on_change=lambda kind, d: kind == "alert" and got.append(d))
        ch.links.append((link, store))
        link.start()
        return got

    ch.raw, ch.operator = raw, operator
    yield ch
    for r in ch.raws:
        r.close()
    for link, store in ch.links:
        link.stop()
        store.close()
    ch.stop()


def _adj(alert_id: str, note: str = "") -> dict:
    return {"v": 1, "type": "adjudication", "alert_id": alert_id, "box_id": BOX, "decision": "dismiss",
            "action": "", "reason": "other", "note": note, "operator": "script", "time": messages.utcnow()}


FLOODS = {
    "120 adjudications with 5,000-character notes": lambda a: [_adj(a, "n" * 5000)] * 120,
    "5 adjudications of 1 MiB": lambda a: [_adj(a, "n" * (1 << 20))] * 5,
    "2,000 malformed frames": lambda a: [b"\xff{" * 10] * 2000,
    "500 frames nested 10,000 deep": lambda a: [b"[" * 10000 + b"]" * 10000] * 500,
    "3,000 hellos": lambda a: [json.loads(protocol.hello("console", name="x", outbox="", last_seq=0))] * 3000,
}


@pytest.mark.parametrize("case", list(FLOODS))
def test_a_flooding_console_does_not_hold_back_another_consoles_alert(box, caplog, case):
    box.publish(alert(0))
    attacker = box.raw()
    attacker.box_hello()
    for m in FLOODS[case](json.loads(box.outbox.after(0, 1)[0][1])["alert_id"]):
        attacker.send(m)
    got = box.operator()
    box.publish(alert(1))
    assert wait_for(lambda: [a["ref"] for a in got] == ["R0000", "R0001"], 10), "the real alert was held back"
    tracebacks = [r for r in caplog.records if r.name.startswith("edge") and r.exc_info]
    assert not tracebacks, tracebacks[0].getMessage()
    assert not [r for r in box.log.path.read_text().splitlines() if '"note":"nnnn' in r]


@pytest.mark.parametrize("how", ["ack seq 2**64", "hello last_seq 2**64", "ack never sent (seq 10**6)"])
def test_acks_beyond_what_was_sent_are_ignored_and_starve_nobody(box, caplog, how):
    box.publish(alert(0))
    attacker = box.raw()
    outbox = attacker.box_hello()["outbox"]
    big = 2**64 if "2**64" in how else 10**6
    if how.startswith("hello"):  # a fresh connection whose first hello claims to hold 2**64 messages
        box.raw("second").send({"v": 1, "type": "hello", "role": "console", "name": "x", "outbox": outbox,
                                "last_seq": big})
    else:
        attacker.send({"v": 1, "type": "ack", "outbox": outbox, "seq": big})
    time.sleep(0.3)
    got = box.operator()
    box.publish(alert(1))
    assert wait_for(lambda: len(got) == 2, 10), "a newly connecting console was starved"
    assert not [r for r in caplog.records if r.name.startswith("edge") and r.exc_info]
    assert all(v < 2**63 for v in box.outbox.acks().values())
    if how.startswith("ack"):
        assert box.info()["bad_acks"] >= 1


def test_300_random_keys_make_a_bounded_number_of_console_refused_records(box):
    ctx = zmq.Context()
    socks = []
    try:
        for _ in range(300):
            pub, sec = zmq.curve_keypair()
            s = ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = box.ident.curve_public, pub, sec
            s.connect(box.endpoint)
            socks.append(s)
        assert wait_for(lambda: box.info()["refused_keys"] >= 300, 30), box.info()["refused_keys"]
    finally:
        for s in socks:
            s.close(0)
        ctx.term()
    refused = [ln for ln in box.log.path.read_text().splitlines() if '"kind":"console_refused"' in ln]
    assert 1 <= len(refused) <= REFUSED_PER_HOUR


def gets_nothing(box, curve_keys: tuple[bytes, bytes] | None) -> bool:
    """A DEALER (a CURVE client with these keys, or a plain one) connects and says hello: the box gives it
    nothing (a connection the box never completes takes nothing: sending would block)."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if curve_keys:
        s.curve_serverkey, s.curve_publickey, s.curve_secretkey = box.ident.curve_public, *curve_keys
    s.connect(box.endpoint)
    box.publish(alert(0))
    try:
        try:
            s.send(protocol.hello("console", name="x", outbox="", last_seq=0), flags=zmq.NOBLOCK)
        except zmq.Again:
            pass
        return not s.poll(1500)
    finally:
        s.close(0)
        ctx.term()


def test_an_unregistered_console_still_gets_nothing(box):
    assert gets_nothing(box, zmq.curve_keypair())


def test_a_plain_zeromq_client_without_curve_gets_nothing(box):
    assert gets_nothing(box, None)
