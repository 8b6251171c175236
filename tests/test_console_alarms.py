"""The console's banners and event sentences (edge/console/alarms.py) from link states as BoxLink.info()
gives them: what is an alarm, what is a warning, and every raw event name said in words."""

from datetime import UTC, datetime

from edge.console import alarms

NOW = 1_800_000_000.0


def link(**kw):
    base = {"endpoint": "tcp://10.0.0.5:5599", "box_id": "box-a", "state": "connected", "since": NOW - 60,
            "cameras": {"cam1": "up"}, "matching": {"on": True, "why": "", "list_id": "L1", "entries": 4,
                                                     "not_after": None, "not_authorised": []}}
    return {**base, **kw}


def iso(t):
    return datetime.fromtimestamp(t, UTC).isoformat()


def test_a_healthy_box_has_no_banner():
    assert alarms.banners([link()], NOW) == []


def test_each_failure_is_a_banner_in_words():
    got = alarms.banners([
        link(state="disconnected"),
        link(box_id="box-b", cameras={"cam1": "down", "cam2": "up"}),
        link(box_id="box-c", matching={"on": False, "why": "no deployment window is open", "not_authorised": []}),
        link(box_id="box-d", matching={"on": True, "list_id": "L4", "not_after": iso(NOW + 1500),
                                       "not_authorised": []}),
        link(box_id="box-e", matching={"on": True, "list_id": "L5", "not_after": iso(NOW + 7200),
                                       "not_authorised": ["cam2"]}),
    ], NOW)
    texts = [(b["level"], b["text"]) for b in got]
    assert texts[0][0] == "alarm" and "Box box-a is DISCONNECTED since" in texts[0][1]
    assert ("alarm", "Camera cam1 on box box-b is DOWN: nobody passing it is being checked.") in texts
    assert ("alarm", "Box box-c is NOT matching: no deployment window is open.") in texts
    assert any(lvl == "warn" and "box-d expires in 25 min" in t for lvl, t in texts)
    assert any(lvl == "warn" and "box-e is NOT matching on cam2" in t for lvl, t in texts)
    assert not any("box-e expires" in t for _, t in texts)  # two hours left: not yet
    assert [b["level"] for b in got] == sorted((b["level"] for b in got), key=lambda lv: lv != "alarm")
    assert len({b["key"] for b in got}) == len(got)


def test_raw_event_names_become_sentences():
    s = alarms.sentence
    assert s({"event": "watchlist_refused", "file": "usb/a.wlb", "reason": "signed by an unknown issuer"}) == (
        "Watch list file usb/a.wlb was REFUSED: signed by an unknown issuer. The list in force (if any) stays.")
    assert s({"event": "camera_down", "camera_id": "cam1", "reason": "stream ended"}) == \
        "Camera cam1 went DOWN: stream ended."
    assert s({"event": "not_authorised", "camera_id": "cam2"}).startswith("Camera cam2 is NOT matching")
    assert s({"event": "authorised", "camera_id": "cam2", "deployment": "op-lantern"}) == \
        "Camera cam2 is matching: deployment window op-lantern is open."
    assert s({"event": "authorised", "camera_id": "cam2", "deployment": ""}) == "Camera cam2 is matching."
    assert s({"event": "link_down", "box_id": "box-a"}).startswith("LOST the connection to box box-a")
    assert s({"event": "something_new", "box_id": "b", "camera_id": "cam1"}) == "Something new: camera id cam1."
    for name in alarms.SENTENCES:
        assert "_" not in s({"event": name, "box_id": "b"}).split(":")[0]
