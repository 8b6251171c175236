"""`edge doctor`: is this box ready? One OK/FAIL row per check, exit 1 if anything failed.

Checks: config, keys and their modes, trusted issuers and consoles, each camera (from the running
daemon's status if it answers, else opened here as the box opens it, for a couple of seconds: reachable,
resolution, frame rate, and whether the detection settings see faces of ``quality.min_face_px`` at that
resolution), the watch list, clock sanity, disk space in the state dir, and the service state.
A check that cannot be made here (no systemd) is SKIP, not FAIL.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import time
from pathlib import Path

import click

import edge
from edge import config as config_mod
from edge import identity
from edge.errors import EdgeError

MIN_FREE_BYTES = 1 << 30  # the stored list, outbox, audit log and logs need room to grow
MIN_YEAR = 2025
CAMERA_SECONDS = 2.0
WARN = "warn"  # a row that is not OK but does not fail the doctor (e.g. a deployment window not yet open)


def check_keys(state_dir: Path):
    yield from _check_box_keys(state_dir)
    for why in identity.trust_problems(state_dir):
        yield "trust store", False, why
    n_iss, n_con = len(identity.issuers(state_dir)), len(identity.consoles(state_dir))
    yield "trusted issuers", n_iss > 0, f"{n_iss} key(s)" if n_iss else "none: 'edge provision --issuer-key FILE'"
    yield "trusted consoles", n_con > 0, f"{n_con} key(s)" if n_con else "none: 'edge provision --console-key FILE'"


def _check_box_keys(state_dir: Path):
    try:
        ident = identity.load(state_dir)
    except EdgeError as exc:
        yield "keys", False, str(exc)
        return
    kdir = state_dir / "keys"
    modes = {state_dir: 0o700, kdir: 0o700, kdir / identity.KEY_FILE: 0o600}
    bad = [f"{p} is {p.stat().st_mode & 0o777:o} (want {m:o})" for p, m in modes.items()
           if p.stat().st_mode & 0o777 != m]
    owner = state_dir.stat().st_uid
    bad += [f"{p} is not owned by the state dir's owner" for p in modes if p.stat().st_uid != owner]
    yield "keys", not bad, "; ".join(bad) or f"box {ident.box_id}, fingerprint {ident.fingerprint()}"


MIN_CAMERA_FPS = 5.0  # slower than this, a walker crosses the view between frames


# what FFmpeg and OpenCV print when a camera cannot be opened, in words (their raw lines never reach the user)
FFMPEG_WORDS = (("Connection refused", "connection refused"), ("timed out", "no answer (timed out)"),
                ("401 Unauthorized", "the camera refused the user name or password (401)"),
                ("404 Not Found", "no such stream on the camera (404)"),
                ("No route to host", "no route to the camera's address"),
                ("Name or service not known", "the camera's host name does not resolve"),
                ("moov atom not found", "not a complete video file"),
                ("Invalid data found", "not a video file"), ("No such file or directory", "no such file"),
                ("Permission denied", "permission denied"))


NOT_VIDEO = "not a video file this box can read"  # a file FFmpeg/OpenCV gave no known reason for


def in_words(raw: str) -> str:
    """The first known FFmpeg/OpenCV complaint in ``raw``, in words ("" if none is known)."""
    return next((words for pattern, words in FFMPEG_WORDS if pattern.lower() in raw.lower()), "")


@contextlib.contextmanager
def quiet_stderr():
    """Send file descriptor 2 (where FFmpeg and OpenCV write their raw lines) to a temporary file for a
    moment; yields a function returning what was written so far."""
    import sys
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 2)

        def said() -> str:
            return os.pread(f.fileno(), 1 << 16, 0).decode("utf-8", "replace")

        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def probe_camera(source: str, seconds: float = CAMERA_SECONDS) -> tuple[bool, str, dict]:
    """Open a camera as the box does and read frames for a moment:
    (ok, "1920x1080, 50 frames at 24.9 fps", {"width", "height", "fps"}). FFmpeg's own lines are caught
    and what they say is given in words."""
    from edge.pipeline.capture import open_source

    with quiet_stderr() as said:
        return _probe(open_source(source), source, seconds, said)


def _probe(cap, source: str, seconds: float, said) -> tuple[bool, str, dict]:
    import cv2

    from edge.pipeline.capture import is_file

    try:
        if not cap.isOpened():
            why = in_words(said()) or (NOT_VIDEO if is_file(source) and os.path.isfile(source) else "")
            return False, f"cannot open {source}" + (f": {why}" if why else ""), {}
        frames, shape, start = 0, None, time.monotonic()
        settled, counted = start + seconds / 2, []  # the rate counts the second half only: a stream
        while time.monotonic() - start < seconds:  # may send its first second (preroll) at once
            ok, frame = cap.read()
            if not ok:
                break
            frames, shape = frames + 1, frame.shape
            if time.monotonic() >= settled:
                counted.append(time.monotonic())
        if frames == 0 or shape is None:
            return False, f"opened {source} but read no frames", {}
        took = counted[-1] - counted[0] if len(counted) > 1 else 0.0
        fps = (len(counted) - 1) / took if took > 0 else 0.0
        if is_file(source):  # a file reads as fast as it decodes: its own rate is the one that counts
            fps = cap.get(cv2.CAP_PROP_FPS) or fps
        info = {"width": shape[1], "height": shape[0], "fps": fps}
        detail = f"{shape[1]}x{shape[0]}, {frames} frames at {fps:.1f} fps"
        if fps < MIN_CAMERA_FPS:
            return False, f"{detail}: below {MIN_CAMERA_FPS:.0f} fps", info
        return True, detail, info
    finally:
        cap.release()


def face_check(cfg, width: int, height: int) -> tuple[bool, str]:
    """Can the detection settings see faces of ``quality.min_face_px`` in frames of this size?"""
    from edge.pipeline.detect import smallest_face

    want = cfg.quality.min_face_px
    got = smallest_face(cfg.detect, width)
    at = f"at {width}x{height}"
    if got <= want:
        return True, f"{at} detection finds faces from {got} px (quality.min_face_px = {want})"
    how = ("set detect.min_face_px to at most " + str(want) if cfg.detect.motion or cfg.detect.upsample
           else "set detect.motion = true (fixed camera), detect.upsample = 1 or raise detect.max_width")
    return False, (f"{at} detection finds faces from {got} px only, smaller than quality.min_face_px = {want} "
                   f"are missed: {how}")


def check_cameras(cfg, daemon: dict | None):
    for cam in cfg.cameras:
        name = f"camera {cam.id}"
        if not cam.enabled:
            yield name, None, "disabled in the config"
            continue
        if daemon is not None:  # the daemon holds the device: ask it rather than fight over it
            st = daemon.get("cameras", {}).get(cam.id, {})
            stats = st.get("stats", {})
            fps = stats.get("fps", 0.0)
            size = (stats.get("width", 0), stats.get("height", 0))
            shown = f"{size[0]}x{size[1]}, " if size[0] else ""
            yield name, st.get("state") == "up", f"daemon reports {st.get('state', 'unknown')}, {shown}{fps:.1f} fps"
        else:
            ok, detail, info = probe_camera(cam.source)
            yield name, ok, detail
            size = (info.get("width", 0), info.get("height", 0))
        if size[0]:
            yield (f"camera {cam.id} faces", *face_check(cfg, *size))


def check_watchlist(state_dir: Path, daemon: dict | None):
    if daemon is not None and daemon.get("watchlist"):
        wl = daemon["watchlist"]
        yield "watch list", True, f"{wl.get('list_id')} in force, {wl.get('entries')} entries"
        return
    stored = state_dir / "watchlist" / "current.wlb"
    if stored.exists():
        yield "watch list", True, f"stored bundle present ({stored.stat().st_size} bytes)"
    else:
        yield "watch list", False, "no watch list stored: load one with 'edge watchlist load FILE'"


def check_deployment(state_dir: Path, now: dt.datetime | None = None):
    """Matching runs only inside a signed deployment window: without one open the box matches no face."""
    from edge import deployment

    now = now or dt.datetime.now(dt.UTC)
    problems: list[str] = []
    deps = deployment.status(state_dir, now, problems)
    for why in problems:
        yield "deployment", False, why
    active = [d for d in deps if d["state"] == "active"]
    upcoming = [d for d in deps if d["state"] == "upcoming"]
    if active:
        yield "deployment", True, "; ".join(f"{d['deployment_id']} open until {d['end']}, cameras "
                                            f"{', '.join(d['cameras'])}" for d in active)
    elif upcoming:
        first = min(upcoming, key=lambda d: d["start"])
        yield "deployment", WARN, (f"no window open now: {first['deployment_id']} opens at {first['start']}; "
                                   "until then no face is matched")
    else:
        yield "deployment", False, ("no deployment window is open or coming: no face is matched until one is "
                                    "loaded ('edge deployment load FILE', from 'enrol authorise')")


def check_clock(now: dt.datetime | None = None):
    now = now or dt.datetime.now(dt.UTC)
    built = dt.datetime.fromtimestamp(Path(edge.__file__).stat().st_mtime, dt.UTC)
    ok = now.year >= MIN_YEAR and now >= built - dt.timedelta(days=1)
    yield "clock", ok, f"{now:%Y-%m-%d %H:%M} UTC" + ("" if ok else f": before {built:%Y-%m-%d} (package build); "
                                                     "fix NTP, expiry and audit times depend on it")


def check_disk(state_dir: Path):
    du = shutil.disk_usage(state_dir if state_dir.exists() else state_dir.parent)
    yield "disk", du.free >= MIN_FREE_BYTES, f"{du.free / 2**30:.1f} GiB free of {du.total / 2**30:.1f} GiB"


def check_service(unit: str = "edge.service"):
    if shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        yield "service", None, "unknown (systemd is not running here)"
        return
    r = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, timeout=10)
    state = r.stdout.strip() or "unknown"
    yield "service", state == "active", f"{unit} is {state}"


def daemon_status(cfg) -> dict | None:
    from edge.pipeline.control import request

    try:
        return request(cfg.control_endpoint, {"cmd": "status"}, timeout=1.0)
    except (EdgeError, OSError, ValueError):
        return None


def run_checks(config_path, state_dir=None) -> list[tuple[str, bool | str | None, str]]:
    try:
        cfg = config_mod.load(config_path, state_dir)
    except EdgeError as exc:
        return [("config", False, str(exc))]
    rows: list[tuple[str, bool | str | None, str]] = [("config", True, cfg.path)]
    sd = Path(cfg.state_dir)
    daemon = daemon_status(cfg)
    for checks in (check_keys(sd), check_cameras(cfg, daemon), check_watchlist(sd, daemon), check_deployment(sd),
                   check_clock(),
                   check_disk(sd), check_service()):
        rows += list(checks)
    return rows


def format_table(rows) -> str:
    word = {True: "OK", False: "FAIL", None: "SKIP", WARN: "WARN"}
    width = max(len(name) for name, _, _ in rows)
    return "\n".join(f"{word[ok]:<5} {name:<{width}}  {detail}" for name, ok, detail in rows)


@click.command("doctor")
@click.option("--config", "config_path", default="/etc/edge/edge.toml", show_default=True, envvar="EDGE_CONFIG",
              type=click.Path(dir_okay=False))
@click.option("--state-dir", default=None, envvar="EDGE_STATE_DIR", type=click.Path(file_okay=False))
def doctor_command(config_path, state_dir):
    """Check a provisioned box: keys, cameras (fps), watch list, clock, disk, service. Exit 1 on any FAIL."""
    rows = run_checks(config_path, state_dir)
    click.echo(format_table(rows))
    failed = [name for name, ok, _ in rows if ok is False]
    if failed:
        raise click.ClickException(f"{len(failed)} check(s) failed: {', '.join(failed)}")
