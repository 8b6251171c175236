"""The appliance end to end: real video in two camera processes, real ZeroMQ out.

One daemon run (about 17 s) serves every assertion in this module: camera A plays the Hamilton clip
(Lin-Manuel Miranda, on the list), camera B a slideshow of five people (only Alex Lacamoire is on the
list), camera C points at a source that does not exist.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import (
    ALEX,
    ALEX_REF,
    CAMERA_B,
    LIN,
    LIN_REF,
    Subscriber,
    edge_cmd,
    hamilton_box,
    running_daemon,
)

from edge.alerts import messages

CAMERA_B_FRAMES = 5 * (37 + 7)  # demo/make_media.py: 2.5 s of each person at 15 fps, then 0.5 s empty


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pipeline")
    cfg, endpoint, state = hamilton_box(tmp, {LIN_REF: LIN, ALEX_REF: ALEX}, (
        {"id": "cam-b", "source": CAMERA_B},
        {"id": "cam-c", "source": tmp / "no-such-camera.mp4"},
    ))
    sub = Subscriber(endpoint, state)
    before = None
    with running_daemon(cfg) as proc:
        # wait for the daemon's control socket, then snapshot the state dir
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and proc.poll() is None:
            r = subprocess.run(edge_cmd("status", "--config", str(cfg), "--json", "--timeout", "1"),
                               capture_output=True, text=True)
            if r.returncode == 0:
                status = json.loads(r.stdout)
                break
        assert status is not None, (tmp / "daemon.log").read_text()
        before = {p: p.stat().st_mtime for p in state.rglob("*")}
        sub.collect(18)
        deadline = time.monotonic() + 30  # camera B's five people (15 s of clip) have all been shown
        while True:
            r = subprocess.run(edge_cmd("status", "--config", str(cfg), "--json"), capture_output=True, text=True)
            final = json.loads(r.stdout)
            if final["cameras"]["cam-b"]["stats"].get("frames_read", 0) >= CAMERA_B_FRAMES:
                break
            assert time.monotonic() < deadline, final["cameras"]["cam-b"]
            time.sleep(0.5)
        # what was counted has arrived (at-least-once); stop listening before the shutdown drain
        sub.collect(5, until=lambda m: sum(x["type"] == "alert" for x in m) >= final["sightings"])
        sub.close()
        human = subprocess.run(edge_cmd("status", "--config", str(cfg)), capture_output=True, text=True).stdout
        after = {p: p.stat().st_mtime for p in state.rglob("*")}
    sub.close()
    return {"sub": sub, "status": final, "human": human, "before": before, "after": after, "state": state,
            "log": (tmp / "daemon.log").read_text()}


def test_both_listed_faces_alert_over_zeromq(run):
    alerts = run["sub"].alerts()
    by_cam = {(a["camera_id"], a["ref"]) for a in alerts}
    assert ("cam-a", LIN_REF) in by_cam, run["log"]
    assert ("cam-b", ALEX_REF) in by_cam, run["log"]
    for a in alerts:
        assert a["distance"] <= a["threshold"] and a["model"] == "yunet-mobilefacenet"  # the default model matched
        assert messages.unb64(a["crop_jpeg"])[:2] == b"\xff\xd8"  # a real JPEG of the live face
        assert messages.unb64(a["reference_jpeg"])[:2] == b"\xff\xd8"
        assert a["box_id"] == "test-box" and a["time"].endswith("Z")


def test_no_alert_for_faces_not_on_the_list(run):
    cam_b = [a for a in run["sub"].alerts() if a["camera_id"] == "cam-b"]
    stats = run["status"]["cameras"]["cam-b"]["stats"]
    # five different people were encoded on camera B; only Alex, once, is on the list
    assert stats["tracks_started"] >= 5 and stats["encodes"] >= 5
    assert [a["ref"] for a in cam_b] == [ALEX_REF]


def test_one_alert_per_track_not_per_frame(run):
    alerts = run["sub"].alerts()
    keys = [(a["track_id"], a["ref"]) for a in alerts]
    assert len(keys) == len(set(keys))
    cam_a = run["status"]["cameras"]["cam-a"]["stats"]
    n_a = sum(a["camera_id"] == "cam-a" for a in alerts)
    assert 1 <= n_a <= cam_a["tracks_started"]
    assert cam_a["faces"] > 5 * n_a  # faces were seen in many frames, alerted once per track
    assert cam_a["encodes"] <= 3 * cam_a["tracks_started"]


def test_a_failing_camera_is_retried_and_reported_while_others_work(run):
    cams = run["status"]["cameras"]
    assert cams["cam-c"]["state"] == "down"
    assert cams["cam-c"]["stats"]["reconnects"] >= 2
    assert cams["cam-a"]["stats"]["frames_read"] > 100
    downs = [m for m in run["sub"].messages if m["type"] == "event" and m["event"] == "camera_down"]
    assert any(m["camera_id"] == "cam-c" for m in downs)
    assert "cam-c" in run["human"] and "down" in run["human"]


def test_status_reports_health(run):
    st = run["status"]
    assert st["watchlist"]["entries"] == 2
    alerts = run["sub"].alerts()
    assert len(alerts) >= st["sightings"]  # all counted had arrived (more may come after the count)
    assert len({a["alert_id"] for a in alerts}) == len(alerts)
    a = st["cameras"]["cam-a"]["stats"]
    for key in ("frames_read", "frames_dropped", "faces", "tracks_started", "encodes", "lag_ms", "fps"):
        assert key in a
    assert st["latency_ms"]["n"] >= 1


def test_nothing_written_under_the_state_dir_for_faces(run):
    # besides what was there once running (keys, control socket, outbox, audit log), nothing new but
    # the audit log's own files (a checkpoint may come due during the run)
    new = {str(p.relative_to(run["state"])) for p in set(run["after"]) - set(run["before"])}
    assert all(n.startswith("audit/") for n in new), new
    for p in run["after"]:
        if p.is_file() and not p.name.startswith("outbox.db"):
            data = p.read_bytes()
            assert b"\xff\xd8\xff" not in data  # no JPEG anywhere


def test_the_outbox_holds_the_alerts_and_events_and_nothing_else(run):
    import sqlite3

    db = sqlite3.connect(run["state"] / "outbox.db")
    rows = db.execute("SELECT type, msg_id FROM messages").fetchall()
    db.close()
    assert {t for t, _ in rows} <= {"alert", "event"}
    # every alert of a match is there (durable before it was sent, including any made while shutting
    # down after the console stopped listening); no passer-by was stored
    stored = {i for t, i in rows if t == "alert"}
    assert {a["alert_id"] for a in run["sub"].alerts()} <= stored
    assert len(stored) >= run["status"]["sightings"]
