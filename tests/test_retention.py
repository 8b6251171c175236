"""Retention: alert crops and details go after the period (clock injected), each deletion logged."""

from __future__ import annotations

import time
from types import SimpleNamespace

from click.testing import CliRunner

from edge import identity
from edge.alerts import messages
from edge.alerts import outbox as outbox_mod
from edge.alerts.outbox import Outbox
from edge.alerts.retention import sweep
from edge.audit.log import AuditLog
from edge.audit.verify import verify_log
from edge.cli import cli

DAY = 86400.0


def alert(ref: str = "WL-1") -> dict:
    return messages.alert(box_id="box-a", camera_id="cam1", track_id="t1", ref=ref, distance=0.42, threshold=0.6,
                          crop_jpeg=b"\xff\xd8\xff\xe0crop", reference_jpeg=b"\xff\xd8ref")


def stored(state) -> dict:
    ob = Outbox(state / "outbox.db")
    try:
        return ob.counts()
    finally:
        ob.close()


def test_alerts_are_kept_for_the_period_then_deleted_and_logged(tmp_path, monkeypatch):
    state = tmp_path / "state"
    identity.create(state, "box-a")
    t0 = time.time()
    now = [t0]
    monkeypatch.setattr(outbox_mod, "time", SimpleNamespace(time=lambda: now[0]))  # when rows are stored
    ob = Outbox(state / "outbox.db")
    old = alert()
    ob.add(old)
    ob.add_adjudication({"alert_id": old["alert_id"], "decision": "dismiss"}, "console-1")
    ob.add(messages.event(box_id="box-a", event="camera_down", camera_id="cam1"))
    ob.close()
    log = AuditLog(state)

    assert sweep(state, 31, record=log.append, clock=lambda: t0 + 30 * DAY) == []
    assert stored(state) == {"alerts": 1, "events": 1, "adjudications": 1}

    now[0] = t0 + 20 * DAY
    ob = Outbox(state / "outbox.db")
    young = alert("WL-2")
    ob.add(young)
    ob.close()
    assert sweep(state, 31, record=log.append, clock=lambda: t0 + 31 * DAY + 60) == [old["alert_id"]]
    assert stored(state) == {"alerts": 1, "events": 0, "adjudications": 0}
    assert sweep(state, 31, record=log.append, clock=lambda: t0 + 52 * DAY) == [young["alert_id"]]
    assert stored(state) == {"alerts": 0, "events": 0, "adjudications": 0}

    log.close()
    res = verify_log(state)
    assert res.ok, res.summary()
    deletions = [r["data"] for r in res.records if r["kind"] == "retention_deleted"]
    assert [d["alert_id"] for d in deletions] == [old["alert_id"], young["alert_id"]]
    assert deletions[0]["crop"] is True and deletions[0]["age_days"] >= 31 and deletions[0]["camera_id"] == "cam1"


def test_retention_command_uses_the_period(tmp_path):
    state = tmp_path / "state"
    identity.create(state, "box-a")
    ob = Outbox(state / "outbox.db")
    ob.add(alert())
    ob.close()
    runner = CliRunner()
    r = runner.invoke(cli, ["audit", "retention", "--state-dir", str(state)])
    assert r.exit_code == 0 and "deleted 0" in r.output
    assert stored(state)["alerts"] == 1
    r = runner.invoke(cli, ["audit", "retention", "--state-dir", str(state), "--days", "0.00000001"])
    assert r.exit_code == 0 and "deleted 1" in r.output
    assert stored(state)["alerts"] == 0
    assert "retention_deleted" in [r["kind"] for r in verify_log(state).records]


