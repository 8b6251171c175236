"""What the fleet report counts, taken out of each record as it is stored (one row per fact, by box).

``Facts.add(rec, branch)`` reads one verified record; ``flush(db)`` writes the batch. Alerts are filed
under the list and the deployment in force on that box when they were written (the box's own order of
records decides, not clocks), so the report can answer "did any of issuer X's images match" with a
join, not by re-reading the logs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edge.audit.log import Record
from edge.oversight.db import Database
from edge.watchlist import receipt

TABLES = ("lists", "refusals", "alerts", "decisions", "deletions", "deployments")


@dataclass
class Current:
    """What is in force on one box as its records are read in order."""
    list_id: str = ""
    issuer: str = ""
    deployment_id: str = ""


def receipt_valid(data: dict, keys: dict[str, bytes]) -> tuple[dict | None, bool]:
    rc = receipt.from_record(data)
    if rc is None or str(rc.get("box_key")) not in keys:
        return rc, False
    try:
        receipt.verify(rc, keys[str(rc["box_key"])])
        return rc, True
    except Exception:  # noqa: BLE001 - EdgeError or a malformed field: not a valid receipt either way
        return rc, False


@dataclass
class Facts:
    box_id: str
    now: str
    current: Current
    keys: dict[str, bytes]
    rows: dict[str, list[tuple]] = field(default_factory=lambda: {k: [] for k in TABLES})
    faces: dict[tuple[str, str], int] = field(default_factory=dict)
    ends: list[tuple] = field(default_factory=list)
    dep_ends: list[tuple] = field(default_factory=list)

    def add(self, rec: Record, branch: int) -> None:
        kind, d, seq, t, box = rec["kind"], rec["data"], rec["seq"], rec["time"], self.box_id
        cur = self.current
        if kind == "watchlist_loaded":
            details = d.get("entry_details") if isinstance(d.get("entry_details"), list) else []
            images = sum(len(e.get("images") or []) for e in details if isinstance(e, dict)) or int(d["entries"])
            refs = d.get("refs") if isinstance(d.get("refs"), list) else []
            self.rows["lists"].append((box, d["list_id"], d["issuer"], str(d.get("issuer_name") or ""),
                                       str(d.get("deployment") or ""), _int(d.get("sequence")), int(d["entries"]),
                                       images, json.dumps(refs), t, seq, branch))
            cur.list_id, cur.issuer = d["list_id"], d["issuer"]
        elif kind in ("watchlist_purged", "watchlist_expired"):
            rc, ok = receipt_valid(d, self.keys) if kind == "watchlist_purged" else (None, False)
            how = str(d.get("ending") or d.get("reason") or "expired")
            self.ends.append((t, how, seq, json.dumps(rc) if rc else None, int(ok), box, d["list_id"]))
            if cur.list_id == d["list_id"]:
                cur.list_id, cur.issuer = "", ""
        elif kind == "watchlist_refused":
            self.rows["refusals"].append((box, branch, seq, t, str(d.get("issuer") or ""),
                                          str(d.get("claimed_list_id") or ""), str(d["reason"])[:500]))
        elif kind == "alert":
            self.rows["alerts"].append((box, d["alert_id"], branch, seq, d["time"], d["ref"], cur.list_id,
                                        cur.issuer, cur.deployment_id, d["camera_id"], float(d["distance"])))
        elif kind == "adjudication":
            self.rows["decisions"].append((box, d["alert_id"], branch, seq, t, d["decision"], d["action"],
                                           d["reason"], d["operator"]))
        elif kind == "retention_deleted":
            self.rows["deletions"].append((box, d["alert_id"], branch, seq, t))
        elif kind == "faces_processed":
            key = (cur.deployment_id, t[:10])
            self.faces[key] = self.faces.get(key, 0) + int(d["faces"])
        elif kind == "deployment_loaded":
            self.rows["deployments"].append((box, d["deployment_id"], d["issuer"], d["location"], None))
        elif kind == "deployment_start":
            self.rows["deployments"].append((box, d["deployment_id"], "", d["location"], t))
            cur.deployment_id = d["deployment_id"]
        elif kind == "deployment_end":
            self.dep_ends.append((t, box, d["deployment_id"]))
            if cur.deployment_id == d["deployment_id"]:
                cur.deployment_id = ""

    def flush(self, db: Database) -> None:
        for table, sql in SQL.items():
            db.many(sql, self.rows[table])
        db.many("UPDATE lists SET ended = ?, ended_how = ?, ended_seq = ?, receipt = ?, receipt_valid = ? "
                "WHERE box_id = ? AND list_id = ? AND ended IS NULL", self.ends)
        db.many("INSERT INTO faces (box_id, deployment_id, day, faces) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (box_id, deployment_id, day) DO UPDATE SET faces = faces.faces + excluded.faces",
                [(self.box_id, dep, day, n) for (dep, day), n in self.faces.items()])
        db.many("UPDATE deployments SET ended = ? WHERE box_id = ? AND deployment_id = ?", self.dep_ends)
        # the alert row carries its first decision and its deletion (the report reads alerts alone)
        db.many("UPDATE alerts SET decision = ?, action = ?, decision_seq = ? WHERE box_id = ? AND alert_id = ? "
                "AND decision IS NULL", [(d[5], d[6] if d[5] == "confirm" else d[7], d[3], d[0], d[1])
                                         for d in self.rows["decisions"]])
        db.many("UPDATE alerts SET deleted_seq = ? WHERE box_id = ? AND alert_id = ? AND deleted_seq IS NULL",
                [(x[3], x[0], x[1]) for x in self.rows["deletions"]])


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


SQL = {
    "lists": "INSERT INTO lists (box_id, list_id, issuer, issuer_name, deployment, sequence, entries, images, refs, "
             "loaded, loaded_seq, branch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "refusals": "INSERT INTO refusals VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "alerts": "INSERT INTO alerts (box_id, alert_id, branch, seq, time, ref, list_id, issuer, deployment_id, "
              "camera_id, distance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "decisions": "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "deletions": "INSERT INTO deletions VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
    "deployments": "INSERT INTO deployments (box_id, deployment_id, issuer, location, started) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT (box_id, deployment_id) DO UPDATE SET started = COALESCE(deployments.started, "
                   "excluded.started), issuer = CASE WHEN excluded.issuer = '' THEN deployments.issuer "
                   "ELSE excluded.issuer END",
}
