"""A controller's shift on the web console (issue 18), in a real browser (Debian's headless Chromium via
Selenium) against a real `edge console` fed by two real boxes over CURVE: `edge run` playing the Hamilton
clip (Lin-Manuel Miranda on its list) and a second box whose alert channel (the real `Channel`, its own
outbox and keys) the test feeds with alerts. One daemon, one console and one browser serve the module;
the tests run in order and the last one kills the box.

Set EDGE_SHIFT_SCREENSHOTS=docs to refresh the README's card, banner and history screenshots.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cv2
import pytest
from browserhelpers import LOGGED_IN_JS, chromium, log_in, needs_chromium, open_page, wait_js
from conftest import MEDIA, free_port, hamilton_box, running_console, running_daemon

from edge import identity
from edge.alerts import messages
from edge.alerts.publisher import Channel
from edge.pipeline.control import request

pytestmark = needs_chromium
SHOTS = os.environ.get("EDGE_SHIFT_SCREENSHOTS")
BOX2 = "box-2"


# every alarm banner but "matches WITHOUT AUTHORISATION", which a box with [deployment] required = false keeps
OTHER_ALARMS = '#banners .banner.alarm:not([data-key^="unauthorised:"])'

def jpeg(name: str, size: int = 160) -> bytes:
    img = cv2.imread(str(MEDIA / "faces" / name))
    h, w = img.shape[:2]
    s = min(h, w)
    img = cv2.resize(img[(h - s) // 2:(h + s) // 2, (w - s) // 2:(w + s) // 2], (size, size))
    return cv2.imencode(".jpg", img)[1].tobytes()


FACES = ["obama.jpg", "biden.jpg", "alex_lacamoire1.jpg", "kit_harington_john1.jpeg", "rose_leslie_img1.jpg"]


def alert(i: int, camera: str = "cam-x", ref: str | None = None, **extra) -> dict:
    face = FACES[i % len(FACES)]
    msg = messages.alert(box_id=BOX2, camera_id=camera, track_id=f"{camera}-{i}", ref=ref or f"R-{i:04d}",
                         distance=0.3 + 0.001 * (i % 100), threshold=0.5, crop_jpeg=jpeg(face),
                         reference_jpeg=jpeg(face, 120), category="wanted", list_id="list-2")
    msg.update(extra)
    return msg


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shift")
    cfg, endpoint, state = hamilton_box(tmp)
    endpoint2, state2 = f"tcp://127.0.0.1:{free_port()}", tmp / "state2"
    identity.create(state, "test-box")
    ident2 = identity.create(state2, BOX2)
    decisions: list[dict] = []
    status2 = {"cameras": {"cam-x": "up", "cam-y": "up"},
               "matching": {"on": True, "why": "", "list_id": "list-2", "entries": 200, "not_after": None,
                            "not_authorised": []}}
    box2 = Channel(endpoint2, state2, ident2.curve_public, ident2.curve_secret, BOX2,
                   on_adjudication=lambda msg, console: decisions.append(msg), status=lambda: status2)
    box2.start()
    try:
        with running_console(tmp / "console", {endpoint: state, endpoint2: state2}) as url, \
                running_daemon(cfg) as daemon:
            yield {"url": url, "daemon": daemon, "box2": box2, "decisions": decisions, "status2": status2,
                   "control": f"ipc://{state / 'control.sock'}", "tmp": tmp}
    finally:
        box2.stop()


@pytest.fixture(scope="module")
def d(env):
    driver = chromium("--window-size=1366,768", "--autoplay-policy=no-user-gesture-required")
    open_page(driver, env["url"] + "/login")
    log_in(driver)
    wait(driver, LOGGED_IN_JS, 10, "login")
    yield driver
    driver.quit()


def wait(driver, js: str, seconds: float, what: str, env=None):
    def explain() -> str:
        info = driver.execute_script("const p = document.getElementById('page-info'); return p && p.textContent")
        logs = "" if env is None else "\n" + "".join((env["tmp"] / f).read_text()[-3000:]
                                                      for f in ("daemon.log", "console.log"))
        return f" (pager: {info}){logs}"

    return wait_js(driver, js, seconds, what, explain, every=0.1)


def shot(d, name: str) -> None:
    if SHOTS:
        time.sleep(0.5)
        d.save_screenshot(str(Path(SHOTS) / name))


BANNER = """return [...document.querySelectorAll('#banners .banner.alarm')].map(b => b.textContent).join('\\n')
    .includes(arguments[0]) && document.querySelector('#banners').textContent"""


def banner(d, text: str, seconds: float, env=None) -> str:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        got = d.execute_script(BANNER, text)
        if got:
            return got
        time.sleep(0.1)
    now = d.execute_script("return document.querySelector('#banners').textContent")
    raise AssertionError(f"no alarm banner with {text!r} within {seconds} s: {now}"
                         + ("" if env is None else (env["tmp"] / "console.log").read_text()[-2000:]))


def test_events_panel_says_in_words_what_happened(d, env):
    wait(d, "return document.querySelector('#events li[data-event=\"link_up\"]')", 20, "a link-up event line", env)
    wait(d, """return [...document.querySelectorAll('#events li')].some(li => li.textContent.includes(
        'Connected to box'))""", 5, "the link event in words")
    wait(d, """return [...document.querySelectorAll('#events li')].some(li => /Watch list .* loaded: 1 entry /
        .test(li.textContent))""", 30, "the watch-list load in words", env)
    env["box2"].publish(messages.event(box_id=BOX2, event="watchlist_refused", file="usb/list-old.wlb",
                                       reason="the list is older than the one in force (rollback)"))
    wait(d, """return [...document.querySelectorAll('#events li')].some(li => li.textContent.includes(
        'Watch list file usb/list-old.wlb was REFUSED: the list is older than the one in force (rollback)'))""",
         10, "the refusal with its file and reason")
    # all is well but for what these test boxes are ([deployment] required = false): said, as an alarm of its own
    wait(d, f"return !document.querySelector('{OTHER_ALARMS}')", 8, "no other alarm (all is well)")
    assert d.execute_script("return document.querySelector('#banners .banner.alarm[data-key^=\"unauthorised:\"]')")


def test_the_card_shows_why_listed_the_matched_reference_and_the_wider_view(d, env):
    # the real pipeline's alert: reason for inclusion, category, matched reference, context crop
    card_js = """const c = [...document.querySelectorAll('#queue .card')].find(
            c => c.textContent.includes('box test-box'));
        return c && c.querySelector('img.crop').naturalWidth > 0
            && c.querySelector('img.reference').naturalWidth > 0
            && c.querySelector('img.context') && c.querySelector('img.context').naturalWidth > 0
            && c.dataset.alertId;"""
    alert_id = wait(d, card_js, 90, "the real box's alert card with crop, reference and wider view", env)
    card = d.find_element("css selector", f".card[data-alert-id='{alert_id}']")
    card.find_element("css selector", ".ref").click()  # a mouse user opens the compact card
    assert card.find_element("css selector", ".listed-for").text == "Listed for: local list"  # the folder list's
    assert card.find_element("css selector", ".category").text == "Category: other"
    assert "matched" in card.find_element("css selector", "img.reference + figcaption").text
    ctx = d.execute_script(f"return document.querySelector(\".card[data-alert-id='{alert_id}'] img.context\")"
                           ".naturalWidth")
    crop = d.execute_script(f"return document.querySelector(\".card[data-alert-id='{alert_id}'] img.crop\")"
                            ".naturalWidth")
    assert ctx > crop  # wider than the face crop

    # a listed person with three reference images: the matched one shown, the other two on demand
    wide = cv2.imread(str(MEDIA / "faces" / "alex_lacamoire1.jpg"))
    a = alert(7, ref="PN-2026-0007", listed_for="Warrant 44/2026 (robbery)", crop_jpeg=messages.b64(
              jpeg("alex_lacamoire1.jpg")), reference_jpeg=messages.b64(jpeg("alex-lacamoire.png", 120)),
              context_jpeg=messages.b64(cv2.imencode(".jpg", cv2.resize(wide, (480, round(480 * wide.shape[0] /
                                                                                           wide.shape[1]))))[1].tobytes()),
              other_references_jpeg=[messages.b64(jpeg("alex_lacamoire_img1.jpg", 100)),
                                     messages.b64(jpeg("alex-lacamoire.png", 100))])
    env["box2"].publish(a)
    sel = f".card[data-alert-id='{a['alert_id']}']"
    wait(d, f"return document.querySelector(\"{sel} .others-btn\")", 15, "the other-references button")
    card = d.find_element("css selector", sel)
    assert card.find_element("css selector", ".listed-for").text == "Listed for: Warrant 44/2026 (robbery)"
    card.find_element("css selector", ".ref").click()
    card.find_element("css selector", ".others-btn").click()
    wait(d, f"return [...document.querySelectorAll(\"{sel} .others img\")].filter(i => i.naturalWidth > 0).length"
            " === 2", 5, "two other reference images")
    d.find_element("css selector", f"{sel} img.crop").click()  # click-to-zoom
    wait(d, "const z = document.getElementById('zoom'); return z && !z.hidden", 3, "the zoom overlay")
    d.execute_script("document.getElementById('zoom').hidden = true")
    if SHOTS:  # the whole card, after its new-alert flash
        d.set_window_size(1366, 1600)
        d.execute_script("arguments[0].scrollIntoView(); window.scrollBy(0, -120)", d.find_element("css selector", sel))
        time.sleep(3.5)
        d.find_element("css selector", sel).screenshot(str(Path(SHOTS) / "console-card.png"))
        d.set_window_size(1366, 768)


def test_camera_down_is_an_alarm_banner_with_a_sound(d, env):
    before = d.execute_script("return window.edgeAlarm.sounds")
    env["status2"]["cameras"]["cam-y"] = "down"
    env["box2"].publish(messages.event(box_id=BOX2, event="camera_down", camera_id="cam-y", reason="no frames for 5 s"))
    banner(d, "Camera cam-y on box box-2 is DOWN", 8)
    assert d.execute_script("return window.edgeAlarm.sounds") > before
    wait(d, """return [...document.querySelectorAll('#events li')].some(li => li.textContent.includes(
        'Camera cam-y went DOWN: no frames for 5 s'))""", 5, "the camera event in words")
    env["status2"]["cameras"]["cam-y"] = "up"
    wait(d, f"return !document.querySelector('{OTHER_ALARMS}')", 8, "the banner to clear")


def press(d, *seq: str) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    for k in seq:
        ActionChains(d).send_keys(k).perform()
        time.sleep(0.05)


def selected(d) -> str:
    return d.execute_script("const c = document.querySelector('#queue .card.selected'); "
                            "return c ? c.dataset.alertId : ''")


def select_by_keys(d, alert_id: str) -> None:
    """j/k only: go to the top with k, then down with j until the card is selected."""
    press(d, *["k"] * 12)
    for _ in range(40):
        if selected(d) == alert_id:
            return
        press(d, "j")
    raise AssertionError(f"could not reach {alert_id} with j")


def test_a_keyboard_only_shift_decides_three_alerts(d, env):
    from selenium.webdriver.common.keys import Keys

    sent = [alert(i, ref=f"K-{i}") for i in (1, 2, 3)]
    for a in sent:
        env["box2"].publish(a)
    ids = [a["alert_id"] for a in sent]
    wait(d, "return arguments[0].every(id => document.querySelector(`.card[data-alert-id='${id}']`))".replace(
        "arguments[0]", str(ids)), 15, "three cards")
    d.execute_script("document.activeElement && document.activeElement.blur()")

    press(d, "?")  # the help overlay lists the keys
    assert "c, then 1-4" in wait(d, "const h = document.getElementById('help'); return h && !h.hidden && h.textContent",
                                 3, "the help overlay")
    press(d, Keys.ESCAPE)
    assert d.execute_script("return document.getElementById('help').hidden")

    select_by_keys(d, ids[0])
    press(d, "z")  # zoom the crop
    wait(d, "const z = document.getElementById('zoom'); "
            "return z && !z.hidden && z.querySelector('img').naturalWidth > 0", 3, "the zoomed crop")
    press(d, Keys.ESCAPE)
    press(d, "c", "1")  # confirm: approached ... then undo: nothing is sent
    wait(d, f"return window.edgeKeys.held.has('{ids[0]}')", 2, "the held decision")
    assert "sending in" in d.find_element("css selector", f".card[data-alert-id='{ids[0]}'] .held").text
    press(d, "u")
    assert not d.execute_script(f"return window.edgeKeys.held.has('{ids[0]}')")
    press(d, "n", "seen at the north gate", Keys.ESCAPE, "c", "3")  # note, then confirm: arrested
    select_by_keys(d, ids[1])
    press(d, "d", "1")  # dismiss: not the person
    select_by_keys(d, ids[2])
    press(d, "c", "2")  # confirm: no action
    for i in ids:
        wait(d, f"return !document.querySelector(\".card[data-alert-id='{i}']\")", 10, f"card {i} to leave the queue")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len({m["alert_id"] for m in env["decisions"]} & set(ids)) < 3:
        time.sleep(0.1)
    got = {m["alert_id"]: m for m in env["decisions"] if m["alert_id"] in ids}
    assert [(got[i]["decision"], got[i]["action"] or got[i]["reason"]) for i in ids] == [
        ("confirm", "arrested"), ("dismiss", "not the person"), ("confirm", "no action")]
    assert got[ids[0]]["note"] == "seen at the north gate" and {m["operator"] for m in got.values()} == {"alice"}
    assert sum(m["alert_id"] == ids[0] for m in env["decisions"]) == 1  # the undone confirm never left


def choose(d, select_id: str, value: str) -> None:
    """Pick a filter option as a user would (the options are rebuilt on each refresh: no stale handles)."""
    d.execute_script("const s = document.getElementById(arguments[0]); s.value = arguments[1]; "
                     "s.dispatchEvent(new Event('change'))", select_id, value)


DECIDE_ALL = """const [ids, done] = [arguments[0], arguments[arguments.length - 1]];
    (async () => { let i = 0; for (const id of ids) {
        const body = i % 3 ? {decision: "dismiss", reason: "poor image", note: `n${i}`}
                           : {decision: "confirm", action: "no action", note: `n${i}`};
        i++; const r = await post(`/api/alerts/${id}/decision`, body); if (!r.ok) { done(await r.text()); return; } }
      done("ok"); })();"""


def test_history_filters_pages_and_exports_200_encounters(d, env):
    sent = [alert(i, camera="cam-x" if i % 2 else "cam-y", ref=f"R-{i:04d}") for i in range(200)]
    for a in sent:
        env["box2"].publish(a)
    ids = [a["alert_id"] for a in sent]
    wait(d, f"return document.querySelector(\".card[data-alert-id='{ids[-1]}']\")", 60, "the 200th alert")
    d.set_script_timeout(120)
    assert d.execute_async_script(DECIDE_ALL, ids) == "ok"
    wait(d, f"return !document.querySelector(\".card[data-alert-id='{ids[-1]}']\")", 30, "the queue to empty")
    open_page(d, env["url"] + "/history")  # the history has its own full-width page

    rows = "return [...document.querySelectorAll('#history tbody tr')].map(r => r.dataset.alertId)"
    d.find_element("id", "f-ref").send_keys("R-0")
    wait(d, "return document.getElementById('page-info').textContent.includes('Page 1 of 4 · 200 encounters')", 15,
         "four pages of 50")
    first = d.execute_script(rows)
    assert len(first) == 50 and first[0] == ids[-1]  # newest first
    d.find_element("id", "page-next").click()
    wait(d, "return document.getElementById('page-info').textContent.includes('Page 2 of 4')", 20, "page 2")
    wait(d, rows + ".length === 50 && " + rows[7:] + "[0] === arguments[0]".replace("arguments[0]", repr(ids[-51])),
         20, "page 2's rows")
    choose(d, "f-camera", "cam-x")  # filters: back to page 1
    wait(d, "return document.getElementById('page-info').textContent.includes('Page 1 of 2 · 100 encounters')", 20,
         "cam-x only")
    choose(d, "f-outcome", "confirmed")
    confirmed_x = sum(1 for i in range(200) if i % 2 and not i % 3)
    wait(d, f"return document.getElementById('page-info').textContent.includes('{confirmed_x} encounters')", 20,
         "confirmed on cam-x")
    choose(d, "f-camera", "")
    choose(d, "f-outcome", "")
    d.find_element("id", "f-ref").clear()
    d.find_element("id", "f-ref").send_keys("R-0042")
    wait(d, "return document.getElementById('page-info').textContent.includes(' 1 encounter ')", 20, "one reference")
    row = wait(d, f"const r = document.querySelector(\"#history tr[data-alert-id='{ids[42]}']\"); "
                  "return r && r.textContent", 20, "R-0042's row")
    assert "confirmed" in row and "no action" in row and "alice" in row and "n42" in row  # note shown
    d.find_element("id", "f-operator").send_keys("bob")
    wait(d, "return document.getElementById('page-info').textContent.includes(' 0 encounters ')", 20, "no bob")
    d.find_element("id", "f-operator").clear()
    d.execute_script("const f = document.getElementById('f-from'); f.value = '2099-01-01T00:00'; "
                     "f.dispatchEvent(new Event('change'))")
    wait(d, "return document.getElementById('page-info').textContent.includes(' 0 encounters ')", 20, "time filter")
    d.execute_script("const f = document.getElementById('f-from'); f.value = ''; f.dispatchEvent(new Event('change'))")
    d.find_element("id", "f-ref").clear()
    d.find_element("id", "f-ref").send_keys("R-0")

    csv_text = d.execute_async_script("""const done = arguments[arguments.length - 1];
        fetch('/api/history.csv?ref=R-0').then(r => r.text()).then(done);""")
    lines = csv_text.strip().split("\r\n")
    assert lines[0].startswith("first_seen,last_seen,box_id,cameras,ref") and len(lines) == 201
    assert sum(",confirmed,no action," in ln for ln in lines) == sum(1 for i in range(200) if not i % 3)
    r42 = next(ln for ln in lines if ",R-0042," in ln).split(",")
    col = dict(zip(lines[0].split(","), r42, strict=True))
    assert (col["note"], col["operator"], col["sightings"]) == ("n42", "alice", "1")
    assert float(col["seconds_to_decision"]) >= 0 and col["decided_at"].endswith("Z")

    # the shift panel beside the queue: who is logged in, decisions per operator this shift
    open_page(d, env["url"] + "/")
    wait(d, "return document.getElementById('logged-in').textContent === 'Logged in: alice'", 20, "who is logged in")
    text = wait(d, "return document.getElementById('decision-counts').textContent", 20, "decision counts")
    assert "alice 20" in text  # 200 here and the keyboard shift's 3 (and the box's, if decided)


def test_the_page_fits_a_1366x768_laptop_and_a_4k_wall_screen(d, env):
    try:
        for w, h in [(1366, 768), (3840, 2160)]:
            d.set_window_size(w, h)
            time.sleep(0.3)
            over = d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
            assert over <= 0, f"{over} px wider than a {w}x{h} window"
            size = d.execute_script("return parseFloat(getComputedStyle(document.body).fontSize)")
            assert size >= (18 if w > 2560 else 14)  # readable from across the room on the wall screen
    finally:
        d.set_window_size(1366, 768)


def test_purge_shows_the_box_is_not_matching(d, env):
    wait(d, """return [...document.querySelectorAll('.chip')].some(
        c => c.textContent.includes('test-box: connected'))""", 20, "the box connected")
    before = d.execute_script("return window.edgeAlarm.sounds")
    request(env["control"], {"cmd": "watchlist_purge", "reason": "end of operation"})
    text = banner(d, "Box test-box is NOT matching: no watch list is loaded", 8, env)
    assert "ALARM" in text  # said in words, not only in red
    assert d.execute_script("return window.edgeAlarm.sounds") > before
    wait(d, """return [...document.querySelectorAll('#events li')].some(li => li.textContent.includes(
        'was deleted (end of operation)'))""", 5, "the purge in words")
    shot(d, "console-banner.png")


def test_a_frozen_box_is_noticed_by_the_heartbeat(d, env):
    """A box that stops answering without closing its connection (power cut, hang): the link's ZeroMQ
    heartbeat (1 s, 2.5 s timeout) notices; the banner clears when it answers again."""
    import signal

    wait(d, """return [...document.querySelectorAll('.chip')].some(
        c => c.textContent.includes('test-box: connected'))""", 20, "the box connected")
    env["daemon"].send_signal(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        banner(d, "Box test-box is DISCONNECTED", 6.0)
        print(f"red banner {time.monotonic() - t0:.2f} s after the box froze")
    finally:
        env["daemon"].send_signal(signal.SIGCONT)
    wait(d, "return ![...document.querySelectorAll('#banners .banner')].some(b => b.textContent.includes("
            "'DISCONNECTED'))", 20, "the banner to clear when the box answers again")


def test_a_killed_box_raises_a_red_banner_and_a_sound_within_3_s(d, env):
    before = d.execute_script("return window.edgeAlarm.sounds")
    env["daemon"].kill()  # kill -9: the box cannot say goodbye
    t0 = time.monotonic()
    banner(d, "Box test-box is DISCONNECTED", 3.0)
    print(f"red banner {time.monotonic() - t0:.2f} s after kill -9")
    assert d.execute_script("return window.edgeAlarm.sounds") > before
    assert d.execute_script("return window.edgeAlarm.last").startswith("link:")
    wait(d, """return [...document.querySelectorAll('#events li')].some(li => li.textContent.includes(
        'LOST the connection to box test-box'))""", 5, "the lost link in words")
