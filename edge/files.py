"""Files, the one way: whole-or-nothing writes, bounded reads of files a user names, and ownership of
what root creates under the state dir. A leaf: imports nothing of ours but ``edge.errors``."""

from __future__ import annotations

import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from edge.errors import EdgeError

StrPath = str | os.PathLike[str]  # what every path parameter takes
MAX_SMALL_FILE = 1 << 20  # a key, a trust file, a deployment window, a receipt: far smaller


def write_atomic(path: str | os.PathLike[str], data: bytes | Callable[[BinaryIO], object], mode: int = 0o644) -> None:
    """Write a file whole or not at all: temp file in the same folder, fsync, rename. ``data`` is the bytes, or
    a function writing them to the file it is given (a big bundle, a plot: streamed, never whole in memory)."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise EdgeError(f"cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise EdgeError(f"cannot write {path}: {exc.strerror}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_text(path: str | os.PathLike[str], what: str = "file", max_bytes: int | None = MAX_SMALL_FILE,
              encoding: str = "utf-8") -> str:
    """A small text file a user named, or one EdgeError sentence saying why it cannot be read. It must be a
    regular file (a FIFO would block, a device never end), and no more than ``max_bytes`` of it is read."""
    path = Path(path)
    too_large = f"{path} is too large to be a {what}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO opens at once, to be refused
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise EdgeError(f"{path} is not a regular file: give the {what} itself")
            if max_bytes is not None and st.st_size > max_bytes:
                raise EdgeError(too_large)
            data = f.read() if max_bytes is None else f.read(max_bytes + 1)
        if max_bytes is not None and len(data) > max_bytes:  # it grew since
            raise EdgeError(too_large)
        return data.decode(encoding)
    except OSError as exc:
        raise EdgeError(f"cannot read {what} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise EdgeError(f"{path} is not a text {what}") from None


def read_json(path: str | os.PathLike[str], what: str = "file", max_bytes: int | None = MAX_SMALL_FILE) -> Any:
    """A small JSON file, or one EdgeError sentence naming it (missing, unreadable, not JSON)."""
    text = read_text(path, what, max_bytes)
    try:
        return json.loads(text)
    except ValueError:
        raise EdgeError(f"{what} {path} is damaged: it is not valid JSON") from None


def match_owner(path: str | os.PathLike[str], like: str | os.PathLike[str]) -> None:
    """Run as root (``edge deployment load``, ``edge audit export``, a firmware apply), give what we create or
    replace to the owner of ``like``, so the daemon (user ``edge``) can still read and append to it."""
    if os.geteuid() == 0:
        st = os.stat(like)
        if os.stat(path).st_uid != st.st_uid or os.stat(path).st_gid != st.st_gid:
            os.chown(path, st.st_uid, st.st_gid)


def append_line(path: str | os.PathLike[str], line: str, what: str = "the record") -> None:
    """Append one line to a private (0600) journal file and fsync it, or one EdgeError sentence."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as f:
            f.write(line.rstrip("\n") + "\n")
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise EdgeError(f"cannot record {what} in {path}: {exc.strerror}") from None


_warned: set[tuple[object, ...]] = set()


def warn_once(log: logging.Logger, path: str | os.PathLike[str], message: str) -> None:
    """Log ``message`` as a warning once per version (size, mtime) of ``path``: a damaged file read again
    every few seconds is reported, not repeated every few seconds."""
    try:
        st = os.stat(path)
        key: tuple[object, ...] = (str(path), st.st_size, st.st_mtime_ns, message)
    except OSError:
        key = (str(path), message)
    if key not in _warned:
        _warned.add(key)
        log.warning("%s", message)
