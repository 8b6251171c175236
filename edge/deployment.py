"""Deployment authorisation: matching runs only inside a window an issuer signed.

A deployment document (``docs/deployment-format.md``) names the box, the location, the cameras, a
start and end time and the purpose, and is signed (Ed25519) by an issuer registered in the box's
trust store (``edge trust add-issuer``). ``enrol authorise`` makes one; ``edge deployment load`` checks
and stores it under ``<state_dir>/deployments/``; the daemon's :class:`Gate` asks ``is_active`` for
each camera and logs ``deployment_start`` / ``deployment_end`` as windows open and close. Outside
every window cameras may run (health) but no face is encoded or matched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import codec, files, identity
from edge.codec import canonical, fmt_time, parse_time
from edge.errors import EdgeError
from edge.files import match_owner

log = logging.getLogger("edge.deployment")

DOC_TYPE = "edge-deployment"
SIGN_DOMAIN = "edge-deployment-v1"
MAX_FILE = 64 * 1024
MAX_WINDOW = timedelta(days=31)
NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._ -]{0,62}[A-Za-z0-9._-])?")
NAME_RULE = ("1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit and not ending "
             "with a space")
CAMERA = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
Doc = dict[str, Any]  # a JSON document
StatePath = str | os.PathLike[str]
Record = Callable[..., object]  # the audit log's append(kind, **fields)
FIELDS = {"deployment_id": str, "box_id": str, "location": str, "cameras": list, "start": str, "end": str,
          "purpose": str, "issuer": str, "issuer_name": str, "issued": str}


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    box_id: str
    location: str
    cameras: tuple[str, ...]
    start: datetime
    end: datetime
    purpose: str
    issuer: str  # issuer key id
    issuer_name: str
    doc: Doc

    def is_active(self, now: datetime, camera_id: str) -> bool:
        return self.start <= now < self.end and camera_id in self.cameras

    def fields(self) -> Doc:
        """What the audit log records about it (the document minus its signature)."""
        return {"deployment_id": self.deployment_id, "issuer": self.issuer_name or self.issuer,
                "issuer_key_id": self.issuer, "location": self.location, "cameras": list(self.cameras),
                "start": fmt_time(self.start), "end": fmt_time(self.end), "purpose": self.purpose}


def make(issuer_key: Ed25519PrivateKey, *, box_id: str, deployment_id: str, location: str, cameras: list[str],
         start: datetime, end: datetime, purpose: str, issuer_name: str = "", now: datetime | None = None) -> Doc:
    """A signed deployment document (``enrol authorise``)."""
    pub = identity.raw_public(issuer_key)
    doc = {"type": DOC_TYPE, "v": 1, "deployment_id": deployment_id or f"dep-{uuid.uuid4().hex[:12]}",
           "box_id": box_id, "location": location, "cameras": list(cameras), "start": fmt_time(start),
           "end": fmt_time(end), "purpose": purpose, "issuer": identity.key_id(pub), "issuer_name": issuer_name,
           "issued": fmt_time(now or datetime.now(UTC))}
    _check(doc)
    doc["signature"] = codec.sign(SIGN_DOMAIN, doc, issuer_key)
    return doc


def check_name(name: str, what: str = "deployment id") -> str:
    """The one rule for a deployment's name, in its window (``enrol authorise``) and in the watch lists built
    for it (``enrol build --deployment``): the box ties a list to its window by this name."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise EdgeError(f"{what} {str(name)[:70]!r} is not a deployment name: use {NAME_RULE}")
    return name


def _check(doc: Doc) -> Deployment:
    """The document's own consistency (not its signature)."""
    if not isinstance(doc, dict) or doc.get("type") != DOC_TYPE or doc.get("v") != 1:
        raise EdgeError("not a version 1 deployment authorisation")
    for name, tp in FIELDS.items():
        if not isinstance(doc.get(name), tp):
            raise EdgeError(f"the deployment authorisation lacks {name}")
    check_name(doc["deployment_id"])
    for name in ("location", "purpose"):
        if not doc[name].strip() or len(doc[name]) > 500:
            raise EdgeError(f"deployment {name} must be given (at most 500 characters)")
    cams = doc["cameras"]
    if not cams or len(cams) > 64 or not all(isinstance(c, str) and CAMERA.match(c) for c in cams):
        raise EdgeError("deployment cameras must be a list of 1-64 camera ids")
    start, end = parse_time(doc["start"], "start"), parse_time(doc["end"], "end")
    if end <= start:
        raise EdgeError("the deployment ends before it starts")
    if end - start > MAX_WINDOW:
        raise EdgeError(f"a deployment window may last at most {MAX_WINDOW.days} days")
    return Deployment(doc["deployment_id"], doc["box_id"], doc["location"], tuple(cams), start, end,
                      doc["purpose"], doc["issuer"], doc["issuer_name"], doc)


def verify(doc: Doc, issuers: dict[str, bytes], box_id: str | None = None) -> Deployment:
    """Check a document against the trusted issuers (and the box it must name); EdgeError if not good."""
    dep = _check(doc)
    pub = issuers.get(dep.issuer)
    if pub is None:
        raise EdgeError(f"the deployment is signed by issuer {dep.issuer}, which this box does not trust")
    body = {k: v for k, v in doc.items() if k != "signature"}
    if not codec.verify(SIGN_DOMAIN, body, doc.get("signature", ""), pub):
        raise EdgeError("the deployment's signature does not verify: it is forged or was altered") from None
    if box_id is not None and dep.box_id != box_id:
        raise EdgeError(f"the deployment is for box {dep.box_id!r}, not this box ({box_id!r})")
    return dep


