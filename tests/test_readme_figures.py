"""The README's speed and accuracy tables come from one `make bench` run of the code as it stands.

docs/bench-results.md is that run's bench/out/results.md, kept: it names the commit it measured. Each README
table marked ``<!-- make bench: SECTION -->`` may only show figures that the run printed in that section, and
the code the run measured (edge/, bench/, the lock) must be the code here: a change to it after the run makes
the README's figures someone else's, and this test says so until the bench is run again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import run

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "bench-results.md"
MARK = re.compile(r"<!-- make bench: (\w+) -->\n+((?:\|.*\|\n)+)")
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:/\d+)?")
MEASURED = ("edge", "bench", "requirements.lock", "pyproject.toml")


def _sections() -> dict[str, str]:
    text = RESULTS.read_text()
    parts = re.split(r"^## (\w+)\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def _marked_tables() -> list[tuple[str, list[str]]]:
    return [(m.group(1), m.group(2).strip().splitlines()[2:]) for m in MARK.finditer((ROOT / "README.md").read_text())]


def test_the_run_has_every_section_and_names_a_clean_commit():
    text = RESULTS.read_text()
    assert re.search(r"^commit [0-9a-f]{40} \(clean\)", text, re.M), "the run must name the commit it measured"
    assert set(_sections()) >= set(run.SECTIONS), set(run.SECTIONS) - set(_sections())


def test_every_figure_in_the_readmes_bench_tables_was_printed_by_that_section_of_the_run():
    tables = _marked_tables()
    assert {s for s, _ in tables} >= {"accuracy", "encoder", "smallfaces", "pipeline", "walks"}, tables
    sections = _sections()
    for section, rows in tables:
        printed = set(NUMBER.findall(sections[section]))
        for row in rows:
            cells = [c.strip() for c in row.strip("|").split("|")][1:]  # the first column names the row
            missing = [n for c in cells for n in NUMBER.findall(c) if n not in printed]
            assert not missing, f"README ({section}): {row!r} shows {missing}, which that run did not print"


def test_the_code_measured_is_the_code_here():
    sha = re.search(r"^commit ([0-9a-f]{40})", RESULTS.read_text(), re.M)
    assert sha
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    known = subprocess.run(["git", "cat-file", "-e", f"{sha.group(1)}^{{commit}}"], cwd=ROOT, capture_output=True)
    if known.returncode:
        pytest.skip("the measured commit is not in this clone's history (a shallow clone)")
    diff = subprocess.run(["git", "diff", "--stat", sha.group(1), "--", *MEASURED], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    assert diff == "", f"changed since the bench run of {sha.group(1)[:10]} (run make bench again):\n{diff}"
