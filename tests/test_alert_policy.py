"""Unit tests of the encounter policy (edge/pipeline/alerting.py): which hits become alerts.

An encounter is one listed entry's continuous presence: the first hit opens it (the alert), later hits
of other tracks or the other camera within the gap join it as sightings, a track gives one sighting per
entry, a dismissal silences its tracks. Adjudications arrive on the channel thread while the main loop
admits hits, so the policy is also driven from two real threads at once.
"""

from __future__ import annotations

import dataclasses
import itertools
import threading

import pytest

from edge.pipeline.alerting import ALERT_MEMORY_S, EncounterPolicy

GAP = 60.0
T0 = 1_000_000.0


def ids():
    n = itertools.count(1)
    return lambda: f"enc-{next(n)}"


def decision(kind: str = "confirm", reason: str = "") -> dict:
    return {"decision": kind, "action": "approached" if kind == "confirm" else "", "reason": reason,
            "operator": "alice", "time": "2026-12-01T18:00:00.000Z"}


@pytest.fixture
def policy():
    p = EncounterPolicy(GAP)
    p.new_id = ids()
    return p


def admit(p, track, camera, ref, t):
    return p.admit(track, camera, ref, t, new_id=p.new_id)


def test_the_first_hit_opens_an_encounter_and_other_tracks_and_cameras_join_it(policy):
    enc, n = admit(policy, "a-1", "cam-a", "WL-1", T0)
    assert (enc.encounter_id, n, enc.state, enc.sightings, enc.cameras) == ("enc-1", 1, "open", 1, ("cam-a",))
    enc2, n2 = admit(policy, "a-2", "cam-a", "WL-1", T0 + 5)  # the tracker broke the walk up
    enc3, n3 = admit(policy, "b-1", "cam-b", "WL-1", T0 + 30)  # the other camera
    assert enc2.encounter_id == enc3.encounter_id == "enc-1" and (n2, n3) == (2, 3)
    assert enc3.cameras == ("cam-a", "cam-b") and enc3.first == T0 and enc3.last == T0 + 30
    assert policy.get("enc-1").sightings == 3


def test_a_track_gives_one_sighting_per_entry_and_keeps_its_encounter_alive(policy):
    admit(policy, "a-1", "cam-a", "WL-1", T0)
    assert admit(policy, "a-1", "cam-a", "WL-1", T0 + 50) is None  # a re-encode of the same track
    assert policy.get("enc-1").last == T0 + 50 and policy.get("enc-1").sightings == 1
    assert policy.ended(T0 + 50 + GAP - 1) == []  # kept alive by the track still in view
    (done,) = policy.ended(T0 + 50 + GAP + 1)
    assert done.encounter_id == "enc-1" and policy.get("enc-1") is None


def test_the_keys_are_per_track_and_entry_and_the_encounters_per_entry(policy):
    e1, _ = admit(policy, "a-1", "cam-a", "WL-1", T0)
    e2, n = admit(policy, "a-1", "cam-a", "WL-2", T0)  # one track, two listed people: two encounters
    assert e1.encounter_id != e2.encounter_id and n == 1
    e3, n3 = admit(policy, "b-7", "cam-b", "WL-2", T0 + 1)
    assert e3.encounter_id == e2.encounter_id and n3 == 2
    assert {e.ref for e in policy.end_all()} == {"WL-1", "WL-2"}


def test_after_the_gap_a_new_encounter_opens_and_after_the_memory_a_track_counts_again(policy):
    admit(policy, "a-1", "cam-a", "WL-1", T0)
    (old,) = policy.ended(T0 + GAP + 1)
    enc, n = admit(policy, "a-2", "cam-a", "WL-1", T0 + GAP + 2)
    assert enc.encounter_id != old.encounter_id and n == 1
    assert admit(policy, "a-1", "cam-a", "WL-1", T0 + GAP + 3) is None  # a-1 is remembered (cooldown)

    long = EncounterPolicy(2 * ALERT_MEMORY_S)  # an encounter longer than the memory of its tracks
    long.new_id = ids()
    admit(long, "a-1", "cam-a", "WL-1", T0)
    assert admit(long, "a-1", "cam-a", "WL-1", T0 + ALERT_MEMORY_S - 1) is None
    again = admit(long, "a-1", "cam-a", "WL-1", T0 + 2 * ALERT_MEMORY_S)  # the memory of a-1 has run out
    assert again is not None and again[0].encounter_id == "enc-1" and again[1] == 2


