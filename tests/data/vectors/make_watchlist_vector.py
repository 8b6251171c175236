"""Regenerate the watch-list test vector (docs/watchlist-format.md): python make_watchlist_vector.py

Every secret and random value is fixed, so the output is byte-for-byte reproducible.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.watchlist import bundle
from edge.watchlist.base import Entry

HERE = Path(__file__).parent
INPUTS = {
    "issuer_seed": bytes(range(0, 32)).hex(),
    "box_wl_private": bytes(range(32, 64)).hex(),
    "ephemeral_private": bytes(range(64, 96)).hex(),
    "file_key": bytes(range(96, 128)).hex(),
    "payload_nonce": bytes(range(128, 140)).hex(),
    "header": {"list_id": "0123456789abcdef", "deployment": "vector", "box_id": "vector-box",
               "created": "2026-01-01T00:00:00Z", "not_before": "2026-01-01T00:00:00Z",
               "not_after": "2036-01-01T00:00:00Z", "sequence": 7, "entries": 1,
               "policy": {"max_entries": 10, "threshold_floor": 0.6, "retention_days": 31}},
    "entry": {"ref": "PN-0001", "category": "wanted", "reason": "test vector",
              "template": "float32 values (i - 64) / 128 for i in 0..127",
              "image_jpeg": "ffd8ffe0" + b"not a real picture".hex() + "ffd9"},
}


def build(inputs=INPUTS) -> bytes:
    entry = inputs["entry"]
    e = Entry(ref=entry["ref"], category=entry["category"], reason=entry["reason"],
              image_jpeg=bytes.fromhex(entry["image_jpeg"]))
    template = ((np.arange(128) - 64) / 128).astype(np.float32)[None]
    box_pub = X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["box_wl_private"])).public_key()
    from edge.identity import raw_public

    return bundle.write(
        inputs["header"], bundle.encode_payload([e], [template]),
        Ed25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["issuer_seed"])), raw_public(box_pub),
        file_key=bytes.fromhex(inputs["file_key"]),
        ephemeral=X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["ephemeral_private"])),
        nonce=bytes.fromhex(inputs["payload_nonce"]))


if __name__ == "__main__":
    data = build()
    (HERE / "watchlist-v1.wlb").write_bytes(data)
    out = dict(INPUTS, sha256=hashlib.sha256(data).hexdigest(), length=len(data))
    (HERE / "watchlist-v1.json").write_text(json.dumps(out, indent=1) + "\n")
    print(f"watchlist-v1.wlb: {len(data)} bytes, sha256 {out['sha256']}")
