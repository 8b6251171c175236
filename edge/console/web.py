"""The operator console's web page: Starlette + uvicorn, live updates by server-sent events.

Everything it serves is in this package (no CDN). Every page and API route needs a logged-in
operator (local accounts, argon2-hashed: ``edge console adduser``). The session cookie is random,
HttpOnly and SameSite=Strict; sessions live in memory (a restart logs everyone out).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.alerts import messages, protocol
from edge.console.link import BoxLink
from edge.console.store import Store
from edge.errors import EdgeError

STATIC = Path(__file__).parent / "static"
COOKIE = "edge_session"
SESSION_S = 12 * 3600
OUTCOMES = ("open", "confirmed", "dismissed")


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
    def __init__(self, store: Store, links: list[BoxLink], retention_days: float = 31.0):
        self.store, self.links, self.hub = store, links, Hub()
        self.retention_s = retention_days * 86400.0
        self.sessions: dict[str, tuple[str, float]] = {}
        for link in links:
            link.on_change = self.hub.publish

    def user(self, request: Request) -> str | None:
        token = request.cookies.get(COOKIE, "")
        name, expires = self.sessions.get(token, ("", 0.0))
        return name if expires > time.time() else None

    def state(self) -> dict:
        groups: dict[str, dict] = {}
        for a in self.store.open_alerts():  # oldest first
            g = groups.setdefault(a["group_id"], {**a, "sightings": []})
            if g["alert_id"] != a["alert_id"]:
                g["sightings"].append({k: a[k] for k in ("alert_id", "camera_id", "time", "distance")})
        return {"open": list(groups.values()), "links": [ln.info() for ln in self.links],
                "cameras": self.store.cameras(), "events": self.store.events(20), "now": time.time()}

    def decide(self, alert_id: str, operator: str, body: dict) -> dict:
        alert = self.store.alert(alert_id)
        if alert is None:
            raise EdgeError("no such alert")
        group = [a for a in self.store.open_alerts() if a["group_id"] == alert["group_id"]]
        if not group:
            raise EdgeError("this alert has been decided already")
        try:
            adjs = [protocol.adjudication(
                alert_id=a["alert_id"], box_id=a["box_id"], decision=body.get("decision"), operator=operator,
                action=body.get("action") or "", reason=body.get("reason") or "",
                note=str(body.get("note") or "")[:500], seconds_to_decision=time.time() - a["received"])
                for a in group]
        except messages.MessageError as exc:
            raise EdgeError(str(exc)) from None
        self.store.decide([a["alert_id"] for a in group], adjs)
        for link in self.links:
            if link.box_id == alert["box_id"]:
                link.wake.set()
        self.hub.publish("decision", {"alert_id": alert_id})
        return {"decided": [a["alert_id"] for a in group]}


def create_app(console: Console) -> Starlette:
    async def login_page(request: Request):
        return FileResponse(STATIC / "login.html")

    async def login(request: Request):
        try:
            body = await request.json()
            name, password = str(body["name"]), str(body["password"])
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"error": "malformed login"}, 400)
        ok = await asyncio.to_thread(console.store.check_user, name, password)
        if not ok:
            await asyncio.sleep(0.5)
            return JSONResponse({"error": "wrong name or password"}, 401)
        token = secrets.token_urlsafe(32)
        console.sessions[token] = (name, time.time() + SESSION_S)
        resp = JSONResponse({"ok": True, "name": name})
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
        return JSONResponse({**console.state(), "user": request.state.user})

    async def history(request: Request):
        camera, outcome = request.query_params.get("camera", ""), request.query_params.get("outcome", "")
        if outcome and outcome not in OUTCOMES:
            return JSONResponse({"error": f"outcome must be one of {', '.join(OUTCOMES)}"}, 400)
        return JSONResponse({"alerts": console.store.history(camera, outcome)})

    async def image(request: Request):
        alert = console.store.alert(request.path_params["alert_id"])
        which = request.path_params["which"]
        if alert is None or which not in ("crop", "reference"):
            return Response(status_code=404)
        data = messages.unb64(json.loads(alert["body"]).get(f"{which}_jpeg", ""))
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
        except EdgeError as exc:
            return JSONResponse({"error": str(exc)}, 409)

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
        if scope["type"] == "http" and not (path in ("/login", "/api/login") or path.startswith("/static/")):
            user = console.user(request)
            if user is None:
                resp = (JSONResponse({"error": "log in first"}, 401) if path.startswith("/api/")
                        else RedirectResponse("/login", 303))
                return await resp(scope, receive, send)
            scope.setdefault("state", {})["user"] = user
        await app(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        console.hub.loop = asyncio.get_running_loop()
        for link in console.links:
            link.start()

        async def retention():  # the console keeps alert crops no longer than the box does
            while True:
                await asyncio.to_thread(console.store.prune, console.retention_s)
                await asyncio.sleep(3600)

        pruner = asyncio.create_task(retention())
        yield
        pruner.cancel()
        for link in console.links:
            await asyncio.to_thread(link.stop)

    routes = [
        Route("/", index), Route("/login", login_page), Route("/api/login", login, methods=["POST"]),
        Route("/api/logout", logout, methods=["POST"]), Route("/api/state", state),
        Route("/api/history", history), Route("/api/events", stream),
        Route("/api/alerts/{alert_id}/{which}.jpg", image),
        Route("/api/alerts/{alert_id}/decision", decision, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    inner = Starlette(routes=routes, lifespan=lifespan)

    class App:
        async def __call__(self, scope, receive, send):
            if scope["type"] == "lifespan":
                return await inner(scope, receive, send)
            await require_login(scope, receive, send, inner)

    return App()


def serve(console: Console, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(console), host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
