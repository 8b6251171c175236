"""`make demo`: the whole product on bundled sample media, each role's commands in turn.

1. engineer  - provisions the box (keys, cameras), makes a console key and registers it
2. SPOC      - makes an issuer key, builds a signed, encrypted watch list for this box only,
               signs a deployment window; the engineer registers the issuer key
3. box       - loads the list and the window (as if from USB), runs both cameras
4. controller- the web console: its URL and two demo logins are printed (the window requires two
               people to verify each confirmation); the box keeps running until the demo is stopped
               (Ctrl-C). With --quick (`make demo-ci`, for the tests) two scripted controllers log in,
               alice confirms the first alert and bob, blind to her choice, verifies it, through the
               console's own API, and the demo carries on by itself after DEMO_SECONDS
5. oversight - verifies the tamper-evident log and prints the report
6. SPOC      - purges the list and verifies the box's signed deletion receipt
7. both      - `enrol reconcile`: the SPOC's register of issued lists against the box's report

Every command is the real CLI, printed before it runs. State goes to .demo-state/ (recreated; DEMO_STATE
overrides it, DEMO_ALERTS the box's alert endpoint, DEMO_PORT the web console's port).
"""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STATE = Path(os.environ.get("DEMO_STATE") or REPO / ".demo-state").resolve()
BOX = STATE / "box"  # the box's state dir
CONFIG = STATE / "edge.toml"  # demo/edge.toml with its paths made absolute and the alert endpoint set
ALERTS = os.environ.get("DEMO_ALERTS", "tcp://127.0.0.1:5599")
PORT = int(os.environ.get("DEMO_PORT", "8080"))
RUN_SECONDS = float(os.environ.get("DEMO_SECONDS", "30"))
LOGINS = (("alice", "demo-password-alice"), ("bob", "demo-password-bob"))  # two controllers: two-person rule
BIN = Path(sys.executable).parent


def say(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def sh(*args, check: bool = True, env: dict | None = None, quiet: bool = False, stdin: str | None = None,
       until_ok: float = 0.0) -> str:
    """Run one real command, shown first (``until_ok``: seconds to retry while a just-started service comes up)."""
    shown = " ".join(str(a).replace(str(REPO) + "/", "") for a in args)
    print(f"$ {shown}", flush=True)
    deadline = time.monotonic() + until_ok
    while True:
        r = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True,
                           env={**os.environ, **(env or {})}, cwd=REPO, input=stdin)
        if r.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    out = (r.stdout + r.stderr).strip()
    if out and not quiet:
        print("  " + out.replace("\n", "\n  "), flush=True)
    if check and r.returncode != 0:
        sys.exit(f"demo step failed: {shown}")
    return r.stdout


def start(name: str, *args) -> subprocess.Popen:
    """A long-running part of the demo (the box, the console), its output in .demo-state/NAME.log."""
    print(f"$ {' '.join(str(a).replace(str(REPO) + '/', '') for a in args)} &   (log: {STATE / name}.log)",
          flush=True)
    return subprocess.Popen([str(BIN / args[0]), *map(str, args[1:])], stdout=open(STATE / f"{name}.log", "w"),
                            stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)  # Ctrl-C: the demo stops it


