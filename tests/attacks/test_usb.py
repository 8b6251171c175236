"""Hostile USB sticks (issue 15, item 2): the watcher opens only regular files (no FIFO, device or
symlink), bounded in size, and expiry runs on its own timer, so nothing on a stick keeps an expired
list in force."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from attacks.hostile import Box, fifo, t, unblock_fifo
from edge.watchlist import bundle

REPO = Path(__file__).resolve().parents[2]


def _tick_returns(box: Box, seconds: float = 10.0) -> bool:
    th = threading.Thread(target=box.svc.tick, daemon=True)
    th.start()
    th.join(seconds)
    return not th.is_alive()


@pytest.fixture
def usb(tmp_path):
    d = tmp_path / "usb"
    d.mkdir()
    return d


def test_a_fifo_named_wlb_does_not_stall_the_watcher(tmp_path, usb):
    box = Box(tmp_path, usb=[usb])
    f = fifo(usb / "a.wlb")
    (usb / "b.wlb").write_bytes(box.bundle(sequence=3))
    try:
        assert _tick_returns(box), "the watcher hung on a FIFO"
        assert box.matches_alex() and box.svc.status()["sequence"] == 3  # the real list behind it still loads
        assert any("a.wlb" in r["data"].get("file", "") for r in box.records("watchlist_refused"))
    finally:
        unblock_fifo(f)


def test_an_expired_list_goes_at_expiry_while_a_fifo_sits_on_the_stick(tmp_path, usb):
    box = Box(tmp_path, usb=[usb])
    box.svc.load(box.file(box.bundle(sequence=1, not_after=t(seconds=3))))
    f = fifo(usb / "stall.wlb")
    box.svc.poll = 0.1
    box.svc.start()
    try:
        deadline = time.monotonic() + 15
        while box.matcher.current is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert box.matcher.current is None, "the expired list stayed in force"
        assert [r["data"]["reason"] for r in box.records("watchlist_purged")] == ["expired"]
    finally:
        unblock_fifo(f)
        box.svc.stop()


def test_a_symlink_on_the_stick_is_not_followed(tmp_path, usb):
    box = Box(tmp_path, usb=[usb])
    real = box.file(box.bundle(sequence=3), "elsewhere.wlb")
    os.symlink(real, usb / "link.wlb")
    assert _tick_returns(box)
    assert box.matcher.current is None
    assert any("link.wlb" in r["data"].get("file", "") for r in box.records("watchlist_refused"))


def test_a_symlink_to_dev_zero_is_not_read(tmp_path, usb):
    """In a child with 1.5 GiB of address space: following the link would read until MemoryError."""
    os.symlink("/dev/zero", usb / "zero.wlb")
    code = f"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29))
sys.path[:0] = [{str(REPO)!r}, {str(REPO / "tests")!r}]
from pathlib import Path
from attacks.hostile import Box
box = Box(Path({str(tmp_path)!r}), usb=[Path({str(usb)!r})])
box.svc.tick()
assert box.matcher.current is None
print("refused", len(box.records("watchlist_refused")))
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "refused 1", r.stdout + r.stderr[-2000:]


def test_a_sparse_file_over_the_cap_is_skipped(tmp_path, usb):
    box = Box(tmp_path, usb=[usb])
    with open(usb / "huge.wlb", "wb") as f:
        f.truncate(bundle.MAX_FILE + 1)
    assert _tick_returns(box) and box.matcher.current is None
    assert box.records("watchlist_refused")


def test_a_stick_with_many_files_is_looked_at_in_bounded_rounds(tmp_path, usb):
    box = Box(tmp_path, usb=[usb])
    for i in range(200):
        (usb / f"junk{i:03d}.wlb").write_bytes(b"junk")
    assert _tick_returns(box)
    assert len(box.records("watchlist_refused")) <= 60


def test_junk_files_first_in_the_listing_do_not_hide_a_real_list(tmp_path, usb):
    box = Box(tmp_path, usb=[usb])
    for i in range(120):
        (usb / f"a{i:03d}.wlb").write_bytes(b"junk")
    (usb / "z.wlb").write_bytes(box.bundle(sequence=3))
    for _ in range(4):
        assert _tick_returns(box)
    assert box.matches_alex(), "the real list behind the junk was never looked at"


def test_a_list_past_its_end_never_matches_even_before_the_purge(tmp_path):
    box = Box(tmp_path)
    box.svc.load(box.file(box.bundle(sequence=1, not_after=t(seconds=2))))
    assert box.matches_alex()
    time.sleep(2.5)  # no tick, no timer running: nothing has purged it yet
    assert box.matcher.current is not None and not box.matches_alex()


# --- issue 24, item 9: size and framing are checked before anything is copied -------------------------------

GIB = 1 << 30


def _keyless(kind: str) -> tuple[bytes, bytes]:
    """(start, end) of a 1 GiB sparse file with no valid signature: what each kind's framing claims."""
    import json
    import struct

    from attacks.hostile import ISSUER
    from edge import identity

    trusted = bytes.fromhex(identity.key_id(identity.raw_public(ISSUER)))
    kid = b"\x42" * 8 if kind == "unknown issuer, framing consistent" else trusted
    version = 1 if kind.startswith("version 1") else 2
    h = json.dumps({"list_id": "L-1", "format": "edge-watchlist"}).encode()
    pos = bundle.PREFIX.size + len(h)
    clen = 100 if kind == "framing promises another length" else GIB - pos - 8 - bundle.SIG_LEN
    if kind == "zeros":
        return b"", b""
    return bundle.PREFIX.pack(bundle.MAGIC, version, kid, len(h)) + h + struct.pack(">Q", clen), b"\0" * 64


KEYLESS = ["zeros", "framing promises another length", "unknown issuer, framing consistent",
           "trusted issuer's key id, framing consistent, no signature",
           "version 1 framing, trusted issuer's key id, no signature"]


@pytest.mark.parametrize("kind", KEYLESS)
def test_a_keyless_1_gib_file_is_refused_before_it_is_copied(tmp_path, usb, kind):
    """In a child that may write files of 32 MiB at most: copying the file in (to the box's state dir, or to the
    USB unit's staging folder) would fail with "File too large" instead of the refusal's own reason."""
    head, tail = _keyless(kind)
    path = usb / "big.wlb"
    with open(path, "wb") as f:
        f.write(head)
        f.truncate(GIB)
        f.seek(GIB - len(tail))
        f.write(tail)
    code = f"""
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (32 << 20, 32 << 20))
sys.path[:0] = [{str(REPO)!r}, {str(REPO / "tests")!r}]
from pathlib import Path
from attacks.hostile import Box
from edge.errors import EdgeError
from firmware.usb import copy_bundles
box = Box(Path({str(tmp_path)!r}))
try:
    box.svc.load(Path({str(path)!r}), via="usb", mount={str(usb)!r})
except EdgeError as exc:
    print("refused:", exc)
said = []
dest = Path({str(tmp_path)!r}) / "stage"
dest.mkdir()
from edge import identity
staged = copy_bundles(Path({str(usb)!r}), dest, said.append, identity.issuers(box.state))
print("staged:", [p.name for p in staged], said)
print("recorded:", len(box.records("watchlist_refused")))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    out = r.stdout
    assert r.returncode == 0 and "refused:" in out and "recorded: 1" in out, out + r.stderr[-2000:]
    assert "too large" not in out and "cannot write" not in out, out
    assert "staged: []" in out, out
