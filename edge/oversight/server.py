"""`edge oversight serve`: boxes' audit records in over CURVE ZeroMQ, each verified and stored, witnesses out.

A ROUTER bound as a CURVE server with the service's key; the ZAP handler lets in only the CURVE keys
of the boxes registered in the config, and a box may speak only for itself (the box id its key was
registered with). One thread owns the socket and the database connection. The exchange is
``edge.audit.uplink``'s (docs/oversight-service.md).
"""

from __future__ import annotations

import json
import logging
import threading
import time

import zmq
from zmq.auth.thread import ThreadAuthenticator

from edge import codec
from edge.audit import uplink
from edge.errors import EdgeError
from edge.oversight.config import ServiceConfig, ServiceKeys, register_boxes
from edge.oversight.db import Database
from edge.oversight.ingest import Ingest, Outcome

log = logging.getLogger("edge.oversight")


class Server:
    def __init__(self, cfg: ServiceConfig, db: Database, keys: ServiceKeys):
        self.cfg, self.db, self.keys = cfg, db, keys
        self.ingest = Ingest(db)
        self.boxes = {curve.encode(): box for box, curve in register_boxes(db, cfg, now()).items()}
        self.counts = {"records": 0, "duplicates": 0, "refused": 0, "bad_messages": 0, "witnesses": 0}
        self._stop = threading.Event()

    def callback(self, _domain: str, key: bytes) -> bool:
        return key in self.boxes

    def run(self, ready: threading.Event | None = None) -> None:
        ctx = zmq.Context()
        auth = ThreadAuthenticator(ctx, log=logging.getLogger("edge.oversight.zap"))
        auth.start()
        auth.configure_curve_callback("oversight", credentials_provider=self)
        sock = ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.MAXMSGSIZE, uplink.MAX_MESSAGE)
        sock.curve_server = True
        sock.curve_publickey, sock.curve_secretkey = self.keys.curve_public, self.keys.curve_secret
        sock.zap_domain = b"oversight"
        try:
            sock.bind(self.cfg.endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            auth.stop()
            ctx.term()
            raise EdgeError(f"cannot bind the oversight endpoint {self.cfg.endpoint}: {exc}") from None
        log.info("oversight service listening on %s for %d box(es)", self.cfg.endpoint, len(self.boxes))
        if ready is not None:
            ready.set()
        try:
            while not self._stop.is_set():
                if sock.poll(200):
                    rid, frame = sock.recv_multipart(copy=False)
                    reply = self.handle(str(frame.get("User-Id")).encode(), frame.bytes)
                    if reply is not None:
                        sock.send_multipart([rid.bytes, reply])
        finally:
            sock.close(0)
            auth.stop()
            ctx.term()

    def stop(self) -> None:
        self._stop.set()

    def handle(self, curve_key: bytes, data: bytes) -> bytes | None:
        box = self.boxes.get(curve_key)
        try:
            msg = uplink.loads(data, {"uplink_hello", "uplink_records"})
            if box is None or msg["box_id"] != box:
                raise EdgeError(f"a box registered as {box!r} spoke for {msg['box_id']!r}")
            if msg["type"] == "uplink_hello":
                _, have = self.ingest.have(box)
                return uplink.dumps("uplink_want", box_id=box, have=have)
            lines = [r for r in msg["records"] if isinstance(r, str)]
            out = self.ingest.accept(box, lines, "link", box_last=msg["box_last_seq"])
        except EdgeError as exc:
            self.counts["bad_messages"] += 1
            log.warning("box %s: %s", box, exc)
            return None
        except Exception:  # noqa: BLE001 - one bad delivery (or a database hiccup) must not end the service
            log.exception("box %s: delivery not stored", box)
            return None
        self._count(out)
        return uplink.dumps("uplink_ack", box_id=box, seq=out.through, witness=self.witness(out))

    def _count(self, out: Outcome) -> None:
        self.counts["records"] += out.accepted
        self.counts["duplicates"] += out.duplicates
        self.counts["refused"] += out.refused
        for i in out.incidents:
            log.warning("INCIDENT %s", i)

    def witness(self, out: Outcome) -> dict | None:
        """Countersign the newest checkpoint this delivery brought (stored, and sent back to the box)."""
        if not out.checkpoints:
            return None
        cp = out.checkpoints[-1]
        doc = uplink.countersign(cp, out.box_id, now(), self.keys.signing_key)
        with self.db.tx():
            self.db.x("INSERT INTO witnesses VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                      (out.box_id, out.branch, cp["seq"], cp["hash"], json.dumps(doc, sort_keys=True)))
        self.counts["witnesses"] += 1
        return doc


def now() -> str:
    return codec.fmt_time(time.time(), ms=True)
