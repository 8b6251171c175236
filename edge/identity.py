"""The box's identity: its keys, and the keys it trusts.

One private file holds the box's three secrets (``keys/box.key.json``, mode 0600, in a 0700
folder): an Ed25519 signing key (audit checkpoints, deletion receipts, exports), an X25519 key that
watch-list bundles are encrypted to, and a ZeroMQ CURVE key pair for the console link. The public
half is written next to it as ``keys/box.pub.json`` for the SPOC (``enrol build --for``).

The trust store holds what an engineer registered: issuer public keys (who may sign watch lists)
under ``trust/issuers/`` and console CURVE keys under ``trust/consoles/``. File formats:
``docs/keys.md``. Keys are never logged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from zmq.utils import z85

from edge import files
from edge.codec import b64, unb64
from edge.errors import EdgeError
from edge.files import StrPath, read_text, write_atomic

log = logging.getLogger("edge.identity")

KEY_FILE = "box.key.json"
PUB_FILE = "box.pub.json"
ISSUER_KEY_TYPE = "edge-issuer-ed25519"
BOX_PUB_TYPE = "edge-box-identity"
MAX_KEY_FILE = 64 * 1024


def key_id(raw_public: bytes) -> str:
    """16 hex characters of SHA-256 over a raw public key: how files and messages name keys."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


PrivateKey = Ed25519PrivateKey | X25519PrivateKey
AnyKey = PrivateKey | Ed25519PublicKey | X25519PublicKey


def _raw_private(key: PrivateKey) -> bytes:
    return key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())


def raw_public(key: AnyKey) -> bytes:
    """32 raw bytes of an Ed25519/X25519 private or public key's public half."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey | X25519PrivateKey) else key
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass
class Identity:
    box_id: str
    signing_key: Ed25519PrivateKey
    wl_key: X25519PrivateKey
    curve_public: bytes  # z85, 40 bytes
    curve_secret: bytes  # z85, 40 bytes

    @property
    def signing_public(self) -> bytes:
        return raw_public(self.signing_key)

    @property
    def wl_public(self) -> bytes:
        return raw_public(self.wl_key)

    def fingerprint(self) -> str:
        """A short string to read out over the phone: covers all three public keys."""
        h = hashlib.sha256(self.signing_public + self.wl_public + z85.decode(self.curve_public)).hexdigest()
        return "-".join(h[i:i + 4] for i in range(0, 16, 4)).upper()

    def public(self) -> dict[str, Any]:
        return {
            "type": BOX_PUB_TYPE,
            "version": 1,
            "box_id": self.box_id,
            "signing_public": b64(self.signing_public),
            "signing_key_id": key_id(self.signing_public),
            "wl_public": b64(self.wl_public),
            "wl_key_id": key_id(self.wl_public),
            "curve_public": self.curve_public.decode("ascii"),
            "fingerprint": self.fingerprint(),
        }

    def _private(self) -> dict[str, Any]:
        return {
            "version": 1,
            "box_id": self.box_id,
            "signing_key": b64(_raw_private(self.signing_key)),
            "wl_key": b64(_raw_private(self.wl_key)),
            "curve_public": self.curve_public.decode("ascii"),
            "curve_secret": self.curve_secret.decode("ascii"),
        }


def _keys_dir(state_dir: StrPath) -> Path:
    return Path(state_dir) / "keys"


DECLARED = ("cameras", "model")  # what box.pub.json declares besides the keys (kept when the keys are re-saved)


def _declared(state_dir: StrPath) -> dict[str, Any]:
    """What the box's ``box.pub.json`` declares besides its keys: its cameras and face model ({} if none)."""
    try:
        pub = json.loads((_keys_dir(state_dir) / PUB_FILE).read_text())
        return {k: pub[k] for k in DECLARED if k in pub}
    except (OSError, ValueError, TypeError):
        return {}


def _publish(state_dir: StrPath, ident: Identity, **declared: Any) -> None:
    pub = {**ident.public(), **_declared(state_dir), **{k: v for k, v in declared.items() if v is not None}}
    write_atomic(_keys_dir(state_dir) / PUB_FILE, (json.dumps(pub, indent=1, sort_keys=True) + "\n").encode(), 0o644)


