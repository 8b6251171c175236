"""Signed firmware update bundles (``.efw``): build on the vendor side, verify on the box.

Layout (spec: ``docs/firmware-format.md``)::

    "edge-firmware/1\\n"           magic line, names the format version
    u32 big-endian                 length of the header
    header                         canonical JSON: version, created, key_id, files, migrations, notes
    payload                        the files' bytes, concatenated in header order
    signature                      64 bytes, Ed25519 by the vendor key over everything before it

The signature is checked (against the box's trusted vendor keys) before any header field is used for
anything but finding the key, and the file's length must add up exactly, so truncation, appended
bytes and any flipped bit all fail the same way: one ``FirmwareError`` naming the problem.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.codec import b64, canonical, fmt_time, unb64
from edge.errors import EdgeError
from edge.files import StrPath, read_text, write_atomic
from edge.identity import MAX_KEY_FILE, key_id, raw_public

MAGIC = b"edge-firmware/1\n"
SIG_LEN = 64
MAX_BUNDLE = 1 << 30  # 1 GiB: wheels of the whole dependency closure fit comfortably
MAX_HEADER = 1 << 20
MAX_FILES = 1000
PUBLIC_TYPE = "edge-vendor-ed25519"
PRIVATE_TYPE = "edge-vendor-ed25519-private"
VERSION_RE = re.compile(r"^(0|[1-9][0-9]{0,5})(\.(0|[1-9][0-9]{0,5})){1,3}$")
# what a bundle may carry: wheels to install, systemd units, udev rules; one flat folder each
PATH_RE = re.compile(r"^(wheels/[A-Za-z0-9._+-]+\.whl|units/[A-Za-z0-9._@-]+\.service|udev/[A-Za-z0-9._-]+\.rules)$")
MIGRATION_OPS = {"set_default", "set", "rename", "remove"}


class FirmwareError(EdgeError):
    """A bundle or key file that must not be used (the message says why)."""


def parse_version(text: object) -> tuple[int, ...]:
    if not isinstance(text, str) or not VERSION_RE.match(text):
        raise FirmwareError(f"bad firmware version {text!r}: expected numbers like 1.4.2")
    return tuple(int(p) for p in text.split("."))


# --- vendor keys ---------------------------------------------------------------------------


def keygen(private_path: StrPath, public_path: StrPath, name: str = "") -> str:
    """Make a vendor signing key pair; returns its key id. Refuses to overwrite."""
    for p in (Path(private_path), Path(public_path)):
        if p.exists():
            raise FirmwareError(f"{p} already exists: not overwriting a key")
    key = Ed25519PrivateKey.generate()
    pub = raw_public(key)
    kid = key_id(pub)
    private = {"type": PRIVATE_TYPE, "key_id": kid, "name": name,
               "private_key": b64(key.private_bytes_raw())}
    write_atomic(private_path, json.dumps(private, indent=1).encode() + b"\n", 0o600)
    public = {"type": PUBLIC_TYPE, "key_id": kid, "name": name, "public_key": b64(pub)}
    write_atomic(public_path, json.dumps(public, indent=1).encode() + b"\n", 0o644)
    return kid


def _read_key(path: StrPath, want_type: str) -> dict[str, Any]:
    try:
        d = json.loads(read_text(path, "key file", MAX_KEY_FILE))
    except EdgeError as exc:
        raise FirmwareError(str(exc)) from None
    except (ValueError, RecursionError):
        raise FirmwareError(f"{path} is not a vendor key file") from None
    if not isinstance(d, dict) or d.get("type") != want_type:
        raise FirmwareError(f"{path} is not a vendor key file (expected type {want_type!r})")
    return d


def load_private_key(path: StrPath) -> Ed25519PrivateKey:
    d = _read_key(path, PRIVATE_TYPE)
    return Ed25519PrivateKey.from_private_bytes(unb64(d.get("private_key"), f"{path} private_key", 32))


def load_public_key(path: StrPath) -> tuple[str, bytes]:
    d = _read_key(path, PUBLIC_TYPE)
    raw = unb64(d.get("public_key"), f"{path} public_key", 32)
    if d.get("key_id") != key_id(raw):
        raise FirmwareError(f"{path}: key_id does not match the public key")
    return key_id(raw), raw


def trusted_keys(paths: Iterable[StrPath]) -> dict[str, bytes]:
    """{key_id: raw public key} from key files and folders of ``*.pub`` files."""
    out: dict[str, bytes] = {}
    for p in map(Path, paths):
        for f in sorted(p.glob("*.pub")) if p.is_dir() else [p]:
            kid, raw = load_public_key(f)
            out[kid] = raw
    if not out:
        raise FirmwareError("no trusted vendor key: install one in /etc/edge/vendor-keys/ or pass --vendor-key")
    return out


# --- build -----------------------------------------------------------------------------------


def check_migrations(migrations: object) -> list[dict[str, Any]]:
    if not isinstance(migrations, list):
        raise FirmwareError("migrations must be a list")
    for i, m in enumerate(migrations):
        if not isinstance(m, dict) or m.get("op") not in MIGRATION_OPS or not isinstance(m.get("key"), str):
            raise FirmwareError(f"migration {i}: needs op (one of {sorted(MIGRATION_OPS)}) and key")
        if m["op"] == "rename" and not isinstance(m.get("to"), str):
            raise FirmwareError(f"migration {i}: rename needs 'to'")
        if m["op"] in ("set", "set_default") and "value" not in m:
            raise FirmwareError(f"migration {i}: {m['op']} needs 'value'")
    return migrations


def build(version: str, key: Ed25519PrivateKey, files: dict[str, bytes],
          migrations: Iterable[dict[str, Any]] = (), notes: str = "",
          created: str | None = None) -> bytes:
    """The signed bundle bytes. ``files`` maps bundle paths (wheels/…, units/…, udev/…) to contents."""
    parse_version(version)
    if not any(p.startswith("wheels/") for p in files):
        raise FirmwareError("a firmware bundle needs at least one wheel")
    for p in files:
        if not PATH_RE.match(p):
            raise FirmwareError(f"{p!r} cannot go in a bundle (wheels/*.whl, units/*.service, udev/*.rules)")
    check_model_weights(files)
    names = sorted(files)
    header = {
        "format": 1,
        "version": version,
        "created": created or fmt_time(dt.datetime.now(dt.UTC)),
        "key_id": key_id(raw_public(key)),
        "files": [{"path": p, "size": len(files[p]), "sha256": hashlib.sha256(files[p]).hexdigest()}
                  for p in names],
        "migrations": check_migrations(list(migrations)),
        "notes": notes,
    }
    head = canonical(header)
    body = MAGIC + struct.pack(">I", len(head)) + head + b"".join(files[p] for p in names)
    return body + key.sign(body)


# --- verify ----------------------------------------------------------------------------------


@dataclass
class Bundle:
    header: dict[str, Any]
    files: dict[str, bytes]

    @property
    def version(self) -> str:
        return str(self.header["version"])  # checked by parse_version when verified


def read(path: StrPath) -> bytes:
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BUNDLE:
            raise FirmwareError(f"{path.name} is too large to be a firmware bundle")
        return path.read_bytes()
    except OSError as exc:
        raise FirmwareError(f"cannot read {path}: {exc.strerror}") from None


def verify(data: bytes, trusted: dict[str, bytes]) -> Bundle:
    """Check a bundle completely; returns its header and files, or raises one FirmwareError."""
    if not data.startswith(MAGIC):
        if data.startswith(b"edge-firmware/"):
            raise FirmwareError("unsupported firmware bundle format version")
        raise FirmwareError("not a firmware bundle")
    if len(data) < len(MAGIC) + 4 + SIG_LEN:
        raise FirmwareError("the firmware bundle is truncated")
    (hlen,) = struct.unpack(">I", data[len(MAGIC):len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if hlen > MAX_HEADER or start + hlen + SIG_LEN > len(data):
        raise FirmwareError("the firmware bundle is truncated or its header is damaged")
    try:
        header = json.loads(data[start:start + hlen])
        kid = header["key_id"]
    except (ValueError, TypeError, KeyError, RecursionError):
        raise FirmwareError("the firmware bundle header is damaged") from None
    if not isinstance(kid, str) or kid not in trusted:
        raise FirmwareError(f"the firmware bundle is signed by an unknown key {str(kid)[:16]!r}: refused")
    body, sig = data[:-SIG_LEN], data[-SIG_LEN:]
    try:
        Ed25519PublicKey.from_public_bytes(trusted[kid]).verify(sig, body)
    except InvalidSignature:
        raise FirmwareError("the firmware bundle signature is not valid (tampered or truncated): refused") \
            from None
    files = _files(header, body, start + hlen)
    check_model_weights(files)
    return Bundle(header, files)


WEIGHTS_IN_WHEEL = "edge/face/weights/"


def check_model_weights(files: dict[str, bytes]) -> None:
    """The box's own wheel (``edge_lfr-*.whl``) carries every face model weights file this version pins, each
    with its pinned SHA-256 (edge/face/weights.py): a bundle that would install other or missing weights is
    refused in one sentence, at build and on the box, before anything is installed."""
    import io
    import zipfile

    from edge.face import weights

    for path, data in files.items():
        if not path.startswith("wheels/edge_lfr-"):
            continue
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as whl:
                inside = {n[len(WEIGHTS_IN_WHEEL):]: n for n in whl.namelist() if n.startswith(WEIGHTS_IN_WHEEL)}
                for name in weights.PINNED:
                    if name not in inside:
                        raise FirmwareError(f"{path} does not carry the face model weights {name}: refused")
                    found = hashlib.sha256(whl.read(inside[name])).hexdigest()
                    if found != weights.sha256(name):
                        raise FirmwareError(f"{path} carries face model weights {name} that fail their checksum "
                                            f"(SHA-256 {found[:16]}…): refused")
        except (zipfile.BadZipFile, OSError, EOFError):
            raise FirmwareError(f"{path} is not a readable wheel: refused") from None


def _files(header: dict[str, Any], body: bytes, offset: int) -> dict[str, bytes]:
    """Signed but still checked: a vendor tool bug must not write outside the version folder."""
    try:
        if header["format"] != 1:
            raise FirmwareError("unsupported firmware bundle format version")
        parse_version(header["version"])
        check_migrations(header["migrations"])
        entries = header["files"]
        if not isinstance(entries, list) or len(entries) > MAX_FILES:
            raise ValueError
        files = {}
        for e in entries:
            path, size = e["path"], e["size"]
            if not isinstance(path, str) or not PATH_RE.match(path) or path in files:
                raise FirmwareError(f"the firmware bundle names a bad file path {str(path)[:80]!r}")
            if not isinstance(size, int) or size < 0:
                raise ValueError
            files[path] = body[offset:offset + size]
            offset += size
            if len(files[path]) != size or hashlib.sha256(files[path]).hexdigest() != e["sha256"]:
                raise FirmwareError(f"the firmware bundle's {path} does not match its header")
    except (KeyError, TypeError, ValueError):
        raise FirmwareError("the firmware bundle header is damaged") from None
    if offset != len(body):
        raise FirmwareError("the firmware bundle's length does not match its header")
    return files
