"""The chunked authenticated stream of bundle version 2 (as age's STREAM), and where its bytes come from.

The plaintext is cut into 64 KiB chunks (the last one may be shorter; an empty plaintext is one empty
chunk). Chunk ``i`` is sealed with AES-256-GCM under the payload key, nonce = ``i`` as 11 big-endian
bytes then one byte that is 1 for the last chunk and 0 otherwise, AAD = SHA-256 of the signed header.
So a chunk that is altered, moved, dropped, or a stream cut short at a chunk boundary fails to
authenticate. Any chunk can be opened alone: the box reads one reference image per alert this way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from edge.watchlist.fields import BundleError

CHUNK = 64 * 1024
TAG = 16
SEALED = CHUNK + TAG
READ_CHUNKS = 16  # chunks fetched per read while streaming (1 MiB)


def payload_key(file_key: bytes, nonce: bytes) -> AESGCM:
    return AESGCM(HKDF(hashes.SHA256(), 32, nonce, b"edge-watchlist/v2 payload").derive(file_key))


def chunks(plain_len: int) -> int:
    return max(1, -(-plain_len // CHUNK))


def sealed_len(plain_len: int) -> int:
    return plain_len + TAG * chunks(plain_len)


def _nonce(i: int, last: bool) -> bytes:
    return i.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def seal(key: AESGCM, aad: bytes, pieces: Iterable[bytes], plain_len: int) -> Iterator[bytes]:
    """Sealed chunks of the concatenated ``pieces``, whose total length must be ``plain_len``."""
    n, i, buf, seen = chunks(plain_len), 0, bytearray(), 0
    for piece in pieces:
        mv, seen = memoryview(piece).cast("B"), seen + len(piece)
        while len(mv) and i < n - 1:
            out: memoryview | bytes
            if not buf and len(mv) >= CHUNK:  # whole chunks straight from the piece, no copy
                out, mv = mv[:CHUNK], mv[CHUNK:]
            else:
                take = CHUNK - len(buf)
                buf += mv[:take]
                mv = mv[take:]
                if len(buf) < CHUNK:
                    break
                out, buf = bytes(buf), bytearray()
            yield key.encrypt(_nonce(i, False), bytes(out), aad)
            i += 1
        buf += mv
    if seen != plain_len or i != n - 1 or len(buf) > CHUNK:
        raise ValueError(f"stream plaintext is {seen} bytes, expected {plain_len}")
    yield key.encrypt(_nonce(i, True), bytes(buf), aad)


def open_chunk(key: AESGCM, aad: bytes, i: int, n: int, sealed: bytes) -> bytes:
    try:
        return key.decrypt(_nonce(i, i == n - 1), sealed, aad)
    except (InvalidTag, ValueError):
        raise BundleError(f"payload chunk {i} of {n} fails authentication: the stream was altered, "
                          "reordered or truncated") from None


class Source:
    """Random access to a bundle's bytes: a file (by descriptor, so a renamed or replaced path does not
    matter) or bytes in memory."""

    def __init__(self, data: bytes | None = None, fd: int | None = None):
        self._data, self._fd = data, fd
        if data is not None:
            self.size = len(data)
        elif fd is not None:
            self.size = os.fstat(fd).st_size
        else:
            raise ValueError("a Source needs data or a file descriptor")
        self.known: tuple[int, bytes] | None = None  # (n, SHA-256 of the first n bytes), if the box took it

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Source:
        return cls(fd=os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))

    def pread(self, n: int, offset: int) -> bytes:
        """Up to ``n`` bytes at ``offset`` (fewer only at the end of the file)."""
        if self._data is not None:
            return self._data[offset:offset + n]
        if self._fd is None:
            raise BundleError("the stored bundle was closed")
        parts, got = [], 0
        while got < n:
            b = os.pread(self._fd, n - got, offset + got)
            if not b:
                break
            parts.append(b)
            got += len(b)
        return b"".join(parts)

    def close(self) -> None:
        fd, self._fd, self._data = self._fd, None, None
        if fd is not None:
            os.close(fd)


def read_chunks(src: Source, start: int, plain_len: int, key: AESGCM, aad: bytes, first: int = 0,
                count: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(chunk number, plaintext) for chunks ``first .. first+count`` of the stream of ``plain_len``
    plaintext bytes that begins at byte ``start`` of ``src``; each chunk is authenticated first."""
    n, total = chunks(plain_len), sealed_len(plain_len)
    end = n if count is None else min(n, first + count)
    i = first
    while i < end:
        k = min(READ_CHUNKS, end - i)
        lo = i * SEALED
        block = src.pread(min(k * SEALED, total - lo), start + lo)
        for j in range(k):
            sealed = block[j * SEALED:(j + 1) * SEALED]
            want = min(SEALED, total - (i + j) * SEALED)
            if len(sealed) != want:
                raise BundleError(f"payload chunk {i + j} of {n} is missing: the stored bundle is truncated")
            yield i + j, open_chunk(key, aad, i + j, n, sealed)
        i += k
