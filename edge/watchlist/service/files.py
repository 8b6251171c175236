"""Bundle files a user or a USB stick hands the box: opened with ``O_NOFOLLOW | O_NONBLOCK``, regular files only
(``fstat``), under the format's size cap, read against a deadline and staged (copied) next to the stored list, so
a FIFO, a device or a symlink on a stick cannot stall the watcher and the box checks the very bytes it keeps."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import time
from pathlib import Path

from edge.errors import EdgeError
from edge.watchlist import bundle
from edge.watchlist.bundle import BundleError
from edge.watchlist.stream import Source

READ_TIMEOUT_S = 60.0  # a bundle (at most bundle.MAX_FILE bytes) must be read within this
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MALFORMED = (ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError, MemoryError,
             UnicodeError, AttributeError)  # what a hostile bundle could make a parser raise


def stage_bundle_file(path, dest: Path, max_size: int | None = None, timeout: float = READ_TIMEOUT_S,
                      issuers: dict[str, bytes] | None = None) -> tuple[str, tuple[int, bytes]]:
    """Copy a bundle a user or a USB stick handed us (a regular file, bounded, read against a deadline:
    ``_copy_user_file``) to ``dest`` (0600, fsynced) in blocks, never whole in memory. Nothing is copied before
    its framing accounts for its exact size and, with ``issuers`` (the trusted issuer keys), before its signature
    verifies where it lies (``signed_where_it_lies``): a keyless file never reaches the disk. Returns its
    SHA-256 (hex) and, from the same pass, (n, SHA-256 of its first n bytes) for n = its size - 64:
    what a version-2 signature covers, so the copy need not be read again to check it."""
    signed, tail, copied = hashlib.sha256(), b"", 0
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise EdgeError(f"cannot write {dest}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            def write(block: bytes) -> None:
                nonlocal tail, copied
                out.write(block)
                copied += len(block)
                if len(block) >= bundle.SIG_LEN:  # all but the last 64 bytes go into the signed digest
                    signed.update(tail)
                    signed.update(memoryview(block)[:-bundle.SIG_LEN])
                    tail = block[-bundle.SIG_LEN:]
                else:
                    joined = tail + block
                    signed.update(joined[:-bundle.SIG_LEN])
                    tail = joined[-bundle.SIG_LEN:]

            check = None if issuers is None else (lambda fd, size: signed_where_it_lies(fd, size, issuers))
            before = _copy_user_file(path, write, max_size, timeout, check)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise EdgeError(f"cannot write {dest}: {exc.strerror}") from None
    whole = signed.copy()
    whole.update(tail)
    if before is not None and before != whole.digest():
        raise BundleError(f"{Path(path).name} changed while it was read: refused")
    return whole.hexdigest(), (max(0, copied - bundle.SIG_LEN), signed.digest())


def signed_where_it_lies(fd: int, size: int, issuers: dict[str, bytes]) -> bytes:
    """Before a byte is copied: the framing accounts for ``size``, the issuer is trusted and its signature
    verifies over the file as it lies (read in place, or mapped: never whole in memory). Returns the file's
    SHA-256, which the copy must match. BundleError otherwise."""
    import mmap

    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from edge.watchlist import bundle_v2

    version, issuer, end = bundle.framing(lambda n, off: os.pread(fd, n, off), size)
    raw = issuers.get(issuer)
    if raw is None:
        raise BundleError(f"signed by an unknown issuer {issuer}: register its key with 'edge trust add-issuer' first")
    whole, prefix = hashlib.sha256(), hashlib.sha256()
    with mmap.mmap(fd, size, prot=mmap.PROT_READ) as m:
        for off in range(0, size, 1 << 20):  # one pass, a block at a time (a slice of the map is a copy)
            block = m[off:off + (1 << 20)]
            whole.update(block)
            if version != bundle.VERSION and off < end:
                prefix.update(block[:end - off])
        signed = prefix.digest() if version != bundle.VERSION else b""
        try:
            key = Ed25519PublicKey.from_public_bytes(raw)
            if version == bundle.VERSION:
                key.verify(m[end:], memoryview(m)[:end])
            else:
                key.verify(m[end:], bundle_v2.SIG_CONTEXT + signed)
        except InvalidSignature:
            raise BundleError(f"bad signature: the file was altered or not signed by issuer {issuer}") from None
    return whole.digest()


def _copy_user_file(path, sink, max_size: int | None, timeout: float, check=None) -> bytes | None:
    """Feed a regular file (no symlink, FIFO or device) of at most ``max_size`` bytes to ``sink`` in
    blocks, within ``timeout`` seconds; EdgeError in one sentence otherwise. ``check(fd, size)`` runs on the
    opened file before anything is fed (its result is returned)."""
    if not path or not isinstance(path, str | Path):
        raise EdgeError("no bundle file given")
    path, cap = Path(path), bundle.MAX_FILE if max_size is None else max_size
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symbolic link
            raise BundleError(f"{path.name} is a symbolic link, not a watch-list bundle: refused") from None
        raise EdgeError(f"cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{path.name} is not a regular file: refused")
        if st.st_size > cap:
            raise BundleError(f"{path.name} is too large to be a watch-list bundle")
        checked = check(fd, st.st_size) if check is not None else None
        got, deadline = 0, time.monotonic() + timeout
        while True:
            chunk = os.read(fd, min(1 << 20, cap + 1 - got))
            if not chunk:
                break
            got += len(chunk)
            if got > cap:
                raise BundleError(f"{path.name} is too large to be a watch-list bundle")
            sink(chunk)
            if time.monotonic() > deadline:
                raise BundleError(f"{path.name} could not be read within {timeout:.0f} s: refused")
        return checked
    except BlockingIOError:
        raise BundleError(f"{path.name} is not a regular file: refused") from None
    except OSError as exc:
        raise EdgeError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def open_bundle_file(path) -> Source:
    """A bundle file (already checked or the box's own) opened for random access, never read whole."""
    if not path or not isinstance(path, str | Path):
        raise EdgeError("no bundle file given")
    path = Path(path)
    try:
        src = Source.open(path)
    except OSError as exc:
        raise EdgeError(f"cannot read {path}: {exc.strerror}") from None
    if src.size > bundle.MAX_FILE:
        src.close()
        raise BundleError(f"{path.name} is too large to be a watch-list bundle")
    return src


def file_safe(text: str) -> str:
    """A list id (chosen by the issuer) as part of a file name: kept when harmless, else a digest."""
    text = str(text)
    if SAFE_NAME.fullmatch(text) and ".." not in text:
        return text
    return "list-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def short(text, limit: int = 300) -> str:
    """Bounded text for a refusal record (never long enough to look like encoded data)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a regular file, read in blocks; EdgeError for anything else (a FIFO put where a list
    was must not hang the box: it is opened without blocking and without following a link)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise EdgeError(f"{Path(path).name} is not a regular file")
        return hashlib.file_digest(f, "sha256").hexdigest()
