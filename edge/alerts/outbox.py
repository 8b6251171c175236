"""The box's durable outbox: every alert and event is written here before it is sent.

SQLite in WAL mode, ``<state_dir>/outbox.db``. Each message gets a sequence number that only grows
(AUTOINCREMENT: never reused, even after pruning), so a console's position is one integer per
outbox. The outbox has a random id (``outbox``) made when the file is created; a console that sees
a new id knows the box's outbox was replaced and starts over (it de-duplicates by message id).

What it holds: alerts (matches against the watch list, with their crops) and events, the
adjudications that came back (at most one accepted per encounter), and which sequence numbers went to
which console (so a decision can be checked against what that console was sent). Never passer-by
data. Rows older than the retention period go through ``expire`` (the sweep of edge/alerts/retention.py).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from pathlib import Path

from edge import walstore
from edge.alerts import messages

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, msg_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    created REAL NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS acks (console TEXT PRIMARY KEY, seq INTEGER NOT NULL, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS adjudications (
    alert_id TEXT PRIMARY KEY, received REAL NOT NULL, console TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS sent (console TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS sent_console ON sent (console);
CREATE TABLE IF NOT EXISTS expired_sent (alert_id TEXT NOT NULL, console TEXT NOT NULL, expired REAL NOT NULL,
    PRIMARY KEY (alert_id, console));
"""
EXPIRED_KEPT_S = 400 * 86400.0  # ids (no content) of expired alerts a console may still report deleting
KINDS = {"alert": "alert_id", "event": "event_id"}


