"""What changed in the config since the daemon last started: the ``config_changed`` record's ``diff``.

The daemon calls ``changes(state_dir, dataclasses.asdict(cfg))`` at start: it compares the config
with the copy kept in ``<state_dir>/audit/last-config.json``, saves the new one, and returns
``{"match.threshold": [0.6, 0.55], ...}`` (key path -> [old, new]) or ``{}``. Passwords in camera URLs
are masked before anything is stored or logged.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from edge.files import write_atomic

SNAPSHOT = "last-config.json"
_URL_PASSWORD = re.compile(r"(://[^/:@\s]+:)[^@/\s]+@")


def _flatten(value, path: str, out: dict) -> dict:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(v, f"{path}.{k}" if path else str(k), out)
    elif isinstance(value, list) and value and all(isinstance(v, dict) and "id" in v for v in value):
        for v in value:  # cameras: keyed by id, so a reordering is not a change
            _flatten(v, f"{path}[{v['id']}]", out)
    else:
        out[path] = value
    return out


def diff(old: dict, new: dict) -> dict:
    a, b = _flatten(old, "", {}), _flatten(new, "", {})
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def changes(state_dir, config: dict) -> dict:
    """The diff against the last start's config (everything, the first time); saves this one."""
    config = _mask({k: v for k, v in config.items() if k != "path"})
    path = Path(state_dir) / "audit" / SNAPSHOT
    try:
        old = json.loads(path.read_text())
    except (OSError, ValueError, RecursionError):
        old = {}
    d = diff(old, config)
    if d:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(path, json.dumps(config, indent=1, sort_keys=True).encode(), 0o600)
    return d


def _mask(value):
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return _URL_PASSWORD.sub(r"\1***@", value) if isinstance(value, str) else value
