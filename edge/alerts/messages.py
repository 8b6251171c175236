"""Typed, versioned JSON messages (docs/alerts.md is the spec).

Two families:
- *box messages* leave the box to consoles: ``alert`` and ``event``;
- *stage messages* go from a camera process to the daemon: ``encoding``, ``health``, ``camera``.

All are plain JSON objects with ``"v"`` (the format version of that type: ``VERSIONS``) and
``"type"``, written as the canonical JSON of ``edge.codec``; numbers are finite (NaN or infinity is
refused both when writing and when reading). Bytes (JPEG crops) are base64. Nothing is ever pickled across
a process or trust boundary.
A message of a newer version than this code knows raises :class:`NewerVersion`, so a reader can say
so plainly instead of misreading it.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Any

from edge import codec
from edge.codec import b64  # noqa: F401  (re-exported: the camera and the console use it)
from edge.errors import EdgeError

VERSION = 1  # every type not in VERSIONS
# alert v2: encounter_id, sighting, state, decision; hello v2: the box's retention_days (docs/alerts.md)
VERSIONS = {"alert": 2, "hello": 2}
READABLE = {"alert": (1, 2), "hello": (1, 2)}  # versions this code still reads (an outbox may hold v1 alerts)
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class MessageError(EdgeError):
    """A message that is not valid JSON of a known type and version."""


class NewerVersion(MessageError):
    """A message of a version newer than this code understands (update this reader)."""


def version(kind: str) -> int:
    return VERSIONS.get(kind, VERSION)


def utcnow() -> str:
    return codec.fmt_time(datetime.now(UTC), ms=True)


def iso(t: float) -> str:
    """Unix seconds -> the messages' UTC time form."""
    return codec.fmt_time(t, ms=True)


def new_id() -> str:
    return str(uuid.uuid4())


def unb64(text: str) -> bytes:
    """An image field's bytes; MessageError if it is not base64."""
    return codec.unb64(text, "image field", error=MessageError)


def dumps(msg: dict[str, Any]) -> bytes:
    """The wire form of a message: the canonical JSON (``edge.codec``); MessageError, and nothing written, for a
    number that is not finite (a NaN descriptor must not leave a camera as ``NaN``, which is not JSON)."""
    try:
        return codec.canonical(msg)
    except EdgeError:
        raise MessageError(f"a {msg.get('type')} message cannot hold a number that is not finite "
                           "(NaN or infinity): not sent") from None


def _finite(text: str) -> float:
    value = float(text)  # 1e999 reads as infinity
    if not math.isfinite(value):
        raise MessageError("a message may not hold a number that is not finite (NaN or infinity)")
    return value


def _no_constant(text: str) -> float:
    raise MessageError(f"a message may not hold {text} (a number that is not finite)")


Schema = dict[str, dict[str, type]]  # message type -> required field -> its JSON type
REQUIRED: Schema = {
    "alert": {"alert_id": str, "box_id": str, "camera_id": str, "time": str, "track_id": str,
              "ref": str, "distance": float, "threshold": float, "crop_jpeg": str},
    "event": {"event_id": str, "box_id": str, "time": str, "event": str},
    "encoding": {"camera_id": str, "track_id": str, "frame_time": float, "descriptor": list,
                 "crop_jpeg": str, "quality": float},
    "health": {"camera_id": str, "stats": dict},
    "camera": {"camera_id": str, "state": str, "reason": str},
}


def loads(data: bytes | str, allowed: set[str] | None = None,
          schema: Schema = REQUIRED) -> dict[str, Any]:
    """Parse and check one message against ``schema`` (type -> required fields); MessageError if malformed."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError("message too large")
    try:
        msg = json.loads(data, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MessageError("not JSON") from exc
    if not isinstance(msg, dict):
        raise MessageError("not a JSON object")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise MessageError(f"unexpected message type {kind!r}")
    v = msg.get("v")
    if isinstance(v, int) and not isinstance(v, bool) and v > version(kind):
        raise NewerVersion(f"{kind} message version {v} is newer than this software reads "
                           f"(up to {version(kind)}): update it")
    if not isinstance(v, int) or isinstance(v, bool) or v not in READABLE.get(kind, (version(kind),)):
        raise MessageError(f"unsupported message version {v!r}")
    if not isinstance(kind, str) or kind not in schema or (allowed is not None and kind not in allowed):
        raise MessageError(f"unexpected message type {kind!r}")
    for key, tp in schema[kind].items():
        value = msg.get(key)
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, tp) or isinstance(value, bool):
            raise MessageError(f"{kind}.{key} missing or not {tp.__name__}")
    if kind == "alert" and v >= 2:
        _check_encounter(msg)
    return msg


ENCOUNTER_STATES = ("open", "confirmed", "dismissed")


def _check_encounter(msg: dict[str, Any]) -> None:
    if not isinstance(msg.get("encounter_id"), str) or not msg["encounter_id"]:
        raise MessageError("alert.encounter_id missing or not str")
    n = msg.get("sighting")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise MessageError("alert.sighting missing or not a positive integer")
    if msg.get("state") not in ENCOUNTER_STATES:
        raise MessageError(f"alert.state must be one of {', '.join(ENCOUNTER_STATES)}")
    decision = msg.get("decision")
    if (msg["state"] == "open") != (decision is None) or not (decision is None or isinstance(decision, dict)):
        raise MessageError("alert.decision must be null for an open encounter and an object for a decided one")


def encounter_of(alert: dict[str, Any]) -> str:
    """The encounter an alert belongs to (a version-1 alert: its group, else itself)."""
    return str(alert.get("encounter_id") or alert.get("group_id") or alert["alert_id"])


def alert(*, box_id: str, camera_id: str, track_id: str, ref: str, distance: float, threshold: float,
          crop_jpeg: bytes, reference_jpeg: bytes = b"", category: str = "", list_id: str = "",
          frame_time: float | None = None, encounter_id: str | None = None, sighting: int = 1,
          state: str = "open", decision: dict[str, Any] | None = None, alert_id: str | None = None) -> dict[str, Any]:
    """An alert (v2): one sighting of an encounter; sighting 1 opens it and is the alert to decide."""
    alert_id = alert_id or str(uuid.uuid4())
    return {
        "v": VERSIONS["alert"], "type": "alert", "alert_id": alert_id, "encounter_id": encounter_id or alert_id,
        "sighting": sighting, "state": state, "decision": decision,
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
    return {"v": version(kind), "type": kind, **fields}
