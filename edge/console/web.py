"""The operator console's web page: Starlette + uvicorn, live updates by server-sent events.

Everything it serves is in this package (no CDN). Every page and API route needs a logged-in
operator (local accounts, argon2-hashed: ``edge console adduser``). The session cookie is random,
HttpOnly and SameSite=Strict; sessions live in memory (a restart logs everyone out).

SameSite does not stop a page on another port of the same host (same *site*), so every
state-changing request must also come from this origin (``Origin``, else ``Sec-Fetch-Site``), be
JSON, and carry the session's CSRF token (``X-CSRF-Token``; the page gets it from ``/api/state``,
which another origin cannot read). Every response forbids framing and foreign scripts (CSP,
X-Frame-Options) and none but static files may be cached. Failed logins are logged and, past
``MAX_FAILS`` per name (or ``MAX_FAILS_CLIENT`` per client) in ``FAIL_WINDOW_S``, locked out for
``LOCKOUT_S``; an unknown name costs the same Argon2 work as a known one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.alerts import retention
from edge.console import alarms, cards, decisions, shift
from edge.console.link import BoxLink
from edge.console.store import Store
from edge.errors import EdgeError

log = logging.getLogger("edge.console")
STATIC = Path(__file__).parent / "static"
COOKIE = "edge_session"
SESSION_S = 12 * 3600
OUTCOMES = ("open", "confirmed", "dismissed")
SEEN_AGAIN_S = 3600.0  # a decided encounter seen again after its decision is shown this long
CSRF_HEADER = "x-csrf-token"
FAIL_WINDOW_S, MAX_FAILS, MAX_FAILS_CLIENT, LOCKOUT_S = 900.0, 5, 20, 300.0
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MAX_BODY = 64 * 1024  # bytes of any request body (a login or a decision is well under 4 KiB)
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
           (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"cross-origin-opener-policy", b"same-origin"), (b"cross-origin-resource-policy", b"same-origin")]


class LoginGuard:
    """Failed logins per operator name and per client address; a key with too many is locked out."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self.fails: dict[str, list[float]] = {}
        self.locked: dict[str, float] = {}  # key -> until
        self.told: set[tuple[str, float]] = set()  # lockouts already logged

    def wait(self, keys: list[str]) -> float:
        """Seconds until these keys may try again (0: now)."""
        now = self.clock()
        return max([self.locked.get(k, 0.0) - now for k in keys] + [0.0])

    def failed(self, keys: list[tuple[str, int]]) -> int:
        """Count a failure for each (key, limit); returns the failures of the first key in the window."""
        now = self.clock()
        if len(self.fails) > 10_000:  # bounded memory under a spray of names
            self.fails = {k: v for k, v in self.fails.items() if v and now - v[-1] < FAIL_WINDOW_S}
        counts = []
        for key, limit in keys:
            recent = [t for t in self.fails.get(key, []) if now - t < FAIL_WINDOW_S] + [now]
            self.fails[key] = recent[-limit:]
            counts.append(len(recent))
            if len(recent) >= limit:
                self.locked[key] = now + LOCKOUT_S
        return counts[0]

    def first_refusal(self, keys: list[str]) -> bool:
        """True once per lockout of these keys (for its log line)."""
        marks = [(k, self.locked.get(k, 0.0)) for k in keys if self.locked.get(k, 0.0) > self.clock()]
        new = [m for m in marks if m not in self.told]
        self.told.update(new)
        if len(self.told) > 10_000:
            self.told = set(new)
        return bool(new)

    def succeeded(self, name_key: str) -> None:
        self.fails.pop(name_key, None)


class Hub:
    """Fan-out of change notices from link threads to the browsers' event streams."""

    def __init__(self):
        self.loop: asyncio.AbstractEventLoop | None = None
        self.queues: set[asyncio.Queue] = set()

    def publish(self, kind: str, data: dict) -> None:  # called from any thread
        notice = {"kind": kind, "id": data.get("alert_id") or data.get("event_id") or data.get("endpoint", "")}
        if kind == "event":
            notice["event"] = data.get("event")
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._put, notice)

    def _put(self, notice: dict) -> None:
        for q in list(self.queues):
            if q.qsize() < 1000:
                q.put_nowait(notice)


