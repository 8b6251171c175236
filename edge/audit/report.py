"""The oversight report: what the box did in a period, computed from the audit log alone.

``build(records, start, end)`` answers the four questions an oversight body asks (docs/report-format.md):
what images were shared with the box, when and by whom (one row per watch list, refused lists with
their reason: ``report_lists``); was there ever a match (per listed reference, "no match" included);
was police action taken (per encounter, decisions counted once: ``report_matches``); when was each
image deleted and can that be proved (each list's ending with its signed receipt, each alert's
deletion or retention date, consoles' copies). Also deployments, faces processed (counts only),
camera uptime and the box's own downtime (gaps between one run's last record and the next start).
``report_render`` presents the same dict as text, JSON and HTML.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from edge.audit import report_lists as lists_
from edge.audit import report_matches as matches
from edge.audit import report_runs
from edge.audit.report_lists import iso  # noqa: F401  (the CLI shows period bounds with it)
from edge.audit.report_lists import iso as _iso
from edge.audit.report_matches import is_false_alert  # noqa: F401  (the definition other code uses)
from edge.audit.report_render import render_html, render_json, render_text, svg_chart  # noqa: F401

VERSION = 2


def _with_times(records: list[dict]) -> list[tuple[datetime, dict]]:
    from edge.codec import parse_time

    return [(parse_time(r["time"]), r) for r in records]


def runs(recs) -> list[dict]:
    """The daemon's runs: start, end (its service_stop, or its last record when it died) and how it ended."""
    out: list[dict] = []
    last_t = None
    for t, r in recs:
        if r["kind"] == "service_start":
            if out and out[-1]["end"] is None:
                out[-1].update(end=last_t, clean=False)
            out.append({"start": t, "end": None, "clean": None, "cameras": list(r["data"].get("cameras") or [])})
        elif r["kind"] == "service_stop" and out and out[-1]["end"] is None:
            out[-1].update(end=t, clean=True)
        last_t = t
    return out


def downtime(rs: list[dict], lo, hi) -> list[dict]:
    """Gaps between one run's end and the next run's start that overlap the period."""
    out = []
    for a, b in zip(rs, rs[1:], strict=False):
        gap_lo, gap_hi = max(a["end"], lo), min(b["start"], hi)
        if gap_hi <= gap_lo:
            continue
        out.append({"from": _iso(a["end"]), "to": _iso(b["start"]),
                    "seconds": round((gap_hi - gap_lo).total_seconds(), 1),
                    "cause": "stopped" if a["clean"] else "not shut down (crash, kill or power cut)"})
    return out


def _uptime(recs, lo, hi, box_down_s: float) -> dict:
    """Seconds each camera was running and down, from service start/stop and fault/back records;
    ``uptime`` also counts the box's unplanned downtime (a killed box's cameras were not watching)."""
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
    out = {}
    for c in sorted(running):
        whole = running[c] + box_down_s
        out[c] = {"running_s": round(running[c], 1), "down_s": round(down[c], 1), "faults": faults[c],
                  "box_down_s": round(box_down_s, 1),
                  "uptime": round((running[c] - down[c]) / whole, 4) if whole else None}
    return out


def unauthorised_runs(recs, lo, hi) -> list[str]:
    """Start times of the daemon's runs in the period that matched with no deployment window required
    (``[deployment] required = false``, which their ``service_start`` says)."""
    starts = [t for t, r in recs if r["kind"] == "service_start"]
    flags = [r["data"].get("deployment_required") is False for _, r in recs if r["kind"] == "service_start"]
    ends = starts[1:] + [hi] if starts else []
    return [_iso(t) for t, e, off in zip(starts, ends, flags, strict=True) if off and t < hi and e > lo]


def _bucket(span: timedelta) -> tuple[str, timedelta]:
    if span <= timedelta(days=2):
        return "hour", timedelta(hours=1)
    return ("day", timedelta(days=1)) if span <= timedelta(days=120) else ("week", timedelta(weeks=1))


def _timeline(sights: list[tuple], outcome: dict[str, str]) -> dict:
    """Sightings per hour/day/week, by the outcome of their encounter."""
    if not sights:
        return {"unit": "day", "buckets": []}
    first, last = sights[0][0], sights[-1][0]
    unit, step = _bucket(last - first)
    start = first.replace(minute=0, second=0, microsecond=0)
    if unit != "hour":
        start = start.replace(hour=0)
    buckets: list[dict[str, Any]] = []
    t = start
    while t <= last:
        buckets.append({"start": _iso(t), "alerts": 0, "confirmed": 0, "dismissed": 0, "undecided": 0})
        t += step
    for at, d in sights:
        b = buckets[int((at - start) / step)]
        b["alerts"] += 1
        b[outcome.get(matches.encounter_of(d), "undecided")] += 1
    return {"unit": unit, "buckets": buckets}


