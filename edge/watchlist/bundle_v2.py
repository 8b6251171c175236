"""Watch-list bundle version 2: the payload a chunked authenticated stream (``stream``) holding the
templates as one binary block, a row index, the entries as compact JSON and the reference images,
which stay in the stored file and are read, decrypted and verified one at a time (``ImageStore``).
Spec: docs/watchlist-format.md, "Version 2".

Reading order: framing and exact size (no JSON, no crypto) -> Ed25519 signature over the SHA-256 of
everything before it (read in blocks, never all in memory) -> header JSON (depth checked first) and
every bound in it -> [the box's own checks] -> unwrap the key -> the stream, chunk by chunk, into the
templates array (decrypted in place, not copied), the index and the metadata -> every entry valid.
"""

from __future__ import annotations

import gc
import hashlib
import os
import struct
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any, BinaryIO

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.codec import b64 as _b64
from edge.codec import canonical
from edge.errors import EdgeError
from edge.face import model as face_model
from edge.identity import key_id, raw_public
from edge.watchlist import stream
from edge.watchlist.base import CATEGORIES, Entry, Image
from edge.watchlist.bundle import (
    MAGIC,
    MAX_STREAM,
    PREFIX,
    SIG_LEN,
    WRAP_ALG,
    _unb64,
    parse_prefix,
    unwrap_file_key,
    wrap_file_key,
)
from edge.watchlist.fields import (
    HARD_MAX_ENTRIES,
    MAX_BOX_ID,
    MAX_DEPLOYMENT,
    MAX_IMAGE,
    MAX_IMAGES_PER_ENTRY,
    MAX_LIST_ID,
    MAX_REASON,
    MAX_SOURCE,
    MAX_TEMPLATES_PER_ENTRY,
    REF_RE,
    SHA256_RE,
    BundleError,
    check_operating,
    field,
    load_json,
    parse_time,
    text,
    valid_date,
)

VERSION = 2
STREAM_ALG = "AES-256-GCM-STREAM-64K"
SIG_CONTEXT = b"edge-watchlist/v2 signature\x00"
ROW = 128 * 4  # one dlib template: 128 little-endian float32 (a model's: its ``dim``, header ``model``)
INDEX_ROW = 8  # entry number, image number: two little-endian u32
MAX_ROWS = 400_000  # template rows in one list (200 MB of templates)
MAX_IMAGES = 400_000  # reference images in one list
MAX_META = 128 << 20  # the entry metadata JSON
MAX_IMAGES_BYTES = 3 << 30  # all reference images together
MAX_SEQUENCE = 2**53
BLOCK = 1 << 20


@dataclass
class RefImage:
    """A reference image to put in a bundle, with its provenance."""

    jpeg: bytes
    source: str = ""
    taken: str = ""  # YYYY-MM-DD


@dataclass
class Item:
    """One entry to write: its fields, its (k, dim) templates and images; ``row_image[r]`` is the image
    (0-based, of this entry) template row r was made from (default: row r from image r, or all rows
    from image 0 when there is one image)."""

    ref: str
    category: str
    reason: str
    templates: np.ndarray
    images: list[RefImage]
    row_image: list[int] | None = None


@dataclass
class Verified:
    """A version-2 bundle whose framing, signature and header are checked; nothing is decrypted yet."""

    issuer: str
    header: dict[str, Any]
    header_bytes: bytes
    source: stream.Source
    stream_start: int
    version: int = VERSION
    layout: dict[str, Any] = dc_field(default_factory=dict)


def model_of(h: dict[str, Any]) -> face_model.FaceModel:
    """The face model a header names (``model``; absent: dlib, as every list before models were named); a
    model this box does not have, or other weights, is refused in one sentence."""
    try:
        return face_model.of(h.get("model"), "the list")
    except EdgeError as exc:
        raise BundleError(str(exc)) from None


# --- writing ------------------------------------------------------------------------------------

def _rows_of(it: Item) -> list[int]:
    k = len(it.templates)
    if it.row_image is not None:
        return list(it.row_image)
    return list(range(k)) if k == len(it.images) else [0] * k


def layout(rows: int, meta_length: int, images_length: int, dim: int = 128) -> dict[str, Any]:
    """Plaintext offsets of the four sections, and the stream's sizes."""
    t_end = rows * dim * 4
    i_end = t_end + rows * INDEX_ROW
    m_end = i_end + meta_length
    plain = m_end + images_length
    return {"templates": (0, t_end), "index": (t_end, i_end), "meta": (i_end, m_end), "images": (m_end, plain),
            "plain": plain, "chunks": stream.chunks(plain), "sealed": stream.sealed_len(plain)}


