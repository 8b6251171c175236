"""The audit log: every kind of tampering is named by `edge audit verify`; exports verify off the box."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import pytest
from audithelpers import edit, edit_and_rehash, log_lines, rewrite_chain, write_log
from click.testing import CliRunner

from edge import identity
from edge.audit.log import AuditLog
from edge.audit.verify import verify_export, verify_log
from edge.cli import cli
from edge.errors import EdgeError


@pytest.fixture
def box(tmp_path):
    state = tmp_path / "state"
    ident = identity.create(state, "box-a")
    clock = iter(range(1_790_000_000, 1_800_000_000, 60))
    log = AuditLog(state, checkpoint_every=5, checkpoint_interval=1e9, clock=lambda: float(next(clock)))
    for i in range(12):
        log.append("alert", alert_id=f"a{i}", camera_id="cam1", time="2026-11-22T06:00:00Z",
                   ref="WL-1", distance=0.41)
    log.close()
    return state, ident, log


def first(state):
    res = verify_log(state)
    assert not res.ok
    return res.first


def test_intact_log_verifies(box):
    state, _, _ = box
    res = verify_log(state)
    assert res.ok, res.summary()
    assert res.signed_through == res.records[-1]["seq"] == 15  # 12 alerts + 3 checkpoints
    assert res.checkpoints == 3


@pytest.mark.parametrize("tamper, says", [(edit, "seq 4"), (edit_and_rehash, "seq 5 (line 5) no longer links")])
def test_edit_is_named(box, tamper, says):
    state, _, _ = box
    tamper(state)
    p = first(state)
    assert (p.kind, p.line) == ("edited", 4)
    assert says in p.message


def test_rewritten_chain_is_caught_by_the_checkpoint(box):
    state, _, _ = box
    rewrite_chain(state)
    p = first(state)
    assert p.kind == "edited" and "checkpoint seq 6" in p.message and "rewritten" in p.message


def test_delete_is_named(box):
    state, _, _ = box
    ls = log_lines(state)
    del ls[6]
    write_log(state, ls)
    p = first(state)
    assert p.kind == "deleted"
    assert "seq 7 missing after line 6" in p.message


def test_reorder_is_named(box):
    state, _, _ = box
    original = log_lines(state)
    ls = list(original)
    ls[2], ls[3] = ls[3], ls[2]
    write_log(state, ls)
    p = first(state)
    assert p.kind == "reordered"
    assert "seq 3 (line 4) comes after seq 4 (line 3)" in p.message
    ls = list(original)
    ls.append(ls.pop(6))  # one record moved to the end: that record is named, once
    write_log(state, ls)
    res = verify_log(state)
    assert [p.kind for p in res.problems] == ["reordered"]
    assert "seq 7 (line 15) comes after seq 15 (line 14)" in res.first.message


def test_truncation_is_named_and_the_log_continues(box):
    state, _, log = box
    path = state / "audit" / "audit.log"
    data = path.read_bytes()
    path.write_bytes(data[:-30])  # a torn last line, as after a crash mid-write
    p = first(state)
    assert p.kind == "truncated"
    assert "incomplete record" in p.message
    # the daemon restarts: a new AuditLog cuts off the torn line, logs it, and the chain carries on
    log2 = AuditLog(state, checkpoint_every=5)
    log2.append("service_start")
    log2.close()
    res = verify_log(state)
    assert res.ok, res.summary()
    kinds = [r["kind"] for r in res.records]
    assert kinds[-3:] == ["log_recovered", "service_start", "checkpoint"]
    assert res.records[-3]["data"]["torn_bytes"] > 0


def test_cut_off_whole_records_is_truncation(box):
    state, _, _ = box
    write_log(state, log_lines(state)[:-4])  # whole lines removed from the end, past the box's signed head
    p = first(state)
    assert p.kind == "truncated" and "box signed seq 15" in p.message


def test_concurrent_appends_keep_one_chain(tmp_path):
    state = tmp_path / "state"
    identity.create(state, "box-a")
    log = AuditLog(state, checkpoint_every=25)
    other = AuditLog(state, checkpoint_every=25)  # a second writer (another process in real life)

    def work(lg, n):
        for i in range(n):
            lg.append("faces_processed", camera_id="cam1", faces=i)

    ts = [threading.Thread(target=work, args=(lg, 40)) for lg in (log, log, other)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    log.close()
    res = verify_log(state)
    assert res.ok, res.summary()
    assert sum(r["kind"] == "faces_processed" for r in res.records) == 120


@pytest.mark.parametrize("fields", [
    {"camera_id": "c", "faces": 1, "crop": b"\xff\xd8\xff"},
    {"camera_id": "c", "faces": 1, "template": [0.01 * i for i in range(128)]},
    {"camera_id": "c", "faces": 1, "crop_jpeg": "/9j/4AAQSkZJRgABAQ" * 40},
    {"camera_id": "c"},
])
def test_images_templates_and_missing_fields_are_refused(tmp_path, fields):
    log = AuditLog(tmp_path / "state")
    with pytest.raises(EdgeError):
        log.append("faces_processed", **fields)
    assert verify_log(tmp_path / "state").records == []


def export(state, tmp_path, *args):
    out = tmp_path / "export.jsonl"
    r = CliRunner().invoke(cli, ["audit", "export", "--state-dir", str(state), "-o", str(out), *args])
    assert r.exit_code == 0, r.output
    return out


def test_export_verifies_off_the_box_and_forgeries_are_refused(box, tmp_path):
    state, ident, _ = box
    out = export(state, tmp_path)
    pub = state / "keys" / "box.pub.json"
    header, res = verify_export(out.read_bytes(), ident.signing_public)
    assert res.ok and len(res.records) == header["records"] == 15  # 12 alerts + 3 checkpoints
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", "--export", str(out), "--box-key", str(pub)])
    assert ok.exit_code == 0 and "OK" in ok.output

    # an edited record inside the export
    data = out.read_bytes()
    bad = tmp_path / "edited.jsonl"
    bad.write_bytes(data.replace(b'"distance":0.41', b'"distance":0.30', 1))
    r = runner.invoke(cli, ["audit", "verify", "--export", str(bad), "--box-key", str(pub)])
    assert r.exit_code == 1 and "edited" in r.output and "line 2" in r.output

    # a forger with a key of their own re-signs the whole export
    forger = identity.create(tmp_path / "forger", "box-a")
    recs = data.split(b"\n")[1:-2]
    hdr = json.loads(data.split(b"\n")[0])
    from edge.audit.verify import export_bytes
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(export_bytes(hdr, recs, forger.signing_key))
    r = runner.invoke(cli, ["audit", "verify", "--export", str(forged), "--box-key", str(pub)])
    assert r.exit_code == 1 and "does not verify" in r.output

    # truncated export
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(data[: len(data) // 2])
    r = runner.invoke(cli, ["audit", "verify", "--export", str(cut), "--box-key", str(pub)])
    assert r.exit_code == 1 and "truncated" in r.output


def test_export_of_a_period_is_chained_to_its_anchor(box, tmp_path):
    state, ident, _ = box
    recs = verify_log(state).records
    t0, t1 = recs[4]["time"], recs[9]["time"]
    out = export(state, tmp_path, "--from", t0, "--to", t1)
    header, res = verify_export(out.read_bytes(), ident.signing_public)
    assert res.ok, res.summary()
    assert [r["seq"] for r in res.records] == list(range(5, 10))
    assert header["anchor_seq"] == 4
    assert datetime.fromisoformat(header["from"]) == datetime.fromisoformat(t0.replace("Z", "+00:00"))
    assert datetime.fromisoformat(header["to"]).tzinfo == UTC


def test_cli_verify_names_the_break_and_exits_nonzero(box):
    state, _, _ = box
    ls = log_lines(state)
    del ls[2]
    write_log(state, ls)
    r = CliRunner().invoke(cli, ["audit", "verify", "--state-dir", str(state)])
    assert r.exit_code == 1
    assert "deleted" in r.output and "seq 3" in r.output
    assert "Traceback" not in r.output


def test_spec_vector():
    """The test vector in docs/audit-format.md verifies with the documented key, and breaks when edited."""
    import base64
    import re
    from pathlib import Path

    from edge.audit.verify import verify_records

    doc = (Path(__file__).parent.parent / "docs" / "audit-format.md").read_text()
    block = re.search(r"## Test vector.*?```\n(.*?)```", doc, re.S).group(1).encode()
    pub = base64.b64decode("A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg=")
    res = verify_records(block, pub)
    assert res.ok and res.signed_through == 3 and [r["kind"] for r in res.records] == [
        "service_start", "alert", "checkpoint"]
    assert not verify_records(block.replace(b"0.4312", b"0.4313"), pub).ok


def test_config_changes_are_diffed_without_passwords(tmp_path):
    from edge.audit.configdiff import changes

    cfg = {"box_id": "b", "match": {"threshold": 0.6}, "path": "/etc/edge/edge.toml",
           "cameras": [{"id": "cam1", "source": "rtsp://admin:s3cret@10.0.0.5/live"}, {"id": "cam2", "source": "0"}]}
    first = changes(tmp_path, cfg)
    assert first["match.threshold"] == [None, 0.6] and "path" not in first
    assert first["cameras[cam1].source"] == [None, "rtsp://admin:***@10.0.0.5/live"]
    assert changes(tmp_path, cfg) == {}
    cfg["match"]["threshold"] = 0.55
    cfg["cameras"].reverse()  # order of cameras is not a change
    assert changes(tmp_path, cfg) == {"match.threshold": [0.6, 0.55]}
    assert b"s3cret" not in (tmp_path / "audit" / "last-config.json").read_bytes()
    log = AuditLog(tmp_path)
    log.append("config_changed", diff={"match.threshold": [0.6, 0.55]})


def test_key_rotation_keeps_the_log_verifiable(box):
    from edge.audit.log import record
    from edge.codec import b64
    from edge.identity import key_id

    state, old, _ = box
    new = identity.create(state, "box-a", rotate=True)
    record(state, "key_rotated", old_key_id=key_id(old.signing_public), new_key_id=key_id(new.signing_public),
           signing_public=b64(new.signing_public))
    res = verify_log(state)  # the box's key is now the new one: its checkpoint vouches for all before it
    assert res.ok, res.summary()
    assert res.signed_through == res.records[-1]["seq"] and res.records[-1]["data"]["key_id"] == key_id(
        new.signing_public)
    stranger = identity.create(state.parent / "x", "box-x")
    res = verify_log(state, stranger.signing_public)
    assert not res.ok and "no checkpoint in the log is signed by the box key" in res.first.message


def test_any_flipped_byte_is_caught_and_never_crashes_verify(box, tmp_path):
    """Fuzz: a changed byte anywhere in the log or an export is reported, never a traceback."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from edge.audit.verify import verify_records

    state, ident, _ = box
    data = (state / "audit" / "audit.log").read_bytes()
    exported = export(state, tmp_path).read_bytes()

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.integers(0, len(data) - 1), st.integers(1, 255), st.booleans())
    def check(pos, xor, in_export):
        src = exported if in_export else data
        pos %= len(src)
        bad = src[:pos] + bytes([src[pos] ^ xor]) + src[pos + 1:]
        try:
            res = verify_export(bad, ident.signing_public)[1] if in_export else verify_records(
                bad, ident.signing_public)
        except EdgeError:
            return  # a damaged export header: one clear error
        assert not res.ok

    check()


