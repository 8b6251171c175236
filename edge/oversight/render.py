"""The fleet report as text, JSON or one self-contained HTML page (no scripts, no links out)."""

from __future__ import annotations

import html
import json
from typing import Any

QUESTIONS = ("1. What images were shared, when and by whom", "2. Was there ever a match",
             "3. Was police action taken", "4. Were they deleted, and can that be proved")


def _scope_line(rep: dict[str, Any]) -> str:
    s = rep["scope"]
    who = f"{s['issuer_name']} ({s['issuer']})" if s.get("issuer_name") else s["issuer"]
    parts = [f"issuer {who}" if s["issuer"] else "every issuer",
             f"{s['site_kind']} sites" if s["site_kind"] else "every site" if not s["site"] else f"site {s['site']}",
             f"box {s['box']}" if s["box"] else "", f"deployment {s['deployment']}" if s["deployment"] else "",
             f"from {s['start'] or 'the first record'} to {s['end'] or 'now'}"]
    return ", ".join(p for p in parts if p)


def _group(rep: dict[str, Any], key: str) -> str:
    name = rep.get("issuer_names", {}).get(key)
    return f"{name} ({key})" if name else key or "(none)"


def _counts(n: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(n.items())) or "none"


def answers(a: dict[str, Any]) -> list[tuple[str, list[str]]]:
    sh, m, ac, d = a["shared"], a["matched"], a["action"], a["deleted"]
    return [
        (QUESTIONS[0], [f"{sh['images']} image(s) of {sh['references']} reference(s) in {sh['lists']} list(s), "
                        f"loaded by {sh['boxes']} box(es) at {sh['sites']} site(s); {sh['refused']} list(s) refused"]),
        (QUESTIONS[1], [f"{m['encounters']} encounter(s) (alerts) on {m['references']} reference(s) of "
                        f"{m['lists']} list(s)" if m["encounters"] else "no match"]),
        (QUESTIONS[2], [f"{ac['confirmed']} confirmed (actions: {_counts(ac['actions'])}), {ac['dismissed']} "
                        f"dismissed (reasons: {_counts(ac['reasons'])}), {ac['undecided']} undecided"]),
        (QUESTIONS[3], [f"{d['lists_with_valid_receipt']} of {sh['lists']} list(s) ended with a deletion receipt "
                        "signed by the box's registered key; "
                        f"{d['lists_ended_without_valid_receipt']} ended without a valid receipt; "
                        f"{d['lists_not_ended']} still in force",
                        f"{d['alerts_deleted']} of {m['encounters']} alert(s) deleted by the retention sweep; "
                        f"{d['alerts_held']} still held"]),
    ]


def render_json(rep: dict[str, Any]) -> str:
    return json.dumps(rep, indent=1, sort_keys=True) + "\n"


def render_text(rep: dict[str, Any]) -> str:
    out = [f"Fleet oversight report: {_scope_line(rep)}", ""]
    for q, lines in answers(rep["total"]):
        out += [q, *(f"  {ln}" for ln in lines), ""]
    if rep.get("groups"):
        out.append(f"By {rep['by']}:")
        for k, a in sorted(rep["groups"].items()):
            out.append(f"  {_group(rep, k)}: " + " | ".join(lines[0] for _, lines in answers(a)))
        out.append("")
    out.append("Boxes (what the service holds of each log):")
    for b in rep["fleet"]:
        out.append(f"  {b['box_id']} ({b['site']}, {b['site_kind']}): seq 1..{b['last_seq']}, signed through "
                   f"{b['signed_through']}, {b['branches']} branch(es), {b['faces_processed']} faces processed")
    out += ["", f"Incidents ({len(rep['incidents'])}): breaks in a box's log, kept apart, never merged"]
    out += [f"  {i['box_id']} {i['kind'].upper()} seqs {i['from_seq']}..{i['to_seq']}: {i['detail']}"
            for i in rep["incidents"]] or ["  none"]
    if "lists" in rep:
        out += ["", "Lists (box, seq and hash of the record that loaded each):"]
        out += [f"  {x['box_id']} list {x['list_id']} issuer {x['issuer_name'] or x['issuer']} loaded {x['loaded']} "
                f"(seq {x['loaded_seq']}, {str(x['loaded_hash'])[:16]}): {x['images']} image(s); "
                + (f"{x['ended_how']} at seq {x['ended_seq']}, receipt "
                   f"{'valid' if x['receipt_valid'] else 'MISSING OR INVALID'}" if x["ended"] else "not ended")
                for x in rep["lists"]]
        out += ["", "Alerts (box, seq and hash of each alert record):"]
        out += [f"  {x['box_id']} seq {x['seq']} ({str(x['hash'])[:16]}) {x['time']} {x['ref']} list {x['list_id']}: "
                f"{x['decision'] or 'undecided'}{' (' + x['action'] + ')' if x['action'] else ''}"
                f"{', deleted at seq ' + str(x['deleted_seq']) if x['deleted_seq'] else ', held'}"
                for x in rep["alerts"]]
    return "\n".join(out) + "\n"


def render_html(rep: dict[str, Any]) -> str:
    e = html.escape
    body = [f"<h1>Fleet oversight report</h1><p>{e(_scope_line(rep))}</p>"]
    for q, lines in answers(rep["total"]):
        body.append(f"<h2>{e(q)}</h2>" + "".join(f"<p>{e(ln)}</p>" for ln in lines))
    if rep.get("groups"):
        rows = "".join(f"<tr><td>{e(_group(rep, k))}</td>" + "".join(f"<td>{e(lines[0])}</td>"
                                                                    for _, lines in answers(a)) + "</tr>"
                       for k, a in sorted(rep["groups"].items()))
        body.append(f"<h2>By {e(rep['by'])}</h2><table><tr><th>{e(rep['by'])}</th>"
                    + "".join(f"<th>{e(q)}</th>" for q in QUESTIONS) + f"</tr>{rows}</table>")
    body.append("<h2>Boxes</h2><table><tr><th>box</th><th>site</th><th>kind</th><th>records held</th>"
                "<th>signed through</th><th>branches</th><th>faces</th></tr>" + "".join(
                    f"<tr><td>{e(b['box_id'])}</td><td>{e(b['site'])}</td><td>{e(b['site_kind'])}</td>"
                    f"<td>{b['last_seq']}</td><td>{b['signed_through']}</td><td>{b['branches']}</td>"
                    f"<td>{b['faces_processed']}</td></tr>" for b in rep["fleet"]) + "</table>")
    body.append(f"<h2>Incidents ({len(rep['incidents'])})</h2><ul>" + "".join(
        f"<li><b>{e(i['kind'])}</b> {e(i['box_id'])} seqs {i['from_seq']}..{i['to_seq']}: {e(i['detail'])}</li>"
        for i in rep["incidents"]) + "</ul>")
    text = render_text(rep)
    if "lists" in rep:
        body.append("<h2>Drill-down</h2><pre>" + e(text.split("\nLists (", 1)[1] if "\nLists (" in text else "")
                    + "</pre>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #999;padding:3px 6px;font-size:13px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Fleet oversight report</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