def _save(state_dir: StrPath, ident: Identity, model: dict[str, Any] | None = None) -> None:
    kdir = _keys_dir(state_dir)
    kdir.mkdir(parents=True, exist_ok=True)
    os.chmod(kdir, 0o700)
    write_atomic(kdir / KEY_FILE, json.dumps(ident._private(), indent=1).encode(), 0o600)
    _publish(state_dir, ident, model=model)


def publish_cameras(state_dir: StrPath, camera_ids: list[str]) -> None:
    """``box.pub.json`` also names the box's cameras (``enrol authorise`` checks a window's camera ids against
    them; not signed: a wrong list only weakens that check, never what the box enforces)."""
    _publish(state_dir, load(state_dir), cameras=sorted(camera_ids))


def create(state_dir: StrPath, box_id: str, rotate: bool = False, model: dict[str, Any] | None = None) -> Identity:
    """Make the box's keys if absent (or replace them when ``rotate``); return the identity.

    Existing keys are never overwritten without ``rotate``; a changed ``box_id`` is only relabelled. ``model``:
    the face model the box runs (``FaceModel.ref()``), declared in ``box.pub.json`` so that ``enrol build``
    makes templates for it.
    """
    if not box_id or not box_id.strip():
        raise EdgeError("box id must not be empty")
    if not rotate and not (_keys_dir(state_dir) / KEY_FILE).exists() and (_keys_dir(state_dir) / PUB_FILE).exists():
        load(state_dir)  # refuses: the private key was provisioned and is gone; new keys only on purpose
    if (_keys_dir(state_dir) / KEY_FILE).exists() and not rotate:
        ident = load(state_dir)
        if ident.box_id != box_id:
            ident.box_id = box_id
            _save(state_dir, ident, model)
        elif model and model != _declared(state_dir).get("model"):
            _publish(state_dir, ident, model=model)  # the keys stay as they are: only the declaration changes
        return ident
    cpub, csec = zmq.curve_keypair()
    ident = Identity(box_id, Ed25519PrivateKey.generate(), X25519PrivateKey.generate(), cpub, csec)
    _save(state_dir, ident, model)
    return ident


KEY_FIELDS = ("box_id", "signing_key", "wl_key", "curve_public", "curve_secret")
ROTATE_HINT = "restore it from a backup, or run 'edge provision --rotate' to make new keys"


def load(state_dir: StrPath) -> Identity:
    path = _keys_dir(state_dir) / KEY_FILE
    if not path.exists():
        if (_keys_dir(state_dir) / PUB_FILE).exists():
            raise EdgeError(f"the box's private key file {path} is missing: {ROTATE_HINT}")
        raise EdgeError("this box is not provisioned: run 'edge provision'")
    damaged = f"the box key file {path} is damaged"
    try:
        d = json.loads(read_text(path, "box key file", MAX_KEY_FILE))
    except (ValueError, RecursionError):
        raise EdgeError(f"{damaged}: it is not JSON ({ROTATE_HINT})") from None
    if not isinstance(d, dict):
        raise EdgeError(f"{damaged}: it is not a key file ({ROTATE_HINT})")
    missing = [k for k in KEY_FIELDS if k not in d]
    if missing:
        raise EdgeError(f"{damaged}: it has no {', '.join(missing)} ({ROTATE_HINT})")
    try:
        return Identity(
            box_id=str(d["box_id"]),
            signing_key=Ed25519PrivateKey.from_private_bytes(unb64(d["signing_key"], "the signing key", 32)),
            wl_key=X25519PrivateKey.from_private_bytes(unb64(d["wl_key"], "the watch-list key", 32)),
            curve_public=_z85_key(d["curve_public"], "the curve public key"),
            curve_secret=_z85_key(d["curve_secret"], "the curve secret key"),
        )
    except EdgeError as exc:
        raise EdgeError(f"{damaged}: {exc} ({ROTATE_HINT})") from None


def public_identity(state_dir: StrPath) -> dict[str, Any]:
    """The box's public keys as a dict (also kept in ``keys/box.pub.json``)."""
    return load(state_dir).public()


