"""A signed export of an issuer's register (``bundles.jsonl``): what the SPOC vouches it issued
(docs/register-export.md). ``enrol register --export FILE`` writes it; ``edge oversight ingest --register FILE``
reads it (a plain ``bundles.jsonl`` too).

Header line, the register's lines byte for byte, and a trailer whose ``sha256`` covers every byte before it
and whose ``sig`` is Ed25519 by the issuer key over ``"edge-register-export-v1\\n"`` + the canonical JSON of
the trailer without ``sig``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import codec
from edge.codec import canonical
from edge.errors import EdgeError
from edge.identity import key_id, raw_public

TYPE, END, DOMAIN = "edge-register-export", "edge-register-export-end", "edge-register-export-v1"


def parse_lines(text: str, source: str) -> list[dict[str, Any]]:
    """The entries of a register (``bundles.jsonl``); EdgeError naming the first line that is not one."""
    out = []
    for n, ln in enumerate(text.splitlines(), start=1):
        if not ln.strip():
            continue
        try:
            rec = json.loads(ln)
        except ValueError:
            raise EdgeError(f"{source} line {n} is not JSON: is this a bundles.jsonl register?") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("list_id"), str) or not isinstance(rec.get("box_id"),
                                                                                                    str):
            raise EdgeError(f"{source} line {n} is not a bundle register entry (no list_id/box_id)")
        out.append(rec)
    return out


def make(lines: list[bytes], key: Ed25519PrivateKey, name: str, created: str) -> bytes:
    pub = raw_public(key)
    header = {"type": TYPE, "v": 1, "issuer": key_id(pub), "issuer_public": codec.b64(pub), "name": name,
              "created": created, "lines": len(lines)}
    body = canonical(header) + b"\n" + b"".join(ln + b"\n" for ln in lines)
    trailer: dict[str, Any] = {"type": END, "v": 1, "lines": len(lines), "sha256": hashlib.sha256(body).hexdigest()}
    trailer["sig"] = codec.sign(DOMAIN, trailer, key)
    return body + canonical(trailer) + b"\n"


def is_export(data: bytes) -> bool:
    return data.startswith(b'{"created":') and b'"type":"' + TYPE.encode() + b'"' in data.partition(b"\n")[0]


def verify(data: bytes) -> tuple[dict[str, Any], list[bytes]]:
    """(header, the register's lines) of an export whose signature holds; EdgeError in one sentence if not."""
    first, _, rest = data.partition(b"\n")
    try:
        header = json.loads(first)
        pub = codec.unb64(header["issuer_public"], "issuer_public", 32)
        if header.get("type") != TYPE or header.get("v") != 1 or key_id(pub) != header.get("issuer"):
            raise ValueError
    except (ValueError, KeyError, TypeError, EdgeError, RecursionError):
        raise EdgeError("not a version 1 register export (bad header line)") from None
    body_end = data.rstrip(b"\n").rfind(b"\n") + 1
    try:
        trailer = json.loads(data[body_end:])
        if not isinstance(trailer, dict) or trailer.get("type") != END:
            raise ValueError
    except (ValueError, RecursionError):
        raise EdgeError("the register export has no signed end line: it was cut short") from None
    unsigned = {k: v for k, v in trailer.items() if k != "sig"}
    if trailer.get("sha256") != hashlib.sha256(data[:body_end]).hexdigest() or not codec.verify(
            DOMAIN, unsigned, trailer.get("sig"), pub):
        raise EdgeError(f"the register export's signature does not verify with issuer key {header['issuer']}: "
                        "it was altered")
    lines = data[len(first) + 1:body_end].split(b"\n")[:-1]
    if len(lines) != header.get("lines") or len(lines) != trailer.get("lines"):
        raise EdgeError(f"the register export should hold {header.get('lines')} lines but holds {len(lines)}")
    return header, lines
