"""Signed firmware bundles: build -> verify -> apply (real venv, real wheel) -> upgrade -> rollback;
tampered, truncated, foreign-key and older bundles are refused and leave the box as it was."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import config as config_mod
from edge.cli import cli
from edge.identity import key_id, raw_public
from firmware import bundle, update
from firmware.bundle import FirmwareError

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "firmware-format.md"


def make_wheel(folder: Path, version: str) -> Path:
    """A real (tiny) wheel: package fwdemo with a console script that prints its version."""
    name = f"fwdemo-{version}"
    path = folder / f"{name}-py3-none-any.whl"
    files = {
        "fwdemo/__init__.py": f'VERSION = "{version}"\n\ndef main():\n    print(VERSION)\n',
        f"{name}.dist-info/METADATA": f"Metadata-Version: 2.1\nName: fwdemo\nVersion: {version}\n",
        f"{name}.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{name}.dist-info/entry_points.txt": "[console_scripts]\nfwdemo = fwdemo:main\n",
    }
    record = "".join(f"{p},,\n" for p in [*files, f"{name}.dist-info/RECORD"])
    with zipfile.ZipFile(path, "w") as z:
        for p, text in {**files, f"{name}.dist-info/RECORD": record}.items():
            z.writestr(p, text)
    return path


@pytest.fixture
def vendor(tmp_path):
    priv, pub = tmp_path / "vendor.key", tmp_path / "vendor.pub"
    bundle.keygen(priv, pub, "test vendor")
    return priv, pub


@pytest.fixture
def box(tmp_path):
    """A firmware root and a box config (as `edge provision` writes it)."""
    cfg = tmp_path / "etc" / "edge.toml"
    cfg.parent.mkdir()
    cfg.write_text('box_id = "box-1"\nstate_dir = "state"\n\n[[cameras]]\nid = "a"\nsource = "/dev/video0"\n')
    cfg.chmod(0o640)
    return tmp_path / "opt-edge", cfg


def edge(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.output


def build_cli(tmp_path, vendor, version, migrations=None) -> Path:
    out = tmp_path / f"edge-{version}.efw"
    args = ["firmware", "build", "--version", version, "--key", vendor[0], "-o", out,
            "--wheel", make_wheel(tmp_path, version), "--unit", REPO / "systemd" / "edge.service",
            "--udev", REPO / "firmware" / "99-edge-usb.rules"]
    if migrations is not None:
        (tmp_path / "migrations.json").write_text(json.dumps(migrations))
        args += ["--migrations", tmp_path / "migrations.json"]
    code, out_text = edge(*args)
    assert code == 0, out_text
    return out


def test_round_trip_upgrade_and_rollback(tmp_path, vendor, box):
    root, cfg = box
    original_cfg = cfg.read_bytes()
    b1 = build_cli(tmp_path, vendor, "1.0.0")
    code, out = edge("firmware", "verify", b1, "--vendor-key", vendor[1])
    assert code == 0 and "OK: firmware 1.0.0" in out and "wheels/fwdemo-1.0.0-py3-none-any.whl" in out

    apply = ("firmware", "apply", "--vendor-key", vendor[1], "--root", root, "--config", cfg, "--no-restart")
    code, out = edge(*apply, b1)
    assert code == 0, out
    demo = root / "current" / "venv" / "bin" / "fwdemo"
    assert subprocess.run([demo], capture_output=True, text=True).stdout.strip() == "1.0.0"
    assert (root / "current" / "units" / "edge.service").read_bytes() == (REPO / "systemd/edge.service").read_bytes()
    assert cfg.read_bytes() == original_cfg  # no migrations: untouched

    b2 = build_cli(tmp_path, vendor, "1.1.0", migrations=[
        {"op": "set", "key": "match.threshold", "value": 0.55},
        {"op": "set_default", "key": "health.log_interval", "value": 30.0}])
    code, out = edge(*apply, b2)
    assert code == 0 and "firmware 1.1.0 installed and active (was 1.0.0)" in out
    assert subprocess.run([demo], capture_output=True, text=True).stdout.strip() == "1.1.0"
    assert (update.current_version(root), update.previous_version(root)) == ("1.1.0", "1.0.0")
    migrated = config_mod.load(cfg)  # the migrated config is still one `edge run` accepts
    assert (migrated.match.threshold, migrated.health.log_interval, migrated.cameras[0].source) == \
        (0.55, 30.0, "/dev/video0")
    assert cfg.stat().st_mode & 0o777 == 0o640

    code, out = edge(*apply, b1)  # downgrade: refused, nothing changes
    assert code == 1 and "not newer than the installed 1.1.0" in out
    assert update.current_version(root) == "1.1.0"

    code, out = edge("firmware", "rollback", "--root", root, "--config", cfg, "--no-restart")
    assert code == 0 and "from firmware 1.1.0 to 1.0.0" in out
    assert subprocess.run([demo], capture_output=True, text=True).stdout.strip() == "1.0.0"
    assert cfg.read_bytes() == original_cfg
    code, out = edge("firmware", "rollback", "--root", root, "--config", cfg, "--no-restart")
    assert code == 1 and "no previous firmware version" in out


def _signed(key=None, version="2.0.0", files=None):
    key = key or Ed25519PrivateKey.from_private_bytes(bytes(32))
    return bundle.build(version, key, files or {"wheels/a-1-py3-none-any.whl": b"wheel bytes" * 50,
                                                  "units/edge.service": b"[Unit]\n"})


TRUSTED = {bundle.key_id(bundle.raw_public(Ed25519PrivateKey.from_private_bytes(bytes(32)))):
           bundle.raw_public(Ed25519PrivateKey.from_private_bytes(bytes(32)))}


@pytest.mark.parametrize("mangle, message", [
    (lambda d: d[:-1], "signature is not valid"),
    (lambda d: d[:40], "truncated"),
    (lambda d: d + b"\0", "signature is not valid"),
    (lambda d: b"", "not a firmware bundle"),
    (lambda d: bytes(range(256)) * 4, "not a firmware bundle"),
    (lambda d: d.replace(b"edge-firmware/1", b"edge-firmware/9", 1), "unsupported"),
    (lambda d: d.replace(b'"version":"2.0.0"', b'"version":"9.0.0"'), "signature is not valid"),
    (lambda d: d[:-100] + bytes([d[-100] ^ 1]) + d[-99:], "signature is not valid"),  # payload bit
    (lambda d: d[:-1] + bytes([d[-1] ^ 0x80]), "signature is not valid"),  # signature bit
    (lambda d: bundle.MAGIC + (200_000).to_bytes(4, "big") + b"[" * 200_000 + bytes(64), "header is damaged"),
])
def test_damaged_bundles_are_refused(mangle, message):
    data = _signed()
    assert bundle.verify(data, TRUSTED).version == "2.0.0"
    with pytest.raises(FirmwareError, match=message):
        bundle.verify(mangle(data), TRUSTED)


def test_refused_updates_leave_the_box_alone_and_units_carry_over(tmp_path, box):
    root, cfg = box
    foreign = _signed(Ed25519PrivateKey.generate())
    with pytest.raises(FirmwareError, match="unknown key"):
        bundle.verify(foreign, TRUSTED)
    # an update whose install step fails: current stays, no half-built version stays behind
    update.apply(bundle.verify(_signed(version="2.0.0"), TRUSTED), root, cfg, installer=lambda d: None)
    (root / "current" / "units" / "edge-usb@.service").write_text("[Unit]\n")  # e.g. from install.sh

    def broken(dest):
        raise FirmwareError("installing the wheels failed: disk full")

    with pytest.raises(FirmwareError, match="disk full"):
        update.apply(bundle.verify(_signed(version="2.1.0"), TRUSTED), root, cfg, installer=broken)
    assert update.current_version(root) == "2.0.0"
    assert sorted(p.name for p in (root / "versions").iterdir()) == ["2.0.0"]
    update.apply(bundle.verify(_signed(version="2.2.0"), TRUSTED), root, cfg, installer=lambda d: None)
    assert sorted(p.name for p in (root / "current" / "units").iterdir()) == ["edge-usb@.service", "edge.service"]
    with pytest.raises(FirmwareError, match="not newer"):
        update.apply(bundle.verify(_signed(version="2.1.0"), TRUSTED), root, cfg, installer=lambda d: None)


def test_bad_paths_and_versions_are_refused_at_build():
    key = Ed25519PrivateKey.generate()
    bad = ({"wheels/../../etc/passwd.whl": b"x"}, {"wheels/a.whl": b"", "bin/sh": b"x"}, {"units/a.service": b""})
    for files in bad:
        with pytest.raises(FirmwareError):
            bundle.build("1.0.0", key, files)
    for version in ("1", "01.2", "1.2.x", "v1.2", "1.2.3.4.5"):
        with pytest.raises(FirmwareError, match="bad firmware version"):
            bundle.build(version, key, {"wheels/a.whl": b""})


def test_spec_test_vector():
    doc = DOC.read_text()
    hexblock = re.search(r"```text\n([0-9a-f\n]+)```", doc).group(1)
    data = bytes.fromhex(hexblock.replace("\n", ""))
    assert hashlib.sha256(data).hexdigest() in doc
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    pub = bundle.raw_public(key)
    b = bundle.verify(data, {bundle.key_id(pub): pub})
    assert b.files["units/edge.service"] == b"[Unit]\nDescription=demo\n"
    rebuilt = bundle.build("1.0.0", key, {"wheels/demo-1.0.0-py3-none-any.whl": b"not really a wheel\n",
                                          "units/edge.service": b"[Unit]\nDescription=demo\n"},
                           [{"op": "set_default", "key": "health.log_interval", "value": 30.0}], "test vector",
                           created="2026-01-01T00:00:00Z")
    assert rebuilt == data


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_bundles_never_crash(data):
    good = _signed(files={"wheels/a-1-py3-none-any.whl": b"w" * 40, "units/edge.service": b"[Unit]\n"})
    blob = bytearray(good)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(blob)))
    try:
        out = bundle.verify(bytes(blob[:cut]), TRUSTED)
    except FirmwareError:
        return
    assert bytes(blob[:cut]) == good and out.version == "2.0.0"  # only the untouched bundle verifies


def _edge_wheel(weights_changed: str = "", left_out: str = "") -> bytes:
    """The box's own wheel as far as the face models go: the shipped weights at their place in the package."""
    import io
    import zipfile

    from edge.face import weights

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as whl:
        whl.writestr("edge/__init__.py", "")
        for name in weights.PINNED:
            if name == left_out:
                continue
            data = bytearray((weights.FOLDER / name).read_bytes())
            if name == weights_changed:
                data[len(data) // 2] ^= 1
            whl.writestr(f"edge/face/weights/{name}", bytes(data))
    return buf.getvalue()


def test_the_firmware_carries_the_face_model_weights_and_wrong_ones_are_refused():
    from edge.face import weights

    key = Ed25519PrivateKey.generate()
    trusted = {key_id(raw_public(key)): raw_public(key)}
    good = bundle.build("2.0.0", key, {"wheels/edge_lfr-2.0.0-py3-none-any.whl": _edge_wheel()})
    assert bundle.verify(good, trusted).header["version"] == "2.0.0"
    name = next(iter(weights.PINNED))
    for changed, left_out, words in ((name, "", "fail their checksum"), ("", name, "does not carry")):
        bad = {"wheels/edge_lfr-2.0.0-py3-none-any.whl": _edge_wheel(changed, left_out)}
        with pytest.raises(FirmwareError, match=words) as err:
            bundle.build("2.0.0", key, bad)
        assert name in str(err.value) and "\n" not in str(err.value)
