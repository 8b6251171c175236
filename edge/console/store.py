"""The console's own SQLite (WAL): received alerts and events, decisions, link positions, operators.

Alerts are keyed by alert id, so a resent alert is stored once. Each alert is a sighting of an
encounter (``group_id`` holds its encounter id): a decision covers the whole encounter, is sent to the
box once (on the encounter's first alert), and a sighting that arrives after it — decided here or,
as the alert itself says, on the box — is stored decided, never as a new open alert. Each box link's position (the box's
outbox id and the last sequence number held) is updated in the same transaction as the message, so
a console that crashes resumes exactly where it was. A decision is kept here first and sent to the
box until the box acknowledges it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from edge import walstore
from edge.alerts import messages, protocol
from edge.codec import parse_time
from edge.console import decisions
from edge.errors import EdgeError

SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    alert_id TEXT PRIMARY KEY, box_id TEXT NOT NULL, group_id TEXT NOT NULL, camera_id TEXT NOT NULL,
    time TEXT NOT NULL, received REAL NOT NULL, ref TEXT NOT NULL, category TEXT NOT NULL,
    distance REAL NOT NULL, threshold REAL NOT NULL, body TEXT NOT NULL,
    outcome TEXT NOT NULL DEFAULT 'open', action TEXT, reason TEXT, note TEXT, operator TEXT,
    decided REAL, adjudication TEXT, delivered INTEGER NOT NULL DEFAULT 0, refused TEXT);
CREATE INDEX IF NOT EXISTS alerts_group ON alerts (group_id);
CREATE INDEX IF NOT EXISTS alerts_ref ON alerts (box_id, ref);
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY, box_id TEXT NOT NULL, time TEXT NOT NULL, received REAL NOT NULL,
    event TEXT NOT NULL, camera_id TEXT, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS links (endpoint TEXT PRIMARY KEY, box_id TEXT, outbox TEXT, last_seq INTEGER);
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, hash TEXT NOT NULL, created REAL NOT NULL,
    role TEXT NOT NULL DEFAULT 'operator');
CREATE TABLE IF NOT EXISTS witness (
    endpoint TEXT PRIMARY KEY, box_id TEXT NOT NULL, seq INTEGER NOT NULL, checkpoint TEXT NOT NULL,
    received REAL NOT NULL);
CREATE TABLE IF NOT EXISTS prunes (
    prune_id TEXT PRIMARY KEY, box_id TEXT NOT NULL, body TEXT NOT NULL, delivered INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS box_retention (box_id TEXT PRIMARY KEY, days REAL NOT NULL, heard REAL NOT NULL);
"""
PRUNE_CHUNK = 500  # alert ids per `pruned` message (docs/alerts.md)
SUMMARY = ("alert_id", "box_id", "group_id", "camera_id", "time", "received", "ref", "category", "distance",
           "threshold", "outcome", "action", "reason", "note", "operator", "decided", "delivered", "refused")
# what the page shows of an alert: its columns, and the face model that matched it (its distances' units)
COLUMNS = ",".join(SUMMARY) + ", json_extract(body, '$.model') AS model"
DECIDED = ("outcome", "action", "reason", "note", "operator", "decided")
_hasher = PasswordHasher()
_dummy: list[str] = []


