"""The daemon's lifecycle: what `edge run` sets up, and what the library leaves alone.

Real daemons (in a subprocess, or in this process with their real audit log, CURVE alert channel,
watch-list service threads and control socket).
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import conftest
import pytest
import zmq
from conftest import HAMILTON, LIN, LIN_REF, Subscriber, edge_cmd, free_port, make_watchlist_folder, write_config

from edge import config
from edge.audit.verify import verify_log
from edge.errors import EdgeError
from edge.pipeline.daemon import Daemon


def _idle_config(tmp_path):
    """A box whose one camera is disabled: the daemon runs with no camera process."""
    return write_config(tmp_path / "edge.toml", [{"id": "cam-a", "source": "a.mp4", "enabled": False}], None,
                        f"tcp://127.0.0.1:{free_port()}")


def test_the_library_leaves_the_root_logger_alone_and_edge_run_sets_it_up(tmp_path):
    cfg = _idle_config(tmp_path)
    code = ("import logging, sys\n"
            "from edge import config\n"
            "from edge.pipeline.daemon import Daemon\n"
            "root = logging.getLogger()\n"
            "Daemon(config.load(sys.argv[1])).run(duration=0.5)\n"
            "print(len(root.handlers), root.level)\n")
    r = subprocess.run([sys.executable, "-c", code, str(cfg)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["0", str(30)], r.stdout  # no handler added, level still WARNING
    r = subprocess.run(edge_cmd("run", "--config", str(cfg), "--duration", "0.5"), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert " INFO edge: edge daemon test-box started" in r.stderr, r.stderr  # the command configures logging


def _box_config(tmp_path, *, control: str = "", cameras: str = "", watchlist: str = "") -> config.Config:
    state = tmp_path / "state"
    text = (f'box_id = "box-l"\nstate_dir = "{state}"\n'
            + (cameras or '[[cameras]]\nid = "cam-a"\nsource = "a.mp4"\nenabled = false\n')
            + f'[alerts]\nendpoint = "tcp://127.0.0.1:{free_port()}"\n'
            + (f'control_endpoint = "{control}"\n' if control else "")
            + (f'[watchlist]\nfolder = "{watchlist}"\n' if watchlist else "")
            + '[deployment]\nrequired = false\n[health]\nlog_interval = 2.0\n')
    (tmp_path / "edge.toml").write_text(text)
    return config.load(str(tmp_path / "edge.toml"))


def _kinds(state) -> list[str]:
    return [r["kind"] for r in verify_log(state).records]


def _extra_threads(before: set) -> list[str]:
    conftest.wait_for(lambda: set(threading.enumerate()) <= before, 5)
    return sorted(t.name for t in set(threading.enumerate()) - before)


def test_a_start_that_fails_after_the_channel_started_stops_it_and_its_threads(tmp_path):
    """The control socket cannot be bound (its folder does not exist): the alert channel, its ZAP handler
    and the watch-list service had started; they stop, their sockets close, the run's stop is recorded."""
    cfg = _box_config(tmp_path, control=f"ipc://{tmp_path / 'no-such-dir' / 'control.sock'}")
    before = set(threading.enumerate())
    d = Daemon(cfg)
    with pytest.raises(EdgeError, match="cannot open the control socket"):
        d.start()
    assert d.publisher is not None and d.publisher.sock.closed and d.publisher.ctx.closed
    assert _extra_threads(before) == []
    sock = zmq.Context.instance().socket(zmq.ROUTER)  # the alert endpoint is free again
    try:
        sock.bind(cfg.alerts.endpoint)
    finally:
        sock.close(0)
    kinds = [k for k in _kinds(cfg.state_dir) if k != "checkpoint"]
    assert kinds[0] == "service_start" and kinds[-1] == "service_stop", kinds
    stop = [r for r in verify_log(cfg.state_dir).records if r["kind"] == "service_stop"][-1]
    assert stop["data"]["reason"].startswith("start failed: cannot open the control socket")


def test_a_start_that_fails_on_a_bound_alert_port_records_the_stop_and_leaves_no_thread(tmp_path):
    cfg = _box_config(tmp_path)
    taken = zmq.Context.instance().socket(zmq.ROUTER)
    taken.bind(cfg.alerts.endpoint)  # another program holds the console port
    before = set(threading.enumerate())
    try:
        with pytest.raises(EdgeError, match="cannot bind the alert endpoint"):
            Daemon(cfg).start()
    finally:
        taken.close(0)
    assert _extra_threads(before) == []
    kinds = [k for k in _kinds(cfg.state_dir) if k != "checkpoint"]
    assert kinds[0] == "service_start" and kinds[-1] == "service_stop", kinds