def test_the_stricter_of_the_config_and_the_lists_signed_period_applies(tmp_path, monkeypatch):
    """The list's policy.retention_days was stored but never applied, and `edge audit retention` used 31 days
    whatever the config said: now one policy, the stricter of the two, for the command and the daemon."""
    import json

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from wlhelpers import make_bundle

    from edge.alerts.retention import Policy

    state = tmp_path / "state"
    ident = identity.create(state, "box-a")
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'box_id = "box-a"\nstate_dir = "{state}"\n[[cameras]]\nid = "cam1"\nsource = "x.mp4"\n'
                   "[alerts]\nretention_days = 20\n")
    t0 = time.time()
    now = [t0 - 15 * DAY]
    monkeypatch.setattr(outbox_mod, "time", SimpleNamespace(time=lambda: now[0]))
    ob = Outbox(state / "outbox.db")
    fifteen = alert("WL-15")
    ob.add(fifteen)
    now[0] = t0 - 8 * DAY
    eight = alert("WL-8")
    ob.add(eight)
    ob.close()
    runner = CliRunner()
    r = runner.invoke(cli, ["audit", "retention", "--config", str(cfg)])
    assert r.exit_code == 0 and "deleted 0 alert(s) older than 20 days (config alerts.retention_days)" in r.output

    issuer = Ed25519PrivateKey.generate()
    (tmp_path / "issuer.pub").write_text(json.dumps(identity.issuer_public_doc(identity.raw_public(issuer))))
    identity.add_issuer(state, tmp_path / "issuer.pub")
    (state / "watchlist").mkdir(exist_ok=True)
    data = make_bundle(issuer, ident.wl_public, policy={"retention_days": 7}, list_id="L-7")
    (state / "watchlist" / "current.wlb").write_bytes(data)
    r = runner.invoke(cli, ["audit", "retention", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert "deleted 2 alert(s) older than 7 days (list L-7 policy.retention_days)" in r.output
    r = runner.invoke(cli, ["audit", "retention", "--config", str(cfg), "--days", "60"])  # only ever shorter
    assert r.exit_code == 0 and "older than 7 days (list L-7 policy.retention_days)" in r.output, r.output
    r = runner.invoke(cli, ["audit", "retention", "--config", str(cfg), "--days", "0"])
    assert r.exit_code != 0 and "--days must be a positive number of days" in r.output, r.output
    assert Policy.of(20, {"list_id": "L", "policy": {"retention_days": 40}}).days == 20  # the stricter
    assert Policy.of(20, {"list_id": "L", "policy": {"retention_days": 0}}).days == 20  # 0: the list sets none


def test_only_the_outbox_touches_its_tables():
    """Retention deleted through raw SQL on the outbox's tables beside Outbox.prune doing the same job:
    now the outbox's own expire() is the one deletion, the sweep audits it."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "edge"
    raw = [str(p.relative_to(root)) for p in root.rglob("*.py")
           if p.name != "outbox.py" and ("FROM messages" in p.read_text() or "FROM adjudications" in p.read_text())]
    assert not raw, f"modules running SQL on the outbox's tables: {raw}"


def test_the_console_deletes_through_the_one_retention_rule(tmp_path):
    """The console's store had its own prune (its own cutoff, its own period default) beside the box's sweep:
    now one rule (``retention.apply``: what was stored more than the period ago goes, through the store's own
    ``expire``, in one transaction) serves the outbox and the console, and the boxes are told what went."""
    from edge.alerts import retention
    from edge.console.store import Store

    store = Store(tmp_path / "console.db")
    t0 = time.time()
    for i, box in enumerate(("box-a", "box-a", "box-b")):
        msg = messages.alert(box_id=box, camera_id="cam1", track_id=f"t{i}", ref="WL-1", distance=0.4,
                             threshold=0.6, crop_jpeg=b"\xff\xd8crop")
        store.receive("tcp://box", dict(msg, outbox="o", seq=i + 1))
    assert retention.apply(store, retention.Policy(31, "console --retention-days"), clock=lambda: t0 + 30 * DAY) == []
    assert len(store.open_alerts()) == 3 and store.undelivered_prunes("box-a") == []
    gone = retention.apply(store, retention.Policy(31, "console --retention-days"), clock=lambda: t0 + 32 * DAY)
    assert len(gone) == 3 and store.open_alerts() == []
    (told,) = store.undelivered_prunes("box-a")
    assert len(told["alert_ids"]) == 2 and told["retention_days"] == 31
    assert not hasattr(store, "prune") and not hasattr(Outbox, "prune")  # no second way to delete


def test_one_retention_period_by_default():
    """31 days was written in five places (config, sweep, channel, console, report): the config's default is
    the one, every other default is that one."""
    import inspect
    import re
    from pathlib import Path

    from edge.alerts import retention
    from edge.alerts.publisher import Channel
    from edge.audit import report_matches
    from edge.config import AlertsConfig
    from edge.console.cli import console_group
    from edge.console.web import Console

    days = AlertsConfig().retention_days
    assert retention.DEFAULT_DAYS == days
    assert inspect.signature(Console).parameters["retention_days"].default == days
    assert "retention_s" not in inspect.signature(Channel).parameters  # the channel runs the policy's sweep
    assert next(p.default for p in console_group.params if p.name == "retention_days") == days
    assert report_matches.DEFAULT_RETENTION_DAYS == days
    root = Path(__file__).resolve().parents[1] / "edge"
    written = [f"{p.relative_to(root)}:{n}" for p in root.rglob("*.py") if p.name not in ("config.py",)
               for n, line in enumerate(p.read_text().splitlines(), 1)
               if "retention" in line and re.search(r"\b31(\.0)?\b|86400", line)]
    assert not written, f"retention periods or day lengths written outside config.py: {written}"


def test_the_console_keeps_a_boxs_alerts_no_longer_than_that_box_does(tmp_path):
    """The console's store kept every box's alerts for its own --retention-days (31), even from a box whose
    list's signed policy keeps them 7: now the box says its period in its hello (version 2) and the console
    applies, per box, the stricter of the two (through ``retention.apply``), and tells the box what went."""

    from conftest import free_port, wait_for
    from wlhelpers import store_list_with_policy

    from edge import config
    from edge.console import keys
    from edge.console.link import BoxLink
    from edge.console.store import Store
    from edge.console.web import Console
    from edge.pipeline.daemon import Daemon

    state = tmp_path / "state"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = config.parse(f'box_id = "box-a"\nstate_dir = "{state}"\n[[cameras]]\nid = "cam1"\nsource = "x.mp4"\n'
                       f'[alerts]\nendpoint = "{endpoint}"\n[deployment]\nrequired = false\n')
    ident = store_list_with_policy(tmp_path, state, "box-a", {"retention_days": 7})
    daemon = Daemon(cfg)
    daemon.prepare_state_dir()
    daemon.duties.start()
    assert daemon.retention().days == 7  # the box's own policy: the list's 7 days beat the config's 31
    daemon.open_channel()
    data = tmp_path / "console"
    identity.add_console(state, keys.keygen(data))
    store = Store(data / "console.db")
    link = BoxLink(endpoint, ident.curve_public, keys.load(data), store)
    console = Console(store, [link], 31)
    link.start()
    try:
        daemon.publish(alert("WL-8"))
        assert wait_for(lambda: len(store.open_alerts()) == 1, 20, "the alert on the console")
        assert wait_for(lambda: link.box_status.get("retention_days") == 7, 10, "the box's period in its hello")
        assert store.box_periods() == {"box-a": 7.0}
        t0 = time.time()
        assert console.expire(clock=lambda: t0 + 6 * DAY) == []  # within both periods: kept
        (kept,) = store.open_alerts()
        gone = console.expire(clock=lambda: t0 + 8 * DAY)  # 8 days old: past the box's 7, within the console's 31
        assert gone == [kept["alert_id"]] and store.open_alerts() == [] and store.alert(kept["alert_id"]) is None
        (told,) = store.undelivered_prunes("box-a")
        assert told["alert_ids"] == [kept["alert_id"]] and told["retention_days"] == 7
        link.wake.set()
        assert wait_for(lambda: store.undelivered_prunes("box-a") == [], 20, "the box's ack of the prune")
    finally:
        link.stop()
        daemon.publisher.stop()
        daemon.duties.log.close()
    pruned = [r["data"] for r in verify_log(state).records if r["kind"] == "console_pruned"]
    assert [(p["alert_ids"], p["retention_days"]) for p in pruned] == [([kept["alert_id"]], 7)]
    store.close()
    store = Store(data / "console.db")  # a restarted console remembers each box's period before it is heard
    assert store.box_periods() == {"box-a": 7.0}
    store.close()


def test_edge_watch_keeps_a_boxs_alerts_no_longer_than_that_box_does(tmp_path):
    """`edge watch` kept every alert it received (crops included) in its watch.db for ever: now it applies
    the console's rule at start and at exit, with the period the box says in its hello."""
    import json
    import sqlite3

    from conftest import free_port

    from edge.alerts.publisher import Channel
    from edge.alerts.retention import Policy
    from edge.console import keys
    from edge.console.store import Store
    from edge.console.watch import watch

    state = tmp_path / "state"
    ident = identity.create(state, "box-a")
    ch = Channel(f"tcp://127.0.0.1:{free_port()}", state, ident.curve_public, ident.curve_secret, "box-a",
                 policy=lambda: Policy(7, "list L-7 policy.retention_days"))
    ch.start()
    data = tmp_path / "watcher"
    identity.add_console(state, keys.keygen(data))
    spec = f"{ch.endpoint}={state / 'keys' / 'box.pub.json'}"
    try:
        ch.publish(alert("WL-OLD"))
        (old,) = watch(spec, str(data), count=1, timeout=20, out=lambda _line: None)
        db = sqlite3.connect(data / "watch.db")  # as if that run was 8 days ago
        with db:
            db.execute("UPDATE alerts SET received = received - ?", (8 * DAY,))
        db.close()
        ch.publish(alert("WL-NEW"))
        (new,) = watch(spec, str(data), count=1, timeout=20, out=lambda _line: None)
    finally:
        ch.stop()
    store = Store(data / "watch.db")
    try:
        assert store.alert(old["alert_id"]) is None  # 8 days: past the box's 7 (the default is 31)
        assert store.alert(new["alert_id"]) is not None
    finally:
        store.close()
    db = sqlite3.connect(data / "watch.db")  # the box is told (at start of the second run: it is sent then)
    (told,) = [json.loads(body) for (body,) in db.execute("SELECT body FROM prunes WHERE box_id='box-a'")]
    db.close()
    assert told["alert_ids"] == [old["alert_id"]] and told["retention_days"] == 7
