"""The oversight report: its counts equal the alerts and decisions recorded; html is self-contained."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from conftest import (
    LIN_REF,
    Subscriber,
    edge_cmd,
    free_port,
    hamilton_box,
    running_daemon,
)

from edge import identity
from edge.audit import report
from edge.audit.log import AuditLog
from edge.audit.verify import verify_log
from edge.cli import cli

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def day(tmp_path):
    """One recorded day: a deployment, a watch list, 7 alerts on two cameras, decisions, a camera fault."""
    state = tmp_path / "state"
    identity.create(state, "box-a")
    now = [T0]
    log = AuditLog(state, clock=lambda: now[0])

    def at(minutes, kind, **fields):
        now[0] = T0 + minutes * 60
        log.append(kind, **fields)

    at(0, "service_start", cameras=["cam1", "cam2"])
    at(1, "deployment_loaded", deployment_id="dep-1", issuer="SPOC Met", location="King's Cross",
       cameras=["cam1", "cam2"], start="2026-11-20T08:00:00Z", end="2026-11-20T20:00:00Z", purpose="wanted persons")
    at(2, "deployment_start", deployment_id="dep-1", location="King's Cross", cameras=["cam1", "cam2"])
    at(3, "watchlist_loaded", issuer="SPOC Met", list_id="L-7", entries=3, refs=["WL-1", "WL-2", "WL-3"],
       categories=["wanted"])
    decisions = {  # alert index -> (decision, reason, action, seconds)
        0: ("confirm", "match confirmed", "stopped", 12.0),
        1: ("dismiss", "not the person", "none", 8.0),
        2: ("dismiss", "not_the_person", "none", 20.0),
        3: ("dismiss", "not actionable", "none", 5.0),
        5: ("confirm", "match confirmed", "arrested", 30.0),
    }
    for i in range(7):
        cam = "cam1" if i < 5 else "cam2"
        at(10 + 30 * i, "alert", alert_id=f"a{i}", camera_id=cam, time="", ref="WL-1", distance=0.45)
        if i in decisions:
            d, reason, action, secs = decisions[i]
            at(10 + 30 * i + 1, "adjudication", alert_id=f"a{i}", operator="op1", decision=d, action=action,
               reason=reason, seconds_to_decision=secs)
    at(100, "camera_fault", camera_id="cam2", reason="stream lost")
    at(130, "camera_back", camera_id="cam2")
    at(200, "faces_processed", camera_id="cam1", faces=1200, encodings=400)
    at(200, "faces_processed", camera_id="cam2", faces=800, encodings=300)
    at(300, "adjudication", alert_id="a0", operator="op2", decision="confirm", action="arrested",
       reason="match confirmed", seconds_to_decision=12.0)  # re-decided: the last decision counts
    at(600, "watchlist_purged", list_id="L-7", issuer="SPOC Met", reason="expired", time="2026-11-20T18:00:00Z")
    at(601, "deployment_end", deployment_id="dep-1", reason="window closed")
    at(660, "service_stop")
    log.close()
    return state


def test_counts_equal_the_alerts_and_decisions_recorded(day):
    records = verify_log(day).records
    rep = report.build(records, datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
    alerts = [r for r in records if r["kind"] == "alert"]
    assert rep["alerts"]["total"] == len(alerts) == 7
    assert rep["alerts"]["per_camera"] == {"cam1": 5, "cam2": 2}
    assert (rep["decisions"]["confirmed"], rep["decisions"]["dismissed"], rep["decisions"]["undecided"]) == (2, 3, 2)
    assert rep["actions"] == {"arrested": 2}  # what followed the confirmed alerts
    assert rep["false_alert_rate"] == {"false_alerts": 2, "decided": 5, "rate": 0.4}
    assert rep["time_to_decision_s"]["median"] == 12.0 and rep["time_to_decision_s"]["max"] == 30.0
    assert rep["faces_processed"] == {"total": 2000, "per_camera": {"cam1": 1200, "cam2": 800}, "encodings": 700,
                                      "not_authorised": 0}
    up = rep["camera_uptime"]
    assert up["cam1"]["uptime"] == 1.0
    assert up["cam2"]["running_s"] == 660 * 60 and up["cam2"]["down_s"] == 30 * 60 and up["cam2"]["faults"] == 1
    (wl,) = rep["watchlists"]
    assert (wl["list_id"], wl["issuer"], wl["entries"], wl["categories"]) == ("L-7", "SPOC Met", 3, ["wanted"])
    assert wl["ended"]["how"] == "expired" and wl["ended"]["receipt"] is None  # this record carries no receipt
    (dep,) = rep["deployments"]
    assert dep["location"] == "King's Cross" and dep["issuer"] == "SPOC Met" and len(dep["activated"]) == 1
    assert sum(b["alerts"] for b in rep["timeline"]["buckets"]) == 7
    assert sum(b["confirmed"] for b in rep["timeline"]["buckets"]) == 2


def test_period_selects_alerts(day):
    records = verify_log(day).records
    # 08:00 .. 09:00 holds alerts a0 (08:10) and a1 (08:40)
    rep = report.build(records, datetime(2026, 11, 20, 8, tzinfo=UTC), datetime(2026, 11, 20, 9, tzinfo=UTC))
    assert rep["alerts"]["total"] == 2
    assert rep["decisions"]["confirmed"] == 1 and rep["decisions"]["dismissed"] == 1


def test_cli_formats(day, tmp_path):
    runner = CliRunner()
    base = ["audit", "report", "--state-dir", str(day), "--from", "2026-11-20", "--to", "2026-11-20"]
    text = runner.invoke(cli, base)
    assert text.exit_code == 0, text.output
    assert "confirmed 2, dismissed 3, undecided 2" in text.output and "2/5 = 40.0%" in text.output
    assert "Audit log: OK" in text.output
    js = runner.invoke(cli, [*base, "--format", "json"])
    assert json.loads(js.output)["alerts"]["total"] == 7
    out = tmp_path / "report.html"
    h = runner.invoke(cli, [*base, "--format", "html", "-o", str(out)])
    assert h.exit_code == 0, h.output
    page = out.read_text()
    assert "<svg" in page and page.count('class="confirmed"') >= 1
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # no external assets
    assert "King&#x27;s Cross" in page


def test_a_demo_run_reports_exactly_the_alerts_and_decisions_made(tmp_path):
    """Daemon matching + real alert channel + real console decisions, recorded through the daemon's own
    audit hook: the report's counts equal what happened."""
    import time

    import numpy as np

    from edge import config
    from edge.alerts import messages, protocol
    from edge.console import keys
    from edge.console.link import BoxLink
    from edge.console.store import Store
    from edge.pipeline.daemon import Daemon
    from edge.watchlist.base import Entry, WatchList

    def wait_for(pred, seconds=15.0):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not pred():
            time.sleep(0.05)
        return pred()

    state, endpoint = tmp_path / "state", f"tcp://127.0.0.1:{free_port()}"
    cfg = config.parse(f'box_id = "box-a"\nstate_dir = "{state}"\n[[cameras]]\nid = "cam1"\nsource = "a.mp4"\n'
                       f'[[cameras]]\nid = "cam2"\nsource = "b.mp4"\n[alerts]\nendpoint = "{endpoint}"\n'
                       '[deployment]\nrequired = false\n')
    daemon = Daemon(cfg)
    daemon.prepare_state_dir()
    identity.create(state, "box-a")
    daemon.duties.start()  # the start-up steps edge run takes before the cameras
    daemon.open_channel()
    rng = np.random.default_rng(7)
    templates = rng.normal(size=(3, 128)).astype(np.float32)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True) * 2
    refs = ["WL-1", "WL-2", "WL-3"]
    wl = WatchList("L-1", [Entry(r, "wanted", image_jpeg=b"\xff\xd8ref") for r in refs], templates,
                   np.arange(3), issuer="SPOC Met")
    daemon.matcher.swap(wl)
    daemon.record("watchlist_loaded", issuer=wl.issuer, list_id=wl.list_id, entries=3, refs=refs,
                  categories=["wanted"])
    daemon.record("service_start", cameras=["cam1", "cam2"])
    console = tmp_path / "console"
    identity.add_console(state, keys.keygen(console))
    store = Store(console / "console.db")
    delivered = []
    link = BoxLink(endpoint, identity.load(state).curve_public, keys.load(console), store,
                   on_change=lambda kind, d: kind == "alert" and delivered.append(d))
    link.start()
    try:
        sightings = [("cam1", "t1", 0), ("cam2", "t2", 1), ("cam1", "t3", 2), ("cam2", "t4", 0),
                     ("cam1", "t5", 1), ("cam1", "t6", 2), ("cam2", "t7", 0)]
        for cam, track, i in sightings:
            daemon.on_encoding({"camera_id": cam, "track_id": track, "frame_time": time.time(),
                                "descriptor": (templates[i] + 0.005).tolist(),
                                "crop_jpeg": messages.b64(b"\xff\xd8crop")})
        daemon.on_encoding({"camera_id": "cam1", "track_id": "t9", "frame_time": time.time(),  # a passer-by
                            "descriptor": rng.normal(size=128).astype(np.float32).tolist(), "crop_jpeg": ""})
        assert wait_for(lambda: len(delivered) == 7)
        plan = [("confirm", "arrested", ""), ("dismiss", "", "not the person"), ("confirm", "approached", ""),
                ("dismiss", "", "not the person"), ("dismiss", "", "poor image")]  # the last two stay open
        for alert, (decision, action, reason) in zip(delivered, plan, strict=False):
            adj = protocol.adjudication(alert_id=alert["alert_id"], box_id="box-a", decision=decision,
                                        action=action, reason=reason, operator="PC Smith", seconds_to_decision=9.5)
            store.decide([alert["alert_id"]], [adj])
        link.wake.set()
        # the last two name sightings of encounters decided already: the box refuses them (one decision each)
        assert wait_for(lambda: daemon.publisher.counts["adjudications_refused"] == 2)
        assert daemon.counts.adjudications == 3
    finally:
        link.stop()
        daemon.record("service_stop")
        daemon.publisher.stop()
        daemon.duties.stop({})
    res = verify_log(state)
    assert res.ok, res.summary()
    rep = report.build(res.records, datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    assert rep["alerts"]["total"] == daemon.counts.sightings == len(delivered) == 7
    assert daemon.counts.alerts == len({a["encounter_id"] for a in delivered}) == 3
    assert rep["alerts"]["per_camera"] == {"cam1": 4, "cam2": 3}
    # the 7 sightings are 3 encounters (one alert group per ref); the last decision on each counts, once
    assert rep["decisions"]["encounters"] == 3 and [r["encounters"] for r in rep["references"]] == [1, 1, 1]
    assert (rep["decisions"]["confirmed"], rep["decisions"]["dismissed"], rep["decisions"]["undecided"]) == (2, 1, 0)
    assert rep["false_alert_rate"] == {"false_alerts": 1, "decided": 3, "rate": 0.3333}
    assert rep["actions"] == {"approached": 1, "arrested": 1} and rep["decisions"]["reasons"] == {"not the person": 1}
    assert rep["time_to_decision_s"]["median"] == 9.5
    assert rep["consoles"]["connected"] >= 1
    (w,) = rep["watchlists"]
    assert w["refs"] == refs


def test_edge_run_on_video_leaves_a_verifiable_log_that_reports_its_alerts(tmp_path):
    """`edge run` on the Hamilton clip: the log verifies, and the report counts the alerts consoles got."""
    cfg, endpoint, state = hamilton_box(tmp_path)
    sub = Subscriber(endpoint, state)
    with running_daemon(cfg, "--duration", "14") as proc:
        sub.collect(30, until=lambda m: proc.poll() is not None)
        proc.wait(30)
    sub.collect(2)
    sub.close()
    r = subprocess.run(edge_cmd("audit", "verify", "--config", str(cfg)), capture_output=True, text=True)
    assert r.returncode == 0 and "OK" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(edge_cmd("audit", "report", "--config", str(cfg), "--format", "json"),
                       capture_output=True, text=True)
    rep = json.loads(r.stdout)
    alerts = sub.alerts()
    assert rep["alerts"]["total"] == len({a["alert_id"] for a in alerts}) >= 1
    assert rep["decisions"]["undecided"] == rep["decisions"]["encounters"] >= 1  # nobody decided
    assert rep["faces_processed"]["total"] > 0 and "cam-a" in rep["camera_uptime"]
    (wl,) = rep["watchlists"]
    assert wl["refs"] == [LIN_REF]
    records = verify_log(state).records
    assert [r["kind"] for r in records if r["kind"] in ("service_start", "service_stop")] == [
        "service_start", "service_stop"]


def test_camera_restarts_count_as_downtime_until_it_is_back(tmp_path):
    """The daemon records camera_back after a restarted camera process is up again (uptime is honest)."""
    from types import SimpleNamespace

    from edge import config
    from edge.pipeline.daemon import Daemon

    state = tmp_path / "state"
    cfg = config.parse(f'box_id = "box-a"\nstate_dir = "{state}"\n[[cameras]]\nid = "cam1"\nsource = "a.mp4"\n'
                       f'[alerts]\nendpoint = "tcp://127.0.0.1:{free_port()}"\n'
                       '[deployment]\nrequired = false\n')
    daemon = Daemon(cfg)
    daemon.publish = lambda msg: None
    daemon.prepare_state_dir()
    daemon.duties.start()
    cam = SimpleNamespace(cam=SimpleNamespace(id="cam1"), state="up")
    daemon.record("service_start", cameras=["cam1"])
    daemon.record("camera_fault", camera_id="cam1", reason="process exited (-9)")  # as the watchdog does
    cam.state = "restarting"
    daemon.on_camera_state(cam, "up", "")
    daemon.record("service_stop")
    kinds = [r["kind"] for r in verify_log(state).records if r["kind"].startswith("camera_")]
    assert kinds == ["camera_fault", "camera_back"]


def test_period_is_whole_days_shown_as_given_and_ends_now_by_default(day):
    from edge.audit.cli import period

    lo, hi = period("2026-11-20", "2026-11-20")
    assert (lo, hi) == (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))  # inclusive
    before = datetime.now(UTC)
    _, hi = period(None, None)
    assert before <= hi <= datetime.now(UTC)  # now, not now + 24 h
    js = CliRunner().invoke(cli, ["audit", "report", "--state-dir", str(day), "--from", "2026-11-20",
                                  "--to", "2026-11-20", "--format", "json"])
    rep = json.loads(js.output)
    assert (rep["period"]["from"], rep["period"]["to"]) == ("2026-11-20", "2026-11-20")
    assert rep["period"]["end"] == "2026-11-21T00:00:00Z"
    text = CliRunner().invoke(cli, ["audit", "report", "--state-dir", str(day), "--to", "2026-11-20"]).output
    assert "to 2026-11-20 (" in text.splitlines()[0] and "2026-11-21" in text.splitlines()[0]


