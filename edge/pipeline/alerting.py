"""Which hits become alerts: encounters, their sightings, and the one decision each takes.

An **encounter** is one listed entry's continuous presence on this box, across tracks and cameras:

- The first hit for an entry opens an encounter (sighting 1: the one alert an operator decides).
- Later hits for the same entry within ``gap_s`` of its last sighting — another track, the other
  camera — join it as sightings 2, 3, ... (delivered and audited, not a new alert to decide). A track
  gives one sighting per entry (re-encodes of the same track only keep the encounter alive).
- The encounter ends when ``gap_s`` passes with no sighting (:meth:`ended`).
- The first decision on an encounter is the one that counts; sightings after it join the decided
  encounter (its state travels with them), never a new open alert, until the encounter ends.
- A dismissal silences the encounter's tracks for that entry ("not the person": those tracks are
  someone else).

Adjudications arrive on the channel thread, sightings on the main loop: one lock guards the state, and
every encounter handed out is a frozen copy (:class:`Encounter`), never the policy's own record.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

ALERT_MEMORY_S = 600.0  # how long (track, entry) pairs are remembered to keep one sighting per track


@dataclass(frozen=True)
class Encounter:
    """An encounter as the policy hands it out: a copy taken under its lock (changing it changes nothing
    in the policy; the decision is a read-only mapping)."""

    encounter_id: str
    ref: str
    first: float
    last: float
    sightings: int = 0
    cameras: tuple[str, ...] = ()
    decision: Mapping[str, str] | None = None  # {"decision", "action", "reason", "operator", "time"} once decided

    @property
    def state(self) -> str:
        if self.decision is None:
            return "open"
        return "confirmed" if self.decision["decision"] == "confirm" else "dismissed"


@dataclass
class _Open:
    """The policy's own record of an encounter: only ever read or written under its lock."""

    encounter_id: str
    ref: str
    first: float
    last: float
    sightings: int = 0
    cameras: list[str] = field(default_factory=list)
    tracks: set[str] = field(default_factory=set)
    decision: dict[str, str] | None = None

    def snapshot(self) -> Encounter:
        return Encounter(self.encounter_id, self.ref, self.first, self.last, self.sightings, tuple(self.cameras),
                         None if self.decision is None else MappingProxyType(dict(self.decision)))


class EncounterPolicy:
    def __init__(self, gap_s: float):
        self.gap_s = gap_s
        self._alerted: dict[tuple[str, str], float] = {}
        self._current: dict[str, _Open] = {}  # ref -> its current encounter
        self._by_id: dict[str, _Open] = {}
        self._dismissed: set[tuple[str, str]] = set()  # (track, ref) an operator dismissed
        self._lock = threading.Lock()

    def admit(self, track_id: str, camera_id: str, ref: str, now: float,
              new_id: Callable[[], str]) -> tuple[Encounter, int] | None:
        """(the encounter this hit is a sighting of, its sighting number), or None: no sighting.

        ``new_id()`` names a new encounter (the daemon passes the id of the alert it is about to make).
        Call :meth:`ended` first so that an encounter past its gap is closed (and recorded) before a new
        one opens for the same entry.
        """
        key = (track_id, ref)
        with self._lock:
            self._alerted = {k: t for k, t in self._alerted.items() if now - t < ALERT_MEMORY_S}
            enc = self._current.get(ref)
            if enc is not None and now - enc.last > self.gap_s:
                enc = None
            if key in self._dismissed:
                return None
            if key in self._alerted:
                if enc is not None and track_id in enc.tracks:
                    enc.last = max(enc.last, now)  # the same track still in view keeps the encounter alive
                return None
            self._alerted[key] = now
            if enc is None:
                enc = _Open(new_id(), ref, now, now)
                self._current[ref] = self._by_id[enc.encounter_id] = enc
            enc.last = max(enc.last, now)
            enc.sightings += 1
            enc.tracks.add(track_id)
            if camera_id not in enc.cameras:
                enc.cameras.append(camera_id)
            return enc.snapshot(), enc.sightings

    def ended(self, now: float) -> list[Encounter]:
        """Encounters whose gap has passed with no sighting; they are forgotten here."""
        with self._lock:
            done = [e for e in self._by_id.values() if now - e.last > self.gap_s]
            for e in done:
                self._forget(e)
            return [e.snapshot() for e in done]

    def end_all(self) -> list[Encounter]:
        with self._lock:
            done = list(self._by_id.values())
            for e in done:
                self._forget(e)
            return [e.snapshot() for e in done]

    def _forget(self, e: _Open) -> None:  # under the lock
        del self._by_id[e.encounter_id]
        if self._current.get(e.ref) is e:
            del self._current[e.ref]

    def get(self, encounter_id: str) -> Encounter | None:
        with self._lock:
            enc = self._by_id.get(encounter_id)
            return None if enc is None else enc.snapshot()

    def decided(self, encounter_id: str, ref: str, decision: Mapping[str, str], track_ids: Iterable[str] = ()) -> None:
        """An operator decided this encounter (the daemon has checked it is the first valid decision)."""
        with self._lock:
            enc = self._by_id.get(encounter_id)
            tracks = set(track_ids) | (enc.tracks if enc is not None else set())
            if enc is not None and enc.decision is None:
                enc.decision = dict(decision)
            if decision["decision"] == "dismiss":
                self._dismissed.update((t, ref) for t in tracks)
