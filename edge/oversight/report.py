"""The fleet report: the four oversight questions across every box, by issuer, site, deployment, box or month.

1. What images were shared, when and by whom (lists loaded; references, images; lists refused);
2. was there ever a match (encounters, references matched);
3. was police action taken (decisions: confirmed with each action, dismissed, undecided);
4. were they deleted, and can that be proved (lists ended with a deletion receipt the box's registered key
   verifies; alerts deleted by the retention sweep).

Exact counts from the facts the service took out of each verified record (``facts.py``), filtered by
issuer (key id or name), site kind, site, box, deployment and period, optionally grouped; the drill-down
names each list and alert by box and seq with the record's hash, so each count can be checked against the
stored records (``edge oversight verify``) and the boxes' own logs. Every incident (gap, rollback, fork,
replaced log, truncation, refusal) in the scope is listed with the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge.oversight.db import Database

# group -> its expression in lists (l), alerts (a) and refusals (r)
GROUPS = {"issuer": ("l.issuer", "a.issuer", "r.issuer"), "site": ("b.site", "b.site", "b.site"),
          "box": ("l.box_id", "a.box_id", "r.box_id"), "deployment": ("l.deployment", "a.deployment_id", "''"),
          "month": ("substr(l.loaded, 1, 7)", "substr(a.time, 1, 7)", "substr(r.time, 1, 7)")}


@dataclass
class Scope:
    issuer: str = ""  # key id or (part of) the issuer's name
    site_kind: str = ""
    site: str = ""
    box: str = ""
    deployment: str = ""
    start: str = ""  # ISO times, UTC, Z: start <= time < end
    end: str = ""

    def where(self, t: str, time_col: str, dep_col: str, issuer_cols: tuple[str, ...]) -> tuple[str, list[Any]]:
        conds, args = ["1 = 1"], []
        if self.issuer:
            conds.append("(" + " OR ".join(f"{c} = ?" for c in issuer_cols) + ")")
            args += [self.issuer] * len(issuer_cols)
        for col, v in (("b.site_kind", self.site_kind), ("b.site", self.site), (f"{t}.box_id", self.box),
                       (dep_col, self.deployment)):
            if v:
                conds.append(f"{col} = ?")
                args.append(v)
        if self.start:
            conds.append(f"{time_col} >= ?")
            args.append(self.start)
        if self.end:
            conds.append(f"{time_col} < ?")
            args.append(self.end)
        return " AND ".join(conds), args


def _issuer(db: Database, issuer: str) -> tuple[str, str]:
    """(key id, name) of an issuer given by key id or name (as the lists or the registers spell it)."""
    q = "SELECT issuer, issuer_name FROM {} WHERE issuer = ? OR issuer_name = ? LIMIT 1"
    row = db.one(q.format("lists"), (issuer, issuer)) or db.one(q.format("registers"), (issuer, issuer))
    return (row[0], row[1]) if row else (issuer, "")


def build(db: Database, scope: Scope, by: str = "", detail: bool = False) -> dict[str, Any]:
    name = ""
    if scope.issuer:
        scope.issuer, name = _issuer(db, scope.issuer)
    rep: dict[str, Any] = {"type": "edge-fleet-report", "v": 1, "scope": dict(vars(scope), issuer_name=name),
                           "by": by}
    rep["total"] = _grouped(db, scope, "").get("", _empty())
    if by:
        rep["groups"] = _grouped(db, scope, by)
    if by == "issuer":
        rep["issuer_names"] = {k: n for k, n in db.q("SELECT DISTINCT issuer, issuer_name FROM lists") if n}
    rep["fleet"] = _fleet(db, scope)
    rep["incidents"] = [dict(zip(("box_id", "kind", "branch", "from_seq", "to_seq", "detected", "detail"), r,
                                 strict=True)) for r in db.q(
        "SELECT i.box_id, i.kind, i.branch, i.from_seq, i.to_seq, i.detected, i.detail FROM incidents i "
        "JOIN boxes b ON b.box_id = i.box_id WHERE (? = '' OR b.site_kind = ?) AND (? = '' OR b.site = ?) "
        "AND (? = '' OR i.box_id = ?) ORDER BY i.box_id, i.detected",
        (scope.site_kind, scope.site_kind, scope.site, scope.site, scope.box, scope.box))]
    if detail:
        rep["lists"], rep["alerts"] = _drill(db, scope)
    return rep


def _queries(scope: Scope, key_l: str, key_a: str, key_r: str) -> dict[str, tuple[str, list[Any]]]:
    wl, al = scope.where("l", "l.loaded", "l.deployment", ("l.issuer",))
    wa, aa = scope.where("a", "a.time", "a.deployment_id", ("a.issuer",))
    wr, ar = scope.where("r", "r.time", "''", ("r.issuer",))
    return {
        "shared": (f"SELECT {key_l}, COUNT(*), COALESCE(SUM(l.entries), 0), COALESCE(SUM(l.images), 0), "
                   "COUNT(DISTINCT l.box_id), COUNT(DISTINCT b.site), "
                   "SUM(CASE WHEN l.receipt_valid = 1 THEN 1 ELSE 0 END), "
                   "SUM(CASE WHEN l.ended IS NOT NULL AND l.receipt_valid = 0 THEN 1 ELSE 0 END), "
                   "SUM(CASE WHEN l.ended IS NULL THEN 1 ELSE 0 END) "
                   f"FROM lists l JOIN boxes b ON b.box_id = l.box_id WHERE {wl} GROUP BY 1", al),
        "matched": (f"SELECT {key_a}, COUNT(*), COUNT(DISTINCT a.ref), COUNT(DISTINCT a.list_id), "
                    "SUM(CASE WHEN a.decision = 'confirm' THEN 1 ELSE 0 END), "
                    "SUM(CASE WHEN a.decision = 'dismiss' THEN 1 ELSE 0 END), "
                    "SUM(CASE WHEN a.deleted_seq IS NOT NULL THEN 1 ELSE 0 END) "
                    f"FROM alerts a JOIN boxes b ON b.box_id = a.box_id WHERE {wa} GROUP BY 1", aa),
        "actions": (f"SELECT {key_a}, a.decision, a.action, COUNT(*) FROM alerts a JOIN boxes b ON "
                    f"b.box_id = a.box_id WHERE {wa} AND a.decision IS NOT NULL GROUP BY 1, 2, 3", aa),
        "refused": (f"SELECT {key_r}, COUNT(*) FROM refusals r "
                    f"JOIN boxes b ON b.box_id = r.box_id WHERE {wr} GROUP BY 1", ar),
    }


def _empty() -> dict[str, Any]:
    return {"shared": {"lists": 0, "references": 0, "images": 0, "boxes": 0, "sites": 0, "refused": 0},
            "matched": {"encounters": 0, "references": 0, "lists": 0},
            "action": {"confirmed": 0, "dismissed": 0, "undecided": 0, "actions": {}, "reasons": {}},
            "deleted": {"lists_with_valid_receipt": 0, "lists_ended_without_valid_receipt": 0,
                        "lists_not_ended": 0, "alerts_deleted": 0, "alerts_held": 0}}


def _grouped(db: Database, scope: Scope, by: str) -> dict[str, Any]:
    key_l, key_a, key_r = GROUPS[by] if by else ("''", "''", "''")
    qs = _queries(scope, key_l, key_a, key_r)
    out: dict[str, Any] = {}

    def g(k: Any) -> dict[str, Any]:
        return out.setdefault(str(k if k is not None else ""), _empty())

    for k, n, refs, imgs, boxes, sites, valid, noreceipt, open_ in db.q(*qs["shared"]):
        s = g(k)
        s["shared"].update(lists=n, references=int(refs), images=int(imgs), boxes=boxes, sites=sites)
        s["deleted"].update(lists_with_valid_receipt=int(valid or 0), lists_ended_without_valid_receipt=int(
            noreceipt or 0), lists_not_ended=int(open_ or 0))
    for k, n, refs, lists, conf, dism, deleted in db.q(*qs["matched"]):
        s = g(k)
        s["matched"].update(encounters=n, references=refs, lists=lists)
        s["action"].update(confirmed=int(conf or 0), dismissed=int(dism or 0), undecided=n - int(conf or 0)
                           - int(dism or 0))
        s["deleted"].update(alerts_deleted=int(deleted or 0), alerts_held=n - int(deleted or 0))
    for k, decision, what, n in db.q(*qs["actions"]):
        g(k)["action"]["actions" if decision == "confirm" else "reasons"][what] = n
    for k, n in db.q(*qs["refused"]):
        g(k)["shared"]["refused"] = n
    return out


def _fleet(db: Database, scope: Scope) -> list[dict[str, Any]]:
    """Each box in scope: its site, what the service holds of its log, and the faces it processed."""
    rows = db.q("SELECT b.box_id, b.site, b.site_kind, COALESCE(MAX(r.last_seq), 0), COUNT(r.branch), "
                "COALESCE(MAX(r.signed_through), 0) FROM boxes b LEFT JOIN branches r ON r.box_id = b.box_id "
                "WHERE (? = '' OR b.site_kind = ?) AND (? = '' OR b.site = ?) AND (? = '' OR b.box_id = ?) "
                "GROUP BY b.box_id, b.site, b.site_kind ORDER BY b.box_id",
                (scope.site_kind, scope.site_kind, scope.site, scope.site, scope.box, scope.box))
    faces = dict(db.q("SELECT box_id, SUM(faces) FROM faces WHERE (? = '' OR day >= ?) AND (? = '' OR day < ?) "
                      "AND (? = '' OR deployment_id = ?) GROUP BY box_id",
                      (scope.start[:10], scope.start[:10], scope.end[:10], scope.end[:10], scope.deployment,
                       scope.deployment)))
    return [{"box_id": b, "site": s, "site_kind": k, "last_seq": int(last), "branches": int(nb),
             "signed_through": int(st), "faces_processed": int(faces.get(b) or 0)} for b, s, k, last, nb, st in rows]


def _drill(db: Database, scope: Scope) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    wl, al = scope.where("l", "l.loaded", "l.deployment", ("l.issuer",))
    lists = [dict(zip(("box_id", "site", "list_id", "issuer", "issuer_name", "deployment", "entries", "images",
                       "loaded", "loaded_seq", "loaded_hash", "ended", "ended_how", "ended_seq", "receipt_valid"), r,
                      strict=True)) for r in db.q(
        "SELECT l.box_id, b.site, l.list_id, l.issuer, l.issuer_name, l.deployment, l.entries, l.images, l.loaded, "
        "l.loaded_seq, r.hash, l.ended, l.ended_how, l.ended_seq, l.receipt_valid FROM lists l JOIN boxes b ON "
        "b.box_id = l.box_id LEFT JOIN records r ON r.box_id = l.box_id AND r.branch = l.branch AND "
        f"r.seq = l.loaded_seq WHERE {wl} ORDER BY l.loaded, l.box_id", al)]
    wa, aa = scope.where("a", "a.time", "a.deployment_id", ("a.issuer",))
    alerts = [dict(zip(("box_id", "site", "alert_id", "time", "ref", "list_id", "seq", "hash", "decision", "action",
                        "decision_seq", "deleted_seq"), r, strict=True)) for r in db.q(
        "SELECT a.box_id, b.site, a.alert_id, a.time, a.ref, a.list_id, a.seq, r.hash, a.decision, a.action, "
        "a.decision_seq, a.deleted_seq FROM alerts a JOIN boxes b ON b.box_id = a.box_id LEFT JOIN records r ON "
        f"r.box_id = a.box_id AND r.branch = a.branch AND r.seq = a.seq WHERE {wa} ORDER BY a.time, a.box_id", aa)]
    return lists, alerts
