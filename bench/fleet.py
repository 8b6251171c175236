"""bench.fleet: the oversight service for a real force, on SQLite and on PostgreSQL in the same run.

A generator writes a fleet's year of signed, valid audit logs: BOXES boxes (half at private sites), 10
deployments a box a week, each with its list from one of 8 issuers (a signed deletion receipt at its end),
~15,000 faces counted (faces_processed, two cameras, every 6 minutes), 10 alerts with a sighting, a decision
and an encounter end each, the retention sweep's deletions, the service's starts and stops, checkpoints
signed every 50 records; two boxes are tampered with (one record edited, 20 records deleted). Each box's
log goes through the service's ingest in deliveries of 500 records, as the link sends them.

Measured per engine: ingest rate (records/s, every record verified), the fleet report for the year (the four
questions by issuer, and the seeds' question: issuer X, private sites, with drill-down), the database size,
and one box catching up over the real CURVE link after 72 h offline.

    python -m bench.fleet                       # the full year: 50 boxes x 52 weeks (~4 M records)
    python -m bench.fleet --boxes 10 --weeks 4  # a quick look
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge import codec, identity
from edge.audit.log import GENESIS, checkpoint_message, record_hash
from edge.codec import canonical
from edge.watchlist import receipt

ISSUERS = [(f"{i:016x}", f"SPOC {chr(65 + i)}") for i in range(8)]
START = datetime(2026, 1, 5, tzinfo=UTC)


class LogWriter:
    """One box's log, in memory: canonical lines, chained, signed every 50 records."""

    def __init__(self, box_id: str, key: Ed25519PrivateKey):
        self.box_id, self.key = box_id, key
        self.pub = identity.raw_public(key)
        self.kid = identity.key_id(self.pub)
        self.seq, self.prev, self.since = 0, GENESIS, 0
        self.lines: list[bytes] = []

    def add(self, kind: str, t: datetime, data: dict) -> None:
        self._write(kind, t, data)
        self.since += 1
        if self.since >= 50 or kind in ("service_stop", "provisioned"):
            self._write("checkpoint", t, {"key_id": self.kid, "signing_public": codec.b64(self.pub), "sig": ""})
            self.since = 0

    def _write(self, kind: str, t: datetime, data: dict) -> None:
        self.seq += 1
        rec = {"v": 1, "seq": self.seq, "time": codec.fmt_time(t, ms=True), "kind": kind, "box_id": self.box_id,
               "data": data, "prev": self.prev}
        if kind == "checkpoint":
            data["sig"] = codec.b64(self.key.sign(checkpoint_message(rec)))
        rec["hash"] = self.prev = record_hash(rec)
        self.lines.append(canonical(rec))


