"""USB sticks: mount read-only, copy the ``.wlb`` watch lists off, unmount, hand each to the daemon.

Run by ``edge-usb@<kernel name>.service``, which ``99-edge-usb.rules`` starts when a USB stick with a
file system is plugged in::

    python -m firmware.usb /dev/sdb1

The stick is mounted ``ro,noexec,nosuid,nodev`` only while the top-level ``*.wlb`` files are copied
(regular files, no symlinks, bounded size) into a staging folder the service user can read; then it
is unmounted, so pulling it out early cannot hurt. Each copy goes to ``edge watchlist load`` run as
the service user: the daemon verifies it (the list in force stays if anything is wrong) and tells the
console ("watchlist_loaded" / "watchlist_refused" events). Exit status 1 if any file was refused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from edge.errors import EdgeError
from edge.watchlist.bundle import MAX_FILE, framing
from edge.watchlist.service.files import signed_where_it_lies

MOUNT_OPTIONS = "ro,noexec,nosuid,nodev,noatime"
MAX_FILES = 20
MAX_SIZE = MAX_FILE  # the watch-list format's own limit (a 10,000-entry list with images is ~135 MB)
STAGE_ROOT = "/run/edge-usb"


def copy_bundles(src: Path, dest: Path, log=print, issuers: dict[str, bytes] | None = None,
                 refused: list[tuple[str, str]] | None = None) -> list[Path]:
    """Copy the top-level *.wlb regular files of ``src`` to ``dest``; returns the copies. Each file's framing
    must account for its size and, with ``issuers`` (the box's trusted issuer keys), its signature verify where
    it lies, before a byte of it is copied. Each file not copied is said (``log``) and, when ``refused`` is
    given, added to it as (file name, why)."""
    out = []

    def skip(name: str, why: str) -> None:
        log(f"{name}: skipped ({why})")
        if refused is not None:
            refused.append((name, why))

    for entry in sorted(os.scandir(src), key=lambda e: e.name):
        if not entry.name.lower().endswith(".wlb") or entry.name.startswith("."):
            continue
        st = entry.stat(follow_symlinks=False)
        if not stat.S_ISREG(st.st_mode):
            skip(entry.name, "not a regular file")
        elif st.st_size > MAX_SIZE:
            skip(entry.name, f"larger than {MAX_SIZE >> 20} MiB")
        elif len(out) >= MAX_FILES:
            skip(entry.name, f"more than {MAX_FILES} .wlb files")
        else:
            copy = dest / entry.name
            try:
                _copy_regular(entry.path, copy, issuers)
            except ValueError as exc:
                skip(entry.name, str(exc))
                copy.unlink(missing_ok=True)
                continue
            os.chmod(copy, 0o640)
            out.append(copy)
    return out


def _copy_regular(src: str, dest: Path, issuers: dict[str, bytes] | None = None) -> None:
    """Copy a file that is, when opened, still a regular file no larger than MAX_SIZE (no symlink swapped
    in between the look and the open, no FIFO that would block)."""
    fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f, open(dest, "xb") as g:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SIZE:
            raise ValueError("not a regular file of at most the size limit")
        try:  # its framing must account for its exact size before a byte is copied (a 1 GiB file of zeros is not)
            framing(lambda n, off: os.pread(f.fileno(), n, off), st.st_size)
            if issuers is not None:
                signed_where_it_lies(f.fileno(), st.st_size, issuers)
        except EdgeError as exc:
            raise ValueError(str(exc)) from None
        copied = 0
        while chunk := f.read(1 << 20):
            copied += len(chunk)
            if copied > MAX_SIZE:
                raise ValueError("it grew past the size limit")
            g.write(chunk)


def load_all(files: list[Path], edge_cmd: list[str], config: str, log=print) -> int:
    """``edge watchlist load FILE`` for each; returns how many were refused."""
    refused = 0
    for f in files:
        r = subprocess.run([*edge_cmd, "watchlist", "load", "--config", config, str(f)],
                           capture_output=True, text=True, timeout=180)
        msg = (r.stdout + r.stderr).strip().splitlines()
        log(f"{f.name}: {msg[-1] if msg else 'no output'}")
        refused += r.returncode != 0
    return refused


def service_user(name: str):
    try:
        return pwd.getpwnam(name) if os.geteuid() == 0 else None
    except KeyError:
        return None


def _issuers(config: str) -> dict[str, bytes] | None:
    """The box's trusted issuer keys (None when its config cannot be read: framing is still checked)."""
    from edge import config as config_mod
    from edge import identity

    try:
        return identity.issuers(config_mod.load(config).state_dir)
    except (EdgeError, OSError):
        return None


def _record_refusals(config: str, device: str, refused: list[tuple[str, str]], log) -> None:
    """Every refusal is recorded: the files refused at staging go in the box's audit log (watchlist_refused,
    arrived by usb) as those `edge watchlist load` refuses do."""
    if not refused:
        return
    from edge import config as config_mod
    from edge.audit.log import record

    try:
        state_dir = config_mod.load(config).state_dir
        for name, why in refused:
            record(state_dir, "watchlist_refused", file=name[:200], arrived="usb", mount=str(device)[:200],
                   reason=f"refused before it was copied: {why}"[:300])
    except (EdgeError, OSError) as exc:
        log(f"could not record the refusals in the audit log: {exc}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m firmware.usb", description=__doc__.splitlines()[0])
    ap.add_argument("device", help="the block device, e.g. /dev/sdb1 (or a folder, for testing)")
    ap.add_argument("--config", default="/etc/edge/edge.toml")
    ap.add_argument("--user", default="edge", help="run 'edge watchlist load' as this user (when root)")
    args = ap.parse_args(argv)
    log = lambda m: print(f"edge-usb {args.device}: {m}", flush=True)
    pw = service_user(args.user)
    if pw is not None:
        Path(STAGE_ROOT).mkdir(mode=0o755, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix="stage-", dir=STAGE_ROOT if pw else None))
    mnt = None
    try:
        src = Path(args.device)
        if not src.is_dir():  # a device: mount it privately for the copy only
            mnt = Path(tempfile.mkdtemp(prefix="mnt-", dir=stage.parent))
            subprocess.run(["mount", "-o", MOUNT_OPTIONS, str(src), str(mnt)], check=True, timeout=60)
            src = mnt
        skipped: list[tuple[str, str]] = []  # (file, why) of each file refused before it was copied
        files = copy_bundles(src, stage, log, _issuers(args.config), skipped)
        _record_refusals(args.config, args.device, skipped, log)
        if mnt is not None:
            subprocess.run(["umount", str(mnt)], check=True, timeout=60)
            mnt.rmdir()
            mnt = None
        if not files:
            log("no .wlb watch-list files found" if not skipped else "no .wlb file could be copied")
            return 1 if skipped else 0
        edge_cmd = [str(Path(sys.executable).parent / "edge")]
        if pw is not None:
            os.chown(stage, 0, pw.pw_gid)
            for f in files:
                os.chown(f, 0, pw.pw_gid)
            os.chmod(stage, 0o750)
            edge_cmd = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups", "--", *edge_cmd]
        return 1 if load_all(files, edge_cmd, args.config, log) or skipped else 0
    except (OSError, subprocess.SubprocessError) as exc:
        log(f"failed: {exc}")
        return 1
    finally:
        if mnt is not None:  # a copy failed half-way: never leave the stick mounted
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=60)
            with contextlib.suppress(OSError):
                mnt.rmdir()
        shutil.rmtree(stage, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