def write(header: dict[str, Any], items: list[Item], issuer_key: Ed25519PrivateKey, box_wl_public: bytes,
          out: BinaryIO | None = None, *,
          file_key: bytes | None = None, ephemeral: X25519PrivateKey | None = None,
          nonce: bytes | None = None) -> bytes | None:
    """Seal ``items`` for one box and sign; writes to the binary file ``out`` (then returns None) or
    returns the bytes. ``header`` holds the list fields; the crypto and payload fields are added here.
    ``file_key``, ``ephemeral`` and ``nonce`` exist for test vectors only."""
    file_key, nonce = file_key or os.urandom(32), nonce or os.urandom(16)
    dim = int((header.get("model") or {}).get("dim", 128))  # the template length of the model it names
    metas, index, blocks, images = [], [], [], []
    n_img = 0
    for e, it in enumerate(items):
        t = np.asarray(it.templates, dtype="<f4").reshape(-1, dim)
        rows = _rows_of(it)
        if len(rows) != len(t) or any(not 0 <= r < len(it.images) for r in rows):
            raise ValueError(f"{it.ref}: row_image does not match its templates and images")
        blocks.append(t.tobytes())
        index += [(e, n_img + r) for r in rows]
        metas.append({"ref": it.ref, "category": it.category, "reason": it.reason, "images": [
            {"length": len(im.jpeg), "sha256": hashlib.sha256(im.jpeg).hexdigest(),
             **({"source": im.source} if im.source else {}), **({"taken": im.taken} if im.taken else {})}
            for im in it.images]})
        images += [im.jpeg for im in it.images]
        n_img += len(it.images)
    meta = canonical({"entries": metas})
    index_b = np.asarray(index, dtype="<u4").reshape(-1, 2).tobytes()
    lay = layout(len(index), len(meta), sum(map(len, images)), dim)
    issuer_pub = raw_public(issuer_key)
    h = dict(header, format="edge-watchlist", version=VERSION, issuer=key_id(issuer_pub),
             box=key_id(box_wl_public), entries=len(items),
             wrap=wrap_file_key(file_key, box_wl_public, ephemeral, VERSION),
             payload={"alg": STREAM_ALG, "chunk_size": stream.CHUNK, "nonce": _b64(nonce), "rows": len(index),
                      "images": n_img, "meta_length": len(meta), "images_length": lay["plain"] - lay["images"][0]})
    hb = canonical(h)
    key, aad = stream.payload_key(file_key, nonce), hashlib.sha256(hb).digest()
    pieces = [b"".join(blocks), index_b, meta, *images]
    digest = hashlib.sha256()
    parts: list[bytes] = []  # the bytes, when there is no ``out``
    sink = out.write if out is not None else parts.append

    def emit(b: bytes) -> None:
        digest.update(b)
        sink(b)

    emit(PREFIX.pack(MAGIC, VERSION, bytes.fromhex(key_id(issuer_pub)), len(hb)) + hb
         + struct.pack(">Q", lay["sealed"]))
    for c in stream.seal(key, aad, pieces, lay["plain"]):
        emit(c)
    sig = issuer_key.sign(SIG_CONTEXT + digest.digest())
    if out is not None:
        out.write(sig)
        return None
    return b"".join(parts) + sig


# --- reading: framing, signature, header ---------------------------------------------------------

