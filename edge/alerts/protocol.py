"""The link messages between a box and a console (docs/alerts.md): ``hello``, ``ack``, ``adjudication``,
``pruned``. The box's hello is version 2 (it carries the box's retention period), the others version 1.

Box messages (``alert``, ``event``) are defined in ``edge.alerts.messages``; on the wire the box adds
two envelope fields to each: ``outbox`` (the id of the box's outbox) and ``seq`` (its position in it),
plus ``prev`` (the position of the message sent before it on this link, so a console can tell a gap
from a resend).
"""

from __future__ import annotations

from typing import Any

from edge.alerts import messages, verification

DECISIONS = {"confirm", "dismiss"}
ACTIONS = ("approached", "no action", "arrested", "other")
REASONS = ("not the person", "poor image", "other")

LINK_REQUIRED: dict[str, dict[str, type]] = {
    "hello": {"role": str},
    "ack": {},
    "adjudication": {"alert_id": str, "box_id": str, "decision": str, "operator": str, "time": str},
    "pruned": {"box_id": str, "prune_id": str, "alert_ids": list, "time": str},
}
MAX_PRUNED = 1000  # alert ids in one pruned message


SCHEMA: messages.Schema = {**messages.REQUIRED, **LINK_REQUIRED}
# the longest text a console may send in each field (docs/alerts.md): bounded work and audit records
MAX_TEXT = {"alert_id": 64, "box_id": 64, "operator": 64, "note": 500, "time": 40, "action": 32, "reason": 32,
            "name": 200, "outbox": 64, "role": 16, "decision_id": 64, "not_counted": 300}


def loads(data: bytes, allowed: set[str]) -> dict[str, Any]:
    """Parse one link frame: a box message (alert/event) or a link message; MessageError if malformed."""
    msg = messages.loads(data, allowed, schema=SCHEMA)
    kind = msg["type"]
    if kind in ("alert", "event") and ("seq" in msg or "outbox" in msg):
        _need_int(msg, "seq")
        _need_int(msg, "prev")
        if not isinstance(msg.get("outbox"), str):
            raise messages.MessageError(f"{kind}.outbox missing or not str")
    if kind == "ack" and not (("seq" in msg and isinstance(msg.get("outbox"), str)) or "alert_id" in msg
                              or isinstance(msg.get("prune_id"), str)):
        raise messages.MessageError("ack needs outbox and seq, alert_id, or prune_id")
    if kind == "pruned" and (len(msg["alert_ids"]) > MAX_PRUNED
                             or not all(isinstance(a, str) and 0 < len(a) <= 64 for a in msg["alert_ids"])):
        raise messages.MessageError(f"pruned.alert_ids must be at most {MAX_PRUNED} alert ids")
    if kind == "ack" and "seq" in msg:
        _need_int(msg, "seq")
    if kind == "hello" and msg["role"] == "console":
        _need_int(msg, "last_seq")
    if kind == "hello" and msg["role"] == "box" and msg["v"] >= 2:
        days = msg.get("retention_days")
        if not isinstance(days, int | float) or isinstance(days, bool) or not days > 0:
            raise messages.MessageError("hello.retention_days missing or not a positive number of days")
    if kind in LINK_REQUIRED:
        _bounded(msg)
    if kind == "adjudication":
        check_decision(msg.get("decision"), msg.get("action"), msg.get("reason"))
        verification.check(msg.get("verifications"))
    return msg


def _bounded(msg: dict[str, Any]) -> None:
    """Link messages are small: each known text field is capped, and only a few fields may be present."""
    if len(msg) > 32:
        raise messages.MessageError(f"{msg['type']} has too many fields")
    for key, limit in MAX_TEXT.items():
        v = msg.get(key)
        if v is not None and not isinstance(v, str):
            raise messages.MessageError(f"{msg['type']}.{key} is not text")
        if v is not None and len(v) > limit:
            raise messages.MessageError(f"{msg['type']}.{key} is longer than {limit} characters")


def _need_int(msg: dict[str, Any], key: str) -> None:
    if not isinstance(msg.get(key), int) or isinstance(msg.get(key), bool) or msg[key] < 0:
        raise messages.MessageError(f"{msg.get('type')}.{key} missing or not a non-negative integer")


def check_decision(decision: object, action: object, reason: object) -> None:
    if not isinstance(decision, str) or decision not in DECISIONS:  # a list would fail as unhashable
        raise messages.MessageError(f"decision must be one of {sorted(DECISIONS)}")
    if decision == "confirm" and action not in ACTIONS:
        raise messages.MessageError(f"a confirmation needs an action: one of {', '.join(ACTIONS)}")
    if decision == "dismiss" and reason not in REASONS:
        raise messages.MessageError(f"a dismissal needs a reason: one of {', '.join(REASONS)}")


HELLO_VERSIONS = {"box": 2, "console": 1}  # the box's hello v2 says how long it keeps alerts (retention_days)


def hello(role: str, **fields: Any) -> bytes:
    """A hello; the box's (version 2) must say ``retention_days``, the period its alerts are kept for."""
    return messages.dumps({"v": HELLO_VERSIONS[role], "type": "hello", "role": role, **fields})


def ack(**fields: Any) -> bytes:
    return messages.dumps({"v": messages.VERSION, "type": "ack", **fields})


def pruned(*, box_id: str, alert_ids: list[str], retention_days: float, time: str | None = None) -> dict[str, Any]:
    """Console -> box: "I deleted my copies (crops and details) of these alerts of yours"."""
    import uuid

    return {"v": messages.VERSION, "type": "pruned", "box_id": box_id, "prune_id": str(uuid.uuid4()),
            "alert_ids": list(alert_ids), "retention_days": retention_days, "time": time or messages.utcnow()}


def adjudication(*, alert_id: str, box_id: str, decision: str, operator: str, action: str = "",
                 reason: str = "", note: str = "", seconds_to_decision: float = 0.0,
                 time: str | None = None, decision_id: str = "", verifications: list[dict[str, str]] | None = None,
                 not_counted: str = "") -> dict[str, Any]:
    """Console -> box: an operator's decision on an encounter (its first alert). ``decision_id`` names this
    decision (the box echoes it in its ack); ``verifications``: who verified it (edge/alerts/verification.py);
    ``not_counted``: the console did not count it, and why (a decision that lost a race): the box records
    it as refused and never counts it."""
    check_decision(decision, action or None, reason or None)
    msg = {"v": messages.VERSION, "type": "adjudication", "alert_id": alert_id, "box_id": box_id,
           "decision": decision, "action": action if decision == "confirm" else "",
           "reason": reason if decision == "dismiss" else "", "note": note, "operator": operator,
           "seconds_to_decision": round(float(seconds_to_decision), 1), "time": time or messages.utcnow()}
    extra = {"decision_id": decision_id, "verifications": verifications, "not_counted": not_counted}
    return {**msg, **{k: v for k, v in extra.items() if v}}
