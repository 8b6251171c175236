"""The issuers' registers in the oversight store, and reconciling them with what every box recorded.

``ingest(db, register, issuer_pub)``: a SPOC's ``bundles.jsonl`` (``enrol build`` writes one line per list
it issues), under the issuer key beside it (``issuer.pub``), or its signed export (``enrol register --export``,
docs/register-export.md), which names and proves its issuer: ingesting either again adds only new lines.
``reconcile(db)``: across the fleet, every list any issuer issued to any box was loaded or refused by that
box, and every loaded list ended with a deletion receipt the box's registered key verifies; every list
a box loaded is in an issuer's register. Each discrepancy is one line naming the box and the issuer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge import files, identity
from edge.errors import EdgeError
from edge.oversight.db import Database
from edge.watchlist import register_export

MAX_READ = 256 << 20


def ingest(db: Database, register: str | Path, issuer_pub: str | Path | None, now: str) -> tuple[str, int, int]:
    """(issuer key id, lines new, lines already held)."""
    register = Path(register)
    data = files.read_text(register, "register", MAX_READ).encode()
    if register_export.is_export(data):  # signed by the issuer: it names (and proves) its issuer
        header, lines = register_export.verify(data)
        issuer, name, text, source = header["issuer"], str(header.get("name") or ""), \
            b"\n".join(lines).decode(), f"signed export {register.resolve()}"
        if issuer_pub and identity.key_id(identity.parse_issuer_key(files.read_text(issuer_pub, "issuer key file",
                                                                                    64 * 1024))) != issuer:
            raise EdgeError(f"{register} is signed by issuer {issuer}, not by the key in {issuer_pub}")
    else:
        pub_path = Path(issuer_pub) if issuer_pub else register.parent / "issuer.pub"
        if not pub_path.is_file():
            raise EdgeError(f"no issuer key beside the register ({pub_path}): name it with --issuer-key")
        key_text = files.read_text(pub_path, "issuer key file", 64 * 1024)
        issuer = identity.key_id(identity.parse_issuer_key(key_text, str(pub_path)))
        name, text, source = str(json.loads(key_text).get("name", "")), data.decode(), str(register.resolve())
    rows = []
    for r in register_export.parse_lines(text, str(register)):
        images: dict[str, Any] = r["images"] if isinstance(r.get("images"), dict) else {}
        rows.append((issuer, name, r["list_id"], r["box_id"], str(r.get("deployment") or ""), r.get("sequence"),
                     str(r.get("created") or ""), str(r.get("not_after") or ""), int(r.get("entries") or 0),
                     sum(len(v) for v in images.values() if isinstance(v, list)), json.dumps(r.get("refs") or []),
                     str(r.get("box_signing_public") or ""), source, now))
    with db.tx():
        before = db.one("SELECT COUNT(*) FROM registers WHERE issuer = ?", (issuer,))
        db.many("INSERT INTO registers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING", rows)
        after = db.one("SELECT COUNT(*) FROM registers WHERE issuer = ?", (issuer,))
    new = int(after[0] if after else 0) - int(before[0] if before else 0)
    return issuer, new, len(rows) - new


def reconcile(db: Database, issuer: str = "") -> tuple[list[str], list[dict[str, Any]]]:
    """(discrepancies, one summary per issuer) across every registered box."""
    problems: list[str] = []
    boxes = {b for (b,) in db.q("SELECT box_id FROM boxes")}
    issued = db.q("SELECT g.issuer, g.issuer_name, g.list_id, g.box_id, g.created, g.deployment, g.refs, "
                  "l.list_id, l.refs, l.ended, l.ended_how, l.receipt_valid, l.issuer, "
                  "(SELECT COUNT(*) FROM refusals r WHERE r.box_id = g.box_id AND r.claimed_list_id = g.list_id), "
                  "(SELECT COUNT(*) FROM alerts a WHERE a.box_id = g.box_id AND a.list_id = g.list_id) "
                  "FROM registers g LEFT JOIN lists l ON l.box_id = g.box_id AND l.list_id = g.list_id "
                  "WHERE (? = '' OR g.issuer = ? OR g.issuer_name = ?) ORDER BY g.issuer, g.created, g.list_id",
                  (issuer, issuer, issuer))
    summary: dict[str, dict[str, Any]] = {}
    for (iss, name, lid, box, created, dep, reg_refs, loaded, box_refs, ended, how, valid, box_issuer,
         refused, matched) in issued:
        who = f"issuer {name or iss} ({iss})"
        s = summary.setdefault(iss, {"issuer": iss, "issuer_name": name, "issued": 0, "boxes": set(), "loaded": 0,
                                     "refused": 0, "matched": 0, "receipts": 0})
        s["issued"] += 1
        s["boxes"].add(box)
        if box not in boxes:
            problems.append(f"box {box}, {who}: list {lid} was issued to a box not registered with the service")
            continue
        if loaded is None:
            if refused:
                s["refused"] += 1
            else:
                problems.append(f"box {box}, {who}: list {lid} (issued {created or '?'}, deployment {dep or '?'}) "
                                "was neither loaded nor refused")
            continue
        s["loaded"] += 1
        s["matched"] += int(matched > 0)
        if box_issuer != iss:
            problems.append(f"box {box}, {who}: list {lid} was loaded as issued by {box_issuer}")
        held, issued_refs = set(json.loads(box_refs)), set(json.loads(reg_refs))
        extra = held - issued_refs
        missing = issued_refs - held if held else set()  # a big list's refs are not in its load record
        if extra:
            problems.append(f"box {box}, {who}: list {lid} held reference(s) not issued: {', '.join(sorted(extra))}")
        if missing:
            problems.append(f"box {box}, {who}: list {lid} lacked issued reference(s): {', '.join(sorted(missing))}")
        if ended is None:
            problems.append(f"box {box}, {who}: list {lid} has not ended: no deletion receipt yet")
        elif not valid:
            problems.append(f"box {box}, {who}: list {lid} {how} at {ended} without a valid deletion receipt")
        else:
            s["receipts"] += 1
    for box, lid, iss, name in db.q(
            "SELECT l.box_id, l.list_id, l.issuer, l.issuer_name FROM lists l WHERE NOT EXISTS (SELECT 1 FROM "
            "registers g WHERE g.box_id = l.box_id AND g.list_id = l.list_id) AND (? = '' OR l.issuer = ? OR "
            "l.issuer_name = ?) ORDER BY l.loaded", (issuer, issuer, issuer)):
        problems.append(f"box {box}, issuer {name or iss} ({iss}): list {lid} was loaded but is in no ingested "
                        "register")
    return problems, [dict(s, boxes=sorted(s["boxes"])) for s in summary.values()]
