"""Signed, encrypted watch lists on the box: loads on its box only, every bad bundle refused with its own
reason while the list in force keeps matching, expiry, no rollback, purge with a verifiable receipt."""

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from wlhelpers import box_config, face, make_bundle, t, trust_issuer

from edge import identity
from edge.errors import EdgeError
from edge.face import model as face_model
from edge.watchlist import bundle, receipt
from edge.watchlist.base import Matcher
from edge.watchlist.bundle import BundleError
from edge.watchlist.service import WatchlistService
from edge.watchlist.service import state as service_state

ISSUER = Ed25519PrivateKey.generate()


class Box:
    """A provisioned box: identity, trusted issuer, a matcher and the service, in a tmp state dir."""

    def __init__(self, root, box_id="box-a", **cfg):
        self.state = root / box_id
        self.cfg = box_config(self.state, box_id, **cfg)
        self.ident = identity.create(self.state, box_id)
        trust_issuer(self.state, ISSUER)
        self.matcher = Matcher(face_model.cap(self.cfg))
        self.events, self.audit = [], []
        self.svc = WatchlistService(self.cfg, self.ident, self.matcher, self.events.append,
                                    lambda kind, **f: self.audit.append((kind, f)))

    def bundle(self, *args, **kw) -> bytes:
        return make_bundle(ISSUER, self.ident.wl_public, *args, **kw)

    def load_bytes(self, data: bytes, name="list.wlb"):
        p = self.state.parent / name
        p.write_bytes(data)
        return self.svc.load(p)

    def matches_alex(self) -> bool:
        hit = self.matcher.match(face("alex_lacamoire1.jpg")[0])  # another photo of the listed person
        return hit is not None and hit[0].ref == "PN-0000"


@pytest.fixture
def box(tmp_path):
    b = Box(tmp_path)
    b.load_bytes(b.bundle(sequence=5, list_id="good"))
    assert b.matches_alex()
    return b


def test_bundle_for_box_a_loads_and_matches_a_different_photo(box):
    st = box.svc.status()
    assert st["list_id"] == "good" and st["entries"] == 1 and st["sequence"] == 5 and st["in_memory"]
    assert st["issuer"] == identity.key_id(identity.raw_public(ISSUER))
    assert 7000 < st["expires_in_s"] <= 7200
    assert box.matcher.match(face("lin-manuel-miranda.png")[0]) is None
    assert box.events[-1]["event"] == "watchlist_loaded" and box.audit[-1][0] == "watchlist_loaded"
    assert os.stat(box.svc.stored).st_mode & 0o777 == 0o600


def test_same_bundle_is_refused_by_box_b(tmp_path):
    a, b = Box(tmp_path, "box-a"), Box(tmp_path, "box-b")
    data = a.bundle()
    with pytest.raises(BundleError, match="this list is for box box .* not this box box-b"):
        b.load_bytes(data)
    assert b.matcher.current is None and not b.svc.stored.exists()


def _resign(data: bytes, key) -> bytes:
    return data[:-64] + key.sign(data[:-64])


