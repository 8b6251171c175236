"""Helpers for the watch-list tests: real faces, real keys, real bundles, a box in a tmp state dir."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import config, identity
from edge.config import QualityConfig
from edge.watchlist import bundle, bundle_v2
from edge.watchlist.base import Entry

FACES = Path(__file__).parent / "data" / "media" / "faces"


@functools.cache
def face(name: str) -> tuple[np.ndarray, bytes]:
    """(template (128,), JPEG crop) of a sample face, made the way `enrol build` makes them."""
    from enrol.build import encode_image

    return encode_image(FACES / name, QualityConfig())


def t(**delta) -> str:
    return bundle.fmt_time(datetime.now(UTC) + timedelta(**delta))


def make_bundle(issuer_key: Ed25519PrivateKey, box_wl_public: bytes, faces=("alex-lacamoire.png",), *,
                sequence: int = 1, not_before: str | None = None, not_after: str | None = None,
                max_entries: int = 100, threshold_floor: float = 0.6, list_id: str | None = None,
                version: int = bundle_v2.VERSION, entries: list | None = None, templates: list | None = None,
                policy: dict | None = None, header: dict | None = None, **kw) -> bytes:
    """A bundle of the sample faces (or of ``entries`` and ``templates``): version 2 unless asked for 1
    (any other ``version`` is written in the version-1 layout, to test its refusal). ``policy`` and
    ``header`` add signed fields."""
    if entries is None:
        entries = [Entry(ref=f"PN-{i:04d}", category="wanted", reason="test", image_jpeg=face(f)[1])
                   for i, f in enumerate(faces)]
        templates = [face(f)[0][None] for f in faces]
    extra, header = header, None
    header = {"list_id": list_id or f"list-{sequence}", "deployment": "test op", "box_id": "box",
              "created": t(), "not_before": not_before or t(minutes=-1),
              "not_after": not_after or t(hours=2), "sequence": sequence, "entries": len(entries),
              "policy": {"max_entries": max_entries, "threshold_floor": threshold_floor, "retention_days": 31,
                         **(policy or {})},
              **(extra or {})}
    if version == bundle_v2.VERSION:
        items = [bundle_v2.Item(e.ref, e.category, e.reason, t, [bundle_v2.RefImage(e.image_jpeg)])
                 for e, t in zip(entries, templates, strict=True)]
        return bundle_v2.write(header, items, issuer_key, box_wl_public, **kw)
    return bundle.write(header, bundle.encode_payload(entries, templates), issuer_key, box_wl_public,
                        version=version, **kw)


def box_config(state_dir: Path, box_id: str = "box-a", usb: list[str] | None = None, model: str = "dlib-resnet",
               **extra) -> config.Config:
    """A box's config; its face model dlib's, the model of the sample lists (``face``): these tests are about
    lists, not models (tests/test_face_model_lists.py: lists across models)."""
    text = f'box_id = "{box_id}"\nmodel = "{model}"\n'
    if usb is not None:
        text += f"[watchlist]\nusb_mounts = {json.dumps([str(u) for u in usb])}\n"
    text += '[[cameras]]\nid = "cam1"\nsource = "clip.mp4"\n'
    extra.setdefault("deployment", "required = false")  # list mechanics; tests of windows ask for them
    for section, body in extra.items():
        text += f"[{section}]\n{body}\n"
    return config.parse(text, state_dir=str(state_dir))


def trust_issuer(state_dir: Path, key: Ed25519PrivateKey) -> str:
    p = Path(state_dir) / "issuer.pub"
    p.write_text(json.dumps(identity.issuer_public_doc(identity.raw_public(key))))
    return identity.add_issuer(state_dir, p)


def store_list_with_policy(tmp: Path, state: Path, box_id: str, policy: dict, list_id: str = "L-7"):
    """A box identity in ``state`` with a trusted issuer and, as its current list, a bundle whose signed
    ``policy`` is ``policy``: what a box has after `edge watchlist load`. Returns the box identity."""
    ident = identity.create(state, box_id)
    issuer = Ed25519PrivateKey.generate()
    (tmp / "issuer.pub").write_text(json.dumps(identity.issuer_public_doc(identity.raw_public(issuer))))
    identity.add_issuer(state, tmp / "issuer.pub")
    (state / "watchlist").mkdir(parents=True, exist_ok=True)
    (state / "watchlist" / "current.wlb").write_bytes(
        make_bundle(issuer, ident.wl_public, policy=policy, list_id=list_id))
    return ident
