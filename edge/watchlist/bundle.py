"""The watch-list bundle (``.wlb``), version 1: signed by an issuer, encrypted to one box, the payload
one JSON document. Spec: docs/watchlist-format.md. Version 2 (chunked stream, templates as one binary
block, images read per alert) is ``bundle_v2``; ``reader`` opens either. What both share is in
``fields`` and re-exported here.

Reading is done in the order that keeps untrusted bytes away from parsers and ciphers:
:func:`parse` checks only the fixed framing (magic, version, lengths; truncation and trailing data),
:func:`verify` checks the Ed25519 signature over everything before it and only then parses the JSON
header, :func:`decrypt` unwraps the payload key with the box's X25519 key, and :func:`decode_entries`
validates every entry. Every failure is a :class:`BundleError` with one specific sentence.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge import codec
from edge.codec import b64 as _b64
from edge.codec import canonical, fmt_time  # noqa: F401  (fmt_time re-exported for enrol)
from edge.identity import key_id, raw_public
from edge.watchlist.base import CATEGORIES, Entry
from edge.watchlist.fields import (  # noqa: F401  (re-exported: one import for callers)
    HARD_MAX_ENTRIES,
    MAX_HEADER,
    MAX_IMAGE,
    MAX_TEMPLATES_PER_ENTRY,
    REF_RE,
    BundleError,
    load_json,
    parse_time,
)
from edge.watchlist.fields import field as _field

MAGIC = b"EDGEWL"
VERSION = 1  # this module's version; the newest one written is bundle_v2.VERSION
VERSIONS = (1, 2)  # what the box reads
PREFIX = struct.Struct(">6sH8sI")  # magic, version, issuer key id (8 raw bytes), header length
SIG_LEN = 64
MAX_PAYLOAD = 1 << 30
MAX_STREAM = 1 << 32  # version 2: the chunked stream, tags included
MAX_FILE = PREFIX.size + MAX_HEADER + 8 + MAX_STREAM + SIG_LEN  # the larger of the two versions
DEFAULT_MAX_ENTRIES = 10_000
WRAP_ALG = "X25519-HKDF-SHA256/AES-256-GCM"
PAYLOAD_ALG = "AES-256-GCM"


@dataclass
class Parsed:
    version: int
    issuer: str  # key id (16 hex) from the framing; the signature decides whether to believe it
    header_bytes: bytes
    ciphertext: bytes
    signed: bytes  # everything the signature covers
    signature: bytes
    header: dict[str, Any] | None = None  # set by verify()


def _unb64(text: object, what: str) -> bytes:
    return codec.unb64(text, what, error=BundleError)


# --- keys ---------------------------------------------------------------------------------

def _hkdf(secret: bytes, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt, info).derive(secret)


def _payload_key(file_key: bytes) -> bytes:
    return _hkdf(file_key, None, b"edge-watchlist/v1 payload")


def _wrap_key(shared: bytes, eph_pub: bytes, box_pub: bytes, version: int = 1) -> bytes:
    return _hkdf(shared, eph_pub + box_pub, b"edge-watchlist/v%d wrap" % version)


def wrap_file_key(file_key: bytes, box_wl_public: bytes, ephemeral: X25519PrivateKey | None = None,
                  version: int = 1) -> dict[str, Any]:
    """The header's ``wrap`` object: ``file_key`` sealed to the box's X25519 key."""
    eph = ephemeral or X25519PrivateKey.generate()
    eph_pub = raw_public(eph)
    shared = eph.exchange(X25519PublicKey.from_public_bytes(box_wl_public))
    wrapped = AESGCM(_wrap_key(shared, eph_pub, box_wl_public, version)).encrypt(bytes(12), file_key, None)
    return {"alg": WRAP_ALG, "ephemeral": _b64(eph_pub), "wrapped_key": _b64(wrapped)}


def unwrap_file_key(h: dict[str, Any], wl_key: X25519PrivateKey, version: int = 1) -> bytes:
    """The payload's ``file_key`` from the header's ``wrap`` object, with the box's X25519 key."""
    eph_pub = _unb64(h["wrap"]["ephemeral"], "wrap.ephemeral")
    wrapped = _unb64(h["wrap"]["wrapped_key"], "wrap.wrapped_key")
    if len(eph_pub) != 32 or len(wrapped) != 48:
        raise BundleError("the key wrap fields have the wrong sizes")
    try:
        shared = wl_key.exchange(X25519PublicKey.from_public_bytes(eph_pub))
        return AESGCM(_wrap_key(shared, eph_pub, raw_public(wl_key), version)).decrypt(bytes(12), wrapped, None)
    except (InvalidTag, ValueError):
        raise BundleError("cannot decrypt: the list was not encrypted to this box's key") from None


