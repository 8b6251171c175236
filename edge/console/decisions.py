"""Every decision an operator makes on the console, accounted for (issue 26).

Each decision is one row of the console's ``decisions`` table, whatever becomes of it:

- ``counted``: it is (part of) the adjudication sent to the box;
- ``first``: a first verification under the two-person rule, waiting for a second operator;
- ``disagreed``: the second verification disagreed with the first; a supervisor decides;
- ``refused``: it was not counted, and ``why`` says so in words: it lost a race (someone decided the
  encounter first), or the box refused the adjudication it was part of. Its operator is told on the
  page (a notice that stays until read) and the box is told too (an adjudication with ``not_counted``),
  so its audit log, and the report, hold both operators.

The two-person rule itself (who may verify, when it counts) is edge/alerts/verification.py; the box
checks it again. A second operator is blind to the first one's choice: the page is told only that
someone verified, never what they chose, until both have.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, tzinfo

from edge.alerts import messages, protocol, verification
from edge.errors import EdgeError

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY, box_id TEXT NOT NULL, encounter_id TEXT NOT NULL, alert_id TEXT NOT NULL,
    operator TEXT NOT NULL, decision TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL, note TEXT NOT NULL,
    time REAL NOT NULL, stamp TEXT NOT NULL, role TEXT NOT NULL, status TEXT NOT NULL, why TEXT, adj_id TEXT,
    told INTEGER NOT NULL DEFAULT 0, report TEXT, delivered INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS decisions_encounter ON decisions (box_id, encounter_id);
"""
WAITING = ("first", "disagreed")
NOUN = {"confirm": "confirmation", "dismiss": "dismissal"}


def _note(value: object) -> str:
    """The operator's note, whole, or EdgeError in words: never cut short, never one the box's audit log would
    refuse (it would refuse the decision with it)."""
    from edge.audit.log import check_value

    note, limit = str(value or ""), protocol.MAX_TEXT["note"]
    if len(note) > limit:
        raise EdgeError(f"the note is {len(note)} characters; at most {limit} are kept: shorten it and decide again")
    try:
        check_value(note, "note")
    except EdgeError:
        raise EdgeError("the note looks like encoded data (a pasted token, key or image?), which the audit log "
                        "does not keep: remove it and decide again") from None
    return note


class Refused(EdgeError):
    """A decision that was not counted: the sentence its operator is told."""


def when(t: float, tz: tzinfo = UTC) -> str:
    """A time as the console shows it: the site's zone with its offset, ``2026-12-06 08:12:03 +00:00``."""
    dt = datetime.fromtimestamp(t, tz)
    off = dt.strftime("%z")
    return dt.strftime("%Y-%m-%d %H:%M:%S ") + f"{off[:3]}:{off[3:]}"


def _rows(store, sql: str, args=()) -> list[dict]:
    return store._query(sql, args)


def of_encounter(store, box_id: str, encounter_id: str) -> list[dict]:
    return _rows(store, "SELECT * FROM decisions WHERE box_id=? AND encounter_id=? ORDER BY time",
                 (box_id, encounter_id))


def _people(rows: list[dict]) -> list[dict]:
    return [verification.entry(r["operator"], r["decision"], r["action"], r["reason"], r["stamp"], r["role"])
            for r in rows]


def decide(store, alert_id: str, operator: str, body: dict, *, policy: str = "one", supervisor: bool = False,
           tz: tzinfo = UTC) -> dict:
    """One operator's decision on the encounter of ``alert_id``, under the box's ``policy``."""
    alert = store.alert(alert_id)
    if alert is None:
        raise EdgeError("no such alert")
    rows = store.encounter(alert["box_id"], alert["group_id"])
    first = rows[0]  # the encounter's first sighting: the alert the box opened it with
    decision = body.get("decision") if isinstance(body.get("decision"), str) else ""
    action, reason = str(body.get("action") or ""), str(body.get("reason") or "")
    try:
        protocol.check_decision(decision, action or None, reason or None)
    except messages.MessageError as exc:
        raise EdgeError(str(exc)) from None
    note = _note(body.get("note"))
    now = time.time()
    mine = {"decision_id": str(uuid.uuid4()), "box_id": first["box_id"], "encounter_id": first["group_id"],
            "alert_id": first["alert_id"], "operator": operator, "decision": decision,
            "action": action if decision == "confirm" else "", "reason": reason if decision == "dismiss" else "",
            "note": note, "time": now, "stamp": messages.utcnow()}
    with store._tx() as db:  # one decision at a time: the race is settled here, in order
        out = _settle(db, store, first, mine, policy, supervisor, tz)
    if isinstance(out, str):
        raise Refused(out)
    return out


