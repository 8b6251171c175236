"""`make demo`: the whole product on bundled sample media, each role's commands in turn.

1. engineer  - provisions the box (keys, cameras), makes a console key and registers it
2. SPOC      - makes an issuer key, builds a signed, encrypted watch list for this box only,
               signs a deployment window; the engineer registers the issuer key
3. box       - loads the list and the window (as if from USB), runs both cameras for a while
4. controller- a terminal console prints each alert as it arrives
5. oversight - verifies the tamper-evident log and prints the report
6. SPOC      - purges the list and verifies the box's signed deletion receipt
7. both      - `enrol reconcile`: the SPOC's register of issued lists against the box's report

Every command is the real CLI, printed before it runs. State goes to .demo-state/ (recreated).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
STATE = REPO / ".demo-state"
BOX = STATE / "box"  # the box's state dir (as in demo/edge.toml)
CONFIG = HERE / "edge.toml"
RUN_SECONDS = float(os.environ.get("DEMO_SECONDS", "30"))
BIN = Path(sys.executable).parent


def say(title: str) -> None:
    print(f"\n\033[1m== {title}\033[0m", flush=True)


def sh(*args: str, check: bool = True, env: dict | None = None, quiet: bool = False) -> str:
    shown = " ".join(str(a).replace(str(REPO) + "/", "") for a in args)
    print(f"$ {shown}", flush=True)
    r = subprocess.run([str(BIN / args[0]), *map(str, args[1:])], capture_output=True, text=True,
                       env={**os.environ, **(env or {})}, cwd=REPO)
    out = (r.stdout + r.stderr).strip()
    if out and not quiet:
        print("  " + out.replace("\n", "\n  "), flush=True)
    if check and r.returncode != 0:
        sys.exit(f"demo step failed: {shown}")
    return r.stdout


def utc(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%MZ")


def main() -> None:
    shutil.rmtree(STATE, ignore_errors=True)
    (STATE / "usb").mkdir(parents=True)  # the "USB stick"
    box = ["--config", CONFIG, "--state-dir", BOX]
    now = datetime.now(UTC)

    say("1. Engineer: provision the box and register the control-room console")
    sh("edge", "provision", "--box-id", "demo-box", "--config", STATE / "provisioned.toml", "--state-dir", BOX,
       "--camera", "cam-a=tests/data/media/video/short_hamilton_clip.mp4",
       "--camera", "cam-b=demo/media/camera_b.mp4", "--alerts-endpoint", "tcp://127.0.0.1:5599")
    box_pub = BOX / "keys" / "box.pub.json"
    sh("edge", "console", "keygen", "--data", STATE / "console")
    sh("edge", "trust", "add-console", STATE / "console" / "console.pub", *box)

    say("2. SPOC: an issuer key, a watch list for this box only, a deployment window")
    sh("enrol", "keygen", "--out", STATE / "spoc", "--name", "Demo Constabulary SPOC", "--no-passphrase")
    sh("enrol", "build", "--images", HERE / "watchlist", "--refs", HERE / "refs.csv", "--box-key", box_pub,
       "--issuer-key", STATE / "spoc" / "issuer.key", "--expires", utc(now + timedelta(days=7)),
       "--deployment", "demo", "-o", STATE / "usb" / "list.wlb")
    sh("enrol", "authorise", "--issuer-key", STATE / "spoc" / "issuer.key", "--box-key", box_pub,
       "--deployment", "demo", "--list", STATE / "usb" / "list.wlb",
       "--location", "Demo concourse, north entrance", "--camera", "cam-a",
       "--camera", "cam-b", "--start", utc(now - timedelta(minutes=5)), "--end", utc(now + timedelta(hours=8)),
       "--purpose", "Demonstration on public sample media", "-o", STATE / "usb" / "deployment.auth")
    sh("edge", "trust", "add-issuer", STATE / "spoc" / "issuer.pub", *box)

    say("3. Box: load the window, then the list it names, from the USB stick")
    sh("edge", "deployment", "load", STATE / "usb" / "deployment.auth", *box)
    sh("edge", "watchlist", "load", STATE / "usb" / "list.wlb", *box)

    say(f"4. Box runs both cameras for {RUN_SECONDS:.0f} s; a terminal console prints alerts")
    log = open(STATE / "daemon.log", "w")
    daemon = subprocess.Popen([str(BIN / "edge"), "run", *map(str, box), "--duration", str(RUN_SECONDS)],
                              stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    print(f"$ edge run --config demo/edge.toml --duration {RUN_SECONDS:.0f}   (log: .demo-state/daemon.log)")
    time.sleep(3)
    sh("edge", "status", *box, check=False)
    watcher = threading.Thread(target=sh, args=(
        "edge", "watch", f"tcp://127.0.0.1:5599={box_pub}", "--data", STATE / "console",
        "--timeout", str(RUN_SECONDS - 4)), kwargs={"check": False}, daemon=True)
    watcher.start()
    watcher.join()
    sh("edge", "status", *box, check=False)
    daemon.wait(60)
    log.close()

    say("5. Oversight: is the log intact, and what happened?")
    sh("edge", "audit", "verify", *box, check=False)
    sh("edge", "audit", "report", *box, check=False)
    sh("edge", "audit", "report", *box, "--format", "html", "-o", STATE / "report.html", check=False)

    say("6. SPOC: purge the list and check the box's deletion receipt")
    sh("edge", "watchlist", "purge", "--reason", "demo finished", "--out", STATE / "receipt.json", *box)
    sh("enrol", "verify-receipt", STATE / "receipt.json", "--box", box_pub)

    say("7. Oversight and SPOC: do the SPOC's register and the box's report agree?")
    sh("edge", "audit", "report", *box, "--format", "json", "-o", STATE / "report.json")
    sh("enrol", "reconcile", STATE / "spoc" / "bundles.jsonl", STATE / "report.json")
    print(f"\nDone. Everything the demo made is in {STATE.relative_to(REPO)}/ "
          "(the HTML report: .demo-state/report.html).")


if __name__ == "__main__":
    main()
