"""Typed, versioned JSON messages (docs/alerts.md is the spec).

Two families:
- *box messages* leave the box to consoles: ``alert`` and ``event``;
- *stage messages* go from a camera process to the daemon: ``encoding``, ``health``, ``camera``.

All are plain JSON objects with ``"v"`` (format version) and ``"type"``. Bytes (JPEG crops) are
base64. Nothing is ever pickled across a process or trust boundary.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

VERSION = 1
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class MessageError(ValueError):
    """A message that is not valid JSON of a known type and version."""


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def dumps(msg: dict[str, Any]) -> bytes:
    return json.dumps(msg, separators=(",", ":"), sort_keys=True).encode()


REQUIRED = {
    "alert": {"alert_id": str, "box_id": str, "camera_id": str, "time": str, "track_id": str,
              "ref": str, "distance": float, "threshold": float, "crop_jpeg": str},
    "event": {"event_id": str, "box_id": str, "time": str, "event": str},
    "encoding": {"camera_id": str, "track_id": str, "frame_time": float, "descriptor": list,
                 "crop_jpeg": str, "quality": float},
    "health": {"camera_id": str, "stats": dict},
    "camera": {"camera_id": str, "state": str, "reason": str},
}


def loads(data: bytes | str, allowed: set[str] | None = None,
          schema: dict[str, dict[str, type]] = REQUIRED) -> dict[str, Any]:
    """Parse and check one message against ``schema`` (type -> required fields); MessageError if malformed."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError("message too large")
    try:
        msg = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MessageError("not JSON") from exc
    if not isinstance(msg, dict):
        raise MessageError("not a JSON object")
    if msg.get("v") != VERSION:
        raise MessageError(f"unsupported message version {msg.get('v')!r}")
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in schema or (allowed is not None and kind not in allowed):
        raise MessageError(f"unexpected message type {kind!r}")
    for key, tp in schema[kind].items():
        value = msg.get(key)
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, tp) or isinstance(value, bool):
            raise MessageError(f"{kind}.{key} missing or not {tp.__name__}")
    return msg


def alert(*, box_id: str, camera_id: str, track_id: str, ref: str, distance: float, threshold: float,
          crop_jpeg: bytes, reference_jpeg: bytes = b"", category: str = "", list_id: str = "",
          frame_time: float | None = None, group_id: str | None = None) -> dict[str, Any]:
    alert_id = str(uuid.uuid4())
    return {
        "v": VERSION, "type": "alert", "alert_id": alert_id, "group_id": group_id or alert_id,
        "box_id": box_id, "camera_id": camera_id, "time": utcnow(), "frame_time": frame_time,
        "track_id": track_id, "ref": ref, "category": category, "list_id": list_id,
        "distance": round(float(distance), 4), "threshold": threshold,
        "crop_jpeg": b64(crop_jpeg), "reference_jpeg": b64(reference_jpeg),
    }


def event(*, box_id: str, event: str, **details: Any) -> dict[str, Any]:
    """Box events: camera_down, camera_up, watchlist_loaded, watchlist_expiring, ..."""
    return {"v": VERSION, "type": "event", "event_id": str(uuid.uuid4()), "box_id": box_id,
            "time": utcnow(), "event": event, **details}


def stage(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": VERSION, "type": kind, **fields}
