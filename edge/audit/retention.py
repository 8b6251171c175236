"""The retention store: alert crops and details, kept for a set period, then deleted (each deletion logged).

Only alerts are kept, never a passer-by: ``<state_dir>/alerts/<YYYY-MM-DD>/<alert_id>.json`` holds the
alert's details (no images) and ``<alert_id>.jpg`` the camera crop the operator saw. The watch list's
reference image is not copied here; it goes when the list is purged. ``sweep`` deletes what is older
than the period (by the alert's own time, not the file's mtime) and records ``retention_deleted``.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

from edge.errors import EdgeError
from edge.identity import write_atomic

DEFAULT_DAYS = 31.0
IMAGE_FIELDS = ("crop_jpeg", "reference_jpeg")
ALERT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
log = logging.getLogger("edge.retention")


def alerts_dir(state_dir) -> Path:
    return Path(state_dir) / "alerts"


def _time(text: str) -> float:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()


def save_alert(state_dir, alert: dict) -> Path:
    """Keep one published alert: details JSON (without images) and the camera crop."""
    alert_id = str(alert.get("alert_id", ""))
    if not ALERT_ID.match(alert_id):
        raise EdgeError(f"alert id {alert_id!r} is not safe as a file name")
    day = datetime.fromtimestamp(_time(alert["time"]), UTC).strftime("%Y-%m-%d")
    d = alerts_dir(state_dir) / day
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    crop = alert.get("crop_jpeg") or ""
    if crop:
        write_atomic(d / f"{alert_id}.jpg", base64.b64decode(crop), 0o600)
    details = {k: v for k, v in alert.items() if k not in IMAGE_FIELDS}
    details["crop_file"] = f"{alert_id}.jpg" if crop else None
    path = d / f"{alert_id}.json"
    write_atomic(path, json.dumps(details, sort_keys=True).encode(), 0o600)
    return path


def stored_alerts(state_dir) -> list[dict]:
    out = []
    for p in sorted(alerts_dir(state_dir).glob("*/*.json")):
        try:
            out.append(json.loads(p.read_text()))
        except (OSError, ValueError):
            continue
    return out


def sweep(state_dir, days: float = DEFAULT_DAYS, *, record=None, clock=time.time) -> list[str]:
    """Delete alerts older than ``days``; returns their ids. ``record(kind, **fields)``: the audit log."""
    if days <= 0:
        raise EdgeError("the retention period must be positive")
    cutoff = clock() - days * 86400.0
    root = alerts_dir(state_dir)
    deleted = []
    for details in sorted(root.glob("*/*.json")):
        try:
            d = json.loads(details.read_text())
            t = _time(d["time"])
        except (OSError, ValueError, KeyError, TypeError):
            t, d = details.stat().st_mtime, {}
        if t >= cutoff:
            continue
        files = [p for p in (details, details.with_suffix(".jpg")) if p.exists()]
        for p in files:
            p.unlink()
        alert_id = str(d.get("alert_id", details.stem))
        if record:
            record("retention_deleted", alert_id=alert_id, camera_id=str(d.get("camera_id", "")),
                   alert_time=datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"),
                   files=len(files), age_days=round((clock() - t) / 86400.0, 2), period_days=days)
        log.info("retention: deleted alert %s (%d files)", alert_id, len(files))
        deleted.append(alert_id)
    for orphan in sorted(root.glob("*/*.jpg")):  # a crop whose details are gone
        if not orphan.with_suffix(".json").exists() and orphan.stat().st_mtime < cutoff:
            orphan.unlink()
            if record:
                record("retention_deleted", alert_id=orphan.stem, alert_time="", files=1, orphan=True,
                       period_days=days)
            deleted.append(orphan.stem)
    for day in sorted(root.glob("*")) if root.is_dir() else []:
        if day.is_dir() and not any(day.iterdir()):
            os.rmdir(day)
    return deleted
