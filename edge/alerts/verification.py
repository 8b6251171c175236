"""Who verified a decision: the two-person rule (issue 26; EU AI Act Art. 14(5): no action on a remote
biometric identification unless two competent people have separately verified it).

A box's policy is ``alerts.verification`` (``"one"`` or ``"two"``), made ``"two"`` by a deployment
window that requires it. Under ``"two"`` an operator's confirmation is a *first verification*; it counts
only when a second, different operator, who did not see the first one's choice, verifies it. If the two
disagree, a supervisor (a third person) decides. A dismissal by the first operator ends the encounter
(no action is taken on it).

An adjudication (docs/alerts.md) carries the people in ``verifications``: a list of at most three
``{"operator", "decision", "action", "reason", "time", "role"}`` with ``role`` one of ``first``,
``second``, ``supervisor``. The console builds it; the box checks it (:func:`refusal`) and records it
in the audit log with the decision.
"""

from __future__ import annotations

from typing import Any

from edge.alerts import messages

POLICIES = ("one", "two")
ROLES = ("first", "second", "supervisor")
FIELDS = {"operator": 64, "decision": 16, "action": 32, "reason": 32, "time": 40, "role": 16}


def entry(operator: str, decision: str, action: str, reason: str, time: str, role: str) -> dict[str, str]:
    return {"operator": operator, "decision": decision, "action": action if decision == "confirm" else "",
            "reason": reason if decision == "dismiss" else "", "time": time, "role": role}


def check(value: Any) -> None:
    """An adjudication's ``verifications`` field, if present: MessageError if malformed."""
    if value is None:
        return
    if not isinstance(value, list) or not 1 <= len(value) <= len(ROLES):
        raise messages.MessageError("adjudication.verifications must be a list of 1 to 3 verifications")
    for v in value:
        if not isinstance(v, dict) or set(v) - set(FIELDS):
            raise messages.MessageError("adjudication.verifications holds something that is not a verification")
        for key, limit in FIELDS.items():
            if not isinstance(v.get(key, ""), str) or len(v.get(key, "")) > limit:
                raise messages.MessageError(f"adjudication.verifications.{key} is not text of at most {limit}")
        if v.get("role") not in ROLES or v.get("decision") not in ("confirm", "dismiss") or not v.get("operator"):
            raise messages.MessageError("adjudication.verifications: each needs an operator, a decision and a role")


def refusal(policy: str, msg: dict) -> str:
    """Why a box whose policy is ``policy`` does not count this adjudication ("" if it counts)."""
    if policy != "two":
        return ""
    people = msg.get("verifications") or []
    by_role = {v["role"]: v for v in people}
    first, second, sup = by_role.get("first"), by_role.get("second"), by_role.get("supervisor")
    if msg["decision"] == "dismiss" and first and not second and first["decision"] == "dismiss" \
            and first["operator"] == msg["operator"]:
        return ""  # the first operator found it is not the person: no action is taken
    if not (first and second) or first["operator"] == second["operator"]:
        return "two different operators must verify a confirmation on this box (alerts.verification = two)"
    if first["decision"] == second["decision"] == msg["decision"] and not sup:
        return ""
    if sup and sup["operator"] not in (first["operator"], second["operator"]) and sup["decision"] == msg["decision"] \
            and sup["operator"] == msg["operator"] and first["decision"] != second["decision"]:
        return ""
    return "the two verifications disagree: only a supervisor who was neither of them can decide this encounter"


def summary(people: list[dict]) -> str:
    """The people in words: "alice confirmed (arrested) at T; bob confirmed (arrested) at T"."""
    words = {"confirm": "confirmed", "dismiss": "dismissed"}
    return "; ".join(f"{v['operator']} ({v['role']}) {words.get(v['decision'], v['decision'])}"
                     f" ({v.get('action') or v.get('reason') or '-'}) at {v.get('time', '')}" for v in people)
