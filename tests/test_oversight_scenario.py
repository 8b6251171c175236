"""One scripted deployment, end to end, and the oversight report's exact answers to the four questions.

The real daemon (tests/scenario_box.py: the daemon with its cameras replaced by a feeder of real face
descriptors), real signed and encrypted bundles from `enrol build`, a real deployment window from
`enrol authorise`, a real console over CURVE ZeroMQ, real `kill -9`. The script: list 1 (two refs)
loaded by the CLI; list 2 (three refs, one never seen) from a USB mount replaces it, next to an
altered bundle that is refused; eight encounters of several sightings each, decided with every
action and every reason, one left undecided; a `kill -9` and restart between them; a retention
sweep and a console pruning its copies; then the deployment window ends, which purges list 2 and
deletes its file from the USB mount. The JSON report equals the script's numbers exactly, the text
report answers each question under its own heading, and `enrol reconcile` agrees with the SPOC's
register until one receipt is withheld.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import ALEX, LIN, MEDIA, REPO, free_port, wait_for

from edge import identity
from edge.alerts import protocol, retention
from edge.cli import cli as edge_cli
from edge.config import QualityConfig
from enrol.build import encode_image
from enrol.cli import cli as enrol_cli

WINDOW_S = 100  # the deployment window ends this long after it is signed; the script runs inside it
GROUP_S = 1.0  # alerts.group_window_s: sightings further apart than this are a new encounter
ISSUER_NAME = "Scenario Constabulary SPOC"

# (ref, sightings as cameras, decision, action or reason, note); ref A is Lin, B is Alex, C never appears
RUN1 = [("A", ["cam1", "cam1", "cam2"], "confirm", "arrested", "custody record 12"),
        ("B", ["cam2", "cam2"], "dismiss", "not the person", "")]
RUN1_LIST2 = [("A", ["cam1", "cam2"], "confirm", "approached", ""),
              ("B", ["cam1", "cam1"], "dismiss", "poor image", "")]
RUN2 = [("A", ["cam2", "cam2"], "confirm", "no action", ""),
        ("B", ["cam1", "cam2", "cam1"], "dismiss", "other", "twin brother, known to officers"),
        ("A", ["cam1", "cam1"], "confirm", "other", "referred to safeguarding"),
        ("B", ["cam2", "cam1"], None, "", "")]


def ok(result):
    assert result.exit_code == 0, result.output
    return result.output


def utc(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def records(state: Path) -> list[dict]:
    return [json.loads(ln) for ln in (state / "audit" / "audit.log").read_text().splitlines() if ln.endswith("}")]


class Box:
    """tests/scenario_box.py in a subprocess: started, fed, killed."""

    def __init__(self, cfg: Path):
        self.cfg, self.proc = cfg, None

    def start(self):
        self.log = open(self.cfg.parent / "box.log", "a")
        self.proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "scenario_box.py"), str(self.cfg)],
                                     stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT, text=True,
                                     cwd=REPO)
        runner = CliRunner()
        wait_for(lambda: runner.invoke(edge_cli, ["status", "--config", str(self.cfg), "--timeout", "1"]).exit_code
                 == 0, 60, "the box to start")

    def see(self, camera_id: str, track_id: str, descriptor) -> None:
        sys.path.insert(0, str(REPO / "tests"))
        from scenario_box import encoding

        self.proc.stdin.write(encoding(camera_id, track_id, descriptor) + "\n")
        self.proc.stdin.flush()

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.log.close()


@pytest.fixture
def world(tmp_path):
    """The SPOC's keys, images and two bundles; a box identity; a writable USB mount; a config."""
    runner = CliRunner()
    state, usb, spoc, images = tmp_path / "state", tmp_path / "usb", tmp_path / "spoc", tmp_path / "images"
    for d in (usb, images):
        d.mkdir()
    identity.create(state, "scn-box")
    box_pub = state / "keys" / "box.pub.json"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = tmp_path / "edge.toml"
    # dlib: the scenario feeds enrol's dlib descriptors as a camera would (tests/scenario_box.py)
    cfg.write_text(f'box_id = "scn-box"\nmodel = "dlib-resnet"\nstate_dir = "{state}"\n'
                   '[[cameras]]\nid = "cam1"\nsource = "fed:1"\n'
                   f'[[cameras]]\nid = "cam2"\nsource = "fed:2"\n[alerts]\nendpoint = "{endpoint}"\n'
                   f'group_window_s = {GROUP_S}\n[watchlist]\nusb_mounts = ["{usb}"]\n[health]\nlog_interval = 1.0\n'
                   '[deployment]\nrequired = false\n')
    ok(runner.invoke(enrol_cli, ["keygen", "--out", str(spoc), "--name", ISSUER_NAME, "--no-passphrase"]))
    ok(runner.invoke(edge_cli, ["trust", "add-issuer", str(spoc / "issuer.pub"), "--config", str(cfg)]))
    shutil.copy(LIN, images / "a.png")
    shutil.copy(ALEX, images / "b.png")
    shutil.copy(MEDIA / "faces" / "obama.jpg", images / "c.jpg")
    rows = {"A": "WL-A,wanted,Warrant 11/2026 (robbery),a.png,PNC custody,2026-10-02",
            "B": "WL-B,missing person,Missing since 2026-11-28,b.png,family photo,2026-06-14",
            "C": "WL-C,known offender,Breach of order 7/2026,c.jpg,PND,2025-12-30"}
    expires = utc(datetime.now(UTC) + timedelta(days=2))
    bundles = {}
    for n, refs in ((1, "AB"), (2, "ABC")):
        (tmp_path / f"refs{n}.csv").write_text("ref,category,reason,images,source,taken\n"
                                               + "".join(rows[r] + "\n" for r in refs))
        out = tmp_path / f"list{n}.wlb"
        ok(runner.invoke(enrol_cli, ["build", "--images", str(images), "--refs", str(tmp_path / f"refs{n}.csv"),
                                     "--for", str(box_pub), "--issuer-key", str(spoc / "issuer.key"),
                                     "--expires", expires, "--deployment", "op-scn", "--sequence", str(n),
                                     "-o", str(out)]))
        bundles[n] = out
    probes = {"A": encode_image(LIN, QualityConfig())[0],
              "B": encode_image(ALEX, QualityConfig())[0],  # well inside any list's operating point
              "passer-by": encode_image(MEDIA / "faces" / "biden.jpg", QualityConfig())[0]}
    return {"state": state, "usb": usb, "spoc": spoc, "cfg": cfg, "box_pub": box_pub, "endpoint": endpoint,
            "bundles": bundles, "probes": probes, "tmp": tmp_path}