def verify(src: stream.Source, issuers: dict[str, bytes]) -> Verified:
    """Framing and exact size, then the issuer's signature, then the header; nothing is decrypted."""
    size = src.size
    version, issuer, hlen = parse_prefix(src.pread(PREFIX.size, 0), size)
    if version != VERSION:
        raise BundleError(f"bundle version {version} is not read by the version-2 reader")
    pos = PREFIX.size + hlen
    if size < pos + 8:
        raise BundleError(f"the file is truncated ({size} bytes, the header runs past the end)")
    (clen,) = struct.unpack(">Q", src.pread(8, pos))
    if clen > MAX_STREAM:
        raise BundleError(f"payload length {clen} is larger than the {MAX_STREAM}-byte limit")
    end = pos + 8 + clen
    if size < end + SIG_LEN:
        raise BundleError(f"the file is truncated ({size} bytes, expected {end + SIG_LEN})")
    if size > end + SIG_LEN:
        raise BundleError(f"unexpected {size - end - SIG_LEN} bytes after the signature")
    raw = issuers.get(issuer)
    if raw is None:
        raise BundleError(f"signed by an unknown issuer {issuer}: "
                          "register its key with 'edge trust add-issuer' first")
    if src.known is not None and src.known[0] == end:  # taken while the box copied the file in
        signed = src.known[1]
    else:
        digest = hashlib.sha256()
        for off in range(0, end, BLOCK):
            digest.update(src.pread(min(BLOCK, end - off), off))
        signed = digest.digest()
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(src.pread(SIG_LEN, end), SIG_CONTEXT + signed)
    except InvalidSignature:
        raise BundleError(f"bad signature: the file was altered or not signed by issuer {issuer}") from None
    hb = src.pread(hlen, PREFIX.size)
    h = check_header(hb, issuer)
    lay = layout(h["payload"]["rows"], h["payload"]["meta_length"], h["payload"]["images_length"], model_of(h).dim)
    if lay["sealed"] != clen:
        raise BundleError(f"the payload stream is {clen} bytes but the header's sizes make {lay['sealed']}")
    return Verified(issuer, h, hb, src, pos + 8, layout=lay)


def check_header(hb: bytes, issuer: str) -> dict[str, Any]:
    """Every field of a version-2 header, each within its bound (docs: "Limits")."""
    h = load_json(hb, "the signed header")
    if not isinstance(h, dict) or h.get("format") != "edge-watchlist":
        raise BundleError("the signed header is not an edge-watchlist header")
    if field(h, "version", int) != VERSION or field(h, "issuer", str) != issuer:
        raise BundleError("the signed header does not match the file's version or issuer")
    text(h, "list_id", MAX_LIST_ID)
    text(h, "deployment", MAX_DEPLOYMENT)
    text(h, "box_id", MAX_BOX_ID)
    if len(text(h, "box", 16)) != 16:
        raise BundleError("header.box is not a 16-digit key id")
    for name in ("created", "not_before", "not_after"):
        parse_time(text(h, name, 20))
    if not 0 <= field(h, "sequence", int) <= MAX_SEQUENCE:
        raise BundleError(f"header.sequence is out of range (0..{MAX_SEQUENCE})")
    n = field(h, "entries", int)
    if not 0 <= n <= HARD_MAX_ENTRIES:
        raise BundleError(f"header.entries {n} is out of range (0..{HARD_MAX_ENTRIES})")
    pol = field(h, "policy", dict)
    if field(pol, "max_entries", int, "policy") < 0:
        raise BundleError("policy.max_entries must not be negative")
    if not 0 <= field(pol, "retention_days", int, "policy") <= 3650:
        raise BundleError("policy.retention_days is out of range (0..3650)")
    field(pol, "threshold_floor", (int, float), "policy")
    check_operating(h)
    model_of(h)
    if "ends_with_deployment" in h and not isinstance(h["ends_with_deployment"], bool):
        raise BundleError("header.ends_with_deployment must be true or false")
    wrap = field(h, "wrap", dict)
    text(wrap, "ephemeral", 64, "wrap")
    text(wrap, "wrapped_key", 96, "wrap")
    pay = field(h, "payload", dict)
    if wrap.get("alg") != WRAP_ALG or pay.get("alg") != STREAM_ALG or pay.get("chunk_size") != stream.CHUNK:
        raise BundleError("the bundle uses an unsupported encryption algorithm or chunk size")
    if len(_unb64(text(pay, "nonce", 32, "payload"), "payload.nonce")) != 16:
        raise BundleError("payload.nonce is not 16 bytes")
    for name, lo, hi in (("rows", n, min(n * MAX_TEMPLATES_PER_ENTRY, MAX_ROWS)),
                         ("images", n, min(n * MAX_IMAGES_PER_ENTRY, MAX_IMAGES)),
                         ("meta_length", 2, MAX_META),
                         ("images_length", 4 * n, MAX_IMAGES_BYTES)):
        v = field(pay, name, int, "payload")
        if not lo <= v <= hi:
            raise BundleError(f"payload.{name} {v} is out of range ({lo}..{hi}) for {n} entries")
    if pay["images"] > pay["rows"] or pay["images_length"] > pay["images"] * MAX_IMAGE:
        raise BundleError("payload.images does not fit the payload's rows and image bytes")
    return h


