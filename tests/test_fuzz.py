"""Hostile input: every parser that takes outside input fails with its one error type, never a crash.

Property-based (hypothesis), bounded for CI: ``EDGE_FUZZ_EXAMPLES`` inputs per target (default 300;
``python -m bench.fuzz`` runs 5,000, the figures in docs/reliability.md). Each target prints how many
inputs it tried (run with ``-s``). Watch-list bundles, firmware bundles and the audit log are fuzzed
in their own test modules.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tomllib
import zlib

import cv2
import numpy as np
import pytest
from conftest import LIN
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import config
from edge.alerts import messages
from edge.errors import ConfigError, EdgeError
from edge.face import api
from edge.pipeline.control import ControlServer

EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=5000, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Tally:
    def __init__(self, name: str):
        self.name, self.n = name, 0

    def __call__(self):
        self.n += 1

    def report(self):
        print(f"\nfuzz {self.name}: {self.n} inputs tried")  # pytest says whether any crashed


def tally(name: str):
    """A module fixture counting the inputs one target was given, printed at the end."""

    @pytest.fixture(scope="module")
    def counted():
        t = Tally(name)
        yield t
        t.report()

    return counted


@st.composite
def envelopes(draw, versions: list, types: list, keys: list, values=None, max_keys: int = 12) -> bytes:
    """Mostly well-formed JSON envelopes (``v``, ``type``) with wrong, missing or odd fields; sometimes raw
    bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=200))
    msg = {"v": draw(st.sampled_from(versions)), "type": draw(st.sampled_from(types))}
    for key in draw(st.lists(st.sampled_from(keys), max_size=max_keys)):
        msg[key] = draw(JSON if values is None else values)
    return json.dumps(msg).encode()


# -- config files ---------------------------------------------------------------------------------

VALID = """box_id = "box-1"
state_dir = "/tmp/state"
[[cameras]]
id = "a"
source = "rtsp://10.0.0.2/stream"
[[cameras]]
id = "b"
source = "/dev/video0"
loop = false
[detect]
max_width = 640
upsample = 1
[match]
threshold = 0.55
[alerts]
endpoint = "tcp://127.0.0.1:5599"
[watchlist]
usb_mounts = ["/media/usb"]
[health]
max_restarts = 3
"""
TOML_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | st.datetimes(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _set(doc, path: list, value):
    """Replace (or add) the value at a random path inside the parsed document."""
    node = doc
    for key in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[sorted(node)[key % len(node)]]
        elif isinstance(node, list) and node:
            node = node[key % len(node)]
    if isinstance(node, dict):
        keys = sorted(node) + ["unknown_key"]
        node[keys[path[-1] % len(keys)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value


def _toml(obj) -> str:
    """A tiny TOML writer (inline tables) for mutated documents; None values are left out."""
    def val(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, "nan" if v != v else repr(v))
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v if x is not None) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(k)} = {val(x)}" for k, x in v.items() if x is not None) + "}"
        return v.isoformat() if hasattr(v, "isoformat") else json.dumps(str(v))
    return "\n".join(f"{json.dumps(k)} = {val(v)}" for k, v in obj.items() if v is not None) + "\n"


config_tally = tally("config.parse")


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=4), value=TOML_VALUES)
def test_config_mutations_raise_only_config_error(config_tally, path, value):
    config_tally()
    doc = tomllib.loads(VALID)
    _set(doc, path, value)
    try:
        text = _toml(doc)
    except (TypeError, ValueError):
        return
    try:
        config.parse(text)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)


@FUZZ
@given(text=st.text(max_size=400) | st.binary(max_size=400).map(lambda b: b.decode("latin-1")))
def test_config_garbage_text_raises_only_config_error(config_tally, text):
    config_tally()
    for candidate in (text, VALID[: len(text) % len(VALID)] + text):
        try:
            config.parse(candidate)
        except ConfigError:
            pass


def test_deeply_nested_config_is_a_config_error(config_tally):
    config_tally()
    with pytest.raises(ConfigError):
        config.parse("box_id = " + "[" * 5000)


# -- images ---------------------------------------------------------------------------------------


def _png(w: int, h: int, color_type: int = 2, data: bytes = b"\0" * 64) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(data)) + chunk(b"IEND", b""))


