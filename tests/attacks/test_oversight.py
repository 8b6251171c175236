"""What oversight reads (issue 24, items 3, 5, 7): `enrol reconcile` cannot be made to agree by a keyless file,
a broken log or another issuer's list; a damaged record gives a BROKEN report naming it, never a traceback;
no text from a record, a file name or an operator reaches a terminal as control codes."""

from __future__ import annotations

import hashlib
import json
import struct

import pytest
from audithelpers import log_lines, write_log
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wlhelpers import make_bundle, trust_issuer

from attacks.hostile import ISSUER, Box
from edge import codec, identity
from edge.audit.log import record_hash
from edge.audit.verify import export_bytes
from edge.cli import cli
from edge.errors import EdgeError
from edge.watchlist import bundle
from enrol.cli import cli as enrol_cli

ISSUER_B = Ed25519PrivateKey.generate()


def _register(box: Box, data: bytes, list_id: str, tmp) -> object:
    """The SPOC's register line for the bundle ``data`` (as `enrol build` writes it), issuer A."""
    line = {"list_id": list_id, "box_id": box.cfg.box_id, "issuer": identity.key_id(identity.raw_public(ISSUER)),
            "bundle_sha256": hashlib.sha256(data).hexdigest(), "refs": ["PN-0000"], "images": {},
            "created": "2026-12-01T08:00:00Z", "deployment": "test op",
            "box_signing_public": codec.b64(box.ident.signing_public)}
    p = tmp / "bundles.jsonl"
    p.write_text(json.dumps(line) + "\n")
    return p


def _report(box: Box, tmp, *extra: str) -> tuple[object, str]:
    out = tmp / "report.json"
    r = CliRunner().invoke(cli, ["audit", "report", "--state-dir", str(box.state), "--format", "json",
                                 "-o", str(out), *extra])
    assert r.exit_code == 0, r.output
    return out, out.read_text()


def _reconcile(register, report) -> tuple[int, str]:
    r = CliRunner().invoke(enrol_cli, ["reconcile", str(register), str(report)])
    assert r.exit_code in (0, 1) and "Traceback" not in r.output, r.output
    return r.exit_code, r.output


def _load_and_purge(box: Box, data: bytes) -> None:
    box.svc.load(box.file(data))
    box.svc.purge("end of operation")
    box.log.close()


def _keyless(list_id: str, kid: bytes) -> bytes:
    """A ~60-byte file: a bundle's framing and an unsigned header that claims ``list_id``, nothing else."""
    h = json.dumps({"list_id": list_id}).encode()
    return bundle.PREFIX.pack(bundle.MAGIC, 2, kid, len(h)) + h + struct.pack(">Q", 0)


@pytest.mark.parametrize("kid", ["issuer's key id", "another key id"])
def test_a_keyless_file_claiming_an_issued_list_is_not_counted_as_its_refusal(tmp_path, kid):
    box = Box(tmp_path)
    data = box.bundle(sequence=1, list_id="L-1")
    reg = _register(box, data, "L-1", tmp_path)
    raw = bytes.fromhex(identity.key_id(identity.raw_public(ISSUER))) if kid.startswith("issuer") else b"\x01" * 8
    with pytest.raises(EdgeError):
        box.svc.load(box.file(_keyless("L-1", raw), "fake.wlb"))
    box.log.close()
    code, out = _reconcile(reg, _report(box, tmp_path)[0])
    assert code == 1 and "L-1" in out and "neither loaded nor refused" in out, out
    assert "both sides agree" not in out


@pytest.mark.parametrize("how", ["record edited", "record deleted"])
def test_a_report_from_a_broken_log_does_not_reconcile(tmp_path, how):
    box = Box(tmp_path)
    data = box.bundle(sequence=1, list_id="L-1")
    reg = _register(box, data, "L-1", tmp_path)
    _load_and_purge(box, data)
    lines = log_lines(box.state)
    if how == "record edited":
        lines[-2] = lines[-2].replace(b'"end of operation"', b'"end of operatiom"')
    else:
        del lines[2]
    write_log(box.state, lines)
    report, text = _report(box, tmp_path)
    assert json.loads(text)["verification"].startswith("BROKEN")
    code, out = _reconcile(reg, report)
    assert code == 1 and "did not verify" in out and "both sides agree" not in out, out