class Outbox:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = walstore.connect(self.path, SCHEMA)
        with self._tx():
            row = self._db.execute("SELECT value FROM meta WHERE key='outbox'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('outbox', ?)", (secrets.token_hex(8),))
        self.id = self._db.execute("SELECT value FROM meta WHERE key='outbox'").fetchone()[0]
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(adjudications)")}
        if "encounter_id" not in cols:  # outboxes from before encounters
            self._db.execute("ALTER TABLE adjudications ADD COLUMN encounter_id TEXT")
        self._db.execute("CREATE INDEX IF NOT EXISTS adjudications_encounter ON adjudications (encounter_id)")

    def _tx(self):
        return walstore.transaction(self._db)

    # -- messages -------------------------------------------------------------------------------
    def add(self, msg: dict) -> int:
        """Store one alert/event durably; return its sequence number (the old one for a repeat id)."""
        if msg.get("type") not in KINDS:
            raise ValueError(f"the outbox holds alerts and events only, not {msg.get('type')!r}")
        msg_id = msg[KINDS[msg["type"]]]
        with self._lock, self._tx():
            self._db.execute("INSERT OR IGNORE INTO messages (msg_id, type, created, body) VALUES (?,?,?,?)",
                             (msg_id, msg["type"], time.time(), messages.dumps(msg)))
            return self._db.execute("SELECT seq FROM messages WHERE msg_id=?", (msg_id,)).fetchone()[0]

    def after(self, seq: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` (seq, body) after ``seq``, oldest first."""
        with self._lock:
            return self._db.execute("SELECT seq, body FROM messages WHERE seq > ? ORDER BY seq LIMIT ?",
                                    (seq, limit)).fetchall()

    def last_seq(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM messages").fetchone()[0]

    def get(self, msg_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM messages WHERE msg_id=?", (msg_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def find_alert(self, alert_id: str) -> tuple[int, dict] | None:
        """(seq, alert) of an alert still held, or None."""
        with self._lock:
            row = self._db.execute("SELECT seq, body FROM messages WHERE msg_id=? AND type='alert'",
                                   (alert_id,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    # -- what each console was sent (an adjudication must name an alert sent to its console) -------
    def sent_range(self, console: str, lo: int, hi: int, row: int | None) -> int:
        """Record that seqs lo..hi went to ``console`` on one link session (``row``: its range so far)."""
        with self._lock, self._tx():
            if row is None:
                new = self._db.execute("INSERT INTO sent VALUES (?,?,?)", (console, lo, hi)).lastrowid
                assert new is not None  # sqlite sets it after every INSERT
                return new
            self._db.execute("UPDATE sent SET lo=min(lo, ?), hi=max(hi, ?) WHERE rowid=?", (lo, hi, row))
            return row

    def sent_alert(self, console: str, alert_id: str) -> bool:
        """Whether this alert went to ``console``: held and sent, or sent before retention deleted it here."""
        found = self.find_alert(alert_id)
        if found is not None:
            return self.was_sent(console, found[0])
        with self._lock:
            return self._db.execute("SELECT 1 FROM expired_sent WHERE alert_id=? AND console=?",
                                    (alert_id, console)).fetchone() is not None

    def was_sent(self, console: str, seq: int) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM sent WHERE console=? AND lo<=? AND ?<=hi LIMIT 1",
                                    (console, seq, seq)).fetchone() is not None

    # -- consoles -----------------------------------------------------------------------------
    def ack(self, console: str, seq: int) -> None:
        with self._lock, self._tx():
            self._db.execute("INSERT INTO acks VALUES (?,?,?) ON CONFLICT(console) DO UPDATE SET "
                             "seq=max(seq, excluded.seq), seen=excluded.seen", (console, seq, time.time()))

    def acks(self) -> dict[str, int]:
        with self._lock:
            return dict(self._db.execute("SELECT console, seq FROM acks").fetchall())

    # -- adjudications --------------------------------------------------------------------------
    def accepted(self, alert_id: str) -> tuple[str, dict] | None:
        """(console, adjudication) accepted for this alert, or None."""
        with self._lock:
            row = self._db.execute("SELECT console, body FROM adjudications WHERE alert_id=?", (alert_id,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def decision_of(self, encounter_id: str) -> dict | None:
        """The adjudication accepted for this encounter, or None."""
        with self._lock:
            row = self._db.execute("SELECT body FROM adjudications WHERE encounter_id=? OR (encounter_id IS NULL AND "
                                   "alert_id=?) LIMIT 1", (encounter_id, encounter_id)).fetchone()
        return json.loads(row[0]) if row else None

    def decided(self, encounter_id: str) -> bool:
        """Has an adjudication of this encounter been accepted (pre-encounter rows: the alert itself)?"""
        with self._lock:
            return self._db.execute("SELECT 1 FROM adjudications WHERE encounter_id=? OR "
                                    "(encounter_id IS NULL AND alert_id=?) LIMIT 1",
                                    (encounter_id, encounter_id)).fetchone() is not None

    def add_adjudication(self, msg: dict, console: str, encounter_id: str | None = None) -> bool:
        """Keep an adjudication; False if this alert already had one (a resend)."""
        with self._lock, self._tx():
            cur = self._db.execute("INSERT OR IGNORE INTO adjudications (alert_id, received, console, body, "
                                   "encounter_id) VALUES (?,?,?,?,?)",
                                   (msg["alert_id"], time.time(), console, messages.dumps(msg),
                                    encounter_id or msg["alert_id"]))
            return cur.rowcount == 1

    def adjudications(self, limit: int = 100) -> list[dict]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM adjudications ORDER BY received DESC LIMIT ?",
                                    (limit,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    # -- housekeeping ---------------------------------------------------------------------------
    def expire(self, cutoff: float, days: float) -> tuple[list[tuple[str, float, bytes]], int, int]:
        """Delete in one transaction what was stored before ``cutoff`` (the retention period ``days`` ago):
        alerts, events and decisions. Returns the deleted alerts (msg_id, created, body), how many messages
        and how many decisions went. The outbox's one deletion: ``edge.alerts.retention.sweep`` runs it and
        records each alert in the audit log."""
        with self._lock, self._tx():
            rows = self._db.execute("SELECT msg_id, created, body FROM messages WHERE type='alert' AND created < ? "
                                    "ORDER BY seq", (cutoff,)).fetchall()
            now = time.time()
            self._db.execute("INSERT OR IGNORE INTO expired_sent SELECT m.msg_id, s.console, ? FROM messages m "
                             "JOIN sent s ON m.seq BETWEEN s.lo AND s.hi WHERE m.type='alert' AND m.created < ?",
                             (now, cutoff))
            self._db.execute("DELETE FROM expired_sent WHERE expired < ?", (now - EXPIRED_KEPT_S,))
            n = self._db.execute("DELETE FROM messages WHERE created < ?", (cutoff,)).rowcount
            decisions = self._db.execute("DELETE FROM adjudications WHERE received < ?", (cutoff,)).rowcount
            self._db.execute("DELETE FROM sent WHERE hi < (SELECT COALESCE(min(seq), 0) FROM messages)")
        return [(str(a), float(c), bytes(b)) for a, c, b in rows], n, decisions

    def counts(self) -> dict:
        with self._lock:
            rows = dict(self._db.execute("SELECT type, COUNT(*) FROM messages GROUP BY type").fetchall())
            adj = self._db.execute("SELECT COUNT(*) FROM adjudications").fetchone()[0]
        return {"alerts": rows.get("alert", 0), "events": rows.get("event", 0), "adjudications": adj}

    def close(self) -> None:
        with self._lock:
            self._db.close()