class Console:
    """A registered operator console on the box's alert channel (edge/console/link.py + store.py)."""

    def __init__(self, w):
        from edge.console import keys
        from edge.console.link import BoxLink
        from edge.console.store import Store

        data = w["tmp"] / "console"
        identity.add_console(w["state"], keys.keygen(data))
        self.store = Store(data / "console.db")
        self.alerts: list[dict] = []
        self.link = BoxLink(w["endpoint"], identity.load(w["state"]).curve_public, keys.load(data), self.store,
                            on_change=lambda kind, d: kind == "alert" and self.alerts.append(d))
        self.link.start()

    def decide(self, alert: dict, decision: str, what: str, note: str) -> None:
        adj = protocol.adjudication(alert_id=alert["alert_id"], box_id="scn-box", decision=decision,
                                    action=what if decision == "confirm" else "",
                                    reason=what if decision == "dismiss" else "", note=note, operator="PC Jones",
                                    seconds_to_decision=7.5)
        self.store.decide([alert["alert_id"]], [adj])
        self.link.wake.set()

    def close(self):
        self.link.stop()
        self.store.close()


def play(box: Box, console: Console, probes, script, rng, track: list[int]) -> None:
    """Each encounter: its sightings at once (new tracks), then the decision on its first alert."""
    for ref, cams, decision, what, note in script:
        before = len(console.alerts)
        for cam in cams:
            track[0] += 1
            box.see(cam, f"{cam}-t{track[0]}", probes[ref] + rng.normal(0, 0.002, 128).astype(np.float32))
        want = before + len(cams)
        wait_for(lambda n=want: len(console.alerts) >= n, 30, f"{len(cams)} alerts of {ref}")
        first = console.alerts[before]
        if decision:
            console.decide(first, decision, what, note)
        time.sleep(GROUP_S + 0.5)  # the next sightings are another encounter
    wait_for(lambda: not console.store.undelivered("scn-box"), 30, "the box to acknowledge every decision")


