"""The oversight report: what the box did in a period, computed from the audit log alone.

``build(records, start, end)`` counts deployments, watch lists (loaded, deleted, receipt), alerts per
camera, outcomes (confirmed / dismissed / unanswered), actions, the false-alert rate measured from
operator decisions, time to decision, faces processed (counts only) and camera uptime. Outcomes are
those of the alerts raised in the period, as decided by the end of the period (the last decision on
an alert counts). ``render_text``, ``render_json`` and ``render_html`` (one self-contained file with an
inline SVG chart) present the same dict.
"""

from __future__ import annotations

import html
import json
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from edge.audit.log import parse_time

FALSE_ALERT_REASONS = {"not the person", "wrong person", "not person", "misidentified"}


def is_false_alert(decision: dict) -> bool:
    """A dismissal because the person was not the one on the list (docs/audit-format.md)."""
    reason = str(decision.get("reason", "")).lower().replace("_", " ").replace("-", " ").strip()
    return decision.get("decision") == "dismiss" and reason in FALSE_ALERT_REASONS


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds").replace("+00:00", "Z") if t else None


def _with_times(records: list[dict]) -> list[tuple[datetime, dict]]:
    return [(parse_time(r["time"]), r) for r in records]


def _deployments(recs, lo, hi) -> list[dict]:
    deps: dict[str, dict] = {}
    for t, r in recs:
        d = r["data"]
        dep_id = str(d.get("deployment_id", ""))
        if r["kind"] == "deployment_loaded" and t < hi:
            deps[dep_id] = {k: d.get(k) for k in ("deployment_id", "location", "cameras", "start", "end",
                                                  "purpose", "issuer")}
            deps[dep_id].update(loaded=_iso(t), activated=[], ended=[])
        elif r["kind"] in ("deployment_start", "deployment_end") and dep_id in deps and lo <= t < hi:
            key = "activated" if r["kind"] == "deployment_start" else "ended"
            deps[dep_id][key].append(_iso(t))
    return [d for d in deps.values()
            if parse_time(d["end"]) > lo and parse_time(d["start"]) < hi or d["activated"] or d["ended"]]


def _watchlists(recs, lo, hi) -> tuple[list[dict], int]:
    lists, refused = [], 0
    for t, r in recs:
        d = r["data"]
        if r["kind"] == "watchlist_refused" and lo <= t < hi:
            refused += 1
        if r["kind"] == "watchlist_loaded" and t < hi:
            refs = d.get("refs")
            lists.append({"list_id": d["list_id"], "issuer": d["issuer"], "entries": d["entries"],
                          "categories": d.get("categories"), "refs": refs, "loaded": _iso(t),
                          "deleted": None, "deletion_reason": None, "receipt": None})
        elif r["kind"] in ("watchlist_purged", "watchlist_expired") and t < hi:
            for wl in lists:
                if wl["list_id"] == d.get("list_id") and wl["deleted"] is None:
                    wl["deleted"], wl["deletion_reason"] = _iso(t), d.get("reason", "expired")
                    if r["kind"] == "watchlist_purged":
                        # the receipt's file name on the box: receipts/<time without colons>-<list_id>.json
                        stamp = str(d.get("time") or _iso(t)).replace(":", "")
                        wl["receipt"] = d.get("receipt_id") or f"{stamp}-{d['list_id']}"
    return [w for w in lists if w["deleted"] is None or parse_time(w["deleted"]) >= lo], refused