# --- reading: the stream ------------------------------------------------------------------------

@dataclass
class Opened:
    entries: list[Entry]
    templates: np.ndarray  # (rows, dim) float32
    owners: np.ndarray  # (rows,) entry of each row
    row_images: np.ndarray  # (rows,) image of each row
    images: ImageStore


def open_list(v: Verified, wl_key: X25519PrivateKey) -> Opened:
    """Unwrap the key and read the stream: every chunk authenticated, templates decrypted straight
    into their array, entries validated; the images stay in the file (``ImageStore``)."""
    h, lay = v.header, v.layout
    pay = h["payload"]
    key = stream.payload_key(unwrap_file_key(h, wl_key, VERSION), _unb64(pay["nonce"], "payload.nonce"))
    aad = hashlib.sha256(v.header_bytes).digest()
    rows = pay["rows"]
    templates = np.empty((rows, model_of(h).dim), dtype="<f4")
    index = np.empty((rows, 2), dtype="<u4")
    meta = bytearray(pay["meta_length"])
    sinks = [(lay["templates"][0], templates.data.cast("B")), (lay["index"][0], index.data.cast("B")),
             (lay["meta"][0], memoryview(meta))]
    for i, plain in stream.read_chunks(v.source, v.stream_start, lay["plain"], key, aad):
        lo = i * stream.CHUNK
        for start, mv in sinks:
            a, b = max(lo, start), min(lo + len(plain), start + len(mv))
            if a < b:
                mv[a - start:b - start] = plain[a - lo:b - lo]
    was = gc.isenabled()
    gc.disable()  # 100,000 entries are several hundred thousand objects, none of them cyclic
    try:
        entries, sha, lengths = _entries(bytes(meta), h["entries"], pay["images"], pay["images_length"])
    finally:
        if was:
            gc.enable()
    del meta
    owners, row_images = _check_rows(templates, index, entries, pay["images"])
    offsets = np.zeros(pay["images"] + 1, dtype=np.int64)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    store = ImageStore(v.source, v.stream_start, lay, key, aad, offsets, sha)
    return Opened(entries, templates.astype(np.float32, copy=False), owners, row_images, store)


def _entries(meta: bytes, n: int, n_images: int, images_length: int) -> tuple[list[Entry], list[str], list[int]]:
    """Validate the metadata -> (entries, SHA-256 of each image, length of each image)."""
    doc = load_json(meta, "the entry metadata")
    items = doc.get("entries") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise BundleError("the entry metadata is not an entry list")
    if len(items) != n:
        raise BundleError(f"the payload holds {len(items)} entries but the header says {n}")
    entries, sha, lengths, seen = [], [], [], set()
    cats = {c: c for c in CATEGORIES}
    for i, it in enumerate(items):
        where = f"entry {i}"
        if not isinstance(it, dict):
            raise BundleError(f"{where} is not an object")
        ref, cat, reason, imgs = it.get("ref"), it.get("category"), it.get("reason"), it.get("images")
        if not isinstance(ref, str) or not REF_RE.fullmatch(ref):
            raise BundleError(f"{where}: reference must be 1-64 letters, digits or / _ . : -")
        if ref in seen:
            raise BundleError(f"{where}: reference {ref!r} appears twice")
        if not isinstance(cat, str) or cat not in cats:
            raise BundleError(f"{where} ({ref}): category {str(cat)[:20]!r} is not one of {', '.join(CATEGORIES)}")
        if not isinstance(reason, str) or len(reason) > MAX_REASON:
            raise BundleError(f"{where} ({ref}): reason must be text of at most {MAX_REASON} characters")
        if not isinstance(imgs, list) or not 1 <= len(imgs) <= MAX_IMAGES_PER_ENTRY:
            raise BundleError(f"{where} ({ref}): needs 1-{MAX_IMAGES_PER_ENTRY} images")
        provenance = []
        for j, im in enumerate(imgs):
            w = f"{where} ({ref}) image {j}"
            if not isinstance(im, dict):
                raise BundleError(f"{w} is not an object")
            length, digest = im.get("length"), im.get("sha256")
            if not isinstance(length, int) or isinstance(length, bool) or not 4 <= length <= MAX_IMAGE:
                raise BundleError(f"{w}: length must be 4..{MAX_IMAGE} bytes")
            if not isinstance(digest, str) or not SHA256_RE.fullmatch(digest):
                raise BundleError(f"{w}: sha256 must be 64 lowercase hex digits")
            source, taken = text(im, "source", MAX_SOURCE, w, optional=True), im.get("taken", "")
            if taken != "" and not valid_date(taken):
                raise BundleError(f"{w}: taken must be a date like 2026-03-01")
            provenance.append(Image(sha256=digest, source=source, taken=taken))
            lengths.append(length)
            sha.append(digest)
        seen.add(ref)
        entries.append(Entry(ref=ref, category=cats[cat], reason=reason, images=tuple(provenance)))
        items[i] = None
    total = sum(lengths)
    if len(sha) != n_images or total != images_length:
        raise BundleError(f"the entries hold {len(sha)} images of {total} bytes but the header says "
                          f"{n_images} of {images_length}")
    return entries, sha, lengths


