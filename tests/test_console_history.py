"""The console's history filters, pages, CSV export and shift summary (edge/console/shift.py) on a real
console store: alerts received as a link stores them, decided as the web page decides them."""

import csv
import io
import time

import pytest

from edge.alerts import messages, protocol
from edge.console import shift
from edge.console.store import Store


def alert(i: int, camera: str, ref: str) -> dict:
    return messages.alert(box_id="box-1", camera_id=camera, track_id=f"t{i}", ref=ref, distance=0.4,
                          threshold=0.6, crop_jpeg=b"\xff\xd8", reference_jpeg=b"\xff\xd8", category="wanted")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "console.db")
    for i in range(30):
        a = alert(i, "cam-a" if i % 2 else "cam-b", "=HYPERLINK(\"x\")" if i == 7 else f"PN-{i:03d}")
        s.receive("tcp://box", a)
        if i % 3 == 0:
            adj = protocol.adjudication(alert_id=a["alert_id"], box_id="box-1", decision="confirm",
                                        operator="alice" if i % 2 else "bob", action="arrested", reason="",
                                        note=f"-note {i}", seconds_to_decision=2.0)
            s.decide([a["alert_id"]], [adj])
    yield s
    s.close()


def test_filters_and_pages(store):
    p = shift.page(store, {"per_page": "8"})
    assert (p["total"], p["pages"], len(p["alerts"]), p["page"]) == (30, 4, 8, 1)
    assert shift.page(store, {"per_page": "8", "page": "4"})["alerts"][-1]["ref"] == "PN-000"  # oldest last
    assert shift.page(store, {"per_page": "8", "page": "99"})["page"] == 4
    assert shift.page(store, {"ref": "pn-01"})["total"] == 10
    assert shift.page(store, {"operator": "bob"})["total"] == 5  # decided on cam-b (even i, multiple of 3)
    assert shift.page(store, {"camera": "cam-a", "outcome": "confirmed"})["total"] == 5
    assert shift.page(store, {"since": str(time.time() + 60)})["total"] == 0
    assert shift.page(store, {"until": str(time.time() + 60)})["total"] == 30
    with pytest.raises(shift.BadQuery, match="page must be"):
        shift.page(store, {"page": "0"})
    with pytest.raises(shift.BadQuery, match="since must be a number"):
        shift.page(store, {"since": "yesterday"})


def test_csv_export_is_spreadsheet_safe(store):
    rows = list(csv.DictReader(io.StringIO(shift.to_csv(shift.filtered(store, {})))))
    assert len(rows) == 30 and list(rows[0]) == list(shift.CSV_COLUMNS)
    assert next(r for r in rows if "HYPERLINK" in r["ref"])["ref"].startswith("'=")  # never a formula
    decided = [r for r in rows if r["outcome"] == "confirmed"]
    assert len(decided) == 10 and all(r["note"].startswith("'-note") and r["action"] == "arrested" for r in decided)
    assert all(r["decided_at"].endswith("Z") and float(r["seconds_to_decision"]) >= 0 for r in decided)


def test_shift_summary_counts_each_operators_decisions(store):
    sessions = {"t1": ("alice", time.time() + 60, "c"), "t2": ("carol", time.time() - 1, "c"),
                "t3": ("alice", time.time() + 90, "c")}
    s = shift.summary(store, sessions)
    assert s["logged_in"] == ["alice"]  # carol's session has expired
    assert s["decisions"] == {"alice": 5, "bob": 5}
    assert shift.summary(store, sessions, now=time.time() + 13 * 3600)["decisions"] == {}  # another shift