def _dummy_hash() -> str:
    """An Argon2 hash of a random password, made with the same parameters as the real ones."""
    if not _dummy:
        import secrets

        _dummy.append(_hasher.hash(secrets.token_urlsafe(16)))
    return _dummy[0]


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = walstore.connect(self.path, SCHEMA + decisions.SCHEMA)
        if "refused" not in {r[1] for r in self._db.execute("PRAGMA table_info(alerts)")}:  # a store from before
            self._db.execute("ALTER TABLE alerts ADD COLUMN refused TEXT")
        if "role" not in {r[1] for r in self._db.execute("PRAGMA table_info(users)")}:  # before supervisors
            self._db.execute("ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'operator'")

    @contextlib.contextmanager
    def _tx(self):
        with self._lock, walstore.transaction(self._db) as db:
            yield db

    def _query(self, sql: str, args=()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._db.execute(sql, args)
            cols = [c[0] for c in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    # -- link positions -------------------------------------------------------------------------
    def position(self, endpoint: str) -> tuple[str, int]:
        rows = self._query("SELECT outbox, last_seq FROM links WHERE endpoint=?", (endpoint,))
        return (rows[0]["outbox"] or "", rows[0]["last_seq"] or 0) if rows else ("", 0)

    def set_position(self, endpoint: str, box_id: str, outbox: str, last_seq: int, db=None) -> None:
        sql = ("INSERT INTO links VALUES (?,?,?,?) ON CONFLICT(endpoint) DO UPDATE SET box_id=excluded.box_id, "
               "outbox=excluded.outbox, last_seq=excluded.last_seq")
        if db is not None:
            db.execute(sql, (endpoint, box_id, outbox, last_seq))
        else:
            with self._tx() as tx:
                tx.execute(sql, (endpoint, box_id, outbox, last_seq))

    def receive(self, endpoint: str, msg: dict) -> bool:
        """Store one delivered message and the link's new position; False if it was a duplicate."""
        with self._tx() as db:
            if msg["type"] == "event" and msg["event"] == "audit_checkpoint":
                cur = self._witness(db, endpoint, msg)
            elif msg["type"] == "alert":
                encounter = messages.encounter_of(msg)
                cur = db.execute(
                    "INSERT OR IGNORE INTO alerts (alert_id, box_id, group_id, camera_id, time, received, ref, "
                    "category, distance, threshold, body) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (msg["alert_id"], msg["box_id"], encounter, msg["camera_id"],
                     msg["time"], time.time(), msg["ref"], msg.get("category", ""), msg["distance"],
                     msg["threshold"], json.dumps(msg)))
                if cur.rowcount == 1:
                    self._join_decision(db, msg, encounter)
            else:
                cur = db.execute("INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?)",
                                 (msg["event_id"], msg["box_id"], msg["time"], time.time(), msg["event"],
                                  msg.get("camera_id"), json.dumps(msg)))
            if "seq" in msg:
                self.set_position(endpoint, msg["box_id"], msg["outbox"], msg["seq"], db)
            return cur.rowcount == 1

    # -- the witness: the newest audit checkpoint each box sent (docs/audit-format.md) ------------
    @staticmethod
    def _witness(db, endpoint: str, msg: dict):
        """Keep the box's newest signed checkpoint; never replaced by an older one, never pruned."""
        cp = msg.get("checkpoint")
        if not isinstance(cp, dict) or not isinstance(cp.get("seq"), int) or isinstance(cp.get("seq"), bool):
            return db.execute("SELECT 1 WHERE 0")
        return db.execute(
            "INSERT INTO witness VALUES (?,?,?,?,?) ON CONFLICT(endpoint) DO UPDATE SET box_id=excluded.box_id, "
            "seq=excluded.seq, checkpoint=excluded.checkpoint, received=excluded.received "
            "WHERE excluded.seq > witness.seq", (endpoint, msg["box_id"], min(cp["seq"], 2**63 - 1),
                                                 json.dumps(cp), time.time()))

    def witnesses(self) -> list[dict]:
        return [{"endpoint": r["endpoint"], "box_id": r["box_id"], "received": r["received"],
                 "checkpoint": json.loads(r["checkpoint"])}
                for r in self._query("SELECT * FROM witness ORDER BY box_id, endpoint")]

    def _join_decision(self, db, msg: dict, encounter: str) -> None:
        """A sighting of an encounter already decided (here, or on the box) is stored decided."""
        row = db.execute(f"SELECT {','.join(DECIDED)} FROM alerts WHERE box_id=? AND group_id=? AND outcome!='open' "
                         "ORDER BY decided LIMIT 1", (msg["box_id"], encounter)).fetchone()
        d = msg.get("decision") if isinstance(msg.get("decision"), dict) else None
        if row is None and d is not None and msg.get("state") in ("confirmed", "dismissed"):
            try:
                decided = parse_time(d.get("time")).timestamp()
            except EdgeError:
                decided = time.time()
            row = (msg["state"], str(d.get("action") or ""), str(d.get("reason") or ""), str(d.get("note") or ""),
                   str(d.get("operator") or ""), decided)
        if row is not None:  # this sighting, and any still open here (decided on another console), are decided
            db.execute(f"UPDATE alerts SET {', '.join(c + '=?' for c in DECIDED)}, delivered=1 WHERE alert_id=? OR "
                       "(box_id=? AND group_id=? AND outcome='open' AND adjudication IS NULL)",
                       (*row, msg["alert_id"], msg["box_id"], encounter))

    # -- alerts -------------------------------------------------------------------------------
    def alert(self, alert_id: str) -> dict | None:
        rows = self._query(f"SELECT {COLUMNS}, body FROM alerts WHERE alert_id=?", (alert_id,))
        return rows[0] if rows else None

    def open_alerts(self) -> list[dict]:
        """Open alerts, oldest first."""
        return self._query(f"SELECT {COLUMNS} FROM alerts WHERE outcome='open' ORDER BY received, time")

    def encounter(self, box_id: str, encounter_id: str) -> list[dict]:
        """The sightings of one encounter, first received first."""
        return self._query(f"SELECT {COLUMNS} FROM alerts WHERE box_id=? AND group_id=? "
                           "ORDER BY received, time", (box_id, encounter_id))

    def earlier_decision(self, box_id: str, ref: str, alert_id: str) -> dict | None:
        """The newest decided encounter of ``ref`` on this box under the same watch list (a list lives for one
        deployment) as the alert ``alert_id``: the person's earlier decision this deployment, however long ago."""
        rows = self._query(
            "SELECT group_id AS encounter_id, alert_id, outcome, action, reason, operator, decided FROM alerts WHERE "
            "box_id=? AND ref=? AND outcome!='open' AND decided IS NOT NULL AND json_extract(body, '$.list_id') IS "
            "(SELECT json_extract(body, '$.list_id') FROM alerts WHERE alert_id=?) ORDER BY decided DESC LIMIT 1",
            (box_id, ref, alert_id))
        return rows[0] if rows else None

    def seen_after_decision(self, since: float) -> list[tuple[str, str]]:
        """(box_id, encounter_id) of decided encounters with a sighting received after the decision, since then."""
        rows = self._query("SELECT DISTINCT box_id, group_id FROM alerts WHERE outcome!='open' AND decided IS NOT NULL "
                           "AND received > decided AND received > ? LIMIT 50", (since,))
        return [(r["box_id"], r["group_id"]) for r in rows]

    def history(self, camera: str = "", outcome: str = "", limit: int = 200) -> list[dict]:
        """One row per encounter, newest first: its first sighting's fields, the decision (operator, action or
        reason, note, time to decision), its sightings count and cameras."""
        rows = self._query(f"SELECT {COLUMNS} FROM alerts ORDER BY received LIMIT 20000")
        encounters: dict[tuple, dict] = {}
        for r in rows:
            e = encounters.get((r["box_id"], r["group_id"]))
            if e is None:
                e = encounters[(r["box_id"], r["group_id"])] = {**r, "encounter_id": r["group_id"], "sightings": 0,
                                                                "cameras": [], "last_time": r["time"]}
            e["sightings"] += 1
            e["last_time"] = r["time"]
            e["distance"] = min(e["distance"], r["distance"])
            if r["camera_id"] not in e["cameras"]:
                e["cameras"].append(r["camera_id"])
        people = decisions.people_by_encounter(self)
        out = []
        for e in encounters.values():
            e["verified_by"], e["not_counted"] = people.get((e["box_id"], e["group_id"]), ("", 0))
            if camera and camera not in e["cameras"]:
                continue
            if outcome and e["outcome"] != outcome:
                continue
            e["seconds_to_decision"] = round(e["decided"] - e["received"], 1) if e["decided"] else None
            out.append(e)
        out.sort(key=lambda e: e["received"], reverse=True)
        return out[:limit]

    def cameras(self) -> list[str]:
        rows = self._query("SELECT DISTINCT camera_id FROM alerts UNION SELECT DISTINCT camera_id FROM events "
                           "WHERE camera_id IS NOT NULL ORDER BY 1")
        return [r["camera_id"] for r in rows]

    def events(self, limit: int = 50) -> list[dict]:
        return [json.loads(r["body"]) for r in
                self._query("SELECT body FROM events ORDER BY received DESC LIMIT ?", (limit,))]

    def decide(self, alert_ids: list[str], adjudications: list[dict], db=None) -> None:
        """Record the operator's decision on these alerts (one encounter's sightings) in one transaction
        (``db``: the caller's, edge/console/decisions.py).

        ``adjudications`` are sent to the box; an alert of ``alert_ids`` with none is decided here only
        (the box takes one decision per encounter)."""
        if db is None:
            with self._tx() as tx:
                return self.decide(alert_ids, adjudications, tx)
        by_alert = {a["alert_id"]: a for a in adjudications}
        first = adjudications[0]
        for alert_id in alert_ids:
            adj = by_alert.get(alert_id)
            cur = db.execute(
                "UPDATE alerts SET outcome=?, action=?, reason=?, note=?, operator=?, decided=?, "
                "adjudication=? WHERE alert_id=? AND outcome='open'",
                ("confirmed" if first["decision"] == "confirm" else "dismissed", first["action"],
                 first["reason"], first["note"], first["operator"], time.time(),
                 json.dumps(adj) if adj else None, alert_id))
            if cur.rowcount != 1:
                raise EdgeError(f"alert {alert_id} is not open (already decided?)")
        return None

    def undelivered(self, box_id: str) -> list[dict]:
        """Decisions the box has not acknowledged yet."""
        rows = self._query("SELECT adjudication FROM alerts WHERE box_id=? AND adjudication IS NOT NULL "
                           "AND delivered=0 ORDER BY decided", (box_id,))
        return [json.loads(r["adjudication"]) for r in rows]

    def delivered(self, alert_id: str, refused: str = "", decision_id: str = "") -> None:
        """The box acknowledged this alert's decision (``decision_id``: which one); ``refused``: it did not
        count it, and why (its people are told: edge/console/decisions.py)."""
        if decision_id and decisions.acked(self, decision_id, refused):
            return  # the report of a decision the console did not count
        with self._tx() as db:
            db.execute("UPDATE alerts SET delivered=1, refused=? WHERE alert_id=? AND adjudication IS NOT NULL",
                       (refused[:200] or None, alert_id))

    # -- operators ------------------------------------------------------------------------------
    def add_user(self, name: str, password: str, role: str = "operator") -> None:
        if not name.strip() or len(name) > 64:
            raise EdgeError("the operator name must be 1 to 64 characters")
        if len(password) < 8:
            raise EdgeError("the password must be at least 8 characters")
        with self._tx() as db:
            db.execute("INSERT INTO users VALUES (?,?,?,?) ON CONFLICT(name) DO UPDATE SET hash=excluded.hash, "
                       "role=excluded.role", (name.strip(), _hasher.hash(password), time.time(), role))

    def is_supervisor(self, name: str) -> bool:
        return bool(self._query("SELECT 1 FROM users WHERE name=? AND role='supervisor'", (name,)))

    def check_user(self, name: str, password: str) -> bool:
        """Constant work whether or not the name exists: an unknown name is checked against a dummy hash."""
        rows = self._query("SELECT hash FROM users WHERE name=?", (name,))
        ok: bool
        try:
            ok = _hasher.verify(rows[0]["hash"] if rows else _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            ok = False
        return bool(rows) and ok

    def credential(self, name: str) -> str:
        """The operator's password hash now ("" if no such operator): a session is ended when it changes."""
        rows = self._query("SELECT hash FROM users WHERE name=?", (name,))
        return str(rows[0]["hash"]) if rows else ""

    def has_users(self) -> bool:
        return bool(self._query("SELECT 1 FROM users LIMIT 1"))

    # -- retention (edge/alerts/retention.py: apply_per_box is the console's sweep) ----------------
    def set_box_retention(self, box_id: str, days: float) -> None:
        """The retention period ``box_id`` said (its hello) it keeps its alerts for; kept across restarts."""
        with self._tx() as db:
            db.execute("INSERT INTO box_retention VALUES (?,?,?) ON CONFLICT(box_id) DO UPDATE SET "
                       "days=excluded.days, heard=excluded.heard", (box_id, float(days), time.time()))

    def box_periods(self) -> dict[str, float]:
        return {r["box_id"]: r["days"] for r in self._query("SELECT box_id, days FROM box_retention")}

    def of_box(self, box_id: str) -> _BoxAlerts:
        return _BoxAlerts(self, box_id)

    def expire(self, cutoff: float, days: float, box_id: str | None = None) -> list[str]:
        """Delete alerts (crops included) and events received before ``cutoff`` (the retention period ``days``
        ago: ``edge.alerts.retention.apply`` is the rule), of ``box_id`` only if given; returns the deleted
        alert ids.

        Each box is told which of its alerts went (a ``pruned`` message, stored in the same transaction and
        kept here until the box acknowledges it), so the box's audit log covers the console's copies too.
        """
        only, args = ("", (cutoff,)) if box_id is None else (" AND box_id=?", (cutoff, box_id))
        with self._tx() as db:
            gone = db.execute(f"SELECT box_id, alert_id FROM alerts WHERE received < ?{only} ORDER BY received",
                              args).fetchall()
            db.execute(f"DELETE FROM alerts WHERE received < ?{only}", args)
            db.execute(f"DELETE FROM events WHERE received < ?{only}", args)
            by_box: dict[str, list[str]] = {}
            for box_id, alert_id in gone:
                by_box.setdefault(box_id, []).append(alert_id)
            for box_id, ids in by_box.items():
                for i in range(0, len(ids), PRUNE_CHUNK):
                    msg = protocol.pruned(box_id=box_id, alert_ids=ids[i:i + PRUNE_CHUNK],
                                          retention_days=round(days, 4))
                    db.execute("INSERT INTO prunes VALUES (?,?,?,0)", (msg["prune_id"], box_id, json.dumps(msg)))
        return [alert_id for _, alert_id in gone]

    def undelivered_prunes(self, box_id: str) -> list[dict]:
        """``pruned`` messages the box has not acknowledged yet."""
        rows = self._query("SELECT body FROM prunes WHERE box_id=? AND delivered=0 ORDER BY rowid", (box_id,))
        return [json.loads(r["body"]) for r in rows]

    def prune_delivered(self, prune_id: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE prunes SET delivered=1 WHERE prune_id=?", (prune_id,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _BoxAlerts:
    """One box's alerts and events in the console's store: what ``retention.apply`` expires for that box."""

    def __init__(self, store: Store, box_id: str):
        self.store, self.box_id = store, box_id

    def expire(self, cutoff: float, days: float) -> list[str]:
        return self.store.expire(cutoff, days, self.box_id)