@pytest.mark.parametrize("who", ["issuer B, A's list id", "issuer A, same id, another bundle"])
def test_a_list_is_matched_by_issuer_id_and_hash(tmp_path, who):
    box = Box(tmp_path)
    issued = box.bundle(sequence=1, list_id="L-1")
    reg = _register(box, issued, "L-1", tmp_path)
    if who.startswith("issuer B"):
        trust_issuer(box.state, ISSUER_B)
        other = make_bundle(ISSUER_B, box.ident.wl_public, sequence=1, list_id="L-1")
    else:  # what a stolen issuer key, or a second build under the same id, makes
        other = box.bundle(sequence=1, list_id="L-1", faces=("alex-lacamoire.png", "alex_lacamoire1.jpg"))
    _load_and_purge(box, other)
    code, out = _reconcile(reg, _report(box, tmp_path)[0])
    assert code == 1 and "not the bundle the register issued" in out, out
    assert "neither loaded nor refused" in out


# --- item 5: a damaged record -------------------------------------------------------------------------

def _damage(state, kind: str, change) -> int:
    """Change the first record of ``kind`` and recompute every hash after it (what root with the file can do;
    the checkpoints then no longer verify, which is reported too). Returns the record's seq."""
    recs = [json.loads(ln) for ln in log_lines(state)]
    i = next(i for i, r in enumerate(recs) if r["kind"] == kind)
    change(recs[i])
    for j in range(i, len(recs)):
        recs[j]["prev"] = recs[j - 1]["hash"] if j else recs[j]["prev"]
        recs[j]["hash"] = record_hash(recs[j])
    write_log(state, [codec.canonical(r) for r in recs])
    return recs[i]["seq"]


DAMAGE = {
    "watchlist_loaded without issuer": ("watchlist_loaded", lambda r: r["data"].pop("issuer")),
    "watchlist_loaded entries as text": ("watchlist_loaded", lambda r: r["data"].update(entries="1")),
    "watchlist_purged without list_id": ("watchlist_purged", lambda r: r["data"].pop("list_id")),
    "alert without ref": ("alert", lambda r: r["data"].pop("ref")),
    "alert with a time that is no time": ("alert", lambda r: r["data"].update(time="yesterday")),
    "adjudication without decision": ("adjudication", lambda r: r["data"].pop("decision")),
    "record time that is no time": ("alert", lambda r: r.update(time="soon")),
    "data that is a list": ("adjudication", lambda r: r.update(data=[1])),
}


def _box_with_history(tmp_path) -> Box:
    box = Box(tmp_path)
    box.svc.load(box.file(box.bundle(sequence=1, list_id="L-1")))
    box.log.append("alert", alert_id="a1", camera_id="cam1", time="2026-12-01T08:00:00Z", ref="PN-0000",
                   distance=0.4)
    box.log.append("adjudication", alert_id="a1", operator="op", decision="confirm", action="approached",
                   reason="", seconds_to_decision=4.0)
    box.svc.purge("done")
    box.log.close()
    return box


