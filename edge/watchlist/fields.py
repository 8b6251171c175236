"""What every watch-list bundle version shares: the refusal error, times, canonical JSON, JSON parsing
with a nesting-depth check, and the bounds on every field a bundle controls (docs/watchlist-format.md,
"Limits"). Bounds are checked before a value is used, and every failure is one sentence.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, NoReturn

import numpy as np

from edge import codec
from edge.errors import EdgeError

# --- limits (docs/watchlist-format.md, "Limits") -----------------------------------------------
MAX_HEADER = 64 * 1024
MAX_JSON_DEPTH = 8  # objects and arrays inside one another; the formats need 4
HARD_MAX_ENTRIES = 100_000
MAX_TEMPLATES_PER_ENTRY = 16
MAX_IMAGES_PER_ENTRY = 16
MAX_IMAGE = 1 << 20
MAX_LIST_ID = 64
MAX_DEPLOYMENT = 200
MAX_BOX_ID = 64
MAX_REF = 64
MAX_REASON = 500
MAX_SOURCE = 100
MAX_RULE = 64
MAX_CALIBRATION = 200
REF_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.:-]{0,63}")
DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
SHA256_RE = re.compile(r"[0-9a-f]{64}")
_NEST = np.zeros(256, np.int8)
_NEST[[0x5B, 0x7B]], _NEST[[0x5D, 0x7D]] = 1, -1  # [ { open, ] } close


Doc = dict[str, Any]  # a JSON object


class BundleError(EdgeError):
    """A watch-list bundle that is refused; the message says why in one sentence."""


# --- time ---------------------------------------------------------------------------------------

def parse_time(text: object, what: str = "time") -> datetime:
    """``codec.parse_time``, refusing with a BundleError."""
    return codec.parse_time(text, what, error=BundleError)


def valid_date(text: object) -> bool:
    """``YYYY-MM-DD``, a real calendar date."""
    if not isinstance(text, str) or not DATE_RE.fullmatch(text):
        return False
    try:
        datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        return False
    return True


# --- JSON ---------------------------------------------------------------------------------------

def json_depth(data: bytes, block: int = 1 << 20) -> int:
    """The deepest nesting of objects and arrays in JSON text, brackets inside strings not counted,
    without parsing: numpy work in blocks (tens of MB at most, whatever the size of ``data``). A quote
    after an odd run of backslashes is escaped; text after a backslash outside a string (invalid JSON,
    where a parser stops) may be over-counted, never under-counted."""
    arr = np.frombuffer(data, dtype=np.uint8)
    deepest = level = quotes = 0
    last_plain = -1  # position of the last byte that is not a backslash
    for s in range(0, len(arr), block):
        b = arr[s:s + block]
        quote = b == 0x22
        if last_plain != s - 1 or (b == 0x5C).any():  # backslashes here, or one just before
            pos = np.arange(s, s + len(b), dtype=np.int64)
            plain = np.where(b != 0x5C, pos, -1)
            plain[0] = max(plain[0], last_plain)
            np.maximum.accumulate(plain, out=plain)
            before = np.concatenate(([last_plain], plain[:-1]))  # the last non-backslash before each byte
            quote &= ((pos - 1 - before) & 1) == 0  # not escaped by an odd run of backslashes
            last_plain = int(plain[-1])
        else:
            last_plain = s + len(b) - 1
        qpos = np.flatnonzero(quote)  # the real quotes (sparse), and the brackets outside strings
        bpos = np.flatnonzero(_NEST[b])
        outside = ((np.searchsorted(qpos, bpos) + quotes) & 1) == 0
        step = _NEST[b[bpos[outside]]].astype(np.int32)
        if len(step):
            run = np.cumsum(step)
            run += level
            deepest, level = max(deepest, int(run.max())), int(run[-1])
        quotes = (quotes + len(qpos)) & 1
    return deepest


def load_json(data: bytes, what: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ASCII JSON whose nesting is checked first: a deep document is one sentence, not a
    RecursionError. Numbers that are NaN or infinite are refused too."""
    if json_depth(data) > max_depth:
        raise BundleError(f"{what} is nested more than {max_depth} levels deep")
    try:
        return json.loads(data, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BundleError(f"{what} is not valid JSON") from None


def _no_constant(name: str) -> NoReturn:
    raise ValueError(name)


# --- fields -------------------------------------------------------------------------------------

def field(h: Doc, name: str, tp: type | tuple[type, ...], where: str = "header") -> Any:
    v = h.get(name)
    if not isinstance(v, tp) or isinstance(v, bool):
        raise BundleError(f"{where}.{name} is missing or of the wrong type")
    return v


def text(h: Doc, name: str, max_len: int, where: str = "header", *, optional: bool = False) -> str:
    if optional and name not in h:
        return ""
    v: str = field(h, name, str, where)
    if len(v) > max_len:
        raise BundleError(f"{where}.{name} is longer than {max_len} characters")
    return v


def number(h: Doc, name: str, lo: float, hi: float, where: str, *, open_lo: bool = True, open_hi: bool = True,
           optional: bool = False) -> float | None:
    """A number in (lo, hi) (ends closed when asked); None when optional and absent."""
    if optional and name not in h:
        return None
    v = field(h, name, (int, float), where)
    if not (lo < v if open_lo else lo <= v) or not (v < hi if open_hi else v <= hi):
        left, right = "(" if open_lo else "[", ")" if open_hi else "]"
        raise BundleError(f"{where}.{name} {v} is out of range {left}{lo}, {hi}{right}")
    return float(v) if isinstance(v, float) else int(v)


def check_operating(h: Doc) -> None:
    """The optional signed ``policy.target_fpir`` and ``operating`` object (docs: "Operating point")."""
    number(h["policy"], "target_fpir", 0, 1, "policy", optional=True)
    if "operating" not in h:
        return
    op = field(h, "operating", dict)
    text(op, "rule", MAX_RULE, "operating", optional=True)
    number(op, "threshold", 0, 2, "operating", open_hi=False, optional=True)
    number(op, "cap", 0, 2, "operating", open_hi=False, optional=True)
    number(op, "target_fpir", 0, 1, "operating", optional=True)
    number(op, "expected_fpir", 0, 1, "operating", open_lo=False, open_hi=False, optional=True)
    if "extrapolated" in op and not isinstance(op["extrapolated"], bool):
        raise BundleError("operating.extrapolated must be true or false")
    if "list_size" in op and not 0 <= field(op, "list_size", int, "operating") <= HARD_MAX_ENTRIES:
        raise BundleError(f"operating.list_size is out of range (0..{HARD_MAX_ENTRIES})")
    text(op, "calibration", MAX_CALIBRATION, "operating", optional=True)