def test_a_killed_box_is_downtime_not_uptime(tmp_path):
    state = tmp_path / "state"
    identity.create(state, "box-a")
    now = [T0]
    log = AuditLog(state, clock=lambda: now[0])
    for minute, kind in ((0, "service_start"), (50, "faces_processed"), (60, "service_start"), (100, "service_stop")):
        now[0] = T0 + minute * 60
        log.append(kind, **({"camera_id": "cam1", "faces": 1} if kind == "faces_processed" else {"cameras": ["cam1"]}
                             if kind == "service_start" else {}))
    log.close()
    rep = report.build(verify_log(state).records, datetime(2026, 11, 20, tzinfo=UTC),
                       datetime(2026, 11, 21, tzinfo=UTC))
    (gap,) = rep["downtime"]  # killed after minute 50, restarted at minute 60
    assert gap["seconds"] == 600 and "not shut down" in gap["cause"]
    assert rep["camera_uptime"]["cam1"]["uptime"] == round(90 / 100, 4)


def test_an_issuer_is_named_from_the_trust_store_when_the_log_names_none(tmp_path):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    state = tmp_path / "state"
    identity.create(state, "box-a")
    pub = tmp_path / "issuer.pub"
    pub.write_text(json.dumps(identity.issuer_public_doc(identity.raw_public(Ed25519PrivateKey.generate()),
                                                         "Met SPOC, Op Lantern")))
    kid = identity.add_issuer(state, pub)
    log = AuditLog(state)
    log.append("watchlist_loaded", issuer=kid, list_id="L-1", entries=1, refs=["WL-1"], categories=["wanted"])
    log.append("watchlist_refused", file="x.wlb", reason="bad signature", issuer=kid)
    log.close()
    rep = json.loads(CliRunner().invoke(cli, ["audit", "report", "--state-dir", str(state), "--format", "json"]).output)
    assert rep["watchlists"][0]["issuer_name"] == rep["refused"][0]["issuer_name"] == "Met SPOC, Op Lantern"


