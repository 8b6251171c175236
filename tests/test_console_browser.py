"""The operator console in a real browser (Debian's headless Chromium via Selenium), fed by a real box.

A real `edge run` plays the Hamilton clip (Lin-Manuel Miranda is on the list); a real `edge console`
receives the alert over CURVE. The operator logs in, sees the alert card with the live crop beside
the watch-list image, dismisses it, and the box records the adjudication.
"""

from __future__ import annotations

import pytest
from browserhelpers import LOGGED_IN_JS, chromium, log_in, needs_chromium, open_page, wait_js
from conftest import LIN_REF, hamilton_box, running_console, running_daemon, wait_for

from edge import identity
from edge.pipeline.control import request

pytestmark = needs_chromium
wait = wait_js


@pytest.fixture
def browser():
    driver = chromium("--window-size=1400,900")
    yield driver
    driver.quit()


@pytest.fixture
def box_and_console(tmp_path):
    cfg, endpoint, state = hamilton_box(tmp_path)
    identity.create(state, "test-box")  # what `edge provision` does
    with running_console(tmp_path / "console", {endpoint: state}) as url, running_daemon(cfg) as daemon:
        yield {"url": url, "daemon": daemon, "state": state, "control": f"ipc://{state / 'control.sock'}",
               "tmp": tmp_path}


def test_an_alert_from_the_real_pipeline_is_shown_and_dismissed_back_to_the_box(browser, box_and_console):
    env = box_and_console
    d = browser
    open_page(d, env["url"] + "/")
    assert "/login" in d.current_url  # the page needs an operator
    d.find_element("id", "name").send_keys("alice")
    d.find_element("id", "password").send_keys("wrong password")
    d.find_element("id", "login-button").click()
    wait(d, "return document.getElementById('error').textContent", 5, "the login error")
    d.find_element("id", "password").clear()
    d.find_element("id", "password").send_keys("correct horse battery")
    d.find_element("id", "login-button").click()
    wait(d, LOGGED_IN_JS, 10, "login")

    # the alert appears live (no reload), with the live crop beside the watch-list image, both loaded
    card_js = """const c = document.querySelector('.card');
        return c && c.querySelector('img.crop').naturalWidth > 0 && c.querySelector('img.reference').naturalWidth > 0
            && c.dataset.alertId;"""
    log = lambda: (env["tmp"] / "daemon.log").read_text() + (env["tmp"] / "console.log").read_text()  # noqa: E731
    try:
        alert_id = wait(d, card_js, 60, "an alert card with both images")
    except AssertionError:
        raise AssertionError(log()) from None
    card = d.find_element("css selector", f".card[data-alert-id='{alert_id}']")
    assert card.find_element("css selector", ".ref").text == LIN_REF
    assert "match" in card.find_element("css selector", ".confidence").text  # distance shown as confidence
    assert card.find_element("css selector", ".camera").text.startswith("cam-a")
    card.find_element("css selector", ".ref").click()  # a mouse user opens the compact card
    crop, ref = card.find_element("css selector", "img.crop"), card.find_element("css selector", "img.reference")
    assert crop.location["x"] < ref.location["x"] and abs(crop.location["y"] - ref.location["y"]) < 5  # beside
    wait(d, "return document.querySelector('.chip.cam') && document.querySelector('.chip.cam').textContent",
         10, "camera health at the top")

    # a mouse user clicks the compact card to open it; dismiss: a reason is required; the decision goes to the box
    card.find_element("css selector", ".ref").click()
    card.find_element("css selector", ".dismiss-btn").click()
    assert "reason" in card.find_element("css selector", ".error").text.lower()
    from selenium.webdriver.support.ui import Select

    Select(card.find_element("css selector", "select.reason")).select_by_visible_text("not the person")
    card.find_element("css selector", ".dismiss-btn").click()
    wait(d, f"return !document.querySelector(\".card[data-alert-id='{alert_id}']\")", 10, "the card to leave the queue")
    row_js = f"""const r = document.querySelector("#history tr[data-alert-id='{alert_id}']");
        return r && r.textContent.includes('dismissed') && r.textContent.includes('yes');"""
    open_page(d, env["url"] + "/history")  # the history has its own page
    wait(d, row_js, 15, "the history row marked dismissed and delivered to the box")

    recorded = {a["alert_id"]: a for a in request(env["control"], {"cmd": "adjudications"})["adjudications"]}
    assert alert_id in recorded, log()
    adj = recorded[alert_id]
    assert (adj["decision"], adj["reason"], adj["operator"]) == ("dismiss", "not the person", "alice")
    assert adj["seconds_to_decision"] >= 0

    # history filters by outcome and camera
    Select(d.find_element("id", "f-outcome")).select_by_visible_text("confirmed")
    wait(d, f"return !document.querySelector(\"#history tr[data-alert-id='{alert_id}']\")", 5, "the filter")
    Select(d.find_element("id", "f-outcome")).select_by_visible_text("dismissed")
    wait(d, f"return !!document.querySelector(\"#history tr[data-alert-id='{alert_id}']\")", 5, "the filter")


