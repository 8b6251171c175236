"""Property tests: whatever bytes arrive, the bundle reader answers with a BundleError or a valid list,
never another exception and never a hang. Three layers are fuzzed: the whole file (mostly stopped by
the signature), headers an issuer signed (the parser behind the signature) and decrypted payloads."""

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
from edge.watchlist import bundle
from edge.watchlist.bundle import BundleError

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


def only_bundle_errors(data: bytes) -> None:
    try:
        read_all(data)
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
