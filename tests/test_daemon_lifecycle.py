"""The daemon's lifecycle: what `edge run` sets up, and what the library leaves alone.

Real daemons (in a subprocess, or in this process with their real audit log, CURVE alert channel,
watch-list service threads and control socket).
"""

from __future__ import annotations

import subprocess
import sys

from conftest import edge_cmd, free_port, write_config


def _idle_config(tmp_path):
    """A box whose one camera is disabled: the daemon runs with no camera process."""
    return write_config(tmp_path / "edge.toml", [{"id": "cam-a", "source": "a.mp4", "enabled": False}], None,
                        f"tcp://127.0.0.1:{free_port()}")


def test_the_library_leaves_the_root_logger_alone_and_edge_run_sets_it_up(tmp_path):
    cfg = _idle_config(tmp_path)
    code = ("import logging, sys\n"
            "from edge import config\n"
            "from edge.pipeline.daemon import Daemon\n"
            "root = logging.getLogger()\n"
            "Daemon(config.load(sys.argv[1])).run(duration=0.5)\n"
            "print(len(root.handlers), root.level)\n")
    r = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", str(30)], r.stdout  # no handler added, level still WARNING
    r = subprocess.run(edge_cmd("run", "--config", str(cfg), "--duration", "0.5"), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert " INFO edge: edge daemon test-box started" in r.stderr, r.stderr  # the command configures logging