def build(records: list[dict], start: datetime, end: datetime, verification: str = "",
          period_label: tuple[str, str] | None = None, check_receipt=None,
          issuer_names: dict[str, str] | None = None) -> dict:
    """The report for ``start <= time < end``; ``period_label``: the period as the user gave it;
    ``check_receipt(receipt) -> str``: verifies a deletion receipt's signature (the box key);
    ``issuer_names``: key id -> name from the box's trust store, where the log names none."""
    recs = sorted(_with_times(records), key=lambda x: x[0])
    in_period = [(t, r) for t, r in recs if start <= t < end]
    sights = matches.sightings(recs, start, end)
    encs = matches.encounters(sights, matches.decisions(recs, end), matches.refusals(recs, start, end))
    summary = matches.decision_summary(encs)
    wls = lists_.watchlists(recs, start, end, check_receipt, issuer_names)
    faces: Counter = Counter()
    other: Counter = Counter()  # encodings, and faces seen while matching was off (not authorised)
    for _, r in in_period:
        if r["kind"] == "faces_processed":
            faces[r["data"]["camera_id"]] += int(r["data"]["faces"])
            other.update({k: int(r["data"].get(k) or 0) for k in ("encodings", "not_authorised")})
    kinds = Counter(r["kind"] for _, r in in_period)
    gaps = downtime(runs(recs), start, end)
    unplanned = sum(g["seconds"] for g in gaps if g["cause"] != "stopped")
    refused = lists_.refused(recs, start, end, issuer_names)
    label = period_label or (_iso(start), _iso(end))
    rep = {
        "type": "edge-oversight-report", "v": VERSION,
        "box_id": next((r["box_id"] for r in reversed(records) if r.get("box_id")), ""),
        # every name the box had (a rename is recorded: box_renamed): the lists issued to any of them are its own
        "box_ids": sorted({str(r["box_id"]) for r in records if r.get("box_id")}
                          | {str(r["data"].get(k)) for r in records if r["kind"] == "box_renamed"
                             for k in ("old_box_id", "new_box_id")}),
        "period": {"from": label[0], "to": label[1], "start": _iso(start), "end": _iso(end)},
        "generated": _iso(datetime.fromtimestamp(time.time(), UTC)),
        "verification": verification,
        "records": len(in_period),
        "deployments": lists_.deployments(recs, start, end),
        # runs that matched with no signed deployment window required: said at the top of the report
        "matching_without_authorisation": unauthorised_runs(recs, start, end),
        "watchlists": wls,
        "refused": refused,
        "watchlists_refused": len(refused),
        "references": matches.references(encs, wls),
        "encounters": encs,
        "decisions": summary,
        "alerts": {"total": len(sights),
                   "per_camera": dict(sorted(Counter(d["camera_id"] for _, d in sights).items()))},
        "actions": summary["actions"],
        "false_alert_rate": summary["false_alert_rate"],
        "time_to_decision_s": summary["time_to_decision_s"],
        "deletion": matches.alert_deletion(recs, sights, end),
        "faces_processed": {"total": sum(faces.values()), "per_camera": dict(sorted(faces.items())),
                            "encodings": other["encodings"], "not_authorised": other["not_authorised"]},
        "downtime": gaps,
        "camera_uptime": _uptime(recs, start, end, unplanned),
        "consoles": {"connected": kinds["console_connected"], "refused": kinds["console_refused"]},
        # decisions the box did not count (no such alert, not sent to that console, already decided, ...)
        "adjudications_refused": kinds["adjudication_refused"] + sum(
            int(r["data"].get("suppressed") or 0) for _, r in in_period if r["kind"] == "adjudication_refused"),
        "retention_deleted": kinds["retention_deleted"],
        "config_changes": kinds["config_changed"],
        "timeline": _timeline(sights, {e["encounter_id"]: e["outcome"] for e in encs}),
        "runs": report_runs.runs(recs, start, end, sights, encs),
    }
    rep["summary"] = report_runs.summary(rep)
    return rep
