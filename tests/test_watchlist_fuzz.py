"""Property tests: whatever bytes arrive, the bundle reader answers with a BundleError or a valid list,
never another exception and never a hang. Three layers are fuzzed, for version 1 and version 2: the
whole file (mostly stopped by the signature; version 2 also re-signed, so the stream must stop it),
headers an issuer signed (the parser behind the signature) and decrypted payloads (version 2: the
entry metadata, the row index and the templates)."""

import hashlib
import json
import signal
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import identity
from edge.watchlist import bundle, bundle_v2, reader
from edge.watchlist.bundle import BundleError
from edge.watchlist.fields import json_depth

VEC = Path(__file__).parent / "data" / "vectors"
VECTOR = json.loads((VEC / "watchlist-v1.json").read_text())
DATA = (VEC / "watchlist-v1.wlb").read_bytes()
ISSUER = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VECTOR["issuer_seed"]))
ISSUER_RAW = identity.raw_public(ISSUER)
TRUSTED = {identity.key_id(ISSUER_RAW): ISSUER_RAW}
BOX = X25519PrivateKey.from_private_bytes(bytes.fromhex(VECTOR["box_wl_private"]))
FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def no_hang():
    def boom(*_):
        raise TimeoutError("the bundle reader hung")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(120)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def read_all(data: bytes):
    """The box's reading path minus the state checks: framing, signature, header, policy, decrypt, entries."""
    p = bundle.parse(data)
    h = bundle.verify(p, TRUSTED)
    bundle.check_policy(h)
    return bundle.decode_entries(bundle.decrypt(p, BOX), h["entries"])


def only_bundle_errors(data: bytes, read=None) -> None:
    """Reading ``data`` (with ``read``, v1's read_all by default) gives a bundle or a one-line BundleError."""
    try:
        (read or read_all)(data)
    except BundleError as exc:
        assert str(exc) and "\n" not in str(exc)


def test_the_vector_itself_reads():
    entries, _, _ = read_all(DATA)
    assert [e.ref for e in entries] == ["PN-0001"]


mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(DATA) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(DATA)), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(DATA)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(DATA) - 1), st.integers(1, 64)),
)


def mutate(data: bytes, ops) -> bytes:
    b = bytearray(data)
    for op, pos, arg in ops:
        pos = min(pos, len(b))
        if op == "flip" and pos < len(b):
            b[pos] ^= arg
        elif op == "cut":
            del b[pos:]
        elif op == "insert":
            b[pos:pos] = bytes([arg])
        elif op == "delete":
            del b[pos:pos + arg]
    return bytes(b)


@FUZZ
@given(st.lists(mutation, min_size=1, max_size=4))
def test_mutated_files_are_refused_cleanly(ops):
    data = mutate(DATA, ops)
    if data == DATA:
        return
    with pytest.raises(BundleError):
        read_all(data)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes_and_random_bytes_after_the_magic(blob):
    only_bundle_errors(blob)
    only_bundle_errors(b"EDGEWL" + blob)
    only_bundle_errors(DATA[:20] + blob)


def frame(header: bytes, ciphertext: bytes, version: int = 1) -> bytes:
    """A file whose framing and signature are right, around whatever header and ciphertext we like."""
    signed = (struct.pack(">6sH8sI", b"EDGEWL", version, bytes.fromhex(identity.key_id(ISSUER_RAW)), len(header))
              + header + struct.pack(">Q", len(ciphertext)) + ciphertext)
    return signed + ISSUER.sign(signed)


json_value = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
HEADER_BYTES = DATA[20:20 + struct.unpack_from(">I", DATA, 16)[0]]
VALID_HEADER = json.loads(HEADER_BYTES)


@FUZZ
@given(st.data())
def test_signed_but_malformed_headers_are_refused_cleanly(data):
    h = dict(VALID_HEADER)
    for key in data.draw(st.lists(st.sampled_from(sorted(h) + ["extra"]), max_size=3)):
        if data.draw(st.booleans()):
            h.pop(key, None)
        else:
            h[key] = data.draw(json_value)
    raw = data.draw(st.one_of(st.just(json.dumps(h).encode()), st.binary(min_size=2, max_size=200)))
    only_bundle_errors(frame(raw, DATA[-64 - 100:-64]))


@settings(FUZZ, max_examples=150)
@given(st.one_of(st.binary(max_size=400), json_value.map(lambda v: json.dumps({"entries": v}).encode()),
                 st.lists(st.dictionaries(st.sampled_from(["ref", "category", "reason", "templates",
                                                           "image_jpeg"]), json_value, max_size=5),
                          max_size=3).map(lambda v: json.dumps({"entries": v}).encode())),
       st.integers(0, 5))
def test_decrypted_payloads_are_validated_cleanly(payload, expected):
    try:
        bundle.decode_entries(payload, expected)
    except BundleError:
        pass


@FUZZ
@given(st.binary(min_size=1, max_size=64))
def test_a_signed_file_with_a_damaged_ciphertext_is_refused(junk):
    with pytest.raises(BundleError):
        read_all(frame(HEADER_BYTES, junk))


# --- version 2: the file, the signed header, the decrypted metadata and row index ----------------

V2_DATA = (VEC / "watchlist-v2.wlb").read_bytes()
V2_HLEN = struct.unpack_from(">I", V2_DATA, 16)[0]
V2_HEADER = json.loads(V2_DATA[20:20 + V2_HLEN])


