"""One console's link to one box: a CURVE-authenticated DEALER socket in its own thread.

On each (re)connection the link says ``hello`` with the last sequence number it holds from this box's
outbox, and keeps saying it every few seconds (the box forgets silent consoles). Each delivered
alert/event is stored (de-duplicated by id) together with the new position, then acknowledged. A
message that does not follow on from what the console holds (``prev`` beyond its position) is
dropped: the box sends it again in order. Decisions waiting in the store are sent until acknowledged.
A message of a newer version than this console reads is neither misread nor acknowledged: the link
shows state ``incompatible`` with the reason (update the console), and the box keeps it until then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

import zmq
from zmq.utils.monitor import recv_monitor_message

from edge.alerts import messages, protocol
from edge.console import decisions
from edge.console.store import Store

log = logging.getLogger(__name__)
HELLO_EVERY_S = 2.0
RESEND_ADJ_S = 3.0


class BoxLink:
    def __init__(self, endpoint: str, box_key: bytes, keys: tuple[bytes, bytes], store: Store,
                 on_change=None, name: str = "console"):
        self.endpoint, self.box_key, self.keys, self.store, self.name = endpoint, box_key, keys, store, name
        self.on_change = on_change or (lambda kind, data: None)  # fn(kind, data): "alert"/"event"/"link"
        self.state = "connecting"  # connecting / connected / refused / disconnected / incompatible
        self.problem = ""  # why the link is incompatible (a message version newer than this console reads)
        self.box_id = ""
        self.box_status: dict = {}
        self.since = time.time()  # when the link entered its state
        self.changes: deque = deque(maxlen=20)  # the console's own event lines: link up / lost / refused
        self.counts = {"received": 0, "duplicates": 0, "out_of_order": 0, "bad_messages": 0}
        self.wake = threading.Event()  # set when there is a decision to send
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"link-{endpoint}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def info(self) -> dict:
        return {"endpoint": self.endpoint, "box_id": self.box_id, "state": self.state, "problem": self.problem,
                "cameras": self.box_status.get("cameras", {}), "accuracy": _accuracy(self.box_status),
                "matching": _matching(self.box_status), "since": self.since, "verification": self.verification(),
                **self.counts}

    def verification(self) -> str:
        """The box's two-person rule as its hello says ("one" until it says otherwise)."""
        return "two" if self.box_status.get("verification") == "two" else "one"

    # -- the link thread --------------------------------------------------------------------------
    def _run(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 1000)  # notice a box that vanished without closing (power cut)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 2500)  # within 3 s: the console's red banner (issue 18)
        sock.curve_serverkey = self.box_key
        sock.curve_publickey, sock.curve_secretkey = self.keys
        mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
                                      | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
        sock.connect(self.endpoint)
        self.sock = sock
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(mon, zmq.POLLIN)
        last_hello = last_adj = 0.0
        try:
            while not self._stop.is_set():
                ready = dict(poller.poll(100))
                if mon in ready:
                    self._monitor(recv_monitor_message(mon)["event"])
                    last_hello = 0.0
                if sock in ready:
                    for _ in range(200):
                        try:
                            self._receive(sock.recv())
                        except Exception:  # a bug must not silently end the link
                            log.exception("error handling a message from %s", self.endpoint)
                        if not sock.poll(0):
                            break
                now = time.monotonic()
                if self.state == "connected" and now - last_hello > HELLO_EVERY_S:
                    last_hello = now
                    outbox, last = self.store.position(self.endpoint)
                    self._send(protocol.hello("console", name=self.name, outbox=outbox, last_seq=last))
                if self.box_id and self.state == "connected" and (self.wake.is_set() or now - last_adj > RESEND_ADJ_S):
                    self.wake.clear()
                    last_adj = now
                    reports = decisions.undelivered_reports(self.store, self.box_id)  # decisions not counted here
                    for adj in self.store.undelivered(self.box_id) + reports:
                        self._send(messages.dumps(adj))
                    for pruned in self.store.undelivered_prunes(self.box_id):  # copies this console deleted
                        self._send(messages.dumps(pruned))
        finally:
            sock.disable_monitor()
            mon.close(0)
            sock.close(0)

    def _monitor(self, event: int) -> None:
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self._set_state("connected")
        elif event == zmq.EVENT_DISCONNECTED:
            self._set_state("disconnected" if self.state != "refused" else "refused")
        else:
            self._set_state("refused")
            log.warning("box %s refused this console's key (is it registered there?)", self.endpoint)

    def _set_state(self, state: str) -> None:
        if self.state == "incompatible" and state == "connected":
            return  # stays shown until the console is updated
        if state != self.state:
            self._note_change(self.state, state)
            self.state = state
            if state != "connected":  # camera states are only known while the box is heard
                self.box_status = {"cameras": dict.fromkeys(self.box_status.get("cameras", {}), "unknown")}
            self.on_change("link", self.info())

    def _note_change(self, old: str, new: str) -> None:
        """One event line per change of the link (the box cannot announce its own death)."""
        self.since = time.time()
        event = {"connected": "link_up", "disconnected": "link_down"}.get(new, f"link_{new}")
        self.changes.append({"event_id": f"link-{self.endpoint}-{len(self.changes)}-{self.since}",
                             "box_id": self.box_id or self.endpoint, "time": messages.utcnow(), "event": event,
                             "endpoint": self.endpoint})

    def _send(self, data: bytes) -> None:
        try:
            self.sock.send(data, flags=zmq.NOBLOCK)
        except zmq.Again:
            pass  # sent again on the next round

    def _receive(self, data: bytes) -> None:
        try:
            msg = protocol.loads(data, allowed={"hello", "ack", "alert", "event"})
        except messages.NewerVersion as exc:
            self.counts["bad_messages"] += 1
            if self.state != "incompatible":
                self.problem = f"box {self.box_id or self.endpoint}: {exc}"
                log.error("%s; nothing from this box is shown until then", self.problem)
                self._set_state("incompatible")
            return
        except messages.MessageError as exc:
            self.counts["bad_messages"] += 1
            log.warning("ignored a malformed message from %s: %s", self.endpoint, exc)
            return
        kind = msg["type"]
        if kind == "hello":
            self._box_hello(msg)
        elif kind == "ack":
            if isinstance(msg.get("prune_id"), str):
                self.store.prune_delivered(msg["prune_id"])
            if msg.get("alert_id"):
                refused = str(msg.get("refused") or "")
                self.store.delivered(msg["alert_id"], refused, str(msg.get("decision_id") or ""))
                if refused:
                    log.warning("box %s did not count the decision on alert %s: %s", self.box_id, msg["alert_id"],
                                refused)
                self.on_change("decision", {"alert_id": msg["alert_id"], "delivered": True, "refused": refused})
        elif "seq" in msg:
            self._delivery(msg)

    def _box_hello(self, msg: dict) -> None:
        outbox, last = self.store.position(self.endpoint)
        if not isinstance(msg.get("outbox"), str) or not isinstance(msg.get("box_id"), str):
            return
        if msg["outbox"] != outbox:  # a box (or outbox) this console has not heard from: start over
            self.store.set_position(self.endpoint, msg["box_id"], msg["outbox"], 0)
        changed = (msg.get("cameras") != self.box_status.get("cameras") or self.box_id != msg["box_id"]
                   or _accuracy(msg) != _accuracy(self.box_status) or _matching(msg) != _matching(self.box_status)
                   or msg.get("verification") != self.box_status.get("verification"))
        if msg["v"] >= 2 and msg.get("retention_days") != self.box_status.get("retention_days"):
            self.store.set_box_retention(msg["box_id"], msg["retention_days"])  # its alerts go no later here
        if not self.box_id:  # the link's own event lines name the box once it has said who it is
            for c in list(self.changes):
                c["box_id"] = msg["box_id"] if c["box_id"] == self.endpoint else c["box_id"]
        self.box_id, self.box_status = msg["box_id"], msg
        if changed:
            self.on_change("link", self.info())

    def _delivery(self, msg: dict) -> None:
        outbox, last = self.store.position(self.endpoint)
        if msg["outbox"] != outbox:
            return  # sent before the box's hello was seen; it comes again
        if msg["seq"] <= last:
            self.counts["duplicates"] += 1
        elif msg["prev"] > last:
            self.counts["out_of_order"] += 1
            return  # a gap: the box goes back and sends the missing ones first
        else:
            new = self.store.receive(self.endpoint, msg)
            self.counts["received" if new else "duplicates"] += 1
            if new:
                self.on_change(msg["type"], msg)
            last = msg["seq"]
        self._send(protocol.ack(outbox=outbox, seq=last))


