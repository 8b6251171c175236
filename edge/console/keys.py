"""The console's CURVE key pair and the boxes it connects to.

``<data>/console.key`` (0600) holds the pair as JSON; ``<data>/console.pub`` holds the public key as
z85 text with a comment line: the file an engineer registers on a box (``edge trust add-console``).
A box is given as ``ENDPOINT=KEY``, KEY being the box's ``box.pub.json`` or its z85 CURVE key.
"""

from __future__ import annotations

import json
from pathlib import Path

import zmq
from zmq.utils import z85

from edge import files, identity
from edge.errors import EdgeError

KEY_FILE, PUB_FILE = "console.key", "console.pub"
KEY_TYPE = "edge-console-curve"


def data_dir(path: str | Path) -> Path:
    d = Path(path).expanduser()
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise EdgeError(f"cannot use {d} as the console data dir: {exc.strerror}") from None
    return d


def keygen(data: str | Path, force: bool = False) -> Path:
    """Make the console's CURVE key pair; returns the public key file (refuses to overwrite)."""
    d = data_dir(data)
    if (d / KEY_FILE).exists() and not force:
        raise EdgeError(f"{d / KEY_FILE} exists already (use --force to replace it)")
    pub, sec = zmq.curve_keypair()
    doc = {"type": KEY_TYPE, "version": 1, "public": pub.decode(), "secret": sec.decode()}
    files.write_atomic(d / KEY_FILE, json.dumps(doc, indent=1).encode(), 0o600)
    text = f"# edge console CURVE public key; register it on a box: edge trust add-console FILE\n{pub.decode()}\n"
    files.write_atomic(d / PUB_FILE, text.encode(), 0o644)
    return d / PUB_FILE


def load(data: str | Path) -> tuple[bytes, bytes]:
    """(public, secret) z85 of the console's key pair."""
    path = Path(data).expanduser() / KEY_FILE
    if not path.exists():
        raise EdgeError(f"no console key in {path.parent}: run 'edge console keygen'")
    try:
        doc = json.loads(path.read_text())
        pub, sec = doc["public"].encode("ascii"), doc["secret"].encode("ascii")
        if doc.get("type") != KEY_TYPE or zmq.curve_public(sec) != pub:
            raise ValueError
    except (OSError, ValueError, KeyError, TypeError, AttributeError, zmq.ZMQError):
        raise EdgeError(f"the console key file {path} is damaged") from None
    return pub, sec


def parse_box(spec: str, what: str = "--box") -> tuple[str, bytes]:
    """'tcp://host:port=KEY' -> (endpoint, box CURVE public key z85); errors name the box as ``what``."""
    endpoint, sep, key = spec.partition("=")
    if not sep or not endpoint.startswith(("tcp://", "ipc://")):
        raise EdgeError(f"{what} {spec!r}: expected ENDPOINT=KEY, e.g. tcp://10.0.0.5:5599=box.pub.json")
    path = Path(key).expanduser()
    if len(key) != 40 or path.exists():  # a box.pub.json (from `edge provision`), else the z85 key itself
        try:
            key = str(identity.load_box_public(path).get("curve_public", ""))
        except EdgeError as exc:
            raise EdgeError(f"{what} {spec!r}: {exc}") from None
    return endpoint, identity._z85_key(key, f"{what} {endpoint} key")



def key_id(public_z85: bytes) -> str:
    """The key id a box names this console by (in its logs, audit records and acks table)."""
    return identity.key_id(z85.decode(public_z85))
