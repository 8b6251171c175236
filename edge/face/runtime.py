"""How many math threads a face backend may use (config ``encode.threads``): read by every backend, set by
the camera process. A leaf, so that the backends and their registry (``encoder.py``) need not import each other."""

from __future__ import annotations

import os

_threads: int | None = None


def set_threads(n: int) -> None:
    """Math threads per process for backends created from now on (config ``encode.threads``)."""
    global _threads
    _threads = max(1, int(n))


def threads() -> int:
    """The configured thread count, else OMP_NUM_THREADS (the daemon sets it per camera), else 1."""
    if _threads:
        return _threads
    try:
        return max(1, int(os.environ.get("OMP_NUM_THREADS", "1")))
    except ValueError:
        return 1
