"""The daemon's view of the deployment windows: which cameras may match which list now.

``Gate.update()`` re-reads the stored windows every ``reload_s`` (``edge deployment load`` or ``end`` may
change them while the daemon runs) and records ``deployment_start`` / ``deployment_end`` as each run opens
and closes, with why it closed: its time was up, it was ended by command, its issuer was removed, an
emergency use lapsed, or the service stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from edge.codec import fmt_time
from edge.deployment.store import Record, StatePath, stored
from edge.deployment.window import Deployment


def active(deps: list[Deployment], now: datetime, camera_id: str, list_id: str | None = None) -> Deployment | None:
    """The window open now for this camera (and naming ``list_id`` when given)."""
    return next((d for d in deps if d.is_active(now, camera_id) and (list_id is None or d.authorises(list_id))),
                None)


def end_reason(old: Deployment, fresh: Deployment | None, now: datetime) -> str:
    """Why a run closed, in the words of the ``deployment_end`` record."""
    if fresh is None:
        return "authorisation withdrawn"
    if fresh.stopped and now >= fresh.stopped and fresh.stopped < fresh.end:
        return fresh.stop_reason
    return "window closed"


class Gate:
    """``update()`` often; ``allows(camera)`` per face. ``list_id()`` says which list is in force: a camera is
    allowed only under an open window that names it (any open window while no list is loaded)."""

    def __init__(self, state_dir: StatePath, camera_ids: list[str], *, record: Record | None = None,
                 clock: Callable[[], float] = time.time, reload_s: float = 5.0, require_ref: bool = False,
                 list_id: Callable[[], str | None] = lambda: None) -> None:
        self.state_dir, self.camera_ids = state_dir, list(camera_ids)
        self.record = record or (lambda kind, **f: None)
        self.clock, self.reload_s, self.require_ref, self.list_id = clock, reload_s, require_ref, list_id
        self.deps: list[Deployment] = []
        self.current: dict[str, Deployment] = {}  # deployment_id -> active deployment
        self.allowed: dict[str, str | None] = dict.fromkeys(self.camera_ids)
        self._loaded_at: float | None = None
        self._for_list: str | None = None  # the list in force when ``allowed`` was worked out

    def update(self, reload: bool = False) -> dict[str, str | None]:
        """Recompute (re-reading the stored deployments when due or asked); {camera_id: deployment or None}."""
        t = self.clock()
        if reload or self._loaded_at is None or t - self._loaded_at >= self.reload_s:
            self.deps, self._loaded_at = stored(self.state_dir, self.require_ref), t
        now = datetime.fromtimestamp(t, UTC)
        fresh = {d.deployment_id: d for d in self.deps}
        live = {d.deployment_id: d for d in self.deps if d.live(now)}
        for dep_id, d in self.current.items():
            if dep_id not in live:
                self.record("deployment_end", deployment_id=dep_id, location=d.location,
                            reason=end_reason(d, fresh.get(dep_id), now))
        for dep_id, d in live.items():
            if dep_id not in self.current:
                self.record("deployment_start", deployment_id=dep_id, location=d.location,
                            cameras=[c for c in d.cameras if c in self.camera_ids], end=fmt_time(d.end),
                            lists=[lid for lid, _ in d.lists], authority_ref=d.authority_ref,
                            emergency=self.require_ref and not d.authority_ref)
        self.current = live
        list_id = self._for_list = self.list_id()
        for c in self.camera_ids:
            on = active(list(live.values()), now, c, list_id)
            self.allowed[c] = on.deployment_id if on else None
        return dict(self.allowed)

    def allows(self, camera_id: str) -> bool:
        if self.list_id() != self._for_list:  # another list was put in force since: judge it now, not next tick
            self.update()
        return bool(self.allowed.get(camera_id))

    def emergency(self) -> list[str]:
        """The deployments running now as emergency use (no authority reference where one is required)."""
        return [d for d, dep in self.current.items() if self.require_ref and not dep.authority_ref]

    def emergency_notes(self) -> list[str]:
        """What the consoles show loudly about each emergency use: which deployment, and when it stops."""
        return [f"{d} stops at {fmt_time(self.current[d].until)}" for d in self.emergency()]

    def close(self) -> None:
        for dep_id, d in self.current.items():
            self.record("deployment_end", deployment_id=dep_id, location=d.location, reason="service stopped")
        self.current = {}
        self.allowed = dict.fromkeys(self.camera_ids)