def _uptime(recs, lo, hi) -> dict:
    """Seconds each camera was running and down, from service start/stop and fault/back records."""
    running: dict[str, float] = defaultdict(float)
    down: dict[str, float] = defaultdict(float)
    faults: Counter = Counter()
    up_since: datetime | None = None
    cams: set[str] = set()
    down_since: dict[str, datetime] = {}
    last_t = None

    def span(a, b) -> float:
        return max(0.0, (min(b, hi) - max(a, lo)).total_seconds())

    def close(at):
        nonlocal up_since
        for c in cams:
            running[c] += span(up_since, at)
            if c in down_since:
                down[c] += span(down_since.pop(c), at)
        up_since = None

    for t, r in recs:
        if t >= hi:
            break
        kind, d = r["kind"], r["data"]
        if kind == "service_start":
            if up_since is not None:  # no stop: the box died; count up to its last record
                close(last_t)
            up_since, cams = t, set(d.get("cameras") or [])
        elif kind == "service_stop" and up_since is not None:
            close(t)
        elif kind == "camera_fault" and up_since is not None:
            cams.add(d["camera_id"])
            down_since.setdefault(d["camera_id"], t)
            if lo <= t:
                faults[d["camera_id"]] += 1
        elif kind == "camera_back" and d["camera_id"] in down_since:
            down[d["camera_id"]] += span(down_since.pop(d["camera_id"]), t)
        last_t = t
    if up_since is not None:
        close(min(hi, datetime.now(UTC)))
    return {c: {"running_s": round(running[c], 1), "down_s": round(down[c], 1), "faults": faults[c],
                "uptime": round(1 - down[c] / running[c], 4) if running[c] else None} for c in sorted(running)}


def _bucket(span: timedelta) -> tuple[str, timedelta]:
    if span <= timedelta(days=2):
        return "hour", timedelta(hours=1)
    return ("day", timedelta(days=1)) if span <= timedelta(days=120) else ("week", timedelta(weeks=1))


def _timeline(alerts: list[tuple[datetime, dict]], outcome: dict[str, str]) -> dict:
    if not alerts:
        return {"unit": "day", "buckets": []}
    first, last = alerts[0][0], alerts[-1][0]
    unit, step = _bucket(last - first)
    start = first.replace(minute=0, second=0, microsecond=0)
    if unit != "hour":
        start = start.replace(hour=0)
    buckets = []
    t = start
    while t <= last:
        buckets.append({"start": _iso(t), "alerts": 0, "confirmed": 0, "dismissed": 0, "unanswered": 0})
        t += step
    for at, r in alerts:
        b = buckets[int((at - start) / step)]
        b["alerts"] += 1
        b[outcome[r["data"]["alert_id"]]] += 1
    return {"unit": unit, "buckets": buckets}


