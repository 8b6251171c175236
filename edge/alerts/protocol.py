"""The link messages between a box and a console (docs/alerts.md): ``hello``, ``ack``, ``adjudication``.

Box messages (``alert``, ``event``) are defined in ``edge.alerts.messages``; on the wire the box adds
two envelope fields to each: ``outbox`` (the id of the box's outbox) and ``seq`` (its position in it),
plus ``prev`` (the position of the message sent before it on this link, so a console can tell a gap
from a resend).
"""

from __future__ import annotations

import json
from typing import Any

from edge.alerts import messages

DECISIONS = {"confirm", "dismiss"}
ACTIONS = ("approached", "no action", "arrested", "other")
REASONS = ("not the person", "poor image", "other")

LINK_REQUIRED: dict[str, dict[str, type]] = {
    "hello": {"role": str},
    "ack": {},
    "adjudication": {"alert_id": str, "box_id": str, "decision": str, "operator": str, "time": str},
}


def loads(data: bytes, allowed: set[str]) -> dict[str, Any]:
    """Parse one link frame: a box message (alert/event) or a link message; MessageError if malformed."""
    if len(data) > messages.MAX_MESSAGE_BYTES:
        raise messages.MessageError("message too large")
    try:
        peek = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise messages.MessageError("not JSON") from exc
    kind = peek.get("type") if isinstance(peek, dict) else None
    if not isinstance(kind, str) or kind not in allowed:
        raise messages.MessageError(f"unexpected message type {kind!r}")
    if kind in messages.REQUIRED:
        msg = messages.loads(data, allowed={kind})
        if kind in ("alert", "event") and ("seq" in msg or "outbox" in msg):
            _need_int(msg, "seq")
            _need_int(msg, "prev")
            if not isinstance(msg.get("outbox"), str):
                raise messages.MessageError(f"{kind}.outbox missing or not str")
        return msg
    if peek.get("v") != messages.VERSION:
        raise messages.MessageError(f"unsupported message version {peek.get('v')!r}")
    for key, tp in LINK_REQUIRED[kind].items():
        if not isinstance(peek.get(key), tp):
            raise messages.MessageError(f"{kind}.{key} missing or not {tp.__name__}")
    if kind == "ack" and not (("seq" in peek and isinstance(peek.get("outbox"), str)) or "alert_id" in peek):
        raise messages.MessageError("ack needs outbox and seq, or alert_id")
    if kind == "ack" and "seq" in peek:
        _need_int(peek, "seq")
    if kind == "hello" and peek["role"] == "console":
        _need_int(peek, "last_seq")
    if kind == "adjudication":
        check_decision(peek.get("decision"), peek.get("action"), peek.get("reason"))
    return peek


def _need_int(msg: dict, key: str) -> None:
    if not isinstance(msg.get(key), int) or isinstance(msg.get(key), bool) or msg[key] < 0:
        raise messages.MessageError(f"{msg.get('type')}.{key} missing or not a non-negative integer")


def check_decision(decision, action, reason) -> None:
    if decision not in DECISIONS:
        raise messages.MessageError(f"decision must be one of {sorted(DECISIONS)}")
    if decision == "confirm" and action not in ACTIONS:
        raise messages.MessageError(f"a confirmation needs an action: one of {', '.join(ACTIONS)}")
    if decision == "dismiss" and reason not in REASONS:
        raise messages.MessageError(f"a dismissal needs a reason: one of {', '.join(REASONS)}")


def hello(role: str, **fields: Any) -> bytes:
    return messages.dumps({"v": messages.VERSION, "type": "hello", "role": role, **fields})


def ack(**fields: Any) -> bytes:
    return messages.dumps({"v": messages.VERSION, "type": "ack", **fields})


def adjudication(*, alert_id: str, box_id: str, decision: str, operator: str, action: str = "",
                 reason: str = "", note: str = "", seconds_to_decision: float = 0.0,
                 time: str | None = None) -> dict[str, Any]:
    check_decision(decision, action or None, reason or None)
    return {"v": messages.VERSION, "type": "adjudication", "alert_id": alert_id, "box_id": box_id,
            "decision": decision, "action": action if decision == "confirm" else "",
            "reason": reason if decision == "dismiss" else "", "note": note, "operator": operator,
            "seconds_to_decision": round(float(seconds_to_decision), 1), "time": time or messages.utcnow()}
