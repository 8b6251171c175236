"""mypy over edge/ and enrol/ as configured in pyproject.toml reports no error at all: every module, the
bodies of untyped functions included, and the primitives, the formats and the crypto (the strict modules:
every function typed, no generic without its parameters) strictly. Nothing is waved through: no
``# type: ignore`` without its error code, and only third-party modules without types skip their imports."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STRICT_AT_LEAST = {"edge.codec", "edge.files", "edge.identity", "edge.watchlist.receipt", "edge.watchlist.bundle",
                   "edge.watchlist.bundle_v2", "edge.alerts.messages", "edge.alerts.protocol", "edge.audit.log",
                   "edge.audit.verify", "edge.deployment", "edge.watchlist.operating", "enrol.keys", "firmware.bundle"}
UNTYPED_THIRD_PARTY = {"dlib", "onnxruntime", "tqdm"}  # ship neither types nor stubs


def mypy_errors(root: Path = ROOT) -> list[str]:
    cache = f"/tmp/edge-mypy-cache-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}"  # one per checkout
    r = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", "--cache-dir", cache],
                       cwd=root, capture_output=True, text=True, timeout=900)
    errors = [ln for ln in r.stdout.splitlines() if ": error:" in ln]
    assert errors or r.returncode == 0, r.stdout + r.stderr  # mypy itself failed (bad config, crash)
    return errors


def test_mypy_reports_no_error():
    errors = mypy_errors()
    assert not errors, f"{len(errors)} mypy errors:\n" + "\n".join(errors[:60])


def test_the_checks_are_not_turned_off():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert set(conf["files"]) == {"edge", "enrol"}
    assert conf.get("check_untyped_defs") and not conf.get("ignore_missing_imports") and not conf.get("ignore_errors")
    strict = {m for o in conf["overrides"] if o.get("disallow_untyped_defs") and o.get("disallow_any_generics")
              for m in o["module"]}
    assert STRICT_AT_LEAST <= strict, sorted(STRICT_AT_LEAST - strict)
    for o in conf["overrides"]:
        assert not o.get("ignore_errors"), o["module"]
        if o.get("ignore_missing_imports"):
            assert set(o["module"]) <= UNTYPED_THIRD_PARTY, o["module"]
    bare = [f"{p.relative_to(ROOT)}:{i}" for top in ("edge", "enrol") for p in sorted((ROOT / top).rglob("*.py"))
            for i, ln in enumerate(p.read_text().splitlines(), 1) if re.search(r"#\s*type:\s*ignore(?!\[)", ln)]
    assert not bare, f"# type: ignore without an error code: {bare}"
