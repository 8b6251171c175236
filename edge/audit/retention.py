"""Retention: alert crops and details are kept for a set period, then deleted, and each deletion logged.

The box keeps alerts (with the camera crop the operator saw) and the decisions on them in one place:
the alert channel's outbox, ``<state_dir>/outbox.db`` (``edge/alerts/outbox.py``). Nothing of a
passer-by is ever kept. ``sweep`` deletes the rows older than the period (default 31 days) in one
transaction, then records ``retention_deleted`` for every alert it removed. The clock is injectable.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from edge.codec import fmt_time
from edge.errors import EdgeError

DEFAULT_DAYS = 31.0
OUTBOX = "outbox.db"
log = logging.getLogger("edge.retention")


@dataclass(frozen=True)
class Policy:
    """How long alerts (crop, details, decisions) are kept: the stricter of the box's config
    (``alerts.retention_days``) and the signed ``policy.retention_days`` of the list in force (docs/
    watchlist-format.md; 0 there: the list sets no period). One object, used by the daemon's sweep and
    ``edge audit retention``; ``source`` says which of the two decided."""

    days: float
    source: str

    @classmethod
    def of(cls, config_days: float, header: dict | None = None) -> Policy:
        listed = (header or {}).get("policy", {}).get("retention_days") if isinstance(header, dict) else None
        if isinstance(listed, int | float) and not isinstance(listed, bool) and 0 < listed < config_days:
            return cls(float(listed), f"list {header.get('list_id')} policy.retention_days")
        return cls(float(config_days), "config alerts.retention_days")


def sweep(state_dir, days: float = DEFAULT_DAYS, *, record=None, clock=time.time) -> list[str]:
    """Delete alerts, events and decisions stored more than ``days`` ago; returns the deleted alert ids.

    ``record(kind, **fields)`` is the audit log's ``append``.
    """
    if days <= 0:
        raise EdgeError("the retention period must be positive")
    path = Path(state_dir) / OUTBOX
    if not path.exists():
        return []
    now = clock()
    cutoff = now - days * 86400.0
    db = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        db.execute("BEGIN IMMEDIATE")
        rows = db.execute("SELECT msg_id, created, body FROM messages WHERE type='alert' AND created < ? "
                          "ORDER BY seq", (cutoff,)).fetchall()
        db.execute("DELETE FROM messages WHERE created < ?", (cutoff,))
        decisions = db.execute("DELETE FROM adjudications WHERE received < ?", (cutoff,)).rowcount
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        raise EdgeError(f"cannot apply retention to {path}: {exc}") from None
    finally:
        db.close()
    deleted = []
    for alert_id, created, body in rows:
        try:
            alert = json.loads(body)
        except (ValueError, RecursionError):
            alert = {}
        if record:
            record("retention_deleted", alert_id=alert_id, camera_id=str(alert.get("camera_id", "")),
                   alert_time=str(alert.get("time") or fmt_time(created)), files=1,
                   crop=bool(alert.get("crop_jpeg")), age_days=round((now - created) / 86400.0, 2),
                   period_days=days)
        deleted.append(alert_id)
    if rows or decisions:
        log.info("retention: deleted %d alert(s) and %d decision(s) older than %g days", len(rows), decisions, days)
    return deleted
