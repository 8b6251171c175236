"""Box -> oversight service: the audit log, record by record as written, over CURVE ZeroMQ (docs/oversight-service.md).

The box connects out (a DEALER, CURVE client) to the oversight service's endpoint with the service's
registered key (``[oversight]`` in the box's config: ``endpoint`` and ``service_key``, the service's
``oversight.pub.json``); the service lets in only the CURVE keys of the boxes registered with it. The
log itself is the outbox: nothing is copied, so nothing is lost while the box is away, however long.

The exchange: the box says ``uplink_hello`` (its last seq and hash); the service answers ``uplink_want``
with the hashes it holds at its last seq and at exponentially spaced seqs below it; the box finds the
newest of those its own log agrees with and sends the records after it, in order, in batches
(``uplink_records``, each with the box's last seq), one batch in flight; the service stores and acks each
batch (``uplink_ack``), with its countersignature of the newest checkpoint it accepted (a witness the
box keeps in ``<state_dir>/audit/oversight-witness.json``, in the console witness file's format, so
``edge audit verify --witness`` checks the log against it). No ack in time: the box starts over with a
hello, and the service drops what it already holds, so a record is never stored twice.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import zmq

from edge import codec, files
from edge.audit.log import LOG_NAME, MAX_RECORD, Record
from edge.errors import EdgeError
from edge.identity import key_id

log = logging.getLogger(__name__)
VERSION = 1
SERVICE_PUB_TYPE = "edge-oversight-identity"
WITNESS_TYPE = "edge-oversight-witness"
WITNESS_DOMAIN = "edge-oversight-witness-v1"
WITNESS_FILE = "oversight-witness.json"
BATCH_RECORDS, BATCH_BYTES = 500, 512 * 1024
MAX_MESSAGE = 2 * BATCH_BYTES + 64 * 1024  # bytes of one link message, either way
HELLO_S, ACK_TIMEOUT_S, POLL_S = 3.0, 15.0, 0.5
TYPES: dict[str, dict[str, type]] = {"uplink_hello": {"box_id": str, "last_seq": int, "last_hash": str},
         "uplink_want": {"box_id": str, "have": list},
         "uplink_records": {"box_id": str, "records": list, "box_last_seq": int},
         "uplink_ack": {"box_id": str, "seq": int}}


def dumps(kind: str, **fields: Any) -> bytes:
    return json.dumps({"v": VERSION, "type": kind, **fields}, separators=(",", ":")).encode()


def loads(data: bytes, allowed: set[str]) -> dict[str, Any]:
    """One link message; EdgeError naming what is wrong with it."""
    if len(data) > MAX_MESSAGE:
        raise EdgeError("an uplink message is too large")
    try:
        msg = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise EdgeError("an uplink message is not JSON") from None
    if not isinstance(msg, dict) or msg.get("type") not in allowed:
        raise EdgeError(f"unexpected uplink message {str(msg.get('type') if isinstance(msg, dict) else '')[:40]!r}")
    if msg.get("v") != VERSION:
        raise EdgeError(f"uplink message version {msg.get('v')!r} is not {VERSION}")
    for name, tp in TYPES[msg["type"]].items():
        if not isinstance(msg.get(name), tp) or isinstance(msg.get(name), bool):
            raise EdgeError(f"{msg['type']}.{name} missing or not {tp.__name__}")
    return msg


# -- the service's identity and its witnesses ---------------------------------------------------------

def load_service_identity(path: str | Path) -> dict[str, Any]:
    """``oversight.pub.json`` -> {curve_public (z85 bytes), signing_public (raw), key_id}; EdgeError if not one."""
    try:
        doc = json.loads(files.read_text(path, "oversight service key", 64 * 1024))
        if not isinstance(doc, dict) or doc.get("type") != SERVICE_PUB_TYPE:
            raise ValueError
        pub = codec.unb64(doc.get("signing_public"), "signing_public", 32)
        curve = str(doc["curve_public"]).encode("ascii")
        if len(curve) != 40 or key_id(pub) != doc.get("key_id"):
            raise ValueError
    except (ValueError, KeyError, EdgeError, RecursionError):
        raise EdgeError(f"{path} is not an oversight service key (oversight.pub.json)") from None
    return {"curve_public": curve, "signing_public": pub, "key_id": doc["key_id"]}


def countersign(checkpoint: Record, box_id: str, received: str, key: Any) -> dict[str, Any]:
    """The service's witness of one box checkpoint (Ed25519 by the service key, domain-separated)."""
    from edge.identity import raw_public

    pub = raw_public(key)
    body = {"type": WITNESS_TYPE, "v": 1, "box_id": box_id, "checkpoint": checkpoint, "received": received,
            "service_key_id": key_id(pub), "service_public": codec.b64(pub)}
    return dict(body, sig=codec.sign(WITNESS_DOMAIN, body, key))


