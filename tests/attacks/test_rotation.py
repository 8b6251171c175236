"""Witnesses and key rotation (issue 24, item 4): a console's witness proves records are missing whatever key
the box signs with now (a rollback followed by `edge provision --rotate`, or a wiped and re-provisioned box),
and a legitimate rotation verifies with the original box.pub.json oversight holds."""

from __future__ import annotations

import json
import shutil

import pytest
import zmq
from click.testing import CliRunner
from conftest import HAMILTON, free_port
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import identity
from edge.audit.log import AuditLog
from edge.cli import cli


def _edge(*args) -> tuple[int, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.output


def _provision(tmp, *extra, box_id: str = "ldn-kx-01") -> tuple[object, object]:
    cfg, state = tmp / "etc" / "edge.toml", tmp / "state"
    issuer = tmp / "issuer.pub"
    if not issuer.exists():
        issuer.write_text(json.dumps(identity.issuer_public_doc(identity.raw_public(Ed25519PrivateKey.generate()))))
        (tmp / "console.pub").write_bytes(zmq.curve_keypair()[0] + b"\n")
    code, out = _edge("provision", "--box-id", box_id, "--config", cfg, "--state-dir", state,
                      "--issuer-key", issuer, "--console-key", tmp / "console.pub",
                      "--alerts-endpoint", f"tcp://127.0.0.1:{free_port()}", "--camera", f"entrance={HAMILTON}",
                      *extra)
    assert code == 0, out
    return cfg, state


def _alerts(state, n: int) -> None:
    log = AuditLog(state)
    for i in range(n):
        log.append("alert", alert_id=f"a{i}", camera_id="entrance", time="2026-12-01T08:00:00Z", ref="WL-1",
                   distance=0.4)
    log.checkpoint()


def _witness(state, tmp) -> object:
    """What a console kept: the newest checkpoint the box sent it (`edge console witness -o FILE`)."""
    head = json.loads((state / "audit" / "audit.head").read_bytes())
    w = tmp / "witness.json"
    w.write_text(json.dumps({"type": "edge-audit-witness", "v": 1, "witnesses": [
        {"console": "ops-room", "box_id": "ldn-kx-01", "checkpoint": head}]}))
    return w


@pytest.fixture
def box(tmp_path):
    """A provisioned box: its original public identity (what oversight holds), a copy of its log taken early
    (what an attacker puts back), then 30 more records a console witnessed."""
    cfg, state = _provision(tmp_path)
    shutil.copy(state / "keys" / "box.pub.json", tmp_path / "original.pub.json")
    _alerts(state, 3)
    shutil.copytree(state / "audit", tmp_path / "backup")
    _alerts(state, 30)
    return cfg, state, _witness(state, tmp_path)


@pytest.mark.parametrize("key", ["the box's key now", "the original box.pub.json"])
def test_a_rollback_then_a_key_rotation_is_still_caught_by_the_witness(box, tmp_path, key):
    cfg, state, witness = box
    shutil.rmtree(state / "audit")
    shutil.copytree(tmp_path / "backup", state / "audit")
    (state / "audit.anchor").unlink()
    _provision(tmp_path, "--rotate")  # new keys: the rolled-back log is now signed by a key the console never saw
    extra = ["--box-key", tmp_path / "original.pub.json"] if key.startswith("the original") else []
    code, out = _edge("audit", "verify", "--state-dir", state, "--witness", witness, *extra)
    assert code == 1 and "BROKEN" in out, out


@pytest.mark.parametrize("how", ["wiped and re-provisioned", "log deleted and keys rotated"])
def test_a_replaced_log_is_caught_by_the_witness(box, tmp_path, how):
    cfg, state, witness = box
    if how.startswith("wiped"):
        shutil.rmtree(state)
        _provision(tmp_path)
    else:
        shutil.rmtree(state / "audit")
        (state / "audit.anchor").unlink()
        _provision(tmp_path, "--rotate")
    code, out = _edge("audit", "verify", "--state-dir", state, "--witness", witness)
    assert code == 1 and "BROKEN" in out, out


@pytest.mark.parametrize("more", [0, 60])
def test_a_legitimate_rotation_verifies_with_the_original_box_key(box, tmp_path, more):
    cfg, state, witness = box
    _provision(tmp_path, "--rotate")
    _alerts(state, more)
    for extra in ([], ["--witness", witness]):
        code, out = _edge("audit", "verify", "--state-dir", state, "--box-key", tmp_path / "original.pub.json",
                          *extra)
        assert code == 0 and out.startswith(f"audit log {state}") and ": OK:" in out, out


def test_renaming_the_box_is_recorded_and_reconciles(tmp_path):
    """`edge provision --box-id NEW` on a provisioned box: the rename is a record, and a list issued under the
    old name is still the box's own when the register is reconciled (no false "neither loaded nor refused")."""
    from enrol.cli import cli as enrol_cli

    cfg, state = _provision(tmp_path)
    log = AuditLog(state)
    log.append("watchlist_loaded", issuer="k1", list_id="L-1", entries=1, refs=["WL-1"], bundle_sha256="a" * 64)
    log.close()
    _provision(tmp_path, box_id="ldn-kx-02")
    code, out = _edge("audit", "report", "--state-dir", state, "--format", "json", "-o", tmp_path / "rep.json")
    assert code == 0, out
    rep = json.loads((tmp_path / "rep.json").read_text())
    (tmp_path / "reg.jsonl").write_text(json.dumps({"list_id": "L-1", "box_id": "ldn-kx-01", "issuer": "k1",
                                                    "bundle_sha256": "a" * 64, "refs": ["WL-1"]}) + "\n")
    r = CliRunner().invoke(enrol_cli, ["reconcile", str(tmp_path / "reg.jsonl"), str(tmp_path / "rep.json")])
    assert "neither loaded nor refused" not in r.output and "1 loaded" in r.output, r.output
    assert any('"kind":"box_renamed"' in ln for ln in (state / "audit" / "audit.log").read_text().splitlines())
    assert rep["box_id"] == "ldn-kx-02"
