"""`edge oversight verify`: the service's own copy checked again, and a box's log checked against it.

``stored(db)`` re-reads every branch of every box from the database and checks it as it was checked on
arrival (hash, canonical form, links from the branch's base, checkpoint signatures by a key registered
for the box or rotated to from one): a row edited in the database is named by box and seq.
``against(db, box_id, log_bytes)`` compares a box's ``audit.log`` with the service's copy of that box's
current branch line: records the box no longer has (cut back or rolled back) and records that differ
(rewritten) are named by seq range.
"""

from __future__ import annotations

import json

from edge import codec
from edge.audit.log import checkpoint_message, record_hash
from edge.codec import canonical
from edge.errors import EdgeError
from edge.identity import key_id
from edge.oversight.db import Database


def stored(db: Database, box: str = "") -> tuple[list[str], list[str]]:
    """(problems, one line per box): every stored record checked again."""
    problems, lines = [], []
    boxes = [b for (b,) in db.q("SELECT box_id FROM boxes WHERE ? = '' OR box_id = ? ORDER BY box_id", (box, box))]
    for b in boxes:
        total = 0
        for branch, base, base_hash, last in db.q("SELECT branch, base_seq, base_hash, last_seq FROM branches "
                                                  "WHERE box_id = ? ORDER BY branch", (b,)):
            prev_seq, prev_hash = base, base_hash
            for seq, h, line in db.q("SELECT seq, hash, line FROM records WHERE box_id = ? AND branch = ? "
                                     "ORDER BY seq", (b, branch)):
                total += 1
                where = f"box {b} branch {branch} seq {seq}"
                try:
                    rec = json.loads(line)
                    ok = canonical(rec) == line.encode() and record_hash(rec) == h == rec["hash"] and rec["seq"] == seq
                except (ValueError, KeyError, TypeError):
                    ok, rec = False, {}
                if not ok:
                    problems.append(f"{where}: the stored record was edited (it no longer matches its hash)")
                elif seq != prev_seq + 1 or rec["prev"] != prev_hash:
                    problems.append(f"{where}: does not link to seq {prev_seq} before it (a record was removed "
                                    "or replaced in the database)")
                elif rec["kind"] == "checkpoint" and not _signed(rec):
                    problems.append(f"{where}: the checkpoint's signature does not verify with a key of the box")
                prev_seq, prev_hash = seq, h
            if prev_seq != last:
                problems.append(f"box {b} branch {branch}: the service recorded seq {last} as its last, "
                                f"but holds up to seq {prev_seq}")
        lines.append(f"box {b}: {total} stored record(s) checked")
    return problems, lines


def _signed(rec: dict) -> bool:
    """The checkpoint's own signature (whether its key was registered was judged, and recorded, on arrival)."""
    d = rec["data"]
    try:
        pub = codec.unb64(d.get("signing_public"), "signing_public", 32)
    except EdgeError:
        return False
    if key_id(pub) != d.get("key_id"):
        return False
    return codec.verify_message(checkpoint_message(rec), d.get("sig"), pub)


def against(db: Database, box_id: str, log: bytes) -> list[str]:
    """What a box's log lacks or changed of the records the service received from it (empty: they agree)."""
    mine: dict[int, str] = {}
    for raw in log.split(b"\n"):
        try:
            rec = json.loads(raw)
            mine[int(rec["seq"])] = str(rec["hash"])
        except (ValueError, KeyError, TypeError):
            continue
    lost: dict[int, list[int]] = {}
    for branch, seq, h in db.q("SELECT branch, seq, hash FROM records WHERE box_id = ? ORDER BY branch, seq",
                               (box_id,)):
        if mine.get(int(seq)) != h:
            lost.setdefault(int(branch), []).append(int(seq))
    out = []
    for branch, seqs in sorted(lost.items()):
        gone = sum(s not in mine for s in seqs)
        out.append(f"box {box_id}: seqs {seqs[0]}..{seqs[-1]} that the service received (branch {branch}) are not in "
                   f"its log as received ({gone} missing, {len(seqs) - gone} different): the log was cut back, "
                   "rolled back or rewritten")
    return out


def witnessed(db: Database, witnesses: list[dict]) -> list[str]:
    """The service's copy against checkpoints a box's consoles hold (``edge console witness`` files): a copy
    that lacks a witnessed checkpoint, or holds another record at its seq, is named (the service is witnessed)."""
    problems = []
    for w in witnesses:
        cp: dict = w["checkpoint"] if isinstance(w.get("checkpoint"), dict) else w
        try:
            box, seq, h = str(cp["box_id"]), int(cp["seq"]), str(cp["hash"])
        except (KeyError, TypeError, ValueError):
            continue
        who = str(w.get("console") or w.get("endpoint") or "a console")[:80]
        rows = {r[0] for r in db.q("SELECT hash FROM records WHERE box_id = ? AND seq = ?", (box, seq))}
        if h not in rows:
            what = "holds another record there" if rows else "does not hold it"
            problems.append(f"box {box}: checkpoint seq {seq} witnessed by {who}: the service's copy {what}")
    return problems
