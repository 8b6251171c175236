"""Hostile edits of the audit log (issue 15, item 3): a log cut back to an earlier checkpoint, rolled
back together with its head (and anchor), emptied or deleted on a provisioned box is reported as
tampered, naming what is missing. The console's witness catches what the box alone cannot."""

from __future__ import annotations

import json
import shutil
import time

import pytest
from audithelpers import edit, log_lines, rewrite_chain, write_log
from click.testing import CliRunner
from conftest import free_port

from attacks.hostile import Box
from edge import identity
from edge.alerts.publisher import Channel
from edge.audit.log import AuditLog
from edge.audit.verify import verify_log
from edge.cli import cli
from edge.console import keys
from edge.console.link import BoxLink
from edge.console.store import Store
from edge.pipeline.duties import Duties


def _alerts(log: AuditLog, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        log.append("alert", alert_id=f"a{i}", camera_id="cam1", time="2026-11-22T06:00:00Z", ref="WL-1",
                   distance=0.41)


@pytest.fixture
def box(tmp_path):
    """A provisioned box with 12 alerts and checkpoints every 5 records; ``old``: a copy taken at seq 6."""
    state = tmp_path / "state"
    identity.create(state, "box-a")
    log = AuditLog(state, checkpoint_every=5, checkpoint_interval=1e9)
    _alerts(log, 5)  # seq 1..5, checkpoint seq 6
    old = tmp_path / "old"
    old.mkdir()
    _copy(state, old)
    _alerts(log, 7, 5)
    log.close()
    assert verify_log(state).ok
    return state, old


def _copy(src, dest):
    """The log, its head and the box's anchor, as a backup an attacker could put back."""
    shutil.rmtree(dest / "audit", ignore_errors=True)
    shutil.copytree(src / "audit", dest / "audit")
    if (src / "audit.anchor").exists():
        shutil.copy(src / "audit.anchor", dest / "audit.anchor")


def _tampered(state, *words, witnesses=()):
    res = verify_log(state, witnesses=witnesses)
    assert not res.ok, "verify said OK"
    text = " ".join(p.message for p in res.problems)
    for w in words:
        assert w in text, text
    return res


def test_cut_back_to_an_earlier_checkpoint_with_the_head_deleted(box):
    state, _ = box
    write_log(state, log_lines(state)[:6])  # ends with checkpoint seq 6
    (state / "audit" / "audit.head").unlink()
    _tampered(state, "seq")


def test_cut_back_with_head_and_anchor_deleted_is_still_named(box):
    state, _ = box
    write_log(state, log_lines(state)[:6])
    (state / "audit" / "audit.head").unlink()
    (state / "audit.anchor").unlink()
    _tampered(state, "head file")


def test_log_and_head_rolled_back_together(box):
    state, old = box
    shutil.rmtree(state / "audit")
    shutil.copytree(old / "audit", state / "audit")  # the anchor outside audit/ is left as it is
    _tampered(state, "ends at seq 6", "anchor", "seqs 7..")


@pytest.mark.parametrize("how", ["emptied", "deleted", "deleted with head and anchor"])
def test_log_removed_on_a_provisioned_box(box, how):
    state, _ = box
    path = state / "audit" / "audit.log"
    if how == "emptied":
        path.write_bytes(b"")
    else:
        path.unlink()
    if how.endswith("anchor"):
        (state / "audit" / "audit.head").unlink()
        (state / "audit.anchor").unlink(missing_ok=True)
    _tampered(state, "audit log", "provisioned")


def test_log_head_and_anchor_rolled_back_together_are_caught_by_the_witness(box, tmp_path):
    state, old = box
    head = json.loads((state / "audit" / "audit.head").read_bytes())
    wfile = tmp_path / "witness.json"
    wfile.write_text(json.dumps({"type": "edge-audit-witness", "v": 1, "witnesses": [
        {"console": "ops-room", "box_id": "box-a", "checkpoint": head}]}))
    _copy(old, state)
    r = CliRunner().invoke(cli, ["audit", "verify", "--state-dir", str(state), "--witness", str(wfile)])
    assert r.exit_code == 1 and "BROKEN" in r.output and "witnessed by console ops-room" in r.output, r.output


def test_a_forged_witness_is_ignored_not_believed(box, tmp_path):
    state, _ = box
    head = json.loads((state / "audit" / "audit.head").read_bytes())
    head["seq"] = 999  # no longer matches its signature
    res = verify_log(state, witnesses=[{"console": "x", "checkpoint": head}])
    assert res.ok and any("not signed by this box key" in w for w in res.warnings)


# --- attacks that already held: they must keep holding ---------------------------------------------

HELD = {
    "edited record": edit,
    "rewritten chain with recomputed hashes": rewrite_chain,
    "deleted record": lambda s: write_log(s, [ln for i, ln in enumerate(log_lines(s)) if i != 6]),
    "reordered records": lambda s: write_log(s, (lambda ls: ls[:2] + [ls[3], ls[2]] + ls[4:])(log_lines(s))),
    "duplicated record": lambda s: write_log(s, (lambda ls: ls + [ls[4]])(log_lines(s))),
    "torn last line": lambda s: (s / "audit" / "audit.log").write_bytes((s / "audit" / "audit.log").read_bytes()[:-30]),
    "whole records cut with the head present": lambda s: write_log(s, log_lines(s)[:-4]),
    "garbage line": lambda s: write_log(s, log_lines(s)[:5] + [b"{not json"] + log_lines(s)[5:]),
    "deeply nested line": lambda s: write_log(s, log_lines(s) + [b"[" * 100000 + b"]" * 100000]),
}


@pytest.mark.parametrize("case", list(HELD))
def test_edits_stay_detected(box, case):
    state, _ = box
    HELD[case](state)
    assert not verify_log(state).ok


# --- the witness, end to end: box checkpoints reach a real console over the real channel ------------

def test_checkpoints_reach_the_console_and_its_witness_file_catches_a_rollback(tmp_path):
    box = Box(tmp_path, box_id="box-w")
    ident = box.ident
    ch = Channel(f"tcp://127.0.0.1:{free_port()}", box.state, ident.curve_public, ident.curve_secret, "box-w")
    ch.start()
    duties = Duties(box.cfg, publish=ch.publish, require_deployment=False)
    duties.start()
    data = tmp_path / "console"
    identity.add_console(box.state, keys.keygen(data))
    store = Store(data / "console.db")
    link = BoxLink(ch.endpoint, ident.curve_public, keys.load(data), store)
    link.start()
    try:
        old = tmp_path / "old"
        duties.log.checkpoint()
        _copy(box.state, old)
        for i in range(60):
            duties.record("faces_processed", camera_id="cam1", faces=i)
        duties.log.checkpoint()
        newest = duties.log.head()["seq"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (store.witnesses() and
                                                   store.witnesses()[0]["checkpoint"]["seq"] == newest):
            time.sleep(0.1)
        assert store.witnesses() and store.witnesses()[0]["checkpoint"]["seq"] == newest
        assert not [e for e in store.events(50) if e["event"] == "audit_checkpoint"]  # not in the operator's list
    finally:
        link.stop()
        ch.stop()
    wfile = tmp_path / "w.json"
    r = CliRunner().invoke(cli, ["console", "witness", "--data", str(data), "-o", str(wfile)])
    store.close()
    assert r.exit_code == 0, r.output
    _copy(old, box.state)
    assert verify_log(box.state).ok  # the box alone cannot tell
    r = CliRunner().invoke(cli, ["audit", "verify", "--state-dir", str(box.state), "--witness", str(wfile)])
    assert r.exit_code == 1 and "witnessed by console" in r.output and f"seq {newest}" in r.output, r.output


# --- issue 24, Lows: a forged anchor, reports and exports readable by anyone ----------------------------

@pytest.mark.parametrize("seq", [10**18])
def test_an_unsigned_anchor_with_a_huge_seq_does_not_freeze_the_anchor(box, seq):
    state, _ = box
    (state / "audit.anchor").write_text(json.dumps({"seq": seq, "hash": "f" * 64, "kind": "checkpoint"}))
    log = AuditLog(state, checkpoint_every=5, checkpoint_interval=1e9)
    _alerts(log, 5, 100)
    log.close()
    anchor = json.loads((state / "audit.anchor").read_bytes())
    assert anchor["seq"] == log.head()["seq"] and anchor["hash"] == log.head()["hash"], "the anchor stayed forged"


@pytest.mark.parametrize("what", ["report", "report --format json", "export"])
def test_reports_and_exports_written_with_o_are_for_their_owner_only(box, tmp_path, what):
    state, _ = box
    out = tmp_path / "out.file"
    args = ["audit", *what.split()[:1], "--state-dir", str(state), "-o", str(out), *what.split()[1:]]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    assert out.stat().st_mode & 0o077 == 0, oct(out.stat().st_mode)
