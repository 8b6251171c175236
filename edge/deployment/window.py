"""The deployment window document (``docs/deployment-format.md``): one operation on one box, signed by an issuer.

Version 2 names the watch lists it authorises (list id and bundle SHA-256), so a list matches only under
its own window, and carries an optional prior-authorisation reference (``authority_ref``). Version 1
named no list: it is refused in one sentence.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import codec, identity
from edge.codec import fmt_time, parse_time
from edge.errors import EdgeError

DOC_TYPE = "edge-deployment"
VERSION = 2
SIGN_DOMAIN = "edge-deployment-v2"
MAX_FILE = 64 * 1024
MAX_WINDOW = timedelta(days=31)
MAX_LISTS = 16
EMERGENCY = timedelta(hours=24)  # how long a window without authority_ref may run where one is required
NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._ -]{0,62}[A-Za-z0-9._-])?")
NAME_RULE = ("1-64 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit and not ending "
             "with a space")
CAMERA = re.compile(r"[A-Za-z0-9_-]{1,64}")  # fullmatch: "$" would let a trailing newline through
SHA256 = re.compile(r"[0-9a-f]{64}")  # fullmatch
Doc = dict[str, Any]  # a JSON document
FIELDS = {"deployment_id": str, "box_id": str, "location": str, "cameras": list, "start": str, "end": str,
          "purpose": str, "issuer": str, "issuer_name": str, "issued": str, "lists": list, "authority_ref": str}
V1_REFUSED = ("this is a version 1 deployment window, which names no watch list: sign a version 2 window "
              "with 'enrol authorise --list LIST.wlb'")


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
    issued: datetime
    lists: tuple[tuple[str, str], ...]  # (list_id, bundle sha256) it authorises
    authority_ref: str
    doc: Doc
    verification: str = "one"  # "two": two people must verify each confirmation (edge/alerts/verification.py)
    stopped: datetime | None = None  # ended early (edge deployment end, trust removed, emergency lapsed)
    stop_reason: str = ""

    @property
    def until(self) -> datetime:
        """When it stops matching: its end, or earlier if it was stopped."""
        return min(self.end, self.stopped) if self.stopped else self.end

    def live(self, now: datetime) -> bool:
        return self.start <= now < self.until

    def is_active(self, now: datetime, camera_id: str) -> bool:
        return self.live(now) and camera_id in self.cameras

    def authorises(self, list_id: str) -> bool:
        return any(lid == list_id for lid, _ in self.lists)

    def fields(self) -> Doc:
        """What the audit log records about it (the document minus its signature)."""
        return {"deployment_id": self.deployment_id, "issuer": self.issuer_name or self.issuer,
                "issuer_key_id": self.issuer, "location": self.location, "cameras": list(self.cameras),
                "start": fmt_time(self.start), "end": fmt_time(self.end), "purpose": self.purpose,
                "issued": fmt_time(self.issued), "authority_ref": self.authority_ref,
                "verification": self.verification,
                "lists": [{"list_id": lid, "sha256": sha} for lid, sha in self.lists]}


def make(issuer_key: Ed25519PrivateKey, *, box_id: str, deployment_id: str, location: str, cameras: list[str],
         start: datetime, end: datetime, purpose: str, lists: list[tuple[str, str]], authority_ref: str = "",
         issuer_name: str = "", now: datetime | None = None, verification: str = "one") -> Doc:
    """A signed deployment document (``enrol authorise``) authorising ``lists`` [(list_id, sha256)]."""
    pub = identity.raw_public(issuer_key)
    doc = {"type": DOC_TYPE, "v": VERSION, "deployment_id": deployment_id or f"dep-{uuid.uuid4().hex[:12]}",
           "box_id": box_id, "location": location, "cameras": list(cameras), "start": fmt_time(start),
           "end": fmt_time(end), "purpose": purpose, "issuer": identity.key_id(pub), "issuer_name": issuer_name,
           "issued": fmt_time(now or datetime.now(UTC), ms=True), "authority_ref": authority_ref,
           "lists": [{"list_id": lid, "sha256": sha} for lid, sha in lists]}
    if verification != "one":  # only when it asks for more than a box does anyway
        doc["verification"] = verification
    check(doc)
    doc["signature"] = codec.sign(SIGN_DOMAIN, doc, issuer_key)
    return doc


def check_name(name: str, what: str = "deployment id") -> str:
    """The one rule for a deployment's name, in its window (``enrol authorise``) and in the watch lists built
    for it (``enrol build --deployment``): the box ties a list to its window by this name."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise EdgeError(f"{what} {str(name)[:70]!r} is not a deployment name: use {NAME_RULE}")
    return name