class Console:
    def __init__(self, store: Store, links: list[BoxLink], retention_days: float = retention.DEFAULT_DAYS,
                 timezone: str = "UTC"):
        self.store, self.links, self.hub = store, links, Hub()
        self.timezone, self.tz = timezone, zone(timezone)
        self.retention = retention.Policy(retention_days, "console --retention-days")
        self.sessions: dict[str, tuple[str, float, str]] = {}  # token -> (operator, expires, csrf token)
        self.credentials: dict[str, str] = {}  # token -> the operator's password hash at login
        self.guard = LoginGuard()
        for link in links:
            link.on_change = self.hub.publish

    def expire(self, clock: Callable[[], float] = time.time) -> list[str]:
        """The console's retention sweep (at start, then hourly): each box's alerts go after the stricter of
        ``--retention-days`` and the period that box keeps them for (its hello), through the one rule."""
        return retention.apply_per_box(self.store, self.retention, clock=clock)

    def user(self, request: Request) -> str | None:
        """The session's operator; None when it expired, or the operator's password was reset or the account
        removed since the login (`edge console adduser` again ends every session of that name)."""
        token = request.cookies.get(COOKIE, "")
        name, expires, _ = self.sessions.get(token, ("", 0.0, ""))
        if expires <= time.time():
            return None
        if self.store.credential(name) != self.credentials.get(token):
            self.sessions.pop(token, None)
            self.credentials.pop(token, None)
            log.info("session of operator %r ended: password reset or account removed", name[:64])
            return None
        return name

    def csrf(self, request: Request) -> str:
        return self.sessions.get(request.cookies.get(COOKIE, ""), ("", 0.0, ""))[2]

    def csrf_ok(self, request: Request) -> bool:
        want, got = self.csrf(request), request.headers.get(CSRF_HEADER, "")
        return bool(want) and hmac.compare_digest(want.encode(), got.encode())

    def policy(self, box_id: str) -> str:
        """The box's two-person rule, as its hello said."""
        return next((ln.verification() for ln in self.links if ln.box_id == box_id), "one")

    def state(self, user: str = "") -> dict:
        """Open encounters (one card each), grouped by person: groups by category priority, then by how long
        their oldest card has waited; each with its sightings, what ``user`` may see of its verification and
        the person's earlier decision this deployment. Decided encounters seen again after their decision
        (shown decided, with who and when; never reopened), and ``user``'s decisions that were not counted."""
        now = time.time()
        cards: dict[tuple, dict] = {}
        supervisor = bool(user) and self.store.is_supervisor(user)
        for a in self.store.open_alerts():  # oldest first
            key = (a["box_id"], a["group_id"])
            if key not in cards:
                cards[key] = {**a, "encounter_id": a["group_id"], "sightings": []}
            cards[key]["sightings"].append(_sighting(a))
        for (box_id, enc), card in cards.items():
            card["sightings"] = _strip(card["sightings"])
            card["verification"] = decisions.stage(self.store, box_id, enc, user, self.policy(box_id), supervisor)
            card["earlier"] = self.store.earlier_decision(box_id, card["ref"], card["alert_id"])
        seen_again = []
        for box_id, encounter_id in self.store.seen_after_decision(now - SEEN_AGAIN_S):
            rows = self.store.encounter(box_id, encounter_id)
            decided = min(r["decided"] for r in rows if r["decided"])
            seen_again.append({**rows[0], "encounter_id": encounter_id,
                               "sightings": _strip([_sighting(r) for r in rows]),
                               "after_decision": sum(r["received"] > decided for r in rows),
                               "last_received": max(r["received"] for r in rows)})
        seen_again.sort(key=lambda e: e["last_received"], reverse=True)
        return {"open": by_person(list(cards.values())), "seen_again": seen_again,
                "links": [ln.info() for ln in self.links], "cameras": self.store.cameras(),
                "events": self.store.events(20), "now": now, "timezone": self.timezone,
                "notices": decisions.notices(self.store, user) if user else [], "supervisor": supervisor}

    def decide(self, alert_id: str, operator: str, body: dict) -> dict:
        """The operator's decision on the encounter of ``alert_id`` (edge/console/decisions.py): counted and sent
        to the box once, a verification under the two-person rule, or refused (told, and reported to the box)."""
        alert = self.store.alert(alert_id)
        if alert is None:
            raise EdgeError("no such alert")
        try:
            return decisions.decide(self.store, alert_id, operator, body, policy=self.policy(alert["box_id"]),
                                    supervisor=self.store.is_supervisor(operator), tz=self.tz)
        finally:
            for link in self.links:
                if link.box_id == alert["box_id"]:
                    link.wake.set()
            self.hub.publish("decision", {"alert_id": alert_id})


