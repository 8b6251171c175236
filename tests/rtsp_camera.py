"""A test camera: a real RTSP server on 127.0.0.1 serving H.264, GStreamer's gst-rtsp-server.

Run with Debian's Python (``/usr/bin/python3``: python3-gi and gir1.2-gst-rtsp-server-1.0 are system
packages, not in the venv), as a subprocess, by the tests and ``make bench``:

    /usr/bin/python3 tests/rtsp_camera.py --port 8554 --file street-h264.mp4     # rtsp://127.0.0.1:8554/cam
    /usr/bin/python3 tests/rtsp_camera.py --port 8554 --pattern                   # 1080p25 test pattern
    /usr/bin/python3 tests/rtsp_camera.py --transcode street.mp4 street-h264.mp4  # make an H.264 file once

``--file`` serves an H.264 MP4 as it is (no encoding at serve time), paced at its frame rate, looped;
``--pattern`` encodes a moving 1080p25 test pattern live with x264. Each client gets its own stream
from the start. It prints "ready" when it listens and runs until killed.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

X264 = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=6000"


def transcode(src: str, dst: str) -> None:
    """Any video GStreamer decodes -> an H.264 MP4 (baseline-ish, a key frame a second)."""
    pipeline = (f"filesrc location={src} ! decodebin ! videoconvert ! video/x-raw,format=I420 ! {X264} "
                f"! video/x-h264,profile=baseline ! h264parse ! mp4mux ! filesink location={dst}")
    subprocess.run(["gst-launch-1.0", "-q", *pipeline.split()], check=True)


class Looping(GstRtspServer.RTSPMediaFactory):
    """An H.264 MP4 served as it is, started again from the beginning at its end."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def do_create_element(self, url):
        return Gst.parse_launch(f"( filesrc location={self.path} ! qtdemux ! h264parse config-interval=-1 "
                                "! rtph264pay name=pay0 pt=96 config-interval=1 )")

    def do_configure(self, media):
        media.set_reusable(False)
        bin_ = media.get_element()
        demux = next(e for e in _walk(bin_) if e.get_factory().get_name() == "qtdemux")

        def at_eos(pad, info):
            if info.get_event().type == Gst.EventType.EOS:
                GLib.idle_add(lambda: demux.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 0) and False)
                return Gst.PadProbeReturn.DROP
            return Gst.PadProbeReturn.OK

        parse = next(e for e in _walk(bin_) if e.get_factory().get_name() == "h264parse")
        parse.get_static_pad("src").add_probe(Gst.PadProbeType.EVENT_DOWNSTREAM, at_eos)


def _walk(bin_):
    it = bin_.iterate_recurse()
    while True:
        ok, el = it.next()
        if ok != Gst.IteratorResult.OK:
            return
        yield el


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--file")
    ap.add_argument("--pattern", action="store_true")
    ap.add_argument("--transcode", nargs=2, metavar=("SRC", "DST"))
    args = ap.parse_args()
    Gst.init(None)
    if args.transcode:
        transcode(*args.transcode)
        return 0
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    if args.file:
        factory = Looping(args.file)
    else:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width=1920,height=1080,"
                           f"framerate=25/1 ! videoconvert ! {X264} ! rtph264pay name=pay0 pt=96 )")
    factory.set_shared(False)
    server.get_mount_points().add_factory("/cam", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    print("ready", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
