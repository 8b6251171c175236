"""Report sections on what was shared with the box: deployments, watch lists (one row per list), refusals.

Question 1 of the oversight report: *what images were shared with it, when and by whom*. Each list is
one row however often the daemon restarted and reloaded it: who issued it (name from the trust store
and key id), for which deployment, how and when it arrived, what it held (reference, category, reason,
each image's provenance), and how it ended, with the signed deletion receipt the box recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import overload

from edge import codec
from edge.codec import parse_time
from edge.watchlist import receipt

ENDINGS = ("purged", "replaced", "expired", "deployment ended")


@overload
def iso(t: datetime) -> str: ...
@overload
def iso(t: None) -> None: ...
def iso(t: datetime | None) -> str | None:
    return codec.fmt_time(t) if t else None


def issuer_names(recs, known: dict[str, str] | None = None) -> dict[str, str]:
    """Issuer key id -> name, from what the log says (trust_added / watchlist_loaded), else ``known`` (the
    box's trust store, for logs older than the names in records)."""
    names: dict[str, str] = {k: v for k, v in (known or {}).items() if v}
    for _, r in recs:
        d = r["data"]
        if r["kind"] == "trust_added" and d.get("what") == "issuer" and d.get("name"):
            names[str(d["key_id"])] = str(d["name"])
        elif r["kind"] in ("watchlist_loaded", "watchlist_refused") and d.get("issuer_name") and d.get("issuer"):
            names.setdefault(str(d["issuer"]), str(d["issuer_name"]))
    return names


def deployments(recs, lo, hi) -> list[dict]:
    deps: dict[str, dict] = {}
    for t, r in recs:
        d = r["data"]
        dep_id = str(d.get("deployment_id", ""))
        if r["kind"] == "deployment_loaded" and t < hi:
            deps[dep_id] = {k: d.get(k) for k in ("deployment_id", "location", "cameras", "start", "end",
                                                  "purpose", "issuer")}
            deps[dep_id].update(loaded=iso(t), activated=[], ended=[])
        elif r["kind"] in ("deployment_start", "deployment_end") and dep_id in deps and lo <= t < hi:
            if r["kind"] == "deployment_start":
                deps[dep_id]["activated"].append(iso(t))
            else:
                deps[dep_id]["ended"].append({"time": iso(t), "reason": d.get("reason", "")})
    return [d for d in deps.values()
            if parse_time(d["end"]) > lo and parse_time(d["start"]) < hi or d["activated"] or d["ended"]]


def _receipt(d: dict) -> dict | None:
    """The signed deletion receipt as the box issued it, rebuilt from its watchlist_purged record."""
    return receipt.from_record(d)


def _ending(kind: str, d: dict) -> str:
    if kind == "watchlist_expired":
        return "expired"
    how = str(d.get("ending") or "")
    if how in ENDINGS:
        return how
    return "expired" if str(d.get("reason")) == "expired" else "purged"


def watchlists(recs, lo, hi, check_receipt=None, known: dict[str, str] | None = None) -> list[dict]:
    """One row per list id. ``check_receipt(receipt) -> str`` says whether a receipt's signature holds."""
    names = issuer_names(recs, known)
    lists: dict[str, dict] = {}  # list id -> its latest row
    rows: list[dict] = []
    parts: dict[str, list] = {}  # list id -> refs from watchlist_entries records (big lists), before loaded
    for t, r in recs:
        if t >= hi:
            break
        d, kind = r["data"], r["kind"]
        if kind == "watchlist_entries":
            parts.setdefault(str(d["list_id"]), []).extend(d.get("refs") or [])
            continue
        if kind == "watchlist_loaded":
            lid = str(d["list_id"])
            if d.get("refs") is None and d.get("refs_parts"):
                d = dict(d, refs=parts.pop(lid, []))
            w = lists.get(lid)
            if w is None or w["ended"] is not None:  # a list reloaded after it ended is a new row
                w = lists[lid] = {
                    "list_id": lid, "sequence": d.get("sequence"), "issuer": d["issuer"],
                    "issuer_name": names.get(str(d["issuer"])) or d.get("issuer_name") or "",
                    "deployment": d.get("deployment", ""), "entries": d["entries"],
                    "categories": d.get("categories"), "refs": d.get("refs"),
                    "entry_details": d.get("entry_details"), "not_after": d.get("not_after"),
                    "bundle_sha256": d.get("bundle_sha256", ""),
                    "loaded": iso(t), "arrived": [], "reloads": 0, "ended": None, "files": []}
                rows.append(w)
            if d.get("at_start") or d.get("arrived") == "daemon":
                w["reloads"] += 1
            else:
                w["arrived"].append({"how": d.get("arrived") or ("folder" if d["issuer"] == "local" else "cli"),
                                     "file": d.get("file", ""), "mount": d.get("mount", ""), "time": iso(t)})
            if not w["arrived"] and d.get("arrived") == "daemon":
                w["arrived"].append({"how": "daemon (stored list, loaded before the period)", "file": d.get("file", ""),
                                     "mount": "", "time": iso(t)})
        elif kind in ("watchlist_purged", "watchlist_expired"):
            w = lists.get(str(d.get("list_id")))
            if w is None or w["ended"] is not None:
                continue
            rc = _receipt(d)
            w["ended"] = {"how": _ending(kind, d), "time": iso(t), "reason": d.get("reason", "expired"),
                          "receipt": rc, "receipt_file": d.get("receipt_file") or d.get("receipt_id"),
                          "receipt_check": (check_receipt(rc) if check_receipt and rc else
                                            "not checked" if rc else "no receipt recorded")}
        elif kind in ("watchlist_file_deleted", "watchlist_file_left"):
            w = lists.get(str(d.get("list_id")))
            if w is not None:
                w["files"].append({"file": d.get("file", ""), "mount": d.get("mount", ""), "time": iso(t),
                                   "deleted": kind == "watchlist_file_deleted", "reason": d.get("reason", "")})
    return [w for w in rows if w["ended"] is None or parse_time(w["ended"]["time"]) >= lo]


def refused(recs, lo, hi, known: dict[str, str] | None = None) -> list[dict]:
    """One row per refused file and reason (a file seen again after a restart is refused again: ``times``)."""
    names = issuer_names(recs, known)
    rows: dict[tuple, dict] = {}
    for t, r in recs:
        if r["kind"] == "watchlist_refused" and lo <= t < hi:
            d = r["data"]
            kid = str(d.get("issuer") or "")
            key = (d.get("file", ""), d.get("mount", ""), d.get("claimed_list_id", ""), d["reason"])
            if key in rows:
                rows[key]["times"].append(iso(t))
                continue
            rows[key] = {"time": iso(t), "times": [iso(t)], "file": d.get("file", ""), "arrived": d.get("arrived", ""),
                         "mount": d.get("mount", ""), "issuer": kid,
                         "issuer_name": names.get(kid) or d.get("issuer_name") or "",
                         "claimed_list_id": d.get("claimed_list_id", ""), "reason": d["reason"],
                         "bundle_sha256": d.get("bundle_sha256", "")}
    return list(rows.values())