def parse(data: bytes) -> Doc:
    if len(data) > MAX_FILE:
        raise EdgeError("the file is too large to be a deployment authorisation")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise EdgeError("not a deployment authorisation (not JSON)") from None
    if not isinstance(doc, dict):
        raise EdgeError("not a deployment authorisation (not a JSON object)")
    return doc


def deployments_dir(state_dir: StatePath) -> Path:
    return Path(state_dir) / "deployments"


def load(state_dir: StatePath, path: StatePath, *, record: Record | None = None,
         now: datetime | None = None) -> Deployment:
    """Check a deployment file and store it on the box; logged as deployment_loaded or _refused."""
    record = record or (lambda kind, **f: None)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read {path}: {exc.strerror}") from None
    try:
        box_id = identity.load(state_dir).box_id
        dep = verify(parse(data), identity.issuers(state_dir), box_id)
        if dep.end <= (now or datetime.now(UTC)):
            raise EdgeError(f"the deployment ended at {fmt_time(dep.end)}")
    except EdgeError as exc:
        record("deployment_refused", file=Path(path).name, reason=str(exc))
        raise
    d = deployments_dir(state_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    files.write_atomic(d / f"{dep.deployment_id}.json", canonical(dep.doc) + b"\n", 0o600)
    for p in (d, d / f"{dep.deployment_id}.json"):  # readable by the daemon when loaded as root
        match_owner(p, Path(state_dir))
    record("deployment_loaded", **dep.fields())
    return dep


def scan(state_dir: StatePath) -> tuple[list[Deployment], list[str]]:
    """The deployments on the box, each re-verified against the trust store, and one sentence per stored
    file that fails (damaged, or its issuer no longer trusted): such a window does not count."""
    d = deployments_dir(state_dir)
    if not d.is_dir():
        return [], []
    issuers = identity.issuers(state_dir)
    try:
        box_id = identity.load(state_dir).box_id
    except EdgeError as exc:
        return [], [f"stored deployments cannot be checked: {exc}"]
    out, problems = [], []
    for p in sorted(d.glob("*.json")):
        try:
            out.append(verify(parse(p.read_bytes()), issuers, box_id))
        except OSError as exc:
            problems.append(f"stored deployment {p} cannot be read: {exc.strerror}")
        except EdgeError as exc:
            problems.append(f"stored deployment {p} does not count: {exc}")
    return sorted(out, key=lambda x: x.start), problems


def stored(state_dir: StatePath) -> list[Deployment]:
    """The deployments that count; each file that does not is logged (once per version of it) as a warning."""
    deps, problems = scan(state_dir)
    for why in problems:
        files.warn_once(log, deployments_dir(state_dir), why)
    return deps


def active(deps: list[Deployment], now: datetime, camera_id: str) -> Deployment | None:
    return next((d for d in deps if d.is_active(now, camera_id)), None)


class Gate:
    """The daemon's view: which cameras may match now. ``update()`` often; ``allows(camera)`` per face.

    Re-reads the stored deployments every ``reload_s`` (``edge deployment load`` may add one while the
    daemon runs) and records ``deployment_start`` / ``deployment_end`` as each window opens and closes.
    """

    def __init__(self, state_dir: StatePath, camera_ids: list[str], *, record: Record | None = None,
                 clock: Callable[[], float] = time.time, reload_s: float = 5.0) -> None:
        self.state_dir, self.camera_ids = state_dir, list(camera_ids)
        self.record = record or (lambda kind, **f: None)
        self.clock, self.reload_s = clock, reload_s
        self.deps: list[Deployment] = []
        self.current: dict[str, Deployment] = {}  # deployment_id -> active deployment
        self.allowed: dict[str, str | None] = dict.fromkeys(self.camera_ids)
        self._loaded_at: float | None = None

    def update(self, reload: bool = False) -> dict[str, str | None]:
        """Recompute (re-reading the stored deployments when due or asked); {camera_id: deployment or None}."""
        t = self.clock()
        if reload or self._loaded_at is None or t - self._loaded_at >= self.reload_s:
            self.deps, self._loaded_at = stored(self.state_dir), t
        now = datetime.fromtimestamp(t, UTC)
        live = {d.deployment_id: d for d in self.deps if d.start <= now < d.end}
        for dep_id, d in self.current.items():
            if dep_id not in live:
                self.record("deployment_end", deployment_id=dep_id, location=d.location,
                            reason="window closed" if now >= d.end else "authorisation withdrawn")
        for dep_id, d in live.items():
            if dep_id not in self.current:
                self.record("deployment_start", deployment_id=dep_id, location=d.location,
                            cameras=[c for c in d.cameras if c in self.camera_ids], end=fmt_time(d.end))
        self.current = live
        for c in self.camera_ids:
            on = active(list(live.values()), now, c)
            self.allowed[c] = on.deployment_id if on else None
        return dict(self.allowed)

    def allows(self, camera_id: str) -> bool:
        return bool(self.allowed.get(camera_id))

    def close(self) -> None:
        for dep_id, d in self.current.items():
            self.record("deployment_end", deployment_id=dep_id, location=d.location, reason="service stopped")
        self.current = {}
        self.allowed = dict.fromkeys(self.camera_ids)


def status(state_dir: StatePath, now: datetime | None = None, problems: list[str] | None = None) -> list[Doc]:
    """Each deployment that counts with its state (active, upcoming, ended); the files that do not count
    are appended to ``problems`` when given."""
    now = now or datetime.now(UTC)
    out = []
    deps, bad = scan(state_dir)
    if problems is not None:
        problems.extend(bad)
    for d in deps:
        state = "active" if d.start <= now < d.end else ("ended" if now >= d.end else "upcoming")
        out.append(dict(d.fields(), state=state))
    return out
