"""The history a controller searches and hands over (issue 18): filters and pages over the console's
one-row-per-encounter history (``Store.history``), its CSV export for the shift log, and the shift
summary (who is logged in, each operator's decisions this shift).

Filters: ``camera`` and ``outcome`` (as the store has them), ``ref`` (part of the reference, any case),
``operator`` (exact), ``since`` / ``until`` (Unix seconds: when the encounter was first received).
"""

from __future__ import annotations

import csv
import io
import time

from edge import codec
from edge.errors import EdgeError

PER_PAGE, MAX_PER_PAGE, MAX_ROWS = 50, 500, 100_000
SHIFT_H = 12.0
CSV_COLUMNS = ("first_seen", "last_seen", "box_id", "cameras", "ref", "category", "best_distance", "threshold",
               "outcome", "action", "reason", "note", "operator", "decided_at", "seconds_to_decision", "sightings",
               "sent_to_box", "encounter_id", "verified_by", "not_counted")


class BadQuery(EdgeError):
    """A filter a user typed that cannot be applied (one sentence)."""


def _num(params, key: str, default=None, lo: float = 0.0, hi: float = 1e12):
    raw = params.get(key, "")
    if raw in ("", None):
        return default
    try:
        v = float(raw)
    except ValueError:
        raise BadQuery(f"{key} must be a number") from None
    if not lo <= v <= hi:
        raise BadQuery(f"{key} must be between {lo:g} and {hi:g}")
    return v


def filtered(store, params) -> list[dict]:
    camera, outcome = str(params.get("camera", "")), str(params.get("outcome", ""))
    ref = str(params.get("ref", "")).strip().casefold()[:64]
    operator = str(params.get("operator", "")).strip()[:64]
    since, until = _num(params, "since"), _num(params, "until")
    rows = store.history(camera, outcome, limit=MAX_ROWS)
    return [r for r in rows
            if (not ref or ref in str(r["ref"]).casefold())
            and (not operator or (r.get("operator") or "") == operator)
            and (since is None or r["received"] >= since) and (until is None or r["received"] <= until)]


def page(store, params) -> dict:
    """{"alerts": this page's rows, "total", "page" (from 1), "pages", "per_page"}."""
    rows = filtered(store, params)
    per = int(_num(params, "per_page", PER_PAGE, 0, MAX_PER_PAGE))
    pages = max(1, -(-len(rows) // per)) if per else 1
    n = min(int(_num(params, "page", 1, 1, 1e9)), pages)
    return {"alerts": rows[(n - 1) * per:n * per] if per else [], "total": len(rows), "page": n, "pages": pages,
            "per_page": per}


def _when(t) -> str:
    return codec.fmt_time(t) if t else ""


def _cell(v) -> str:
    s = "" if v is None else str(v)
    return "'" + s if s[:1] in ("=", "+", "-", "@", "\t", "\r") else s  # a spreadsheet never runs a cell


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\r\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        sent = "" if r["outcome"] == "open" else f"refused: {r['refused']}" if r.get("refused") else \
            "yes" if r.get("delivered") else "pending"
        w.writerow([_cell(v) for v in (
            r["time"], r.get("last_time", r["time"]), r["box_id"], " ".join(r.get("cameras") or [r["camera_id"]]),
            r["ref"], r.get("category", ""), r["distance"], r["threshold"], r["outcome"], r.get("action") or "",
            r.get("reason") or "", r.get("note") or "", r.get("operator") or "", _when(r.get("decided")),
            "" if r.get("seconds_to_decision") is None else r["seconds_to_decision"], r.get("sightings", 1), sent,
            r.get("encounter_id", r["alert_id"]), r.get("verified_by") or "", r.get("not_counted") or 0)])
    return out.getvalue()


def summary(store, sessions: dict, hours: float = SHIFT_H, now: float | None = None) -> dict:
    """Who is logged in, and each operator's decisions (encounters decided) in the last ``hours``."""
    now = time.time() if now is None else now
    since = now - hours * 3600
    counts: dict[str, int] = {}
    for r in store.history(limit=MAX_ROWS):
        if r.get("decided") and r["decided"] >= since and r["outcome"] != "open":
            counts[r.get("operator") or "?"] = counts.get(r.get("operator") or "?", 0) + 1
    logged_in = sorted({name for name, expires, *_ in sessions.values() if expires > now})
    return {"logged_in": logged_in, "since": since, "hours": hours,
            "decisions": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))}