def parse_box_public(data: object) -> dict[str, Any]:
    """Validate a ``box.pub.json`` dict; returns it with ``wl_public`` and ``signing_public`` as bytes."""
    if not isinstance(data, dict) or data.get("type") != BOX_PUB_TYPE:
        raise EdgeError(f"not a box public identity (expected type {BOX_PUB_TYPE!r})")
    out = dict(data)
    for name in ("wl_public", "signing_public"):
        out[name] = unb64(data.get(name), f"box {name}", 32)
        if key_id(out[name]) != data.get(f"{name.split('_')[0]}_key_id"):
            raise EdgeError(f"box {name} does not match its key id")
    if not isinstance(data.get("box_id"), str):
        raise EdgeError("box identity has no box_id")
    return out


def load_box_public(path: StrPath) -> dict[str, Any]:
    """A ``box.pub.json`` file -> ``parse_box_public`` of it, or one sentence saying why not."""
    try:
        data = json.loads(read_text(path, "box identity", MAX_KEY_FILE))
    except (ValueError, RecursionError):
        raise EdgeError(f"{path} is not a box identity file (box.pub.json)") from None
    return parse_box_public(data)


# --- trust store -------------------------------------------------------------------------


def _z85_key(text: object, what: str) -> bytes:
    try:
        s = str(text).strip().encode("ascii")
        if len(s) != 40 or any(c not in z85.Z85CHARS for c in s) or z85.encode(z85.decode(s)) != s:
            raise ValueError
    except (ValueError, KeyError, IndexError, TypeError, OverflowError):  # UnicodeError is a ValueError
        raise EdgeError(f"{what} is not a 40-character z85 CURVE key") from None
    return s


def _read_key_file(keyfile: StrPath) -> str:
    return read_text(keyfile, "key file", MAX_KEY_FILE)


def issuer_public_doc(raw_public: bytes, name: str = "") -> dict[str, Any]:
    """The issuer public key file's content (``enrol keygen`` writes it)."""
    return {"type": ISSUER_KEY_TYPE, "key_id": key_id(raw_public), "public_key": b64(raw_public),
            "name": name}


def parse_issuer_key(text: str, source: str = "issuer key file") -> bytes:
    """An issuer public key file -> 32 raw Ed25519 public bytes (refuses anything else)."""
    try:
        d = json.loads(text)
    except ValueError:
        raise EdgeError(f"{source} is not an issuer public key file (not JSON)") from None
    if not isinstance(d, dict) or d.get("type") != ISSUER_KEY_TYPE:
        raise EdgeError(f"{source} is not an issuer public key file (expected type {ISSUER_KEY_TYPE!r})")
    raw = unb64(d.get("public_key"), f"{source} public_key", 32)
    if d.get("key_id") != key_id(raw):
        raise EdgeError(f"{source}: key_id does not match the public key")
    return raw


def _trust_dir(state_dir: StrPath, kind: str) -> Path:
    d = Path(state_dir) / "trust" / kind
    d.mkdir(parents=True, exist_ok=True)
    return d


def add_issuer(state_dir: StrPath, keyfile: StrPath) -> str:
    """Trust an issuer's Ed25519 public key to sign watch lists; returns its key id."""
    text = _read_key_file(keyfile)
    raw = parse_issuer_key(text, str(keyfile))
    kid = key_id(raw)
    doc = issuer_public_doc(raw, str(json.loads(text).get("name", "")))
    write_atomic(_trust_dir(state_dir, "issuers") / f"{kid}.pub", json.dumps(doc, indent=1).encode() + b"\n")
    return kid


def issuers(state_dir: StrPath) -> dict[str, bytes]:
    """{key_id: raw Ed25519 public key} of trusted issuers (damaged files are reported, not trusted)."""
    def parse(text: str, name: str) -> tuple[str, bytes]:
        raw = parse_issuer_key(text, name)
        return key_id(raw), raw

    return _trusted(state_dir, "issuers", parse)


