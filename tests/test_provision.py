"""`edge provision` and `edge doctor`: keys with the right modes, a config the daemon runs with,
re-runs that keep keys, logged rotation, and a doctor that names what is broken."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest
import zmq
from click.testing import CliRunner
from conftest import HAMILTON, free_port
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import config as config_mod
from edge import identity
from edge.cli import cli
from edge.config import toml_dumps


def edge(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture
def keys(tmp_path):
    issuer = tmp_path / "issuer.pub"
    raw = identity.raw_public(Ed25519PrivateKey.generate())
    issuer.write_text(json.dumps(identity.issuer_public_doc(raw, "SPOC")))
    console = tmp_path / "console.pub"
    console.write_bytes(zmq.curve_keypair()[0] + b"\n")
    return issuer, console


def provision(tmp_path, keys, *extra, cameras=(f"entrance={HAMILTON}",)):
    cfg, state = tmp_path / "etc" / "edge.toml", tmp_path / "state"
    args = ["provision", "--box-id", "ldn-kx-01", "--config", cfg, "--state-dir", state,
            "--issuer-key", keys[0], "--console-key", keys[1],
            "--alerts-endpoint", f"tcp://127.0.0.1:{free_port()}", *extra]
    for cam in cameras:
        args += ["--camera", cam]
    code, out = edge(*args)
    return code, out, cfg, state


def mode(path):
    return path.stat().st_mode & 0o777


def test_provision_makes_keys_trust_and_a_config_the_daemon_runs(tmp_path, keys):
    code, out, cfg, state = provision(tmp_path, keys)
    assert code == 0, out
    ident = identity.load(state)
    assert f"Fingerprint: {ident.fingerprint()}" in out
    assert f"Public identity: {state / 'keys' / 'box.pub.json'}" in out
    assert (mode(state), mode(state / "keys"), mode(state / "keys" / "box.key.json")) == (0o700, 0o700, 0o600)
    assert mode(state / "trust") == 0o700 and mode(cfg) == 0o640
    assert json.loads((state / "keys" / "box.pub.json").read_text())["fingerprint"] == ident.fingerprint()
    assert len(identity.issuers(state)) == 1 and len(identity.consoles(state)) == 1

    loaded = config_mod.load(cfg)
    assert (loaded.box_id, [c.id for c in loaded.cameras], loaded.state_dir) == ("ldn-kx-01", ["entrance"], str(state))
    r = subprocess.run([sys.executable, "-m", "edge", "run", "--config", cfg, "--duration", "2"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "started: 1 camera(s)" in r.stderr


def test_rerun_keeps_keys_and_rotation_is_logged(tmp_path, keys):
    _, _, cfg, state = provision(tmp_path, keys)
    key_file = state / "keys" / "box.key.json"
    before, fp = key_file.read_bytes(), identity.load(state).fingerprint()

    code, out, _, _ = provision(tmp_path, keys, cameras=(f"entrance={HAMILTON}", "exit=/dev/video2"))
    assert code == 0 and "keys kept" in out
    assert key_file.read_bytes() == before
    assert [c.id for c in config_mod.load(cfg).cameras] == ["entrance", "exit"]

    code, out = edge("provision", "--config", cfg)  # everything else from the existing config
    assert code == 0 and f"Fingerprint: {fp}" in out

    code, out, _, _ = provision(tmp_path, keys, "--rotate")
    new_fp = identity.load(state).fingerprint()
    assert code == 0 and "keys rotated" in out and new_fp != fp
    audit = state / "audit" / "audit.log"
    log = [json.loads(line) for line in audit.read_text().splitlines()]
    kinds = [e["kind"] for e in log]
    assert kinds.count("provisioned") == 1 and kinds.count("key_rotated") == 1
    rotated = next(e["data"] for e in log if e["kind"] == "key_rotated")
    assert rotated["previous_fingerprint"] == fp and rotated["fingerprint"] == new_fp
    assert "private" not in audit.read_text()
    assert edge("audit", "verify", "--config", cfg)[0] == 0  # the chain spans the key rotation


@pytest.mark.parametrize("args, message", [
    (["--camera", "a=/dev/video0"], "--box-id is required"),
    (["--box-id", "b1"], "--camera ID=SOURCE is required"),
    (["--box-id", "b1", "--camera", "novalue"], "expected ID=SOURCE"),
    (["--box-id", "b1", "--camera", "bad id=/dev/video0"], "cameras[0].id: must be letters"),
    (["--box-id", "b1", "--camera", "a=/dev/video0", "--alerts-endpoint", "http://x"], "alerts.endpoint"),
    (["--box-id", "b1", "--camera", "a=/dev/video0", "--issuer-key", __file__], "not an issuer public key file"),
    (["--box-id", "b1", "--camera", "a=/dev/video0", "--console-key", __file__], "not a 40-character z85"),
])
def test_bad_input_is_one_sentence_and_changes_nothing(tmp_path, args, message):
    cfg, state = tmp_path / "edge.toml", tmp_path / "state"
    code, out = edge("provision", "--config", cfg, "--state-dir", state, *args)
    assert code == 1 and message in out and "Traceback" not in out
    assert not cfg.exists() and not state.exists()


def test_doctor_reports_a_broken_camera_and_bad_key_modes(tmp_path, keys):
    code, out, cfg, state = provision(tmp_path, keys, cameras=(f"entrance={HAMILTON}",
                                                             f"exit={tmp_path / 'unplugged.mp4'}"))
    assert code == 0, out
    code, out = edge("doctor", "--config", cfg)
    assert code == 1
    lines = [line.split() for line in out.splitlines()]
    row = lambda name: next(w[0] for w in lines if w[1:1 + len(name.split())] == name.split())
    assert row("camera entrance") == "OK" and row("camera exit") == "FAIL"
    assert row("keys") == row("trusted issuers") == row("clock") == row("disk") == "OK"
    assert "fps" in next(line for line in out.splitlines() if "camera entrance" in line)
    assert "check(s) failed: camera exit, watch list" in out

    (state / "keys" / "box.key.json").chmod(0o644)
    code, out = edge("doctor", "--config", cfg)
    assert code == 1 and "box.key.json is 644 (want 600)" in out


def test_toml_writer_round_trips():
    data = {"box_id": 'a "quoted" box\n', "n": 3, "x": 0.5, "on": True, "mounts": ["/media/a", "/media/b"],
            "cameras": [{"id": "a", "source": "rtsp://h/1"}, {"id": "b", "source": "0", "loop": False}],
            "alerts": {"endpoint": "tcp://*:5599"}, "odd key": {"inner": {"deep": 1}}}
    assert tomllib.loads(toml_dumps(data)) == data


def test_usb_stick_loads_its_watch_list_then_doctor_is_happy(tmp_path):
    """firmware/usb.py on a stick's files (the mount itself needs root and a device): the good list
    loads, the junk one and a symlink are refused, and the provisioned box then passes `edge doctor`."""
    from wlhelpers import make_bundle

    issuer = Ed25519PrivateKey.generate()
    (tmp_path / "issuer.pub").write_text(json.dumps(identity.issuer_public_doc(identity.raw_public(issuer))))
    (tmp_path / "console.pub").write_bytes(zmq.curve_keypair()[0] + b"\n")
    _, _, cfg, state = provision(tmp_path, (tmp_path / "issuer.pub", tmp_path / "console.pub"))
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / "a-list.wlb").write_bytes(make_bundle(issuer, identity.load(state).wl_public,
                                                   header={"deployment": "op-1", "box_id": "ldn-kx-01"}))
    code, out = edge("doctor", "--config", cfg)
    assert code == 1 and re.search(r"FAIL +deployment +no deployment window is open or coming", out)  # no match
    authorise(tmp_path, issuer, state, hours=(1, 2), bundle=stick / "a-list.wlb")  # the list needs its window
    (stick / "b-junk.wlb").write_bytes(b"EDGEWL but not really")
    (stick / "c-link.wlb").symlink_to(stick / "a-list.wlb")
    (stick / "notes.txt").write_text("not a list")

    r = subprocess.run([sys.executable, "-m", "firmware.usb", stick, "--config", cfg, "--user", "nobody-here"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr  # one file refused
    lines = r.stdout.splitlines()
    assert any("a-list.wlb: loaded list" in ln for ln in lines), r.stdout
    assert any("b-junk.wlb: skipped" in ln for ln in lines) and any("c-link.wlb: skipped" in ln for ln in lines)
    refused = [json.loads(ln)["data"] for ln in (state / "audit" / "audit.log").read_text().splitlines()
               if '"kind":"watchlist_refused"' in ln]  # refused at staging: recorded like any refusal
    assert {r["file"] for r in refused} >= {"b-junk.wlb", "c-link.wlb"} and all(r["arrived"] == "usb" for r in refused)
    assert (state / "watchlist" / "current.wlb").read_bytes() == (stick / "a-list.wlb").read_bytes()

    code, out = edge("doctor", "--config", cfg)
    assert code == 0 and re.search(r"WARN +deployment +no window open now: op-1 opens at", out)
    authorise(tmp_path, issuer, state, hours=(-1, 1), bundle=stick / "a-list.wlb")  # supersedes: issued later
    code, out = edge("doctor", "--config", cfg)
    assert code == 0, out
    assert re.search(r"OK +watch list", out) and re.search(r"SKIP +service", out)
    assert re.search(r"OK +deployment +op-1 open until", out)


def authorise(tmp_path, issuer, state, hours, bundle):
    import hashlib
    from datetime import UTC, datetime, timedelta

    from edge import deployment

    now = datetime.now(UTC)
    doc = deployment.make(issuer, box_id="ldn-kx-01", deployment_id="op-1", location="High St", cameras=["entrance"],
                          start=now + timedelta(hours=hours[0]), end=now + timedelta(hours=hours[1]), purpose="test",
                          lists=[("list-1", hashlib.sha256(bundle.read_bytes()).hexdigest())])
    (tmp_path / "op.dep").write_text(json.dumps(doc))
    assert edge("deployment", "load", tmp_path / "op.dep", "--state-dir", state)[0] == 0


def test_doctor_says_in_words_what_is_wrong_and_lets_no_ffmpeg_line_through(tmp_path, keys):
    """A damaged key is named with what is wrong (not "(KeyError)"), a camera that refuses or a file that is
    not a video is said in words, and FFmpeg's own lines do not reach the terminal."""
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(bytes(range(256)) * 40)
    notes = tmp_path / "notes"  # no video suffix: OpenCV says only that it cannot "capture by name"
    notes.write_text("not a camera\n")
    code, out, cfg, state = provision(tmp_path, keys, cameras=(f"door=rtsp://127.0.0.1:{free_port()}/x",
                                                               f"file={garbage}", f"notes={notes}"))
    assert code == 0, out
    key_file = state / "keys" / "box.key.json"
    doc = json.loads(key_file.read_text())
    del doc["wl_key"]
    key_file.write_text(json.dumps(doc))
    (state / "trust" / "issuers" / "0123456789abcdef.pub").write_text("{not a key")
    r = subprocess.run([sys.executable, "-m", "edge", "doctor", "--config", cfg], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1
    assert f"the box key file {key_file} is damaged: it has no wl_key (restore it from a backup" in r.stdout
    assert "Error" not in r.stdout and "KeyError" not in r.stdout
    assert re.search(r"FAIL +trust store +trusted issuer file", r.stdout)
    assert "0123456789abcdef.pub is damaged and not trusted" in r.stdout
    assert "cannot open rtsp://" in r.stdout and ": connection refused" in r.stdout
    assert f"cannot open {garbage}: not " in r.stdout
    assert f"cannot open {notes}: not a video file this box can read" in r.stdout
    assert "[tcp @" not in r.stderr and "WARN:" not in r.stderr and "@ 0x" not in r.stderr + r.stdout, r.stderr
    code, out = edge("trust", "list", "--config", cfg)
    assert code == 1 and "DAMAGED trusted issuer file" in out


def test_provision_refuses_to_replace_a_deleted_private_key_silently(tmp_path, keys):
    _, _, cfg, state = provision(tmp_path, keys)
    fp = identity.load(state).fingerprint()
    (state / "keys" / "box.key.json").unlink()
    code, out, _, _ = provision(tmp_path, keys)
    assert code == 1 and "private key file" in out and "is missing" in out
    assert "'edge provision --rotate' to make new keys" in out and "Traceback" not in out
    assert not (state / "keys" / "box.key.json").exists()  # no new keys, no new fingerprint
    code, out, _, _ = provision(tmp_path, keys, "--rotate")
    assert code == 0 and "keys rotated" in out
    log = [json.loads(line) for line in (state / "audit" / "audit.log").read_text().splitlines()]
    rotated = next(e["data"] for e in log if e["kind"] == "key_rotated")
    assert rotated["previous_fingerprint"] == fp != identity.load(state).fingerprint()
