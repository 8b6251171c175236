"""Regenerate the watch-list test vectors (docs/watchlist-format.md): python make_watchlist_vector.py

watchlist-v1.{wlb,json}: version 1 (one JSON payload); watchlist-v2.{wlb,json}: version 2 (chunked
stream, two entries, three images with provenance, a stream of two chunks); watchlist-v2-model.{wlb,json}:
version 2 naming its face model (yunet-mobilefacenet, 192 numbers a template; docs/models.md).

Every secret and random value is fixed, so the output is byte-for-byte reproducible.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.watchlist import bundle, bundle_v2
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


INPUTS_V2 = {
    "issuer_seed": INPUTS["issuer_seed"],
    "box_wl_private": INPUTS["box_wl_private"],
    "ephemeral_private": bytes(range(140, 172)).hex(),
    "file_key": bytes(range(172, 204)).hex(),
    "stream_nonce": bytes(range(204, 220)).hex(),
    "header": {"list_id": "fedcba9876543210", "deployment": "vector v2", "box_id": "vector-box",
               "created": "2026-01-01T00:00:00Z", "not_before": "2026-01-01T00:00:00Z",
               "not_after": "2036-01-01T00:00:00Z", "sequence": 8,
               "policy": {"max_entries": 10, "threshold_floor": 0.6, "retention_days": 31, "target_fpir": 0.001},
               "operating": {"rule": "nearest", "threshold": 0.5, "expected_fpir": 0.0008, "list_size": 2,
                             "calibration": "vector"}},
    "entries": [
        {"ref": "PN-0001", "category": "wanted", "reason": "test vector",
         "templates": "row 0: float32 (i - 64) / 128; row 1: float32 (64 - i) / 256, for i in 0..127",
         "images": [{"jpeg": "ffd8ffe0, then 70000 bytes (7 * i) mod 256 for i in 0..69999, then ffd9",
                     "source": "PNC", "taken": "2025-06-01"},
                    {"jpeg": "ffd8ffe0" + b"second picture".hex() + "ffd9", "source": "custody suite 3",
                     "taken": "2024-02-29"}],
         "row_image": [0, 1]},
        {"ref": "PN-0002", "category": "missing person", "reason": "",
         "templates": "row 2: float32 (i % 7 + 1) / 16",
         "images": [{"jpeg": "ffd8ffdb" + b"third".hex() + "ffd9"}], "row_image": [0]},
    ],
}


def v2_items(inputs=INPUTS_V2) -> list:
    i = np.arange(128)
    big = bytes.fromhex("ffd8ffe0") + bytes((7 * k) % 256 for k in range(70000)) + bytes.fromhex("ffd9")
    e1, e2 = inputs["entries"]
    im = e1["images"]
    return [
        bundle_v2.Item(e1["ref"], e1["category"], e1["reason"],
                       np.stack([(i - 64) / 128, (64 - i) / 256]).astype(np.float32),
                       [bundle_v2.RefImage(big, im[0]["source"], im[0]["taken"]),
                        bundle_v2.RefImage(bytes.fromhex(im[1]["jpeg"]), im[1]["source"], im[1]["taken"])],
                       e1["row_image"]),
        bundle_v2.Item(e2["ref"], e2["category"], e2["reason"], ((i % 7 + 1) / 16).astype(np.float32)[None],
                       [bundle_v2.RefImage(bytes.fromhex(e2["images"][0]["jpeg"]))], e2["row_image"]),
    ]


def build_v2(inputs=INPUTS_V2) -> bytes:
    from edge.identity import raw_public

    box_pub = X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["box_wl_private"])).public_key()
    return bundle_v2.write(
        inputs["header"], v2_items(inputs),
        Ed25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["issuer_seed"])), raw_public(box_pub),
        file_key=bytes.fromhex(inputs["file_key"]),
        ephemeral=X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["ephemeral_private"])),
        nonce=bytes.fromhex(inputs["stream_nonce"]))


MODEL = {"id": "yunet-mobilefacenet", "dim": 192,
         "sha256": "42417535354dc9fc042dc2ad1e8dfb7f8722737f81b92f38aee8e28048d859d1"}
INPUTS_V2_MODEL = dict(INPUTS_V2, header=dict(INPUTS_V2["header"], list_id="0123456789abcdf0", sequence=9,
                                              model=MODEL, policy=dict(INPUTS_V2["header"]["policy"],
                                                                       threshold_floor=1.2)),
                       entries=[{"ref": "PN-0001", "category": "wanted", "reason": "test vector",
                                 "templates": "row 0: float32 (i - 96) / 192, for i in 0..191",
                                 "images": [{"jpeg": "ffd8ffe0" + b"model picture".hex() + "ffd9"}],
                                 "row_image": [0]}])


def build_v2_model(inputs=INPUTS_V2_MODEL) -> bytes:
    """One entry, one 192-number template of the model the header names."""
    from edge.identity import raw_public

    e = inputs["entries"][0]
    item = bundle_v2.Item(e["ref"], e["category"], e["reason"], ((np.arange(192) - 96) / 192).astype(np.float32)[None],
                          [bundle_v2.RefImage(bytes.fromhex(e["images"][0]["jpeg"]))], e["row_image"])
    box_pub = X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["box_wl_private"])).public_key()
    return bundle_v2.write(
        inputs["header"], [item], Ed25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["issuer_seed"])),
        raw_public(box_pub), file_key=bytes.fromhex(inputs["file_key"]),
        ephemeral=X25519PrivateKey.from_private_bytes(bytes.fromhex(inputs["ephemeral_private"])),
        nonce=bytes.fromhex(inputs["stream_nonce"]))


if __name__ == "__main__":
    for name, data, inputs in (("watchlist-v1", build(), INPUTS), ("watchlist-v2", build_v2(), INPUTS_V2),
                               ("watchlist-v2-model", build_v2_model(), INPUTS_V2_MODEL)):
        (HERE / f"{name}.wlb").write_bytes(data)
        out = dict(inputs, sha256=hashlib.sha256(data).hexdigest(), length=len(data))
        (HERE / f"{name}.json").write_text(json.dumps(out, indent=1) + "\n")
        print(f"{name}.wlb: {len(data)} bytes, sha256 {out['sha256']}")
