"""Tampering with a box's audit log the way an attacker who knows the format would (tests/test_audit_log.py,
tests/attacks/test_audit.py)."""

from __future__ import annotations

import json
from pathlib import Path

from edge.audit.log import record_hash
from edge.codec import canonical


def log_lines(state: Path) -> list[bytes]:
    return (state / "audit" / "audit.log").read_bytes().split(b"\n")[:-1]


def write_log(state: Path, lines: list[bytes]) -> None:
    (state / "audit" / "audit.log").write_bytes(b"".join(ln + b"\n" for ln in lines))


def edit(state: Path) -> None:
    """Record 4's alert distance changed, its hash left as it was."""
    ls = log_lines(state)
    ls[3] = ls[3].replace(b'"distance":0.41', b'"distance":0.91')
    write_log(state, ls)


def edit_and_rehash(state: Path) -> None:
    """Record 4's reference changed and its own hash recomputed (the next record no longer links)."""
    ls = log_lines(state)
    rec = json.loads(ls[3])
    rec["data"]["ref"] = "WL-9"
    rec["hash"] = record_hash(rec)
    ls[3] = canonical(rec)
    write_log(state, ls)


def rewrite_chain(state: Path) -> None:
    """Record 2's reference changed and every hash after it recomputed (only a signed checkpoint tells)."""
    recs = [json.loads(ln) for ln in log_lines(state)]
    recs[1]["data"]["ref"] = "WL-9"
    for i in range(1, len(recs)):
        recs[i]["prev"] = recs[i - 1]["hash"]
        recs[i]["hash"] = record_hash(recs[i])
    write_log(state, [canonical(r) for r in recs])
