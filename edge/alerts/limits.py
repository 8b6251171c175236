"""What one registered console may make the box do (edge/alerts/publisher.py applies these).

A console key is trusted, not trusted to behave: its messages are rate-limited (``Bucket``), the audit records it
can cause are budgeted (``RecordBudget``: connections, prune notices, refused decisions; its accepted decisions
are not limited, one per encounter), trust is read again while it is connected (``Trust``: a key removed from the
trust store stops its console at once), and a decision is refused in words when its time to decide cannot be
true or the box cannot record it (``implausible_time``, ``unrecorded``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge import codec, identity
from edge.errors import EdgeError

RATE, BURST = 50.0, 200.0  # console messages per second, sustained and at once, per console key
# audit records one console key can cause: a burst, then so many an hour; the rest are counted in the next
# record it may cause (``suppressed``)
RECORDS_BURST, RECORDS_PER_HOUR = 60, 60
TRUST_RECHECK_S = 1.0  # the trust store is read again at least this often (and whenever its folder changes)


class Bucket:
    """A token bucket: ``take()`` is False once a console sends faster than RATE (BURST at once)."""

    def __init__(self, rate: float = RATE, burst: float = BURST):
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class RecordBudget:
    """Per console key: at most RECORDS_BURST records at once and RECORDS_PER_HOUR after; the rest counted."""

    def __init__(self, record: Callable[..., Any], max_keys: int):
        self.write, self.max_keys = record, max_keys
        self._keys: dict[str, list] = {}  # console -> [Bucket, records not written since its last one]

    def record(self, who: str, kind: str, **fields: Any) -> bool:
        budget = self._keys.get(who)
        if budget is None:
            if len(self._keys) >= self.max_keys:
                self._keys.clear()
            budget = self._keys[who] = [Bucket(RECORDS_PER_HOUR / 3600.0, RECORDS_BURST), 0]
        if not budget[0].take():
            budget[1] += 1
            return False
        if budget[1]:
            fields["suppressed"] = int(fields.get("suppressed") or 0) + budget[1]
        self.write(kind, **fields)
        budget[1] = 0
        return True


class Trust:
    """The trusted console keys, read again whenever the trust folder changes and every TRUST_RECHECK_S."""

    def __init__(self, state_dir: Path):
        self.folder, self.state_dir = Path(state_dir) / "trust" / "consoles", state_dir
        self._at, self._mtime, self._keys = -1e9, -1, set[str]()

    def has(self, console: str) -> bool:
        try:
            mtime = self.folder.stat().st_mtime_ns
        except OSError:
            mtime = 0
        now = time.monotonic()
        if mtime != self._mtime or now - self._at > TRUST_RECHECK_S:
            self._at, self._mtime, self._keys = now, mtime, set(identity.consoles(self.state_dir))
        return console in self._keys


def implausible_time(msg: dict, alert: dict) -> str:
    """Why the decision's ``seconds_to_decision`` cannot be true ("" if it can): a finite number from 0 up to the
    time since the box raised the alert (a minute's leeway for clocks)."""
    s = msg.get("seconds_to_decision", 0.0)
    try:
        since = time.time() - codec.parse_time(alert.get("time")).timestamp() + 60.0
    except EdgeError:
        since = 366 * 86400.0
    if isinstance(s, bool) or not isinstance(s, int | float) or not (math.isfinite(s) and 0 <= s <= since):
        return (f"seconds_to_decision {str(s)[:24]} is not a time the operator could have taken "
                f"(0 to {since:.0f} s since the alert)")
    return ""


def unrecorded(exc: Exception) -> str:
    """The refusal an operator reads when the box could not record the decision (it is not counted)."""
    what = str(exc)
    if ".note" in what:
        what = "the note looks like encoded data (a pasted token, key or image?) or is too long for the audit log"
    return f"not recorded, so not counted: {what[:200]}; decide again"


def held_ids(outbox: Any, console: str, alert_ids: list[str], seen: set[str]) -> list[str]:
    """Of the alert ids a console says it deleted, those this box sent to that console (held, or since deleted
    by retention here), each once and not already in ``seen`` (what it reported before in this run): the ids a
    prune notice may put in the log."""
    if len(seen) > 100_000:
        seen.clear()
    held = []
    for a in dict.fromkeys(alert_ids):
        if a not in seen and outbox.sent_alert(console, a):
            held.append(a)
    return held