def check_witness(doc: object, service_public: bytes, box_id: str) -> dict[str, Any]:
    if not isinstance(doc, dict) or doc.get("type") != WITNESS_TYPE or doc.get("box_id") != box_id:
        raise EdgeError("not an oversight witness for this box")
    body = {k: v for k, v in doc.items() if k != "sig"}
    if doc.get("service_key_id") != key_id(service_public) or not codec.verify(WITNESS_DOMAIN, body, doc.get("sig"),
                                                                               service_public):
        raise EdgeError("the oversight witness is not signed by the registered service key")
    return doc


# -- the box's side --------------------------------------------------------------------------------------

def _scan(path: Path) -> list[tuple[int, str, int, int]]:
    """(seq, hash, offset, end) of each complete record line of the log."""
    out: list[tuple[int, str, int, int]] = []
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return out
    pos = 0
    while (nl := data.find(b"\n", pos)) >= 0:
        try:
            rec = json.loads(data[pos:nl])
            out.append((int(rec["seq"]), str(rec["hash"]), pos, nl + 1))
        except (ValueError, KeyError, TypeError, RecursionError):
            out.append((-1, "", pos, nl + 1))  # sent as it is: the service refuses it and says so
        pos = nl + 1
    return out


def _send_now(sock: zmq.Socket, data: bytes) -> bool:
    """Send if the service is connected (False otherwise: tried again later, never queued up)."""
    try:
        sock.send(data, flags=zmq.NOBLOCK)
        return True
    except zmq.Again:
        return False