def build(records: list[dict], start: datetime, end: datetime, verification: str = "") -> dict:
    recs = sorted(_with_times(records), key=lambda x: x[0])
    in_period = [(t, r) for t, r in recs if start <= t < end]
    alerts = [(t, r) for t, r in in_period if r["kind"] == "alert"]
    decisions: dict[str, dict] = {}
    for t, r in recs:
        if r["kind"] == "adjudication" and t < end:
            decisions[r["data"]["alert_id"]] = r["data"]  # the last decision on an alert counts
    outcome = {}
    for _, r in alerts:
        d = decisions.get(r["data"]["alert_id"])
        outcome[r["data"]["alert_id"]] = {"confirm": "confirmed", "dismiss": "dismissed"}[d["decision"]] if d \
            else "unanswered"
    decided = [decisions[a] for a, o in outcome.items() if o != "unanswered"]
    false_alerts = sum(map(is_false_alert, decided))
    secs = sorted(float(d["seconds_to_decision"]) for d in decided)
    faces: Counter = Counter()
    other: Counter = Counter()  # encodings, and faces seen while matching was off (not authorised)
    for _, r in in_period:
        if r["kind"] == "faces_processed":
            faces[r["data"]["camera_id"]] += int(r["data"]["faces"])
            other.update({k: int(r["data"].get(k) or 0) for k in ("encodings", "not_authorised")})
    kinds = Counter(r["kind"] for _, r in in_period)
    watchlists, refused = _watchlists(recs, start, end)
    return {
        "type": "edge-oversight-report", "v": 1,
        "box_id": next((r["box_id"] for r in records if r.get("box_id")), ""),
        "period": {"from": _iso(start), "to": _iso(end)},
        "generated": _iso(datetime.fromtimestamp(time.time(), UTC)),
        "verification": verification,
        "records": len(in_period),
        "deployments": _deployments(recs, start, end),
        "watchlists": watchlists,
        "watchlists_refused": refused,
        "alerts": {"total": len(alerts), "per_camera": dict(sorted(Counter(r["data"]["camera_id"]
                                                                           for _, r in alerts).items())),
                   **{k: sum(o == k for o in outcome.values()) for k in ("confirmed", "dismissed", "unanswered")}},
        "actions": dict(sorted(Counter(str(d.get("action") or "none") for d in decided
                                       if d["decision"] == "confirm").items())),
        "false_alert_rate": {"false_alerts": false_alerts, "decided": len(decided),
                             "rate": round(false_alerts / len(decided), 4) if decided else None},
        "time_to_decision_s": {"n": len(secs), "median": round(statistics.median(secs), 1) if secs else None,
                               "p90": round(secs[int(0.9 * (len(secs) - 1))], 1) if secs else None,
                               "max": round(secs[-1], 1) if secs else None},
        "faces_processed": {"total": sum(faces.values()), "per_camera": dict(sorted(faces.items())),
                            "encodings": other["encodings"], "not_authorised": other["not_authorised"]},
        "camera_uptime": _uptime(recs, start, end),
        "consoles": {"connected": kinds["console_connected"], "refused": kinds["console_refused"]},
        "retention_deleted": kinds["retention_deleted"],
        "config_changes": kinds["config_changed"],
        "timeline": _timeline(alerts, outcome),
    }


# --- rendering -------------------------------------------------------------------------------------