def test_the_first_decision_counts_and_a_dismissal_silences_the_tracks_for_that_entry(policy):
    admit(policy, "a-1", "cam-a", "WL-1", T0)
    admit(policy, "a-1", "cam-a", "WL-2", T0)
    policy.decided("enc-1", "WL-1", decision("dismiss", "not the person"), track_ids=["a-1"])
    policy.decided("enc-1", "WL-1", decision("confirm"))  # a second decision changes nothing
    assert policy.get("enc-1").state == "dismissed"
    assert admit(policy, "a-1", "cam-a", "WL-1", T0 + ALERT_MEMORY_S + 5) is None  # silenced for WL-1...
    enc, n = admit(policy, "b-1", "cam-b", "WL-1", T0 + 10)  # ...another track joins the decided encounter
    assert enc.state == "dismissed" and n == 2 and enc.decision["reason"] == "not the person"
    assert policy.get("enc-2").state == "open"  # the same track's other entry is not dismissed


def test_what_the_policy_hands_out_cannot_change_it(policy):
    """A caller (the daemon's main loop, the channel thread) holds copies, never the policy's records."""
    enc, _ = admit(policy, "a-1", "cam-a", "WL-1", T0)
    policy.decided(enc.encounter_id, "WL-1", decision("confirm"))
    got = policy.get(enc.encounter_id)
    with pytest.raises(dataclasses.FrozenInstanceError):
        got.sightings = 99
    with pytest.raises(TypeError):
        got.decision["decision"] = "dismiss"
    with pytest.raises(AttributeError):
        got.cameras.append("cam-x")
    given = decision("confirm")
    policy.decided(enc.encounter_id, "WL-1", given)
    given["decision"] = "dismiss"  # the caller's own dict, changed after handing it over
    again = policy.get(enc.encounter_id)
    assert (again.sightings, again.state, again.cameras) == (1, "confirmed", ("cam-a",))
    assert enc.state == "open" and enc.decision is None  # a copy from before the decision stays as it was


def test_two_threads_admitting_and_deciding_at_once_keep_the_counts_exact(policy):
    """The main loop admits hits of 40 people on two cameras while the channel thread decides and ends
    encounters: every sighting number is given once, each encounter's numbers are 1..n."""
    refs = [f"WL-{i}" for i in range(40)]
    numbers: dict[str, list[int]] = {}
    opened: list[str] = []  # encounter ids, as the main loop opens them
    ended: list = []
    errors: list[BaseException] = []
    start, done = threading.Barrier(2), threading.Event()

    def main_loop():
        start.wait()
        for lap in range(25):
            for i, ref in enumerate(refs):
                got = admit(policy, f"{'ab'[lap % 2]}-{i}-{lap}", f"cam-{'ab'[lap % 2]}", ref, T0 + lap)
                if got is not None:
                    if got[1] == 1:
                        opened.append(got[0].encounter_id)
                    numbers.setdefault(got[0].encounter_id, []).append(got[1])
        done.set()

    def channel_thread():
        start.wait()
        while True:
            last = done.is_set()
            for enc_id in opened[:]:
                enc = policy.get(enc_id)
                if enc is not None and enc.ref in refs[::3] and enc.decision is None:
                    policy.decided(enc_id, enc.ref, decision("confirm"))
            ended.extend(policy.ended(T0 - GAP - 1))  # nothing is past its gap: ends nothing
            if last:
                return

    def guarded(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)
        return run

    threads = [threading.Thread(target=guarded(f)) for f in (main_loop, channel_thread)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == [] and ended == []
    assert len(numbers) == len(refs)  # one encounter per person
    for enc_id, got in numbers.items():
        assert got == list(range(1, 26)), (enc_id, got)
        assert policy.get(enc_id).sightings == 25
    decided = {e.ref for e in policy.end_all() if e.decision is not None}
    assert set(refs[::3]) <= decided