@pytest.mark.parametrize("case", list(DAMAGE))
@pytest.mark.parametrize("where", ["live", "export"])
def test_a_damaged_record_gives_a_broken_report_that_names_it(tmp_path, case, where):
    box = _box_with_history(tmp_path)
    kind, change = DAMAGE[case]
    seq = _damage(box.state, kind, change)
    extra: list[str] = []
    if where == "export":  # signed by the box key over the damaged records (root, or a box with a bug)
        lines = log_lines(box.state)
        header = {"type": "edge-audit-export", "v": 1, "box_id": "box-a", "from": "2026-01-01T00:00:00+00:00",
                  "to": "2036-01-01T00:00:00+00:00", "created": "x", "records": len(lines), "anchor_seq": 0,
                  "anchor_hash": "0" * 64, "key_id": identity.key_id(box.ident.signing_public),
                  "signing_public": codec.b64(box.ident.signing_public)}
        (tmp_path / "e.jsonl").write_bytes(export_bytes(header, lines, box.ident.signing_key))
        (tmp_path / "box.pub.json").write_text(json.dumps(box.ident.public()))
        extra = ["--export", str(tmp_path / "e.jsonl"), "--box-key", str(tmp_path / "box.pub.json")]
    for fmt in ("text", "json"):
        r = CliRunner().invoke(cli, ["audit", "report", "--state-dir", str(box.state), "--format", fmt, *extra])
        assert r.exit_code == 0 and r.exception is None, (r.output, r.exception)
        verification = json.loads(r.output)["verification"] if fmt == "json" else r.output.splitlines()[1]
        assert "BROKEN" in verification and f"seq {seq}" in verification, verification


# --- item 7: control characters in text outputs ------------------------------------------------------

ESCAPES = ["\x1b[2J\x1b[H", "\nAudit log: OK: fake", "\rOK", "\u202eKO", "\x9b31m", "\x07\x08"]


def _clean(text: str) -> None:  # (color=True: click strips escape codes only when it is not writing to a terminal)
    assert not any(ch in text for ch in "\x1b\r\x07\x08\x9b\u202e"), repr(text)


@pytest.mark.parametrize("esc", ESCAPES)
def test_operator_and_file_text_cannot_drive_the_terminal_in_the_text_report(tmp_path, esc):
    box = Box(tmp_path)
    box.log.append("alert", alert_id="a1", camera_id="cam1", time="2026-12-01T08:00:00Z", ref="PN-0000",
                   distance=0.4)
    box.log.append("adjudication", alert_id="a1", operator=f"op{esc}", decision="dismiss", action="",
                   reason="poor image", note=f"note{esc}", seconds_to_decision=4.0)
    with pytest.raises(EdgeError):
        box.svc.load(box.file(b"junk", f"usb{esc}.wlb"))
    box.log.append("trust_added", what="issuer", key_id="k", name=f"force{esc}")
    box.log.close()
    for fmt in ("text", "html"):
        r = CliRunner().invoke(cli, ["audit", "report", "--state-dir", str(box.state), "--format", fmt], color=True)
        assert r.exit_code == 0, r.output
        _clean(r.output)
    lines = CliRunner().invoke(cli, ["audit", "report", "--state-dir", str(box.state)]).output.splitlines()
    assert sum(ln.startswith("Audit log:") for ln in lines) == 1


@pytest.mark.parametrize("esc", ESCAPES[:3])
def test_no_command_prints_control_codes_from_what_it_reads(tmp_path, esc):
    """verify (a witness's console name), reconcile (a report's list ids), errors (a file's name)."""
    box = Box(tmp_path)
    box.log.append("service_start")
    box.log.close()
    head = json.loads((box.state / "audit" / "audit.head").read_bytes())
    w = tmp_path / "w.json"
    w.write_text(json.dumps({"type": "edge-audit-witness", "v": 1, "witnesses": [
        {"console": f"c{esc}", "checkpoint": dict(head, seq=head["seq"] + 5)}]}))
    r = CliRunner().invoke(cli, ["audit", "verify", "--state-dir", str(box.state), "--witness", str(w)], color=True)
    _clean(r.output)
    rep = tmp_path / "rep.json"
    rep.write_text(json.dumps({"type": "edge-oversight-report", "v": 2, "box_id": f"box{esc}", "verification": "OK",
                               "watchlists": [{"list_id": f"L{esc}", "issuer": "x"}], "refused": []}))
    reg = tmp_path / "reg.jsonl"
    reg.write_text(json.dumps({"list_id": "L-1", "box_id": f"box{esc}"}) + "\n")
    r = CliRunner().invoke(enrol_cli, ["reconcile", str(reg), str(rep)], color=True)
    assert r.exit_code == 1
    _clean(r.output)
    bad = tmp_path / f"x{esc}.json"
    bad.write_text("[")
    r = CliRunner().invoke(cli, ["audit", "verify", "--state-dir", str(box.state), "--witness", str(bad)], color=True)
    assert r.exit_code != 0 and len(r.output.strip().splitlines()) == 1, r.output
    _clean(r.output)


