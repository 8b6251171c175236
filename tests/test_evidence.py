"""Evidence for a court (issue 26): `edge audit evidence ENCOUNTER -o file` and `edge audit verify-evidence`.

A real daemon (in this process, fed as its cameras feed it) and a real console decide an encounter (one
decision counted, one that lost a race); the package is written with the real command and checked offline
with only the box's public key file. A changed byte anywhere in it fails. docs/evidence-vector.json is the
format page's test vector (EDGE_WRITE_EVIDENCE_VECTOR=1 writes it again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_encounters import Box, Operator, wait_for

from edge import codec
from edge.audit import evidence
from edge.cli import cli
from edge.console import decisions
from edge.errors import EdgeError

VECTOR = Path(__file__).resolve().parents[1] / "docs" / "evidence-vector.json"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_an_encounters_evidence_package_verifies_offline_and_a_flipped_byte_fails(tmp_path):
    box = Box(tmp_path)
    op = Operator(tmp_path, box)
    try:
        box.seen("cam-a", "a-1", 0, crop=b"\xff\xd8first crop")
        box.seen("cam-b", "b-1", 0, crop=b"\xff\xd8second crop")
        assert wait_for(lambda: len(op.console.state()["open"]) == 1 and len(op.delivered) == 2)
        alert_id = op.console.state()["open"][0]["alert_id"]
        op.decide(alert_id, "alice", decision="confirm", action="arrested")
        with pytest.raises(decisions.Refused):
            op.decide(alert_id, "bob", decision="dismiss", reason="not the person")
        assert wait_for(lambda: box.daemon.counts.adjudications == 1 and box.daemon.publisher.counts[
            "adjudications_refused"] == 1)
    finally:
        op.stop()
        box.stop()
    out = tmp_path / "evidence.json"
    r = run("audit", "evidence", alert_id, "-o", str(out), "--config", str(box.config))
    assert r.exit_code == 0, r.output
    key = str(box.state / "keys" / "box.pub.json")
    r = run("audit", "verify-evidence", str(out), "--box-key", key)
    assert r.exit_code == 0, r.output
    assert "2 sighting(s), 2 crop(s), 1 decision(s) counted, 1 not counted" in r.output
    pkg = json.loads(out.read_text())
    assert [codec.unb64(s["crop_jpeg"], "crop") for s in pkg["sightings"]] == [b"\xff\xd8first crop",
                                                                               b"\xff\xd8second crop"]
    assert pkg["reference"]["ref"] == "WL-1" and pkg["reference"]["reference_jpeg"]
    assert json.loads(pkg["chain"][-1])["kind"] == "checkpoint"

    data = out.read_bytes()
    for at in (len(data) // 7, len(data) // 3, len(data) // 2, len(data) - 40):  # crops, records, signature
        bad = bytearray(data)
        bad[at] ^= 0x01
        (tmp_path / "bad.json").write_bytes(bytes(bad))
        r = run("audit", "verify-evidence", str(tmp_path / "bad.json"), "--box-key", key)
        assert r.exit_code != 0 and r.output.startswith("Error: ") and "Traceback" not in r.output, (at, r.output)
    r = run("audit", "evidence", "no-such-encounter", "-o", str(tmp_path / "x.json"), "--config", str(box.config))
    assert r.exit_code != 0 and "no encounter 'no-such-encounter'" in r.output and not (tmp_path / "x.json").exists()
    if os.environ.get("EDGE_WRITE_EVIDENCE_VECTOR"):
        VECTOR.write_bytes(data)


def test_the_format_pages_vector_verifies_with_its_key_and_not_changed():
    pkg = json.loads(VECTOR.read_bytes())
    pub = codec.unb64(pkg["signing_public"], "key", 32)
    summary = evidence.check(VECTOR.read_bytes(), pub)
    assert (summary["sightings"], summary["decisions"], summary["refused"]) == (2, 1, 1)
    pkg["sightings"][0]["camera_id"] = "cam-z"
    with pytest.raises(EdgeError, match="not signed by box key"):
        evidence.check(json.dumps(pkg).encode(), pub)