def _select(db, sql: str, args) -> list[dict]:
    cur = db.execute(sql, args)
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def _settle(db, store, first, mine, policy, supervisor, tz) -> dict | str:
    """The outcome of ``mine`` (in the store's transaction): a result, or the sentence of its refusal."""
    key = (first["box_id"], first["group_id"])
    won = _select(db, "SELECT operator, outcome, action, reason, decided FROM alerts WHERE box_id=? AND group_id=? "
                      "AND outcome!='open' LIMIT 1", key)
    if won:
        w = won[0]
        why = (f"not counted: {w['operator']} had already {w['outcome']} this encounter "
               f"({w['action'] or w['reason']}) at {when(w['decided'] or mine['time'], tz)}")
        _refuse(db, mine, first, why, "single" if policy == "one" else "late")
        return f"Your {NOUN[mine['decision']]} was {why}."
    waiting = _select(db, "SELECT * FROM decisions WHERE box_id=? AND encounter_id=? AND status IN "
                          "('first','disagreed') ORDER BY time", key)
    operator, decision = mine["operator"], mine["decision"]
    if policy != "two":
        for w in waiting:  # verifications under a two-person rule that has since lapsed: told, never lost
            db.execute("DELETE FROM decisions WHERE decision_id=?", (w["decision_id"],))
            _refuse(db, w, first, f"not counted: the box's rule became one operator, and {operator} decided "
                                  f"the encounter alone at {when(mine['time'], tz)}", w["role"])
        return _count(db, store, first, [], mine, "single")
    if not waiting:
        if decision == "dismiss":  # not the person: no action is taken, one operator suffices
            return _count(db, store, first, [], mine, "first")
        _insert(db, mine, "first", "first")
        return {"verification": "first", "encounter_id": first["group_id"],
                "text": "Your verification is recorded: a second operator must now verify this encounter."}
    names = {w["operator"] for w in waiting}
    if len(waiting) == 1:
        if operator in names:
            raise EdgeError("You verified this encounter already: a second, different operator must verify it.")
        if waiting[0]["decision"] == decision:
            return _count(db, store, first, waiting, mine, "second")
        _insert(db, mine, "second", "disagreed")
        db.execute("UPDATE decisions SET status='disagreed' WHERE decision_id=?", (waiting[0]["decision_id"],))
        return {"verification": "disagreed", "encounter_id": first["group_id"],
                "text": "The two verifications disagree: a supervisor decides this encounter."}
    if not supervisor or operator in names:
        raise EdgeError("The two verifications disagree: only a supervisor who was neither of them can decide.")
    return _count(db, store, first, waiting, mine, "supervisor")


def _insert(db, d: dict, role: str, status: str, why: str = "", adj_id: str = "", report: str | None = None) -> None:
    db.execute("INSERT INTO decisions (decision_id, box_id, encounter_id, alert_id, operator, decision, action, "
               "reason, note, time, stamp, role, status, why, adj_id, report) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
               (d["decision_id"], d["box_id"], d["encounter_id"], d["alert_id"], d["operator"], d["decision"],
                d["action"], d["reason"], d["note"], d["time"], d["stamp"], role, status, why or None,
                adj_id or None, report))


def _refuse(db, d: dict, first: dict, why: str, role: str) -> None:
    """Record a decision that was not counted, to tell its operator and, through the box, the audit log."""
    report = protocol.adjudication(
        alert_id=d["alert_id"], box_id=d["box_id"], decision=d["decision"], operator=d["operator"],
        action=d["action"], reason=d["reason"], note=d["note"], time=d["stamp"], decision_id=d["decision_id"],
        seconds_to_decision=d["time"] - first["received"], not_counted=why[:300])
    _insert(db, d, role, "refused", why, report=json.dumps(report))