def test_inputs_stop_first_and_the_signed_service_stop_is_the_last_record(tmp_path):
    """A real camera process plays the Hamilton clip (Lin-Manuel Miranda is listed) and a real console is
    connected, so alerts are flowing when the daemon stops. When service_stop is written no input is
    left (camera processes, watch-list threads, control, the channel's thread); nothing follows it in
    the log but the checkpoint that signs it."""
    wl = make_watchlist_folder(tmp_path / "wl", {LIN_REF: LIN})
    cfg = _box_config(tmp_path, watchlist=str(wl),
                      cameras=f'[[cameras]]\nid = "cam-a"\nsource = "{HAMILTON}"\nloop = true\n')
    sub = Subscriber(cfg.alerts.endpoint, Path(cfg.state_dir), box_id="box-l")
    before = set(threading.enumerate())
    d = Daemon(cfg)
    seen: dict = {}
    d.start()
    log = d.duties.log
    append = log.append

    def watching(kind, **fields):  # the real append; notes what still runs when the stop is written
        if kind == "service_stop":
            seen["threads"] = sorted(t.name for t in set(threading.enumerate()) - before)
            seen["cameras"] = [c for c, cam in d.cameras.items() if cam.alive()]
        return append(kind, **fields)

    log.append = watching
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not sub.alerts():
            d.step()
        assert sub.alerts(), "no alert reached the console"
    finally:
        d.stop()
        sub.close()
    assert seen == {"threads": [], "cameras": []}
    assert _extra_threads(before) == []
    records = verify_log(cfg.state_dir).records
    kinds = [r["kind"] for r in records]
    assert "alert" in kinds
    last_stop = max(i for i, k in enumerate(kinds) if k == "service_stop")
    assert kinds[last_stop + 1:] == ["checkpoint"], kinds[last_stop:]


def test_service_start_states_the_effective_retention_policy(tmp_path):
    """The config keeps alerts 20 days; the stored list's signed policy says 7: the run keeps them 7 days
    (the stricter), and its service_start record says so and why (the audit report reads it there)."""

    from wlhelpers import store_list_with_policy


    cfg = _box_config(tmp_path)
    cfg.alerts.retention_days = 20.0
    state = Path(cfg.state_dir)
    store_list_with_policy(tmp_path, state, cfg.box_id, {"retention_days": 7})
    d = Daemon(cfg)
    d.start()
    try:
        assert d.matcher.current is not None and d.matcher.current.list_id == "L-7"
    finally:
        d.stop()
    (start,) = [r["data"] for r in verify_log(state).records if r["kind"] == "service_start"]
    assert start["retention_days"] == 7
    assert start["retention_source"] == "list L-7 policy.retention_days"


def test_camera_processes_get_the_typed_config(tmp_path):
    """A camera process is handed the CameraConfig and Config dataclasses (they pickle across the spawn),
    not dicts of them: a real spawned process plays the clip and reports frames and faces."""
    import json
    import multiprocessing as mp
    import queue as queue_mod

    from edge.pipeline.supervisor import CameraProcess

    cfg = _box_config(tmp_path, cameras=f'[[cameras]]\nid = "cam-a"\nsource = "{HAMILTON}"\nloop = true\n')
    ctx = mp.get_context("spawn")
    out, allowed = ctx.Queue(maxsize=512), ctx.Event()
    cam = CameraProcess(ctx, cfg.cameras[0], cfg, out, allowed)
    cam.start()
    got: dict = {}
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and cam.alive() and not got.get("faces"):
            try:
                msg = json.loads(out.get(timeout=0.5))
            except queue_mod.Empty:
                continue
            if msg["type"] == "health":
                got = msg["stats"]
    finally:
        cam.stop()
    assert got.get("frames_processed", 0) > 0 and got.get("faces", 0) > 0, got
    assert got["not_authorised"] > 0  # the encode switch is off: faces are tracked, not encoded


def test_the_camera_worker_reads_its_settings_as_attributes():
    """CameraWorker (what runs in a camera process, and what the benches drive) takes the typed config."""
    import queue as queue_mod

    import cv2

    from edge.pipeline.camera import CameraWorker
    from edge.pipeline.capture import Frame

    cfg = config.parse('box_id = "t"\n[[cameras]]\nid = "cam-a"\nsource = "clip.mp4"\n'
                       "[encode]\nmax_per_track = 1\n[quality]\nmin_sharpness = 0.0\n")
    out: queue_mod.Queue = queue_mod.Queue()
    allowed = threading.Event()
    allowed.set()
    worker = CameraWorker(cfg.cameras[0], cfg, out, threading.Event(), allowed)
    cap = cv2.VideoCapture(str(HAMILTON))
    try:
        for i in range(40):
            ok, img = cap.read()
            assert ok
            worker.process(Frame(img, i + 1, i / 25.0))  # stream time: encode.hold_s passes with the clip
    finally:
        cap.release()
    assert worker.cam_id == "cam-a" and worker.counters.faces > 0 and worker.counters.encodes >= 1


def test_the_detection_strategy_reads_the_typed_detect_settings():
    """The camera's detection strategy and `edge doctor`'s smallest-face figure take DetectConfig itself."""
    import cv2

    from edge.pipeline.detect import Strategy, smallest_face

    det = config.parse('box_id = "t"\n[[cameras]]\nid = "cam-a"\nsource = "clip.mp4"\n').detect
    assert smallest_face(det, 1920) == det.min_face_px  # motion scans find the configured size
    cap = cv2.VideoCapture(str(HAMILTON))
    try:
        ok, img = cap.read()
    finally:
        cap.release()
    assert ok
    assert Strategy(det).detect(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), [], 1)  # the clip opens on a face