CATEGORY_ORDER = ("wanted", "missing person", "known offender", "other")  # queue priority, first is first


def by_person(cards: list[dict]) -> list[dict]:
    """The queue grouped by person (box and ref): groups by category priority, then by their oldest card's
    waiting time; within a group, oldest first."""
    groups: dict[tuple, list[dict]] = {}
    for c in sorted(cards, key=lambda c: c["received"]):
        groups.setdefault((c["box_id"], c["ref"]), []).append(c)
    rank = {c: i for i, c in enumerate(CATEGORY_ORDER)}
    ordered = sorted(groups.values(), key=lambda g: (rank.get(g[0]["category"], len(rank)), g[0]["received"]))
    return [c for g in ordered for c in g]


def zone(name: str):
    """The console's time zone (``--timezone``, an IANA name such as Europe/London); EdgeError if unknown."""
    from datetime import UTC
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise EdgeError(f"unknown time zone {name!r}: give an IANA name such as Europe/London") from None


def _sighting(a: dict) -> dict:
    return {k: a[k] for k in ("alert_id", "camera_id", "time", "received", "distance")}


def _strip(sightings: list[dict]) -> list[dict]:
    """The sightings strip: the newest first, then the best (closest) match, then the rest newest first."""
    newest = sorted(sightings, key=lambda s: s["received"], reverse=True)
    if len(newest) <= 2:
        return newest
    best = min(newest[1:], key=lambda s: s["distance"])
    return [newest[0], best] + [s for s in newest[1:] if s is not best]


