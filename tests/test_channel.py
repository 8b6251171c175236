"""The alert channel with real sockets and real CURVE keys: who may listen, and that nothing is lost.

The box side is the real Channel (ROUTER + ZAP + SQLite outbox) fed with synthetic alerts; the
console side is the real BoxLink + console store. The kill -9 test kills a real box process.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, free_port, wait_for

from edge import identity
from edge.alerts import messages, protocol, retention
from edge.alerts.publisher import Channel
from edge.console import keys
from edge.console.link import BoxLink
from edge.console.store import Store

BOX = "box-1"


def synthetic_alert(i: int) -> dict:
    return messages.alert(box_id=BOX, camera_id="cam-a", track_id=f"cam-a-1-{i}", ref=f"R{i:04d}",
                          distance=0.42, threshold=0.6, crop_jpeg=b"\xff\xd8crop", reference_jpeg=b"\xff\xd8ref",
                          category="wanted")


class Console:
    """A console's key pair, store and (restartable) link to one box, recording what it is handed."""

    def __init__(self, tmp: Path, name: str, endpoint: str, box_key: bytes, state: Path | None):
        self.data = tmp / name
        pub = keys.keygen(self.data)
        if state is not None:  # registered on the box, as `edge trust add-console` does
            identity.add_console(state, pub)
        self.endpoint, self.box_key = endpoint, box_key
        self.store = Store(self.data / "console.db")
        self.delivered: list[dict] = []  # every new alert the link handed over, in order
        self.link: BoxLink | None = None

    def start(self) -> BoxLink:
        self.link = BoxLink(self.endpoint, self.box_key, keys.load(self.data), self.store,
                            on_change=lambda kind, d: kind == "alert" and self.delivered.append(d))
        self.link.start()
        return self.link

    def stop(self) -> None:
        self.link.stop()

    def refs(self) -> list[str]:
        return [a["ref"] for a in self.delivered]


@pytest.fixture
def box(tmp_path):
    state = tmp_path / "state"
    ident = identity.create(state, BOX)
    adjudications = []
    ch = Channel(f"tcp://127.0.0.1:{free_port()}", state, ident.curve_public, ident.curve_secret, BOX,
                 on_adjudication=lambda msg, console: adjudications.append((msg, console)))
    ch.start()
    ch.state, ch.ident, ch.adjudications = state, ident, adjudications
    consoles: list[Console] = []

    def console(name: str, registered: bool = True) -> Console:
        consoles.append(Console(tmp_path, name, ch.endpoint, ident.curve_public, state if registered else None))
        return consoles[-1]

    ch.console = console
    yield ch
    for c in consoles:
        if c.link is not None and c.link._thread.is_alive():
            c.stop()
        c.store.close()
    ch.stop()


def test_only_a_registered_console_key_receives_alerts(box):
    stranger = box.console("stranger", registered=False)
    operator = box.console("operator")
    for i in range(3):
        box.publish(synthetic_alert(i))
    stranger.start()
    operator.start()
    assert wait_for(lambda: len(operator.delivered) == 3)
    time.sleep(1.0)  # give the stranger every chance
    assert stranger.delivered == [] and stranger.store.open_alerts() == []
    assert stranger.link.state == "refused"
    assert operator.refs() == ["R0000", "R0001", "R0002"]
    assert messages.unb64(operator.delivered[0]["crop_jpeg"]).startswith(b"\xff\xd8")
    assert box.info()["refused_keys"] >= 1


def test_console_down_while_100_alerts_are_produced_gets_all_after_reconnecting(box):
    op = box.console("operator")
    op.start()
    box.publish(synthetic_alert(0))
    assert wait_for(lambda: len(op.delivered) == 1)
    op.stop()  # the console goes away
    for i in range(1, 101):
        box.publish(synthetic_alert(i))
    time.sleep(0.5)
    assert len(op.delivered) == 1
    op.start()  # ... and comes back
    assert wait_for(lambda: len(op.delivered) == 101, 20), len(op.delivered)
    time.sleep(0.5)
    assert op.refs() == [f"R{i:04d}" for i in range(101)]  # all, in order, once
    assert len(op.store.open_alerts()) == 101
    assert wait_for(lambda: box.outbox.acks() == {keys.key_id(keys.load(op.data)[0]): 101})


def test_an_adjudication_is_recorded_once_by_the_box_and_acknowledged(box):
    op = box.console("operator")
    link = op.start()
    box.publish(synthetic_alert(1))
    assert wait_for(lambda: len(op.delivered) == 1)
    alert_id = op.delivered[0]["alert_id"]
    adj = protocol.adjudication(alert_id=alert_id, box_id=BOX, decision="dismiss", reason="not the person",
                                operator="PC Smith", seconds_to_decision=12.5)
    op.store.decide([alert_id], [adj])
    link.wake.set()
    assert wait_for(lambda: op.store.alert(alert_id)["delivered"] == 1)
    with sqlite3.connect(op.data / "console.db") as db:  # as if the box's ack had been lost: sent again
        db.execute("UPDATE alerts SET delivered=0")
    link.wake.set()
    assert wait_for(lambda: op.store.alert(alert_id)["delivered"] == 1)
    assert len(box.adjudications) == 1
    msg, console = box.adjudications[0]
    assert (msg["decision"], msg["reason"], msg["operator"]) == ("dismiss", "not the person", "PC Smith")
    assert console == keys.key_id(keys.load(op.data)[0])
    assert box.outbox.adjudications()[0]["alert_id"] == alert_id