def _jpeg_claiming(w: int, h: int) -> bytes:
    """A real 16x16 JPEG whose frame header (SOF0) claims ``w`` x ``h``."""
    data = bytearray(cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))[1].tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", h, w)
    return bytes(data)


def _seeds() -> list[bytes]:
    rgb = cv2.resize(cv2.imread(str(LIN)), (48, 48))
    return [cv2.imencode(ext, rgb)[1].tobytes() for ext in (".jpg", ".png", ".bmp", ".webp")]


SEEDS = _seeds()


@st.composite
def corrupt_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        op, pos = draw(st.sampled_from(["flip", "insert", "delete"])), draw(st.integers(0, len(data)))
        byte = draw(st.integers(0, 255))
        if op == "flip" and pos < len(data):
            data[pos] = byte
        elif op == "insert":
            data[pos:pos] = bytes([byte]) * draw(st.integers(1, 64))
        else:
            del data[pos : pos + draw(st.integers(1, 64))]
    return bytes(data[: draw(st.integers(0, len(data)))]) if draw(st.booleans()) else bytes(data)


HUGE = st.integers(1, 2**31 - 1)
IMAGES = (corrupt_images() | st.binary(max_size=256)
          | st.builds(_png, HUGE, HUGE, st.sampled_from([0, 2, 4, 6]), st.binary(max_size=256))
          | st.builds(_jpeg_claiming, st.integers(1, 65535), st.integers(1, 65535)))


image_tally = tally("face.api.decode_image")


@FUZZ
@given(data=IMAGES)
def test_decode_image_raises_only_edge_error(image_tally, data):
    image_tally()
    try:
        img = api.decode_image(data)
    except EdgeError:
        return
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    assert img.shape[0] * img.shape[1] <= api.MAX_IMAGE_PIXELS


def test_zero_size_and_huge_declared_images_never_allocate_gigabytes(tmp_path):
    """In a child process limited to +1 GiB of address space: each bomb is refused with EdgeError."""
    bombs = {"empty": b"", "png-60000x60000": _png(60000, 60000), "png-30000x30000": _png(30000, 30000),
             "png-1x1-too-much-data": _png(1, 1, data=b"\0" * 4096), "jpeg-65000x65000": _jpeg_claiming(65000, 65000),
             "png-65535x1": _png(65535, 1), "png-1x2147483647": _png(1, 2**31 - 1)}
    for name, data in bombs.items():
        (tmp_path / name).write_bytes(data)
    child = f"""
import resource, sys
from pathlib import Path
from edge.errors import EdgeError
from edge.face import api
vm = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + 2**30, vm + 2**30))
for p in sorted(Path({str(tmp_path)!r}).iterdir()):
    try:
        api.decode_image(p.read_bytes(), p.name)
        print(p.name, "DECODED")
    except EdgeError as exc:
        print(p.name, "refused:", exc)
"""
    r = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == len(bombs) and all("refused:" in line for line in lines), r.stdout + r.stderr


# -- stage messages -------------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=16),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=16,
)
KEYS = sorted({k for fields in messages.REQUIRED.values() for k in fields} | {"v", "type"})


def message_like():
    return envelopes([1, 1, 1, 0, 2, "1", None, 1.0, True], [*messages.REQUIRED, "nope", None, 3], KEYS)


message_tally = tally("alerts.messages.loads")


@FUZZ
@given(data=message_like(), allowed=st.none() | st.sets(st.sampled_from(list(messages.REQUIRED))))
def test_stage_messages_raise_only_message_error(message_tally, data, allowed):
    message_tally()
    try:
        msg = messages.loads(data, allowed=allowed)
    except messages.MessageError:
        return
    assert msg["type"] in messages.REQUIRED and (allowed is None or msg["type"] in allowed)


def test_deeply_nested_message_is_a_message_error(message_tally):
    message_tally()
    with pytest.raises(messages.MessageError):
        messages.loads(b"[" * 100_000)


