"""Records arriving at the oversight store: each verified, stored once, and every break in a box's log kept.

``Ingest.accept(box_id, lines, via)`` takes a box's audit records (the exact lines of its log, from the
link or from a hand-carried export) in order and, in one transaction, checks each one as
``edge audit verify`` does: canonical form and hash, the link to the record before, checkpoint
signatures by a key registered for the box or introduced by a ``key_rotated`` record chained from one.
A record the service already holds is a duplicate when identical, and is never stored twice.

A box's log is a chain of **branches**. Branch 0 starts at the genesis. When a box sends records that
do not continue what the service holds, nothing is merged or overwritten: a **rollback** (the box's log
no longer has records the service received and goes on differently; a log restored from an older copy),
a **replaced** log (a new seq 1: a wiped or re-provisioned box), a **gap** (seqs missing), or a **fork**
(a record that links to nothing the service holds) is recorded as an incident naming the seq range, and
the new records go into a new branch. A log that is merely shorter than the service's copy (cut back,
nothing new written) is recorded as **truncated**. Each incident is recorded once.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edge import codec
from edge.audit.log import GENESIS, HASH_PREFIX, Record, checkpoint_message
from edge.audit.verify import FIELDS
from edge.codec import canonical
from edge.errors import EdgeError
from edge.identity import key_id
from edge.oversight.db import Database
from edge.oversight.facts import Current, Facts


@dataclass
class Outcome:
    box_id: str
    accepted: int = 0
    duplicates: int = 0
    refused: int = 0
    incidents: list[str] = field(default_factory=list)
    checkpoints: list[Record] = field(default_factory=list)  # newly accepted, signed by a trusted key
    last_seq: int = 0
    through: int = -1  # seq of the last record of the delivery now held (stored or already there)
    branch: int = 0
    signed_through: int = 0

    def summary(self) -> str:
        out = (f"box {self.box_id}: {self.accepted} new record(s), {self.duplicates} already held, "
               f"{self.refused} refused; stored through seq {self.last_seq} (branch {self.branch}), "
               f"signed through seq {self.signed_through}")
        return out + "".join(f"\n  INCIDENT: {i}" for i in self.incidents)


@dataclass
class State:
    branch: int
    last_seq: int
    last_hash: str
    signed_through: int
    chain: list[tuple[int, int]]  # (branch, base_seq) from the newest branch back to branch 0
    keys: dict[str, bytes]
    new: bool = False  # nothing held from this box yet (branch 0 is made with its first record)


_KEYS, _TYPES = tuple(FIELDS), tuple(FIELDS.values())


def parse(raw: bytes | str, box_id: str) -> Record:
    """One record line, checked on its own: JSON, fields, canonical form, hash, box. EdgeError if not."""
    line = raw.encode() if isinstance(raw, str) else raw
    try:
        rec = json.loads(line)
        if not isinstance(rec, dict) or tuple(map(type, map(rec.get, _KEYS))) != _TYPES:  # exact types: no bools
            raise ValueError
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise EdgeError("a record is not a valid audit record (edited or damaged)") from None
    line = line.rstrip(b"\n")
    if canonical(rec) != line or _hash_of_line(line, rec["hash"]) != rec["hash"]:
        raise EdgeError(f"record seq {rec['seq']} ({rec['kind']}) was edited: it no longer matches its hash")
    if rec["box_id"] not in (box_id, ""):
        raise EdgeError(f"record seq {rec['seq']} names box {rec['box_id']!r}, not {box_id!r}")
    return rec


def _hash_of_line(line: bytes, h: str) -> str:
    """``record_hash`` of a canonical line: the same bytes without its ``"hash"`` member (keys are sorted)."""
    body = line.replace(b',"hash":"' + h.encode() + b'"', b"", 1)
    return hashlib.sha256(HASH_PREFIX + body).hexdigest() if len(body) < len(line) else ""


RECORD_COLUMNS = ("box_id", "branch", "seq", "time", "kind", "hash", "line", "via", "received")


class Ingest:
    def __init__(self, db: Database, now: str | None = None):
        self.db = db
        self._now = now

    def now(self) -> str:
        return self._now or codec.fmt_time(time.time(), ms=True)

    # -- the box's state as stored ------------------------------------------------------------------
    def state(self, box_id: str) -> State:
        if self.db.one("SELECT box_id FROM boxes WHERE box_id = ?", (box_id,)) is None:
            raise EdgeError(f"box {box_id!r} is not registered with the oversight service (its box.pub.json "
                            "goes in the config's [[boxes]])")
        rows = self.db.q("SELECT branch, parent, base_seq, last_seq, last_hash, signed_through FROM branches "
                         "WHERE box_id = ? ORDER BY branch", (box_id,))
        keys = {k: codec.unb64(p, "key", 32) for k, p in self.db.q(
            "SELECT key_id, signing_public FROM box_keys WHERE box_id = ?", (box_id,))}
        if not rows:
            return State(0, 0, GENESIS, 0, [(0, 0)], keys, new=True)
        by = {r[0]: r for r in rows}
        cur = rows[-1]
        chain, b = [], cur[0]
        while b is not None:
            chain.append((b, by[b][2]))
            b = by[b][1]
        return State(cur[0], cur[3], cur[4], cur[5], chain, keys)

    def hash_at(self, box_id: str, st: State, seq: int) -> str | None:
        """The hash of record ``seq`` in the box's current line of branches (None: not held)."""
        if seq == 0:
            return GENESIS
        for b, base in st.chain:
            if seq > base:
                row = self.db.one("SELECT hash FROM records WHERE box_id = ? AND branch = ? AND seq = ?",
                                  (box_id, b, seq))
                return row[0] if row else None
        return None

    def have(self, box_id: str) -> tuple[int, list[list[Any]]]:
        """(last seq held, [[seq, hash], ...] at last, last-1, last-2, last-4, ... and 0): what a box needs to
        find where its log and the service's copy last agree."""
        st = self.state(box_id)
        out, step, seq = [], 1, st.last_seq
        while seq > 0:
            h = self.hash_at(box_id, st, seq)
            if h:
                out.append([seq, h])
            seq -= step
            step *= 2
        out.append([0, GENESIS])
        return st.last_seq, out

    # -- accepting records ----------------------------------------------------------------------------
    def accept(self, box_id: str, lines: Sequence[bytes | str], via: str, box_last: int | None = None,
               signed_by_export: bool = False) -> Outcome:
        out = Outcome(box_id)
        with self.db.tx():
            st = self.state(box_id)
            if st.new:
                self.db.x("INSERT INTO branches VALUES (?, 0, NULL, 0, ?, 0, ?, 0, ?, 'genesis')",
                          (box_id, GENESIS, GENESIS, self.now()))
            cur = self._current(box_id)
            facts = Facts(box_id, self.now(), cur, st.keys)
            rows: list[tuple] = []
            for raw in lines:
                try:
                    rec = parse(raw, box_id)
                    if not self._place(box_id, st, rec, out):
                        out.through = rec["seq"]
                        continue
                    self._check(box_id, st, rec, out)
                except EdgeError as exc:
                    out.refused += 1
                    self._incident(box_id, "refused", st.branch, st.last_seq + 1, st.last_seq + 1,
                                   f"{exc}: refused, and nothing after it was taken from this delivery", out)
                    break
                rows.append((box_id, st.branch, rec["seq"], rec["time"], rec["kind"], rec["hash"],
                             raw.decode() if isinstance(raw, bytes) else raw, via, facts.now))
                facts.add(rec, st.branch)
                st.last_seq, st.last_hash = rec["seq"], rec["hash"]
                out.through = rec["seq"]
                out.accepted += 1
            if signed_by_export and out.refused == 0 and rows:
                st.signed_through = max(st.signed_through, st.last_seq)
            self.db.append("records", RECORD_COLUMNS, rows)
            facts.flush(self.db)
            if box_last is not None and box_last < st.last_seq and self.hash_at(box_id, st, box_last) is not None:
                self._incident(box_id, "truncated", st.branch, box_last + 1, st.last_seq,
                               f"box {box_id}'s log ends at seq {box_last}, but the service holds seqs "
                               f"{box_last + 1}..{st.last_seq} it received from the box: its log was cut back", out)
            self.db.x("UPDATE branches SET last_seq = ?, last_hash = ?, signed_through = ? WHERE box_id = ? "
                      "AND branch = ?", (st.last_seq, st.last_hash, st.signed_through, box_id, st.branch))
        out.last_seq, out.branch, out.signed_through = st.last_seq, st.branch, st.signed_through
        return out

    def _current(self, box_id: str) -> Current:
        cur = Current()
        row = self.db.one("SELECT list_id, issuer FROM lists WHERE box_id = ? AND ended IS NULL "
                          "ORDER BY loaded_seq DESC LIMIT 1", (box_id,))
        if row:
            cur.list_id, cur.issuer = row
        row = self.db.one("SELECT deployment_id FROM deployments WHERE box_id = ? AND ended IS NULL AND started "
                          "IS NOT NULL ORDER BY started DESC LIMIT 1", (box_id,))
        if row:
            cur.deployment_id = row[0]
        return cur

    def _place(self, box_id: str, st: State, rec: Record, out: Outcome) -> bool:
        """Where a record goes: False for a duplicate; a new branch (and its incident) for a break."""
        s = rec["seq"]
        if s <= st.last_seq:
            mine = self.hash_at(box_id, st, s)
            if mine == rec["hash"]:
                out.duplicates += 1
                return False
            if mine is not None and self.hash_at(box_id, st, s - 1) == rec["prev"]:
                kind = "replaced" if s == 1 else "rollback"
                what = ("started again from seq 1 (wiped or re-provisioned)" if s == 1
                        else f"goes on differently from seq {s}")
                self._branch(box_id, st, s - 1, rec["prev"], kind,
                             f"box {box_id}'s log no longer holds seqs {s}..{st.last_seq} that the service "
                             f"received; it {what}: kept apart as branch {st.branch + 1}", out, (s, st.last_seq))
                return True
            self._branch(box_id, st, s - 1, rec["prev"], "fork",
                         f"box {box_id}'s record seq {s} links to no record the service holds: kept apart as "
                         f"branch {st.branch + 1}", out, (s, st.last_seq))
            return True
        if s > st.last_seq + 1:
            self._branch(box_id, st, s - 1, rec["prev"], "gap",
                         f"box {box_id}: seqs {st.last_seq + 1}..{s - 1} were never received; the records from "
                         f"seq {s} are kept apart as branch {st.branch + 1}", out, (st.last_seq + 1, s - 1))
        elif rec["prev"] != st.last_hash:
            self._branch(box_id, st, s - 1, rec["prev"], "fork",
                         f"box {box_id}'s record seq {s} does not link to the seq {s - 1} the service holds: "
                         f"kept apart as branch {st.branch + 1}", out, (s, s))
        return True

    def _branch(self, box_id: str, st: State, base: int, base_hash: str, kind: str, detail: str, out: Outcome,
                seqs: tuple[int, int]) -> None:
        """A new branch from ``base``; the incident names ``seqs`` (the records lost, missing or unlinked)."""
        new = self.db.one("SELECT MAX(branch) FROM branches WHERE box_id = ?", (box_id,))
        b = int(new[0]) + 1 if new and new[0] is not None else 0
        self._incident(box_id, kind, b, *seqs, detail, out)
        self.db.x("UPDATE branches SET last_seq = ?, last_hash = ?, signed_through = ? WHERE box_id = ? "
                  "AND branch = ?", (st.last_seq, st.last_hash, st.signed_through, box_id, st.branch))
        self.db.x("INSERT INTO branches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (box_id, b, st.branch, base, base_hash, base, base_hash, 0, self.now(), kind))
        st.chain = [(b, base), *st.chain]
        st.branch, st.last_seq, st.last_hash = b, base, base_hash
        st.signed_through = min(st.signed_through, base)

    def _check(self, box_id: str, st: State, rec: Record, out: Outcome) -> None:
        d = rec["data"]
        if rec["kind"] == "checkpoint":
            try:
                pub = codec.unb64(d.get("signing_public"), "signing_public", 32)
                good = key_id(pub) == d.get("key_id") and codec.verify_message(checkpoint_message(rec),
                                                                               d.get("sig"), pub)
            except EdgeError:
                good = False
            if not good:
                raise EdgeError(f"checkpoint seq {rec['seq']} does not verify: records before it were rewritten")
            if d["key_id"] in st.keys:
                st.signed_through = rec["seq"]
                out.checkpoints.append(rec)
            else:
                self._incident(box_id, "signature", st.branch, rec["seq"], rec["seq"],
                               f"box {box_id}'s checkpoint seq {rec['seq']} is signed by key {d['key_id']}, which "
                               "is not registered for it (re-provisioned? register its new box.pub.json): the "
                               "records it covers are held but not vouched for", out)
        elif rec["kind"] == "key_rotated" and str(d.get("old_key_id")) in st.keys:
            try:
                pub = codec.unb64(d.get("signing_public"), "signing_public", 32)
            except EdgeError:
                return
            if key_id(pub) == d.get("new_key_id") and d["new_key_id"] not in st.keys:
                st.keys[d["new_key_id"]] = pub
                self.db.x("INSERT INTO box_keys VALUES (?, ?, ?, ?)",
                          (box_id, d["new_key_id"], codec.b64(pub), f"key_rotated at seq {rec['seq']}"))

    def _incident(self, box_id: str, kind: str, branch: int, lo: int, hi: int, detail: str, out: Outcome) -> None:
        self.db.x("INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                  (box_id, kind, branch, lo, hi, self.now(), detail))
        out.incidents.append(detail)


def ingest_export(ing: Ingest, data: bytes) -> Outcome:
    """A hand-carried ``edge audit export``: checked whole against a key registered for its box (digest,
    signature, count, chain from its anchor), then its records go in as the link's do."""
    from edge.audit.verify import verify_export

    try:
        header = json.loads(data.partition(b"\n")[0])
        box_id, kid = str(header["box_id"]), str(header["key_id"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise EdgeError("not an audit export (bad header line): make it with 'edge audit export'") from None
    row = ing.db.one("SELECT signing_public FROM box_keys WHERE box_id = ? AND key_id = ?", (box_id, kid))
    if row is None:
        raise EdgeError(f"the export is signed by key {kid}, which is not registered for box {box_id!r}")
    _, res = verify_export(data, codec.unb64(row[0], "key", 32))
    if res.first is not None:
        raise EdgeError(f"the export of box {box_id} does not verify: {res.first.message}")
    lines = data.split(b"\n")[1:-2]
    return ing.accept(box_id, lines, "export", signed_by_export=True)