def render_json(rep: dict) -> str:
    return json.dumps(rep, indent=2, sort_keys=True) + "\n"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _dur(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _lines(rep: dict) -> list[tuple[str, list[str]]]:
    """(section title, lines) shared by the text and html renderings."""
    a, far, ttd = rep["alerts"], rep["false_alert_rate"], rep["time_to_decision_s"]
    deps = [f"{d['deployment_id']}: {d['location']}, cameras {', '.join(d['cameras'] or [])}, "
            f"{d['start']} to {d['end']}, purpose: {d['purpose']}, authorised by {d['issuer']}"
            + (f"; active from {', '.join(d['activated'])}" if d["activated"] else "") for d in rep["deployments"]]
    wls = [f"{w['list_id']} from {w['issuer']}: {w['entries']} entries"
           + (f" ({', '.join(w['categories'])})" if w["categories"] else "")
           + f", loaded {w['loaded']}, "
           + (f"deleted {w['deleted']} ({w['deletion_reason']}), receipt {w['receipt']}" if w["deleted"]
              else "not deleted in the period") for w in rep["watchlists"]]
    if rep["watchlists_refused"]:
        wls.append(f"{rep['watchlists_refused']} watch list(s) refused")
    up = [f"{c}: {_pct(u['uptime'])} up ({_dur(u['down_s'])} down of {_dur(u['running_s'])} in service, "
          f"{u['faults']} faults)" for c, u in rep["camera_uptime"].items()]
    return [
        ("Deployments", deps or ["none"]),
        ("Watch lists", wls or ["none"]),
        ("Alerts", [f"total: {a['total']}"] + [f"camera {c}: {n}" for c, n in a["per_camera"].items()]),
        ("Outcomes", [f"confirmed: {a['confirmed']}", f"dismissed: {a['dismissed']}",
                      f"unanswered: {a['unanswered']}"]
         + [f"action after a confirmation, {k}: {n}" for k, n in rep["actions"].items()]),
        ("Accuracy", [f"false-alert rate (dismissed as not the person / decided): {far['false_alerts']}/"
                      f"{far['decided']} = {_pct(far['rate'])}",
                      f"time to decision: median {ttd['median']} s, 90th percentile {ttd['p90']} s, "
                      f"max {ttd['max']} s ({ttd['n']} decisions)" if ttd["n"] else "time to decision: no decisions"]),
        ("Faces processed (counts only)", [f"total: {rep['faces_processed']['total']}",
                                           f"encoded for matching: {rep['faces_processed']['encodings']}",
                                           f"seen outside a deployment window (not encoded): "
                                           f"{rep['faces_processed']['not_authorised']}"]
         + [f"camera {c}: {n}" for c, n in rep["faces_processed"]["per_camera"].items()]),
        ("Camera uptime", up or ["no service records"]),
        ("Other", [f"console connections: {rep['consoles']['connected']}, refused: {rep['consoles']['refused']}",
                   f"alert records deleted by retention: {rep['retention_deleted']}",
                   f"config changes: {rep['config_changes']}"]),
    ]


def render_text(rep: dict) -> str:
    out = [f"Oversight report for box {rep['box_id']}: {rep['period']['from']} to {rep['period']['to']}",
           f"Audit log: {rep['verification']}", ""]
    for title, lines in _lines(rep):
        out.append(title)
        out += [f"  {ln}" for ln in lines]
        out.append("")
    return "\n".join(out)


COLOURS = {"confirmed": "#c0392b", "dismissed": "#7f8c8d", "unanswered": "#f1c40f"}


def svg_chart(timeline: dict, width: int = 640, height: int = 220) -> str:
    """Stacked bars of alert outcomes per hour/day/week (inline SVG, no external assets)."""
    buckets = timeline["buckets"]
    if not buckets:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="40"><text x="4" y="24">no alerts' \
               " in the period</text></svg>"
    top = max(1, max(b["alerts"] for b in buckets))
    left, bottom, plot_h = 40, 30, height - 50
    bw = (width - left - 10) / len(buckets)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="alerts and outcomes per {timeline["unit"]}">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#333"/>',
             f'<text x="4" y="{height - bottom - plot_h + 10}" font-size="11">{top}</text>',
             f'<text x="4" y="{height - bottom}" font-size="11">0</text>']
    for i, b in enumerate(buckets):
        y = height - bottom
        for k in ("confirmed", "dismissed", "unanswered"):
            h = plot_h * b[k] / top
            if h:
                y -= h
                parts.append(f'<rect class="{k}" x="{left + i * bw + 1:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" '
                             f'height="{h:.1f}" fill="{COLOURS[k]}"><title>{html.escape(b["start"])}: '
                             f'{b[k]} {k}</title></rect>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">{html.escape(buckets[0]["start"])}</text>')
    parts.append(f'<text x="{width - 10}" y="{height - 8}" font-size="11" text-anchor="end">'
                 f'{html.escape(buckets[-1]["start"])}</text>')
    return "".join(parts) + "</svg>"


def render_html(rep: dict) -> str:
    e = html.escape
    legend = " ".join(f'<span style="color:{c}">&#9632;</span> {k}' for k, c in COLOURS.items())
    body = [f"<h1>Oversight report: box {e(rep['box_id'])}</h1>",
            f"<p>{e(rep['period']['from'])} to {e(rep['period']['to'])}. Audit log: {e(rep['verification'])}</p>",
            f"<h2>Alerts and outcomes per {e(rep['timeline']['unit'])}</h2>", svg_chart(rep["timeline"]),
            f"<p>{legend}</p>"]
    for title, lines in _lines(rep):
        body.append(f"<h2>{e(title)}</h2><ul>" + "".join(f"<li>{e(ln)}</li>" for ln in lines) + "</ul>")
    style = "body{font-family:sans-serif;max-width:50em;margin:2em auto;color:#222}h2{font-size:1.1em}"
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Oversight report '
            f"{e(rep['box_id'])}</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")
