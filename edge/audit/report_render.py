"""The oversight report as text, JSON and one self-contained HTML page (inline SVG chart, no assets).

Text and HTML have the same sections, in order: the four questions (each under its own heading),
then deployments, operation (uptime, downtime, faces) and other counts.
"""

from __future__ import annotations

import html
import json

from edge.audit.report_runs import SUMMARY_TITLES, run_lines
from edge.codec import printable_tree

QUESTIONS = ("1. What images were shared with the box, when and by whom",
             "2. Was there ever a match",
             "3. Was police action taken",
             "4. When was each image deleted, and can that be proved")


def render_json(rep: dict) -> str:
    return json.dumps(rep, indent=2, sort_keys=True) + "\n"


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _dur(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _issuer(name: str, kid: str) -> str:
    if not kid:
        return "an unknown issuer"
    return f"{name} (key {kid})" if name else f"issuer key {kid} (no name in the trust store)"


def _arrival(a: dict) -> str:
    how = a["how"]
    if how == "usb":
        return f"from USB ({a['mount']}, file {a['file']}) at {a['time']}"
    if how == "cli":
        return f"by `edge watchlist load` (file {a['file']}) at {a['time']}"
    return f"{how} ({a['file']}) at {a['time']}" if a.get("file") else f"{how} at {a['time']}"


def _image(img: dict) -> str:
    bits = [f"sha256 {img.get('sha256') or '?'}"]
    if img.get("source"):
        bits.append(f"from {img['source']}")
    if img.get("taken"):
        bits.append(f"taken {img['taken']}")
    return " ".join(bits)


def _shared(rep: dict) -> list:
    out: list = []
    for w in rep["watchlists"]:
        head = (f"List {w['list_id']} (sequence {w['sequence']}) issued by {_issuer(w['issuer_name'], w['issuer'])}"
                f" for deployment {w['deployment'] or '(none)'}: {w['entries']} entries"
                + (f" ({', '.join(w['categories'])})" if w.get("categories") else ""))
        sub = [f"arrived {_arrival(a)}" for a in w["arrived"]]
        if w["reloads"]:
            sub.append(f"reloaded from the box's encrypted store at {w['reloads']} daemon start(s) (same list)")
        details = {d["ref"]: d for d in w.get("entry_details") or []}
        for ref in w.get("refs") or []:
            d = details.get(ref)
            if d is None:
                sub.append(f"entry {ref}")
                continue
            imgs = "; ".join(_image(i) for i in d.get("images") or []) or "image provenance not recorded"
            sub.append(f"entry {ref}: {d['category']}, reason: {d['reason'] or '(none given)'}; images: {imgs}")
        out.append((head, sub))
    for r in rep["refused"]:
        again = f" (and again at {', '.join(r['times'][1:])})" if len(r.get("times") or []) > 1 else ""
        out.append(f"Refused at {r['time']}{again}: file {r['file'] or '?'}"
                   + (f" (list {r['claimed_list_id']})" if r.get("claimed_list_id") else "")
                   + (f" from USB {r['mount']}" if r.get("mount") else "")
                   + f", {_issuer(r['issuer_name'], r['issuer'])}: {r['reason']}")
    return out or ["no watch list was loaded or refused in the period"]


def _matched(rep: dict) -> list:
    out: list = []
    for r in rep["references"]:
        where = f" (list {', '.join(r['lists'])})" if r["lists"] else ""
        if not r["matched"]:
            out.append(f"{r['ref']}{where}: no match")
            continue
        out.append(f"{r['ref']}{where}: {r['encounters']} encounter(s), {r['sightings']} sighting(s) on "
                   f"{', '.join(r['cameras'])}; first seen {r['first_seen']}, last seen {r['last_seen']}, "
                   f"best distance {r['best_distance']}")
    a = rep["alerts"]
    out.append(f"in all: {a['total']} sighting(s) in {rep['decisions']['encounters']} encounter(s)"
               + "".join(f"; camera {c}: {n}" for c, n in a["per_camera"].items()))
    return out


def _decided(e: dict) -> str:
    if e["outcome"] == "undecided":
        return "undecided"
    what = f"action: {e['action']}" if e["decision"] == "confirm" else f"reason: {e['reason']}"
    return (f"{e['outcome']} by {e['operator']} after {e['seconds_to_decision']:.1f} s, {what}"
            + (f"; note: {e['note']}" if e.get("note") else ""))


def _people(e: dict) -> list[str]:
    """Who verified the decision (two-person rule), and every decision on the encounter that was not counted."""
    words = {"confirm": "confirmed", "dismiss": "dismissed"}
    out = [f"verified ({v.get('role', '')}): {v.get('operator', '')} {words.get(v.get('decision', ''), '?')}"
           f" ({v.get('action') or v.get('reason') or '-'}) at {v.get('time', '')}"
           for v in e.get("verifications") or []]
    out += [f"NOT COUNTED: {r['operator']} {words.get(r['decision'], r['decision'])} ({r['choice'] or '-'}) at "
            f"{r['time']}: {r['why']}"
            + (f" (the decision that counts is {r['decided_by']}'s)" if r["decided_by"] else "")
            for r in e.get("refused") or []]
    return out


def _action(rep: dict) -> list:
    d = rep["decisions"]
    out: list = [(f"encounter {e['encounter_id']} ({e['ref']}, {e['sightings']} sighting(s) on "
                  f"{', '.join(e['cameras'])}, {e['first_seen']} to {e['last_seen']}): {_decided(e)}", _people(e))
                 for e in rep["encounters"]]
    far, ttd = d["false_alert_rate"], d["time_to_decision_s"]
    out += [f"decisions (one per encounter): confirmed {d['confirmed']}, dismissed {d['dismissed']}, "
            f"undecided {d['undecided']}",
            "actions after a confirmation: " + (", ".join(f"{k}: {n}" for k, n in d["actions"].items()) or "none"),
            "reasons for a dismissal: " + (", ".join(f"{k}: {n}" for k, n in d["reasons"].items()) or "none"),
            f"false-alert rate (dismissed as not the person / decided): {far['false_alerts']}/{far['decided']} = "
            f"{_pct(far['rate'])}",
            (f"time to decision: median {ttd['median']} s, 90th percentile {ttd['p90']} s, max {ttd['max']} s"
             if ttd["n"] else "time to decision: no decisions")]
    return out


def _deleted(rep: dict) -> list:
    out: list = []
    for w in rep["watchlists"]:
        end = w["ended"]
        if end is None:
            out.append(f"list {w['list_id']}: not ended in the period (in force; expires {w.get('not_after')})")
        else:
            rc = (f"signed deletion receipt {end['receipt_file']}: {end['receipt_check']}" if end["receipt"]
                  else "NO deletion receipt recorded")
            out.append(f"list {w['list_id']}: {end['how']} at {end['time']} ({end['reason']}); {rc}")
        for f in w["files"]:
            out.append(f"  its file {f['file']} on {f['mount']}: " + (f"deleted at {f['time']}" if f["deleted"]
                                                                      else f"NOT deleted ({f['reason']})"))
    dl = rep["deletion"]
    out.append(f"alerts: {dl['deleted']} deleted by retention, {dl['held']} still held; console copies "
               f"reported deleted: {dl['console_copies_deleted']}")
    for a in dl["alerts"]:
        held = f"crop and record deleted at {a['deleted']}" if a["deleted"] else f"held until {a['held_until']}"
        cons = "; ".join(f"console {c['console']} deleted its copy at {c['deleted']}" for c in a["consoles_deleted"])
        out.append(f"  alert {a['alert_id']} ({a['ref']}, {a['camera_id']}, {a['time']}): {held}"
                   + (f"; {cons}" if cons else "; no console reported deleting its copy"))
    return out


def sections(rep: dict) -> list[tuple[str, list]]:
    """(title, items) shared by the text and HTML renderings; an item is a line or (line, sub-lines)."""
    deps = [f"{d['deployment_id']}: {d['location']}, cameras {', '.join(d['cameras'] or [])}, "
            f"{d['start']} to {d['end']}, purpose: {d['purpose']}, authorised by {d['issuer']}"
            for d in rep["deployments"]] + run_lines(rep)
    up = [f"camera {c}: {_pct(u['uptime'])} up ({_dur(u['down_s'])} down of {_dur(u['running_s'])} in service, "
          f"{u['faults']} faults; box down {_dur(u['box_down_s'])})" for c, u in rep["camera_uptime"].items()]
    down = [f"box down {g['from']} to {g['to']} ({_dur(g['seconds'])}): {g['cause']}" for g in rep["downtime"]]
    fp = rep["faces_processed"]
    return [
        (QUESTIONS[0], _shared(rep)),
        (QUESTIONS[1], _matched(rep)),
        (QUESTIONS[2], _action(rep)),
        (QUESTIONS[3], _deleted(rep)),
        ("Deployments", deps or ["none"]),
        ("Operation", (down or ["no box downtime in the period"]) + (up or ["no service records"])
         + [f"faces processed (counts only): {fp['total']}, encoded for matching: {fp['encodings']}, seen "
            f"outside a deployment window (not encoded): {fp['not_authorised']}"]),
        ("Other", [f"console connections: {rep['consoles']['connected']}, refused: {rep['consoles']['refused']}",
                   f"decisions refused (no such alert, not sent to that console, or already decided): "
                   f"{rep.get('adjudications_refused', 0)}",
                   f"config changes: {rep['config_changes']}"]),
    ]


def _period(rep: dict) -> str:
    p = rep["period"]
    days = any(len(str(x)) == 10 for x in (p["from"], p["to"]))  # whole days, as given: say what they span
    return f"{p['from']} to {p['to']}" + (f" (whole days: {p['start']} up to {p['end']})" if days else "")


def unauthorised(rep: dict) -> str:
    runs = rep["matching_without_authorisation"]
    return (f"WARNING: MATCHING WITHOUT AUTHORISATION in {len(runs)} run(s) of the box in this period (from "
            f"{runs[0]}): its config said [deployment] required = false, so no signed deployment window limited "
            "where and when it matched")


def render_text(rep: dict) -> str:
    rep = printable_tree(rep)  # names, notes, file names: shown, never run as a terminal's control codes
    out = [f"Oversight report for box {rep['box_id']}: {_period(rep)}", f"Audit log: {rep['verification']}",
           *([unauthorised(rep)] if rep.get("matching_without_authorisation") else []), ""]
    for key, title in SUMMARY_TITLES.items():
        out += [f"Summary. {title}", *_text_table(rep["summary"][key]), ""]
    for title, items in sections(rep):
        out.append(title)
        for it in items:
            line, sub = it if isinstance(it, tuple) else (it, [])
            out.append(f"  {line}")
            out += [f"    {s}" for s in sub]
        out.append("")
    return "\n".join(out)


def _text_table(t: dict) -> list[str]:
    cols, rows = t["columns"], t["rows"]
    width = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "  " + "  ".join(c.ljust(w) for c, w in zip(cells, width, strict=True)).rstrip()  # noqa: E731
    return [line(cols), line(["-" * w for w in width]), *(line(r) for r in rows)]


COLOURS = {"confirmed": "#c0392b", "dismissed": "#7f8c8d", "undecided": "#e2a400"}


def svg_chart(timeline: dict, width: int = 720, height: int = 260) -> str:
    """Stacked bars of sightings by their encounter's outcome per hour/day/week, with labelled axes."""
    e = html.escape
    buckets = timeline["buckets"]
    if not buckets:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="720" height="40"><text x="4" y="24">no alerts' \
               " in the period</text></svg>"
    top = max(1, max(b["alerts"] for b in buckets))
    step = max(1, -(-top // 5))
    top = step * -(-top // step)
    left, right, bottom, plot_top = 56, 12, 56, 14
    plot_h = height - bottom - plot_top
    y0 = height - bottom
    bw = (width - left - right) / len(buckets)
    unit = timeline["unit"]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="sightings by outcome per {unit}" font-family="sans-serif" font-size="13">']
    for v in range(0, top + 1, step):
        y = y0 - plot_h * v / top
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v}</text>')
    parts.append(f'<line x1="{left}" y1="{y0}" x2="{width - right}" y2="{y0}" stroke="#333"/>'
                 f'<line x1="{left}" y1="{plot_top}" x2="{left}" y2="{y0}" stroke="#333"/>'
                 f'<text x="14" y="{plot_top + plot_h / 2:.0f}" text-anchor="middle" '
                 f'transform="rotate(-90 14 {plot_top + plot_h / 2:.0f})">sightings</text>')
    every = max(1, -(-len(buckets) // 8))
    for i, b in enumerate(buckets):
        y = y0
        for k in ("confirmed", "dismissed", "undecided"):
            h = plot_h * b[k] / top
            if h:
                y -= h
                parts.append(f'<rect class="{k}" x="{left + i * bw + 1:.1f}" y="{y:.1f}" width="{max(bw - 2, 1):.1f}" '
                             f'height="{h:.1f}" fill="{COLOURS[k]}"><title>{e(b["start"])}: '
                             f'{b[k]} {k}</title></rect>')
        if i % every == 0:
            label = b["start"][11:16] if unit == "hour" else b["start"][:10]
            parts.append(f'<text x="{left + (i + 0.5) * bw:.1f}" y="{y0 + 18}" text-anchor="middle">{e(label)}</text>')
    first = buckets[0]["start"][:10]
    parts.append(f'<text x="{left + (width - left - right) / 2:.0f}" y="{height - 10}" text-anchor="middle">'
                 f'{e(unit)} starting (UTC{", " + first if unit == "hour" else ""})</text>')
    return "".join(parts) + "</svg>"


CSS = ("body{font-family:sans-serif;max-width:72em;margin:1.2em auto;padding:0 1em;color:#222;line-height:1.35;"
       "font-size:14px}h1{font-size:1.4em;margin:.2em 0}h2{font-size:1.1em;margin:1.2em 0 .3em;border-bottom:1px "
       "solid #ccc;padding-bottom:.15em}h3{font-size:.95em;margin:.7em 0 .2em}"
       "table{border-collapse:collapse;width:100%;margin:.2em 0 .5em}th,td{border:1px solid #ccc;padding:.15em "
       ".4em;text-align:left;vertical-align:top}th{background:#f0f0f0}td.sub{color:#444;font-size:.93em;"
       "padding-left:1.6em}.summary td,.summary th{font-size:.92em}.legend span{display:inline-block;width:.9em;"
       "height:.9em;margin:0 .3em 0 1em;vertical-align:middle}"
       "@media print{body{max-width:none;margin:0;font-size:10pt}h2,h3{break-after:avoid}tr{break-inside:avoid}"
       "thead{display:table-header-group}}")


def render_html(rep: dict) -> str:
    e = html.escape
    rep = printable_tree(rep)
    legend = "".join(f'<span style="background:{c}"></span>{k}' for k, c in COLOURS.items())
    body = [f"<h1>Oversight report: box {e(rep['box_id'])}</h1>",
            f"<p>{e(_period(rep))}. Audit log: {e(rep['verification'])}</p>",
            *([f'<p class="warning"><b>{e(unauthorised(rep))}</b></p>'] if rep.get("matching_without_authorisation")
              else []), '<h2>Summary</h2>']
    for key, title in SUMMARY_TITLES.items():
        t = rep["summary"][key]
        body.append(f'<h3>{e(title)}</h3><table class="summary" id="summary-{key}"><thead><tr>'
                    + "".join(f"<th>{e(c)}</th>" for c in t["columns"]) + "</tr></thead><tbody>"
                    + "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in t["rows"])
                    + "</tbody></table>")
    body += [f"<h2>Sightings per {e(rep['timeline']['unit'])}, by the decision on their encounter</h2>",
             svg_chart(rep["timeline"]), f'<p class="legend">{legend}</p>']
    for title, items in sections(rep):
        rows = []
        for it in items:
            line, sub = it if isinstance(it, tuple) else (it, [])
            rows.append(f"<tr><td>{e(line)}</td></tr>" + "".join(f'<tr><td class="sub">{e(x)}</td></tr>' for x in sub))
        body.append(f"<h2>{e(title)}</h2><table>{''.join(rows)}</table>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Oversight report '
            f"{e(rep['box_id'])}</title><style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
