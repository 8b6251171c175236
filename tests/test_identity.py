"""Box identity: keys on disk with the right modes, kept across create, replaced on rotate; trust store."""

import json
import stat

import pytest
import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import identity
from edge.errors import EdgeError


def mode(p):
    return stat.S_IMODE(p.stat().st_mode)


def test_create_writes_private_keys_0600_in_a_0700_folder(tmp_path):
    ident = identity.create(tmp_path, "box-a")
    assert mode(tmp_path / "keys") == 0o700
    assert mode(tmp_path / "keys" / identity.KEY_FILE) == 0o600
    assert len(ident.signing_public) == 32 and len(ident.wl_public) == 32
    assert len(ident.curve_public) == 40 and len(ident.curve_secret) == 40
    pub = json.loads((tmp_path / "keys" / identity.PUB_FILE).read_text())
    assert pub == identity.public_identity(tmp_path)
    assert pub["box_id"] == "box-a" and pub["wl_key_id"] == identity.key_id(ident.wl_public)
    assert "secret" not in json.dumps(pub) and "signing_key\"" not in json.dumps(pub)


def test_create_twice_keeps_keys_and_load_returns_them(tmp_path):
    a = identity.create(tmp_path, "box-a")
    b = identity.create(tmp_path, "box-a")
    c = identity.load(tmp_path)
    assert a.signing_public == b.signing_public == c.signing_public
    assert a.wl_public == c.wl_public and a.curve_secret == c.curve_secret
    assert a.fingerprint() == c.fingerprint()
    assert len(a.fingerprint()) == 19 and a.fingerprint().count("-") == 3


def test_rotate_replaces_every_key(tmp_path):
    a = identity.create(tmp_path, "box-a")
    b = identity.create(tmp_path, "box-a", rotate=True)
    assert a.signing_public != b.signing_public and a.wl_public != b.wl_public
    assert a.curve_public != b.curve_public
    assert identity.load(tmp_path).wl_public == b.wl_public


def test_load_unprovisioned_box_says_what_to_do(tmp_path):
    with pytest.raises(EdgeError, match="not provisioned: run 'edge provision'"):
        identity.load(tmp_path)


def test_damaged_key_file_is_a_clear_error(tmp_path):
    identity.create(tmp_path, "box-a")
    (tmp_path / "keys" / identity.KEY_FILE).write_text("{garbage")
    with pytest.raises(EdgeError, match="damaged"):
        identity.load(tmp_path)


def issuer_file(tmp_path, name="issuer.pub"):
    raw = identity.raw_public(Ed25519PrivateKey.generate())
    p = tmp_path / name
    p.write_text(json.dumps(identity.issuer_public_doc(raw, "SPOC test")))
    return p, raw


def test_add_issuer_and_list(tmp_path):
    state = tmp_path / "state"
    p, raw = issuer_file(tmp_path)
    kid = identity.add_issuer(state, p)
    assert kid == identity.key_id(raw)
    assert identity.issuers(state) == {kid: raw}
    assert identity.add_issuer(state, p) == kid  # idempotent


@pytest.mark.parametrize("content, reason", [
    ("not json at all", "not JSON"),
    ('{"type": "something-else"}', "expected type"),
    ('{"type": "edge-issuer-ed25519", "public_key": "!!!", "key_id": "x"}', "not valid base64"),
    ('{"type": "edge-issuer-ed25519", "public_key": "AAAA", "key_id": "x"}', "must be 32 bytes"),
    ('{"type": "edge-issuer-ed25519", "public_key": "' + "A" * 43 + '=", "key_id": "0000"}',
     "key_id does not match"),
])
def test_add_issuer_refuses_garbage(tmp_path, content, reason):
    p = tmp_path / "bad.pub"
    p.write_text(content)
    with pytest.raises(EdgeError, match=reason):
        identity.add_issuer(tmp_path / "state", p)
    assert identity.issuers(tmp_path / "state") == {}


def test_add_issuer_missing_or_binary_file(tmp_path):
    with pytest.raises(EdgeError, match="cannot read key file"):
        identity.add_issuer(tmp_path, tmp_path / "nope.pub")
    (tmp_path / "bin.pub").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(EdgeError, match="not a text key file"):
        identity.add_issuer(tmp_path, tmp_path / "bin.pub")


def test_add_console_and_list(tmp_path):
    pub, _ = zmq.curve_keypair()
    p = tmp_path / "console.pub"
    p.write_text("# operator console 1\n" + pub.decode() + "\n")
    kid = identity.add_console(tmp_path / "state", p)
    assert identity.consoles(tmp_path / "state") == {kid: pub}


@pytest.mark.parametrize("content", ["short", "x" * 41, "", "\u00e9" * 40])
def test_add_console_refuses_garbage(tmp_path, content):
    p = tmp_path / "bad.pub"
    p.write_text(content)
    with pytest.raises(EdgeError, match="z85 CURVE key"):
        identity.add_console(tmp_path / "state", p)
    assert identity.consoles(tmp_path / "state") == {}
