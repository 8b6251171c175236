"""Retention: alert crops and details go after the period (clock injected), each deletion logged."""

from __future__ import annotations

from datetime import UTC, datetime

from click.testing import CliRunner

from edge import identity
from edge.alerts import messages
from edge.audit.log import AuditLog
from edge.audit.retention import save_alert, stored_alerts, sweep
from edge.audit.verify import verify_log
from edge.cli import cli

DAY = 86400.0
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC).timestamp()


def alert_at(t: float, ref: str = "WL-1") -> dict:
    a = messages.alert(box_id="box-a", camera_id="cam1", track_id="t1", ref=ref, distance=0.42, threshold=0.6,
                       crop_jpeg=b"\xff\xd8\xff\xe0crop", reference_jpeg=b"\xff\xd8ref")
    a["time"] = datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")
    return a


def files(state):
    return sorted(p.name for p in (state / "alerts").rglob("*") if p.is_file())


def test_alerts_are_kept_for_the_period_then_deleted_and_logged(tmp_path):
    state = tmp_path / "state"
    identity.create(state, "box-a")
    now = [T0]
    log = AuditLog(state, clock=lambda: now[0])
    old, young = alert_at(T0), alert_at(T0 + 20 * DAY)
    for a in (old, young):
        save_alert(state, a)
    assert len(files(state)) == 4
    stored = stored_alerts(state)
    assert all("crop_jpeg" not in s and "reference_jpeg" not in s for s in stored)  # details hold no images

    now[0] = T0 + 30 * DAY  # within the period for both
    assert sweep(state, 31, record=log.append, clock=lambda: now[0]) == []
    assert len(files(state)) == 4

    now[0] = T0 + 31 * DAY + 60  # the first is now older than 31 days
    assert sweep(state, 31, record=log.append, clock=lambda: now[0]) == [old["alert_id"]]
    assert files(state) == sorted([f"{young['alert_id']}.jpg", f"{young['alert_id']}.json"])

    now[0] = T0 + 52 * DAY
    assert sweep(state, 31, record=log.append, clock=lambda: now[0]) == [young["alert_id"]]
    assert files(state) == []
    assert list((state / "alerts").iterdir()) == []  # empty day folders are removed too

    log.close()
    res = verify_log(state)
    assert res.ok, res.summary()
    deletions = [r["data"] for r in res.records if r["kind"] == "retention_deleted"]
    assert [d["alert_id"] for d in deletions] == [old["alert_id"], young["alert_id"]]
    assert deletions[0]["files"] == 2 and deletions[0]["age_days"] >= 31


def test_retention_command_uses_the_period(tmp_path):
    state = tmp_path / "state"
    identity.create(state, "box-a")
    a = alert_at(datetime.now(UTC).timestamp() - 3 * DAY)
    save_alert(state, a)
    runner = CliRunner()
    r = runner.invoke(cli, ["audit", "retention", "--state-dir", str(state)])
    assert r.exit_code == 0 and "deleted 0" in r.output
    r = runner.invoke(cli, ["audit", "retention", "--state-dir", str(state), "--days", "2"])
    assert r.exit_code == 0 and "deleted 1" in r.output
    assert files(state) == []
    kinds = [r["kind"] for r in verify_log(state).records]
    assert "retention_deleted" in kinds
