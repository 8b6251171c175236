"""The primitives every format shares, in one place (docs/architecture.md: a leaf, imports nothing of ours
but ``edge.errors``):

- ``canonical(obj)``: the JSON that is hashed and signed (sorted keys, no spaces, ASCII); a NaN or an
  infinity cannot be written (EdgeError), so no two encodings of one document can exist.
- ``fmt_time``/``parse_time``: the one time format, ISO 8601 in UTC with a trailing ``Z``
  (``2026-12-01T18:00:00Z``; ``ms=True`` adds milliseconds, as audit records do). ``parse_time`` reads that
  form, ``…T18:00Z`` and any explicit offset (``+00:00``, ``+01:00``), and refuses a time without a zone;
  ``date_ok=True`` also takes a bare date as midnight UTC (the audit commands' ``--from``/``--to``).
- ``b64``/``unb64``: standard base64, strict on reading.
- ``sign(domain, doc, key)``/``verify(domain, doc, sig, public)``: Ed25519 over ``domain`` + a newline +
  ``canonical(doc)``. Every signed document has its own domain (``edge-deployment-v1``,
  ``edge-deletion-receipt-v2``, ...), so a signature over one kind of document can never pass as another.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edge.errors import EdgeError

TIME_EXAMPLE = "2026-12-01T18:00Z"
MAX_TIME_TEXT = 40


# --- JSON ---------------------------------------------------------------------------------------

def canonical(obj: Any) -> bytes:
    """The canonical JSON of ``obj`` (what hashes and signatures cover)."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False).encode("ascii")
    except ValueError:
        raise EdgeError("a number that is not finite (NaN or infinity) cannot go into a signed document") from None


# --- time ---------------------------------------------------------------------------------------

def fmt_time(t: datetime | float, *, ms: bool = False) -> str:
    """A datetime (aware) or a POSIX time -> ``2026-12-01T18:00:00Z`` (``ms``: ``…:00.000Z``)."""
    dt = datetime.fromtimestamp(t, UTC) if isinstance(t, int | float) else t.astimezone(UTC)
    return dt.isoformat(timespec="milliseconds" if ms else "seconds").replace("+00:00", "Z")


def parse_time(text: object, what: str = "time", *, date_ok: bool = False,
               error: type[EdgeError] = EdgeError) -> datetime:
    """An ISO-8601 time with ``Z`` or an offset -> aware UTC datetime, or ``error`` in one sentence."""
    s = str(text)
    shown = repr(s[:MAX_TIME_TEXT])
    try:
        if len(s) > MAX_TIME_TEXT:
            raise ValueError
        t = datetime.fromisoformat(s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s)
    except ValueError:
        raise error(f"{what} {shown} is not a UTC time like {TIME_EXAMPLE}") from None
    if t.tzinfo is None:
        if not (date_ok and len(s) == 10):
            raise error(f"{what} {shown} has no time zone: give it in UTC with a trailing Z, like {TIME_EXAMPLE}")
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC)


# --- base64 -------------------------------------------------------------------------------------

def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def unb64(text: object, what: str, length: int | None = None,
          error: type[EdgeError] = EdgeError) -> bytes:
    """Strict base64 -> bytes (of exactly ``length`` bytes when given), or ``error`` naming ``what``."""
    try:
        raw = base64.b64decode(str(text).encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise error(f"{what} is not valid base64") from None
    if length is not None and len(raw) != length:
        raise error(f"{what} must be {length} bytes, got {len(raw)}")
    return raw


# --- signatures ---------------------------------------------------------------------------------

def signed_message(domain: str, doc: Any) -> bytes:
    """What a signature over ``doc`` in ``domain`` covers."""
    return domain.encode("ascii") + b"\n" + canonical(doc)


def sign(domain: str, doc: Any, key: Ed25519PrivateKey) -> str:
    """Base64 Ed25519 signature over ``doc`` in ``domain``."""
    return b64(key.sign(signed_message(domain, doc)))


def verify(domain: str, doc: Any, sig: object, public: bytes) -> bool:
    """Whether ``sig`` (base64) is ``public``'s signature over ``doc`` in ``domain``."""
    return verify_message(signed_message(domain, doc), sig, public)


def verify_message(message: bytes, sig: object, public: bytes) -> bool:
    try:
        raw = base64.b64decode(str(sig).encode("ascii"), validate=True)
        Ed25519PublicKey.from_public_bytes(public).verify(raw, message)
    except (binascii.Error, ValueError, UnicodeEncodeError, InvalidSignature):
        return False
    return True


# --- text for a terminal ------------------------------------------------------------------------

def _unsafe(ch: str) -> bool:
    import unicodedata

    return unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn")


def printable(text: object) -> str:
    """``text`` safe to print on one line: every control or format character (escape codes, newlines,
    carriage returns, bidi overrides, zero-width marks) shown as its escape (``\\x1b``, ``\\n``,
    ``\\u202e``), so text from a record, a file name or an operator can neither move the cursor, clear
    the screen nor add a line of its own."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(ch if ch == " " or not _unsafe(ch) else repr(ch)[1:-1] if ch in "\n\r\t"
                   else f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}" if ord(ch) < 0x10000
                   else f"\\U{ord(ch):08x}" for ch in s)


def printable_tree(obj: Any) -> Any:
    """A copy of a JSON-like document with every string (keys too) made ``printable``: for outputs that are
    laid out in lines from many fields (the text report, a status)."""
    if isinstance(obj, str):
        return printable(obj)
    if isinstance(obj, dict):
        return {printable(k) if isinstance(k, str) else k: printable_tree(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [printable_tree(v) for v in obj]
    return obj
