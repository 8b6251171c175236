"""The daemon's local control socket: JSON request -> JSON reply over a ZeroMQ REP socket.

By default it is an ipc:// socket inside the state dir (0700), so only the service user (and root)
can reach it. Commands are registered by name: ``server.commands["status"] = fn(request) -> dict``.
A handler's EdgeError becomes ``{"ok": false, "error": "..."}``; the CLI prints that one sentence.
"""

from __future__ import annotations

import json
import logging
import threading

import zmq

from edge.errors import EdgeError

log = logging.getLogger(__name__)


class ControlServer:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.commands: dict = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="control", daemon=True)
        self._ready = threading.Event()
        self._error: Exception | None = None

    def start(self) -> None:
        if not self.endpoint.startswith("ipc://"):  # no authentication here: only a Unix socket in a 0700 dir
            raise EdgeError(f"the control socket {self.endpoint} must be ipc://: TCP is refused")
        self._thread.start()
        self._ready.wait(5)
        if self._error:
            raise EdgeError(f"cannot open the control socket {self.endpoint}: {self._error}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=3)

    def _serve(self) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
        sock = ctx.socket(zmq.REP)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self._error = exc
            self._ready.set()
            sock.close()
            return
        self._ready.set()
        try:
            while not self._stop.is_set():
                if not sock.poll(200):
                    continue
                raw = sock.recv()
                sock.send(json.dumps(self.handle(raw)).encode())
        finally:
            sock.close()

    def handle(self, raw: bytes) -> dict:
        try:
            req = json.loads(raw)
            if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
                raise ValueError
        except (ValueError, RecursionError):
            return {"ok": False, "error": "malformed request"}
        fn = self.commands.get(req["cmd"])
        if fn is None:
            return {"ok": False, "error": f"unknown command {req['cmd']!r}"}
        try:
            reply = fn(req) or {}
            return {"ok": True, **reply}
        except EdgeError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception:  # a bug must not kill the control thread
            log.exception("control command %s failed", req["cmd"])
            return {"ok": False, "error": f"internal error in {req['cmd']}"}


def request(endpoint: str, req: dict, timeout: float = 3.0) -> dict:
    """Send one command to a running daemon; EdgeError if none answers or it refuses."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send(json.dumps(req).encode())
        if not sock.poll(int(timeout * 1000)):
            raise EdgeError(f"no edge daemon is answering on {endpoint} (is `edge run` running?)")
        reply = json.loads(sock.recv())
    finally:
        sock.close()
    if not reply.get("ok"):
        raise EdgeError(reply.get("error", "the daemon refused the request"))
    return reply