def test_the_report_of_an_export_off_the_box_equals_the_boxs_own(day, tmp_path):
    runner = CliRunner()
    exp = tmp_path / "nov.audit"
    assert runner.invoke(cli, ["audit", "export", "--state-dir", str(day), "-o", str(exp)]).exit_code == 0
    box = ["--from", "2026-11-20", "--to", "2026-11-20", "--format", "json"]
    mine = json.loads(runner.invoke(cli, ["audit", "report", "--state-dir", str(day), *box]).output)
    theirs = runner.invoke(cli, ["audit", "report", "--export", str(exp), "--box-key",
                                 str(day / "keys" / "box.pub.json"), *box])
    assert theirs.exit_code == 0, theirs.output
    theirs = json.loads(theirs.output)
    for key in ("watchlists", "encounters", "decisions", "deletion", "downtime", "camera_uptime", "references"):
        assert theirs[key] == mine[key], key
    r = runner.invoke(cli, ["audit", "report", "--export", str(exp)])
    assert r.exit_code != 0 and "--box-key" in r.output


def test_the_report_of_an_export_without_a_period_starts_at_its_first_record(day, tmp_path):
    """Without --from the period starts at the export's first record (found by mypy: it imported a
    parse_time that edge.audit.log no longer has, so this was an ImportError)."""
    runner = CliRunner()
    exp = tmp_path / "all.audit"
    assert runner.invoke(cli, ["audit", "export", "--state-dir", str(day), "-o", str(exp)]).exit_code == 0
    r = runner.invoke(cli, ["audit", "report", "--export", str(exp), "--box-key", str(day / "keys" / "box.pub.json"),
                            "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["period"]["from"].startswith("2026-11-20")


def test_a_big_lists_refs_recorded_in_parts_are_one_row(tmp_path):
    state = tmp_path / "state"
    identity.create(state, "box-a")
    log = AuditLog(state)
    refs = [f"R{i:05d}" for i in range(25000)]
    log.append("watchlist_entries", list_id="L-big", part=1, parts=2, refs=refs[:12500])
    log.append("watchlist_entries", list_id="L-big", part=2, parts=2, refs=refs[12500:])
    log.append("watchlist_loaded", issuer="k", list_id="L-big", entries=25000, refs_parts=2, categories=["wanted"])
    log.close()
    rep = report.build(verify_log(state).records, datetime(2020, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    (w,) = rep["watchlists"]
    assert w["refs"] == refs and len(rep["references"]) == 25000 and not rep["references"][0]["matched"]
