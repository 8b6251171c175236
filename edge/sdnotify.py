"""Tell systemd how the daemon is doing: the sd_notify protocol, without libsystemd.

systemd passes a datagram socket in ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract
namespace); each message is newline-separated ``KEY=VALUE`` lines. ``edge.service`` is
``Type=notify`` with ``WatchdogSec=``: the daemon sends ``READY=1`` once it serves, ``WATCHDOG=1``
from its main loop (at least every ``watchdog_interval()`` seconds), ``STOPPING=1`` on the way out,
and ``STATUS=...`` lines for ``systemctl status``. Outside systemd every call is a no-op that
returns False; a notification that cannot be sent never raises.

    from edge import sdnotify
    sdnotify.ready("2 cameras up")
    ... loop: sdnotify.watchdog()
    sdnotify.stopping()
"""

from __future__ import annotations

import os
import socket


def notify(*lines: str) -> bool:
    """Send ``KEY=VALUE`` lines in one datagram; True if systemd got it."""
    addr = os.environ.get("NOTIFY_SOCKET", "")
    if not addr or not lines:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    msg = "\n".join(line.replace("\n", " ") for line in lines).encode("utf-8", "replace")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(addr)
            sock.sendall(msg)
    except OSError:
        return False
    return True


def ready(status: str = "") -> bool:
    return notify("READY=1", *([f"STATUS={status}"] if status else []))


def watchdog() -> bool:
    return notify("WATCHDOG=1")


def stopping(status: str = "") -> bool:
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


def status(text: str) -> bool:
    return notify(f"STATUS={text}")


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings to stay safe (half of WatchdogSec), or None if not watched."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6
