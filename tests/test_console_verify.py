"""Two controllers on one shift (issue 26), in real browsers (Debian's headless Chromium via Selenium, at
1920x1080) against a real `edge console` (site time zone Asia/Kolkata, +05:30: not the browser's) fed by a
real box: the daemon in this process, fed as its cameras feed it (tests/test_encounters.py's Box, an
encounter gap of 1 s so that "seen again after the gap" takes a second). Alice and Bob each have a
browser. The tests run in order on one queue.

Set EDGE_VERIFY_SCREENSHOTS=docs to refresh the README's queue, two-person card and history screenshots.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from browserhelpers import LOGGED_IN_JS, chromium, log_in, needs_chromium, open_page, wait_js
from click.testing import CliRunner
from conftest import running_console
from test_console_shift import FACES, jpeg
from test_encounters import REFS, Box, records, wait_for

from edge.cli import cli

pytestmark = needs_chromium
SHOTS = os.environ.get("EDGE_VERIFY_SCREENSHOTS")
OFFSET = "+05:30"
PEOPLE = [FACES[i] for i in (0, 2, 3, 4)]  # one face each for REFS
CROPS = [jpeg(f) for f in PEOPLE]
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \+05:30")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    box = Box(tmp, gap=1.0, images=[jpeg(f, 120) for f in PEOPLE])
    try:
        with running_console(tmp / "console", {box.endpoint: box.state}, "--timezone", "Asia/Kolkata",
                             users=(("bob", "bob's long password", "operator"),
                                    ("sam", "sam's long password", "supervisor"))) as url:
            browsers = {}
            try:
                for name, pw in (("alice", None), ("bob", "bob's long password")):
                    d = browsers[name] = chromium("--window-size=1920,1080")
                    open_page(d, url + "/login")
                    log_in(d, *((name, pw) if pw else ()))
                    wait_js(d, LOGGED_IN_JS, 10, f"{name}'s login")
                yield {"box": box, "url": url, "tmp": tmp, **browsers}
            finally:
                for d in browsers.values():
                    d.quit()
    finally:
        box.stop()


def press(d, *keys: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for k in keys:
        ActionChains(d).send_keys(k).perform()


def report_text(box: Box) -> str:
    r = CliRunner().invoke(cli, ["audit", "report", "--config", str(box.config)])
    assert r.exit_code == 0, r.output
    return r.output


def shot(d, name: str, element: str = "") -> None:
    """A screenshot for the README. The test box runs no camera processes, so its "NOT matching" banner (true
    of it, not of a box at work) is hidden in the picture."""
    if SHOTS:
        d.execute_script("const b = document.getElementById('banners'); if (b) b.hidden = true")
        time.sleep(1.0)
        if element:
            d.find_element("css selector", element).screenshot(str(Path(SHOTS) / name))
        else:
            d.save_screenshot(str(Path(SHOTS) / name))
        d.execute_script("const b = document.getElementById('banners'); if (b) b.hidden = false")


def reach(d, alert_id: str) -> None:
    """Select a card with the keyboard only: k to the top, then j until it is selected."""
    d.execute_script("document.activeElement && document.activeElement.blur()")
    press(d, *["k"] * 12)
    for _ in range(12):
        if d.execute_script(SELECTED) == alert_id:
            return
        press(d, "j")
    raise AssertionError(f"could not reach {alert_id} with j")


SELECTED = "const c = document.querySelector('#queue .card.selected'); return c ? c.dataset.alertId : ''"


def test_six_cards_on_one_screen_grouped_by_person_times_with_offset_nothing_selected(env):
    box, d = env["box"], env["alice"]
    for lap in range(2):  # each listed person walks past twice, more than the encounter gap apart
        for who in range(len(REFS)):
            box.seen("cam-a", f"a-{who}-{lap}", who, CROPS[who])
        time.sleep(1.3)
    wait_js(d, "return document.querySelectorAll('#queue .card').length === 8", 20, "8 open cards")
    whole = d.execute_script("""return [...document.querySelectorAll('#queue .card')].filter(c => {
        const r = c.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
        }).length""")
    assert whole >= 6, f"only {whole} whole cards on a 1920x1080 screen"
    refs = d.execute_script("return [...document.querySelectorAll('#queue .card .ref')].map(e => e.textContent)")
    assert refs == [r for r in REFS for _ in range(2)]  # grouped by person (same category: oldest first)
    assert d.find_element("css selector", "#queue .card .person").text == f"{REFS[0]}: 1 of 2 open encounters"
    assert d.execute_script(SELECTED) == ""  # nothing selected until the first key press
    for t in d.execute_script("return [...document.querySelectorAll('#queue .card .time')].map(e => e.textContent)"):
        assert TIME.fullmatch(t), t  # the site's zone with its offset, never the browser's locale
    assert OFFSET in d.find_element("id", "tz-label").text
    shot(d, "console-queue.png")
    d.execute_script("document.activeElement && document.activeElement.blur()")
    press(d, "j")  # the first key press selects the first card, expanded
    first = d.execute_script(SELECTED)
    assert first == d.execute_script("return document.querySelector('#queue .card').dataset.alertId")
    widths = d.execute_script("return [...document.querySelectorAll('#queue .card')].map(c => c.offsetWidth)")
    assert widths[0] > 1.5 * widths[1]  # the selected card spans the row
    press(d, "?")
    assert "other reference images" in wait_js(d, "const h = document.getElementById('help'); return h && !h.hidden "
                                                  "&& h.textContent", 3, "the help")
    press(d, "\ue00c")  # Esc


def test_two_operators_race_the_loser_is_told_and_it_is_refused_in_the_log_and_report(env):
    box, alice, bob = env["box"], env["alice"], env["bob"]
    bob.execute_script("document.activeElement && document.activeElement.blur()")
    press(bob, "j")
    target = alice.execute_script(SELECTED)
    assert wait_js(bob, SELECTED, 5, "bob's selection") == target
    press(alice, "c", "3")  # confirm: arrested (held 5 s for an undo, then sent)
    time.sleep(1.0)
    press(bob, "d", "1")  # a second later: dismiss, not the person
    text = wait_js(bob, "const n = document.querySelector('#notices .notice'); return n && n.textContent", 15,
                   "bob's NOT COUNTED notice")
    assert "not counted: alice had already confirmed this encounter (arrested) at" in text and OFFSET in text
    assert wait_for(lambda: len(records(box, "adjudication_refused")) == 1)
    (refused,) = records(box, "adjudication_refused")
    assert (refused["operator"], refused["decided_by"]) == ("bob", "alice")
    assert "NOT COUNTED: bob dismissed (not the person)" in report_text(box)
    press(bob, "x")  # understood: it goes
    wait_js(bob, "return !document.querySelector('#notices .notice')", 5, "the notice to clear")


def test_a_decided_person_seen_again_after_the_gap_shows_the_earlier_decision_with_a_link(env):
    box, d = env["box"], env["alice"]
    ref = REFS[0]  # alice confirmed this person (arrested) in the race
    box.seen("cam-b", "b-0-later", 0, CROPS[0])  # more than the 1 s gap later: a new encounter
    text = wait_js(d, f"""const c = [...document.querySelectorAll('#queue .card')].find(c =>
        c.querySelector('.ref').textContent === '{ref}' && !c.querySelector('.earlier').hidden);
        return c && c.querySelector('.earlier').textContent""", 20, "the earlier decision on the new card")
    assert "KNOWN: decided before: confirmed · arrested · by alice at" in text and OFFSET in text
    link = d.find_element("css selector", "#queue .card .earlier a")
    link.click()
    row = wait_js(d, "const r = document.querySelector('#history tr.linked'); return r && r.textContent", 15,
                  "the earlier encounter's history row")
    assert "confirmed" in row and "alice" in row and OFFSET in row
    assert d.execute_script("return document.documentElement.scrollWidth <= innerWidth")  # every column, no sideways
    right = d.execute_script("return document.querySelector('#history th:last-child').getBoundingClientRect().right")
    assert right <= 1920 and d.find_element("css selector", "#history th:last-child").text == "Sent to box"
    shot(d, "console-history.png")
    d.execute_script("document.activeElement && document.activeElement.blur()")
    press(d, "q")  # back to the queue
    wait_js(d, LOGGED_IN_JS, 10, "the queue page")


def test_two_people_verify_blind_and_both_names_are_in_the_report(env):
    box, alice, bob = env["box"], env["alice"], env["bob"]
    box.daemon.cfg.alerts.verification = "two"  # the box's rule (alerts.verification = "two"); its hello says it
    for d in (alice, bob):
        wait_js(d, "return document.getElementById('verification-policy').textContent.includes('Two-person')", 15,
                "the two-person rule shown")
    ref = REFS[1]
    card = f"[...document.querySelectorAll('#queue .card')].find(c => c.querySelector('.ref').textContent === '{ref}')"
    target = alice.execute_script(f"return {card}.dataset.alertId")
    reach(alice, target)
    press(alice, "c", "3")  # a first verification: confirm, arrested
    mine = wait_js(alice, f"const c = document.querySelector(\".card[data-alert-id='{target}'] .verify-stage\"); "
                          "return c && c.textContent.includes('Waiting') && c.textContent", 15,
                   "alice's first verification")
    assert "Your verification: confirmed (arrested)" in mine
    theirs = wait_js(bob, f"const c = document.querySelector(\".card[data-alert-id='{target}'] .verify-stage\"); "
                          "return c && c.textContent.includes('2 of 2') && c.textContent", 15, "bob's second stage")
    assert "alice verified; their choice is hidden" in theirs and "arrested" not in theirs  # blind
    bob.execute_script("document.activeElement && document.activeElement.blur()")
    reach(bob, target)
    shot(bob, "console-two-person.png", "#queue .card.selected")
    press(bob, "c", "3")  # the second verification agrees: the action is recorded now
    wait_js(bob, f"return !document.querySelector(\".card[data-alert-id='{target}']\")", 20, "the card to leave")
    assert wait_for(lambda: any(r.get("verifications") for r in records(box, "adjudication")))
    adj = next(r for r in records(box, "adjudication") if r.get("verifications"))
    assert [(v["operator"], v["role"]) for v in adj["verifications"]] == [("alice", "first"), ("bob", "second")]
    text = report_text(box)
    assert "verified (first): alice confirmed (arrested)" in text
    assert "verified (second): bob confirmed (arrested)" in text


def test_a_disagreement_goes_to_a_supervisor_who_sees_both_choices(env):
    box, alice, bob = env["box"], env["alice"], env["bob"]
    ref = REFS[2]
    target = alice.execute_script("return [...document.querySelectorAll('#queue .card')].find(c => "
                                  f"c.querySelector('.ref').textContent === '{ref}').dataset.alertId")
    reach(alice, target)
    press(alice, "c", "3")  # alice: confirm, arrested
    wait_js(bob, f"const c = document.querySelector(\".card[data-alert-id='{target}'] .verify-stage\"); "
                 "return c && c.textContent.includes('2 of 2')", 15, "bob's second stage")
    reach(bob, target)
    press(bob, "d", "1")  # bob: dismiss, not the person
    told = wait_js(bob, f"const c = document.querySelector(\".card[data-alert-id='{target}'] .verify-stage\"); "
                        "return c && c.textContent.includes('DISAGREE') && c.textContent", 15, "the disagreement")
    assert "A supervisor decides" in told
    alice.find_element("id", "logout").click()  # the supervisor takes alice's screen
    wait_js(alice, "return location.pathname === '/login'", 10, "the login page")
    log_in(alice, "sam", "sam's long password")
    wait_js(alice, LOGGED_IN_JS, 10, "sam's login")
    seen = wait_js(alice, f"const c = document.querySelector(\".card[data-alert-id='{target}'] .verify-stage\"); "
                          "return c && c.textContent.includes('supervisor') && c.textContent", 15, "sam's view")
    assert "alice confirmed (arrested) vs bob dismissed (not the person)" in seen and "your decision counts" in seen
    reach(alice, target)
    press(alice, "d", "1")  # sam: dismiss, not the person
    wait_js(alice, f"return !document.querySelector(\".card[data-alert-id='{target}']\")", 20, "the card to leave")
    assert wait_for(lambda: any(len(r.get("verifications") or []) == 3 for r in records(box, "adjudication")))
    assert "verified (supervisor): sam dismissed (not the person)" in report_text(box)
