"""Bundle format version 2: a chunked authenticated stream with the templates as one binary block and
the reference images read from the stored bundle per alert. Round trip, every chunk-level attack
refused in one sentence (the file re-signed by the issuer, so the stream itself must catch it),
version 1 still read, every field bounded, and the alert showing the image of the row that matched."""

import hashlib
import json
import os
import struct
import tracemalloc
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from wlhelpers import box_config, face, make_bundle, t, trust_issuer

from edge import config, identity
from edge.alerts import messages
from edge.face import model as face_model
from edge.watchlist import bundle, bundle_v2, reader, stream
from edge.watchlist.base import Entry, Matcher
from edge.watchlist.bundle import BundleError
from edge.watchlist.bundle_v2 import Item, RefImage
from edge.watchlist.service import WatchlistService

ISSUER = Ed25519PrivateKey.generate()
ISSUER_RAW = identity.raw_public(ISSUER)
TRUSTED = {identity.key_id(ISSUER_RAW): ISSUER_RAW}


def header(**kw) -> dict:
    h = {"list_id": "v2-list", "deployment": "op v2", "box_id": "box-a", "created": t(),
         "not_before": t(minutes=-1), "not_after": t(hours=2), "sequence": 3,
         "policy": {"max_entries": 100, "threshold_floor": 0.6, "retention_days": 31}}
    h.update(kw)
    return h


def big_jpeg(i: int, size: int) -> bytes:
    return b"\xff\xd8\xff\xfe" + os.urandom(size - 6) + bytes([i % 256]) + b"\xd9"


def resign(data: bytes) -> bytes:
    body = data[:-64]
    return body + ISSUER.sign(bundle_v2.SIG_CONTEXT + hashlib.sha256(body).digest())


def sections(data: bytes):
    """(header length, stream start, stream length) of a version-2 file."""
    hlen = struct.unpack_from(">I", data, 16)[0]
    (clen,) = struct.unpack_from(">Q", data, 20 + hlen)
    return hlen, 28 + hlen, clen


def read_all(data: bytes, key: X25519PrivateKey):
    return reader.open_list(reader.verify(data, TRUSTED), key)


@pytest.fixture(scope="module")
def box_key():
    return X25519PrivateKey.generate()


@pytest.fixture(scope="module")
def multi_chunk(box_key):
    """Three entries, images big enough that the stream has several 64 KiB chunks."""
    rng = np.random.default_rng(0)
    items = [Item(f"PN-{i}", "wanted", f"reason {i}", rng.normal(size=(2, 128)).astype(np.float32) / 10,
                  [RefImage(big_jpeg(i, 90_000), "PNC", f"2025-01-0{i + 1}"), RefImage(big_jpeg(i, 300))])
             for i in range(3)]
    return items, bundle_v2.write(header(), items, ISSUER, identity.raw_public(box_key))