# -- the control socket ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def control():
    server = ControlServer("ipc:///nonexistent")  # handle() only: nothing is bound

    def refuse(_req):
        raise EdgeError("refused")

    def crash(_req):
        raise RuntimeError("a bug")

    server.commands.update(status=lambda req: {"uptime_s": 1.0}, refuse=refuse, crash=crash)
    t = Tally("ControlServer.handle")
    yield server, t
    t.report()


@FUZZ
@given(data=st.binary(max_size=200) | st.builds(
    lambda cmd, extra: json.dumps({"cmd": cmd, **extra}).encode(),
    st.sampled_from(["status", "refuse", "crash", "purge", ""]) | JSON, st.dictionaries(st.text(max_size=8), JSON)))
def test_control_handle_never_raises(control, data):
    server, tally = control
    tally()
    reply = server.handle(data)
    assert isinstance(reply, dict) and isinstance(reply["ok"], bool)
    json.dumps(reply)


def test_deeply_nested_control_request_is_refused(control):
    server, tally = control
    tally()
    assert server.handle(b"[" * 100_000) == {"ok": False, "error": "malformed request"}


# -- ZeroMQ frames from a console -----------------------------------------------------------------

LINK_TYPES = ["hello", "ack", "adjudication", "alert", "event"]


def link_frames():
    keys = ["role", "last_seq", "seq", "prev", "outbox", "alert_id", "box_id", "decision", "action", "reason",
            "operator", "time", *(k for k in KEYS if k != "type")]
    return envelopes([1, 1, 2, None], [*LINK_TYPES, None, 7, [], {}], keys,
                     JSON | st.sampled_from(["console", "confirm", "dismiss", "arrested", "poor image", 3, -1]), 10)


link_tally = tally("alerts.protocol.loads (console -> box)")


@FUZZ
@given(data=link_frames(), allowed=st.sets(st.sampled_from(LINK_TYPES), min_size=1))
def test_console_frames_raise_only_message_error(link_tally, data, allowed):
    from edge.alerts import protocol

    link_tally()
    try:
        msg = protocol.loads(data, allowed)
    except messages.MessageError:
        return
    assert msg["type"] in allowed


@pytest.mark.parametrize("frame", [b"[" * 100_000, b'{"v": 1, "type": []}', b'{"v": 1, "type": {}}'])
def test_hostile_console_frames_are_message_errors(link_tally, frame):
    from edge.alerts import protocol

    link_tally()
    with pytest.raises(messages.MessageError):
        protocol.loads(frame, {"ack", "adjudication"})


# -- deployment authorisations --------------------------------------------------------------------


@pytest.fixture(scope="module")
def deployment_doc():
    from datetime import UTC, datetime, timedelta

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge import deployment, identity

    key = Ed25519PrivateKey.generate()
    start = datetime(2026, 11, 22, 8, tzinfo=UTC)
    doc = deployment.make(key, box_id="box-1", deployment_id="dep-1", location="High St", cameras=["a", "b"],
                          start=start, end=start + timedelta(hours=8), purpose="wanted persons",
                          lists=[("list-1", "ab" * 32)], authority_ref="REF-1")
    pub = identity.raw_public(key)
    t = Tally("deployment.parse+verify")
    yield doc, {identity.key_id(pub): pub}, t
    t.report()


@FUZZ
@given(path=st.lists(st.integers(0, 50), min_size=1, max_size=3), value=JSON,
       cut=st.integers(0, 2000), flips=st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255)), max_size=4))
def test_deployment_documents_are_refused_cleanly_and_never_forged(deployment_doc, path, value, cut, flips):
    from edge import deployment

    doc, issuers, tally = deployment_doc
    mutated = json.loads(json.dumps(doc))
    _set(mutated, path, value)
    raw = bytearray(json.dumps(mutated).encode())
    for pos, byte in flips:
        if pos < len(raw):
            raw[pos] = byte
    for data in (bytes(raw), bytes(raw[:cut])):
        tally()
        try:
            dep = deployment.verify(deployment.parse(data), issuers, "box-1")
        except EdgeError:
            continue
        assert dep.doc == doc  # only the issuer's own document is ever accepted


def test_deeply_nested_deployment_is_refused(deployment_doc):
    from edge import deployment

    deployment_doc[2]()
    with pytest.raises(EdgeError):
        deployment.parse(b"[" * 5000)