# --- item 10: matching without authorisation is said at the top -------------------------------------------

def _unauthorised_box(tmp_path) -> Box:
    box = Box(tmp_path)
    box.log.append("service_start", cameras=["cam1"], deployment_required=False)
    box.log.append("alert", alert_id="a1", camera_id="cam1", time="2026-12-01T08:00:00Z", ref="PN-0000",
                   distance=0.4)
    box.log.close()
    return box


@pytest.mark.parametrize("fmt", ["text", "html", "json"])
def test_matching_without_authorisation_is_said_at_the_top_of_the_report(tmp_path, fmt):
    box = _unauthorised_box(tmp_path)
    r = CliRunner().invoke(cli, ["audit", "report", "--state-dir", str(box.state), "--format", fmt])
    assert r.exit_code == 0, r.output
    if fmt == "json":
        assert json.loads(r.output)["matching_without_authorisation"], r.output[:500]
    else:
        top = r.output.splitlines()[2] if fmt == "text" else r.output[:r.output.index("<h2>")]
        assert "MATCHING WITHOUT AUTHORISATION" in top, top


def test_matching_without_authorisation_is_said_first_in_the_status():
    from edge.pipeline.health import format_status

    text = format_status({"box_id": "box-a", "deployment": {"deployment_required": False, "authorised": {}}})
    assert text.splitlines()[0].startswith("WARNING: MATCHING WITHOUT AUTHORISATION"), text


def test_matching_without_authorisation_is_an_alarm_on_the_console():
    from edge.console import alarms
    from edge.console.link import _matching

    m = _matching({"matching": {"on": True, "why": "", "list_id": "L", "entries": 3, "not_authorised": [],
                                "emergency": [], "unauthorised": True}})
    out = alarms.banners([{"box_id": "box-a", "state": "connected", "cameras": {}, "matching": m}])
    assert any(b["level"] == "alarm" and "WITHOUT AUTHORISATION" in b["text"] for b in out), out


def test_a_window_location_cannot_drive_the_terminal_in_deployment_status(tmp_path):
    """A signed window's location is an issuer's text: `edge deployment status` shows it, never runs it."""
    from datetime import UTC, datetime, timedelta

    from edge.deployment import store, window

    box = Box(tmp_path)
    now = datetime.now(UTC)
    doc = window.make(ISSUER, box_id="box-a", deployment_id="dep-1", location="KX\x1b[2J\nOK: all clear",
                      cameras=["cam1"], start=now - timedelta(minutes=1), end=now + timedelta(hours=1),
                      purpose="wanted\rOK", lists=[("L-1", "0" * 64)])
    (tmp_path / "w.json").write_text(json.dumps(doc))
    store.load(box.state, tmp_path / "w.json")
    r = CliRunner().invoke(cli, ["deployment", "status", "--state-dir", str(box.state)], color=True)
    _clean(r.output)
    assert not any(ln.startswith("OK") for ln in r.output.splitlines()), r.output


def test_offline_status_of_an_expired_list_says_expired(tmp_path):
    import time

    from attacks.hostile import t, write_config

    box = Box(tmp_path)
    cfg = write_config(box)
    cfg.write_text(cfg.read_text() + "[deployment]\nrequired = false\n")
    box.bundle(sequence=1)  # the sample face encoded once, before the clock starts
    box.svc.load(box.file(box.bundle(sequence=2, not_after=t(seconds=3))))
    time.sleep(3.5)
    r = CliRunner().invoke(cli, ["watchlist", "status", "--config", str(cfg)])
    assert "EXPIRED" in r.output and "in -" not in r.output, r.output