def deployment(w: LogWriter, ident: identity.Identity, box: int, site: str, week: int, k: int) -> None:
    t = START + timedelta(days=7 * week + k // 2, hours=8 + 6 * (k % 2))
    dep, (issuer, name) = f"op-{box:02d}-{week:02d}-{k}", ISSUERS[(box + week + k) % len(ISSUERS)]
    list_id = f"list-{box:02d}-{week:02d}-{k}"
    w.add("service_start", t, {"cameras": ["cam1", "cam2"], "retention_days": 31.0})
    w.add("deployment_start", t, {"deployment_id": dep, "location": site, "cameras": ["cam1", "cam2"]})
    refs = [f"WL-{box:02d}{week:02d}{k}-{n:02d}" for n in range(40)]
    w.add("watchlist_loaded", t, {"issuer": issuer, "issuer_name": name, "list_id": list_id, "entries": 40,
                                  "refs": refs, "deployment": dep, "sequence": week * 10 + k, "arrived": "usb"})
    faces = [15000 // 96 + (1 if i < 15000 % 96 else 0) for i in range(96)]
    alerts = {12 + 8 * a: a for a in range(10)}
    for i in range(96):
        ti = t + timedelta(minutes=3 * i)
        w.add("faces_processed", ti, {"camera_id": f"cam{1 + i % 2}", "faces": faces[i], "interval_s": 360.0})
        if i in alerts:
            a = alerts[i]
            aid = f"{dep}-a{a}"
            w.add("alert", ti, {"alert_id": aid, "camera_id": "cam1", "time": codec.fmt_time(ti, ms=True),
                                "ref": refs[a], "distance": 0.41, "encounter_id": aid, "sighting": 1})
            w.add("sighting", ti, {"alert_id": f"{aid}-2", "encounter_id": aid, "sighting": 2, "camera_id": "cam2",
                                   "time": codec.fmt_time(ti, ms=True), "ref": refs[a], "distance": 0.43,
                                   "state": "open"})
            confirm = a < 3
            w.add("adjudication", ti, {"alert_id": aid, "operator": "PC 1", "decision": "confirm" if confirm
                                       else "dismiss", "action": "approached" if confirm else "",
                                       "reason": "" if confirm else "not the person", "seconds_to_decision": 9.0})
            w.add("encounter_end", ti, {"encounter_id": aid, "ref": refs[a], "sightings": 2,
                                        "outcome": "confirmed" if confirm else "dismissed"})
    end = t + timedelta(hours=5)
    rc = receipt.make(ident, list_id=list_id, issuer=issuer, deployment=dep, sequence=week * 10 + k, entries=40,
                      reason="deployment ended", when=end)
    w.add("watchlist_purged", end, {"list_id": list_id, "reason": "deployment ended", "ending": "deployment ended",
                                    **{f: rc[f] for f in receipt.FIELDS}, "receipt_signature": rc["signature"],
                                    "receipt_version": rc["version"]})
    w.add("deployment_end", end, {"deployment_id": dep, "reason": "window ended"})
    for a in range(10):
        w.add("retention_deleted", end, {"alert_id": f"{dep}-a{a}", "alert_time": codec.fmt_time(t, ms=True),
                                         "files": 1})
    w.add("service_stop", end, {"reason": "stopped"})


def make_box(box: int, weeks: int, site: str) -> tuple[identity.Identity, list[bytes]]:
    ident = identity.Identity(f"box-{box:02d}", Ed25519PrivateKey.generate(), X25519PrivateKey.generate(),
                              *_curve())
    w = LogWriter(ident.box_id, ident.signing_key)
    w.add("provisioned", START, {"box_id": ident.box_id, "signing_key_id": w.kid, "signing_public": codec.b64(w.pub)})
    for week in range(weeks):
        for k in range(10):
            deployment(w, ident, box, site, week, k)
    lines = w.lines
    if box == 0:  # tampered: one record edited (its hash no longer matches)
        mid = next(i for i in range(len(lines) // 2, len(lines)) if b'"faces":' in lines[i])
        lines[mid] = lines[mid].replace(b'"faces":', b'"faces":1', 1)
    elif box == 1:  # tampered: 20 records deleted
        mid = len(lines) // 2
        del lines[mid:mid + 20]
    return ident, lines


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _curve() -> tuple[bytes, bytes]:
    import zmq

    return zmq.curve_keypair()


def site_of(box: int) -> tuple[str, str]:
    return (f"Site {box:02d}", "private" if box % 2 else "public")


def write_config(folder: Path, url: str, idents: list[identity.Identity], endpoint: str) -> Path:
    boxes = folder / "boxes"
    boxes.mkdir(parents=True, exist_ok=True)
    text = f'[database]\nurl = "{url}"\n[service]\nendpoint = "{endpoint}"\nkeys = "keys"\n'
    for ident in idents:
        import json

        (boxes / f"{ident.box_id}.pub.json").write_text(json.dumps(ident.public()))
        s, kind = site_of(int(ident.box_id.split("-")[1]))
        text += f'[[boxes]]\nidentity = "boxes/{ident.box_id}.pub.json"\nsite = "{s}"\nsite_kind = "{kind}"\n'
    (folder / "oversight.toml").write_text(text)
    return folder / "oversight.toml"


def catch_up(cfg_path: Path, db, ident: identity.Identity, lines: list[bytes], tmp: Path) -> tuple[int, float]:
    """A box back after 72 h offline: its log's last 72 h go over the real CURVE link; (records, seconds)."""
    from edge.audit.uplink import Uplink
    from edge.oversight import config
    from edge.oversight.server import Server

    state = tmp / f"state-{ident.box_id}"
    (state / "audit").mkdir(parents=True)
    (state / "audit" / "audit.log").write_bytes(b"".join(ln + b"\n" for ln in lines))
    cfg = config.load(cfg_path)
    keys = config.keys(cfg.keys, create=True)
    server = Server(cfg, db, keys)
    ready = threading.Event()
    th = threading.Thread(target=server.run, args=(ready,), daemon=True)
    th.start()
    ready.wait(10)
    t0 = time.monotonic()
    up = Uplink(cfg.endpoint, state, ident.curve_public, ident.curve_secret, Path(cfg.keys) / config.PUB_FILE,
                ident.box_id)
    up.start()
    last = len(lines)
    while up.acked_seq < last and time.monotonic() - t0 < 600:
        time.sleep(0.05)
    took = time.monotonic() - t0
    up.stop(0)
    server.stop()
    th.join(5)
    return server.counts["records"], took


def run_engine(name: str, url: str, boxes: int, weeks: int, tmp: Path, fleet) -> dict:
    from edge.oversight import config
    from edge.oversight.db import open_db
    from edge.oversight.ingest import Ingest
    from edge.oversight.report import Scope, build

    folder = tmp / name
    idents = [f[0] for f in fleet]
    late = make_box(boxes, 1, "Van")  # the box that was away for 72 h: its first week, 72 h of it held back
    cfg = write_config(folder, url, [*idents, late[0]], f"tcp://127.0.0.1:{free_port()}")
    db = open_db(config.load(cfg).url, migrate=True)
    config.register_boxes(db, config.load(cfg), "2026-01-01T00:00:00.000Z")
    ing = Ingest(db, now="2027-01-01T00:00:00.000Z")
    n, t0 = 0, time.monotonic()
    for ident, lines in fleet:
        for i in range(0, len(lines), 500):
            ing.accept(ident.box_id, lines[i:i + 500], "link")
        n += len(lines)
    ingest_s = time.monotonic() - t0
    cut = _seq_at(late[1], START + timedelta(days=7) - timedelta(hours=72))
    ing.accept(late[0].box_id, late[1][:cut], "link")
    got, catch_s = catch_up(cfg, db, late[0], late[1], folder)
    t0 = time.monotonic()
    rep = build(db, Scope(), "issuer")
    report_s = time.monotonic() - t0
    t0 = time.monotonic()
    q = build(db, Scope(issuer=ISSUERS[0][1], site_kind="private"), "", detail=True)
    question_s = time.monotonic() - t0
    size = db.size_bytes()
    db.close()
    return {"engine": name, "records": n, "ingest_s": ingest_s, "rate": n / ingest_s, "report_s": report_s,
            "question_s": question_s, "size": size, "catch_records": got, "catch_s": catch_s,
            "incidents": len(rep["incidents"]), "encounters": rep["total"]["matched"]["encounters"],
            "q_images": q["total"]["shared"]["images"], "q_alerts": len(q["alerts"])}


def _seq_at(lines: list[bytes], t: datetime) -> int:
    stamp = codec.fmt_time(t, ms=True).encode()
    for i, ln in enumerate(lines):
        if ln[ln.index(b'"time":"') + 8:][:24] >= stamp:
            return i
    return len(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="bench.fleet")
    ap.add_argument("--boxes", type=int, default=50)
    ap.add_argument("--weeks", type=int, default=52)
    ap.add_argument("--engines", default="sqlite,postgresql")
    args = ap.parse_args(argv if argv is not None else sys.argv[1:] if __name__ == "__main__" else [])
    t0 = time.monotonic()
    fleet = [make_box(b, args.weeks, site_of(b)[0]) for b in range(args.boxes)]
    gen_s = time.monotonic() - t0
    total = sum(len(f[1]) for f in fleet)
    print(f"fleet: {args.boxes} boxes x {args.weeks} weeks x 10 deployments = {args.boxes * args.weeks * 10} "
          f"deployments, {total:,} signed records generated in {gen_s:.0f} s (2 boxes tampered)\n")
    tmp = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    pg = None
    print("| engine | records | ingest (records/s) | fleet report, by issuer | issuer X at private sites, "
          "drill-down | database | catch-up after 72 h offline | incidents |")
    print("|---|---|---|---|---|---|---|---|", flush=True)
    try:
        for engine in args.engines.split(","):
            if engine == "sqlite":
                url = str(tmp / "sqlite" / "oversight.db")
            else:
                sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
                from pghelpers import Postgres

                pg = Postgres().start()
                url = pg.new_database()[0]
            r = run_engine(engine, url, args.boxes, args.weeks, tmp, fleet)
            print(f"| {r['engine']} | {r['records']:,} | {r['rate']:,.0f} ({r['ingest_s']:.0f} s) | "
                  f"{r['report_s']:.2f} s ({r['encounters']:,} encounters) | {r['question_s']:.2f} s "
                  f"({r['q_images']:,} images, {r['q_alerts']:,} alerts) | {r['size'] / 2**20:,.0f} MiB | "
                  f"{r['catch_records']} records in {r['catch_s']:.1f} s | {r['incidents']} |", flush=True)
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
