"""The shared primitives (edge/codec.py, edge/files.py): one home each, and the behaviour every format
relies on: no NaN in signed JSON, one time format for every command, domain-separated signatures."""

from __future__ import annotations

import ast
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import codec, deployment, identity
from edge.errors import EdgeError
from edge.files import read_json, read_text, write_atomic
from edge.watchlist import bundle, receipt

ROOT = Path(__file__).resolve().parents[1]
PRIMITIVES = {"canonical", "parse_time", "fmt_time", "b64", "unb64", "_b64", "_unb64", "write_atomic",
              "read_text", "load_box_public", "match_owner", "_iso", "utcnow"}
ADAPTERS = {  # thin wrappers that only choose the error class or fix an argument: not copies
    ("edge/watchlist/fields.py", "parse_time"), ("edge/watchlist/bundle.py", "_unb64"),
    ("edge/alerts/messages.py", "unb64"), ("edge/alerts/messages.py", "utcnow"),
    ("edge/identity.py", "load_box_public"),  # its home: the box identity's own module
}
RENAMES = {  # an os.replace that is not an atomic write of a new file
    "edge/watchlist/service/load.py": "a staged list put in force only once its audit record is written",
    "firmware/update.py": "a symlink switched to another firmware version",
}


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_canonical_json_refuses_numbers_that_are_not_finite(value):
    with pytest.raises(EdgeError, match="not finite"):
        codec.canonical({"threshold": value})
    assert codec.canonical({"b": 1, "a": [0.5, "é"]}) == b'{"a":[0.5,"\\u00e9"],"b":1}'


def test_a_firmware_bundle_cannot_sign_nan_from_a_migrations_file():
    from firmware import bundle as fw

    migrations = json.loads('[{"op": "set", "key": "match.threshold", "value": NaN}]')  # json accepts NaN
    with pytest.raises(EdgeError, match="not finite"):
        fw.build("1.0.0", Ed25519PrivateKey.generate(), {"wheels/x-1.0-py3-none-any.whl": b"x"}, migrations)


@pytest.mark.parametrize("text", ["2026-12-01T18:00:00Z", "2026-12-01T18:00Z", "2026-12-01T18:00:00+00:00",
                                  "2026-12-01T19:00:00+01:00", "2026-12-01T18:00:00.000Z"])
def test_enrol_build_and_enrol_authorise_read_the_same_times(text):
    want = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
    assert bundle.parse_time(text) == want  # enrol build --expires / --not-before, bundle headers
    assert deployment.parse_time(text, "--start") == want  # enrol authorise --start / --end
    assert codec.fmt_time(want) == "2026-12-01T18:00:00Z"


@pytest.mark.parametrize("text, why", [("2026-12-01T18:00", "has no time zone"), ("next tuesday", "not a UTC time"),
                                       ("2026-12-01", "has no time zone"), ("9" * 500, "not a UTC time")])
def test_a_time_without_a_zone_is_one_sentence_everywhere(text, why):
    for parse in (bundle.parse_time, deployment.parse_time):
        with pytest.raises(EdgeError, match=why) as exc:
            parse(text)
        assert len(str(exc.value)) < 120
    assert codec.parse_time("2026-12-01", date_ok=True) == datetime(2026, 12, 1, tzinfo=UTC)


def test_signatures_are_domain_separated():
    key = Ed25519PrivateKey.generate()
    pub = identity.raw_public(key)
    doc = {"type": "x", "n": 1}
    sig = codec.sign("edge-deployment-v1", doc, key)
    assert codec.verify("edge-deployment-v1", doc, sig, pub)
    assert not codec.verify("edge-deletion-receipt-v2", doc, sig, pub)
    assert not codec.verify_message(codec.canonical(doc), sig, pub)
    assert not codec.verify("edge-deployment-v1", dict(doc, n=2), sig, pub)
    assert not codec.verify("edge-deployment-v1", doc, "not base64!", pub)


def test_deletion_receipts_are_domain_separated_and_old_ones_still_verify(tmp_path):
    ident = identity.create(tmp_path / "box", "box-a")
    rc = receipt.make(ident, list_id="L-1", issuer="i" * 16, deployment="op", sequence=3, entries=2,
                      reason="purged")
    body = {k: v for k, v in rc.items() if k != "signature"}
    assert rc["version"] == 2 and receipt.verify(rc, ident.signing_public)["list_id"] == "L-1"
    # the new signature is not one over the bare JSON: no other document can be passed off as a receipt
    assert not codec.verify_message(codec.canonical(body), rc["signature"], ident.signing_public)
    # a version 1 receipt (signed over the bare canonical JSON) that an oversight body holds still verifies
    old = dict(body, version=1)
    old["signature"] = codec.b64(ident.signing_key.sign(codec.canonical(old)))
    assert receipt.verify(old, ident.signing_public)["version"] == 1
    # ... but a version 2 receipt relabelled as version 1 (or the reverse) does not
    with pytest.raises(EdgeError, match="does not verify"):
        receipt.verify(dict(rc, version=1), ident.signing_public)
    with pytest.raises(EdgeError, match="does not verify"):
        receipt.verify(dict(old, version=2), ident.signing_public)
    assert receipt.from_record({**{k: rc[k] for k in receipt.FIELDS}, "receipt_signature": rc["signature"],
                                "receipt_version": 2}) == rc