def test_appended_records_signed_by_an_introduced_stranger_key_are_refused(box):
    """Someone with write access but without the box key appends a fake rotation and signs it himself."""
    from edge.codec import b64
    from edge.identity import key_id

    state, _, _ = box
    forger = identity.create(state.parent / "forger", "box-a")
    fake = AuditLog(state, signing_key=forger.signing_key, box_id="box-a")
    fake._load_identity = lambda: None  # he cannot read the box's key file
    fake.append("key_rotated", old_key_id="0" * 16, new_key_id=key_id(forger.signing_public),
                signing_public=b64(forger.signing_public))
    fake.signing_key = forger.signing_key
    fake.append("alert", alert_id="fake", camera_id="cam1", time="2026-11-22T06:00:00Z", ref="WL-1", distance=0.1)
    fake.close()
    res = verify_log(state)
    assert not res.ok and res.first.kind == "signature" and "after the box key's last checkpoint" in res.first.message


def test_deeply_nested_lines_are_damage_not_a_crash(tmp_path):
    from edge.audit.verify import verify_records

    res = verify_records(b"[" * 5000 + b"\n", None)
    assert res.first.kind == "damaged" and res.first.line == 1
    with pytest.raises(EdgeError):
        verify_export(b"[" * 5000 + b"\n", b"\x00" * 32)
