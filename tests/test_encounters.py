"""Encounters, end to end: one listed person's passage is one alert, one decision, counted once.

A real daemon (in this process: its matcher, encounter policy, audit log, CURVE alert channel and
control socket) is fed stage messages as its camera processes send them; a real console (store and
link, the web console's decision path) receives the alerts over ZeroMQ and decides. `edge status`,
`edge audit report` and the console history are then read with the real commands.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import conftest
import numpy as np
import pytest
import zmq
from click.testing import CliRunner
from conftest import free_port

from edge import config, identity
from edge.alerts import messages, protocol
from edge.audit import report
from edge.audit.verify import verify_log
from edge.cli import cli
from edge.console import keys
from edge.console.link import BoxLink
from edge.console.store import Store
from edge.console.web import Console
from edge.pipeline.daemon import Daemon
from edge.watchlist.base import Entry, WatchList

BOX = "box-e"
REFS = ["WL-1", "WL-2", "WL-3", "WL-4"]


def wait_for(pred, seconds: float = 15.0) -> bool:
    return conftest.wait_for(pred, seconds)  # these waits span a daemon's batches: 15 s


class Box:
    """A daemon started as `edge run` starts it (no camera processes), with a listed watch list."""

    def __init__(self, tmp, gap: float = 60.0, images: list[bytes] | None = None):
        self.state, self.endpoint = tmp / "state", f"tcp://127.0.0.1:{free_port()}"
        self.config = tmp / "edge.toml"
        self.config.write_text(
            f'box_id = "{BOX}"\nstate_dir = "{self.state}"\n[[cameras]]\nid = "cam-a"\nsource = "a.mp4"\n'
            f'[[cameras]]\nid = "cam-b"\nsource = "b.mp4"\n[alerts]\nendpoint = "{self.endpoint}"\n'
            f"encounter_gap_s = {gap}\n[deployment]\nrequired = false\n")
        self.daemon = d = Daemon(config.load(str(self.config)))
        d.prepare_state_dir()
        identity.create(self.state, BOX)
        d.duties.start()
        d.open_channel()
        d.commands.update(status=d.status_command, adjudications=d.adjudications_command)
        d.control.start()
        rng = np.random.default_rng(3)
        self.templates = rng.normal(size=(len(REFS), 128)).astype(np.float32)
        self.templates /= np.linalg.norm(self.templates, axis=1, keepdims=True) * 2
        images = images or [b"\xff\xd8ref"] * len(REFS)
        wl = WatchList("L-1", [Entry(r, "wanted", image_jpeg=img) for r, img in zip(REFS, images, strict=True)],
                       self.templates,
                       np.arange(len(REFS)), issuer="SPOC")
        d.matcher.swap(wl)
        d.record("watchlist_loaded", issuer="SPOC", list_id="L-1", entries=len(REFS), refs=REFS, categories=["wanted"])
        d.record("service_start", cameras=["cam-a", "cam-b"])

    def seen(self, camera: str, track: str, who: int, crop: bytes = b"\xff\xd8crop") -> None:
        """A camera process's encoding message for a face of listed person ``who``."""
        raw = json.dumps(messages.stage(
            "encoding", camera_id=camera, track_id=track, frame_time=time.time(), quality=1.0,
            descriptor=(self.templates[who] + 0.004).tolist(), crop_jpeg=messages.b64(crop)))
        self.daemon.on_encodings([messages.loads(raw, allowed={"encoding"})])  # as handle_batch passes it on

    def stop(self) -> None:
        d = self.daemon
        d._stopping = True
        for enc in d.policy.end_all():
            d.end_encounter(enc, "service_stop")
        d.record("service_stop")
        d.control.stop()
        d.publisher.stop()
        d.duties.stop({})


class Operator:
    """The web console's store, link and decision path (what the page's Confirm/Dismiss buttons call)."""

    def __init__(self, tmp, box: Box, name: str = "console"):
        self.data = tmp / name
        identity.add_console(box.state, keys.keygen(self.data))
        self.store = Store(self.data / "console.db")
        self.delivered: list[dict] = []
        self.link = BoxLink(box.endpoint, identity.load(box.state).curve_public, keys.load(self.data), self.store,
                            on_change=lambda kind, d: kind == "alert" and self.delivered.append(d))
        self.console = Console(self.store, [self.link])
        self.console.hub.publish = lambda kind, data: None
        self.link.on_change = lambda kind, d: kind == "alert" and self.delivered.append(d)
        self.link.start()

    def decide(self, alert_id: str, operator: str, **body) -> dict:
        return self.console.decide(alert_id, operator, body)

    def stop(self) -> None:
        self.link.stop()
        self.store.close()