def logged_in(url: str, name: str, password: str, deadline: float):
    """One controller's session at the web console (its own cookie jar): fn(path, body=None) -> JSON."""
    web = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    csrf = [""]

    def call(path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(url.rstrip("/") + path, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", "X-CSRF-Token": csrf[0]})
        with web.open(req, timeout=10) as r:
            return json.loads(r.read())

    while True:
        try:
            csrf[0] = call("/api/login", {"name": name, "password": password})["csrf"]
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    print(f"  {name} logged in to the web console", flush=True)
    return call


def controller(url: str, seconds: float) -> None:
    """--quick: two controllers at the web console, by its own API. The window requires two people: alice
    confirms the first alert (a first verification), bob, who is not shown her choice, confirms it too."""
    deadline = time.monotonic() + seconds
    (alice, pw_a), (bob, pw_b) = LOGINS
    first = logged_in(url, alice, pw_a, deadline)
    second = logged_in(url, bob, pw_b, deadline)
    while time.monotonic() < deadline:
        state = first("/api/state")
        if state["open"]:
            a = state["open"][0]
            body = {"decision": "confirm", "action": "approached", "note": "demo"}
            said = first(f"/api/alerts/{a['alert_id']}/decision", body)
            print(f"  {alice} confirmed the alert for {a['ref']} (camera {a['camera_id']}): "
                  f"{said.get('text') or 'counted'}", flush=True)
            seen = next(c for c in second("/api/state")["open"] if c["alert_id"] == a["alert_id"])["verification"]
            print(f"  {bob} sees: {seen['stage']} verification, verified by {', '.join(seen.get('by') or [])}; "
                  f"her choice {'shown' if 'people' in seen else 'hidden'}", flush=True)
            second(f"/api/alerts/{a['alert_id']}/decision", body)
            print(f"  {bob} confirmed it too: the decision counts, with both names", flush=True)
            break
        time.sleep(1.0)
    time.sleep(max(0.0, min(5.0, deadline - time.monotonic())))  # the decision reaches the box


def utc(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%MZ")


def demo_config() -> None:
    text = (HERE / "edge.toml").read_text()
    text = re.sub(r'source = "([^"]+)"', lambda m: f'source = "{(HERE / m.group(1)).resolve()}"', text)
    text = text.replace('endpoint = "tcp://127.0.0.1:5599"', f'endpoint = "{ALERTS}"')
    CONFIG.write_text(text.replace('state_dir = "../.demo-state/box"', f'state_dir = "{BOX}"'))


def main() -> None:
    quick = "--quick" in sys.argv[1:]
    shutil.rmtree(STATE, ignore_errors=True)
    (STATE / "usb").mkdir(parents=True)  # the "USB stick"
    demo_config()
    box = ["--config", CONFIG, "--state-dir", BOX]
    now = datetime.now(UTC)

    say("1. Engineer: provision the box, the control-room console and its controllers")
    sh("edge", "provision", "--box-id", "demo-box", "--config", STATE / "provisioned.toml", "--state-dir", BOX,
       "--camera", "cam-a=tests/data/media/video/short_hamilton_clip.mp4",
       "--camera", "cam-b=demo/media/camera_b.mp4", "--alerts-endpoint", ALERTS)
    box_pub = BOX / "keys" / "box.pub.json"
    sh("edge", "console", "keygen", "--data", STATE / "console")
    sh("edge", "trust", "add-console", STATE / "console" / "console.pub", *box)
    for name, password in LOGINS:
        sh("edge", "console", "adduser", name, "--password-stdin", "--data", STATE / "console", stdin=password)

    say("2. SPOC: an issuer key, a watch list for this box only, a deployment window")
    sh("enrol", "keygen", "--out", STATE / "spoc", "--name", "Demo Constabulary SPOC", "--no-passphrase")
    sh("enrol", "build", "--images", HERE / "watchlist", "--refs", HERE / "refs.csv", "--box-key", box_pub,
       "--issuer-key", STATE / "spoc" / "issuer.key", "--expires", utc(now + timedelta(days=7)),
       "--deployment", "demo", "-o", STATE / "usb" / "list.wlb")
    sh("enrol", "authorise", "--issuer-key", STATE / "spoc" / "issuer.key", "--box-key", box_pub,
       "--deployment", "demo", "--list", STATE / "usb" / "list.wlb",
       "--location", "Demo concourse, north entrance", "--camera", "cam-a",
       "--camera", "cam-b", "--start", utc(now - timedelta(minutes=5)), "--end", utc(now + timedelta(hours=8)),
       "--purpose", "Demonstration on public sample media", "--verification", "two",
       "-o", STATE / "usb" / "deployment.auth")
    sh("edge", "trust", "add-issuer", STATE / "spoc" / "issuer.pub", *box)

    say("3. Box: load the window, then the list it names, from the USB stick")
    sh("edge", "deployment", "load", STATE / "usb" / "deployment.auth", *box)
    sh("edge", "watchlist", "load", STATE / "usb" / "list.wlb", *box)

    say("4. Controller: the box runs both cameras; the web console shows its alerts")
    daemon = start("daemon", "edge", "run", *box)
    url = f"http://127.0.0.1:{PORT}/"
    console = start("console", "edge", "console", "--listen", f"127.0.0.1:{PORT}", "--data", STATE / "console",
                    "--box", f"{ALERTS}={box_pub}")
    sh("edge", "status", *box, until_ok=20)
    print(f"\n  The web console: {url}\n  Log in as {LOGINS[0][0]} / {LOGINS[0][1]} (a second controller: "
          f"{LOGINS[1][0]} / {LOGINS[1][1]}).\n", flush=True)
    try:
        if quick:
            controller(url, RUN_SECONDS)
        else:
            print("  The box keeps running until you stop the demo: press Ctrl-C (the demo then carries on: "
                  "the oversight report, the purge, the reconciliation).", flush=True)
            signal.pause()
    except KeyboardInterrupt:
        print()
    finally:
        sh("edge", "status", *box, check=False)
        for proc in (console, daemon):
            proc.send_signal(signal.SIGTERM)
        for proc in (console, daemon):
            proc.wait(60)

    say("5. Oversight: is the log intact, and what happened?")
    sh("edge", "audit", "verify", *box)
    sh("edge", "audit", "report", *box)
    sh("edge", "audit", "report", *box, "--format", "html", "-o", STATE / "report.html")

    say("6. SPOC: purge the list and check the box's deletion receipt")
    sh("edge", "watchlist", "purge", "--reason", "demo finished", "--out", STATE / "receipt.json", *box)
    sh("enrol", "verify-receipt", STATE / "receipt.json", "--box", box_pub)

    say("7. Oversight and SPOC: do the SPOC's register and the box's report agree?")
    sh("edge", "audit", "report", *box, "--format", "json", "-o", STATE / "report.json")
    sh("enrol", "reconcile", STATE / "spoc" / "bundles.jsonl", STATE / "report.json")

    say("8. The force's data office (edge oversight, SQLite): the box's export carried by hand, the register")
    office = STATE / "oversight"
    office.mkdir(exist_ok=True)
    (office / "oversight.toml").write_text(f'[database]\nurl = "oversight.db"\n[[boxes]]\nidentity = "{box_pub}"\n'
                                           'site = "Demo control room"\nsite_kind = "public"\n')
    sh("edge", "audit", "export", *box, "-o", office / "demo-box.export")
    ov = ("-c", office / "oversight.toml")
    sh("edge", "oversight", "migrate", *ov)
    sh("edge", "oversight", "ingest", *ov, "--export", office / "demo-box.export",
       "--register", STATE / "spoc" / "bundles.jsonl")
    sh("edge", "oversight", "report", *ov, "--by", "issuer", check=False)
    sh("edge", "oversight", "reconcile", *ov, check=False)
    print(f"\nDone. Everything the demo made is in {STATE}/ (the HTML report: {STATE / 'report.html'}).")


if __name__ == "__main__":
    main()
