"""Which hits become alerts: one per track and entry, grouped, silenced once dismissed.

- A track alerts once per watch-list entry (re-encodes of the same track do not alert again).
- The same entry seen again within ``group_window_s`` (by any camera, or on a new track after a
  scene cut) joins the first alert's group, unless an operator has already decided that group.
- A track an operator dismissed for an entry does not alert for that entry again.

Adjudications arrive on the channel thread, sightings on the main loop: one lock guards the state.
"""

from __future__ import annotations

import threading

ALERT_MEMORY_S = 600.0  # how long (track, entry) pairs are remembered to keep one alert per track


class AlertPolicy:
    def __init__(self, group_window_s: float):
        self.group_window_s = group_window_s
        self._alerted: dict[tuple[str, str], float] = {}
        self._groups: dict[str, dict] = {}  # ref -> the open group new sightings join
        self._dismissed: set[tuple[str, str]] = set()  # (track, ref) an operator dismissed
        self._lock = threading.Lock()

    def admit(self, track_id: str, ref: str, now: float) -> dict | None:
        """The group a new alert joins (``group["group_id"]`` None: it starts one), or None: no alert."""
        key = (track_id, ref)
        with self._lock:
            self._alerted = {k: t for k, t in self._alerted.items() if now - t < ALERT_MEMORY_S}
            if key in self._alerted or key in self._dismissed:
                return None
            self._alerted[key] = now
            group = self._groups.get(ref)
            if group is None or not group["open"] or now - group["last"] > self.group_window_s:
                group = self._groups[ref] = {"group_id": None, "last": now, "open": True}
            group["last"] = now
            return group

    def decided(self, alert: dict, decision: str) -> None:
        """An operator decided ``alert``: its group takes no more sightings; a dismissal silences the track."""
        with self._lock:
            group = self._groups.get(alert["ref"])
            if group is not None and group["group_id"] == alert.get("group_id"):
                group["open"] = False
            if decision == "dismiss":
                self._dismissed.add((alert["track_id"], alert["ref"]))
