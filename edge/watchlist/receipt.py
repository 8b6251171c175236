"""Deletion receipts: the box's signed statement that a watch list was purged (docs/watchlist-format.md).

A receipt is a JSON object; ``signature`` is Ed25519 (box signing key) over the canonical JSON of all
other fields. The SPOC verifies it against the box's public identity (``box.pub.json``), which it
received out of band at provisioning: the public key inside a receipt is never trusted by itself.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.errors import EdgeError
from edge.identity import key_id
from edge.watchlist.bundle import canonical, fmt_time

RECEIPT_TYPE = "edge-deletion-receipt"
FIELDS = ("box_id", "box_key", "list_id", "issuer", "deployment", "sequence", "entries", "reason", "time")


def make(ident, *, list_id: str, issuer: str, deployment: str, sequence: int, entries: int,
         reason: str, when: datetime | None = None) -> dict:
    body = {"type": RECEIPT_TYPE, "version": 1, "box_id": ident.box_id,
            "box_key": key_id(ident.signing_public), "list_id": list_id, "issuer": issuer,
            "deployment": deployment, "sequence": sequence, "entries": entries, "reason": reason,
            "time": fmt_time(when or datetime.now(UTC))}
    sig = ident.signing_key.sign(canonical(body))
    return dict(body, signature=base64.b64encode(sig).decode("ascii"))


def verify(receipt: dict, box_signing_public: bytes) -> dict:
    """Check a receipt against the box's signing key; returns the signed fields or raises EdgeError."""
    if not isinstance(receipt, dict) or receipt.get("type") != RECEIPT_TYPE or receipt.get("version") != 1:
        raise EdgeError("not a version 1 deletion receipt")
    body = {k: v for k, v in receipt.items() if k != "signature"}
    missing = [f for f in FIELDS if f not in body]
    if missing:
        raise EdgeError(f"the receipt lacks {', '.join(missing)}")
    if body["box_key"] != key_id(box_signing_public):
        raise EdgeError(f"the receipt names box key {body['box_key']}, not this box "
                        f"({key_id(box_signing_public)})")
    try:
        sig = base64.b64decode(str(receipt.get("signature", "")), validate=True)
        Ed25519PublicKey.from_public_bytes(box_signing_public).verify(sig, canonical(body))
    except (binascii.Error, ValueError, InvalidSignature):
        raise EdgeError("the receipt's signature does not verify: it is forged or was altered") from None
    return body


def load_file(path) -> dict:
    try:
        return json.loads(open(path, encoding="utf-8").read())
    except OSError as exc:
        raise EdgeError(f"cannot read receipt {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise EdgeError(f"{path} is not a JSON receipt") from None