def test_round_trip_keeps_templates_images_and_provenance(multi_chunk, box_key):
    items, data = multi_chunk
    assert data[6:8] == b"\x00\x02"
    wl = read_all(data, box_key)
    h = wl.meta["header"]
    assert (h["version"], h["entries"], h["payload"]["rows"], h["payload"]["images"]) == (2, 3, 6, 6)
    assert sections(data)[2] > 4 * stream.SEALED
    assert [e.ref for e in wl.entries] == ["PN-0", "PN-1", "PN-2"] and wl.owners.tolist() == [0, 0, 1, 1, 2, 2]
    for row in range(6):
        it, k = items[row // 2], row % 2
        assert np.array_equal(wl.templates[row], it.templates[k])
        assert wl.image(row) == it.images[k].jpeg
    img = wl.entries[1].images[0]
    assert (img.source, img.taken) == ("PNC", "2025-01-02")
    assert img.sha256 == hashlib.sha256(items[1].images[0].jpeg).hexdigest()
    assert wl.entries[1].images[1].source == "" and all(e.image_jpeg == b"" for e in wl.entries)
    wl.wipe()
    assert wl.image(0) == b""


def _swap_chunks(data: bytes, a: int, b: int) -> bytes:
    _, start, _ = sections(data)
    s = bytearray(data)
    ca = data[start + a * stream.SEALED:start + (a + 1) * stream.SEALED]
    cb = data[start + b * stream.SEALED:start + (b + 1) * stream.SEALED]
    s[start + a * stream.SEALED:start + (a + 1) * stream.SEALED] = cb
    s[start + b * stream.SEALED:start + (b + 1) * stream.SEALED] = ca
    return bytes(s)


def _flip(data: bytes, chunk: int) -> bytes:
    _, start, _ = sections(data)
    s = bytearray(data)
    s[start + chunk * stream.SEALED + 100] ^= 1
    return bytes(s)


def _drop_last_chunk(data: bytes) -> bytes:
    hlen, start, clen = sections(data)
    n = -(-clen // stream.SEALED)
    cut = start + (n - 1) * stream.SEALED
    body = data[:20 + hlen] + struct.pack(">Q", (n - 1) * stream.SEALED) + data[start:cut]
    return body + bytes(64)


CHUNK_ATTACKS = {
    "flipped chunk": (lambda d: resign(_flip(d, 2)), r"^payload chunk 2 of \d+ fails authentication"),
    "reordered chunks": (lambda d: resign(_swap_chunks(d, 1, 2)), r"^payload chunk 1 of \d+ fails authentication"),
    "truncated stream": (lambda d: resign(_drop_last_chunk(d)),
                         r"^the payload stream is \d+ bytes but the header's sizes make \d+$"),
    "truncated file": (lambda d: d[:-1], r"^the file is truncated"),
    "not re-signed": (lambda d: _flip(d, 2), r"^bad signature"),
}


@pytest.mark.parametrize("case", list(CHUNK_ATTACKS))
def test_chunk_attacks_are_refused_in_one_sentence(multi_chunk, box_key, case):
    make, reason = CHUNK_ATTACKS[case]
    with pytest.raises(BundleError, match=reason) as exc:
        read_all(make(multi_chunk[1]), box_key)
    assert "\n" not in str(exc.value)


def test_a_last_chunk_sealed_as_not_last_is_refused(box_key):
    """A stream cut at a chunk boundary, header sizes and signature made to agree: the last-chunk flag."""
    file_key, nonce = os.urandom(32), os.urandom(16)
    items = [Item("PN-1", "wanted", "", np.ones((1, 128), np.float32) / 10, [RefImage(big_jpeg(1, 200_000))])]
    full = bundle_v2.write(header(), items, ISSUER, identity.raw_public(box_key), file_key=file_key, nonce=nonce)
    h = json.loads(full[20:20 + struct.unpack_from(">I", full, 16)[0]])
    pay = h["payload"]
    plain_len = bundle_v2.layout(pay["rows"], pay["meta_length"], pay["images_length"])["plain"]
    cut_plain = (plain_len // stream.CHUNK) * stream.CHUNK  # whole chunks only
    h["payload"]["images_length"] -= plain_len - cut_plain
    hb = bundle.canonical(h)
    key, aad = stream.payload_key(file_key, nonce), hashlib.sha256(hb).digest()
    plain = b"".join(p for _, p in stream.read_chunks(
        stream.Source(full), sections(full)[1], plain_len, key, hashlib.sha256(full[20:20 + len(hb)]).digest()))
    # re-seal the kept chunks with the new header's AAD but keep them all flagged "not last"
    sealed = b"".join(key.encrypt(i.to_bytes(11, "big") + b"\x00", plain[i * stream.CHUNK:(i + 1) * stream.CHUNK], aad)
                      for i in range(cut_plain // stream.CHUNK))
    body = bundle.PREFIX.pack(bundle.MAGIC, 2, bytes.fromhex(identity.key_id(ISSUER_RAW)), len(hb)) + hb \
        + struct.pack(">Q", len(sealed)) + sealed
    with pytest.raises(BundleError, match=r"^payload chunk \d+ of \d+ fails authentication.*truncated$"):
        read_all(resign(body + bytes(64)), box_key)


def test_the_stored_bundle_altered_after_loading_costs_only_that_image(tmp_path, multi_chunk, box_key):
    items, data = multi_chunk
    path = tmp_path / "stored.wlb"
    path.write_bytes(data)
    wl = reader.open_list(reader.verify(stream.Source.open(path), TRUSTED), box_key)
    assert wl.image(0) == items[0].images[0].jpeg
    with open(path, "r+b") as f:  # a chunk inside entry 0's first image
        f.seek(sections(data)[1] + 1 * stream.SEALED + 10)
        f.write(b"\x00\x00")
    with pytest.raises(BundleError, match=r"^payload chunk 1 of \d+ fails authentication"):
        wl.image(0)
    assert wl.image(5) == items[2].images[1].jpeg
    wl.wipe()


# --- version 1 still read -----------------------------------------------------------------------

class Box:
    def __init__(self, root, box_id="box-a"):
        self.state = root / box_id
        self.cfg = box_config(self.state, box_id)
        self.ident = identity.create(self.state, box_id)
        trust_issuer(self.state, ISSUER)
        self.matcher = Matcher(face_model.cap(self.cfg))
        self.svc = WatchlistService(self.cfg, self.ident, self.matcher)

    def load(self, data: bytes, name="list.wlb"):
        p = self.state.parent / name
        p.write_bytes(data)
        return self.svc.load(p)


def test_version_1_and_version_2_both_load_and_match(tmp_path):
    box = Box(tmp_path)
    alex = face("alex_lacamoire1.jpg")[0]
    box.load(make_bundle(ISSUER, box.ident.wl_public, ("alex-lacamoire.png",), sequence=1, version=1))
    wl1 = box.matcher.current
    assert wl1.meta["version"] == 1 and box.matcher.match(alex)[0].ref == "PN-0000"
    assert wl1.image(0) == face("alex-lacamoire.png")[1]
    box.load(make_bundle(ISSUER, box.ident.wl_public, ("alex-lacamoire.png",), sequence=2))
    wl2 = box.matcher.current
    assert wl2.meta["version"] == 2 and box.matcher.match(alex)[0].ref == "PN-0000"
    assert wl2.image(0) == face("alex-lacamoire.png")[1]
    assert wl1.entries == [] and not (box.state / "watchlist" / "incoming.wlb").exists()
    assert box.svc.stored.read_bytes()[6:8] == b"\x00\x02"


# --- bounds -------------------------------------------------------------------------------------

def _signed_v2(hb: bytes, ciphertext: bytes = bytes(100)) -> bytes:
    body = (bundle.PREFIX.pack(bundle.MAGIC, 2, bytes.fromhex(identity.key_id(ISSUER_RAW)), len(hb)) + hb
            + struct.pack(">Q", len(ciphertext)) + ciphertext)
    return body + ISSUER.sign(bundle_v2.SIG_CONTEXT + hashlib.sha256(body).digest())


def _signed_v1(hb: bytes, ciphertext: bytes = bytes(100)) -> bytes:
    body = (bundle.PREFIX.pack(bundle.MAGIC, 1, bytes.fromhex(identity.key_id(ISSUER_RAW)), len(hb)) + hb
            + struct.pack(">Q", len(ciphertext)) + ciphertext)
    return body + ISSUER.sign(body)


@pytest.mark.parametrize("sign", [_signed_v1, _signed_v2], ids=["v1", "v2"])
def test_a_deeply_nested_signed_header_is_one_sentence(sign):
    deep = b'{"format":"edge-watchlist","x":' + b"[" * 30000 + b"]" * 30000 + b"}"
    with pytest.raises(BundleError, match=r"^the signed header is nested more than 8 levels deep$"):
        reader.verify(sign(deep), TRUSTED)


def _real_header(box_key, **changes) -> bytes:
    data = bundle_v2.write(header(), [Item("PN-1", "wanted", "", np.ones((1, 128), np.float32) / 10,
                                           [RefImage(big_jpeg(1, 100))])], ISSUER, identity.raw_public(box_key))
    h = json.loads(data[20:20 + struct.unpack_from(">I", data, 16)[0]])
    for path, value in changes.items():
        d = h
        *parents, last = path.split(".")
        for p in parents:
            d = d.setdefault(p, {})
        d[last] = value
    return bundle.canonical(h)


HEADER_BOUNDS = {
    "list_id": ("x" * 65, "header.list_id is longer than 64 characters"),
    "deployment": ("d" * 201, "header.deployment is longer than 200 characters"),
    "box_id": ("b" * 65, "header.box_id is longer than 64 characters"),
    "entries": (100_001, r"header.entries 100001 is out of range \(0..100000\)"),
    "sequence": (2**60, r"header.sequence is out of range"),
    "payload.rows": (17, r"payload.rows 17 is out of range \(1..16\) for 1 entries"),
    "payload.images": (17, r"payload.images 17 is out of range \(1..16\) for 1 entries"),
    "payload.meta_length": (1 << 30, r"payload.meta_length \d+ is out of range"),
    "payload.chunk_size": (1 << 20, "the bundle uses an unsupported encryption algorithm or chunk size"),
    "policy.target_fpir": (1.5, r"policy.target_fpir 1.5 is out of range \(0, 1\)"),
    "operating.threshold": (3, r"operating.threshold 3 is out of range \(0, 2\]"),
    "operating.extrapolated": ("yes", "operating.extrapolated must be true or false"),
    "operating.expected_fpir": ("low", "operating.expected_fpir is missing or of the wrong type"),
    "operating.list_size": (-1, r"operating.list_size is out of range"),
    "operating.rule": ("r" * 65, "operating.rule is longer than 64 characters"),
    "operating.calibration": (7, "operating.calibration is missing or of the wrong type"),
}


@pytest.mark.parametrize("path", list(HEADER_BOUNDS))
def test_over_long_or_out_of_range_header_fields_are_refused(box_key, path):
    value, reason = HEADER_BOUNDS[path]
    with pytest.raises(BundleError, match=f"^{reason}") as exc:
        reader.verify(_signed_v2(_real_header(box_key, **{path: value})), TRUSTED)
    assert "\n" not in str(exc.value)


def test_a_valid_operating_point_and_target_are_accepted_and_kept(box_key):
    op = {"rule": "nearest", "threshold": 0.45, "expected_fpir": 0.001, "list_size": 1, "calibration": "lfw-dev"}
    items = [Item("PN-1", "wanted", "", np.ones((1, 128), np.float32) / 10, [RefImage(big_jpeg(1, 100))])]
    h = header(operating=op)
    h["policy"]["target_fpir"] = 0.001
    wl = read_all(bundle_v2.write(h, items, ISSUER, identity.raw_public(box_key)), box_key)
    assert wl.meta["header"]["operating"] == op and wl.meta["header"]["policy"]["target_fpir"] == 0.001


def _meta_doc(**changes) -> dict:
    img = {"length": 100, "sha256": "ab" * 32, "source": "PNC", "taken": "2025-01-01"}
    entry = {"ref": "PN-1", "category": "wanted", "reason": "r", "images": [img]}
    for k, v in changes.items():
        (img if k in img else entry)[k] = v
    return {"entries": [entry]}


META_BOUNDS = {
    "ref": ("P" * 65, "reference must be 1-64 letters"),
    "reason": ("r" * 501, "reason must be text of at most 500 characters"),
    "category": ("c" * 5000, "category 'cccccccccccccccccccc' is not one of"),
    "source": ("s" * 101, "source is longer than 100 characters"),
    "taken": ("2025-02-30", "taken must be a date like 2026-03-01"),
    "sha256": ("AB" * 32, "sha256 must be 64 lowercase hex digits"),
    "length": ((1 << 20) + 1, "length must be 4..1048576 bytes"),
    "images": ([{"length": 100, "sha256": "ab" * 32}] * 17, "needs 1-16 images"),
}


@pytest.mark.parametrize("name", list(META_BOUNDS))
def test_over_long_entry_fields_are_refused(name):
    value, reason = META_BOUNDS[name]
    with pytest.raises(BundleError, match=reason) as exc:
        bundle_v2._entries(bundle.canonical(_meta_doc(**{name: value})), 1, 1, 100)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 200


def test_deep_entry_metadata_is_one_sentence():
    with pytest.raises(BundleError, match="^the entry metadata is nested more than 8 levels deep$"):
        bundle_v2._entries(b'{"entries":' + b"[" * 100000 + b"]" * 100000 + b"}", 1, 1, 100)


def test_more_than_16_templates_for_one_entry_is_refused(box_key):
    items = [Item("PN-1", "wanted", "", np.ones((17, 128), np.float32) / 10, [RefImage(big_jpeg(1, 100))])]
    with pytest.raises(BundleError, match=r"payload.rows 17 is out of range \(1..16\)"):
        read_all(bundle_v2.write(header(), items, ISSUER, identity.raw_public(box_key)), box_key)


# --- the alert shows the image of the row that matched ------------------------------------------

def test_the_alert_carries_the_reference_image_of_the_matched_row(tmp_path):
    """One reference holding two people's photos (Obama, then Biden): a sighting of Biden shows Biden's
    image, read from the stored bundle, not the entry's first image."""
    from edge.pipeline.daemon import Daemon

    state = tmp_path / "state"
    cfg = config.parse(f'box_id = "box-a"\nmodel = "dlib-resnet"\nstate_dir = "{state}"\n'
                       '[[cameras]]\nid = "cam1"\nsource = "x.mp4"\n[deployment]\nrequired = false\n')
    daemon = Daemon(cfg)
    daemon.prepare_state_dir()
    published = []
    daemon.publish = published.append
    ident = identity.create(state, "box-a")
    trust_issuer(state, ISSUER)
    (obama_t, obama_jpg), (biden_t, biden_jpg) = face("obama.jpg"), face("biden.jpg")
    items = [Item("PN-7", "wanted", "two photos", np.stack([obama_t, biden_t]),
                  [RefImage(obama_jpg, "PNC", "2024-05-01"), RefImage(biden_jpg, "Niche", "2025-07-01")])]
    src = tmp_path / "list.wlb"
    src.write_bytes(bundle_v2.write(header(), items, ISSUER, ident.wl_public))
    svc = WatchlistService(cfg, ident, daemon.matcher)
    svc.load(src)
    src.unlink()  # the box reads its own stored copy
    daemon.on_encoding({"camera_id": "cam1", "track_id": "t-1", "frame_time": datetime.now(UTC).timestamp(),
                        "descriptor": face("biden2.jpg")[0].tolist(), "crop_jpeg": messages.b64(b"\xff\xd8crop")})
    (alert,) = [m for m in published if m.get("type") == "alert"]
    assert alert["ref"] == "PN-7"
    assert messages.unb64(alert["reference_jpeg"]) == biden_jpg != obama_jpg
    wl = daemon.matcher.current
    assert wl.entries[0].images[1].source == "Niche"
    assert wl.image(wl.matched_row(wl.entries[0], face("obama2.jpg")[0])) == obama_jpg


# --- memory ---------------------------------------------------------------------------------------

def test_a_20000_entry_list_holds_its_templates_once_and_no_images(tmp_path, box_key):
    n, img_size = 20_000, 3_000
    rng = np.random.default_rng(2)
    t = rng.normal(size=(n, 128)).astype(np.float32) / 12
    base = big_jpeg(0, img_size)
    items = [Item(f"WL-{i:06d}", "wanted", "bench", t[i:i + 1], [RefImage(base[:-8] + i.to_bytes(8, "big"))])
             for i in range(n)]
    path = tmp_path / "big.wlb"
    with open(path, "wb") as f:
        bundle_v2.write(dict(header(), policy={"max_entries": n, "threshold_floor": 0.6, "retention_days": 31}),
                        items, ISSUER, identity.raw_public(box_key), f)
    del items
    tracemalloc.start()
    c = reader.verify(stream.Source.open(path), TRUSTED)
    wl = reader.open_list(c, box_key)
    _, peak = tracemalloc.get_traced_memory()
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert np.array_equal(wl.templates, t) and len(wl) == n
    templates = t.nbytes  # 10 MB
    assert wl.templates.base is None or wl.templates.base.nbytes == templates  # decrypted in place, one buffer
    # measured 36 MB: templates once (10), entries (9), metadata text and its parse; a second copy of the
    # templates, or the images, would not fit
    assert peak < 2 * templates + 20e6, f"peak {peak / 1e6:.0f} MB for {templates / 1e6:.0f} MB of templates"
    assert held < n * img_size / 2  # the 60 MB of images are not in memory
    assert wl.image(12345)[-8:] == (12345).to_bytes(8, "big")
    wl.wipe()


def test_expired_v2_list_is_refused_before_decrypting(tmp_path):
    box = Box(tmp_path)
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with pytest.raises(BundleError, match="the list expired at"):
        box.load(make_bundle(ISSUER, box.ident.wl_public, not_before=t(hours=-3), not_after=past))
    assert box.matcher.current is None and not box.svc.stored.exists()
    assert not (box.state / "watchlist" / "incoming.wlb").exists()


def test_entry_is_still_constructible_as_before():
    e = Entry("PN-1", "wanted", "r", b"\xff\xd8")
    assert e.images == () and e.image_jpeg == b"\xff\xd8"


# --- the test vector, read by the spec alone --------------------------------------------------------

VECTORS = __import__("pathlib").Path(__file__).parent / "data" / "vectors"


def test_v2_vector_reads_by_the_spec_alone_and_by_the_box():
    """docs/watchlist-format.md, version 2, followed step by step with bare primitives, then by edge."""
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    vec = json.loads((VECTORS / "watchlist-v2.json").read_text())
    data = (VECTORS / "watchlist-v2.wlb").read_bytes()
    assert hashlib.sha256(data).hexdigest() == vec["sha256"] and len(data) == vec["length"]
    magic, version, issuer_id, hlen = struct.unpack_from(">6sH8sI", data)
    assert (magic, version) == (b"EDGEWL", 2)
    hb = data[20:20 + hlen]
    (clen,) = struct.unpack_from(">Q", data, 20 + hlen)
    sealed, sig = data[28 + hlen:28 + hlen + clen], data[28 + hlen + clen:]
    issuer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vec["issuer_seed"])).public_key()
    assert issuer_id == hashlib.sha256(identity.raw_public(issuer)).digest()[:8]
    issuer.verify(sig, b"edge-watchlist/v2 signature\x00" + hashlib.sha256(data[:-64]).digest())
    h = json.loads(hb)
    assert {k: h[k] for k in vec["header"]} == vec["header"] and h["entries"] == 2
    box = X25519PrivateKey.from_private_bytes(bytes.fromhex(vec["box_wl_private"]))
    eph = base64.b64decode(h["wrap"]["ephemeral"])
    wrap_key = HKDF(hashes.SHA256(), 32, eph + identity.raw_public(box), b"edge-watchlist/v2 wrap").derive(
        box.exchange(X25519PublicKey.from_public_bytes(eph)))
    file_key = AESGCM(wrap_key).decrypt(bytes(12), base64.b64decode(h["wrap"]["wrapped_key"]), None)
    assert file_key.hex() == vec["file_key"]
    nonce = base64.b64decode(h["payload"]["nonce"])
    assert nonce.hex() == vec["stream_nonce"]
    key = AESGCM(HKDF(hashes.SHA256(), 32, nonce, b"edge-watchlist/v2 payload").derive(file_key))
    n = -(-len(sealed) // (65536 + 16))
    assert n == 2
    plain = b"".join(key.decrypt(i.to_bytes(11, "big") + bytes([i == n - 1]),
                                 sealed[i * 65552:(i + 1) * 65552], hashlib.sha256(hb).digest()) for i in range(n))
    pay = h["payload"]
    rows = pay["rows"]
    templates = np.frombuffer(plain[:rows * 512], "<f4").reshape(rows, 128)
    index = np.frombuffer(plain[rows * 512:rows * 520], "<u4").reshape(rows, 2)
    meta = json.loads(plain[rows * 520:rows * 520 + pay["meta_length"]])
    images = plain[rows * 520 + pay["meta_length"]:]
    i = np.arange(128)
    assert np.array_equal(templates[1], ((64 - i) / 256).astype(np.float32))
    assert index.tolist() == [[0, 0], [0, 1], [1, 2]]
    assert [e["ref"] for e in meta["entries"]] == ["PN-0001", "PN-0002"]
    first = meta["entries"][0]["images"][0]
    assert (first["source"], first["taken"], first["length"]) == ("PNC", "2025-06-01", 70006)
    assert hashlib.sha256(images[:70006]).hexdigest() == first["sha256"]
    assert len(images) == pay["images_length"]

    issuer_raw = identity.raw_public(issuer)
    wl = reader.open_list(reader.verify(data, {identity.key_id(issuer_raw): issuer_raw}), box)
    assert wl.owners.tolist() == [0, 0, 1] and wl.row_images.tolist() == [0, 1, 2]
    assert wl.image(1) == bytes.fromhex(vec["entries"][0]["images"][1]["jpeg"])
    assert wl.entries[1].category == "missing person" and wl.entries[0].images[1].taken == "2024-02-29"


def test_v2_vector_is_reproduced_byte_for_byte():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_vector", VECTORS / "make_watchlist_vector.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.build_v2() == (VECTORS / "watchlist-v2.wlb").read_bytes()


def test_an_entrys_rows_must_stay_together_in_the_row_index():
    from edge.watchlist.base import Image

    entries = [Entry("A", images=(Image("ab" * 32),)), Entry("B", images=(Image("cd" * 32),))]
    t = np.ones((3, 128), np.float32) / 10
    with pytest.raises(BundleError, match="^the row index does not keep each entry's template rows together"):
        bundle_v2._check_rows(t, np.array([[0, 0], [1, 1], [0, 0]], "<u4"), entries, 2)
    owners, images = bundle_v2._check_rows(t, np.array([[0, 0], [0, 0], [1, 1]], "<u4"), entries, 2)
    assert owners.tolist() == [0, 0, 1] and images.tolist() == [0, 0, 1]


def test_a_list_too_big_for_one_audit_record_is_recorded_in_parts_and_loads(tmp_path):
    """25,000 entries: more reference numbers than one audit record holds. Recorded first (in
    watchlist_entries parts), then put in force; the oversight report lists every reference."""
    from edge.audit.log import AuditLog
    from edge.audit.report_lists import watchlists
    from edge.audit.verify import verify_log

    box = Box(tmp_path)
    log = AuditLog(box.state, box_id="box-a")
    box.svc.record = log.append
    n = 25_000
    rng = np.random.default_rng(5)
    t = rng.normal(size=(n, 128)).astype(np.float32) / 12
    items = [Item(f"WL-{i:06d}", "wanted", "", t[i:i + 1], [RefImage(big_jpeg(i, 40))]) for i in range(n)]
    h = header(sequence=9)
    h["policy"] = {"max_entries": n, "threshold_floor": 0.6, "retention_days": 31, "target_fpir": 0.5}
    path = tmp_path / "big.wlb"
    path.write_bytes(bundle_v2.write(h, items, ISSUER, box.ident.wl_public))
    box.svc.load(path)
    assert len(box.matcher.current) == n
    recs = verify_log(box.state).records
    kinds = [r["kind"] for r in recs]
    assert kinds.count("watchlist_entries") == 3 and kinds.index("watchlist_entries") < kinds.index("watchlist_loaded")
    loaded = next(r for r in recs if r["kind"] == "watchlist_loaded")["data"]
    assert loaded["refs_parts"] == 3 and "refs" not in loaded and loaded["entries"] == n
    times = [(datetime.fromisoformat(r["time"].replace("Z", "+00:00")), r) for r in recs]
    lo, hi = times[0][0] - timedelta(days=1), times[-1][0] + timedelta(days=1)
    (row,) = watchlists(times, lo, hi)
    assert row["refs"] == [f"WL-{i:06d}" for i in range(n)]


def test_the_signature_digest_taken_while_staging_is_the_files_own(tmp_path):
    """The box hashes a bundle once, while copying it in; a digest that is not the copy's own refuses it."""
    from edge.watchlist.service import stage_bundle_file

    box = Box(tmp_path)
    src = tmp_path / "in.wlb"
    src.write_bytes(make_bundle(ISSUER, box.ident.wl_public, sequence=4))
    digest, known = stage_bundle_file(src, tmp_path / "copy.wlb")
    assert digest == hashlib.sha256(src.read_bytes()).hexdigest()
    assert known == (src.stat().st_size - 64, hashlib.sha256(src.read_bytes()[:-64]).digest())
    assert box.svc.open(tmp_path / "copy.wlb", known=known).meta["header"]["sequence"] == 4
    with pytest.raises(BundleError, match="^bad signature"):
        box.svc.open(tmp_path / "copy.wlb", known=(known[0], hashlib.sha256(b"other").digest()))


def test_checking_a_large_files_signature_where_it_lies_holds_none_of_it_in_memory(tmp_path):
    """A 100,000-entry list is ~650 MiB: the signature check before staging hashed a copy of the whole file
    (an mmap slice is bytes), so the daemon's heap peaked at the file's size on top of the list. A 64 MiB file
    framed for a trusted issuer (sparse, signature of zeros) is refused for its signature with little held."""
    from edge.watchlist.service.files import signed_where_it_lies

    size = 64 << 20
    h = json.dumps({"list_id": "L-1", "format": "edge-watchlist"}).encode()
    kid = bytes.fromhex(identity.key_id(ISSUER_RAW))
    clen = size - bundle.PREFIX.size - len(h) - 8 - bundle.SIG_LEN
    path = tmp_path / "big.wlb"
    with open(path, "wb") as f:
        f.write(bundle.PREFIX.pack(bundle.MAGIC, 2, kid, len(h)) + h + struct.pack(">Q", clen))
        f.truncate(size)
    fd = os.open(path, os.O_RDONLY)
    tracemalloc.start()
    try:
        with pytest.raises(BundleError, match="^bad signature"):
            signed_where_it_lies(fd, size, {kid.hex(): ISSUER_RAW})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        os.close(fd)
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MiB held while checking a 64 MiB file"