def test_a_deployment_reported_exactly_and_reconciled_with_the_register(world, tmp_path):
    w, runner, rng, track = world, CliRunner(), np.random.default_rng(3), [0]
    cfg, state, usb = w["cfg"], w["state"], w["usb"]
    signed = datetime.now(UTC)
    ok(runner.invoke(enrol_cli, ["authorise", "--issuer-key", str(w["spoc"] / "issuer.key"), "--for", str(w["box_pub"]),
                                 "--deployment", "op-scn", "--list", str(w["bundles"][1]),
                                 "--list", str(w["bundles"][2]), "--location", "Scenario station, east gate",
                                 "--camera", "cam1", "--camera", "cam2", "--start", utc(signed - timedelta(minutes=5)),
                                 "--end", utc(signed + timedelta(seconds=WINDOW_S)),
                                 "--purpose", "Scripted oversight scenario", "-o", str(tmp_path / "dep.json")]))
    ok(runner.invoke(edge_cli, ["deployment", "load", str(tmp_path / "dep.json"), "--config", str(cfg)]))
    box, console = Box(cfg), Console(w)
    try:
        box.start()
        ok(runner.invoke(edge_cli, ["watchlist", "load", str(w["bundles"][1]), "--config", str(cfg)]))
        play(box, console, w["probes"], RUN1, rng, track)
        altered = bytearray(w["bundles"][2].read_bytes())
        altered[-80] ^= 0x01  # one bit of the payload: the signature no longer holds
        (usb / "a-altered.part").write_bytes(bytes(altered))  # whole files appear at once (rename), as a
        shutil.copy(w["bundles"][2], usb / "list2.part")      # stick does once mounted: no half-read copy
        os.rename(usb / "a-altered.part", usb / "a-altered.wlb")
        os.rename(usb / "list2.part", usb / "list2.wlb")
        wait_for(lambda: sum(r["kind"] == "watchlist_loaded" for r in records(state)) == 2
                 and any(r["kind"] == "watchlist_refused" for r in records(state)), 30, "the USB pick-up")
        play(box, console, w["probes"], RUN1_LIST2, rng, track)
        cutoff = time.time()
        box.kill9()
        box.start()
        play(box, console, w["probes"], RUN2, rng, track)
        box.see("cam1", "cam1-passer-by", w["probes"]["passer-by"])  # on no list: no alert
        wait_for(lambda: sum(r["kind"] == "adjudication" for r in records(state)) == 7, 30, "7 decisions recorded")
        days = (time.time() - cutoff) / 86400.0
        assert "deleted 9 alert(s)" in ok(runner.invoke(edge_cli, ["audit", "retention", "--config", str(cfg),
                                                                   "--days", repr(days)]))
        console_days = retention.Policy((time.time() - cutoff) / retention.DAY, "test")
        assert len(retention.apply(console.store, console_days)) == 9
        console.link.wake.set()
        wait_for(lambda: any(r["kind"] == "console_pruned" for r in records(state)), 30, "the console's prune notice")
        wait_for(lambda: any(r["kind"] == "watchlist_file_deleted" for r in records(state)),
                 WINDOW_S + 30, "the deployment window to end (list purged, its USB file deleted)")
        assert not (usb / "list2.wlb").exists() and (usb / "a-altered.wlb").exists()
    finally:
        box.stop()
        console.close()
    out = tmp_path / "report.json"
    ok(runner.invoke(edge_cli, ["audit", "report", "--config", str(cfg), "--format", "json", "-o", str(out)]))
    rep = json.loads(out.read_text())
    # -- 1. what was shared, when, by whom
    issuer = identity.key_id(identity.parse_issuer_key((w["spoc"] / "issuer.pub").read_text()))
    l1, l2 = rep["watchlists"]
    assert [(w_["sequence"], w_["issuer"], w_["issuer_name"], w_["deployment"]) for w_ in (l1, l2)] == [
        (1, issuer, ISSUER_NAME, "op-scn"), (2, issuer, ISSUER_NAME, "op-scn")]
    assert [a["how"] for a in l1["arrived"]] == ["cli"] and l1["reloads"] == 0
    assert [(a["how"], a["mount"], a["file"]) for a in l2["arrived"]] == [("usb", str(usb), "list2.wlb")]
    assert l2["reloads"] == 1  # the restart after kill -9 reloaded it: still one row
    assert l2["refs"] == ["WL-A", "WL-B", "WL-C"]
    assert [(d["ref"], d["category"], d["reason"]) for d in l2["entry_details"]] == [
        ("WL-A", "wanted", "Warrant 11/2026 (robbery)"), ("WL-B", "missing person", "Missing since 2026-11-28"),
        ("WL-C", "known offender", "Breach of order 7/2026")]
    assert [[(i["source"], i["taken"], len(i["sha256"])) for i in d["images"]] for d in l2["entry_details"]] == [
        [("PNC custody", "2026-10-02", 64)], [("family photo", "2026-06-14", 64)], [("PND", "2025-12-30", 64)]]
    (ref_,) = rep["refused"]
    assert (ref_["file"], ref_["arrived"], ref_["issuer"], ref_["issuer_name"]) == ("a-altered.wlb", "usb", issuer,
                                                                                     ISSUER_NAME)
    assert "signature" in ref_["reason"] and ref_["claimed_list_id"] == l2["list_id"]
    assert len(ref_["times"]) == 2  # still on the stick at the restart: refused again, one row
    # -- 2. was there ever a match
    refs = {r["ref"]: r for r in rep["references"]}
    assert {k: (r["encounters"], r["sightings"], r["cameras"]) for k, r in refs.items()} == {
        "WL-A": (4, 9, ["cam1", "cam2"]), "WL-B": (4, 9, ["cam1", "cam2"]), "WL-C": (0, 0, [])}
    assert refs["WL-C"]["matched"] is False and refs["WL-A"]["best_distance"] < 0.1
    assert rep["alerts"]["total"] == 18 and len(rep["encounters"]) == 8
    # -- 3. was police action taken: one decision per encounter, counted once
    d = rep["decisions"]
    assert (d["encounters"], d["confirmed"], d["dismissed"], d["undecided"]) == (8, 4, 3, 1)
    assert d["actions"] == {"approached": 1, "arrested": 1, "no action": 1, "other": 1}
    assert d["reasons"] == {"not the person": 1, "other": 1, "poor image": 1}
    assert d["false_alert_rate"] == {"false_alerts": 1, "decided": 7, "rate": round(1 / 7, 4)}
    script = RUN1 + RUN1_LIST2 + RUN2
    assert [(e["sightings"], e["decision"], e["action"] or e["reason"], e["note"]) for e in rep["encounters"]] == [
        (len(c), dec, what if dec else None, note if dec else None) for _, c, dec, what, note in script]
    assert all(e["operator"] == "PC Jones" and e["seconds_to_decision"] == 7.5
               for e in rep["encounters"] if e["decision"])
    # -- 4. deletion you can prove
    assert l1["ended"]["how"] == "replaced" and l2["ended"]["how"] == "deployment ended"
    assert all(x["ended"]["receipt_check"].startswith("signature valid") for x in (l1, l2))
    assert [(f["file"], f["deleted"]) for f in l2["files"]] == [("list2.wlb", True)]
    dl = rep["deletion"]
    assert (dl["deleted"], dl["held"], dl["console_copies_deleted"]) == (9, 9, 9)
    assert all(a["deleted"] and a["consoles_deleted"] for a in dl["alerts"][:9])
    assert all(a["held_until"] and not a["consoles_deleted"] for a in dl["alerts"][9:])
    (gap,) = rep["downtime"]
    assert "not shut down" in gap["cause"] and gap["seconds"] > 0
    assert all(u["box_down_s"] == gap["seconds"] and u["uptime"] < 1 for u in rep["camera_uptime"].values())
    # -- the text report: each question under its own heading
    text = ok(runner.invoke(edge_cli, ["audit", "report", "--config", str(cfg)]))
    for heading in ("1. What images were shared with the box, when and by whom", "2. Was there ever a match",
                    "3. Was police action taken", "4. When was each image deleted, and can that be proved"):
        assert f"\n{heading}\n" in text
    assert "WL-C (list " in text and ": no match" in text and ISSUER_NAME in text and "undecided" in text
    assert "twin brother, known to officers" in text and "deployment ended" in text
    # -- both sides of the disclosure reconcile; withholding one receipt is named
    register = w["spoc"] / "bundles.jsonl"
    agree = ok(runner.invoke(enrol_cli, ["reconcile", str(register), str(out)]))
    assert "2 list(s) issued to it, 2 loaded, 0 refused, 2 valid deletion receipt(s); both sides agree" in agree
    rep["watchlists"][0]["ended"]["receipt"] = None
    withheld = tmp_path / "withheld.json"
    withheld.write_text(json.dumps(rep))
    r = runner.invoke(enrol_cli, ["reconcile", str(register), str(withheld)])
    assert r.exit_code == 1
    (line,) = [ln for ln in r.output.splitlines() if ln.startswith("DISCREPANCY")]
    assert f"list {l1['list_id']}: replaced at" in line and "without a deletion receipt" in line
    rep["watchlists"][0]["ended"]["receipt"] = l1["ended"]["receipt"]
    rep["watchlists"][1]["entry_details"][2]["images"][0]["sha256"] = "0" * 64  # an image the SPOC never sent
    withheld.write_text(json.dumps(rep))
    r = runner.invoke(enrol_cli, ["reconcile", str(register), str(withheld)])
    assert r.exit_code == 1 and f"list {l2['list_id']}: reference WL-C holds image sha256 {'0' * 64}" in r.output
    ok(runner.invoke(edge_cli, ["audit", "report", "--config", str(cfg), "--format", "html", "-o",
                                str(tmp_path / "report.html")]))
    page = (tmp_path / "report.html").read_text()
    assert all(q in page for q in ("1. What images", "2. Was there", "3. Was police", "4. When was each"))
    assert "<svg" in page and not re.search(r"""(src|href)\s*=|@import|url\(""", page)  # self-contained
    if os.environ.get("EDGE_REPORT_SCREENSHOT"):  # refresh docs/report.png (README)
        screenshot(tmp_path / "report.html", Path(os.environ["EDGE_REPORT_SCREENSHOT"]))


def screenshot(page: Path, out: Path, width: int = 1100, height: int = 1700) -> None:
    """The HTML report in Debian's headless chromium (the flags of tests/test_console_browser.py)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)
    try:
        driver.get(page.resolve().as_uri())
        driver.save_screenshot(str(out))
    finally:
        driver.quit()