def _lists(items: list[Any]) -> tuple[tuple[str, str], ...]:
    if not 1 <= len(items) <= MAX_LISTS:
        raise EdgeError(f"a deployment window must name 1-{MAX_LISTS} watch lists")
    out = []
    for it in items:
        if not (isinstance(it, dict) and isinstance(it.get("list_id"), str) and 0 < len(it["list_id"]) <= 64
                and isinstance(it.get("sha256"), str) and SHA256.fullmatch(it["sha256"])):
            raise EdgeError("each list a deployment window names needs a list_id and the bundle's sha256")
        out.append((it["list_id"], it["sha256"]))
    return tuple(out)


def check(doc: Doc) -> Deployment:
    """The document's own consistency (not its signature)."""
    if not isinstance(doc, dict) or doc.get("type") != DOC_TYPE:
        raise EdgeError("not a deployment authorisation")
    if doc.get("v") == 1:
        raise EdgeError(V1_REFUSED)
    if doc.get("v") != VERSION:
        raise EdgeError(f"not a version 2 deployment window (version {str(doc.get('v'))[:20]}): "
                        "a newer box may read it")
    for name, tp in FIELDS.items():
        if not isinstance(doc.get(name), tp):
            raise EdgeError(f"the deployment authorisation lacks {name}")
    check_name(doc["deployment_id"])
    for name in ("location", "purpose"):
        if not doc[name].strip() or len(doc[name]) > 500:
            raise EdgeError(f"deployment {name} must be given (at most 500 characters)")
    if len(doc["authority_ref"]) > 200 or doc["authority_ref"] != doc["authority_ref"].strip():
        raise EdgeError("the authority reference must be at most 200 characters, without surrounding spaces")
    cams = doc["cameras"]
    if not cams or len(cams) > 64 or not all(isinstance(c, str) and CAMERA.fullmatch(c) for c in cams):
        raise EdgeError("deployment cameras must be a list of 1-64 camera ids")
    if doc.get("verification", "one") not in ("one", "two"):
        raise EdgeError('the deployment\'s verification must be "one" or "two"')
    start, end = parse_time(doc["start"], "start"), parse_time(doc["end"], "end")
    if end <= start:
        raise EdgeError("the deployment ends before it starts")
    if end - start > MAX_WINDOW:
        raise EdgeError(f"a deployment window may last at most {MAX_WINDOW.days} days")
    return Deployment(doc["deployment_id"], doc["box_id"], doc["location"], tuple(cams), start, end,
                      doc["purpose"], doc["issuer"], doc["issuer_name"], parse_time(doc["issued"], "issued"),
                      _lists(doc["lists"]), doc["authority_ref"], doc, verification=doc.get("verification", "one"))


def verify(doc: Doc, issuers: dict[str, bytes], box_id: str | None = None) -> Deployment:
    """Check a document against the trusted issuers (and the box it must name); EdgeError if not good."""
    dep = check(doc)
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


def same_name(a: str, b: str) -> bool:
    """Two deployment names a person would read as one ("OpLantern", "Op Lantern", "op-lantern")."""
    def fold(s: str) -> str:
        return re.sub(r"[^a-z0-9]", "", s.lower())
    return fold(a) == fold(b)
