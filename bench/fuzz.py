"""The long fuzz run: tests/test_fuzz.py with many more inputs per parser than `make test` uses.

Prints how many inputs each parser was given and that none crashed (pytest fails otherwise).
Run alone: python -m bench.fuzz        (EDGE_FUZZ_EXAMPLES, default 5000 per target; ~5 minutes)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(examples: int = 5000) -> list[dict]:
    env = {**os.environ, "EDGE_FUZZ_EXAMPLES": str(examples)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "tests/test_fuzz.py"],
                       cwd=REPO, env=env, capture_output=True, text=True)
    rows = []
    for line in r.stdout.splitlines():
        if line.startswith("fuzz "):  # "fuzz NAME: N inputs, 0 crashes"
            name, rest = line[5:].rsplit(": ", 1)
            rows.append({"parser": name, "inputs": int(rest.split()[0]), "crashes": 0})
    if r.returncode != 0:
        tail = "\n".join(r.stdout.splitlines()[-15:])
        raise SystemExit(f"the long fuzz run found a failure:\n{tail}")
    return rows


def main() -> None:
    examples = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "5000"))
    rows = run(examples)
    print(f"hypothesis, up to {examples} generated inputs per property:\n")
    print("| parser | inputs tried | crashes |\n|---|---:|---:|")
    for r in rows:
        print(f"| {r['parser']} | {r['inputs']:,} | {r['crashes']} |")
    print(f"| total | {sum(r['inputs'] for r in rows):,} | 0 |")


if __name__ == "__main__":
    main()