class Uplink:
    """The box's sender thread: started by the daemon when ``[oversight] endpoint`` is set."""

    def __init__(self, endpoint: str, state_dir: str | Path, curve_public: bytes, curve_secret: bytes,
                 service_key: str | Path, box_id: str):
        self.endpoint, self.state_dir, self.box_id = endpoint, Path(state_dir), box_id
        self.path = self.state_dir / "audit" / LOG_NAME
        self.service = load_service_identity(service_key)
        self.keys = (curve_public, curve_secret)
        self.counts = {"sent": 0, "acked": 0, "witnesses": 0, "bad_messages": 0, "restarts": 0}
        self.acked_seq = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="oversight-uplink", daemon=True)
        self._thread.start()

    def stop(self, flush_s: float = 3.0) -> None:
        """Give what was written last (the signed stop) a moment to go, then stop; the rest goes next time."""
        deadline = time.monotonic() + flush_s
        while time.monotonic() < deadline and self._thread and self._thread.is_alive() and not self._caught_up():
            time.sleep(0.1)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _caught_up(self) -> bool:
        return self.acked_seq == self._last()[0]

    def _run(self) -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE)
        sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
        sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # nothing queued while the service is away: no pile of stale hellos
        sock.curve_serverkey = self.service["curve_public"]
        sock.curve_publickey, sock.curve_secretkey = self.keys
        sock.connect(self.endpoint)
        pos: int | None = None  # file offset of the next record to send, once the service said what it holds
        inflight: tuple[int, float, int] | None = None  # (last seq sent, when, end offset)
        last_hello = 0.0
        try:
            while not self._stop.is_set():
                if sock.poll(int(POLL_S * 1000)):
                    try:
                        msg = loads(sock.recv(), {"uplink_want", "uplink_ack"})
                        if msg["box_id"] != self.box_id:
                            raise EdgeError("a message for another box")
                    except EdgeError as exc:
                        self.counts["bad_messages"] += 1
                        log.warning("ignored a message from the oversight service: %s", exc)
                        continue
                    if msg["type"] == "uplink_want":
                        pos = self._start_from(msg["have"])
                        inflight = self._send(sock, pos, force=True)
                    elif inflight is not None:
                        pos, inflight = self._acked(msg, inflight)
                now = time.monotonic()
                if pos is None or (inflight is not None and now - inflight[1] > ACK_TIMEOUT_S):
                    if inflight is not None:
                        self.counts["restarts"] += 1
                    pos, inflight = None, None
                    if now - last_hello > HELLO_S:
                        last_hello = now
                        seq, h = self._last()
                        _send_now(sock, dumps("uplink_hello", box_id=self.box_id, last_seq=seq, last_hash=h))
                elif inflight is None:
                    inflight = self._send(sock, pos, force=False)
        except Exception:  # noqa: BLE001 - a bug here must not stop the box; the log waits for the next start
            log.exception("the oversight uplink stopped")
        finally:
            sock.close(0)
            ctx.term()

    def _last(self) -> tuple[int, str]:
        """(seq, hash) of the log's last complete record, from its tail (a record is at most MAX_RECORD bytes)."""
        try:
            with open(self.path, "rb") as f:
                size = f.seek(0, 2)
                f.seek(max(0, size - 2 * MAX_RECORD))
                tail = f.read()
        except FileNotFoundError:
            return 0, "0" * 64
        end = tail.rfind(b"\n")
        try:
            rec = json.loads(tail[tail.rfind(b"\n", 0, end) + 1:end])
            return int(rec["seq"]), str(rec["hash"])
        except (ValueError, KeyError, TypeError, RecursionError):
            return 0, "0" * 64

    def _start_from(self, have: list) -> int:
        """The offset after the newest record the service holds with the same hash (0: from the start)."""
        recs = _scan(self.path)
        mine = {(seq, h): end for seq, h, _, end in recs}
        for item in have:
            if isinstance(item, list) and len(item) == 2 and (item[0], item[1]) in mine:
                return mine[(item[0], item[1])]
        return 0

    def _send(self, sock: zmq.Socket, pos: int, force: bool) -> tuple[int, float, int] | None:
        """Send the complete lines after ``pos`` (a batch; with ``force`` also an empty one, which says the box's
        last seq); what is now in flight: (last seq sent, when, the offset after it), or None."""
        try:
            with open(self.path, "rb") as f:
                f.seek(pos)
                data = f.read(BATCH_BYTES)
        except FileNotFoundError:
            data = b""
        end = data.rfind(b"\n") + 1
        lines = data[:end].split(b"\n")[:-1][:BATCH_RECORDS]
        if not lines and not force:
            return None
        size = sum(len(ln) + 1 for ln in lines)
        last_seq = self._last()[0]
        try:
            sent_seq = int(json.loads(lines[-1])["seq"]) if lines else -1
        except (ValueError, KeyError, TypeError, RecursionError):
            sent_seq = -1  # a damaged line: the service refuses it and says up to where it holds the log
        if not _send_now(sock, dumps("uplink_records", box_id=self.box_id, records=[ln.decode() for ln in lines],
                                     box_last_seq=last_seq)):
            return None
        self.counts["sent"] += len(lines)
        return sent_seq, time.monotonic(), pos + size

    def _acked(self, msg: dict[str, Any], inflight: tuple[int, float, int]) -> tuple[int | None, None]:
        witness = msg.get("witness")
        if isinstance(witness, dict):
            self._keep_witness(witness)
        sent_seq, _, end = inflight
        self.acked_seq = msg["seq"]
        if sent_seq >= 0 and msg["seq"] != sent_seq:  # the service refused part of it: ask again what it holds
            log.warning("the oversight service holds up to seq %s, not %s: starting over", msg["seq"], sent_seq)
            return None, None
        self.counts["acked"] += 1
        return end, None

    def _keep_witness(self, doc: dict[str, Any]) -> None:
        try:
            check_witness(doc, self.service["signing_public"], self.box_id)
        except EdgeError as exc:
            self.counts["bad_messages"] += 1
            log.warning("ignored a witness from the oversight service: %s", exc)
            return
        path = self.state_dir / "audit" / WITNESS_FILE
        entry = {"endpoint": self.endpoint, "box_id": self.box_id, "received": doc["received"],
                 "console": f"oversight service {doc['service_key_id']}", "checkpoint": doc["checkpoint"],
                 "countersignature": doc}
        out = {"type": "edge-audit-witness", "v": 1, "console": entry["console"], "witnesses": [entry]}
        files.write_atomic(path, json.dumps(out, sort_keys=True).encode() + b"\n", 0o600)
        self.counts["witnesses"] += 1
