"""Open a watch-list bundle of any version the box reads: version 1 (``bundle``) or 2 (``bundle_v2``).

``verify`` does everything that needs no decryption (framing, signature, header); the caller makes its
own checks on the header (box, validity window, sequence, policy); ``open_list`` then decrypts and
validates the entries into the in-memory :class:`WatchList`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.face import model as face_model
from edge.watchlist import bundle, bundle_v2
from edge.watchlist.base import WatchList
from edge.watchlist.bundle import BundleError
from edge.watchlist.fields import parse_time
from edge.watchlist.stream import Source

MAX_FILE_V1 = bundle.PREFIX.size + bundle.MAX_HEADER + 8 + bundle.MAX_PAYLOAD + bundle.SIG_LEN


@dataclass
class Checked:
    version: int
    header: dict[str, Any]
    v1: bundle.Parsed | None = None
    v2: bundle_v2.Verified | None = None


def verify(src: Source | bytes, issuers: dict[str, bytes]) -> Checked:
    """Framing, the issuer's signature, the header; returns the checked bundle (nothing decrypted)."""
    if not isinstance(src, Source):
        src = Source(bytes(src))
    version, _, _ = bundle.parse_prefix(src.pread(bundle.PREFIX.size, 0), src.size)
    if version == 1:
        if src.size > MAX_FILE_V1:
            raise BundleError("the file is too large to be a version-1 watch-list bundle")
        p = bundle.parse(src.pread(src.size, 0))
        return Checked(1, bundle.verify(p, issuers), v1=p)
    v = bundle_v2.verify(src, issuers)
    return Checked(2, v.header, v2=v)


def model_of(c: Checked) -> face_model.FaceModel:
    """The face model that made a checked bundle's templates (version 1: dlib, as every list before models were
    named)."""
    return bundle_v2.model_of(c.header) if c.version == 2 else face_model.get(face_model.DLIB)


def open_list(c: Checked, wl_key: X25519PrivateKey) -> WatchList:
    """Decrypt and validate the entries of a checked bundle -> the list (not yet in force)."""
    h = c.header
    common = {"list_id": h["list_id"], "issuer": h["issuer"], "sequence": h["sequence"],
              "not_after": parse_time(h["not_after"]), "threshold_floor": float(h["policy"]["threshold_floor"]),
              "meta": {"header": h, "deployment": h["deployment"], "retention_days": h["policy"]["retention_days"],
                       "version": c.version}}
    if c.v1 is not None:
        entries, templates, owners = bundle.decode_entries(bundle.decrypt(c.v1, wl_key), h["entries"])
        c.v1.ciphertext = b""
        return WatchList(entries=entries, templates=templates, owners=owners, **common)
    if c.v2 is None:
        raise BundleError("the bundle must be verified before it is opened")
    o = bundle_v2.open_list(c.v2, wl_key)
    return WatchList(entries=o.entries, templates=o.templates, owners=o.owners, row_images=o.row_images,
                     image_store=o.images, model=model_of(c).id, **common)


def close(c: Checked) -> None:
    """Let go of a checked bundle that will not be opened (its file, for version 2)."""
    if c.v2 is not None:
        c.v2.source.close()
