"""What an alert card shows beyond the queue's summary columns, read from the stored alert (issue 18):
the entry's reason for inclusion (``listed_for``), whether a wider view around the face came with it
(``context_jpeg``) and how many other reference images of the entry (``other_references_jpeg``). All are
optional alert fields (docs/alerts.md): an alert from an older box simply has none. Bodies never change,
so what is read from each is cached (a bounded number of alerts)."""

from __future__ import annotations

import json

from edge.alerts import messages

IMAGES = ("crop", "reference", "context")
MAX_OTHERS = 3
_cache: dict[str, dict] = {}


def facts(alert: dict) -> dict:
    """The card fields of one stored alert row (with its ``body``)."""
    hit = _cache.get(alert["alert_id"])
    if hit is None:
        body = json.loads(alert["body"])
        others = body.get("other_references_jpeg")
        hit = {"listed_for": str(body.get("listed_for") or "")[:500],
               "has_context": bool(body.get("context_jpeg")),
               "other_references": min(MAX_OTHERS, len(others)) if isinstance(others, list) else 0}
        if len(_cache) > 5000:
            _cache.clear()
        _cache[alert["alert_id"]] = hit
    return hit


def enrich(state: dict, store) -> dict:
    for a in state.get("open", []):
        row = store.alert(a["alert_id"])
        if row is not None:
            a.update(facts(row))
    return state


def image(body: dict, which: str) -> bytes:
    """One of an alert's images: crop, reference, context or other-N (N from 0); b"" if it has none."""
    if which in IMAGES:
        return messages.unb64(body.get(f"{which}_jpeg") or "")
    if which.startswith("other-") and which[6:].isdigit():
        others = body.get("other_references_jpeg")
        n = int(which[6:])
        if isinstance(others, list) and n < min(MAX_OTHERS, len(others)) and isinstance(others[n], str):
            return messages.unb64(others[n])
    return b""