# --- writing ------------------------------------------------------------------------------

def encode_payload(entries: list[Entry], templates: list[np.ndarray]) -> bytes:
    """Entries and their (k, 128) template arrays -> the payload plaintext (canonical JSON)."""
    items = []
    for e, t in zip(entries, templates, strict=True):
        t = np.asarray(t, dtype="<f4").reshape(-1, 128)
        items.append({"ref": e.ref, "category": e.category, "reason": e.reason,
                      "templates": _b64(t.tobytes()), "image_jpeg": _b64(e.image_jpeg)})
    return canonical({"entries": items})


def write(header: dict[str, Any], payload: bytes, issuer_key: Ed25519PrivateKey, box_wl_public: bytes, *,
          version: int = VERSION, file_key: bytes | None = None, ephemeral: X25519PrivateKey | None = None,
          nonce: bytes | None = None) -> bytes:
    """Seal a payload for one box and sign it. ``header`` holds the list fields (see
    docs/watchlist-format.md); the crypto fields are added here. The keyword arguments after
    ``version`` exist for test vectors only: fresh random values are used when they are None."""
    file_key = file_key or os.urandom(32)
    nonce = nonce or os.urandom(12)
    issuer_pub = raw_public(issuer_key)
    h = dict(header, format="edge-watchlist", version=version, issuer=key_id(issuer_pub),
             box=key_id(box_wl_public), wrap=wrap_file_key(file_key, box_wl_public, ephemeral),
             payload={"alg": PAYLOAD_ALG, "nonce": _b64(nonce)})
    hb = canonical(h)
    ct = AESGCM(_payload_key(file_key)).encrypt(nonce, payload, hb)
    signed = (PREFIX.pack(MAGIC, version, bytes.fromhex(key_id(issuer_pub)), len(hb)) + hb
              + struct.pack(">Q", len(ct)) + ct)
    return signed + issuer_key.sign(signed)


# --- reading ------------------------------------------------------------------------------

def parse_prefix(data: bytes, size: int | None = None) -> tuple[int, str, int]:
    """The first 20 bytes of any version -> (version, issuer key id, header length). ``size`` is the
    file's length when ``data`` holds only its start."""
    size = len(data) if size is None else size
    if not size:
        raise BundleError("the file is empty")
    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise BundleError("not a watch-list bundle (no EDGEWL magic at the start)")
    if size < PREFIX.size or len(data) < PREFIX.size:
        raise BundleError(f"the file is truncated ({size} bytes, shorter than the fixed header)")
    _, version, issuer, hlen = PREFIX.unpack_from(data)
    if version not in VERSIONS:
        raise BundleError(f"unsupported bundle version {version} (this box reads versions "
                          f"{', '.join(map(str, VERSIONS))})")
    if not 2 <= hlen <= MAX_HEADER:
        raise BundleError(f"header length {hlen} is out of range (2..{MAX_HEADER} bytes)")
    return version, issuer.hex(), hlen


