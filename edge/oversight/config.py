"""The oversight service's one TOML file, its keys, and the boxes registered with it.

    [database]
    url = "oversight.db"            # a SQLite path, or postgresql://user@host/dbname
    reader_url = ""                 # readers (report, reconcile, verify) connect with this; default: url, read-only
    reader_role = ""                # PostgreSQL: a role granted SELECT on every table at migration
    [service]
    endpoint = "tcp://0.0.0.0:5700" # where boxes send their audit records
    keys = "keys"                   # oversight.key.json (secret: the ingest key) and oversight.pub.json
    [[boxes]]
    identity = "boxes/van-01.pub.json"   # the box's box.pub.json
    site = "Stratford, Westfield"
    site_kind = "private"           # private | public

Relative paths are read from the config's folder. A bad key is named by its path, in one sentence.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import codec, files, identity
from edge.audit.uplink import SERVICE_PUB_TYPE
from edge.errors import ConfigError, EdgeError
from edge.oversight.db import Database

SITE_KINDS = ("private", "public")
KEY_FILE, PUB_FILE = "oversight.key.json", "oversight.pub.json"


@dataclass
class BoxEntry:
    identity: str
    site: str
    site_kind: str


@dataclass
class ServiceConfig:
    url: str
    reader_url: str = ""
    reader_role: str = ""
    endpoint: str = "tcp://127.0.0.1:5700"
    keys: str = "keys"
    boxes: list[BoxEntry] = field(default_factory=list)
    path: str = ""


def _table(data: dict, name: str, known: set[str]) -> dict[str, Any]:
    t = data.get(name, {})
    if not isinstance(t, dict):
        raise ConfigError(f"{name}: expected a table")
    for k in t:
        if k not in known:
            raise ConfigError(f"{name}.{k}: unknown key")
    for k, v in t.items():
        if not isinstance(v, str):
            raise ConfigError(f"{name}.{k}: expected a string")
    return t


def load(path: str | Path) -> ServiceConfig:
    path = Path(path)
    try:
        data = tomllib.loads(files.read_text(path, "oversight config", 1 << 20))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for k in data:
        if k not in ("database", "service", "boxes"):
            raise ConfigError(f"{k}: unknown key")
    base = path.resolve().parent
    db = _table(data, "database", {"url", "reader_url", "reader_role"})
    svc = _table(data, "service", {"endpoint", "keys"})
    if not db.get("url"):
        raise ConfigError("database.url: required key is missing (a SQLite path or postgresql://...)")

    def local(url: str) -> str:
        return url if not url or "://" in url else str(base / url)

    cfg = ServiceConfig(url=local(db["url"]), reader_url=local(db.get("reader_url", "")),
                        reader_role=db.get("reader_role", ""), endpoint=svc.get("endpoint", ServiceConfig.endpoint),
                        keys=str(base / svc.get("keys", "keys")), path=str(path.resolve()))
    if not cfg.endpoint.startswith(("tcp://", "ipc://")):
        raise ConfigError("service.endpoint: must be a ZeroMQ endpoint (tcp://host:port or ipc://path)")
    boxes = data.get("boxes", [])
    if not isinstance(boxes, list):
        raise ConfigError("boxes: expected an array of tables ([[boxes]])")
    for i, b in enumerate(boxes):
        where = f"boxes[{i}]"
        if not isinstance(b, dict) or set(b) - {"identity", "site", "site_kind"}:
            raise ConfigError(f"{where}: expected identity, site and site_kind only")
        for k in ("identity", "site", "site_kind"):
            if not isinstance(b.get(k), str) or not b[k].strip():
                raise ConfigError(f"{where}.{k}: required, a string")
        if b["site_kind"] not in SITE_KINDS:
            raise ConfigError(f"{where}.site_kind: must be one of {', '.join(SITE_KINDS)}")
        cfg.boxes.append(BoxEntry(str(base / b["identity"]), b["site"], b["site_kind"]))
    return cfg


# -- the service's keys: CURVE (the link) and Ed25519 (its countersignatures) ----------------------------

@dataclass
class ServiceKeys:
    curve_public: bytes
    curve_secret: bytes
    signing_key: Ed25519PrivateKey

    def public(self) -> dict[str, Any]:
        pub = identity.raw_public(self.signing_key)
        return {"type": SERVICE_PUB_TYPE, "v": 1, "curve_public": self.curve_public.decode(),
                "signing_public": codec.b64(pub), "key_id": identity.key_id(pub)}


def keys(folder: str | Path, create: bool = False) -> ServiceKeys:
    """The service's keys from ``folder`` (made there on first use when ``create``)."""
    d = Path(folder)
    if not (d / KEY_FILE).exists():
        if not create:
            raise EdgeError(f"the oversight service has no keys in {d}: run 'edge oversight migrate' first")
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        cpub, csec = zmq.curve_keypair()
        k = ServiceKeys(cpub, csec, Ed25519PrivateKey.generate())
        priv = {"curve_public": cpub.decode(), "curve_secret": csec.decode(),
                "signing_key": codec.b64(k.signing_key.private_bytes_raw())}
        files.write_atomic(d / KEY_FILE, json.dumps(priv).encode(), 0o600)
        files.write_atomic(d / PUB_FILE, json.dumps(k.public(), indent=1).encode() + b"\n", 0o644)
        return k
    try:
        doc = json.loads(files.read_text(d / KEY_FILE, "oversight key file", 64 * 1024))
        return ServiceKeys(str(doc["curve_public"]).encode(), str(doc["curve_secret"]).encode(),
                           Ed25519PrivateKey.from_private_bytes(codec.unb64(doc["signing_key"], "signing_key", 32)))
    except (ValueError, KeyError, TypeError, EdgeError):
        raise EdgeError(f"the oversight key file {d / KEY_FILE} is damaged") from None


def register_boxes(db: Database, cfg: ServiceConfig, now: str) -> dict[str, str]:
    """Put the config's boxes (and their registered signing keys) in the store; {box_id: curve key}."""
    out = {}
    with db.tx():
        for b in cfg.boxes:
            pub = identity.load_box_public(b.identity)
            box, kid, curve = pub["box_id"], pub["signing_key_id"], str(pub.get("curve_public", ""))
            db.x("INSERT INTO boxes VALUES (?, ?, ?, ?, ?) ON CONFLICT (box_id) DO UPDATE SET site = excluded.site, "
                 "site_kind = excluded.site_kind, curve_public = excluded.curve_public", (box, b.site, b.site_kind,
                                                                                        curve, now))
            db.x("INSERT INTO box_keys VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                 (box, kid, codec.b64(pub["signing_public"]), f"registered {Path(b.identity).name}"))
            out[box] = curve
    return out
