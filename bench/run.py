"""`make bench`: every benchmark in one run, one process tree, tables printed and saved.

Sections (each also runs alone as `python -m bench.NAME`):
- pipeline: the naive per-frame face_recognition loop vs our pipeline on the Hamilton clip
- walks:    people walking across 1080p cameras: tracks, encodes and alerts per walk vs the naive loop
- encoder:  ms per face and faces/s/core for each encoder candidate
- accuracy: open-set FNIR/FPIR on lfw-dev (held-out halves, 6 splits), dlib and yunet-mobilefacenet side by side at
  list sizes 100 and 1,000, each decision on top measured (rules, fusion, references, mirrors, cohorts), 10,000 modelled
- scale:    matching against 100k / 1M templates, list load time, memory
- cameras:  2, 4, 8 feeds of 1080p 25 fps on this box; crowd clip (faces per frame)
- smallfaces: a busy street, faces 40-160 px: recall by face size and yaw next to the naive loop; both
            cameras live (MPEG-4 file and RTSP/H.264), decode cost
- boxes:    three boxes (own processes, keys, state) feeding one console: lost, duplicated, order
- kill9:    the daemon killed with SIGKILL 20 times while alerts flow: nothing lost or duplicated
- fuzz:     the long fuzz run over every parser that takes outside input
- attacks:  the long variants of tests/attacks (floods, 2**64 acks, 1,000 refused keys, USB junk, guessing)
- fleet:    the oversight service for 50 boxes' year of logs, SQLite vs PostgreSQL: ingest rate, the fleet report,
            database size, catch-up after 72 h offline
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import time
from pathlib import Path

SECTIONS = ["pipeline", "walks", "encoder", "accuracy", "scale", "cameras", "smallfaces", "boxes", "kill9", "fuzz",
            "attacks", "fleet"]
OUT = Path(__file__).resolve().parent / "out" / "results.md"


class Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
            st.flush()
        return len(s)


def commit() -> str:
    """The commit measured, and whether the tree differed from it (docs/bench-results.md names it; a test checks
    that the code has not changed since)."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=OUT.parents[2], capture_output=True, text=True).stdout.strip()

    sha = git("rev-parse", "HEAD") or "unknown"
    return sha + (" (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else " (clean)")


def main(argv: list[str] | None = None) -> None:
    names = (argv if argv is not None else sys.argv[1:]) or SECTIONS
    OUT.parent.mkdir(exist_ok=True)
    with OUT.open("w") as f, contextlib.redirect_stdout(Tee(sys.stdout, f)):
        print(f"# make bench — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
        print(f"commit {commit()}, sections: {', '.join(names)}\n")
        for name in names:
            print(f"\n## {name}\n")
            t0 = time.monotonic()
            importlib.import_module(f"bench.{name}").main()
            print(f"\n({name}: {time.monotonic() - t0:.0f} s)")
    print(f"\nsaved to {OUT}")


if __name__ == "__main__":
    main()