def framing(read: Callable[[int, int], bytes], size: int) -> tuple[int, str, int]:
    """(version, issuer key id, length of what the signature covers) of a file of ``size`` bytes, read with
    ``read(n, offset)``, once its fixed framing is checked to account for exactly ``size`` bytes: what the box
    checks before it copies a file in (a 1 GiB file of zeros, or one whose framing promises another length, is
    refused having read 20 + 8 bytes of it)."""
    version, issuer, hlen = parse_prefix(read(PREFIX.size, 0), size)
    pos = PREFIX.size + hlen
    if size < pos + 8:
        raise BundleError(f"the file is truncated ({size} bytes, the header runs past the end)")
    (clen,) = struct.unpack(">Q", read(8, pos))
    cap = MAX_PAYLOAD if version == VERSION else MAX_STREAM
    if clen > cap:
        raise BundleError(f"payload length {clen} is larger than the {cap}-byte limit")
    if size < pos + 8 + clen + SIG_LEN:
        raise BundleError(f"the file is truncated ({size} bytes, expected {pos + 8 + clen + SIG_LEN})")
    if size > pos + 8 + clen + SIG_LEN:
        raise BundleError(f"unexpected {size - pos - 8 - clen - SIG_LEN} bytes after the signature")
    return version, issuer, pos + 8 + clen


def parse(data: bytes) -> Parsed:
    """The fixed framing only: no JSON, no crypto. Catches empty, foreign, truncated, padded files."""
    version, issuer, hlen = parse_prefix(data)
    if version != VERSION:
        raise BundleError(f"bundle version {version} is not read by the version-1 reader")
    pos = PREFIX.size + hlen
    if len(data) < pos + 8:
        raise BundleError(f"the file is truncated ({len(data)} bytes, the header runs past the end)")
    (clen,) = struct.unpack_from(">Q", data, pos)
    if clen > MAX_PAYLOAD:
        raise BundleError(f"payload length {clen} is larger than the {MAX_PAYLOAD}-byte limit")
    end = pos + 8 + clen
    if len(data) < end + SIG_LEN:
        raise BundleError(f"the file is truncated ({len(data)} bytes, expected {end + SIG_LEN})")
    if len(data) > end + SIG_LEN:
        raise BundleError(f"unexpected {len(data) - end - SIG_LEN} bytes after the signature")
    return Parsed(version, issuer, data[PREFIX.size:pos], data[pos + 8:end], data[:end], data[end:])


def verify(p: Parsed, issuers: dict[str, bytes]) -> dict[str, Any]:
    """Check the signature with a trusted issuer key, then parse and check the header; returns it."""
    raw = issuers.get(p.issuer)
    if raw is None:
        raise BundleError(f"signed by an unknown issuer {p.issuer}: "
                          "register its key with 'edge trust add-issuer' first")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(p.signature, p.signed)
    except InvalidSignature:
        raise BundleError(f"bad signature: the file was altered or not signed by issuer {p.issuer}") from None
    p.header = check_header(p.header_bytes, p)
    return p.header


def check_header(hb: bytes, p: Parsed) -> dict[str, Any]:
    h = load_json(hb, "the signed header")
    if not isinstance(h, dict) or h.get("format") != "edge-watchlist":
        raise BundleError("the signed header is not an edge-watchlist header")
    if _field(h, "version", int) != p.version or _field(h, "issuer", str) != p.issuer:
        raise BundleError("the signed header does not match the file's version or issuer")
    for name in ("list_id", "deployment", "box", "box_id", "created", "not_before", "not_after"):
        _field(h, name, str)
    for name in ("created", "not_before", "not_after"):
        parse_time(h[name])
    if _field(h, "sequence", int) < 0 or _field(h, "entries", int) < 0:
        raise BundleError("header.sequence and header.entries must not be negative")
    pol = _field(h, "policy", dict)
    _field(pol, "max_entries", int, "policy")
    _field(pol, "retention_days", int, "policy")
    _field(pol, "threshold_floor", (int, float), "policy")
    for name in ("ephemeral", "wrapped_key"):
        _field(_field(h, "wrap", dict), name, str, "wrap")
    _field(_field(h, "payload", dict), "nonce", str, "payload")
    if h["wrap"].get("alg") != WRAP_ALG or h["payload"].get("alg") != PAYLOAD_ALG:
        raise BundleError("the bundle uses an unsupported encryption algorithm")
    return h


