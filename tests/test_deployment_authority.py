"""Issue 25: one deployment, one authority. A list matches only under the window of its own deployment that
names it (id and hash); an ended deployment never comes back; an issuer can be removed, and its deployments
stop with receipts; `enrol authorise` refuses what it should not sign."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from test_deployment import authorise, load, make_list

from edge import deployment, identity
from edge.audit.verify import verify_log
from edge.cli import cli as edge_cli
from enrol.cli import cli as enrol_cli


def fmt(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture
def box(tmp_path):
    """A box (config + state) with a trusted SPOC, and that SPOC's list L-1 for 'Op Lantern'."""
    runner = CliRunner()
    keys, state = tmp_path / "spoc", tmp_path / "state"
    r = runner.invoke(enrol_cli, ["keygen", "--out", str(keys), "--name", "SPOC Met", "--no-passphrase"])
    assert r.exit_code == 0, r.output
    identity.create(state, "box-a")
    identity.publish_cameras(state, ["cam1", "cam2"])
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'box_id = "box-a"\nstate_dir = "{state}"\n[[cameras]]\nid = "cam1"\nsource = "a.mp4"\n'
                   f'[alerts]\ncontrol_endpoint = "ipc://{tmp_path}/none.sock"\n')
    r = runner.invoke(edge_cli, ["trust", "add-issuer", str(keys / "issuer.pub"), "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    make_list(keys, state, deployment_id="Op Lantern", list_id="L-1")
    return runner, keys, state, cfg


def now_window(runner, keys, state, out, name="Op Lantern", lists=("L-1",), hours=2, ok=True, **kw):
    now = datetime.now(UTC)
    return authorise(runner, keys, state, out, deployment_id=name, lists=lists, ok=ok,
                     start=fmt(now - timedelta(hours=1)), end=fmt(now + timedelta(hours=hours)), **kw)


def edge(runner, cfg, *args):
    r = runner.invoke(edge_cli, [*map(str, args), "--config", str(cfg)])
    assert "Traceback" not in r.output
    return r


def test_a_list_loads_only_under_the_window_of_its_own_deployment(box, tmp_path):
    runner, keys, state, cfg = box
    # another deployment's window, and one whose name only looks the same: the list is refused at load
    make_list(keys, state, deployment_id="op-beta", list_id="L-b", sequence=2)
    assert load(runner, state, now_window(runner, keys, state, tmp_path / "b.json", "op-beta", ("L-b",))).exit_code == 0
    r = edge(runner, cfg, "watchlist", "load", keys / "L-1.wlb")
    assert r.exit_code == 1 and "no deployment window on this box is for deployment 'Op Lantern'" in r.output
    make_list(keys, state, deployment_id="op-lantern", list_id="L-2", sequence=3)
    assert load(runner, state, now_window(runner, keys, state, tmp_path / "l.json", "op-lantern",
                                          ("L-2",))).exit_code == 0
    r = edge(runner, cfg, "watchlist", "load", keys / "L-1.wlb")
    assert r.exit_code == 1 and "is for deployment 'Op Lantern', not 'op-lantern'" in r.output
    (keys / "authorisations.jsonl").unlink()  # (signed elsewhere: the SPOC's register would refuse the look-alike)
    # its own window, naming another list: refused; naming it: loaded
    make_list(keys, state, deployment_id="Op Lantern", list_id="L-3", sequence=4)
    assert load(runner, state, now_window(runner, keys, state, tmp_path / "w.json", lists=("L-3",))).exit_code == 0
    r = edge(runner, cfg, "watchlist", "load", keys / "L-1.wlb")
    assert r.exit_code == 1 and "does not name list L-1" in r.output
    assert load(runner, state, now_window(runner, keys, state, tmp_path / "w2.json")).exit_code == 0
    r = edge(runner, cfg, "watchlist", "load", keys / "L-1.wlb")
    assert r.exit_code == 0, r.output
    refused = [r["data"]["reason"] for r in verify_log(state).records if r["kind"] == "watchlist_refused"]
    assert len(refused) == 3


def test_the_gate_matches_a_list_only_under_a_window_that_names_it(box, tmp_path):
    runner, keys, state, cfg = box
    assert load(runner, state, now_window(runner, keys, state, tmp_path / "w.json")).exit_code == 0
    in_force = ["L-1"]
    gate = deployment.Gate(state, ["cam1", "cam2"], list_id=lambda: in_force[0])
    assert gate.update() == {"cam1": "Op Lantern", "cam2": "Op Lantern"}
    in_force[0] = "L-other"  # a list the window does not name matches nowhere, from the moment it is in force
    assert not gate.allows("cam1") and gate.allowed == {"cam1": None, "cam2": None}


def test_authorise_refuses_a_list_of_another_deployment_an_ended_window_and_an_unknown_camera(box, tmp_path):
    runner, keys, state, cfg = box
    r = now_window(runner, keys, state, tmp_path / "x.json", "op-alpha", ok=False)
    assert r.exit_code == 1 and "--list L-1.wlb is for deployment 'Op Lantern', not 'op-alpha'" in r.output
    r = authorise(runner, keys, state, tmp_path / "x.json", deployment_id="Op Lantern", ok=False,
                  start=fmt(datetime.now(UTC) - timedelta(days=3)), end=fmt(datetime.now(UTC) - timedelta(days=2)))
    assert r.exit_code == 1 and "is in the past" in r.output
    r = now_window(runner, keys, state, tmp_path / "x.json", ok=False, extra_cameras=("entrnace",))
    assert r.exit_code == 1 and "camera 'entrnace' is not a camera of this box" in r.output
    assert not (tmp_path / "x.json").exists()
    now_window(runner, keys, state, tmp_path / "ok.json")  # the same register now holds 'Op Lantern'
    make_list(keys, state, deployment_id="OpLantern", list_id="L-typo", sequence=9)
    r = now_window(runner, keys, state, tmp_path / "t.json", "OpLantern", ("L-typo",), ok=False)
    assert r.exit_code == 1 and "looks like 'Op Lantern' in your register" in r.output


def test_an_ended_deployment_is_purged_with_a_receipt_and_never_revived(box, tmp_path):
    runner, keys, state, cfg = box
    long = now_window(runner, keys, state, tmp_path / "long.json", hours=8)
    assert load(runner, state, long).exit_code == 0
    assert edge(runner, cfg, "watchlist", "load", keys / "L-1.wlb").exit_code == 0
    # re-signed to end sooner: the later document supersedes, and the earlier, longer one is refused
    short = now_window(runner, keys, state, tmp_path / "short.json", hours=1)
    assert load(runner, state, short).exit_code == 0
    r = load(runner, state, long)
    assert r.exit_code == 1 and "is superseded by one issued" in r.output
    r = edge(runner, cfg, "deployment", "end", "Op Lantern", "--reason", " ")
    assert r.exit_code == 1 and "say why" in r.output
    r = edge(runner, cfg, "deployment", "end", "Op Lantern", "--reason", "operation stood down", "--who", "Insp Wood")
    assert r.exit_code == 0, r.output
    assert "ended by Insp Wood" in r.output and "list L-1 purged (1 entries): receipt signed" in r.output
    assert not (state / "watchlist" / "current.wlb").exists()
    for doc in (long, short):  # neither window revives it
        r = load(runner, state, doc)
        assert r.exit_code == 1 and ("superseded" in r.output or "cannot revive it" in r.output), r.output
    (st,) = json.loads(edge(runner, cfg, "deployment", "status", "--json").output)
    assert st["state"] == "stopped" and "Insp Wood" in st["stop_reason"]
    recs = verify_log(state).records
    (stop,) = [r["data"] for r in recs if r["kind"] == "deployment_stopped"]
    assert (stop["by"], stop["reason"], stop["ending"]) == ("Insp Wood", "operation stood down", "command")
    (purged,) = [r["data"] for r in recs if r["kind"] == "watchlist_purged"]
    assert purged["list_id"] == "L-1" and purged["reason"] == "deployment Op Lantern ended early"
    assert [r["kind"] for r in recs].index("deployment_stopped") < [r["kind"] for r in recs].index("watchlist_purged")
    r = edge(runner, cfg, "deployment", "end", "Op Lantern", "--reason", "again")
    assert r.exit_code == 1 and "already ended" in r.output


def test_trust_remove_stops_the_issuers_deployments_with_receipts(box, tmp_path):
    runner, keys, state, cfg = box
    assert load(runner, state, now_window(runner, keys, state, tmp_path / "w.json")).exit_code == 0
    assert edge(runner, cfg, "watchlist", "load", keys / "L-1.wlb").exit_code == 0
    kid = identity.key_id(identity.parse_issuer_key((keys / "issuer.pub").read_text()))
    out = edge(runner, cfg, "trust", "list").output
    assert f"issuer  {kid}  SPOC Met" in out
    r = edge(runner, cfg, "trust", "remove", "SPOC Met", "--reason", "key lost")
    assert r.exit_code == 0, r.output
    assert f"removed issuer {kid} (SPOC Met): key lost" in r.output and "list L-1 purged" in r.output
    assert kid not in edge(runner, cfg, "trust", "list").output and deployment.stored(state) == []
    assert not (state / "watchlist" / "current.wlb").exists()
    kinds = [r["kind"] for r in verify_log(state).records]
    assert kinds.index("trust_removed") < kinds.index("deployment_stopped") < kinds.index("watchlist_purged")
    identity.add_issuer(state, keys / "issuer.pub")  # trusted again: its old window still does not count
    assert deployment.stored(state)[0].stopped is not None
    r = edge(runner, cfg, "trust", "remove", "nobody", "--reason", "x")
    assert r.exit_code == 1 and "no trusted issuer or console" in r.output


def test_without_an_authority_reference_a_window_is_emergency_use_for_24_hours(box, tmp_path):
    runner, keys, state, cfg = box
    start = datetime.now(UTC) - timedelta(hours=25)
    doc = authorise(runner, keys, state, tmp_path / "e.json", deployment_id="Op Lantern",
                    start=fmt(start), end=fmt(start + timedelta(days=2)))
    assert load(runner, state, doc).exit_code == 0
    (dep,) = deployment.stored(state, require_ref=True)
    assert dep.until == start.replace(microsecond=0) + timedelta(hours=24) and not dep.live(datetime.now(UTC))
    assert deployment.stored(state)[0].live(datetime.now(UTC))  # where no reference is required it runs
    with_ref = authorise(runner, keys, state, tmp_path / "r.json", "--authority-ref", "MPS-2026-0412",
                         deployment_id="Op Lantern", start=fmt(start), end=fmt(start + timedelta(days=2)))
    assert load(runner, state, with_ref).exit_code == 0
    (dep,) = deployment.stored(state, require_ref=True)
    assert dep.live(datetime.now(UTC)) and dep.authority_ref == "MPS-2026-0412"


def test_emergency_use_is_an_alarm_on_the_console(box, tmp_path):
    from edge.console import alarms
    from edge.console.link import _matching

    runner, keys, state, cfg = box
    now = datetime.now(UTC)
    assert load(runner, state, now_window(runner, keys, state, tmp_path / "e.json", hours=30)).exit_code == 0
    gate = deployment.Gate(state, ["cam1"], require_ref=True)
    assert gate.update() == {"cam1": "Op Lantern"}  # runs, for now: emergency use
    (note,) = gate.emergency_notes()
    assert note == f"Op Lantern stops at {fmt(now + timedelta(hours=23))}"  # 24 h after its start
    status = {"matching": {"on": True, "list_id": "L-1", "entries": 1, "emergency": gate.emergency_notes()}}
    link = {"box_id": "box-a", "state": "connected", "cameras": {}, "matching": _matching(status)}
    (alarm,) = [b for b in alarms.banners([link]) if "EMERGENCY" in b["text"]]
    assert alarm["level"] == "alarm" and "without a prior authorisation reference" in alarm["text"]


def test_the_log_is_kept_at_least_six_months(box, tmp_path):
    runner, keys, state, cfg = box
    cfg.write_text(cfg.read_text() + "[audit]\nretention_days = 30\n")
    r = edge(runner, cfg, "audit", "retention")
    assert r.exit_code == 1 and "audit.retention_days: must be at least 183" in r.output
    cfg.write_text(cfg.read_text().replace("retention_days = 30", "retention_days = 400"))
    assert edge(runner, cfg, "audit", "retention").exit_code == 0


def test_a_lapsed_emergency_use_stops_matching_and_purges_its_list_in_the_daemon(box, tmp_path):
    """[deployment] require_authority_ref: 24 h after its start, a window without a reference closes its run and
    the daemon purges its list with a receipt (the window itself still runs to its end elsewhere)."""
    from edge import config
    from edge.pipeline.daemon import Daemon

    runner, keys, state, cfg = box
    assert load(runner, state, now_window(runner, keys, state, tmp_path / "e.json", hours=30)).exit_code == 0
    assert edge(runner, cfg, "watchlist", "load", keys / "L-1.wlb").exit_code == 0
    from conftest import free_port

    text = cfg.read_text().replace("[alerts]\n", f'[alerts]\nendpoint = "tcp://127.0.0.1:{free_port()}"\n')
    daemon = Daemon(config.parse(text + "[deployment]\nrequire_authority_ref = true\n"))
    daemon.prepare_state_dir()
    daemon.duties.start()
    daemon.open_channel()
    daemon.start_watchlist_service()
    try:
        assert daemon.duties.allows("cam1") and daemon.matching_status()["emergency"]
        later = datetime.now(UTC).timestamp() + 24 * 3600
        daemon.duties.clock = daemon.duties.gate.clock = lambda: later
        daemon.duties.tick({}, reload=True)
        assert not daemon.duties.allows("cam1") and daemon.matcher.current is None
    finally:
        daemon.watchlist.stop()
        daemon.publisher.stop()
        daemon.duties.stop({})
    recs = verify_log(state).records
    (end,) = [r["data"] for r in recs if r["kind"] == "deployment_end" and r["data"]["reason"] != "service stopped"]
    assert end["reason"].startswith("emergency use without an authority reference lapsed")
    (purged,) = [r["data"] for r in recs if r["kind"] == "watchlist_purged"]
    assert purged["list_id"] == "L-1" and purged["reason"] == "deployment Op Lantern ended early"