REFUSALS = {
    "unknown issuer": (lambda b: make_bundle(Ed25519PrivateKey.generate(), b.ident.wl_public),
                       "signed by an unknown issuer"),
    "bad signature": (lambda b: _resign(b.bundle(sequence=6), Ed25519PrivateKey.generate()), "bad signature"),
    "altered ciphertext": (lambda b: (lambda d: d[:-100] + bytes([d[-100] ^ 1]) + d[-99:])(b.bundle(sequence=6)),
                           "bad signature"),
    "truncated": (lambda b: b.bundle(sequence=6)[:-1], "the file is truncated"),
    "half a file": (lambda b: (lambda d: d[: len(d) // 2])(b.bundle(sequence=6)), "the file is truncated"),
    "trailing data": (lambda b: b.bundle(sequence=6) + b"x", "unexpected 1 bytes after the signature"),
    "empty": (lambda b: b"", "the file is empty"),
    "random bytes": (lambda b: os.urandom(4096), "not a watch-list bundle"),
    "expired": (lambda b: b.bundle(sequence=6, not_before=t(hours=-3), not_after=t(seconds=-1)),
                "the list expired at"),
    "not yet valid": (lambda b: b.bundle(sequence=6, not_before=t(hours=1)), "the list is not valid before"),
    "older sequence": (lambda b: b.bundle(sequence=4), "sequence 4 is older .* rollback refused"),
    "reused sequence": (lambda b: b.bundle(sequence=5, list_id="other"), "sequence 5 was already used"),
    "too many entries": (lambda b: b.bundle(("alex-lacamoire.png", "lin-manuel-miranda.png"), sequence=6,
                                            max_entries=1), "too many entries: 2 is over the policy maximum of 1"),
    "unsupported version": (lambda b: b.bundle(sequence=6, version=3),
                            r"^unsupported bundle version 3 \(this box reads versions 1, 2\)$"),
    "stricter threshold floor": (lambda b: b.bundle(sequence=6, threshold_floor=0.5),
                                 "more lenient than the list's threshold floor 0.5"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_with_its_own_reason_and_the_list_in_force_stays(box, case):
    make, reason = REFUSALS[case]
    stored = box.svc.stored.read_bytes()
    with pytest.raises(BundleError, match=reason) as exc:
        box.load_bytes(make(box))
    assert "\n" not in str(exc.value)
    assert box.matches_alex() and box.svc.status()["list_id"] == "good"
    assert box.svc.stored.read_bytes() == stored
    assert box.events[-1]["event"] == "watchlist_refused" and box.audit[-1][0] == "watchlist_refused"


def test_one_flipped_byte_anywhere_is_refused(box):
    data = box.bundle(sequence=6)
    for pos in range(len(data)):
        bad = bytearray(data)
        bad[pos] ^= 0x40
        with pytest.raises(BundleError):
            box.svc.open(bytes(bad))
    assert box.matches_alex()


def test_newer_list_replaces_and_wipes_the_old_one(box):
    old = box.matcher.current
    box.load_bytes(box.bundle(("lin-manuel-miranda.png",), sequence=6))
    assert old.templates.sum() == 0 and old.entries == []
    assert not box.matches_alex() and box.matcher.match(face("lin-manuel-miranda.png")[0])


def test_stored_bundle_reloads_at_start_and_rollback_stays_refused(box):
    again = Box.__new__(Box)
    again.__dict__.update(box.__dict__)
    again.matcher = Matcher(face_model.cap(box.cfg))
    again.svc = WatchlistService(box.cfg, identity.load(box.state), again.matcher)
    again.svc.start()
    try:
        assert again.matches_alex() and again.svc.status()["in_memory"]
        with pytest.raises(BundleError, match="rollback refused"):
            again.load_bytes(box.bundle(sequence=1))
    finally:
        again.svc.stop()


def test_purge_wipes_everything_and_the_receipt_verifies(box):
    wl = box.matcher.current
    rc = box.svc.purge("operation ended")
    assert box.matcher.current is None and wl.templates.sum() == 0
    assert not box.svc.stored.exists() and box.svc.status()["list_id"] is None
    assert (rc["list_id"], rc["entries"], rc["sequence"], rc["reason"]) == ("good", 1, 5, "operation ended")
    body = receipt.verify(json.loads(json.dumps(rc)), box.ident.signing_public)
    assert body["box_id"] == "box-a"
    assert list((box.state / "watchlist" / "receipts").glob("*.json"))
    with pytest.raises(BundleError, match="was purged from this box"):
        box.load_bytes(box.bundle(sequence=5, list_id="good"))
    with pytest.raises(EdgeError, match="no watch list is loaded"):
        box.svc.purge()


def test_forged_receipts_do_not_verify(box):
    rc = box.svc.purge()
    with pytest.raises(EdgeError, match="forged or was altered"):
        receipt.verify(dict(rc, entries=0), box.ident.signing_public)
    other = identity.create(box.state.parent / "other", "box-a")
    forged = receipt.make(other, list_id="good", issuer=rc["issuer"], deployment="", sequence=5, entries=1,
                          reason="x")
    with pytest.raises(EdgeError, match="not this box"):
        receipt.verify(forged, box.ident.signing_public)
    with pytest.raises(EdgeError, match="forged or was altered"):
        receipt.verify(dict(forged, box_key=rc["box_key"]), box.ident.signing_public)


def test_list_is_purged_automatically_at_not_after(box, monkeypatch):
    box.svc.tick()
    assert box.matches_alex()
    real_now = service_state.now
    monkeypatch.setattr(service_state, "now", lambda: real_now() + (bundle.parse_time(t(hours=3)) - real_now()))
    box.svc.tick()
    assert box.matcher.current is None and not box.svc.stored.exists()
    assert box.audit[-1][0] == "watchlist_purged" and box.audit[-1][1]["reason"] == "expired"


def test_usb_stick_with_a_bundle_is_picked_up(tmp_path):
    usb = tmp_path / "usb"
    b = Box(tmp_path, usb=[usb, tmp_path / "not-mounted"])
    b.svc.tick()  # nothing mounted yet
    usb.mkdir()
    (usb / "notes.txt").write_text("hello")
    (usb / "list.wlb").write_bytes(b.bundle(sequence=3))
    b.svc.tick()
    assert b.matches_alex() and b.svc.status()["sequence"] == 3
    b.svc.tick()  # the same stick again: no reload
    assert [e["event"] for e in b.events].count("watchlist_loaded") == 1
    (usb / "old.wlb").write_bytes(b.bundle(sequence=2))
    b.svc.tick()  # refused, logged, the list stays
    assert b.matches_alex() and b.events[-1]["event"] == "watchlist_refused"


def test_background_thread_loads_from_usb(tmp_path):
    usb = tmp_path / "usb"
    usb.mkdir()
    b = Box(tmp_path, usb=[usb])
    b.svc.poll = 0.05
    b.svc.start()
    try:
        shutil.copyfile(_write(tmp_path / "src.wlb", b.bundle()), usb / "a.wlb")
        for _ in range(100):
            if b.matcher.current is not None:
                break
            b.svc._stop.wait(0.05)
        assert b.matches_alex()
    finally:
        b.svc.stop()


def _write(p, data):
    p.write_bytes(data)
    return p


def test_control_commands(box):
    cmds = box.svc.commands()
    assert set(cmds) == {"watchlist_load", "watchlist_purge", "watchlist_status"}
    assert cmds["watchlist_status"]({})["list_id"] == "good"
    p = _write(box.state.parent / "n.wlb", box.bundle(sequence=9))
    assert cmds["watchlist_load"]({"path": str(p)})["sequence"] == 9
    assert cmds["watchlist_purge"]({"reason": "test"})["receipt"]["reason"] == "test"


VECTORS = Path(__file__).parent / "data" / "vectors"


def test_vector_reads_by_the_spec_alone_and_by_the_box():
    """docs/watchlist-format.md followed step by step with bare primitives, then by edge's own reader."""
    vec = json.loads((VECTORS / "watchlist-v1.json").read_text())
    data = (VECTORS / "watchlist-v1.wlb").read_bytes()
    assert hashlib.sha256(data).hexdigest() == vec["sha256"]
    magic, version, issuer_id, hlen = struct.unpack_from(">6sH8sI", data)
    assert (magic, version) == (b"EDGEWL", 1)
    hb = data[20:20 + hlen]
    (clen,) = struct.unpack_from(">Q", data, 20 + hlen)
    ct, sig = data[28 + hlen:28 + hlen + clen], data[28 + hlen + clen:]
    assert len(sig) == 64
    issuer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vec["issuer_seed"])).public_key()
    issuer_raw = identity.raw_public(issuer)
    assert issuer_id == hashlib.sha256(issuer_raw).digest()[:8]
    issuer.verify(sig, data[:-64])
    header = json.loads(hb)
    assert {k: header[k] for k in vec["header"]} == vec["header"]
    box = X25519PrivateKey.from_private_bytes(bytes.fromhex(vec["box_wl_private"]))
    box_raw = identity.raw_public(box)
    eph = base64.b64decode(header["wrap"]["ephemeral"])
    wrap_key = HKDF(hashes.SHA256(), 32, eph + box_raw, b"edge-watchlist/v1 wrap").derive(
        box.exchange(X25519PublicKey.from_public_bytes(eph)))
    file_key = AESGCM(wrap_key).decrypt(bytes(12), base64.b64decode(header["wrap"]["wrapped_key"]), None)
    assert file_key.hex() == vec["file_key"]
    payload_key = HKDF(hashes.SHA256(), 32, None, b"edge-watchlist/v1 payload").derive(file_key)
    payload = json.loads(AESGCM(payload_key).decrypt(base64.b64decode(header["payload"]["nonce"]), ct, hb))
    (entry,) = payload["entries"]
    template = np.frombuffer(base64.b64decode(entry["templates"]), "<f4")
    assert np.array_equal(template, (np.arange(128) - 64) / 128)
    assert base64.b64decode(entry["image_jpeg"]).hex() == vec["entry"]["image_jpeg"]

    p = bundle.parse(data)
    assert bundle.verify(p, {identity.key_id(issuer_raw): issuer_raw}) == header
    entries, templates, owners = bundle.decode_entries(bundle.decrypt(p, box), header["entries"])
    assert entries[0].ref == "PN-0001" and entries[0].category == "wanted" and owners.tolist() == [0]
    assert np.array_equal(templates[0], template)


def test_vector_is_reproduced_byte_for_byte():
    spec = importlib.util.spec_from_file_location("make_vector", VECTORS / "make_watchlist_vector.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.build() == (VECTORS / "watchlist-v1.wlb").read_bytes()


def test_a_damaged_sequence_record_stops_loading_rather_than_allowing_rollback(box):
    (box.state / "watchlist" / "sequence.json").write_text("{damaged")
    with pytest.raises(EdgeError, match="sequence record .* is damaged"):
        box.load_bytes(box.bundle(sequence=1))
    assert box.matches_alex()
    with pytest.raises(EdgeError, match="no bundle file given"):
        box.svc.commands()["watchlist_load"]({})


def test_a_list_that_expired_while_the_box_was_off_is_purged_at_start(box, monkeypatch):
    later = Box.__new__(Box)
    later.__dict__.update(box.__dict__)
    later.matcher, later.audit = Matcher(0.6), []
    later.svc = WatchlistService(box.cfg, box.ident, later.matcher, record=lambda k, **f: later.audit.append(k))
    real_now = service_state.now
    monkeypatch.setattr(service_state, "now", lambda: real_now() + (bundle.parse_time(t(hours=3)) - real_now()))
    later.svc._reload_stored()
    assert later.matcher.current is None and not box.svc.stored.exists()
    assert later.audit == ["watchlist_purged"]