def check_policy(h: dict[str, Any]) -> None:
    """The list's own policy, before decrypting: a sane threshold floor and size cap."""
    pol = h["policy"]
    if not 0.0 < pol["threshold_floor"] < 2.0:
        raise BundleError(f"policy threshold floor {pol['threshold_floor']} is out of range (0..2)")
    cap = min(pol["max_entries"], HARD_MAX_ENTRIES)
    if h["entries"] > cap:
        raise BundleError(f"too many entries: {h['entries']} is over the policy maximum of {cap}")


def decrypt(p: Parsed, wl_key: X25519PrivateKey) -> bytes:
    """Unwrap the payload key with the box's X25519 key and decrypt (header is the AAD)."""
    h = p.header
    if h is None:
        raise BundleError("the bundle must be verified before it is decrypted")
    nonce = _unb64(h["payload"]["nonce"], "payload.nonce")
    if len(nonce) != 12:
        raise BundleError("the key wrap fields have the wrong sizes")
    file_key = unwrap_file_key(h, wl_key)
    try:
        return AESGCM(_payload_key(file_key)).decrypt(nonce, p.ciphertext, p.header_bytes)
    except (InvalidTag, ValueError):
        raise BundleError("cannot decrypt: the list was not encrypted to this box's key") from None


def decode_entries(payload: bytes, expected: int) -> tuple[list[Entry], np.ndarray, np.ndarray]:
    """Validate every entry of a decrypted payload -> (entries, templates (n,128), owners (n,))."""
    try:
        items = json.loads(payload)["entries"]  # bytes straight in: no second, decoded copy
        if not isinstance(items, list):
            raise TypeError
    except (UnicodeDecodeError, ValueError, KeyError, TypeError, RecursionError):
        raise BundleError("the decrypted payload is not a valid entry list") from None
    if len(items) != expected:
        raise BundleError(f"the payload holds {len(items)} entries but the header says {expected}")
    entries, rows, owners, seen = [], [], [], set()
    for i, it in enumerate(items):
        entry, t = _entry(it, i)
        items[i] = None  # let each entry's base64 text go as soon as it is decoded (memory on big lists)
        if entry.ref in seen:
            raise BundleError(f"entry {i}: reference {entry.ref!r} appears twice")
        seen.add(entry.ref)
        entries.append(entry)
        rows.append(t)
        owners += [i] * len(t)
    templates = np.concatenate(rows) if rows else np.zeros((0, 128), np.float32)
    return entries, templates, np.asarray(owners, dtype=np.int64)


def _entry(it: object, i: int) -> tuple[Entry, np.ndarray]:
    where = f"entry {i}"
    if not isinstance(it, dict):
        raise BundleError(f"{where} is not an object")
    ref, cat, reason = it.get("ref"), it.get("category"), it.get("reason")
    if not isinstance(ref, str) or not REF_RE.fullmatch(ref):
        raise BundleError(f"{where}: reference must be 1-64 letters, digits or / _ . : -")
    if cat not in CATEGORIES:
        raise BundleError(f"{where} ({ref}): category {cat!r} is not one of {', '.join(CATEGORIES)}")
    if not isinstance(reason, str) or len(reason) > 500:
        raise BundleError(f"{where} ({ref}): reason must be text of at most 500 characters")
    raw = _unb64(it.get("templates"), f"{where} ({ref}) templates")
    if not raw or len(raw) % 512 or len(raw) // 512 > MAX_TEMPLATES_PER_ENTRY:
        raise BundleError(f"{where} ({ref}): needs 1-{MAX_TEMPLATES_PER_ENTRY} templates of 128 numbers")
    t = np.frombuffer(raw, dtype="<f4").reshape(-1, 128).astype(np.float32)
    if not np.isfinite(t).all() or np.abs(t).max() > 10 or not (np.abs(t).sum(axis=1) > 0).all():
        raise BundleError(f"{where} ({ref}): a template holds invalid numbers")
    img = _unb64(it.get("image_jpeg"), f"{where} ({ref}) image")
    if not img.startswith(b"\xff\xd8\xff") or len(img) > MAX_IMAGE:
        raise BundleError(f"{where} ({ref}): the reference image is not a JPEG of at most 1 MiB")
    return Entry(ref=ref, category=cat, reason=reason, image_jpeg=img), t
