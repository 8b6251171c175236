"""The box's running accuracy, from what its operators decide about its alerts.

The daemon keeps its counters in one typed :class:`Counts` (``daemon.counts``): ``encodings`` (faces that
reached the matcher), ``alerts``, ``sightings``, ...; :meth:`Counts.decide` adds each operator decision. An
alert is an **encounter** (one listed person's passage, however many sightings it has) and the box
takes one decision per encounter, so N decisions are N here whatever the sightings.
:func:`summary` turns them into

- the false-alert rate: alerts dismissed as "not the person" / all decided alerts, with a 95 %
  Wilson interval (20 decisions say little; the interval shows how little);
- alerts per 1,000 faces processed, and faces per false alert (the NPL study's "1 in 6,000");
- a warning when the rate has drifted above the configured target, once there are enough decisions.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

MIN_DECISIONS = 20  # below this many decided alerts the rate is shown but never warned about
NOT_THE_PERSON = "not the person"


@dataclass
class Counts:
    """The daemon's running counters (memory only): what ``edge status`` and the live accuracy read."""

    encodings: int = 0  # faces that reached the matcher
    alerts: int = 0  # encounters opened: each one alert to decide
    sightings: int = 0  # every alert message published
    matches_suppressed: int = 0
    bad_stage_messages: int = 0
    other_model: int = 0  # descriptors of another face model than the list's: never compared
    not_authorised: int = 0  # encodings outside every deployment window
    adjudications: int = 0
    decisions_confirmed: int = 0
    decisions_not_the_person: int = 0
    decisions_dismissed_other: int = 0

    def decide(self, outcome: str, reason: str = "") -> None:
        """Count one operator decision: ``outcome`` "confirm" or "dismiss" (with the dismissal ``reason``)."""
        outcome = outcome.strip().lower()
        if outcome in ("confirm", "confirmed"):
            self.decisions_confirmed += 1
        elif outcome in ("dismiss", "dismissed"):
            if reason.strip().lower() == NOT_THE_PERSON:
                self.decisions_not_the_person += 1
            else:
                self.decisions_dismissed_other += 1
        else:
            raise ValueError(f"unknown decision outcome {outcome!r}")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of the proportion k/n; (0, 1) when n is 0."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summary(counts: Counts, target: float, min_decisions: int = MIN_DECISIONS,
            expected: dict[str, Any] | None = None) -> dict[str, Any]:
    """The live accuracy figures from the daemon's counters (JSON-able, for ``edge status``).

    ``expected``: the list's operating point (``OperatingPoint.to_json()``): its expected false-alert
    rate per face is shown next to the rate measured from the operators' decisions.
    """
    faces, alerts, false = counts.encodings, counts.alerts, counts.decisions_not_the_person
    decided = counts.decisions_confirmed + false + counts.decisions_dismissed_other
    rate = false / decided if decided else None
    lo, hi = wilson(false, decided)
    warning = ""
    if rate is not None and decided >= min_decisions and rate > target:
        warning = (f"false-alert rate {rate:.1%} is above the target {target:.1%} "
                   f"({false} of {decided} decided alerts were not the person): review the threshold "
                   f"and camera placement, and run 'edge eval' on recent images")
    return {
        "faces": faces,
        "alerts": alerts,
        "decided": decided,
        "undecided": max(0, alerts - decided),
        "false_alerts": false,
        "false_alert_rate": None if rate is None else round(rate, 4),
        "false_alert_rate_ci95": [round(lo, 4), round(hi, 4)],
        "target": target,
        "alerts_per_1000_faces": round(1000 * alerts / faces, 3) if faces else None,
        "faces_per_false_alert": round(faces / false) if false else None,
        "expected_fpir": expected.get("expected_fpir") if expected else None,
        "measured_fpir": round(false / faces, 6) if faces else None,
        "operating": expected or None,
        "warning": warning,
    }


def figure(x: float) -> str:
    """A figure for people to read: whole numbers with thousands separators from 10 up, then 2 significant
    digits (530, 1,200, 4.2, 0.31), never a float's noise ("529.851")."""
    if x >= 10:
        return f"{round(x):,}"
    return f"{x:.2g}" if x > 0 else "0"


def _one_in(rate: float) -> str:
    return f"1 per {max(1, round(1 / rate)):,}" if rate > 0 else "none"


def format_line(s: dict[str, Any]) -> str:
    """One line for ``edge status`` and the console, plus the warning on its own line when raised."""
    text = ""
    if s.get("expected_fpir") is not None:
        op = s.get("operating") or {}
        text = (f"expected false alerts: {_one_in(s['expected_fpir'])} faces ({op.get('rule', '?')} rule, "
                f"list of {op.get('list_size', '?')}); measured: "
                + (f"{_one_in(s['measured_fpir'])} faces" if s.get("measured_fpir") else "none yet")
                + f" ({s['false_alerts']} not the person of {s['faces']} faces)\n")
    if s["decided"]:
        lo, hi = s["false_alert_rate_ci95"]
        text += (f"false alerts: {s['false_alerts']} of {s['decided']} decided ({s['false_alert_rate']:.1%}, "
                f"95% CI {lo:.1%}-{hi:.1%}; target {s['target']:.0%})")
    else:
        text += f"false alerts: no decided alerts yet (target {s['target']:.0%})"
    if s["alerts_per_1000_faces"] is not None:
        text += f"; {figure(s['alerts_per_1000_faces'])} alerts per 1,000 faces"
    if s["faces_per_false_alert"]:
        text += f", 1 false alert per {s['faces_per_false_alert']:,} faces"
    if s["undecided"]:
        text += f"; {s['undecided']} awaiting a decision"
    return text + (f"\nWARNING: {s['warning']}" if s["warning"] else "")
