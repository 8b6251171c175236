"""The tally of the attack suite: every test here is one attack; passed = refused or detected.

Printed at the end of any run that collected attacks; also written as JSON to ``$EDGE_ATTACK_TALLY``
when that variable names a file (docs/threat-model.md quotes the figures).
"""

from __future__ import annotations

import json
import os
from collections import Counter

_TALLY: dict[str, Counter] = {}


def _area(nodeid: str) -> str:
    name = nodeid.split("::")[0].rsplit("/", 1)[-1]
    return name.removeprefix("test_").removesuffix(".py")


def pytest_runtest_logreport(report):
    if "tests/attacks/" not in report.nodeid.replace("\\", "/") and not report.nodeid.startswith("attacks/"):
        return
    c = _TALLY.setdefault(_area(report.nodeid), Counter())
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if report.passed:
            c["tried"] += 1
            c["refused"] += 1
        elif report.skipped:
            c["skipped"] += 1
        else:
            c["tried"] += 1
            c["failures"] += 1


def totals() -> Counter:
    total = Counter()
    for c in _TALLY.values():
        total.update(c)
    return total


def pytest_terminal_summary(terminalreporter):
    if not _TALLY:
        return
    tr = terminalreporter
    tr.section("attack suite tally")
    for area in sorted(_TALLY):
        c = _TALLY[area]
        tr.write_line(f"{area:10s} tried {c['tried']:3d}  refused {c['refused']:3d}  failures {c['failures']:3d}"
                      + (f"  skipped {c['skipped']}" if c["skipped"] else ""))
    t = totals()
    tr.write_line(f"{'total':10s} tried {t['tried']:3d}  refused {t['refused']:3d}  failures {t['failures']:3d}")
    out = os.environ.get("EDGE_ATTACK_TALLY")
    if out:
        with open(out, "w") as f:
            json.dump({"areas": {a: dict(c) for a, c in sorted(_TALLY.items())}, "total": dict(t)}, f, indent=1)