def _accuracy(status: dict) -> dict:
    """The box's expected and measured false-alert rates, as plain numbers (shown, never trusted)."""
    acc = status.get("accuracy")
    if not isinstance(acc, dict):
        return {}
    keep = {}
    for key in ("expected_fpir", "measured_fpir", "false_alerts", "faces"):
        v = acc.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool):
            keep[key] = v
    op = acc.get("operating")
    if isinstance(op, dict) and isinstance(op.get("list_size"), int):
        keep["list_size"] = op["list_size"]
    return keep


def _matching(status: dict) -> dict:
    """The box's hello ``matching`` field as plain typed values ({} if the box does not send it)."""
    m = status.get("matching")
    if not isinstance(m, dict) or not isinstance(m.get("on"), bool):
        return {}
    text = lambda k: str(m.get(k) or "")[:200]  # noqa: E731
    entries = m.get("entries") if isinstance(m.get("entries"), int) and not isinstance(m.get("entries"), bool) else 0
    cams = m.get("not_authorised")
    if not isinstance(cams, list):
        cams = []
    urgent = m.get("emergency")
    if not isinstance(urgent, list):
        urgent = []
    return {"on": m["on"], "why": text("why"), "list_id": text("list_id"), "entries": entries,
            "not_after": text("not_after") or None, "not_authorised": [str(c)[:64] for c in cams[:64]],
            "emergency": [str(x)[:200] for x in urgent[:16]], "unauthorised": m.get("unauthorised") is True}
