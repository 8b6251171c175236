"""Builders for the attack suite: a provisioned box in a tmp dir with its real audit log, hand-made bundles."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wlhelpers import box_config, face, make_bundle, t, trust_issuer

from edge import identity
from edge.audit.log import AuditLog
from edge.audit.verify import verify_log
from edge.face import model as face_model
from edge.watchlist import bundle
from edge.watchlist.base import Entry, Matcher
from edge.watchlist.service import WatchlistService

ISSUER = Ed25519PrivateKey.generate()
FAKE_JPEG = b"\xff\xd8\xff\xe0" + bytes(12)


class Box:
    """A provisioned box: keys, a trusted issuer, its real audit log, a matcher and the watch-list service."""

    def __init__(self, root: Path, box_id: str = "box-a", **cfg):
        self.state = Path(root) / box_id
        self.cfg = box_config(self.state, box_id, **cfg)
        self.ident = identity.create(self.state, box_id)
        trust_issuer(self.state, ISSUER)
        self.log = AuditLog(self.state, box_id=box_id)
        self.matcher = Matcher(face_model.cap(self.cfg))
        self.events: list[dict] = []
        self.svc = WatchlistService(self.cfg, self.ident, self.matcher, self.events.append, self.log.append)

    def bundle(self, *args, **kw) -> bytes:
        return make_bundle(ISSUER, self.ident.wl_public, *args, **kw)

    def file(self, data: bytes, name: str = "list.wlb") -> Path:
        p = self.state.parent / name
        p.write_bytes(data)
        return p

    def matches_alex(self) -> bool:
        hit = self.matcher.match(face("alex_lacamoire1.jpg")[0])
        return hit is not None and hit[0].ref == "PN-0000"

    def records(self, kind: str | None = None) -> list[dict]:
        recs = verify_log(self.state).records
        return [r for r in recs if kind is None or r["kind"] == kind]


def many_entries(n: int) -> tuple[list[Entry], list[np.ndarray]]:
    """n well-formed entries (tiny JPEG, one random unit template each): a big list, quickly."""
    rng = np.random.default_rng(7)
    t = rng.normal(size=(n, 128)).astype(np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    entries = [Entry(ref=f"R{i:06d}", category="wanted", reason="", image_jpeg=FAKE_JPEG) for i in range(n)]
    return entries, [row[None] for row in t]


def signed_raw_header(header_bytes: bytes, key: Ed25519PrivateKey = ISSUER, ciphertext: bytes = b"x" * 32) -> bytes:
    """A correctly framed and signed bundle around arbitrary header bytes (what a rogue issuer can make)."""
    kid = bytes.fromhex(identity.key_id(identity.raw_public(key)))
    signed = (bundle.PREFIX.pack(bundle.MAGIC, bundle.VERSION, kid, len(header_bytes)) + header_bytes
              + struct.pack(">Q", len(ciphertext)) + ciphertext)
    return signed + key.sign(signed)


def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def unblock_fifo(path: Path) -> None:
    """Let any reader stuck opening this FIFO go (an open for writing, then EOF)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
    except OSError:
        pass


__all__ = ["Box", "ISSUER", "face", "json", "make_bundle", "many_entries", "signed_raw_header", "t"]


def hostile_bundle(box: Box, items=None, templates=None, *, faces=("alex-lacamoire.png",), sequence: int = 2,
                   **header) -> bytes:
    """A bundle signed by the box's trusted issuer with any header fields an issuer (or its stolen key)
    could choose: the box must bound them all."""
    entries = items
    if entries is None:
        entries = [Entry(ref=f"PN-{i:04d}", category="wanted", reason="test", image_jpeg=face(f)[1])
                   for i, f in enumerate(faces)]
        templates = [face(f)[0][None] for f in faces]
    h = {"list_id": f"list-{sequence}", "deployment": "test op", "box_id": "box", "created": t(),
         "not_before": t(minutes=-1), "not_after": t(hours=2), "sequence": sequence, "entries": len(entries),
         "policy": {"max_entries": max(100, len(entries)), "threshold_floor": 0.6, "retention_days": 31}}
    h.update(header)
    return bundle.write(h, bundle.encode_payload(entries, templates), ISSUER, box.ident.wl_public)


def write_config(box: Box) -> Path:
    """The box's config as a file, for the command line."""
    p = box.state.parent / f"{box.cfg.box_id}.toml"
    usb = json.dumps([str(u) for u in box.cfg.watchlist.usb_mounts])
    p.write_text(f'box_id = "{box.cfg.box_id}"\nstate_dir = "{box.state}"\n[watchlist]\nusb_mounts = {usb}\n'
                 '[[cameras]]\nid = "cam1"\nsource = "clip.mp4"\n')
    return p