def _check_rows(templates: np.ndarray, index: np.ndarray, entries: list[Entry],
                n_images: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(entries)
    owners, row_images = index[:, 0].astype(np.int64), index[:, 1].astype(np.int64)
    if len(index) and (owners.max() >= n or row_images.max() >= n_images):
        raise BundleError("the row index names an entry or image that does not exist")
    if len(index) > 1 and (np.diff(owners) < 0).any():  # the matcher takes each entry's rows as one run
        raise BundleError("the row index does not keep each entry's template rows together and in order")
    image_owner = np.repeat(np.arange(n), [len(e.images) for e in entries]) if n else np.zeros(0, np.int64)
    if len(index) and not np.array_equal(image_owner[row_images], owners):
        raise BundleError("the row index gives a template row an image of another entry")
    per_entry = np.bincount(owners, minlength=n)
    if n and (per_entry.min() < 1 or per_entry.max() > MAX_TEMPLATES_PER_ENTRY):
        bad = int(np.flatnonzero((per_entry < 1) | (per_entry > MAX_TEMPLATES_PER_ENTRY))[0])
        raise BundleError(f"entry {bad} ({entries[bad].ref}): needs 1-{MAX_TEMPLATES_PER_ENTRY} templates")
    if n_images and np.bincount(row_images, minlength=n_images).min() < 1:
        raise BundleError("the row index leaves a reference image without a template")
    for s in range(0, len(templates), 8192):  # in blocks: no full-size temporary copies
        t = templates[s:s + 8192]
        if not np.isfinite(t).all() or np.abs(t).max() > 10 or not (np.abs(t).sum(axis=1) > 0).all():
            bad = s + int(np.flatnonzero(~(np.isfinite(t).all(axis=1) & (np.abs(t).max(axis=1) <= 10)
                                           & (np.abs(t).sum(axis=1) > 0)))[0])
            raise BundleError(f"entry {owners[bad]} ({entries[owners[bad]].ref}): a template holds invalid numbers")
    return owners, row_images.astype(np.int32)


class ImageStore:
    """Reference images read from the stored bundle one at a time: the chunks holding image ``i`` are
    read, authenticated and decrypted, and the image is checked against its signed SHA-256."""

    def __init__(self, src: stream.Source, start: int, lay: dict[str, Any], key: AESGCM, aad: bytes,
                 offsets: np.ndarray, sha: list[str]) -> None:
        self._src, self._start, self._plain = src, start, lay["plain"]
        self._key: AESGCM | None = key  # None once closed (purged)
        self._base, self._aad = lay["images"][0], aad
        self._offsets, self._sha = offsets, sha

    def __len__(self) -> int:
        return len(self._sha)

    def read(self, i: int) -> bytes:
        if self._key is None:
            raise BundleError("the watch list was purged")
        if not 0 <= i < len(self._sha):
            raise BundleError(f"reference image {i} does not exist")
        lo, hi = self._base + int(self._offsets[i]), self._base + int(self._offsets[i + 1])
        first, last = lo // stream.CHUNK, (hi - 1) // stream.CHUNK
        plain = b"".join(p for _, p in stream.read_chunks(self._src, self._start, self._plain, self._key, self._aad,
                                                           first, last - first + 1))
        img = plain[lo - first * stream.CHUNK:hi - first * stream.CHUNK]
        if hashlib.sha256(img).hexdigest() != self._sha[i] or not img.startswith(b"\xff\xd8\xff"):
            raise BundleError(f"reference image {i} does not match its signed SHA-256 or is not a JPEG")
        return img

    def close(self) -> None:
        self._key = None
        self._src.close()