@pytest.fixture
def box(tmp_path, request):
    b = Box(tmp_path, **getattr(request, "param", {}))
    yield b
    b.stop()


def status(box: Box) -> dict:
    r = CliRunner().invoke(cli, ["status", "--config", str(box.config), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def audit_report(box: Box) -> dict:
    r = CliRunner().invoke(cli, ["audit", "report", "--config", str(box.config), "--format", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def records(box: Box, kind: str) -> list[dict]:
    return [r["data"] for r in verify_log(box.state).records if r["kind"] == kind]


def test_n_decisions_over_many_sightings_are_n_in_status_report_and_console_history(box, tmp_path):
    op = Operator(tmp_path, box)
    try:
        # four listed people each walk past both cameras, several tracks each (the tracker breaks up walks)
        for lap in range(3):
            for who in range(4):
                box.seen("cam-a", f"a-{who}-{lap}", who)
                box.seen("cam-b", f"b-{who}-{lap}", who)
        assert wait_for(lambda: len(op.delivered) == 24)
        assert len({messages.encounter_of(a) for a in op.delivered}) == 4
        cards = op.console.state()["open"]
        assert len(cards) == 4 and all(len(c["sightings"]) == 6 for c in cards)  # one card per encounter
        plan = {"WL-1": dict(decision="confirm", action="arrested"),
                "WL-2": dict(decision="confirm", action="approached"),
                "WL-3": dict(decision="dismiss", reason="not the person")}  # WL-4 is left undecided
        by_ref = {c["ref"]: c for c in cards}
        for ref, body in plan.items():
            newest = by_ref[ref]["sightings"][0]["alert_id"]  # deciding from any sighting decides the encounter
            op.decide(newest, "alice", **body)
        assert [c["ref"] for c in op.console.state()["open"]] == ["WL-4"]
        assert wait_for(lambda: box.daemon.counts.adjudications == 3)
        # the decided people are seen again: sightings of decided encounters, not new alerts
        for who in range(4):
            box.seen("cam-a", f"a-{who}-late", who)
        assert wait_for(lambda: len(op.delivered) == 28)
        late = {a["ref"]: a for a in op.delivered[24:]}
        assert late["WL-1"]["state"] == "confirmed" and late["WL-1"]["decision"]["operator"] == "alice"
        assert late["WL-1"]["decision"]["action"] == "arrested"
        assert late["WL-3"]["state"] == "dismissed" and late["WL-4"]["state"] == "open"
        assert [c["ref"] for c in op.console.state()["open"]] == ["WL-4"]  # nothing reopened
        assert wait_for(lambda: all(r["delivered"] for r in op.store.history() if r["outcome"] != "open"))

        st = status(box)
        assert st["decisions"] == {"total": 3, "confirm": {"arrested": 1, "approached": 1},
                                   "dismiss": {"not the person": 1}}
        assert (st["encounters"], st["sightings"]) == (4, 28)
        acc = st["accuracy"]
        assert (acc["alerts"], acc["decided"], acc["undecided"], acc["false_alerts"]) == (4, 3, 1, 1)
        text = CliRunner().invoke(cli, ["status", "--config", str(box.config)]).output
        assert "1 of 3 decided" in text and "1 awaiting a decision" in text

        history = op.store.history()
        assert len(history) == 4  # one row per encounter
        rows = {h["ref"]: h for h in history}
        assert [(rows[r]["outcome"], rows[r]["action"] or rows[r]["reason"], rows[r]["operator"]) for r in REFS] == [
            ("confirmed", "arrested", "alice"), ("confirmed", "approached", "alice"),
            ("dismissed", "not the person", "alice"), ("open", None, None)]
        assert [rows[r]["sightings"] for r in REFS] == [7, 7, 7, 7]
        assert sorted(rows["WL-1"]["cameras"]) == ["cam-a", "cam-b"]
        assert rows["WL-1"]["seconds_to_decision"] >= 0
    finally:
        op.stop()
    rep = audit_report(box)
    dec = rep["decisions"]
    assert (dec["encounters"], dec["confirmed"], dec["dismissed"], dec["undecided"]) == (4, 2, 1, 1)
    assert rep["alerts"]["total"] == 28  # sightings
    assert rep["actions"] == {"approached": 1, "arrested": 1}
    assert dec["reasons"] == {"not the person": 1}
    assert [(e["ref"], e["outcome"], e["action"] or e["reason"], e["sightings"]) for e in rep["encounters"]] == [
        ("WL-1", "confirmed", "arrested", 7), ("WL-2", "confirmed", "approached", 7),
        ("WL-3", "dismissed", "not the person", 7), ("WL-4", "undecided", None, 7)]
    assert rep["false_alert_rate"] == {"false_alerts": 1, "decided": 3, "rate": 0.3333}
    assert rep["time_to_decision_s"]["n"] == 3
    assert len(records(box, "adjudication")) == 3
    assert all(r["encounter_id"] for r in records(box, "adjudication"))


def test_a_person_on_camera_a_then_camera_b_within_the_gap_is_one_encounter_with_two_sightings(tmp_path):
    box = Box(tmp_path, gap=1.0)
    op = Operator(tmp_path, box)
    try:
        box.seen("cam-a", "a-1", 0)
        box.seen("cam-a", "a-1", 0)  # a re-encode of the same track: no new sighting
        box.seen("cam-b", "b-7", 0)  # camera B within the gap: the same encounter
        assert wait_for(lambda: len(op.delivered) == 2)
        first, second = op.delivered
        assert first["encounter_id"] == second["encounter_id"] == first["alert_id"]
        assert (first["sighting"], second["sighting"]) == (1, 2)
        assert (first["camera_id"], second["camera_id"]) == ("cam-a", "cam-b")
        assert first["state"] == second["state"] == "open" and second["decision"] is None
        (card,) = op.console.state()["open"]
        assert [s["camera_id"] for s in card["sightings"]] == ["cam-b", "cam-a"]  # newest first
        time.sleep(1.3)  # the gap passes with no sighting: the encounter ends
        box.seen("cam-a", "a-9", 0)  # the same person back later: a new encounter
        assert wait_for(lambda: len(op.delivered) == 3)
        assert op.delivered[2]["encounter_id"] == op.delivered[2]["alert_id"] != first["encounter_id"]
        assert len(op.console.state()["open"]) == 2
        assert box.daemon.counts.alerts == 2 and box.daemon.counts.sightings == 3
    finally:
        op.stop()
        box.stop()
    (alert1, alert2) = records(box, "alert")
    (sighting,) = records(box, "sighting")
    assert (alert1["encounter_id"], alert1["sighting"]) == (first["alert_id"], 1)
    assert (sighting["encounter_id"], sighting["sighting"], sighting["camera_id"], sighting["state"]) == (
        first["alert_id"], 2, "cam-b", "open")
    ends = records(box, "encounter_end")
    assert [(e["encounter_id"], e["sightings"], e["outcome"], e["reason"]) for e in ends] == [
        (first["alert_id"], 2, "undecided", "gap"), (alert2["alert_id"], 1, "undecided", "service_stop")]
    assert ends[0]["cameras"] == ["cam-a", "cam-b"]
    rep = report.build(verify_log(box.state).records, datetime(2020, 1, 1, tzinfo=UTC),
                       datetime(2100, 1, 1, tzinfo=UTC))
    assert rep["decisions"]["encounters"] == 2 and rep["alerts"]["total"] == 3


def test_a_dismissed_encounter_silences_its_tracks_and_sightings_join_it_decided(box, tmp_path):
    op = Operator(tmp_path, box)
    try:
        box.seen("cam-a", "a-1", 1)
        assert wait_for(lambda: len(op.delivered) == 1)
        op.decide(op.delivered[0]["alert_id"], "bob", decision="dismiss", reason="not the person")
        assert wait_for(lambda: box.daemon.counts.adjudications == 1)
        box.daemon.policy._alerted.clear()  # as if the per-track memory had run out
        box.seen("cam-a", "a-1", 1)  # the dismissed track stays quiet for that entry
        assert box.daemon.counts.matches_suppressed == 1
        box.seen("cam-b", "b-2", 1)  # another track within the gap: a sighting of the dismissed encounter
        assert wait_for(lambda: len(op.delivered) == 2)
        s = op.delivered[1]
        assert (s["sighting"], s["state"], s["decision"]["reason"], s["decision"]["operator"]) == (
            2, "dismissed", "not the person", "bob")
        assert op.console.state()["open"] == []
        (again,) = op.console.state()["seen_again"]
        assert again["outcome"] == "dismissed" and again["operator"] == "bob" and again["after_decision"] == 1
    finally:
        op.stop()


def test_an_encounter_decided_on_another_console_leaves_this_consoles_queue_on_its_next_sighting(box, tmp_path):
    a, b = Operator(tmp_path, box, "console-a"), Operator(tmp_path, box, "console-b")
    try:
        box.seen("cam-a", "a-1", 2)
        assert wait_for(lambda: len(a.delivered) == 1 and len(b.delivered) == 1)
        a.decide(a.delivered[0]["alert_id"], "alice", decision="confirm", action="approached")
        assert wait_for(lambda: box.daemon.counts.adjudications == 1)
        assert len(b.console.state()["open"]) == 1  # console B has not heard of the decision yet
        box.seen("cam-b", "b-1", 2)  # the next sighting carries it
        assert wait_for(lambda: len(b.delivered) == 2)
        assert b.console.state()["open"] == []
        (row,) = b.store.history()
        assert (row["outcome"], row["action"], row["operator"], row["sightings"]) == ("confirmed", "approached",
                                                                                     "alice", 2)
        assert b.store.undelivered(BOX) == []  # nothing for console B to send
    finally:
        a.stop()
        b.stop()


def test_one_decision_per_encounter_holds_across_a_box_restart(tmp_path):
    box = Box(tmp_path)
    op = Operator(tmp_path, box, "console-a")
    try:
        box.seen("cam-a", "a-1", 0)
        assert wait_for(lambda: len(op.delivered) == 1)
        alert_id = op.delivered[0]["alert_id"]
        op.decide(alert_id, "alice", decision="confirm", action="arrested")
        assert wait_for(lambda: op.store.alert(alert_id)["delivered"] == 1)
    finally:
        op.stop()
        box.stop()
    box = Box(tmp_path)  # the box restarts (its encounters in memory are gone; its outbox is not)
    late = Operator(tmp_path, box, "console-b")  # a console that joins later is sent the whole outbox
    try:
        assert wait_for(lambda: len(late.delivered) == 1)
        late.decide(alert_id, "bob", decision="dismiss", reason="not the person")
        assert wait_for(lambda: late.store.alert(alert_id)["refused"] == "already decided")
        assert box.daemon.counts.adjudications == 0
    finally:
        late.stop()
        box.stop()
    assert [(a["operator"], a["decision"]) for a in records(box, "adjudication")] == [("alice", "confirm")]
    assert [r["reason"] for r in records(box, "adjudication_refused")] == ["already decided"]


def test_camera_up_is_sent_when_a_camera_first_delivers_frames(box):
    sent = []
    box.daemon.publish = sent.append
    cam = SimpleNamespace(cam=SimpleNamespace(id="cam-a"), state="starting")
    box.daemon.on_camera_state(cam, "up", "")
    assert [(m["event"], m["camera_id"]) for m in sent] == [("camera_up", "cam-a")]
    box.daemon.on_camera_state(cam, "up", "")  # still up: nothing new
    assert len(sent) == 1


class Script:
    """A registered console key used by a script: raw CURVE DEALER, no console software."""

    def __init__(self, tmp, box: Box, register: bool = True):
        data = tmp / "script"
        pub = keys.keygen(data)
        if register:
            identity.add_console(box.state, pub)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.curve_serverkey = identity.load(box.state).curve_public
        self.sock.curve_publickey, self.sock.curve_secretkey = keys.load(data)
        self.sock.connect(box.endpoint)
        self.key_id = keys.key_id(keys.load(data)[0])

    def adjudicate(self, alert_id: str, decision="dismiss", reason="not the person") -> dict:
        adj = protocol.adjudication(alert_id=alert_id, box_id=BOX, decision=decision, reason=reason,
                                    action="arrested" if decision == "confirm" else "", operator="script")
        self.sock.send(messages.dumps(adj))
        return self.until(lambda m: m["type"] == "ack" and m.get("alert_id") == alert_id)

    def until(self, pred, seconds: float = 10.0) -> dict:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.sock.poll(100):
                m = json.loads(self.sock.recv())
                if m["type"] in ("alert", "event") and "seq" in m:
                    self.sock.send(protocol.ack(outbox=m["outbox"], seq=m["seq"]))
                if pred(m):
                    return m
        raise AssertionError("no answer from the box")

    def close(self):
        self.sock.close(0)
        self.ctx.term()


def test_forged_decisions_are_refused_and_audited_and_the_operators_decision_counts(box, tmp_path):
    op = Operator(tmp_path, box)
    script = Script(tmp_path, box)
    try:
        box.seen("cam-a", "a-1", 0)
        assert wait_for(lambda: len(op.delivered) == 1)
        alert_id = op.delivered[0]["alert_id"]
        # a registered key that was never sent the alert tries to pre-empt the operator
        assert script.adjudicate(alert_id)["refused"] == "not sent to this console"
        assert script.adjudicate("5b0f6a4e-0000-4000-8000-000000000000")["refused"] == "no such alert"
        assert box.daemon.counts.adjudications == 0
        # the operator's genuine decision is the one that counts
        op.decide(alert_id, "alice", decision="confirm", action="arrested")
        assert wait_for(lambda: op.store.alert(alert_id)["delivered"] == 1)
        assert op.store.alert(alert_id)["refused"] is None
        # now the script is sent the alert too, and tries to overturn the decision
        script.sock.send(protocol.hello("console", name="x", outbox="", last_seq=0))
        script.until(lambda m: m.get("alert_id") == alert_id and m["type"] == "alert")
        time.sleep(0.3)  # its ack is handled
        assert script.adjudicate(alert_id)["refused"] == "already decided"
        # and a genuine console deciding an encounter already decided elsewhere is told so
        box.seen("cam-b", "b-1", 1)
        assert wait_for(lambda: len(op.delivered) == 2)
        other = op.delivered[1]["alert_id"]
        script.until(lambda m: m.get("alert_id") == other and m["type"] == "alert")
        time.sleep(0.3)
        assert "refused" not in script.adjudicate(other, "confirm")  # the script is first here: it counts
        op.decide(other, "alice", decision="dismiss", reason="poor image")
        assert wait_for(lambda: op.store.alert(other)["refused"] == "already decided")
    finally:
        script.close()
        op.stop()
    st = status(box)
    assert st["decisions"]["total"] == 2 and st["decisions"]["confirm"] == {"arrested": 2}
    adjs = records(box, "adjudication")
    assert [(a["alert_id"], a["operator"], a["decision"]) for a in adjs] == [
        (alert_id, "alice", "confirm"), (other, "script", "confirm")]
    refused = records(box, "adjudication_refused")
    assert [(r["reason"], r["console"]) for r in refused] == [
        ("not sent to this console", script.key_id), ("no such alert", script.key_id),
        ("already decided", script.key_id), ("already decided", keys.key_id(keys.load(op.data)[0]))]
    rep = audit_report(box)
    assert rep["decisions"]["confirmed"] == 2 and rep["false_alert_rate"]["decided"] == 2
    assert rep["adjudications_refused"] == 4


def test_refused_adjudications_are_audited_at_a_bounded_rate(box, tmp_path):
    from edge.alerts import publisher

    script = Script(tmp_path, box)
    try:
        for i in range(publisher.REFUSALS_RECORDED + 10):
            script.adjudicate(f"00000000-0000-4000-8000-{i:012d}")
    finally:
        script.close()
    assert len(records(box, "adjudication_refused")) == publisher.REFUSALS_RECORDED
    assert box.daemon.publisher.counts["adjudications_refused"] == publisher.REFUSALS_RECORDED + 10


def test_a_message_version_newer_than_the_console_reads_is_shown_not_misread(box, tmp_path):
    op = Operator(tmp_path, box)
    try:
        newer = messages.alert(box_id=BOX, camera_id="cam-a", track_id="t", ref="WL-1", distance=0.4,
                               threshold=0.6, crop_jpeg=b"\xff\xd8")
        newer["v"] = messages.VERSIONS["alert"] + 1
        box.daemon.publish(newer)
        assert wait_for(lambda: op.link.state == "incompatible")
        info = op.console.state()["links"][0]
        assert "newer than this software reads" in info["problem"] and "update" in info["problem"]
        assert op.store.open_alerts() == []  # nothing misread
    finally:
        op.stop()