def _count(db, store, first: dict, waiting: list[dict], mine: dict, role: str) -> dict:
    """The decision that counts: the adjudication (with who verified it) kept to send to the box. It decides
    every sighting of the encounter still open, read in this transaction (one that arrived a moment ago too)."""
    group = [r["alert_id"] for r in _select(db, "SELECT alert_id FROM alerts WHERE box_id=? AND group_id=? AND "
                                                "outcome='open'", (first["box_id"], first["group_id"]))]
    _insert(db, mine, role, "counted", adj_id=mine["decision_id"])
    people = _people(waiting) + ([verification.entry(mine["operator"], mine["decision"], mine["action"],
                                                     mine["reason"], mine["stamp"], role)] if role != "single" else [])
    for w in waiting:
        db.execute("UPDATE decisions SET status='counted', adj_id=? WHERE decision_id=?",
                   (mine["decision_id"], w["decision_id"]))
    adj = protocol.adjudication(
        alert_id=first["alert_id"], box_id=first["box_id"], decision=mine["decision"], operator=mine["operator"],
        action=mine["action"], reason=mine["reason"], note=mine["note"], time=mine["stamp"],
        seconds_to_decision=mine["time"] - first["received"], decision_id=mine["decision_id"],
        verifications=people or None)
    store.decide(group, [adj], db=db)
    return {"decided": group, "encounter_id": first["group_id"], "verifications": people}


def people_by_encounter(store) -> dict[tuple[str, str], tuple[str, int]]:
    """(box, encounter) -> (who verified the decision that counts, "alice (first), bob (second)"; how many
    decisions on it were not counted): the history's columns."""
    out: dict[tuple[str, str], tuple[str, int]] = {}
    for r in _rows(store, "SELECT box_id, encounter_id, operator, role, status FROM decisions ORDER BY time"):
        who, refused = out.get((r["box_id"], r["encounter_id"]), ("", 0))
        if r["status"] == "counted" and r["role"] != "single":
            who = f"{who}, {r['operator']} ({r['role']})" if who else f"{r['operator']} ({r['role']})"
        out[(r["box_id"], r["encounter_id"])] = (who, refused + (r["status"] == "refused"))
    return out


def undelivered_reports(store, box_id: str) -> list[dict]:
    """Refused decisions the box has not been told of yet."""
    return [json.loads(r["report"]) for r in _rows(
        store, "SELECT report FROM decisions WHERE box_id=? AND report IS NOT NULL AND delivered=0 ORDER BY time",
        (box_id,))]


def acked(store, decision_id: str, refused: str) -> bool:
    """The box acknowledged ``decision_id``: a refusal report (True), or the adjudication it was counted in
    (refused by the box: each of its people is told)."""
    with store._tx() as db:
        if db.execute("UPDATE decisions SET delivered=1 WHERE decision_id=? AND report IS NOT NULL",
                      (decision_id,)).rowcount:
            return True
        if refused:
            db.execute("UPDATE decisions SET status='refused', why=? WHERE adj_id=?",
                       (f"not counted: the box refused it ({refused[:200]})", decision_id))
    return False


def notices(store, operator: str) -> list[dict]:
    """This operator's decisions that were not counted and that they have not read yet."""
    rows = _rows(store, "SELECT d.decision_id, d.decision, d.action, d.reason, d.why, d.time, a.ref FROM decisions d "
                        "LEFT JOIN alerts a ON a.alert_id=d.alert_id WHERE d.operator=? AND d.status='refused' AND "
                        "d.told=0 ORDER BY d.time LIMIT 50", (operator,))
    return [{"decision_id": r["decision_id"], "ref": r["ref"] or "", "time": r["time"],
             "text": f"Your {NOUN.get(r['decision'], r['decision'])} ({r['action'] or r['reason']}) of "
                     f"{r['ref'] or 'an encounter'} was {r['why']}."} for r in rows]


def read(store, operator: str, decision_id: str) -> None:
    with store._tx() as db:
        db.execute("UPDATE decisions SET told=1 WHERE decision_id=? AND operator=?", (decision_id, operator))


def stage(store, box_id: str, encounter_id: str, operator: str, policy: str, supervisor: bool) -> dict:
    """What the page may show of an open encounter's verification: blind to the first choice until both
    have verified; the supervisor sees both."""
    waiting = [r for r in of_encounter(store, box_id, encounter_id) if r["status"] in WAITING]
    out: dict = {"policy": policy, "stage": "first" if not waiting else "second" if len(waiting) == 1 else "supervisor",
                 "by": [r["operator"] for r in waiting]}
    mine = next((r for r in waiting if r["operator"] == operator), None)
    if mine is not None:
        out["mine"] = {"decision": mine["decision"], "action": mine["action"], "reason": mine["reason"]}
    if len(waiting) > 1:  # both have chosen: nothing left to be blind to
        out["people"] = _people(waiting)
        out["may_decide"] = supervisor and mine is None
    return out
