"""Checking the audit log and its exports: names the first broken record and how it broke.

``verify_log(state_dir)`` checks the box's log against the box key: each record's hash (edited),
each link to the record before (edited with a recomputed hash), sequence gaps (deleted), sequence
order (reordered, duplicated), a torn last line or a log shorter than the box's signed head
(truncated), and every checkpoint signature. ``verify_export(data, box_public)`` checks a signed
export (``docs/audit-format.md``) off the box with only the box's public key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import codec, files
from edge.audit.log import (
    ANCHOR_NAME,
    GENESIS,
    HEAD_NAME,
    KINDS,
    LOG_NAME,
    Record,
    checkpoint_message,
    damage,
    endorsed_key,
    read_lines,
    record_hash,
)
from edge.codec import canonical
from edge.errors import EdgeError
from edge.files import StrPath
from edge.identity import key_id

EXPORT_TYPE = "edge-audit-export"
EXPORT_END = "edge-audit-export-end"
EXPORT_DOMAIN = "edge-audit-export-v1"
FIELDS = {"v": int, "seq": int, "time": str, "kind": str, "box_id": str, "data": dict, "prev": str, "hash": str}


@dataclass
class Problem:
    kind: str  # edited | deleted | reordered | duplicated | truncated | damaged | signature | missing
    line: int  # 1-based line in the file (0: the file as a whole)
    message: str


@dataclass
class Result:
    records: list[Record] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checkpoints: int = 0
    signed_through: int = 0  # last seq covered by a good checkpoint (or export signature) of the trusted key
    unusable: set[int] = field(default_factory=set)  # seqs of records a report cannot read (damaged, unknown kind)
    box_keys: set[bytes] = field(default_factory=set)  # the trusted key and the keys its rotations endorsed

    @property
    def usable(self) -> list[Record]:
        """The records a report can be built from: every record but the damaged ones (named in ``problems``)."""
        return [r for r in self.records if r["seq"] not in self.unusable]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=_order) if self.problems else None

    def summary(self) -> str:
        n = len(self.records)
        span = f"seq {self.records[0]['seq']}..{self.records[-1]['seq']}" if self.records else "empty"
        first = self.first
        if first is None:
            return (f"OK: {n} records ({span}), {self.checkpoints} checkpoints, "
                    f"signed through seq {self.signed_through}")
        more = f" ({len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
        return f"BROKEN: {first.message}{more}"

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "records": len(self.records), "checkpoints": self.checkpoints,
                "signed_through": self.signed_through, "warnings": self.warnings,
                "problems": [vars(p) for p in sorted(self.problems, key=_order)]}


def _order(p: Problem) -> tuple[bool, int]:
    return (p.line == 0, p.line)


def _parse_lines(data: bytes, res: Result, first_line: int = 1) -> list[tuple[int, Record]]:
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the data ends with a newline
    if torn:
        res.problems.append(Problem("truncated", first_line + len(lines),
                                    f"truncated: line {first_line + len(lines)} is an incomplete record "
                                    f"({len(torn)} bytes, no end of line)"))
    out = []
    for i, raw in enumerate(lines):
        lineno = first_line + i
        rec = None
        try:
            rec = json.loads(raw)
            if not isinstance(rec, dict) or any(not isinstance(rec.get(k), t) for k, t in FIELDS.items()):
                raise ValueError
        except (ValueError, UnicodeDecodeError, RecursionError):
            seq = rec.get("seq") if isinstance(rec, dict) and isinstance(rec.get("seq"), int) else None
            what = f"line {lineno} (record seq {seq})" if seq is not None else f"line {lineno}"
            res.problems.append(Problem("damaged", lineno, f"{what} is not a valid audit record (edited or damaged)"))
            continue
        if canonical(rec) != raw or record_hash(rec) != rec["hash"]:
            res.problems.append(Problem("edited", lineno, f"record seq {rec['seq']} (line {lineno}, "
                                                          f"{rec['kind']}) was edited: it no longer matches its hash"))
        if rec["kind"] not in KINDS:
            res.unusable.add(rec["seq"])
            res.warnings.append(f"record seq {rec['seq']} (line {lineno}) is of a kind this version does not know "
                                f"({str(rec['kind'])[:40]}): left out of reports")
        elif why := damage(rec["kind"], rec["data"], rec["time"]):
            res.unusable.add(rec["seq"])
            res.problems.append(Problem("damaged", lineno, f"record seq {rec['seq']} (line {lineno}, {rec['kind']}) "
                                                           f"is damaged: {why}; left out of the report"))
        out.append((lineno, rec))
    return out


def _check_chain(parsed: list[tuple[int, Record]], res: Result, anchor_seq: int, anchor_hash: str) -> None:
    by_seq: dict[int, tuple[int, Record]] = {}
    before = None  # (line, seq) of the record before, in file order
    for lineno, rec in parsed:
        seq = rec["seq"]
        if seq in by_seq:
            res.problems.append(Problem("duplicated", lineno, f"record seq {seq} appears twice "
                                                              f"(line {by_seq[seq][0]} and line {lineno})"))
            continue
        if before and seq < before[1]:
            res.problems.append(Problem("reordered", lineno, f"records were reordered: seq {seq} (line {lineno}) "
                                                             f"comes after seq {before[1]} (line {before[0]})"))
        by_seq[seq] = (lineno, rec)
        before = (lineno, seq)
    edited = {p.line for p in res.problems if p.kind == "edited"}
    seqs = sorted(by_seq)
    expected = anchor_seq + 1
    for seq in seqs:
        lineno, rec = by_seq[seq]
        if seq > expected:
            line_before = by_seq[expected - 1][0] if expected - 1 in by_seq else 0
            where = f"after line {line_before}" if line_before else "at the start"
            gap = f"seq {expected}" if seq == expected + 1 else f"seqs {expected}..{seq - 1}"
            res.problems.append(Problem("deleted", lineno, f"records were deleted: {gap} missing {where} "
                                                           f"(before line {lineno})"))
        elif seq < expected:  # below the anchor of an export
            res.problems.append(Problem("reordered", lineno, f"record seq {seq} at line {lineno} lies before "
                                                             f"the start of the chain (seq {anchor_seq + 1})"))
        expected = max(expected, seq + 1)
        want = anchor_hash if seq == anchor_seq + 1 else by_seq.get(seq - 1, (0, {}))[1].get("hash")
        if want is not None and rec["prev"] != want:
            plin = by_seq[seq - 1][0] if seq - 1 in by_seq else 0
            if plin not in edited:
                what = f"record seq {seq - 1} (line {plin})" if plin else f"the record before seq {seq}"
                msg = f"{what} was edited or replaced: seq {seq} (line {lineno}) no longer links to it"
                res.problems.append(Problem("edited", plin or lineno, msg))


def _verify_sig(public: bytes, sig_b64: object, message: bytes) -> bool:
    return codec.verify_message(message, sig_b64, public)


def _box_keys(parsed: list[tuple[int, Record]], trusted: bytes | None) -> set[bytes]:
    """The trusted key and every key joined to it by a ``key_rotated`` record whose old key endorsed the new
    one (docs/audit-format.md): forward (oversight's original box.pub.json verifies a log the box signs with a
    later key) and back (a key the box signed with before it rotated is still the box's, so a console's witness
    checkpoint signed by it still proves what it saw)."""
    if trusted is None:
        return set()
    keys, pubs, links = {trusted}, {key_id(trusted): trusted}, []
    for _, rec in parsed:
        d = rec["data"]
        if rec["kind"] in ("provisioned", "key_rotated", "checkpoint"):
            try:
                pub = codec.unb64(d.get("signing_public"), "signing_public", 32)
                pubs.setdefault(key_id(pub), pub)
            except EdgeError:
                pass
        if rec["kind"] == "key_rotated" and d.get("endorsed"):
            links.append(rec)
    grew = True
    while grew:
        grew = False
        for rec in links:
            old = pubs.get(str(rec["data"].get("old_key_id")))
            new = endorsed_key(rec, old) if old is not None else None
            if old is None or new is None or (old in keys) == (new in keys):
                continue
            keys |= {old, new}
            grew = True
    return keys


def _check_checkpoints(parsed: list[tuple[int, Record]], res: Result, trusted: bytes | None,
                       strict_keys: bool) -> None:
    introduced: set[str] = set()
    for _, rec in parsed:
        d = rec["data"]
        introduced.update(str(d.get(k)) for k in ("signing_key_id", "old_key_id", "new_key_id") if k in d)
    last_good = 0
    others = []  # (line, seq, key id) of good checkpoints by another key than the trusted one
    for lineno, rec in parsed:
        if rec["kind"] != "checkpoint":
            continue
        res.checkpoints += 1
        d = rec["data"]
        try:
            pub = codec.unb64(d.get("signing_public"), "signing_public", 32)
            good = key_id(pub) == d.get("key_id")
        except EdgeError:
            good, pub = False, b""
        if not good or not _verify_sig(pub, d.get("sig"), checkpoint_message(rec)):
            res.problems.append(Problem("edited", lineno, f"checkpoint seq {rec['seq']} (line {lineno}) does not "
                                                          f"verify: records after seq {last_good} were rewritten"))
            continue
        if strict_keys and pub != trusted and d["key_id"] not in introduced:
            res.problems.append(Problem("signature", lineno, f"checkpoint seq {rec['seq']} (line {lineno}) is "
                                                             f"signed by key {d['key_id']}, which is not this box's"))
            continue
        last_good = rec["seq"]
        if pub in res.box_keys:
            res.signed_through = max(res.signed_through, rec["seq"])
        else:
            others.append((lineno, rec["seq"], d["key_id"]))
    for lineno, seq, kid in others:  # an older key may sign only what the box key later vouched for
        if strict_keys and trusted is not None and res.signed_through and seq > res.signed_through:
            res.problems.append(Problem("signature", lineno, f"checkpoint seq {seq} (line {lineno}) is signed by "
                                                             f"key {kid} after the box key's last checkpoint "
                                                             f"(seq {res.signed_through})"))


def _finish(res: Result, trusted: bytes | None) -> None:
    if not res.records:
        return
    last = max(r["seq"] for r in res.records)
    if trusted is not None and res.signed_through == 0:
        res.problems.append(Problem("signature", 0, "no checkpoint in the log is signed by the box key "
                                                    f"{key_id(trusted)}"))
    elif res.signed_through < last:
        res.warnings.append(f"{last - res.signed_through} records after seq {res.signed_through} are not yet "
                            "covered by a signed checkpoint")


def verify_records(data: bytes, trusted: bytes | None, anchor_seq: int = 0, anchor_hash: str = GENESIS,
                   first_line: int = 1, strict_keys: bool = True) -> Result:
    res = Result()
    parsed = _parse_lines(data, res, first_line)
    res.records = [r for _, r in parsed]
    res.box_keys = _box_keys(parsed, trusted)
    _check_chain(parsed, res, anchor_seq, anchor_hash)
    _check_checkpoints(parsed, res, trusted, strict_keys)
    return res


def verify_log(state_dir: StrPath, trusted: bytes | None = None, witnesses: Iterable[Record] = ()) -> Result:
    """Check ``<state_dir>/audit/audit.log`` (trusted: the box's signing key; default: loaded from the box).

    Besides the chain itself, the log may not end before any signed checkpoint held outside it: the
    head file, the box's anchor (``<state_dir>/audit.anchor``, only ever moved forward) and each
    console's witness (``witnesses``: checkpoint records, as ``edge console witness`` writes them). A
    missing or empty log on a provisioned box, or a missing head file beside signed checkpoints, is
    reported as tampering, naming what is missing."""
    state = Path(state_dir)
    audit = state / "audit"
    provisioned = trusted is not None
    if trusted is None:
        from edge import identity

        try:
            trusted = identity.load(state_dir).signing_public
            provisioned = True
        except EdgeError:
            trusted = None
    data = read_lines(audit / LOG_NAME)
    res = verify_records(data, trusted)
    if trusted is None:
        res.warnings.append("the box is not provisioned: signatures checked against the keys in the log only")
    if provisioned and not res.records and not res.problems:
        what = "empty" if (audit / LOG_NAME).exists() else "missing"
        res.problems.append(Problem("missing", 0, f"the audit log {audit / LOG_NAME} is {what} on a provisioned "
                                                  "box: every record since provisioning is gone"))
    head_found = _check_anchor(audit / HEAD_NAME, res, trusted, "its head file")
    if not head_found and res.signed_through and trusted is not None:
        res.problems.append(Problem("missing", 0, f"the head file {audit / HEAD_NAME} is missing though the log "
                                                  "holds signed checkpoints: the log may have been cut back"))
    if not _check_anchor(state / ANCHOR_NAME, res, trusted, "its checkpoint anchor") and res.signed_through:
        res.warnings.append(f"no checkpoint anchor {state / ANCHOR_NAME} (written from this version on)")
    for w in witnesses:
        _check_witness(w, res, trusted)
    _finish(res, trusted)
    return res


def _read_checkpoint(path: Path) -> Record | None:
    try:
        rec = json.loads(path.read_bytes())
        if not isinstance(rec, dict):
            raise TypeError
        int(rec["seq"]), str(rec["hash"])
        return rec
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return {}


def _signed_by(rec: Record, keys: set[bytes]) -> bool:
    """Is this checkpoint signed by one of the box's keys?"""
    return any(_self_signed(rec) == k for k in keys)


def _self_signed(rec: Record) -> bytes | None:
    """The key a checkpoint record names, if it signed the record; else None."""
    data = rec.get("data")
    if not isinstance(data, dict):
        return None
    try:
        pub = codec.unb64(data.get("signing_public"), "signing_public", 32)
        ok = _verify_sig(pub, data.get("sig"), checkpoint_message(rec))
    except (EdgeError, KeyError, TypeError, ValueError):
        return None
    return pub if ok else None


def _against(rec: Record, res: Result, who: str) -> None:
    """The log may not end before, nor differ at, a signed checkpoint that ``who`` holds."""
    seq, hsh = int(rec["seq"]), str(rec["hash"])
    last = max((r["seq"] for r in res.records), default=0)
    mine = next((r for r in res.records if r["seq"] == seq), None)
    if seq > last:
        gap = f"seq {seq}" if seq == last + 1 else f"seqs {last + 1}..{seq}"
        res.problems.append(Problem("truncated", len(res.records) + 1,
                                    f"truncated: the log ends at seq {last} but the box signed seq {seq} "
                                    f"({who}): {gap} missing"))
    elif mine is not None and mine["hash"] != hsh:
        res.problems.append(Problem("edited", 0, f"checkpoint seq {seq} differs from the box's signed checkpoint "
                                                 f"held by {who}: the log was rewritten"))


def _check_anchor(path: Path, res: Result, trusted: bytes | None, who: str) -> bool:
    """A copy of a checkpoint kept in a file; False when the file does not exist."""
    rec = _read_checkpoint(path)
    if rec is None:
        return False
    if not rec:
        res.warnings.append(f"{path} ({who}) is unreadable")
    elif trusted is not None and not _signed_by(rec, res.box_keys):
        res.warnings.append(f"{path} ({who}) is not signed by this box key")
    else:
        _against(rec, res, who)
    return True


WITNESS_TYPE = "edge-audit-witness"


def load_witnesses(path: StrPath) -> list[Record]:
    """A witness file (``edge console witness``) -> its entries; EdgeError in one sentence if it is not one."""
    text = files.read_text(path, "witness file")
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("type") != WITNESS_TYPE or not isinstance(doc.get("witnesses"), list):
            raise ValueError
    except (ValueError, RecursionError):
        raise EdgeError(f"{path} is not a witness file (from 'edge console witness')") from None
    return [w for w in doc["witnesses"] if isinstance(w, dict)]


def _check_witness(w: Record, res: Result, trusted: bytes | None) -> None:
    """One console's witness: {"console": ..., "checkpoint": record} (or the bare record)."""
    rec = w.get("checkpoint", w) if isinstance(w, dict) else None
    who = f"witnessed by console {str(w.get('console') or w.get('endpoint') or '?')[:80]}" \
        if isinstance(w, dict) else "a witness"
    try:
        int(rec["seq"]), str(rec["hash"])
    except (KeyError, TypeError, ValueError):
        res.warnings.append(f"a witness ({who}) is not a checkpoint record: ignored")
        return
    if _signed_by(rec, res.box_keys):
        _against(rec, res, who)
        return
    signer = _self_signed(rec)
    box_id = next((r["box_id"] for r in res.records if r.get("box_id")), None)
    if signer is None or trusted is None or rec.get("box_id") != box_id:
        res.warnings.append(f"the checkpoint {who} is not signed by this box key: ignored")
        return
    # signed, for this box, by a key this log never had: the log was replaced (wiped, re-provisioned, or rolled back
    # and its key rotated without an endorsement) after the console saw it
    res.problems.append(Problem("missing", 0, f"the checkpoint seq {rec['seq']} {who} is signed by key "
                                              f"{key_id(signer)}, which this log never had: the log was replaced "
                                              "since (wiped or re-provisioned)"))


# --- exports -----------------------------------------------------------------------------------------

def make_export(state_dir: StrPath, start: datetime, end: datetime, signing_key: Ed25519PrivateKey, box_id: str,
                now: str) -> tuple[bytes, int]:
    """A signed export of the records with ``start <= time < end`` (aware datetimes); (bytes, count)."""
    from edge.codec import parse_time
    from edge.identity import raw_public

    data = read_lines(Path(state_dir) / "audit" / LOG_NAME)
    res = verify_records(data, raw_public(signing_key))
    if res.first is not None:
        raise EdgeError(f"the audit log does not verify, so it cannot be exported: {res.first.message}")
    raw = data.split(b"\n")[:-1]
    idx = [i for i, r in enumerate(res.records) if start <= parse_time(r["time"]) < end]
    lo, hi = (idx[0], idx[-1] + 1) if idx else (len(raw), len(raw))
    prev = res.records[lo - 1] if lo > 0 else {"seq": 0, "hash": GENESIS}
    pub = raw_public(signing_key)
    header = {"type": EXPORT_TYPE, "v": 1, "box_id": box_id, "from": start.isoformat(), "to": end.isoformat(),
              "created": now, "records": hi - lo, "anchor_seq": prev["seq"], "anchor_hash": prev["hash"],
              "key_id": key_id(pub), "signing_public": codec.b64(pub)}
    return export_bytes(header, raw[lo:hi], signing_key), hi - lo


def export_bytes(header: dict[str, Any], lines: list[bytes], signing_key: Ed25519PrivateKey) -> bytes:
    """Header line, the records verbatim, and a signed trailer over everything before it."""
    body = canonical(header) + b"\n" + b"".join(ln + b"\n" for ln in lines)
    trailer = {"type": EXPORT_END, "v": 1, "records": len(lines), "sha256": hashlib.sha256(body).hexdigest()}
    trailer["sig"] = codec.sign(EXPORT_DOMAIN, trailer, signing_key)
    return body + canonical(trailer) + b"\n"


def verify_export(data: bytes, box_public: bytes) -> tuple[dict[str, Any], Result]:
    """Check an export against the box's Ed25519 public key; returns (header, result)."""
    res = Result()
    first, _, rest = data.partition(b"\n")
    try:
        header = json.loads(first)
        if not isinstance(header, dict) or header.get("type") != EXPORT_TYPE or header.get("v") != 1:
            raise ValueError
        anchor_seq, anchor_hash = int(header["anchor_seq"]), str(header["anchor_hash"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise EdgeError("not a version 1 audit export (bad header line)") from None
    body_end = data.rstrip(b"\n").rfind(b"\n") + 1
    try:
        trailer = json.loads(data[body_end:])
        if not isinstance(trailer, dict) or trailer.get("type") != EXPORT_END:
            raise ValueError
    except (ValueError, UnicodeDecodeError, RecursionError):
        trailer = None
    if trailer is None or not data.endswith(b"\n"):
        res = verify_records(rest, box_public, anchor_seq, anchor_hash, 2, strict_keys=False)
        res.problems.append(Problem("truncated", 0, "truncated: the export has no signed end line"))
        return header, res
    res = verify_records(data[len(first) + 1: body_end], box_public, anchor_seq, anchor_hash, 2,
                         strict_keys=False)
    if header.get("key_id") != key_id(box_public):
        res.problems.append(Problem("signature", 0, f"the export is signed by key {header.get('key_id')}, "
                                                    f"not this box's key {key_id(box_public)}"))
    unsigned = {k: v for k, v in trailer.items() if k != "sig"}
    digest = hashlib.sha256(data[:body_end]).hexdigest()
    if not (hmac.compare_digest(digest, str(trailer.get("sha256")))
            and codec.verify(EXPORT_DOMAIN, unsigned, trailer.get("sig"), box_public)):
        res.problems.append(Problem("signature", 0, "the export's signature does not verify with this box key: "
                                                    "it was altered or forged"))
    if trailer.get("records") != len(res.records) or header.get("records") != len(res.records):
        res.problems.append(Problem("deleted", 0, f"the export should hold {header.get('records')} records "
                                                  f"but holds {len(res.records)}"))
    if res.ok and res.records:
        res.signed_through = res.records[-1]["seq"]
    return header, res
