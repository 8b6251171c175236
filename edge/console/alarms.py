"""What must not go unnoticed on a 12-hour shift: the console's banners and its event lines in words.

``banners(links)`` turns the box links' state (``BoxLink.info()``) into the banners at the top of the
page, most serious first: ``alarm`` (red, with a sound: the console is not receiving alerts from a box,
a camera is down, a box is NOT matching) or ``warn`` (a list expiring within the hour, a link still
connecting). Each banner has a stable ``key``, so the page sounds once per new alarm. ``sentence(event)``
turns a box or link event into one line in words with its detail (which file was refused and why).
"""

from __future__ import annotations

import time
from datetime import datetime

from edge.codec import parse_time
from edge.errors import EdgeError

EXPIRY_WARN_S = 3600.0


def _box(link: dict) -> str:
    return str(link.get("box_id") or link.get("endpoint") or "?")


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def _in(seconds: float) -> str:
    m = max(0, int(seconds // 60))
    return f"{m} min" if m < 60 else f"{m // 60} h {m % 60} min"


def banners(links: list[dict], now: float | None = None) -> list[dict]:
    now = time.time() if now is None else now
    out: list[dict] = []
    for link in links:
        box, state = _box(link), link.get("state")
        since = float(link.get("since") or now)
        if state == "disconnected":
            out.append(_b("alarm", f"link:{link.get('endpoint')}", f"Box {box} is DISCONNECTED since {_clock(since)}: "
                          "no alerts are arriving from it (its cameras' state is unknown)."))
            continue
        if state == "refused":
            out.append(_b("alarm", f"link:{link.get('endpoint')}", f"Box {box} REFUSED this console's key: no alerts "
                          "arrive until an engineer registers it there (edge trust add-console)."))
            continue
        if state == "incompatible":
            out.append(_b("alarm", f"link:{link.get('endpoint')}",
                          f"Box {box}: {link.get('problem') or 'its messages are newer than this console reads'}."))
            continue
        if state != "connected":
            out.append(_b("warn", f"connecting:{link.get('endpoint')}",
                          f"Box {box}: connecting since {_clock(since)}; no alerts until it answers."))
            continue
        for cam, st in sorted((link.get("cameras") or {}).items()):
            if st in ("down", "failed"):
                out.append(_b("alarm", f"camera:{box}:{cam}:{st}",
                              f"Camera {cam} on box {box} is {st.upper()}: nobody passing it is being checked."))
        m = link.get("matching") or {}
        if m and not m.get("on"):
            out.append(_b("alarm", f"matching:{box}:{m.get('why')}",
                          f"Box {box} is NOT matching: {m.get('why') or 'matching is off'}."))
        elif m and m.get("not_authorised"):
            cams = ", ".join(m["not_authorised"])
            out.append(_b("warn", f"authorised:{box}:{cams}",
                          f"Box {box} is NOT matching on {cams}: no deployment window is open for "
                          f"{'it' if len(m['not_authorised']) == 1 else 'them'}."))
        if m.get("unauthorised"):
            out.append(_b("alarm", f"unauthorised:{box}",
                          f"Box {box} matches WITHOUT AUTHORISATION: its config says [deployment] required = false, "
                          "so no signed deployment window limits where and when it matches."))
        for note in m.get("emergency") or []:
            out.append(_b("alarm", f"emergency:{box}:{note}",
                          f"Box {box} matches under EMERGENCY USE, without a prior authorisation reference: "
                          f"deployment {note}, and its lists are deleted, unless a window with the reference "
                          "arrives."))
        left = _seconds_left(m.get("not_after"), now) if m.get("on") else None
        if left is not None and left <= EXPIRY_WARN_S:
            out.append(_b("warn", f"expiry:{box}:{m.get('list_id')}",
                          f"The watch list on box {box} expires in {_in(left)} (at {_clock(now + left)}): "
                          "the box stops matching then unless a new list is loaded."))
    return sorted(out, key=lambda b: b["level"] != "alarm")


def _b(level: str, key: str, text: str) -> dict:
    return {"level": level, "key": key, "text": text}


def _seconds_left(iso, now: float) -> float | None:
    try:
        return parse_time(iso).timestamp() - now
    except EdgeError:
        return None


def _n(v, one: str, many: str) -> str:
    return f"{v} {one if v == 1 else many}" if isinstance(v, int) else f"? {many}"


def _short(v, n: int = 16) -> str:
    s = str(v or "")
    return s if len(s) <= n else s[:n] + "…"


SENTENCES = {
    "watchlist_loaded": lambda e: f"Watch list {_short(e.get('list_id'))} loaded: "
                                  f"{_n(e.get('entries'), 'entry', 'entries')} "
                                  f"from issuer {_short(e.get('issuer'), 24)}. The box is matching against it.",
    "watchlist_refused": lambda e: f"Watch list file {e.get('file') or '(unnamed)'} was REFUSED: "
                                   f"{e.get('reason') or 'no reason given'}. The list in force (if any) stays.",
    "watchlist_purged": lambda e: f"Watch list {_short(e.get('list_id'))} was deleted ({e.get('reason') or 'purged'}): "
                                  f"{_n(e.get('entries'), 'entry', 'entries')} gone.",
    "watchlist_expiring": lambda e: f"Watch list {_short(e.get('list_id'))} expires at {e.get('not_after')} "
                                    f"(in {_in(float(e.get('expires_in_s') or 0))}).",
    "camera_down": lambda e: f"Camera {e.get('camera_id')} went DOWN: {e.get('reason') or 'no reason given'}.",
    "camera_up": lambda e: f"Camera {e.get('camera_id')} is up and delivering frames.",
    "camera_failed": lambda e: f"Camera {e.get('camera_id')} FAILED: restarted too often, the box gave up on it.",
    "authorised": lambda e: f"Camera {e.get('camera_id')} is matching" + (
        f": deployment window {e['deployment']} is open." if e.get("deployment") else "."),
    "not_authorised": lambda e: f"Camera {e.get('camera_id')} is NOT matching: no deployment window is open.",
    "link_up": lambda e: f"Connected to box {e.get('box_id')}.",
    "link_down": lambda e: f"LOST the connection to box {e.get('box_id')}: no alerts arrive from it.",
    "link_refused": lambda e: f"Box {e.get('box_id')} refused this console's key.",
    "link_incompatible": lambda e: f"Box {e.get('box_id')} sends messages newer than this console reads: update it.",
}


def sentence(event: dict) -> str:
    """One event (box or link) in words, with its detail."""
    fn = SENTENCES.get(str(event.get("event")))
    if fn is not None:
        try:
            return fn(event)
        except (TypeError, ValueError):
            pass
    skip = {"v", "type", "event", "event_id", "box_id", "time", "outbox", "seq", "prev"}
    detail = ", ".join(f"{k.replace('_', ' ')} {_short(v, 60)}" for k, v in event.items() if k not in skip)
    return f"{str(event.get('event', 'event')).replace('_', ' ').capitalize()}" + (f": {detail}." if detail else ".")


def dress(state: dict, links) -> dict:
    """The page's state with the banners, and its events (the box's and the links' own) in words."""
    changes = []
    for link in links:
        try:
            changes += [dict(c) for c in list(link.changes)]
        except RuntimeError:  # appended to while copied: the next refresh has it
            pass
    events = sorted([dict(e) for e in state.get("events", [])] + changes, key=lambda e: str(e.get("time")),
                    reverse=True)[:30]
    for e in events:
        e["text"] = sentence(e)
    return {**state, "events": events, "banners": banners(state.get("links", []))}
