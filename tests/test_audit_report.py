"""The oversight report: its counts equal the alerts and decisions recorded; html is self-contained."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from edge import identity
from edge.audit import report
from edge.audit.log import AuditLog
from edge.audit.verify import verify_log
from edge.cli import cli

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC).timestamp()


@pytest.fixture
def day(tmp_path):
    """One recorded day: a deployment, a watch list, 7 alerts on two cameras, decisions, a camera fault."""
    state = tmp_path / "state"
    identity.create(state, "box-a")
    now = [T0]
    log = AuditLog(state, clock=lambda: now[0])

    def at(minutes, kind, **fields):
        now[0] = T0 + minutes * 60
        log.append(kind, **fields)

    at(0, "service_start", cameras=["cam1", "cam2"])
    at(1, "deployment_loaded", deployment_id="dep-1", issuer="SPOC Met", location="King's Cross",
       cameras=["cam1", "cam2"], start="2026-11-20T08:00:00Z", end="2026-11-20T20:00:00Z", purpose="wanted persons")
    at(2, "deployment_start", deployment_id="dep-1", location="King's Cross", cameras=["cam1", "cam2"])
    at(3, "watchlist_loaded", issuer="SPOC Met", list_id="L-7", entries=3, refs=["WL-1", "WL-2", "WL-3"],
       categories=["wanted"])
    decisions = {  # alert index -> (decision, reason, action, seconds)
        0: ("confirm", "match confirmed", "stopped", 12.0),
        1: ("dismiss", "not the person", "none", 8.0),
        2: ("dismiss", "not_the_person", "none", 20.0),
        3: ("dismiss", "not actionable", "none", 5.0),
        5: ("confirm", "match confirmed", "arrested", 30.0),
    }
    for i in range(7):
        cam = "cam1" if i < 5 else "cam2"
        at(10 + 30 * i, "alert", alert_id=f"a{i}", camera_id=cam, time="", ref="WL-1", distance=0.45)
        if i in decisions:
            d, reason, action, secs = decisions[i]
            at(10 + 30 * i + 1, "adjudication", alert_id=f"a{i}", operator="op1", decision=d, action=action,
               reason=reason, seconds_to_decision=secs)
    at(100, "camera_fault", camera_id="cam2", reason="stream lost")
    at(130, "camera_back", camera_id="cam2")
    at(200, "faces_processed", camera_id="cam1", faces=1200, encodings=400)
    at(200, "faces_processed", camera_id="cam2", faces=800, encodings=300)
    at(300, "adjudication", alert_id="a0", operator="op2", decision="confirm", action="arrested",
       reason="match confirmed", seconds_to_decision=12.0)  # re-decided: the last decision counts
    at(600, "watchlist_purged", list_id="L-7", issuer="SPOC Met", reason="expired", time="2026-11-20T18:00:00Z")
    at(601, "deployment_end", deployment_id="dep-1", reason="window closed")
    at(660, "service_stop")
    log.close()
    return state


def test_counts_equal_the_alerts_and_decisions_recorded(day):
    records = verify_log(day).records
    rep = report.build(records, datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
    alerts = [r for r in records if r["kind"] == "alert"]
    assert rep["alerts"]["total"] == len(alerts) == 7
    assert rep["alerts"]["per_camera"] == {"cam1": 5, "cam2": 2}
    assert (rep["alerts"]["confirmed"], rep["alerts"]["dismissed"], rep["alerts"]["unanswered"]) == (2, 3, 2)
    assert rep["actions"] == {"arrested": 2}  # what followed the confirmed alerts
    assert rep["false_alert_rate"] == {"false_alerts": 2, "decided": 5, "rate": 0.4}
    assert rep["time_to_decision_s"]["median"] == 12.0 and rep["time_to_decision_s"]["max"] == 30.0
    assert rep["faces_processed"] == {"total": 2000, "per_camera": {"cam1": 1200, "cam2": 800}, "encodings": 700,
                                      "not_authorised": 0}
    up = rep["camera_uptime"]
    assert up["cam1"]["uptime"] == 1.0
    assert up["cam2"]["running_s"] == 660 * 60 and up["cam2"]["down_s"] == 30 * 60 and up["cam2"]["faults"] == 1
    (wl,) = rep["watchlists"]
    assert (wl["list_id"], wl["issuer"], wl["entries"], wl["categories"]) == ("L-7", "SPOC Met", 3, ["wanted"])
    assert wl["deleted"] and wl["receipt"] == "2026-11-20T18:00:00Z-L-7"
    (dep,) = rep["deployments"]
    assert dep["location"] == "King's Cross" and dep["issuer"] == "SPOC Met" and len(dep["activated"]) == 1
    assert sum(b["alerts"] for b in rep["timeline"]["buckets"]) == 7
    assert sum(b["confirmed"] for b in rep["timeline"]["buckets"]) == 2


def test_period_selects_alerts(day):
    records = verify_log(day).records
    # 08:00 .. 09:00 holds alerts a0 (08:10) and a1 (08:40)
    rep = report.build(records, datetime(2026, 11, 20, 8, tzinfo=UTC), datetime(2026, 11, 20, 9, tzinfo=UTC))
    assert rep["alerts"]["total"] == 2
    assert rep["alerts"]["confirmed"] == 1 and rep["alerts"]["dismissed"] == 1


def test_cli_formats(day, tmp_path):
    runner = CliRunner()
    base = ["audit", "report", "--state-dir", str(day), "--from", "2026-11-20", "--to", "2026-11-20"]
    text = runner.invoke(cli, base)
    assert text.exit_code == 0, text.output
    assert "confirmed: 2" in text.output and "2/5 = 40.0%" in text.output and "Audit log: OK" in text.output
    js = runner.invoke(cli, [*base, "--format", "json"])
    assert json.loads(js.output)["alerts"]["total"] == 7
    out = tmp_path / "report.html"
    h = runner.invoke(cli, [*base, "--format", "html", "-o", str(out)])
    assert h.exit_code == 0, h.output
    page = out.read_text()
    assert "<svg" in page and page.count('class="confirmed"') >= 1
    assert not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # no external assets
    assert "King&#x27;s Cross" in page
