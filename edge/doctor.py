"""`edge doctor`: is this box ready? One OK/FAIL row per check, exit 1 if anything failed.

Checks: config, keys and their modes, trusted issuers and consoles, each camera (from the running
daemon's status if it answers, else opened here as the box opens it, for a couple of seconds: reachable,
resolution, frame rate, and whether the detection settings see faces of ``quality.min_face_px`` at that
resolution), the watch list, clock sanity, disk space in the state dir, and the service state.
A check that cannot be made here (no systemd) is SKIP, not FAIL.
"""

from __future__ import annotations

import datetime as dt
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


def check_keys(state_dir: Path):
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
    n_iss, n_con = len(identity.issuers(state_dir)), len(identity.consoles(state_dir))
    yield "trusted issuers", n_iss > 0, f"{n_iss} key(s)" if n_iss else "none: 'edge provision --issuer-key FILE'"
    yield "trusted consoles", n_con > 0, f"{n_con} key(s)" if n_con else "none: 'edge provision --console-key FILE'"


MIN_CAMERA_FPS = 5.0  # slower than this, a walker crosses the view between frames


def probe_camera(source: str, seconds: float = CAMERA_SECONDS) -> tuple[bool, str, dict]:
    """Open a camera as the box does and read frames for a moment:
    (ok, "1920x1080, 50 frames at 24.9 fps", {"width", "height", "fps"})."""
    import cv2

    from edge.pipeline.capture import is_file, open_source

    cap = open_source(source)
    try:
        if not cap.isOpened():
            return False, f"cannot open {source}", {}
        frames, shape, start = 0, None, time.monotonic()
        settled, counted = start + seconds / 2, []  # the rate counts the second half only: a stream
        while time.monotonic() - start < seconds:  # may send its first second (preroll) at once
            ok, frame = cap.read()
            if not ok:
                break
            frames, shape = frames + 1, frame.shape
            if time.monotonic() >= settled:
                counted.append(time.monotonic())
        if frames == 0:
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
    from dataclasses import asdict

    from edge.pipeline.detect import smallest_face

    want = cfg.quality.min_face_px
    got = smallest_face(asdict(cfg.detect), width)
    at = f"at {width}x{height}"
    if got <= want:
        return True, f"{at} detection finds faces from {got} px (quality.min_face_px = {want})"
    how = ("set detect.min_face_px to at most " + str(want) if cfg.detect.motion
           else "set detect.motion = true (fixed camera) or raise detect.max_width")
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


def run_checks(config_path, state_dir=None) -> list[tuple[str, bool | None, str]]:
    try:
        cfg = config_mod.load(config_path, state_dir)
    except EdgeError as exc:
        return [("config", False, str(exc))]
    rows = [("config", True, cfg.path)]
    sd = Path(cfg.state_dir)
    daemon = daemon_status(cfg)
    for checks in (check_keys(sd), check_cameras(cfg, daemon), check_watchlist(sd, daemon), check_clock(),
                   check_disk(sd), check_service()):
        rows += list(checks)
    return rows


def format_table(rows) -> str:
    word = {True: "OK", False: "FAIL", None: "SKIP"}
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