BOX_PROCESS = """
import sys, time
from edge import identity
from edge.alerts import messages
from edge.alerts.publisher import Channel
state, endpoint, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
ident = identity.create(state, "box-1")
ch = Channel(endpoint, state, ident.curve_public, ident.curve_secret, "box-1")
ch.start()
i = ch.outbox.counts()["alerts"]  # carries on numbering after a restart
print("ready", i, flush=True)
while i < total:
    ch.publish(messages.alert(box_id="box-1", camera_id="cam-a", track_id=f"t{i}", ref=f"R{i:04d}", distance=0.4,
                              threshold=0.6, crop_jpeg=b"\\xff\\xd8", reference_jpeg=b"\\xff\\xd8"))
    i += 1
    time.sleep(0.01)
time.sleep(60)
"""


def test_kill_9_of_the_box_mid_stream_loses_and_duplicates_nothing(tmp_path):
    state, total = tmp_path / "state", 300
    ident = identity.create(state, BOX)
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    op = Console(tmp_path, "operator", endpoint, ident.curve_public, state)
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def box_process():
        proc = subprocess.Popen([sys.executable, "-c", BOX_PROCESS, str(state), endpoint, str(total)],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout.readline().startswith("ready")
        return proc

    proc = box_process()
    op.start()
    try:
        assert wait_for(lambda: len(op.delivered) >= 60, 20)
        proc.send_signal(signal.SIGKILL)  # mid-stream: the box is still producing
        proc.wait(5)
        got_before = len(op.delivered)
        assert got_before < total
        proc = box_process()
        assert wait_for(lambda: len(op.delivered) >= total, 30), len(op.delivered)
        time.sleep(1.0)
    finally:
        proc.kill()
        proc.wait(5)
        op.stop()
    refs = op.refs()
    assert refs == [f"R{i:04d}" for i in range(total)]  # every alert, once, in order
    assert len(op.store.open_alerts()) == total


def test_message_formats_match_the_test_vectors():
    vectors = json.loads((REPO / "docs" / "alerts-vectors.json").read_text())
    for v in vectors["valid"]:
        msg = protocol.loads(json.dumps(v["message"]).encode(), allowed=set(v["allowed"]))
        assert msg["type"] == v["message"]["type"]
    for v in vectors["invalid"]:
        with pytest.raises(messages.NewerVersion if v.get("newer") else messages.MessageError):
            protocol.loads(json.dumps(v["message"]).encode(), allowed=set(v["allowed"]))


def test_daemon_joins_sightings_across_cameras_into_one_encounter_and_a_dismissed_track_stops_alerting(tmp_path):
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from edge import config
    from edge.pipeline.daemon import Daemon
    from edge.watchlist.base import Entry, WatchList

    state = tmp_path / "state"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = config.parse(f'box_id = "{BOX}"\nstate_dir = "{state}"\n[[cameras]]\nid = "cam-a"\nsource = "x.mp4"\n'
                       f'[alerts]\nendpoint = "{endpoint}"\n'
                       '[deployment]\nrequired = false\n')
    daemon = Daemon(cfg)
    daemon.prepare_state_dir()
    daemon.open_channel()
    template = np.random.default_rng(1).normal(size=128).astype(np.float32)
    template /= np.linalg.norm(template) * 4
    daemon.matcher.swap(WatchList("L-1", [Entry("WL-9", "wanted", image_jpeg=b"\xff\xd8ref")], template[None, :],
                                  np.array([0]), not_after=datetime.now(UTC) + timedelta(hours=3)))
    op = Console(tmp_path, "operator", endpoint, identity.load(state).curve_public, state)
    op.start()

    def seen(camera: str, track: str):
        daemon.on_encoding({"camera_id": camera, "track_id": track, "frame_time": time.time(),
                            "descriptor": (template + 0.01).tolist(), "crop_jpeg": messages.b64(b"\xff\xd8crop")})

    try:
        daemon.check_expiry()
        seen("cam-a", "a-1")
        seen("cam-b", "b-1")  # the same person on the other camera within the gap: the same encounter
        seen("cam-a", "a-1")  # the same track again: no new sighting
        assert wait_for(lambda: len(op.delivered) == 2)
        first, second = op.delivered
        assert second["encounter_id"] == first["encounter_id"] == first["alert_id"]
        assert (first["sighting"], second["sighting"]) == (1, 2)
        assert daemon.counts.matches_suppressed == 1
        events = [e["event"] for e in op.store.events()]
        assert "watchlist_expiring" in events
        adj = protocol.adjudication(alert_id=first["alert_id"], box_id=BOX, decision="dismiss", reason="poor image",
                                    operator="op")
        op.store.decide([first["alert_id"], second["alert_id"]], [adj])  # one decision for the encounter
        op.link.wake.set()
        assert wait_for(lambda: daemon.counts.adjudications == 1)
        daemon.policy._alerted.clear()  # as if the per-track memory had run out
        seen("cam-a", "a-1")  # a dismissed track stays quiet for that entry
        assert daemon.counts.matches_suppressed == 2
        seen("cam-a", "a-2")  # a new track within the gap: a sighting of the decided encounter, not a new alert
        assert wait_for(lambda: len(op.delivered) == 3)
        assert op.delivered[2]["encounter_id"] == first["encounter_id"]
        assert op.delivered[2]["state"] == "dismissed" and op.delivered[2]["decision"]["operator"] == "op"
        assert op.store.open_alerts() == []  # it does not reopen anything
        assert daemon.counts.alerts == 1
    finally:
        op.stop()
        daemon.publisher.stop()


def test_console_commands_keygen_adduser_and_edge_watch(box, tmp_path):
    from click.testing import CliRunner

    from edge.cli import cli

    run = CliRunner().invoke
    data = str(tmp_path / "watcher")
    r = run(cli, ["console", "keygen", "--data", data])
    assert r.exit_code == 0 and "console.pub" in r.output
    r = run(cli, ["console", "keygen", "--data", data])
    assert r.exit_code == 1 and "exists already" in r.output  # never overwritten by accident
    r = run(cli, ["console", "adduser", "alice", "--data", data, "--password-stdin"], input="short\n")
    assert r.exit_code == 1 and "at least 8" in r.output
    r = run(cli, ["console", "adduser", "alice", "--data", data, "--password-stdin"], input="long enough pw\n")
    assert r.exit_code == 0
    assert Store(tmp_path / "watcher" / "console.db").check_user("alice", "long enough pw")
    r = run(cli, ["console", "--data", data, "--box", "tcp://127.0.0.1:1"])
    assert r.exit_code == 1 and "ENDPOINT=KEY" in r.output

    box_spec = f"{box.endpoint}={box.state / 'keys' / 'box.pub.json'}"
    r = run(cli, ["watch", box_spec, "--data", data, "--timeout", "1.5"])  # not registered yet
    assert r.exit_code == 0 and "refused this console's key" in r.output and "ALERT" not in r.output
    identity.add_console(box.state, tmp_path / "watcher" / "console.pub")
    box.publish(synthetic_alert(7))
    box.publish(messages.event(box_id=BOX, event="camera_down", camera_id="cam-b", reason="no signal"))
    r = run(cli, ["watch", box_spec, "--data", data, "--count", "1", "--timeout", "10"])
    assert r.exit_code == 0, r.output
    assert "ALERT" in r.output and "R0007" in r.output


def test_one_console_follows_two_boxes(box, tmp_path):
    state2 = tmp_path / "state2"
    ident2 = identity.create(state2, "box-2")
    box2 = Channel(f"tcp://127.0.0.1:{free_port()}", state2, ident2.curve_public, ident2.curve_secret, "box-2")
    box2.start()
    op = box.console("operator")
    identity.add_console(state2, op.data / "console.pub")
    link2 = BoxLink(box2.endpoint, ident2.curve_public, keys.load(op.data), op.store,
                    on_change=lambda kind, d: kind == "alert" and op.delivered.append(d))
    try:
        op.start()
        link2.start()
        box.publish(synthetic_alert(1))
        box2.publish(dict(synthetic_alert(2), box_id="box-2"))
        assert wait_for(lambda: len(op.delivered) == 2)
        assert {a["box_id"] for a in op.store.open_alerts()} == {BOX, "box-2"}
        assert {link2.box_id, op.link.box_id} == {BOX, "box-2"}
    finally:
        link2.stop()
        box2.stop()


def test_the_outbox_keeps_only_alerts_and_events_and_prunes_by_retention(tmp_path):
    from edge.alerts.outbox import Outbox

    ob = Outbox(tmp_path / "outbox.db")
    seqs = [ob.add(synthetic_alert(i)) for i in range(3)]
    again = synthetic_alert(9)
    assert ob.add(again) == ob.add(again)  # the same alert is stored once
    with pytest.raises(ValueError):
        ob.add(messages.stage("encoding", camera_id="a", track_id="t", descriptor=[0.0] * 128))
    hour = retention.Policy(1 / 24, "test")
    assert retention.apply(ob, hour)[1] == 0
    assert retention.apply(ob, hour, clock=lambda: time.time() + 7200)[1] == 4
    assert ob.add(synthetic_alert(10)) > max(seqs) + 1  # numbers are never reused after pruning
    assert (tmp_path / "outbox.db").stat().st_mode & 0o077 == 0
    ob.close()
