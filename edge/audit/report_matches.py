"""Report sections on matches and what became of them: per reference, per encounter, per alert's deletion.

Questions 2-4 of the oversight report: *was there ever a match* (per listed reference: encounters,
sightings, cameras, first/last seen, best distance, or "no match"); *was police action taken* (per
encounter: the decision that counts, i.e. the last one, its action or reason, operator, note, time to
decision, or undecided; decisions are counted once per encounter, never per sighting); *when was each
image deleted* (per alert: its crop and record deleted by retention, or held until when; each console
that reported deleting its copy, and when).

An alert record is one sighting. Its encounter is ``encounter_id`` (alert records since the encounters
change), else ``group_id`` (the alert group a decision covered), else the alert itself.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from datetime import timedelta

from edge.alerts.retention import DEFAULT_DAYS
from edge.audit.report_lists import iso
from edge.codec import parse_time

FALSE_ALERT_REASONS = {"not the person", "wrong person", "not person", "misidentified"}
SIGHTING_KINDS = ("alert", "sighting")
DEFAULT_RETENTION_DAYS = DEFAULT_DAYS  # a run that recorded no period kept alerts this long


def is_false_alert(decision: dict) -> bool:
    """A dismissal because the person was not the one on the list (docs/audit-format.md)."""
    reason = str(decision.get("reason", "")).lower().replace("_", " ").replace("-", " ").strip()
    return decision.get("decision") == "dismiss" and reason in FALSE_ALERT_REASONS


def encounter_of(d: dict) -> str:
    return str(d.get("encounter_id") or d.get("group_id") or d["alert_id"])


def _seen_at(t, d):
    try:
        return parse_time(d["time"]) if d.get("time") else t
    except Exception:  # a malformed time field: the record's own time
        return t


def sightings(recs, lo, hi) -> list[tuple]:
    return [(t, r["data"]) for t, r in recs if r["kind"] in SIGHTING_KINDS and lo <= t < hi]


def decisions(recs, hi) -> dict[str, tuple]:
    """encounter id -> (time, adjudication data) of the decision that counts (the last one before ``hi``)."""
    enc_of = {str(r["data"]["alert_id"]): encounter_of(r["data"]) for _, r in recs
              if r["kind"] in SIGHTING_KINDS and "alert_id" in r["data"]}
    out: dict[str, tuple] = {}
    for t, r in recs:
        if r["kind"] == "adjudication" and t < hi:
            d = r["data"]
            enc = str(d.get("encounter_id") or enc_of.get(str(d["alert_id"]), d["alert_id"]))
            out[enc] = (t, d)
    return out


def refusals(recs, lo, hi) -> dict[str, list[dict]]:
    """encounter id -> the decisions on it that were not counted (lost a race, refused by the box): who, what,
    when, why, and who had decided it."""
    out: dict[str, list[dict]] = defaultdict(list)
    for t, r in recs:
        d = r["data"]
        if r["kind"] == "adjudication_refused" and lo <= t < hi and d.get("encounter_id"):
            out[str(d["encounter_id"])].append({
                "operator": d.get("operator", ""), "decision": d.get("decision", ""),
                "choice": d.get("action") or d.get("refused_reason") or "", "time": d.get("time_decided") or iso(t),
                "why": d.get("reason", ""), "decided_by": d.get("decided_by", ""),
                "verifications": d.get("verifications") or []})
    return out


def encounters(sights, decided: dict, refused: dict | None = None) -> list[dict]:
    by: dict[str, dict] = {}
    for t, d in sights:
        enc = encounter_of(d)
        e = by.get(enc)
        seen = _seen_at(t, d)
        if e is None:
            e = by[enc] = {"encounter_id": enc, "ref": d["ref"], "cameras": [], "sightings": 0,
                           "first_seen": seen, "last_seen": seen, "best_distance": float(d["distance"]),
                           "alert_ids": []}
        e["sightings"] += 1
        e["alert_ids"].append(d["alert_id"])
        if d["camera_id"] not in e["cameras"]:
            e["cameras"].append(d["camera_id"])
        e["first_seen"], e["last_seen"] = min(e["first_seen"], seen), max(e["last_seen"], seen)
        e["best_distance"] = min(e["best_distance"], float(d["distance"]))
    out = []
    for e in sorted(by.values(), key=lambda e: e["first_seen"]):
        t, dec = decided.get(e["encounter_id"], (None, None))
        e.update(first_seen=iso(e["first_seen"]), last_seen=iso(e["last_seen"]), cameras=sorted(e["cameras"]),
                 best_distance=round(e["best_distance"], 4))
        if dec is None:
            e.update(outcome="undecided", decision=None, action=None, reason=None, operator=None, note=None,
                     seconds_to_decision=None, decided=None)
        else:
            conf = dec["decision"] == "confirm"
            e.update(outcome="confirmed" if conf else "dismissed", decision=dec["decision"],
                     action=(dec.get("action") or "none") if conf else None,
                     reason=None if conf else dec.get("reason") or "", operator=dec.get("operator", ""),
                     note=dec.get("note") or "", seconds_to_decision=float(dec.get("seconds_to_decision") or 0),
                     decided=iso(t))
        e["verifications"] = list((dec or {}).get("verifications") or [])
        e["refused"] = (refused or {}).get(e["encounter_id"], [])
        out.append(e)
    return out


def decision_summary(encs: list[dict]) -> dict:
    decided = [e for e in encs if e["decision"]]
    false = sum(is_false_alert(e) for e in decided)
    secs = sorted(e["seconds_to_decision"] for e in decided)
    return {
        "encounters": len(encs), "confirmed": sum(e["outcome"] == "confirmed" for e in encs),
        "dismissed": sum(e["outcome"] == "dismissed" for e in encs),
        "undecided": sum(e["outcome"] == "undecided" for e in encs),
        "actions": dict(sorted(Counter(e["action"] for e in decided if e["action"]).items())),
        "reasons": dict(sorted(Counter(e["reason"] for e in decided if e["decision"] == "dismiss").items())),
        "false_alert_rate": {"false_alerts": false, "decided": len(decided),
                             "rate": round(false / len(decided), 4) if decided else None},
        "time_to_decision_s": {"n": len(secs), "median": round(statistics.median(secs), 1) if secs else None,
                               "p90": round(secs[int(0.9 * (len(secs) - 1))], 1) if secs else None,
                               "max": round(secs[-1], 1) if secs else None},
    }


def references(encs: list[dict], lists: list[dict]) -> list[dict]:
    """Every listed reference (and any other that matched): matched or "no match"."""
    listed: dict[str, dict] = {}
    for w in lists:
        details = {x.get("ref"): x for x in w.get("entry_details") or []}
        for ref in w.get("refs") or []:
            r = listed.setdefault(ref, {"ref": ref, "lists": [], "category": (details.get(ref) or {}).get("category")})
            if w["list_id"] not in r["lists"]:
                r["lists"].append(w["list_id"])
    by_ref: dict[str, list[dict]] = defaultdict(list)
    for e in encs:
        by_ref[e["ref"]].append(e)
    out = []
    for ref in sorted(set(listed) | set(by_ref)):
        es = by_ref.get(ref, [])
        row = dict(listed.get(ref) or {"ref": ref, "lists": [], "category": None}, matched=bool(es),
                   encounters=len(es), sightings=sum(e["sightings"] for e in es),
                   cameras=sorted({c for e in es for c in e["cameras"]}),
                   first_seen=min((e["first_seen"] for e in es), default=None),
                   last_seen=max((e["last_seen"] for e in es), default=None),
                   best_distance=min((e["best_distance"] for e in es), default=None),
                   decisions=sum(1 for e in es if e["decision"]))
        out.append(row)
    return out


def alert_deletion(recs, sights, hi) -> dict:
    """Per alert: deleted by retention (when), else held until when; consoles that deleted their copy."""
    retention = DEFAULT_RETENTION_DAYS
    run_retention: list[tuple] = []  # (service start time, retention days of that run)
    deleted: dict[str, str] = {}
    consoles: dict[str, list[dict]] = defaultdict(list)
    for t, r in recs:
        if t >= hi:
            break
        d = r["data"]
        if r["kind"] == "service_start":
            run_retention.append((t, float(d.get("retention_days") or retention)))
        elif r["kind"] == "retention_deleted":
            deleted.setdefault(str(d["alert_id"]), iso(t))
        elif r["kind"] == "console_pruned":
            for a in d.get("alert_ids") or []:
                if all(c["console"] != d.get("console") for c in consoles[str(a)]):
                    consoles[str(a)].append({"console": d.get("console", ""), "deleted": iso(t)})
    rows = []
    for t, d in sights:
        days = next((days for st, days in reversed(run_retention) if st <= t), retention)
        gone = deleted.get(str(d["alert_id"]))
        rows.append({"alert_id": d["alert_id"], "encounter_id": encounter_of(d), "ref": d["ref"],
                     "camera_id": d["camera_id"], "time": iso(t), "deleted": gone,
                     "held_until": None if gone else iso(t + timedelta(days=days)),
                     "consoles_deleted": consoles.get(str(d["alert_id"]), [])})
    return {"alerts": rows, "deleted": sum(1 for r in rows if r["deleted"]),
            "held": sum(1 for r in rows if not r["deleted"]),
            "console_copies_deleted": sum(len(r["consoles_deleted"]) for r in rows)}
