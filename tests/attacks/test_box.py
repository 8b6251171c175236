"""The box's own surfaces (issue 15, item 7): no unauthenticated TCP control socket, a user without
permission gets one sentence, and USB staging copies only regular files."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from attacks.hostile import Box, fifo, unblock_fifo, write_config
from edge import config
from edge.errors import EdgeError
from edge.pipeline.control import ControlServer

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5600", "tcp://0.0.0.0:5600", "tcp://*:5600",
                                      "ws://127.0.0.1:5600"])
def test_a_tcp_control_endpoint_is_refused(tmp_path, endpoint):
    text = f'box_id = "b"\n[alerts]\ncontrol_endpoint = "{endpoint}"\n[[cameras]]\nid = "c"\nsource = "x.mp4"\n'
    with pytest.raises(EdgeError, match="control_endpoint"):
        config.parse(text, state_dir=str(tmp_path))


def test_the_control_server_itself_will_not_bind_tcp():
    with pytest.raises(EdgeError, match="TCP is refused"):
        ControlServer("tcp://127.0.0.1:5601").start()


def _as_nobody(args: list[str]) -> tuple[int, str, str]:
    """Run an `edge` command in a forked child that became user nobody: (exit code, output, exception).
    (The interpreter lives where nobody cannot read, so the child keeps the parent's loaded modules.)"""
    import json

    from click.testing import CliRunner

    import edge.audit.verify  # noqa: F401 - loaded before the child loses the right to read them
    import edge.pipeline.control  # noqa: F401
    import edge.watchlist.service  # noqa: F401
    from edge.cli import cli  # first: it registers the command groups

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            res = CliRunner().invoke(cli, args)
            exc = "" if res.exception is None or isinstance(res.exception, SystemExit) else repr(res.exception)
            os.write(w, json.dumps([res.exit_code, res.output, exc]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(data))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
@pytest.mark.parametrize("args", [["watchlist", "status"], ["watchlist", "purge"], ["status"], ["audit", "verify"],
                                  ["watchlist", "load", "x.wlb"]])
def test_a_user_without_permission_gets_one_sentence(args):
    root = Path(tempfile.mkdtemp(prefix="edge-perm-"))
    try:
        os.chmod(root, 0o755)
        box = Box(root)  # the state dir is root's, 0700, as /var/lib/edge is the edge user's
        os.chmod(box.state, 0o700)
        cfg = write_config(box)
        os.chmod(cfg, 0o644)
        (root / "x.wlb").write_bytes(box.bundle(sequence=2))
        os.chmod(root / "x.wlb", 0o644)
        code, out, exc = _as_nobody([*args[:2], "--config", str(cfg), *[str(root / a) for a in args[2:]]])
        assert exc == "" and code == 1 and len(out.strip().splitlines()) == 1, (code, out, exc)
        if args == ["watchlist", "status"]:
            assert "permission denied" in out, out
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_usb_staging_copies_only_regular_files(tmp_path):
    from firmware.usb import copy_bundles

    stick, dest = tmp_path / "stick", tmp_path / "stage"
    stick.mkdir()
    dest.mkdir()
    (stick / "good.wlb").write_bytes(Box(tmp_path).bundle(sequence=1))
    os.symlink("/dev/zero", stick / "zero.wlb")
    os.symlink(stick / "good.wlb", stick / "link.wlb")
    f = fifo(stick / "pipe.wlb")
    try:
        said = []
        out = copy_bundles(stick, dest, said.append)
        assert [p.name for p in out] == ["good.wlb"]
        assert len(said) == 3 and all("skipped" in s for s in said)
    finally:
        unblock_fifo(f)