def test_a_decided_encounters_new_sighting_shows_decided_with_who_and_when_and_does_not_reopen(browser, tmp_path):
    """A box (the daemon in this process, fed as its cameras feed it) and a real `edge console`: the operator
    confirms an encounter; the same person is then seen on the other camera. The console shows that sighting
    under the decided encounter (confirmed · arrested · by alice, how long ago), and no open card returns."""
    from selenium.webdriver.support.ui import Select
    from test_encounters import Box

    box = Box(tmp_path)
    d = browser
    try:
        with running_console(tmp_path / "console", {box.endpoint: box.state}) as url:
            open_page(d, url + "/")
            log_in(d)
            wait(d, LOGGED_IN_JS, 10, "login")

            box.seen("cam-a", "a-1", 0)
            box.seen("cam-a", "a-2", 0)  # a second track of the same walk: a sighting on the same card
            alert_id = wait(d, """const c = document.querySelectorAll('#queue .card');
                return c.length === 1 && c[0].querySelectorAll('.sighting').length === 2 && c[0].dataset.alertId;""",
                            20, "one card with a strip of two sightings")
            card = d.find_element("css selector", f".card[data-alert-id='{alert_id}']")
            card.find_element("css selector", ".ref").click()  # open the compact card
            assert "2 sightings" in card.find_element("css selector", ".sightings").text
            Select(card.find_element("css selector", "select.action")).select_by_visible_text("arrested")
            card.find_element("css selector", ".confirm-btn").click()
            wait(d, "return document.querySelectorAll('#queue .card').length === 0", 15, "the card to leave the queue")
            # held 5 s for an undo, then sent; the box records it
            assert wait_for(lambda: box.daemon.counts.adjudications >= 1, 20)
            assert box.daemon.counts.adjudications == 1

            box.seen("cam-b", "b-1", 0)  # the same person on camera B within the gap: a sighting, not a new alert
            text = wait(d, """const e = document.querySelector('#seen-again .decided-card');
                return e && e.querySelectorAll('.sighting').length === 3 && e.textContent;""", 20,
                        "the decided encounter seen again")
            assert "confirmed · arrested · by alice" in text and " ago" in text
            assert "seen 1 time(s) since the decision" in text
            assert d.execute_script("return document.querySelectorAll('#queue .card').length") == 0  # not reopened
            assert d.find_element("id", "open-count").text == "0"
            open_page(d, url + "/history")
            row = wait(d, f"""const r = document.querySelector("#history tr[data-alert-id='{alert_id}']");
                return document.querySelectorAll('#history tbody tr').length === 1 && r && r.textContent.includes('3')
                    && r.textContent;""", 10, "one history row for the encounter, with its 3 sightings")
            assert "confirmed" in row and "arrested" in row and "alice" in row and "cam-a, cam-b" in row
    finally:
        box.stop()
