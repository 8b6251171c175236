"""Retention: alert crops and details are kept for a set period, then deleted, and each deletion logged.

The box keeps alerts (with the camera crop the operator saw) and the decisions on them in one place:
the alert channel's outbox, ``<state_dir>/outbox.db`` (``edge/alerts/outbox.py``); a console keeps its
copies in its own store (``edge/console/store.py``). Nothing of a passer-by is ever kept.
:class:`Policy` is how long (the stricter of the config and the list's signed period). ``apply`` is the one
rule: what a store holds since more than the period ago goes, through that store's own ``expire(cutoff,
days)`` (one transaction each). ``sweep`` applies it to the box's outbox and records ``retention_deleted``
for every alert it removed; the daemon's alert channel and ``edge audit retention`` run it with the box's
policy. The box tells each console its policy's period (its hello, docs/alerts.md); the console applies, hourly,
``apply_per_box``: to each box's alerts the stricter of its own period and that box's (the store tells each box
which of its alerts went). The clock is injectable.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from edge.alerts.outbox import Outbox
from edge.codec import fmt_time
from edge.config import AlertsConfig
from edge.errors import EdgeError

DEFAULT_DAYS = AlertsConfig.retention_days  # the one default period: the config's
DAY = 86400.0
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

    def __post_init__(self) -> None:
        if not self.days > 0:
            raise EdgeError("the retention period must be positive")

    @classmethod
    def of(cls, config_days: float, header: dict[str, Any] | None = None) -> Policy:
        policy = header.get("policy") if isinstance(header, dict) else None
        listed = policy.get("retention_days") if isinstance(policy, dict) else None
        return cls(float(config_days), "config alerts.retention_days").stricter(
            listed, f"list {(header or {}).get('list_id')} policy.retention_days")

    def stricter(self, days: object, source: str) -> Policy:
        """This policy, or ``days`` (from ``source``) if that is a shorter positive period; anything else
        (absent, 0, not a number) sets none."""
        if isinstance(days, int | float) and not isinstance(days, bool) and 0 < days < self.days:
            return Policy(float(days), source)
        return self


T = TypeVar("T", covariant=True)


class Store(Protocol[T]):
    """What holds alerts: ``expire`` deletes, in one transaction, what was stored before ``cutoff`` (a POSIX
    time) under a period of ``days``, and returns what it deleted."""

    def expire(self, cutoff: float, days: float) -> T: ...


def apply(store: Store[T], policy: Policy, *, clock: Callable[[], float] = time.time) -> T:
    """The one retention rule: everything ``store`` received more than ``policy.days`` ago is deleted."""
    return store.expire(clock() - policy.days * DAY, policy.days)


class PerBox(Store[list[str]], Protocol):
    """A store holding the alerts of several boxes (the console's), each of which may keep them for less."""

    def box_periods(self) -> dict[str, float]:
        """box id -> the retention period (days) that box said it keeps its alerts for (its hello)."""
        ...

    def of_box(self, box_id: str) -> Store[list[str]]:
        """The same store, holding only that box's alerts and events."""
        ...


def apply_per_box(store: PerBox, policy: Policy, *, clock: Callable[[], float] = time.time) -> list[str]:
    """``apply`` for a console: each box's alerts go after the stricter of ``policy`` (the console's own) and
    the period that box keeps them for, then everything after ``policy``; returns the deleted alert ids."""
    now = clock()
    gone: list[str] = []
    for box_id, days in sorted(store.box_periods().items()):
        box_policy = policy.stricter(days, f"box {box_id} keeps its alerts {days:g} days")
        if box_policy is not policy:
            gone += apply(store.of_box(box_id), box_policy, clock=lambda: now)
    return gone + apply(store, policy, clock=lambda: now)


def sweep(state_dir: str | os.PathLike[str], days: float | Policy = DEFAULT_DAYS, *,
          record: Callable[..., object] | None = None, clock: Callable[[], float] = time.time) -> list[str]:
    """Delete the box's alerts, events and decisions stored more than ``days`` ago (a number, or the box's
    :class:`Policy`); returns the deleted alert ids. ``record(kind, **fields)`` is the audit log's ``append``.
    """
    policy = days if isinstance(days, Policy) else Policy(days, "sweep")
    days = policy.days
    path = Path(state_dir) / OUTBOX
    if not path.exists():
        return []
    now = clock()
    try:
        ob = Outbox(path)
        try:
            rows, _, decisions = apply(ob, policy, clock=lambda: now)
        finally:
            ob.close()
    except sqlite3.Error as exc:
        raise EdgeError(f"cannot apply retention to {path}: {exc}") from None
    deleted = []
    for alert_id, created, body in rows:
        try:
            alert = json.loads(body)
        except (ValueError, RecursionError):
            alert = {}
        if record:
            record("retention_deleted", alert_id=alert_id, camera_id=str(alert.get("camera_id", "")),
                   alert_time=str(alert.get("time") or fmt_time(created)), files=1,
                   crop=bool(alert.get("crop_jpeg")), age_days=round((now - created) / DAY, 2),
                   period_days=days)
        deleted.append(alert_id)
    if rows or decisions:
        log.info("retention: deleted %d alert(s) and %d decision(s) older than %g days", len(rows), decisions, days)
    return deleted
