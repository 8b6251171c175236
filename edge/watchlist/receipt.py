"""Deletion receipts: the box's signed statement that a watch list was purged (docs/watchlist-format.md).

A receipt is a JSON object; ``signature`` is the box signing key's Ed25519 signature (``codec.sign``, domain
``edge-deletion-receipt-v2``) over the canonical JSON of all other fields. Version 1 receipts (signed over
the bare canonical JSON, without a domain) are still verified as they were signed, so a receipt an
oversight body already holds stays checkable; every new receipt is version 2. The SPOC verifies a receipt
against the box's public identity (``box.pub.json``), which it received out of band at provisioning: the
public key inside a receipt is never trusted by itself.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from edge import codec
from edge.errors import EdgeError
from edge.files import read_json
from edge.identity import Identity, key_id

Doc = dict[str, Any]  # a JSON object

RECEIPT_TYPE = "edge-deletion-receipt"
VERSION = 2
SIGN_DOMAIN = "edge-deletion-receipt-v2"
FIELDS = ("box_id", "box_key", "list_id", "issuer", "deployment", "sequence", "entries", "reason", "time")


def make(ident: Identity, *, list_id: str, issuer: str, deployment: str, sequence: int, entries: int,
         reason: str, when: datetime | None = None) -> Doc:
    body = {"type": RECEIPT_TYPE, "version": VERSION, "box_id": ident.box_id,
            "box_key": key_id(ident.signing_public), "list_id": list_id, "issuer": issuer,
            "deployment": deployment, "sequence": sequence, "entries": entries, "reason": reason,
            "time": codec.fmt_time(when or datetime.now(UTC))}
    return dict(body, signature=codec.sign(SIGN_DOMAIN, body, ident.signing_key))


def from_record(data: Doc) -> Doc | None:
    """The receipt as the box issued it, rebuilt from a ``watchlist_purged`` audit record (None if the
    record holds none). Records from before version 2 carry no ``receipt_version``: they are version 1."""
    if not data.get("receipt_signature") or any(k not in data for k in FIELDS):
        return None
    return {"type": RECEIPT_TYPE, "version": data.get("receipt_version", 1), **{k: data[k] for k in FIELDS},
            "signature": data["receipt_signature"]}


def _signed_by(receipt: Doc, body: Doc, public: bytes) -> bool:
    if body["version"] == 1:  # before domain separation: the bare canonical JSON
        return codec.verify_message(codec.canonical(body), receipt.get("signature", ""), public)
    return codec.verify(SIGN_DOMAIN, body, receipt.get("signature", ""), public)


def verify(receipt: Doc, box_signing_public: bytes) -> Doc:
    """Check a receipt against the box's signing key; returns the signed fields or raises EdgeError."""
    if not isinstance(receipt, dict) or receipt.get("type") != RECEIPT_TYPE or receipt.get("version") not in (1, 2):
        raise EdgeError("not a version 1 or 2 deletion receipt")
    body = {k: v for k, v in receipt.items() if k != "signature"}
    missing = [f for f in FIELDS if f not in body]
    if missing:
        raise EdgeError(f"the receipt lacks {', '.join(missing)}")
    if body["box_key"] != key_id(box_signing_public):
        raise EdgeError(f"the receipt names box key {body['box_key']}, not this box "
                        f"({key_id(box_signing_public)})")
    try:
        good = _signed_by(receipt, body, box_signing_public)
    except EdgeError:  # a field that canonical JSON refuses (NaN) cannot have been signed
        good = False
    if not good:
        raise EdgeError("the receipt's signature does not verify: it is forged or was altered")
    return body


def load_file(path: str | os.PathLike[str]) -> Doc:
    doc = read_json(path, "receipt")
    if not isinstance(doc, dict):
        raise EdgeError(f"{path} is not a JSON receipt")
    return doc