def read_v2(data: bytes):
    c = reader.verify(data, TRUSTED)
    bundle.check_policy(c.header)
    wl = reader.open_list(c, BOX)
    for row in range(len(wl.templates)):
        wl.image(row)
    return wl


def test_the_v2_vector_itself_reads():
    assert [e.ref for e in read_v2(V2_DATA).entries] == ["PN-0001", "PN-0002"]


v2_mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, len(V2_DATA) - 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, len(V2_DATA)), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, len(V2_DATA)), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, len(V2_DATA) - 1), st.integers(1, 64)),
)


@FUZZ
@given(st.lists(v2_mutation, min_size=1, max_size=4), st.booleans())
def test_mutated_v2_files_are_refused_cleanly(ops, resign):
    """Mutations anywhere; re-signed by the issuer half the time, so the stream and the header checks
    behind the signature are what must refuse them."""
    data = mutate(V2_DATA, ops)
    if data == V2_DATA:
        return
    if resign and len(data) > 84:
        body = data[:-64]
        data = body + ISSUER.sign(bundle_v2.SIG_CONTEXT + hashlib.sha256(body).digest())
    try:
        read_v2(data)
    except BundleError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert resign  # only a re-signed file can still read, and then only if it is still a valid list


def frame_v2(header: bytes, sealed: bytes) -> bytes:
    body = (struct.pack(">6sH8sI", b"EDGEWL", 2, bytes.fromhex(identity.key_id(ISSUER_RAW)), len(header))
            + header + struct.pack(">Q", len(sealed)) + sealed)
    return body + ISSUER.sign(bundle_v2.SIG_CONTEXT + hashlib.sha256(body).digest())


@FUZZ
@given(st.data())
def test_signed_but_malformed_v2_headers_are_refused_cleanly(data):
    h = json.loads(json.dumps(V2_HEADER))
    for key in data.draw(st.lists(st.sampled_from(sorted(h) + ["extra", "policy.target_fpir", "operating.rule",
                                                                "payload.rows", "payload.images_length"]),
                                  max_size=3)):
        target, _, sub = key.partition(".")
        where = h.setdefault(target, {}) if sub and isinstance(h.get(target), dict) else h
        name = sub or key
        if data.draw(st.booleans()):
            where.pop(name, None)
        else:
            where[name] = data.draw(json_value)
    raw = data.draw(st.one_of(st.just(json.dumps(h).encode()), st.binary(min_size=2, max_size=200),
                              st.integers(1, 3000).map(lambda k: b'{"a":' + b"[" * k + b"]" * k + b"}")))
    only_bundle_errors(frame_v2(raw, V2_DATA[28 + V2_HLEN:-64]), read_v2)


entry_v2 = st.fixed_dictionaries({}, optional={
    "ref": st.one_of(st.just("PN-1"), st.text(max_size=70)), "category": st.sampled_from(["wanted", "x", 3]),
    "reason": st.text(max_size=20), "images": st.one_of(json_value, st.lists(st.fixed_dictionaries({}, optional={
        "length": st.integers(-5, 2**21), "sha256": st.sampled_from(["ab" * 32, "AB" * 32, ""]),
        "source": json_value, "taken": st.sampled_from(["2025-01-01", "2025-13-01", 7, ""])}), max_size=3))})


@settings(FUZZ, max_examples=200)
@given(st.one_of(st.binary(max_size=300), json_value.map(lambda v: json.dumps({"entries": v}).encode()),
                 st.lists(entry_v2, max_size=3).map(lambda v: json.dumps({"entries": v}).encode())),
       st.integers(0, 3), st.integers(0, 4), st.integers(0, 3000))
def test_decrypted_v2_metadata_is_validated_cleanly(meta, n, n_images, images_length):
    try:
        bundle_v2._entries(meta, n, n_images, images_length)
    except BundleError as exc:
        assert "\n" not in str(exc)


@settings(FUZZ, max_examples=200)
@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), max_size=5),
       st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=3))
def test_v2_row_index_and_templates_are_validated_cleanly(index, values):
    import numpy as np

    from edge.watchlist.base import Entry, Image

    entries = [Entry("A", images=(Image("ab" * 32),)), Entry("B", images=(Image("cd" * 32), Image("ef" * 32)))]
    idx = np.asarray(index, dtype="<u4").reshape(-1, 2)
    t = np.resize(np.asarray(values, dtype=np.float32), (len(idx), 128))
    try:
        bundle_v2._check_rows(t, idx, entries, 3)
    except BundleError as exc:
        assert "\n" not in str(exc)


@settings(FUZZ, max_examples=300)
@given(st.binary(max_size=200).map(lambda b: bytes(c for c in b if c in b'[]{}"\\a:,')), st.integers(1, 9))
def test_json_depth_never_under_counts(text, block):
    """The depth check must never let through what the JSON parser would recurse into."""
    deepest, level, in_string, escaped = 0, 0, False, False
    for c in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (c == 0x5C, c != 0x22)
        elif c == 0x22:
            in_string = True
        elif c == 0x5C:
            break  # invalid JSON: a parser stops here
        elif c in b"[{":
            level += 1
            deepest = max(deepest, level)
        elif c in b"]}":
            level -= 1
    assert json_depth(text, block) >= deepest