def test_files_write_whole_and_read_bounded(tmp_path):
    p = tmp_path / "doc.json"
    write_atomic(p, b'{"a": 1}', 0o600)
    assert read_json(p, "doc") == {"a": 1} and (p.stat().st_mode & 0o777) == 0o600
    p.write_text("{not json")
    with pytest.raises(EdgeError, match="doc .* is damaged: it is not valid JSON"):
        read_json(p, "doc")
    p.write_bytes(b" " * (2 << 20))
    with pytest.raises(EdgeError, match="too large"):
        read_json(p, "doc")
    with pytest.raises(EdgeError, match="cannot write"):
        write_atomic(tmp_path / "no" / "such" / "dir", b"")


@pytest.mark.parametrize("kind, call, said", [
    ("fifo", "read_text(P, 'key file', 4096)", "EdgeError P is not a regular file: give the key file itself"),
    ("device", "read_text(P, 'key file', 4096)", "EdgeError P is not a regular file: give the key file itself"),
    ("fifo", "keys.parse_box('tcp://127.0.0.1:1=' + P)", "EdgeError --box 'tcp://127.0.0.1:1=P': P is not a "
                                                          "regular file: give the box identity itself"),
    ("fifo", "verify.load_witnesses(P)", "EdgeError P is not a regular file: give the witness file itself"),
    ("fifo", "register.read(P)", "EdgeError P is not a regular file: give the register itself"),
    ("fifo", "register.read_report(P)", "EdgeError P is not a regular file: give the box report itself"),
    ("fifo", "fw.load_public_key(P)", "FirmwareError P is not a regular file: give the key file itself"),
])
def test_a_bounded_read_is_bounded_whatever_the_path_names(tmp_path, kind, call, said):
    """read_text trusted the size stat() gives: a FIFO (size 0) blocked for ever and /dev/zero (size 0) was
    read until memory ran out (`edge trust add-issuer /dev/zero`, `edge console --box ...=/dev/zero`). A file a
    user names must be a regular file, and at most ``max_bytes`` of it is read."""
    import resource
    import subprocess
    import sys

    path = tmp_path / "key.fifo" if kind == "fifo" else Path("/dev/zero")
    if kind == "fifo":
        os.mkfifo(path)
    code = ("from edge.audit import verify\nfrom edge.console import keys\nfrom edge.files import read_text\n"
            f"from enrol import register\nfrom firmware import bundle as fw\nP = {str(path)!r}\ntry:\n"
            f"    {call}\nexcept Exception as e:\n    print(type(e).__name__, e)")
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))  # noqa: E731  (old code: no OOM)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, preexec_fn=limit,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.stdout.strip() == said.replace("P", str(path)), r.stdout + r.stderr
    big = tmp_path / "big"
    big.write_bytes(b"x" * 5000)
    with pytest.raises(EdgeError, match="too large to be a key file"):
        read_text(big, "key file", 4096)
    assert read_text(big, "key file", 5000) == "x" * 5000


def test_each_primitive_has_one_home():
    """No module but codec.py and files.py defines a primitive (thin adapters listed above aside)."""
    homes = {"edge/codec.py", "edge/files.py"}
    found = []
    for path in sorted(p for d in ("edge", "enrol", "firmware") for p in (ROOT / d).rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        if rel in homes:
            continue
        for node in ast.walk(ast.parse(path.read_text(), rel)):
            if isinstance(node, ast.FunctionDef) and node.name in PRIMITIVES and (rel, node.name) not in ADAPTERS:
                found.append(f"{rel}:{node.lineno} {node.name}")
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("b64encode", "b64decode",
                                                                                 "fromisoformat"):
                found.append(f"{rel}:{node.lineno} {node.func.attr}")  # a time or base64 read of its own
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "replace" and \
                    getattr(node.func, "value", None) is not None and getattr(node.func.value, "id", "") == "os" \
                    and rel not in RENAMES:
                found.append(f"{rel}:{node.lineno} os.replace (a write_atomic of its own)")
            if isinstance(node, ast.ImportFrom) and node.module not in ("edge.codec", "edge.files") and any(
                    a.name in PRIMITIVES for a in node.names) and not any(
                    (f"{(node.module or '').replace('.', '/')}.py", a.name) in ADAPTERS for a in node.names):
                found.append(f"{rel}:{node.lineno} imports a primitive from {node.module}")
    assert not found, "primitives defined outside edge/codec.py and edge/files.py: " + ", ".join(found)
