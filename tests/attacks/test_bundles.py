"""Hostile watch-list bundles (issue 15, item 1): no list is ever in force without its audit record,
every refusal is audited, ids that become file names cannot escape, and nothing a signed header holds
makes the box raise anything but one sentence."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from attacks.hostile import Box, hostile_bundle, many_entries, signed_raw_header, t, write_config
from edge.errors import EdgeError
from edge.watchlist import bundle


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    b.svc.load(b.file(b.bundle(sequence=1, list_id="good")))
    assert b.matches_alex()
    return b


def _still_good(box: Box) -> None:
    """The list in force stays, the stored bundle is the old one, and the log says why."""
    assert box.matches_alex() and box.svc.status()["list_id"] == "good"
    assert [r["data"]["list_id"] for r in box.records("watchlist_loaded")] == ["good"]
    assert box.records("watchlist_refused"), "the refusal was not recorded"
    assert box.events[-1]["event"] == "watchlist_refused"
    assert box.svc._header_of(box.svc.stored.read_bytes())["list_id"] == "good"


UNRECORDABLE = {  # (a list of 20,001+ entries is recordable: its refs go in watchlist_entries parts)
    "list id of 300 characters": lambda b: hostile_bundle(b, list_id="L" * 300),
    "deployment name of 5,000 characters": lambda b: hostile_bundle(b, deployment="op " * 1700),
}


@pytest.mark.parametrize("case", list(UNRECORDABLE))
def test_a_list_whose_record_cannot_be_written_is_not_put_in_force(box, case):
    data = UNRECORDABLE[case](box)
    with pytest.raises(EdgeError) as exc:
        box.svc.load(box.file(data, "big.wlb"))
    assert "\n" not in str(exc.value)
    _still_good(box)


def test_a_list_of_20001_entries_is_in_force_only_with_every_ref_recorded(box):
    box.svc.load(box.file(hostile_bundle(box, *many_entries(20_001), list_id="big"), "big.wlb"))
    assert box.svc.status()["list_id"] == "big"
    recorded = [r for rec in box.records() if rec["data"].get("list_id") == "big"
                and rec["kind"] in ("watchlist_entries", "watchlist_loaded") for r in rec["data"].get("refs", [])]
    assert len(set(recorded)) == 20_001, len(set(recorded))


def test_a_list_is_refused_when_the_audit_log_cannot_be_written(box):
    box.svc.record = lambda kind, **f: (_ for _ in ()).throw(EdgeError("the audit log is not writable: disk full"))
    with pytest.raises(EdgeError, match="cannot be recorded"):
        box.svc.load(box.file(box.bundle(sequence=2, list_id="new"), "new.wlb"))
    assert box.matches_alex() and box.svc.status()["list_id"] == "good"


def test_the_command_line_offline_leaves_the_stored_list_when_the_record_fails(box):
    cfg = write_config(box)
    p = box.file(hostile_bundle(box, deployment="x " * 2600), "big.wlb")
    from edge.cli import cli

    r = CliRunner().invoke(cli, ["watchlist", "load", "--config", str(cfg), str(p)])
    assert r.exit_code == 1 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = CliRunner().invoke(cli, ["watchlist", "status", "--config", str(cfg)])
    assert r.exit_code == 0 and r.output.startswith("list good "), r.output


@pytest.mark.parametrize("list_id", ["ops/2026/kx", "../../../../tmp/edge-owned", "..", "a/../../b", "x\\y:z"])
def test_purge_of_a_list_with_a_path_like_id_writes_its_receipt_and_record(box, tmp_path, list_id):
    box.svc.load(box.file(box.bundle(sequence=2, list_id=list_id), "odd.wlb"))
    assert box.svc.status()["list_id"] == list_id
    rc = box.svc.purge("on demand")
    assert rc["list_id"] == list_id and box.matcher.current is None
    purged = [r["data"] for r in box.records("watchlist_purged") if r["data"]["list_id"] == list_id]
    assert len(purged) == 1 and purged[0]["reason"] == "on demand"
    receipts = list((box.svc.dir / "receipts").iterdir())
    assert len(receipts) == len(box.records("watchlist_purged"))  # each in the receipts folder, none elsewhere
    assert not (tmp_path / "edge-owned.json").exists()


def test_a_damaged_sequence_record_refusal_is_audited(box):
    (box.svc.dir / "sequence.json").write_text("{not json")
    with pytest.raises(EdgeError, match="damaged"):
        box.svc.load(box.file(box.bundle(sequence=2, list_id="new"), "new.wlb"))
    (box.svc.dir / "sequence.json").unlink()
    _still_good(box)


def test_a_file_over_the_size_cap_is_refused_and_audited(box):
    p = box.state.parent / "huge.wlb"
    with open(p, "wb") as f:
        f.truncate(bundle.MAX_FILE + 1)  # sparse: costs no disk
    with pytest.raises(EdgeError, match="too large"):
        box.svc.load(p)
    _still_good(box)


DEEP = b'{"format":"edge-watchlist","x":' + b"[" * 30000 + b"]" * 30000 + b"}"


def test_deeply_nested_json_in_a_signed_header_is_one_sentence_and_audited(box):
    with pytest.raises(EdgeError) as exc:
        box.svc.load(box.file(signed_raw_header(DEEP), "deep.wlb"))
    assert "\n" not in str(exc.value)
    _still_good(box)


def test_deeply_nested_json_is_one_sentence_in_enrol_inspect(box):
    from enrol.cli import cli as enrol

    p = box.file(signed_raw_header(DEEP), "deep.wlb")
    r = CliRunner().invoke(enrol, ["inspect", str(p), "--issuer-key", str(box.state / "issuer.pub")])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.output, r.exception)
    assert "Traceback" not in r.output and "RecursionError" not in r.output


def _resign(data: bytes, key) -> bytes:
    return data[:-64] + key.sign(data[:-64])


HELD = {  # attacks that already held on the old main: they must keep holding
    "unknown issuer": lambda b: hostile_bundle(b)[:-64] + Ed25519PrivateKey.generate().sign(hostile_bundle(b)[:-64]),
    "one flipped byte": lambda b: (lambda d: d[:200] + bytes([d[200] ^ 1]) + d[201:])(b.bundle(sequence=2)),
    "truncated": lambda b: b.bundle(sequence=2)[:-10],
    "trailing data": lambda b: b.bundle(sequence=2) + b"\0",
    "random bytes": lambda b: os.urandom(2048),
    "expired": lambda b: b.bundle(sequence=2, not_before=t(hours=-3), not_after=t(seconds=-1)),
    "not yet valid": lambda b: b.bundle(sequence=2, not_before=t(hours=2), not_after=t(hours=3)),
    "rollback": lambda b: b.bundle(sequence=0),
    "over its own cap": lambda b: b.bundle(("alex-lacamoire.png", "lin-manuel-miranda.png"), sequence=2,
                                           max_entries=1),
    "looser than its floor": lambda b: b.bundle(sequence=2, threshold_floor=0.3),
    "header claims more entries": lambda b: hostile_bundle(b, entries=3),
    "huge integer in the header": lambda b: signed_raw_header(b'{"format":"edge-watchlist","sequence":'
                                                              + b"9" * 5000 + b"}"),
    "header that is not JSON": lambda b: signed_raw_header(b"\xff\xfe{"),
}


@pytest.mark.parametrize("case", list(HELD))
def test_tampered_bundles_stay_refused(box, case):
    with pytest.raises(EdgeError) as exc:
        box.svc.load(box.file(HELD[case](box), "bad.wlb"))
    assert "\n" not in str(exc.value)
    _still_good(box)
