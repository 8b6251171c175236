"""Messages carry finite numbers only: NaN and infinity are not JSON, a NaN descriptor must never reach matching."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading

import pytest

from edge import config
from edge.alerts import messages, protocol
from edge.alerts.outbox import Outbox

NAN_DESCRIPTOR = [0.1] * 127 + [float("nan")]


def cfg_for(tmp_path):
    return config.parse(f'box_id = "box-1"\nstate_dir = "{tmp_path / "state"}"\n[[cameras]]\nid = "cam-a"\n'
                        'source = "x.mp4"\n[deployment]\nrequired = false\n')


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_a_message_holding_a_number_that_is_not_finite_is_refused_at_parse(text):
    raw = ('{"v":1,"type":"encoding","camera_id":"cam-a","track_id":"t","frame_time":1.0,"crop_jpeg":"",'
           f'"quality":0.9,"descriptor":[0.1,{text}]}}')
    with pytest.raises(messages.MessageError, match="not finite"):
        messages.loads(raw)
    hello = f'{{"v":1,"type":"hello","role":"console","name":"c","outbox":"","last_seq":0,"x":{text}}}'
    with pytest.raises(messages.MessageError, match="not finite"):
        protocol.loads(hello.encode(), allowed={"hello"})


def test_sending_a_nan_raises_a_clear_error_and_writes_nothing(tmp_path):
    """messages.dumps let NaN through as `NaN` (not JSON): now it refuses in one sentence, so the outbox holds
    nothing a console cannot read, and the link messages cannot carry one either."""
    msg = messages.stage("encoding", camera_id="cam-a", track_id="t", frame_time=1.0, descriptor=NAN_DESCRIPTOR,
                         crop_jpeg="", quality=0.9)
    with pytest.raises(messages.MessageError, match=r"^a encoding message cannot hold a number that is not finite"):
        messages.dumps(msg)
    ob = Outbox(tmp_path / "outbox.db")
    bad = messages.alert(box_id="box-1", camera_id="cam-a", track_id="t", ref="WL-1", distance=float("nan"),
                         threshold=0.6, crop_jpeg=b"\xff\xd8")
    with pytest.raises(messages.MessageError):
        ob.add(bad)
    assert ob.counts()["alerts"] == 0
    ob.close()
    with pytest.raises(messages.MessageError):
        protocol.hello("box", box_id="box-1", outbox="o", last_seq=0, accuracy={"measured_fpir": float("inf")})
    good = dict(msg, descriptor=[0.1] * 128)
    assert messages.dumps(good) == json.dumps(good, sort_keys=True, separators=(",", ":")).encode()


def test_a_nan_descriptor_from_a_camera_never_reaches_matching(tmp_path):
    """The camera process sends its descriptor through the wire encoder (it used json.dumps, NaN and all): a
    NaN one is dropped and counted there, no crash; one that comes anyway (an older camera process) is refused
    by the daemon's parse and counted as a bad stage message, and the matcher never sees it."""
    from edge.pipeline.camera import CameraWorker
    from edge.pipeline.daemon import Daemon

    cfg = cfg_for(tmp_path)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    worker = CameraWorker(cfg.cameras[0], cfg, q, ctx.Event(), ctx.Event())
    sender = threading.Thread(target=worker.send, args=("encoding",), kwargs=dict(
        track_id="cam-a-1-1", frame_time=1.0, descriptor=NAN_DESCRIPTOR, crop_jpeg="", quality=0.9))
    sender.start()
    sender.join(10)
    assert worker.counters.messages_dropped == 1
    worker.send("health", stats={"fps": 5.0})  # the next message goes as usual
    assert json.loads(q.get(timeout=10))["type"] == "health"

    daemon = Daemon(cfg)
    daemon.prepare_state_dir()
    daemon.queue = q
    old_camera = json.dumps(messages.stage("encoding", camera_id="cam-a", track_id="cam-a-1-2", frame_time=1.0,
                                           descriptor=NAN_DESCRIPTOR, crop_jpeg="", quality=0.9))
    assert "NaN" in old_camera
    q.put(old_camera)
    daemon.drain()
    assert daemon.counts.bad_stage_messages == 1
    assert daemon.counts.encodings == 0  # nothing reached the matcher
    q.close()


def test_a_status_with_a_nan_still_lets_the_box_say_hello(tmp_path):
    """The box's hello carries its live status; one NaN in it (a figure gone wrong) would make the hello
    unsendable and the console would never learn who the box is: the status is left out, counted, and the
    console still gets the box's id, its outbox and its retention period, and then its alerts."""
    from conftest import free_port, wait_for

    from edge import identity
    from edge.alerts.publisher import Channel
    from edge.console import keys
    from edge.console.link import BoxLink
    from edge.console.store import Store

    state = tmp_path / "state"
    ident = identity.create(state, "box-1")
    ch = Channel(f"tcp://127.0.0.1:{free_port()}", state, ident.curve_public, ident.curve_secret, "box-1",
                 status=lambda: {"cameras": {"cam-a": "up"}, "accuracy": {"measured_fpir": float("nan")}})
    ch.start()
    data = tmp_path / "console"
    identity.add_console(state, keys.keygen(data))
    store = Store(data / "console.db")
    link = BoxLink(ch.endpoint, ident.curve_public, keys.load(data), store)
    link.start()
    try:
        ch.publish(messages.alert(box_id="box-1", camera_id="cam-a", track_id="t", ref="WL-1", distance=0.4,
                                  threshold=0.6, crop_jpeg=b"\xff\xd8"))
        assert wait_for(lambda: len(store.open_alerts()) == 1, 20, "the alert on the console")
        assert link.box_id == "box-1" and link.box_status["retention_days"] == 31
        assert ch.counts["bad_status"] >= 1 and link.counts["bad_messages"] == 0
    finally:
        link.stop()
        ch.stop()
        store.close()
