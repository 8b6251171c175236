"""Each deployment's runs, and the summary tables the oversight report opens with (docs/report-format.md).

A **run** is one stretch of matching under a deployment window: from its ``deployment_start`` to its
``deployment_end`` (or, when the box died, its last record before the next start). Each run says why it
ended (its time was up, ended by whom and why, its issuer removed, an emergency use lapsed, the box stopped
or went down), the lists it named with their hashes, the faces processed, encounters and decisions (with
who verified them) inside it, and the deletion receipts of its lists. Windows refused (a revival, a
superseded document) are listed with their deployment, and matching outside every run is its own row.

The summary has one table per question: deployments, lists, matches, decisions, deletions.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from edge.audit.log import FACES_EVERY_S
from edge.audit.report_lists import iso
from edge.audit.report_matches import encounter_of
from edge.codec import fmt_time, parse_time


def _ms(t: datetime | None) -> str | None:
    """A run's bounds to the millisecond: a sighting a moment after a run's start second is inside it."""
    return fmt_time(t, ms=True) if t else None


def _why(reason: str) -> str:
    """A run's ending in the report's words (time, command, revocation, emergency, box stopped / down)."""
    if reason == "window closed":
        return "time: its window closed"
    if reason.startswith("ended by "):
        return f"command: {reason}"
    if reason == "authorisation withdrawn":
        return "revocation: its window or its issuer was withdrawn"
    if reason.startswith("emergency"):
        return f"emergency use lapsed: {reason}"
    return "box stopped" if reason == "service stopped" else reason


def runs(recs, lo: datetime, hi: datetime, sights: list[tuple], encs: list[dict]) -> dict:
    """{deployment_id: [run]} and the runs' windows, refusals and stops per deployment, plus the sightings
    outside every run (``unauthorised``)."""
    out: dict[str, dict] = defaultdict(lambda: {"windows": [], "runs": [], "refused": [], "stopped": []})
    open_runs: dict[str, dict] = {}
    last_t = None
    for t, r in recs:
        if t >= hi:
            break
        kind, d = r["kind"], r["data"]
        dep = str(d.get("deployment_id", ""))
        if kind == "service_start":
            for run in open_runs.values():  # the box died with these runs open
                run.update(end=_ms(last_t), why="box down (not shut down: crash, kill or power cut)", down=True)
            open_runs = {}
        elif kind == "deployment_loaded":
            out[dep]["windows"].append({"loaded": iso(t), "issued": d.get("issued", ""), "start": d.get("start"),
                                        "end": d.get("end"), "issuer": d.get("issuer", ""),
                                        "authority_ref": d.get("authority_ref", ""),
                                        "lists": [x.get("list_id") for x in d.get("lists") or []
                                                  if isinstance(x, dict)],
                                        "sha256": {str(x.get("list_id")): str(x.get("sha256", ""))
                                                   for x in d.get("lists") or [] if isinstance(x, dict)}})
        elif kind == "deployment_refused" and d.get("deployment_id"):
            out[dep]["refused"].append({"time": iso(t), "reason": d.get("reason", "")})
        elif kind == "deployment_stopped":
            out[dep]["stopped"].append({"time": iso(t), "by": d.get("by", ""), "reason": d.get("reason", ""),
                                        "ending": d.get("ending", "")})
        elif kind == "deployment_start":
            run = {"start": _ms(t), "end": None, "why": "running", "down": False, "lists": list(d.get("lists") or []),
                   "cameras": list(d.get("cameras") or []), "authority_ref": d.get("authority_ref", ""),
                   "emergency": bool(d.get("emergency")), "faces": 0, "faces_flushed": iso(t)}
            out[dep]["runs"].append(run)
            open_runs[dep] = run
        elif kind == "deployment_end" and dep in open_runs:
            open_runs.pop(dep).update(end=_ms(t), why=_why(str(d.get("reason", ""))))
        elif kind == "faces_processed":
            for run in open_runs.values():
                if d.get("camera_id") in run["cameras"]:
                    run["faces"] += int(d.get("faces") or 0)
                    run["faces_flushed"] = iso(t)
        last_t = t
    inside: set[int] = set()
    for run in [run for v in out.values() for run in v["runs"]]:
        a, b = parse_time(run["start"]), parse_time(run["end"]) if run["end"] else hi
        in_run = [d for t, d in sights if a <= t <= b]
        inside.update(id(d) for d in in_run)
        ids = {encounter_of(d) for d in in_run}
        mine = [e for e in encs if e["encounter_id"] in ids]
        run.update(sightings=len(in_run), encounters=len(mine),
                   confirmed=sum(e["outcome"] == "confirmed" for e in mine),
                   dismissed=sum(e["outcome"] == "dismissed" for e in mine),
                   undecided=sum(e["outcome"] == "undecided" for e in mine),
                   verified_by=sorted({e["operator"] for e in mine if e.get("operator")}
                                      | {v.get("operator", "") for e in mine for v in e.get("verifications") or []}
                                      - {""}))
        if run["down"]:
            run["counts_lost"] = (f"faces counted after {run['faces_flushed']} were lost when the box went down "
                                  f"(counts are recorded every {FACES_EVERY_S:.0f} s)")
    outside = [d for t, d in sights if lo <= t < hi and id(d) not in inside]
    keep = {dep: v for dep, v in out.items() if v["runs"] or v["windows"] or v["refused"] or v["stopped"]}
    return {"deployments": keep, "unauthorised": {"sightings": len(outside),
                                                  "encounters": len({encounter_of(d) for d in outside})}}


def _table(columns: list[str], rows: list[list]) -> dict:
    return {"columns": columns, "rows": [[("" if c is None else str(c)) for c in row] for row in rows]}


def summary(rep: dict) -> dict:
    """One small table per question an oversight body asks first (the report opens with them)."""
    deps = []
    for dep_id, v in sorted(rep["runs"]["deployments"].items()):
        rs = v["runs"]
        last = rs[-1] if rs else None
        deps.append([dep_id, len(rs), rs[0]["start"] if rs else "never ran",
                     (last["end"] or "running") if last else "",
                     "; ".join(sorted({r["why"] for r in rs})) or "-",
                     len(v["refused"]), ", ".join(sorted({x for w in v["windows"] for x in w["lists"]})) or "-",
                     ", ".join(sorted({w["authority_ref"] for w in v["windows"] if w["authority_ref"]})) or "none"])
    un = rep["runs"]["unauthorised"]
    if un["sightings"]:
        deps.append(["(no window)", "-", "-", "-", "matching outside every deployment window", "-", "-", "-"])
    lists = [[w["list_id"], w["deployment"] or "-", w["issuer_name"] or w["issuer"], w["entries"], w["loaded"],
              (f"{w['ended']['how']} {w['ended']['time']}" if w["ended"] else "in force"),
              (w["ended"]["receipt_check"] if w["ended"] else "-")] for w in rep["watchlists"]]
    lists += [[r.get("claimed_list_id") or "?", "-", r["issuer_name"] or r["issuer"] or "?", "-", r["time"],
               "REFUSED: " + r["reason"][:120], "-"] for r in rep["refused"]]
    matched = [r for r in rep["references"] if r["matched"]]
    matches = [[r["ref"], r["encounters"], r["sightings"], ", ".join(r["cameras"]), r["first_seen"], r["last_seen"]]
               for r in matched]
    if not matched:
        matches.append(["no listed reference matched", "0", "0", "-", "-", "-"])
    d = rep["decisions"]
    far, ttd = d["false_alert_rate"], d["time_to_decision_s"]
    decisions = [[d["encounters"], d["confirmed"], d["dismissed"], d["undecided"],
                  f"{far['false_alerts']}/{far['decided']}", ttd["median"] if ttd["n"] else "-",
                  ", ".join(sorted({e["operator"] for e in rep["encounters"] if e.get("operator")})) or "-"]]
    ended = [w for w in rep["watchlists"] if w["ended"]]
    dl = rep["deletion"]
    deletions = [["watch lists", len(rep["watchlists"]), len(ended),
                  sum(1 for w in ended if w["ended"]["receipt"]), len(rep["watchlists"]) - len(ended)],
                 ["list files on USB", sum(len(w["files"]) for w in rep["watchlists"]),
                  sum(f["deleted"] for w in rep["watchlists"] for f in w["files"]), "-",
                  sum(not f["deleted"] for w in rep["watchlists"] for f in w["files"])],
                 ["alert crops and records", len(dl["alerts"]), dl["deleted"], "-", dl["held"]]]
    return {
        "deployments": _table(["deployment", "runs", "first start", "last end", "how runs ended",
                               "windows refused", "lists", "authority ref"], deps),
        "lists": _table(["list", "deployment", "issuer", "entries", "loaded", "ended", "receipt"], lists),
        "matches": _table(["reference", "encounters", "sightings", "cameras", "first seen", "last seen"], matches),
        "decisions": _table(["encounters", "confirmed", "dismissed", "undecided", "false alerts / decided",
                             "median s to decide", "decided by"], decisions),
        "deletions": _table(["what", "in the period", "deleted", "with signed receipt", "still held"], deletions),
    }


SUMMARY_TITLES = {"deployments": "Deployments: when did the box match, under whose authority",
                  "lists": "Lists: what was shared with the box",
                  "matches": "Matches: did anyone on a list pass a camera",
                  "decisions": "Decisions: what the operators decided",
                  "deletions": "Deletions: what was destroyed, and the proof"}


def run_lines(rep: dict) -> list:
    """The ``Deployments`` section: each deployment with its windows, refusals, stops and runs."""
    out: list = []
    for dep_id, v in sorted(rep["runs"]["deployments"].items()):
        head = f"{dep_id}: {len(v['runs'])} run(s), {len(v['windows'])} window(s) loaded"
        sub = [f"window issued {w['issued'] or '?'} by {w['issuer']}, {w['start']} to {w['end']}, lists "
               + (", ".join(f"{x} (bundle sha256 {w.get('sha256', {}).get(x, '?')})" for x in w["lists"]) or "-")
               + f", authority {w['authority_ref'] or 'none'}; loaded {w['loaded']}" for w in v["windows"]]
        sub += [f"REFUSED window at {x['time']}: {x['reason']}" for x in v["refused"]]
        sub += [f"ended by {x['by']} at {x['time']} ({x['ending']}): {x['reason']}" for x in v["stopped"]]
        for i, r in enumerate(v["runs"], start=1):
            sub.append(f"run {i}: {r['start']} to {r['end'] or 'now (running)'}, ended: {r['why']}; lists "
                       f"{', '.join(r['lists']) or '-'}"
                       + (" (EMERGENCY USE: no authority reference)" if r["emergency"] else "")
                       + f"; faces processed {r['faces']}, sightings {r['sightings']}, encounters {r['encounters']} "
                       f"(confirmed {r['confirmed']}, dismissed {r['dismissed']}, undecided {r['undecided']})"
                       + (f", verified by {', '.join(r['verified_by'])}" if r["verified_by"] else "")
                       + (f"; {r['counts_lost']}" if r.get("counts_lost") else ""))
        receipts = [w for w in rep["watchlists"] if w["deployment"] == dep_id and w["ended"]]
        sub += [f"list {w['list_id']} ended {w['ended']['time']} ({w['ended']['reason']}): receipt "
                f"{w['ended']['receipt_file'] or 'NONE'} ({w['ended']['receipt_check']})" for w in receipts]
        out.append((head, sub))
    un = rep["runs"]["unauthorised"]
    if un["sightings"]:
        out.append(f"MATCHING WITHOUT A WINDOW: {un['sightings']} sighting(s) in {un['encounters']} encounter(s) "
                   "happened outside every deployment run (deployment not required on this box, or a list "
                   "from before windows named lists)")
    return out or ["none"]
