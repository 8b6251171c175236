"""Box -> console channel, plain version: a ZeroMQ PUB socket (bound on 127.0.0.1 by default).

Each message is two frames: the message type (``alert`` / ``event``, for subscription filtering) and
the JSON body (docs/alerts.md). Counts what it sends.
"""

from __future__ import annotations

import zmq

from edge.alerts import messages
from edge.errors import EdgeError


class Publisher:
    def __init__(self, endpoint: str):
        self.endpoint = endpoint
        self.sent = 0
        self._sock = None

    def start(self) -> None:
        self._sock = zmq.Context.instance().socket(zmq.PUB)
        self._sock.setsockopt(zmq.LINGER, 1000)
        self._sock.setsockopt(zmq.SNDHWM, 10000)
        try:
            self._sock.bind(self.endpoint)
        except zmq.ZMQError as exc:
            self._sock.close()
            raise EdgeError(f"cannot bind the alert endpoint {self.endpoint}: {exc}") from None

    def publish(self, msg: dict) -> None:
        self._sock.send_multipart([msg["type"].encode(), messages.dumps(msg)])
        self.sent += 1

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
