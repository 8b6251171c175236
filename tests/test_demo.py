"""`make demo-ci` (`python -m demo.run --quick`): the whole product end to end as a newcomer sees it (issue 26).

The real commands on the bundled media: provisioning, a signed list and window, the box running both
cameras, the web console started with its URL and demo logins printed, two scripted controllers (the
window requires two people) who log in and verify the first alert through the console's own API, then
the oversight report, the purge with its receipt and the reconciliation. It exits by itself, and no step
prints an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import free_port

REPO = Path(__file__).resolve().parents[1]


def test_the_quick_demo_runs_end_to_end_with_the_web_console_and_prints_no_error(tmp_path):
    port = free_port()
    env = {**os.environ, "DEMO_STATE": str(tmp_path / "demo"), "DEMO_PORT": str(port),
           "DEMO_ALERTS": f"tcp://127.0.0.1:{free_port()}", "DEMO_SECONDS": "40"}
    r = subprocess.run([sys.executable, "-m", "demo.run", "--quick"], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=400)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert f"The web console: http://127.0.0.1:{port}/" in out and "Log in as alice / " in out
    assert "alice logged in to the web console" in out and "bob logged in to the web console" in out
    assert "alice confirmed the alert for WL-" in out and "a second operator must now verify" in out
    assert "bob sees: second verification, verified by alice; her choice hidden" in out
    assert "verified (first): alice confirmed (approached)" in out  # the report names both people
    assert "verified (second): bob confirmed (approached)" in out
    assert not [ln for ln in out.splitlines() if "error" in ln.lower() or "traceback" in ln.lower()], out[-4000:]
    assert "decisions (one per encounter): confirmed 1" in out  # the report counts the controller's decision
    assert "reconcile" in out and "Done." in out