def add_console(state_dir: StrPath, keyfile: StrPath) -> str:
    """Trust an operator console's CURVE public key (z85); returns its key id."""
    text = "\n".join(ln for ln in _read_key_file(keyfile).splitlines() if not ln.lstrip().startswith("#"))
    pub = _z85_key(text, str(keyfile))
    kid = key_id(z85.decode(pub))
    write_atomic(_trust_dir(state_dir, "consoles") / f"{kid}.pub", pub + b"\n")
    return kid


def consoles(state_dir: StrPath) -> dict[str, bytes]:
    """{key_id: z85 CURVE public key} of trusted consoles (damaged files are reported, not trusted)."""
    def parse(text: str, name: str) -> tuple[str, bytes]:
        pub = _z85_key(text, name)
        return key_id(z85.decode(pub)), pub

    return _trusted(state_dir, "consoles", parse)


CONSOLE_NAMES = "names.json"  # trust/consoles/names.json: {key_id: name} given to `edge trust add-console --name`


def name_console(state_dir: StrPath, kid: str, name: str) -> None:
    path = _trust_dir(state_dir, "consoles") / CONSOLE_NAMES
    names = _console_names(state_dir)
    names[kid] = name
    write_atomic(path, json.dumps(names, indent=1, sort_keys=True).encode() + b"\n")


def _console_names(state_dir: StrPath) -> dict[str, str]:
    try:
        doc = json.loads((Path(state_dir) / "trust" / "consoles" / CONSOLE_NAMES).read_text())
        return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
    except (OSError, ValueError, RecursionError):
        return {}


def trusted(state_dir: StrPath) -> list[tuple[str, str, str]]:
    """Every trusted key as (kind ``issuer``/``console``, key id, name or "")."""
    out = []
    for kid in issuers(state_dir):
        try:
            name = str(json.loads((Path(state_dir) / "trust" / "issuers" / f"{kid}.pub").read_text()).get("name", ""))
        except (OSError, ValueError, AttributeError):
            name = ""
        out.append(("issuer", kid, name))
    names = _console_names(state_dir)
    out += [("console", kid, names.get(kid, "")) for kid in consoles(state_dir)]
    return out


def find_trusted(state_dir: StrPath, who: str) -> tuple[str, str, str]:
    """The one trusted key a user means by a key id or a name; EdgeError in one sentence otherwise."""
    keys = trusted(state_dir)
    hits = [k for k in keys if who == k[1]] or [k for k in keys if who and who == k[2]]
    if not hits:
        raise EdgeError(f"no trusted issuer or console has the key id or name {who[:80]!r} ('edge trust list')")
    if len(hits) > 1:
        raise EdgeError(f"{len(hits)} trusted keys are named {who[:80]!r}: give the key id")
    return hits[0]


def remove_trusted(state_dir: StrPath, kind: str, kid: str) -> None:
    """Stop trusting a key: its file goes (everything re-reads the trust store, so it takes effect at once)."""
    (Path(state_dir) / "trust" / f"{kind}s" / f"{kid}.pub").unlink(missing_ok=True)


def _trusted(state_dir: StrPath, kind: str, parse: Callable[[str, str], tuple[str, bytes]],
             problems: list[str] | None = None) -> dict[str, bytes]:
    """Every good key in <state_dir>/trust/<kind>/*.pub, by key id. A damaged file is not trusted, and is
    reported: appended to ``problems`` when given, and logged (once per file version) as a warning."""
    out: dict[str, bytes] = {}
    d = Path(state_dir) / "trust" / kind
    for p in sorted(d.glob("*.pub")) if d.is_dir() else []:
        try:
            kid, value = parse(_read_key_file(p), str(p))
        except EdgeError as exc:
            why = f"trusted {kind[:-1]} file {p} is damaged and not trusted: {exc}"
            if problems is not None:
                problems.append(why)
            files.warn_once(log, p, why)
            continue
        out[kid] = value
    return out


def trust_problems(state_dir: StrPath) -> list[str]:
    """One sentence per damaged file in the trust store (``edge doctor``, ``edge trust list``)."""
    problems: list[str] = []
    _trusted(state_dir, "issuers", lambda text, name: ("", parse_issuer_key(text, name)), problems)
    _trusted(state_dir, "consoles", lambda text, name: ("", _z85_key(text, name)), problems)
    return problems
