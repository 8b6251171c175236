"""Box -> console channel: CURVE-authenticated ZeroMQ, durable, at-least-once, in order.

The box binds a ROUTER socket as a CURVE server with its own key pair. A ZAP authenticator lets a
client in only if its CURVE public key is registered in the trust store (``edge trust add-console``);
the trust store is read at each handshake, so a newly registered console needs no restart. Any other
client fails the handshake and gets nothing.

Every alert and event goes into the outbox (``edge.alerts.outbox``) before it is sent. Each console
says ``hello`` with the last sequence number it holds; the box sends what follows, at most WINDOW
unacknowledged at a time, and goes back to the last acknowledged one when acks stop coming
(go-back-N). So a box that was killed, or a console that was away for hours, resumes where the
console left off. Adjudications come back on the same link and are acknowledged once handled; one is
accepted only for an alert the box holds, that was sent to that console, whose encounter is still
undecided, from a console still registered: the first valid decision counts. A refused one is acked
with its reason and audited (``adjudication_refused``, at most REFUSALS_RECORDED a minute box-wide).
The wire format is docs/alerts.md. One thread owns the socket; ``publish`` may be called from any.

A registered console is still not trusted to behave: each one's messages are capped in size
(``MAX_INBOUND``, also enforced by libzmq, which drops the connection) and in rate (a token bucket of
``RATE`` per second, ``BURST`` at once: ``limits``); an ack is believed only for what was sent to that session; a
message that cannot be handled is counted and dropped without a traceback or a pause; refusals go to
the audit log, at most ``REFUSED_PER_HOUR`` records an hour for all keys together. What one registered console
can make the box write is bounded too (``RECORDS_BURST``, ``RECORDS_PER_HOUR``), and a prune notice is recorded
only with the ids of alerts the box holds and sent to that console.

Trust is checked on every message and before every send, not only at the handshake: a console whose key is
removed from the trust store (``edge trust remove``) gets nothing more on the connections it holds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from zmq.auth.thread import ThreadAuthenticator

from edge import identity
from edge.alerts import limits, messages, protocol, retention, verification
from edge.alerts.outbox import Outbox
from edge.errors import EdgeError

log = logging.getLogger(__name__)
WINDOW = 64  # messages in flight per console
RESEND_S = 2.0  # no ack progress for this long: send again from the last acknowledged message
SESSION_TIMEOUT_S = 15.0  # consoles say hello every few seconds; silent ones are forgotten
PRUNE_EVERY_S = 3600.0
MAX_INBOUND = 64 * 1024  # bytes of one console message (an adjudication is < 2 KiB)
MAX_SESSIONS_PER_CONSOLE = 8  # live connections one console key may hold
REFUSED_PER_HOUR = 30  # console_refused audit records an hour, all keys together (the rest are counted)
MAX_REMEMBERED_KEYS = 1024
REFUSALS_RECORDED = 30  # adjudication_refused records per minute, box-wide; the rest are counted


@dataclass
class Session:
    console: str  # key id of the console's CURVE public key (from the ZAP handshake)
    acked: int
    next: int
    heard: float = field(default_factory=time.monotonic)
    progress: float = field(default_factory=time.monotonic)
    saved: int = -1  # last ack written to the outbox's acks table
    sent_row: int | None = None  # this session's row in the outbox's table of what went to which console


class Channel:
    def __init__(self, endpoint: str, state_dir: str | Path, curve_public: bytes, curve_secret: bytes,
                 box_id: str, on_adjudication: Callable[[dict, str], None] | None = None,
                 status: Callable[[], dict] | None = None, record: Callable[..., Any] | None = None,
                 prune: Callable[[], Any] | None = None, policy: Callable[[], retention.Policy] | None = None,
                 verification: Callable[[], str] | None = None):
        self.endpoint, self.state_dir, self.box_id = endpoint, Path(state_dir), box_id
        self._keys = (curve_public, curve_secret)
        self.on_adjudication = on_adjudication  # fn(msg, console_key_id); raise to refuse (no ack)
        self.status = status or (lambda: {})  # fn() -> dict sent in the box's hello (camera states)
        self.record = record or (lambda kind, **fields: None)  # the audit hook
        # retention: fn() -> the box's policy now (the daemon's: the stricter of the config and the list's); the
        # audited sweep applies it, and each console is told its period (hello retention_days) to apply as well
        self.policy = policy or (lambda: retention.Policy(retention.DEFAULT_DAYS, "default"))
        self.verification = verification or (lambda: "one")  # fn() -> the box's policy now ("one" / "two")
        self.prune = prune or (lambda: retention.sweep(self.state_dir, self.policy(), record=self.record))
        self.counts = {"sent": 0, "resent": 0, "bad_messages": 0, "refused_keys": 0, "adjudications": 0,
                       "rate_limited": 0, "bad_acks": 0, "refused_messages": 0, "adjudications_refused": 0,
                       "bad_status": 0, "records_suppressed": 0, "untrusted_dropped": 0}
        self._refusals = (0.0, 0, 0)  # (minute started, recorded in it, not recorded since the last record)
        self.sessions: dict[bytes, Session] = {}
        self._refused: dict[str, float] = {}  # console key id -> when its refusal was last recorded
        self._refused_window = [0.0, 0, 0]  # [start of the hour, records in it, suppressed since last record]
        self._buckets: dict[str, limits.Bucket] = {}
        self._warned: dict[str, float] = {}
        self._prunes_seen: set[str] = set()
        self._reported: set[str] = set()  # decision ids of refusals recorded (a resend is not recorded again)
        self._pruned_ids: dict[str, set[str]] = {}  # console -> alert ids whose deletion it reported (this run)
        self._budget = limits.RecordBudget(self.record, MAX_REMEMBERED_KEYS)
        self._trust = limits.Trust(self.state_dir)
        self._outbox: Outbox | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def outbox(self) -> Outbox:
        """The durable outbox, open from ``start`` on."""
        if self._outbox is None:
            raise EdgeError("the alert channel is not started")
        return self._outbox

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        self._outbox = Outbox(self.state_dir / "outbox.db")
        self.prune()
        self._last_seq = self.outbox.last_seq()
        self.ctx = zmq.Context()  # its own context: the ZAP handler applies to this socket only
        self.auth = ThreadAuthenticator(self.ctx, log=logging.getLogger("edge.zap"))
        self.auth.start()
        self.auth.configure_curve_callback("edge", credentials_provider=self)
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self.sock.setsockopt(zmq.SNDHWM, 4 * WINDOW)
        self.sock.setsockopt(zmq.MAXMSGSIZE, MAX_INBOUND)  # a bigger frame drops that connection
        self.sock.setsockopt(zmq.RCVHWM, 1000)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)  # drop consoles whose connection died silently
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        self.sock.curve_server = True
        self.sock.curve_publickey, self.sock.curve_secretkey = self._keys
        self.sock.zap_domain = b"edge"
        try:
            self.sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self._close()
            raise EdgeError(f"cannot bind the alert endpoint {self.endpoint}: {exc}") from None
        self._thread = threading.Thread(target=self._run, name="alert-channel", daemon=True)
        self._thread.start()

    def publish(self, msg: dict) -> int:
        """Write the message to the outbox (durable once this returns); the channel thread sends it."""
        seq = self.outbox.add(msg)
        self._last_seq = max(self._last_seq, seq)
        return seq

    def stop_serving(self) -> None:
        """Stop hearing consoles: the channel's thread ends, its sockets and ZAP handler close. The outbox
        stays open: what is published now is durable and sent when the box next starts (the daemon's
        signed stop is written after this, and its checkpoint still reaches the consoles that way)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._close_sockets()

    def stop(self) -> None:
        self.stop_serving()
        self._close()

    def _close_sockets(self) -> None:
        if self.sock.closed:
            return
        self.sock.close(0)
        self.auth.stop()
        self.ctx.term()

    def _close(self) -> None:
        self._close_sockets()
        self.outbox.close()

    def callback(self, _domain: str, key: bytes) -> bool:
        """ZAP: is this CURVE public key (z85) a registered console?"""
        ok = key in identity.consoles(self.state_dir).values()
        if not ok:
            self.counts["refused_keys"] += 1
            kid = identity.key_id(_z85_decode(key.decode("ascii")))
            self._refuse(kid, "CURVE key not registered")
        return ok

    def _refuse(self, console: str, reason: str) -> None:
        """Audit a refused console: once an hour per key and reason, and REFUSED_PER_HOUR for all keys
        together (300 random keys make a handful of records and a count, not 300 records)."""
        now = time.monotonic()
        key = f"{console} {reason}"
        if now - self._refused.get(key, -1e9) <= 3600:
            return
        win = self._refused_window
        if now - win[0] > 3600:
            win[0], win[1] = now, 0
        if win[1] >= REFUSED_PER_HOUR:
            win[2] += 1
            return
        if len(self._refused) >= MAX_REMEMBERED_KEYS:
            self._refused.clear()
        self._refused[key] = now
        win[1] += 1
        extra = {"suppressed": win[2]} if win[2] else {}
        win[2] = 0
        log.warning("refused console %s: %s", console, reason)
        try:
            self.record("console_refused", console=console, reason=reason, **extra)
        except EdgeError as exc:
            log.error("could not record a refused console: %s", exc)

    def trusted(self, console: str) -> bool:
        """Is this console key in the trust store now? (``limits.Trust``: a key removed while connected counts.)"""
        return self._trust.has(console)

    def _record_by(self, who: str, kind: str, **fields: Any) -> bool:
        """Write a record console ``who`` caused, within its budget (False: counted, not written)."""
        if self._budget.record(who, kind, **fields):
            return True
        self.counts["records_suppressed"] += 1
        self._warn(who, "causes more audit records than its budget: counted, not written")
        return False

    def info(self) -> dict:
        return {"consoles_connected": len(self.sessions), "outbox": self.outbox.counts(),
                "outbox_last_seq": self._last_seq, "console_acks": self.outbox.acks(), **self.counts}

    # -- the channel thread ---------------------------------------------------------------------
    def _run(self) -> None:
        last_prune = time.monotonic()
        while not self._stop.is_set():
            try:
                if self.sock.poll(50):
                    for _ in range(100):
                        self._receive()
                        if not self.sock.poll(0):
                            break
                self._pump()
                if time.monotonic() - last_prune > PRUNE_EVERY_S:
                    last_prune = time.monotonic()
                    self.prune()
            except Exception:  # a bug must not silently end delivery
                log.exception("alert channel error")
                time.sleep(0.5)

    def _receive(self) -> None:
        parts = self.sock.recv_multipart(copy=False)
        if len(parts) != 2:
            self.counts["bad_messages"] += 1
            return
        rid_frame, frame = parts
        rid = rid_frame.bytes
        console = identity.key_id(_z85_decode(str(frame.get("User-Id"))))
        bucket = self._buckets.get(console)
        if bucket is None:
            if len(self._buckets) >= MAX_REMEMBERED_KEYS:
                self._buckets.clear()
            bucket = self._buckets[console] = limits.Bucket()
        if not bucket.take():
            self.counts["rate_limited"] += 1
            self._warn(console, "sends faster than the rate limit: messages dropped")
            return
        if len(frame) > MAX_INBOUND:
            self.counts["bad_messages"] += 1
            self._warn(console, f"sent a message over {MAX_INBOUND} bytes: dropped")
            return
        try:
            msg = protocol.loads(frame.bytes, allowed={"hello", "ack", "adjudication", "pruned"})
        except messages.MessageError as exc:
            self.counts["bad_messages"] += 1
            self._warn(console, f"sent a malformed message ({exc})")
            self._refuse_malformed(rid, frame.bytes, console, exc)
            return
        try:
            self._handle(rid, console, msg)
        except (EdgeError, ValueError, TypeError, KeyError, OverflowError) as exc:  # bounded: no traceback, no pause
            self.counts["refused_messages"] += 1
            self._warn(console, f"sent a {msg['type']} that was refused ({str(exc)[:200]})")

    def _refuse_malformed(self, rid: bytes, data: bytes, console: str, exc: Exception) -> None:
        """A decision the box cannot read (an operator's text over its bound, a field of the wrong type) is
        refused back in words, so its console stops sending it and shows why, instead of waiting for ever."""
        try:
            msg = json.loads(data)
        except (ValueError, RecursionError):
            return
        if not (isinstance(msg, dict) and msg.get("type") == "adjudication" and isinstance(msg.get("alert_id"), str)
                and 0 < len(msg["alert_id"]) <= 64 and self.trusted(console)):
            return
        safe = {"alert_id": msg["alert_id"], "decision": str(msg.get("decision"))[:16],
                "operator": str(msg.get("operator"))[:64], "decision_id": str(msg.get("decision_id") or "")[:64]}
        self._refuse_adjudication(rid, safe, console, f"not recorded, so not counted: {str(exc)[:200]}; decide again",
                                  "")

    def _warn(self, console: str, what: str) -> None:
        """One warning a minute per console and kind of trouble, not one per message."""
        key = f"{console} {what[:40]}"
        now = time.monotonic()
        if now - self._warned.get(key, -1e9) > 60:
            if len(self._warned) >= MAX_REMEMBERED_KEYS:
                self._warned.clear()
            self._warned[key] = now
            log.warning("console %s %s", console, what)

    def _handle(self, rid: bytes, console: str, msg: dict) -> None:
        if not self.trusted(console):  # removed from trust since it connected: nothing it says counts
            self._drop_untrusted(rid, console)
            if msg["type"] == "adjudication":
                self._refuse_adjudication(rid, msg, console, "unknown console", "")
            return
        sess = self.sessions.get(rid)
        if sess is not None:
            sess.heard = time.monotonic()
        if msg["type"] == "hello":
            if sess is None:
                if sum(x.console == console for x in self.sessions.values()) >= MAX_SESSIONS_PER_CONSOLE:
                    self._warn(console, "holds too many connections: hello ignored")
                    return
                # a console cannot claim more than the outbox holds (an ack of 2**64 would starve it)
                start = min(msg["last_seq"], self._last_seq) if msg.get("outbox") == self.outbox.id else 0
                self.sessions[rid] = Session(console, acked=start, next=start + 1)
                log.info("console %s connected (has up to %d)", console, start)
                self._record_by(console, "console_connected", console=console, resume_from=start)
            self._send(rid, self._hello())
        elif msg["type"] == "ack" and sess is not None and msg.get("outbox") == self.outbox.id:
            if sess.acked < msg["seq"] < sess.next:  # only what was sent on this session can be acknowledged
                sess.acked, sess.progress = msg["seq"], time.monotonic()
            elif msg["seq"] >= sess.next:
                self.counts["bad_acks"] += 1
                self._warn(console, f"acknowledged seq {msg['seq']}, which it was never sent: ignored")
        elif msg["type"] == "adjudication":
            self._adjudication(rid, msg, console)
        elif msg["type"] == "pruned":
            self._pruned(rid, msg, console)

    def _hello(self) -> bytes:
        """The box's hello; a status that cannot be sent (a number that is not finite) is left out, so the
        console still learns who the box is, where its outbox stands and how long it keeps alerts."""
        ident = dict(box_id=self.box_id, outbox=self.outbox.id, last_seq=self._last_seq,
                     retention_days=self.policy().days)
        try:
            return protocol.hello("box", **{**self.status(), **ident})
        except messages.MessageError as exc:
            self.counts["bad_status"] += 1
            self._warn("box", f"status not sent in the hello ({exc})")
            return protocol.hello("box", **ident)

    def _adjudication(self, rid: bytes, msg: dict, console: str) -> None:
        alert_id, decision_id = msg["alert_id"], msg.get("decision_id")
        accepted = self.outbox.accepted(alert_id)
        if accepted and accepted[0] == console and accepted[1].get("decision_id") == decision_id \
                and not msg.get("not_counted"):  # a resend of the accepted decision
            self._send(rid, protocol.ack(alert_id=alert_id, **({"decision_id": decision_id} if decision_id else {})))
            return
        found = self.outbox.find_alert(alert_id)
        encounter_id = messages.encounter_of(found[1]) if found else ""
        if msg["box_id"] != self.box_id:
            why = "meant for another box"
        elif not self.trusted(console):  # its key was removed since it connected
            why = "unknown console"
        elif found is None:
            why = "no such alert"
        elif not self.outbox.was_sent(console, found[0]):
            why = "not sent to this console"
        elif msg.get("not_counted"):  # the console did not count it (it lost a race there): recorded, never counted
            why = f"not counted by the console: {msg['not_counted']}"
        elif self.outbox.decided(encounter_id):
            why = "already decided"
        elif taken := limits.implausible_time(msg, found[1]):
            why = taken
        else:
            why = verification.refusal(self.verification(), msg)
            if not why:
                try:
                    if self.on_adjudication is not None:
                        self.on_adjudication(dict(msg, encounter_id=encounter_id), console)  # recorded before the ack
                except (EdgeError, ValueError, TypeError) as exc:  # not recorded: refused, and the operator told why
                    why = limits.unrecorded(exc)
            if not why:
                self.outbox.add_adjudication(msg, console, encounter_id)
                self.counts["adjudications"] += 1
                self._send(rid, protocol.ack(alert_id=alert_id,
                                             **({"decision_id": decision_id} if decision_id else {})))
                return
        self._refuse_adjudication(rid, msg, console, why, encounter_id)

    def _refuse_adjudication(self, rid: bytes, msg: dict, console: str, why: str, encounter_id: str) -> None:
        """Ack a refused adjudication with its reason (the console stops resending) and audit it, rate-limited,
        with the operator refused and, when the encounter was decided, who decided it."""
        self.counts["adjudications_refused"] += 1
        log.warning("refused an adjudication of alert %.36s from console %s: %s", msg["alert_id"], console, why)
        start, recorded, suppressed = self._refusals
        now = time.monotonic()
        if now - start >= 60.0:
            start, recorded = now, 0
        decision_id = str(msg.get("decision_id") or "")
        if decision_id and decision_id in self._reported:  # the console sent it again: our ack was lost
            self._send(rid, protocol.ack(alert_id=msg["alert_id"], refused=why, decision_id=decision_id))
            return
        if recorded < REFUSALS_RECORDED:
            won = self.outbox.decision_of(encounter_id) if encounter_id else None
            extra = {"decided_by": str(won.get("operator", ""))[:64], "decided": str(won.get("decision", ""))[:16],
                     "decided_at": str(won.get("time", ""))[:40]} if won else {}
            people = msg.get("verifications")
            fields = dict(alert_id=msg["alert_id"][:64], console=console, reason=why[:300], decision=msg["decision"],
                          operator=str(msg["operator"])[:64], encounter_id=encounter_id,
                          action=str(msg.get("action") or ""), refused_reason=str(msg.get("reason") or ""),
                          time_decided=str(msg.get("time") or "")[:40], suppressed=suppressed, **extra,
                          **({"verifications": people} if people else {}))
            try:
                written = self._record_by(console, "adjudication_refused", **fields)
            except EdgeError as exc:  # its own text cannot be recorded: the refusal is, without that text
                written = self._record_by(console, "adjudication_refused", **{
                    k: fields[k] for k in ("alert_id", "console", "reason", "decision", "encounter_id", "suppressed")},
                    unrecordable=str(exc)[:200])
            if written:
                recorded, suppressed = recorded + 1, 0
        else:
            suppressed += 1
        if decision_id:
            self._reported = {*list(self._reported)[-999:], decision_id}
        self._refusals = (start, recorded, suppressed)
        self._send(rid, protocol.ack(alert_id=msg["alert_id"], refused=why,
                                     **({"decision_id": decision_id} if decision_id else {})))

    def _pruned(self, rid: bytes, msg: dict, console: str) -> None:
        """A console deleted its copies of these alerts: recorded (once per prune_id while running), acked."""
        if msg["box_id"] != self.box_id:
            return
        if msg["prune_id"] not in self._prunes_seen:
            seen = self._pruned_ids.setdefault(console, set())
            held = limits.held_ids(self.outbox, console, msg["alert_ids"], seen)  # no made-up id is recorded
            not_held = len(msg["alert_ids"]) - len(held)
            if held:
                days = msg.get("retention_days")
                self._record_by(console, "console_pruned", console=console, prune_id=msg["prune_id"], alert_ids=held,
                                count=len(held), not_held=not_held, time=str(msg["time"])[:40],
                                retention_days=days if isinstance(days, int | float) and not isinstance(days, bool)
                                else None)
                seen.update(held)
            if not_held:
                self._warn(console, f"reported deleting {not_held} alert(s) this box does not hold or never sent "
                                    "it: not recorded")
            if len(self._prunes_seen) > 100_000:
                self._prunes_seen.clear()
            self._prunes_seen.add(msg["prune_id"])
        self._send(rid, protocol.ack(prune_id=msg["prune_id"]))

    def _pump(self) -> None:
        now = time.monotonic()
        for rid, s in list(self.sessions.items()):
            try:
                self._pump_one(rid, s, now)
            except (EdgeError, ValueError, OverflowError) as exc:  # one bad session must not stall the others
                self.sessions.pop(rid, None)
                self._warn(s.console, f"session dropped ({str(exc)[:200]})")

    def _drop_untrusted(self, rid: bytes, console: str) -> None:
        if self.sessions.pop(rid, None) is not None:
            self.counts["untrusted_dropped"] += 1
            log.warning("console %s was removed from the trust store: its connection gets nothing more", console)
            self._refuse(console, "removed from the trust store while connected: sent nothing more")

    def _pump_one(self, rid: bytes, s: Session, now: float) -> None:
        if now - s.heard > SESSION_TIMEOUT_S:
            del self.sessions[rid]
            return
        if not self.trusted(s.console):
            self._drop_untrusted(rid, s.console)
            return
        if s.acked != s.saved:
            self.outbox.ack(s.console, s.acked)
            s.saved = s.acked
        if s.next <= s.acked:
            s.next = s.acked + 1
        if s.next - 1 > s.acked and now - s.progress > RESEND_S:
            self.counts["resent"] += s.next - 1 - s.acked
            s.next, s.progress = s.acked + 1, now  # go back N
        room = WINDOW - (s.next - 1 - s.acked)
        if room <= 0 or s.next > self._last_seq:
            return
        if s.next - 1 == s.acked:
            s.progress = now  # the clock for an ack starts when something is in flight
        prev = first = s.next - 1
        for seq, body in self.outbox.after(s.next - 1, room):
            wire = body[:-1] + b',"outbox":"%s","prev":%d,"seq":%d}' % (self.outbox.id.encode(), prev, seq)
            if not self._send(rid, wire):
                break
            prev, s.next = seq, seq + 1
            self.counts["sent"] += 1
        if prev > first:  # what went to this console, so its decisions can be checked against it
            s.sent_row = self.outbox.sent_range(s.console, first + 1, prev, s.sent_row)

    def _send(self, rid: bytes, data: bytes) -> bool:
        try:
            self.sock.send_multipart([rid, data], flags=zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError:  # EHOSTUNREACH: that console went away
            self.sessions.pop(rid, None)
            return False


def _z85_decode(text: str) -> bytes:
    from zmq.utils import z85

    return z85.decode(text.encode("ascii"))