def create_app(console: Console) -> ASGIApp:
    async def login_page(request: Request):
        return FileResponse(STATIC / "login.html")

    async def login(request: Request):
        try:
            body = await request.json()
            name, password = str(body["name"]), str(body["password"])
            if len(name) > 200 or len(password) > 1024:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "malformed login"}, 400)
        client = request.client.host if request.client else "?"
        keys = [f"name:{name.strip().casefold()}", f"client:{client}"]
        wait = console.guard.wait(keys)
        if wait > 0:
            if console.guard.first_refusal(keys):  # one line per lockout, not one per attempt
                log.warning("console login refused for operator %r from %s: locked out for %d s more",
                            name[:64], client, wait)
            return JSONResponse({"error": f"too many failed logins: try again in {int(wait) + 1} s"}, 429,
                                headers={"Retry-After": str(int(wait) + 1)})
        ok = await asyncio.to_thread(console.store.check_user, name, password)
        if not ok:
            n = console.guard.failed([(keys[0], MAX_FAILS), (keys[1], MAX_FAILS_CLIENT)])
            log.warning("console login failed for operator %r from %s (%d in %d min%s)", name[:64], client, n,
                        FAIL_WINDOW_S // 60, "; locked out" if n >= MAX_FAILS else "")
            await asyncio.sleep(0.5)
            return JSONResponse({"error": "wrong name or password"}, 401)
        console.guard.succeeded(keys[0])
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        console.sessions[token] = (name, time.time() + SESSION_S, csrf)
        console.credentials[token] = console.store.credential(name)
        log.info("operator %r logged in from %s", name[:64], client)
        resp = JSONResponse({"ok": True, "name": name, "csrf": csrf})
        resp.set_cookie(COOKIE, token, max_age=SESSION_S, httponly=True, samesite="strict")
        return resp

    async def logout(request: Request):
        console.sessions.pop(request.cookies.get(COOKIE, ""), None)
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(COOKIE)
        return resp

    async def index(request: Request):
        return FileResponse(STATIC / "index.html")

    async def state(request: Request):
        return JSONResponse(alarms.dress(cards.enrich({**console.state(request.state.user), "user": request.state.user,
                                                       "csrf": console.csrf(request)}, console.store), console.links))

    async def history(request: Request):
        outcome = request.query_params.get("outcome", "")
        if outcome and outcome not in OUTCOMES:
            return JSONResponse({"error": f"outcome must be one of {', '.join(OUTCOMES)}"}, 400)
        try:  # filters, paging (edge/console/shift.py)
            return JSONResponse(await asyncio.to_thread(shift.page, console.store, request.query_params))
        except shift.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, 400)

    async def history_csv(request: Request):
        try:
            rows = await asyncio.to_thread(shift.filtered, console.store, request.query_params)
        except shift.BadQuery as exc:
            return JSONResponse({"error": str(exc)}, 400)
        name = f"edge-history-{time.strftime('%Y%m%d-%H%M')}.csv"
        return Response(shift.to_csv(rows), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def shift_summary(request: Request):
        try:
            hours = float(request.query_params.get("hours", shift.SHIFT_H))
        except ValueError:
            hours = shift.SHIFT_H
        if not math.isfinite(hours):
            return JSONResponse({"error": "hours must be a number of hours (0.1 to 48)"}, 400)
        return JSONResponse(await asyncio.to_thread(shift.summary, console.store, dict(console.sessions),
                                                    min(max(hours, 0.1), 48.0)))

    async def image(request: Request):
        alert = console.store.alert(request.path_params["alert_id"])
        which = request.path_params["which"]
        if alert is None:
            return Response(status_code=404)
        try:
            data = cards.image(json.loads(alert["body"]), which)
        except ValueError:  # not base64
            data = b""
        if not data:
            return Response(status_code=404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})

    async def decision(request: Request):
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError
        except ValueError:
            return JSONResponse({"error": "malformed decision"}, 400)
        try:
            return JSONResponse(console.decide(request.path_params["alert_id"], request.state.user, body))
        except decisions.Refused as exc:
            return JSONResponse({"error": str(exc), "refused": True}, 409)
        except EdgeError as exc:
            return JSONResponse({"error": str(exc)}, 409)

    async def notice_read(request: Request):
        decisions.read(console.store, request.state.user, request.path_params["decision_id"])
        return JSONResponse({"ok": True})

    async def history_page(request: Request):
        return FileResponse(STATIC / "history.html")

    async def stream(request: Request):
        q: asyncio.Queue = asyncio.Queue()
        console.hub.queues.add(q)

        async def gen():
            try:
                yield "retry: 2000\n\n"
                while True:
                    try:
                        notice = await asyncio.wait_for(q.get(), 15)
                        yield f"data: {json.dumps(notice)}\n\n"
                    except TimeoutError:
                        yield ": keep-alive\n\n"
            finally:
                console.hub.queues.discard(q)

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    async def require_login(scope, receive, send, app):
        request = Request(scope)
        path = scope["path"]
        unsafe = scope["type"] == "http" and request.method not in SAFE_METHODS
        if unsafe:
            why = foreign(request)
            if why:
                log.warning("refused %s %s from %s: %s", request.method, path[:100],
                            request.client.host if request.client else "?", why)
                return await JSONResponse({"error": why}, 403 if "type" not in why else 415)(scope, receive, send)
        if scope["type"] == "http" and not (path in ("/login", "/api/login") or path.startswith("/static/")):
            user = console.user(request)
            if user is None:
                resp = (JSONResponse({"error": "log in first"}, 401) if path.startswith("/api/")
                        else RedirectResponse("/login", 303))
                return await resp(scope, receive, send)
            if unsafe and not console.csrf_ok(request):
                log.warning("refused %s %s by %r: no valid CSRF token", request.method, path[:100], user[:64])
                return await JSONResponse({"error": "missing or wrong CSRF token: reload the page"}, 403)(
                    scope, receive, send)
            scope.setdefault("state", {})["user"] = user
        await app(scope, receive, send)

    def foreign(request: Request) -> str:
        """Why a state-changing request does not come from this page ("" if it does)."""
        origin = request.headers.get("origin")
        host = request.headers.get("host", "")
        if origin is not None:
            if origin != f"{request.url.scheme}://{host}":
                return f"cross-origin request from {origin[:100]} refused"
        elif request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "cross-site request refused"
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return "content type must be application/json"
        return ""

    async def with_headers(scope, receive, send):
        static = scope["path"].startswith("/static/")

        async def send_with(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [h for h in HEADERS if h[0] not in names]
                if not static and b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = dict(message, headers=headers)
            await send(message)

        await require_login(scope, receive, send_with, inner)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        console.hub.loop = asyncio.get_running_loop()
        for link in console.links:
            link.start()

        async def expire_old():  # the console keeps alert crops no longer than the box does: the one rule
            while True:
                await asyncio.to_thread(console.expire)
                await asyncio.sleep(3600)

        pruner = asyncio.create_task(expire_old())
        yield
        pruner.cancel()
        for link in console.links:
            await asyncio.to_thread(link.stop)

    routes = [
        Route("/", index), Route("/login", login_page), Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]), Route("/api/state", state),
        Route("/api/history", history), Route("/api/history.csv", history_csv), Route("/api/shift", shift_summary),
        Route("/api/events", stream),
        Route("/api/alerts/{alert_id}/{which}.jpg", image),
        Route("/api/alerts/{alert_id}/decision", decision, methods=["POST"]),
        Route("/api/notices/{decision_id}/read", notice_read, methods=["POST"]), Route("/history", history_page),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    inner = Starlette(routes=routes, lifespan=lifespan)

    class App:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "lifespan":
                return await inner(scope, receive, send)
            if scope["type"] == "http":
                bounded = await _bounded_body(scope, receive, send)
                if bounded is None:
                    return
                receive = bounded
            await with_headers(scope, receive, send)

    return App()


