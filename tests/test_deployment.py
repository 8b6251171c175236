"""Deployment authorisation: signed windows, refused forgeries, matching allowed only inside the window."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from edge import deployment, identity
from edge.audit.log import AuditLog
from edge.audit.verify import verify_log
from edge.cli import cli as edge_cli
from edge.errors import EdgeError
from enrol.cli import cli as enrol_cli

# a window in the future, so a test run on any day can still load it (the spec vector keeps its own dates)
START, END = "2036-12-01T08:00Z", "2036-12-01T20:00Z"
T_START = datetime(2036, 12, 1, 8, tzinfo=UTC).timestamp()


@pytest.fixture
def setup(tmp_path):
    runner = CliRunner()
    keys = tmp_path / "spoc"
    r = runner.invoke(enrol_cli, ["keygen", "--out", str(keys), "--name", "SPOC Met", "--no-passphrase"])
    assert r.exit_code == 0, r.output
    state = tmp_path / "state"
    identity.create(state, "box-a")
    identity.publish_cameras(state, ["cam1", "cam2", "cam3"])
    identity.add_issuer(state, keys / "issuer.pub")
    make_list(keys, state)
    return runner, keys, state


def make_list(keys, state, deployment_id="op-lantern", list_id="L-1", sequence=1, box_id="box-a", **kw):
    """A real bundle signed by the SPOC key in ``keys``, for box-a (``keys/<list_id>.wlb``)."""
    from wlhelpers import make_bundle

    from enrol.keys import load_issuer_private

    path = keys / f"{list_id}.wlb"
    path.write_bytes(make_bundle(load_issuer_private(keys / "issuer.key"), identity.load(state).wl_public,
                                 list_id=list_id, sequence=sequence,
                                 header={"deployment": deployment_id, "box_id": box_id}, **kw))
    return path


def authorise(runner, keys, state, out, *extra, box=("--for",), lists=("L-1",), ok=True,
              deployment_id="op-lantern", start=START, end=END, extra_cameras=()):
    args = ["authorise", "--issuer-key", str(keys / "issuer.key"), "--deployment", deployment_id,
            "--location", "King's Cross, north exit", "--camera", "cam1", "--camera", "cam2",
            "--start", start, "--end", end, "--purpose", "locate wanted persons", "-o", str(out), *extra]
    args += [a for c in extra_cameras for a in ("--camera", c)]
    args += [a for lid in lists for a in ("--list", str(keys.parent / "spoc" / f"{lid}.wlb"))]
    if box == ("--for",):
        args += ["--for", str(state / "keys" / "box.pub.json")]
    r = runner.invoke(enrol_cli, args)
    if not ok:
        return r
    assert r.exit_code == 0, r.output
    return out


def load(runner, state, path):
    return runner.invoke(edge_cli, ["deployment", "load", str(path), "--state-dir", str(state)])


def test_authorise_load_and_status(setup, tmp_path, monkeypatch):
    runner, keys, state = setup
    doc = authorise(runner, keys, state, tmp_path / "dep.json")
    r = load(runner, state, doc)
    assert r.exit_code == 0, r.output
    assert "op-lantern loaded" in r.output and "authorised by SPOC Met" in r.output
    (issued,) = [json.loads(ln) for ln in (keys / "authorisations.jsonl").read_text().splitlines()]
    assert issued["deployment_id"] == "op-lantern" and issued["box_id"] == "box-a"  # the SPOC's own record
    st = runner.invoke(edge_cli, ["deployment", "status", "--state-dir", str(state), "--json"])
    (d,) = json.loads(st.output)
    assert d["cameras"] == ["cam1", "cam2"] and d["location"] == "King's Cross, north exit"
    assert d["state"] in ("upcoming", "active", "ended")
    res = verify_log(state)
    assert res.ok
    (rec,) = [r["data"] for r in res.records if r["kind"] == "deployment_loaded"]
    assert rec["issuer"] == "SPOC Met" and rec["purpose"] == "locate wanted persons"


@pytest.mark.parametrize("tamper, message", [
    (lambda d: d.update(location="anywhere"), "signature does not verify"),
    (lambda d: d.update(end="2036-12-09T20:00:00Z"), "signature does not verify"),
    (lambda d: d["cameras"].append("cam9"), "signature does not verify"),
    (lambda d: d.update(box_id="box-b"), "signature does not verify"),
    (lambda d: d.update(type="something-else"), "not a deployment authorisation"),
    (lambda d: d.update(v=1), "version 1 deployment window, which names no watch list"),
    (lambda d: d["lists"][0].update(sha256="0" * 64), "signature does not verify"),
])
def test_altered_documents_are_refused_and_logged(setup, tmp_path, tamper, message):
    runner, keys, state = setup
    path = authorise(runner, keys, state, tmp_path / "dep.json")
    doc = json.loads(path.read_text())
    tamper(doc)
    path.write_text(json.dumps(doc))
    r = load(runner, state, path)
    assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output
    assert deployment.stored(state) == []
    kinds = [r["kind"] for r in verify_log(state).records]
    assert "deployment_refused" in kinds and "deployment_loaded" not in kinds


def test_untrusted_issuer_and_other_box_are_refused(setup, tmp_path):
    runner, keys, state = setup
    other = tmp_path / "other"
    runner.invoke(enrol_cli, ["keygen", "--out", str(other), "--no-passphrase"])
    r = authorise(runner, other, state, tmp_path / "rogue.json", ok=False)  # keys/L-1.wlb is not its list
    assert r.exit_code == 1 and "--list L-1.wlb" in r.output and "Traceback" not in r.output
    make_list(other, state, list_id="L-9")
    (other / "L-9.wlb").replace(keys / "L-9.wlb")
    path = authorise(runner, other, state, tmp_path / "rogue.json", lists=("L-9",))
    r = load(runner, state, path)
    assert r.exit_code == 1 and "does not trust" in r.output
    make_list(keys, state, list_id="L-b", box_id="box-b")
    path = authorise(runner, keys, state, tmp_path / "b.json", "--box-id", "box-b", box=(), lists=("L-b",))
    r = load(runner, state, path)
    assert r.exit_code == 1 and "for box 'box-b', not this box" in r.output


def test_gate_allows_matching_only_inside_the_window(setup, tmp_path):
    runner, keys, state = setup
    dep = deployment.load(state, authorise(runner, keys, state, tmp_path / "dep.json"),
                          now=datetime(2036, 11, 30, tzinfo=UTC))
    assert dep.is_active(datetime(2036, 12, 1, 9, tzinfo=UTC), "cam1")
    assert not dep.is_active(datetime(2036, 12, 1, 9, tzinfo=UTC), "cam3")
    now = [T_START - 3600]
    log = AuditLog(state, clock=lambda: now[0])
    gate = deployment.Gate(state, ["cam1", "cam2", "cam3"], record=log.append, clock=lambda: now[0], reload_s=0)
    assert gate.update() == {"cam1": None, "cam2": None, "cam3": None}  # before the window: no matching
    now[0] = T_START + 60
    assert gate.update() == {"cam1": "op-lantern", "cam2": "op-lantern", "cam3": None}
    assert gate.allows("cam1") and not gate.allows("cam3")
    now[0] = T_START + 12 * 3600  # the end is exclusive
    assert gate.update() == {"cam1": None, "cam2": None, "cam3": None}
    log.close()
    recs = [r for r in verify_log(state).records if r["kind"].startswith("deployment_")]
    assert [r["kind"] for r in recs] == ["deployment_start", "deployment_end"]
    assert recs[0]["data"]["cameras"] == ["cam1", "cam2"] and recs[1]["data"]["reason"] == "window closed"


def test_expired_or_overlong_windows_are_refused(setup, tmp_path):
    runner, keys, state = setup
    with pytest.raises(EdgeError, match="ended"):
        deployment.load(state, authorise(runner, keys, state, tmp_path / "d.json"),
                        now=datetime(2036, 12, 2, tzinfo=UTC))
    r = authorise(runner, keys, state, tmp_path / "long.json", end="2037-02-01T00:00Z", ok=False)
    assert r.exit_code == 1 and "at most 31 days" in r.output


def test_spec_vector():
    """The document in docs/deployment-format.md verifies with the documented issuer key."""
    import base64
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "deployment-format.md").read_text()
    v2, v1 = (json.loads(m) for m in re.findall(r"```json\n(.*?)```", text, re.S))
    vectors = Path(__file__).parent / "data" / "vectors"
    assert v2 == json.loads((vectors / "deployment-v2.json").read_text())  # the files are the page's documents
    assert v1 == json.loads((vectors / "deployment-v1.json").read_text())
    pub = base64.b64decode("Kay64UG8yvCyLhqU000LxzYeUm0L/hLIl5S8kyKWbdc=")
    issuers = {identity.key_id(pub): pub}
    dep = deployment.verify(v2, issuers, "box-test")
    assert dep.is_active(datetime(2026, 12, 1, 19, 59, tzinfo=UTC), "cam2") and dep.authorises("3f2a9c1b77d0e4a5")
    assert dep.authority_ref == "MPS-LFR-2026-0412"
    with pytest.raises(EdgeError, match="signature"):
        deployment.verify(dict(v2, purpose="anything"), issuers)
    with pytest.raises(EdgeError, match="^this is a version 1 deployment window, which names no watch list"):
        deployment.verify(v1, issuers)  # the old version: refused in one sentence, never misread
    with pytest.raises(EdgeError, match="signature"):  # relabelled: v1 fields plus lists, claiming v2
        deployment.verify(dict(v1, v=2, lists=v2["lists"], authority_ref=""), issuers)


def test_daemon_duties_switch_encoding_with_the_window_and_count_faces(setup, tmp_path):
    import threading
    from types import SimpleNamespace

    from edge import config
    from edge.audit.report import build
    from edge.pipeline.duties import Duties

    runner, keys, state = setup
    deployment.load(state, authorise(runner, keys, state, tmp_path / "dep.json"),
                    now=datetime(2036, 11, 30, tzinfo=UTC))
    cfg = config.parse(f'box_id = "box-a"\nstate_dir = "{state}"\n[[cameras]]\nid = "cam1"\nsource = "a.mp4"\n'
                       '[[cameras]]\nid = "cam3"\nsource = "b.mp4"\n')
    now = [T_START - 600]
    events = []
    duties = Duties(cfg, publish=events.append, clock=lambda: now[0], require_deployment=True, faces_every=60)
    cams = {c: SimpleNamespace(stats={}, encode_allowed=threading.Event()) for c in ("cam1", "cam3")}
    duties.start()
    duties.tick(cams)
    assert not cams["cam1"].encode_allowed.is_set() and not duties.allows("cam1")  # before the window
    cams["cam1"].stats = {"faces": 40, "not_authorised": 40}
    now[0] = T_START + 1
    duties.tick(cams)
    assert cams["cam1"].encode_allowed.is_set() and duties.allows("cam1")
    assert not cams["cam3"].encode_allowed.is_set() and not duties.allows("cam3")  # not in the authorisation
    cams["cam1"].stats = {"faces": 100, "encodes": 20, "not_authorised": 40}
    now[0] = T_START + 12 * 3600 + 1
    duties.tick(cams)
    assert not cams["cam1"].encode_allowed.is_set()
    duties.stop(cams)
    assert [(e["event"], e["camera_id"]) for e in events if e["event"] != "audit_checkpoint"] == [
        ("not_authorised", "cam1"), ("not_authorised", "cam3"), ("authorised", "cam1"), ("not_authorised", "cam1")]
    assert any(e["event"] == "audit_checkpoint" for e in events)  # the consoles witness the log's head
    res = verify_log(state)
    assert res.ok, res.summary()
    kinds = [r["kind"] for r in res.records]
    assert kinds.count("deployment_start") == 1 and kinds.count("deployment_end") == 1
    assert "config_changed" in kinds
    rep = build(res.records, datetime(2036, 11, 1, tzinfo=UTC), datetime(2036, 12, 2, tzinfo=UTC))
    assert rep["faces_processed"]["total"] == 100 and rep["faces_processed"]["not_authorised"] == 40
    assert rep["faces_processed"]["encodings"] == 20


def test_the_daemon_matches_only_inside_a_window_and_logs_it(setup, tmp_path):
    """Daemon + real alert channel: outside a window a matching face raises no alert; inside, it does."""
    from datetime import timedelta

    import numpy as np
    from conftest import free_port

    from edge import config
    from edge.alerts import messages
    from edge.pipeline.daemon import Daemon
    from edge.watchlist.base import Entry, WatchList

    runner, keys, state = setup
    cfg = config.parse(f'box_id = "box-a"\nstate_dir = "{state}"\n[[cameras]]\nid = "cam1"\nsource = "a.mp4"\n'
                       f'[alerts]\nendpoint = "tcp://127.0.0.1:{free_port()}"\n')
    daemon = Daemon(cfg)
    daemon.duties.require = True  # what [deployment] required = true in the config sets
    daemon.prepare_state_dir()
    daemon.duties.start()
    daemon.open_channel()
    template = np.random.default_rng(3).normal(size=128).astype(np.float32)
    template /= np.linalg.norm(template) * 2
    daemon.matcher.swap(WatchList("L-1", [Entry("WL-1", "wanted")], template[None, :], np.array([0])))

    def seen(track):
        daemon.on_encoding({"camera_id": "cam1", "track_id": track, "frame_time": 0.0,
                            "descriptor": (template + 0.005).tolist(), "crop_jpeg": messages.b64(b"\xff\xd8")})

    try:
        seen("t1")
        assert daemon.counts.alerts == 0 and daemon.counts.not_authorised == 1
        now = datetime.now(UTC)
        make_list(keys, state, deployment_id="op-now", list_id="L-1")  # the list in force names its deployment
        authorise(runner, keys, state, tmp_path / "now.json", deployment_id="op-now",
                  start=deployment.fmt_time(now - timedelta(hours=1)),
                  end=deployment.fmt_time(now + timedelta(hours=1)))
        assert load(runner, state, tmp_path / "now.json").exit_code == 0
        daemon.duties.tick({}, reload=True)
        seen("t2")
        assert daemon.counts.alerts == 1
        assert daemon.status_command({})["deployment"]["authorised"] == {"cam1": "op-now"}
    finally:
        daemon.record("service_stop")
        daemon.publisher.stop()
        daemon.duties.stop({})
    res = verify_log(state)
    assert res.ok, res.summary()
    kinds = [r["kind"] for r in res.records if r["kind"] != "checkpoint"]
    assert kinds.index("deployment_loaded") < kinds.index("deployment_start") < kinds.index("alert")
    assert kinds.count("alert") == 1


def test_a_damaged_stored_deployment_is_reported_not_skipped_without_a_word(setup, tmp_path, caplog):
    """A stored window that no longer verifies (a damaged file, or a changed one) used to vanish from the
    list in silence: `edge deployment status`, `edge doctor` and the daemon's gate (a warning, once) say so."""
    from edge import doctor

    runner, keys, state = setup
    assert load(runner, state, authorise(runner, keys, state, tmp_path / "dep.json")).exit_code == 0
    stored = state / "deployments" / "op-lantern.json"
    assert stored.exists()
    doc = json.loads(stored.read_text())
    (state / "deployments" / "op-altered.json").write_text(json.dumps(dict(doc, location="anywhere")))
    (state / "deployments" / "op-torn.json").write_text(stored.read_text()[:40])
    st = runner.invoke(edge_cli, ["deployment", "status", "--state-dir", str(state)])
    assert st.exit_code == 0, st.output
    assert f"DAMAGED  stored deployment {state / 'deployments' / 'op-altered.json'} does not count: " in st.output
    assert "signature does not verify" in st.output and "op-torn.json does not count" in st.output
    assert "op-lantern" in st.output and "Traceback" not in st.output  # the good one still counts
    rows = list(doctor.check_deployment(state, datetime(2036, 12, 1, 9, tzinfo=UTC)))
    assert [ok for _, ok, why in rows if "op-torn.json" in why] == [False]
    assert any(ok is True and "op-lantern open until" in why for _, ok, why in rows)
    caplog.set_level("WARNING", logger="edge")
    gate = deployment.Gate(state, ["cam1"], clock=lambda: T_START + 60)
    for _ in range(3):
        gate.update(reload=True)
    warned = [r.getMessage() for r in caplog.records if "does not count" in r.getMessage()]
    assert len(warned) == 2 and gate.allows("cam1")  # once per file, however often it is read


def test_a_window_can_require_two_people_to_verify_each_confirmation(setup, tmp_path):
    """Issue 26: `enrol authorise --verification two` signs the two-person rule into the window; while it is
    open the box's rule is "two" whatever its own config (edge/pipeline/duties.py asks the gate), and the rule
    cannot be taken out of a signed window."""
    runner, keys, state = setup
    path = authorise(runner, keys, state, tmp_path / "dep.json", "--verification", "two")
    assert json.loads(path.read_text())["verification"] == "two"
    assert load(runner, state, path).exit_code == 0
    gate = deployment.Gate(state, ["cam1", "cam2"], clock=lambda: T_START + 60, reload_s=0)
    gate.update()
    assert [d.verification for d in gate.current.values()] == ["two"]
    (rec,) = [r["data"] for r in verify_log(state).records if r["kind"] == "deployment_loaded"]
    assert rec["verification"] == "two"
    doc = json.loads(path.read_text())
    del doc["verification"]  # the SPOC's rule cannot be dropped on the way
    path.write_text(json.dumps(doc))
    r = load(runner, state, path)
    assert r.exit_code == 1 and "signature does not verify" in r.output