async def _bounded_body(scope: Scope, receive: Receive, send: Send) -> Receive | None:
    """Every request body is capped (MAX_BODY): one that says or turns out to be larger is answered 413 after
    reading at most MAX_BODY + one chunk of it, never held whole. Returns the receive to hand on (the body read
    here is replayed first), or None when the request was answered."""
    size = dict(scope.get("headers") or []).get(b"content-length", b"0")
    too_big = JSONResponse({"error": f"request body larger than {MAX_BODY} bytes"}, 413,
                           headers={"Connection": "close"})
    if not size.isdigit() or int(size) > MAX_BODY:
        await too_big(scope, receive, send)
        return None
    if scope.get("method", "GET") in SAFE_METHODS and size == b"0":
        return receive
    body, more = b"", True
    while more:
        msg = await receive()
        if msg["type"] != "http.request":
            return receive
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
        if len(body) > MAX_BODY:
            await too_big(scope, receive, send)
            return None
    replayed = False

    async def replay() -> Any:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def server_config(app: ASGIApp, host: str, port: int, **kw: Any) -> Any:
    """The console's uvicorn settings (serve, and the tests that serve it): the client address is the
    connection's own, never an ``X-Forwarded-For`` header (which would get around the per-client lockout)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, proxy_headers=False, forwarded_allow_ips="",
                          **{"log_level": "warning", "timeout_graceful_shutdown": 2, **kw})


def serve(console: Console, host: str, port: int) -> None:
    import uvicorn

    uvicorn.Server(server_config(create_app(console), host, port)).run()
