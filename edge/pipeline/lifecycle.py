"""How the daemon's parts start and stop, and in which order (the base of edge/pipeline/daemon.py).

:meth:`Lifecycle.start` starts each part and registers its stop at once on an ExitStack, so a start
that fails half way (the alert port already bound, a control socket that cannot be made, a camera
that cannot start) stops what had started, in reverse, and records the run's stop. :meth:`stop`
runs the same stops. The order follows from what each part writes to the audit log:

- ``service_start`` is the run's first record (it states the retention in force);
- the inputs start last and stop first: the camera processes (what they had sent is still matched),
  the control socket, the watch-list service's threads, the alert channel's thread;
- then the books close: open encounters end, the last face counts and deployment ends are recorded,
  and the signed ``service_stop`` is the run's last record; the outbox closes after it;
- last of all, the list in memory is wiped.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from multiprocessing.queues import Queue
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edge import identity, sdnotify
from edge.alerts import messages
from edge.alerts.publisher import Channel
from edge.alerts.retention import Policy
from edge.config import Config
from edge.errors import EdgeError
from edge.face import model as face_model
from edge.pipeline.alerting import Encounter, EncounterPolicy
from edge.pipeline.control import ControlServer
from edge.pipeline.duties import Duties
from edge.pipeline.fusion import TrackFusion
from edge.pipeline.supervisor import CameraProcess
from edge.watchlist import operating
from edge.watchlist.base import Matcher

if TYPE_CHECKING:
    from edge.watchlist.service import WatchlistService

log = logging.getLogger("edge")


class Lifecycle:
    """Start, stop and run; the parts themselves are made by the daemon's ``__init__``."""

    cfg: Config
    box_id: str
    matcher: Matcher
    duties: Duties
    control: ControlServer
    commands: dict[str, Any]
    policy: EncounterPolicy
    fusion: TrackFusion
    ctx: Any  # multiprocessing's spawn context
    publisher: Channel | None = None  # opened in start(): needs the box's keys
    watchlist: WatchlistService | None = None  # signed lists, expiry, USB pick-up, purge receipts
    queue: Queue[str] | None = None  # what the camera processes send (start_cameras)
    _stopping = False

    def __init__(self) -> None:
        self.ctx = mp.get_context("spawn")
        self.cameras: dict[str, CameraProcess] = {}
        self._stops = contextlib.ExitStack()  # the stops of what start() started, last started first

    # -- what the daemon provides (edge/pipeline/daemon.py) ------------------------------------------
    def record(self, kind: str, **fields: Any) -> None:
        raise NotImplementedError

    def publish(self, msg: dict) -> None:
        raise NotImplementedError

    def on_adjudication(self, msg: dict, console: str) -> None:
        raise NotImplementedError

    def hello(self) -> dict:
        raise NotImplementedError

    def verification(self) -> str:
        raise NotImplementedError

    def end_encounter(self, enc: Encounter, reason: str) -> None:
        raise NotImplementedError

    def step(self) -> None:
        raise NotImplementedError

    def drain(self) -> None:
        raise NotImplementedError

    # -- start and stop ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start each part and register its stop at once (an ExitStack): a start that fails half way
        stops what had started, in reverse, and records the run's stop; :meth:`stop` runs the same
        stops. Inputs start last, so they stop first (cameras, control, the watch-list service, the
        channel's thread); the books close last: final records, then the signed ``service_stop``."""
        self.prepare_state_dir()
        # a bad file, or one of another face model: one sentence, before anything runs
        operating.load_calibration(self.cfg.match.calibration or None, self.cfg.model)
        with contextlib.ExitStack() as stops:
            stops.callback(self.forget)  # the very last: the list in memory wiped, track views dropped
            # service_start is the run's first record: what a restart records (reloads, refusals) is not
            # mistaken for the last records of a run that died (downtime in the report)
            keep = self.retention()  # the stricter of the config and the stored list's signed period
            self.duties.start(first=("service_start", {"cameras": [c.id for c in self.cfg.cameras],
                                                       "config": self.cfg.path, "retention_days": keep.days,
                                                       "retention_source": keep.source,
                                                       "model": face_model.get(self.cfg.model).ref(),
                                                       "deployment_required": self.cfg.deployment.required}))
            stops.callback(self.open_uplink())  # stops after the books close: the signed stop goes out first
            stops.push(lambda _type, exc, _tb: self.close_books(exc))
            stops.callback(self.open_channel().stop_serving)
            self.duties.witness()  # the consoles hear the newest checkpoint at once (a witness of the log's head)
            self.load_initial_watchlist()
            service = self.start_watchlist_service()
            stops.callback(service.stop)
            self.commands.update(service.commands())
            self.end_lists_of_ended_deployments()
            self.control.start()
            stops.callback(self.control.stop)
            stops.callback(self.stop_cameras)  # before they start: a camera that fails to start stops the others
            self.start_cameras()
            self._stops = stops.pop_all()
        log.info("edge daemon %s started: %d camera(s), watch list %s", self.box_id, len(self.cameras),
                 f"{len(self.matcher.current)} entries" if self.matcher.current else "none")

    def stop(self) -> None:
        self._stopping = True
        self._stops.close()
        log.info("edge daemon stopped")

    def stop_cameras(self) -> None:
        """The cameras stop first; what they had sent is matched (alerts still recorded and published)."""
        self._stopping = True
        for cam in self.cameras.values():
            cam.stop_event.set()  # all at once, then wait for each
        for cam in self.cameras.values():
            cam.stop()
        if self.queue is not None:
            self.drain()

    def close_books(self, exc: BaseException | None = None) -> None:
        """After every input has stopped: the open encounters end, the last face counts and deployment
        ends are recorded, then ``service_stop`` (signed at once by its checkpoint) is the run's last
        record; the outbox closes after it. ``exc``: why the start failed, when it did."""
        for enc in self.policy.end_all():
            self.end_encounter(enc, "service_stop")
        self.duties.stop(self.cameras)
        if exc is None:
            self.record("service_stop", reason="stopped")
        else:
            why = str(exc) if isinstance(exc, EdgeError) else type(exc).__name__
            self.record("service_stop", reason=f"start failed: {why}")
        if self.duties.log is not None:
            self.duties.log.close()
        if self.publisher is not None:
            self.publisher.stop()

    def forget(self) -> None:
        old = self.matcher.swap(None)
        if old is not None:
            old.wipe()
        self.fusion.clear()

    def run(self, duration: float | None = None) -> None:
        stop_now = []
        handler = lambda *_: stop_now.append(True)
        old_term = signal.signal(signal.SIGTERM, handler)
        old_int = signal.signal(signal.SIGINT, handler)
        try:
            self.start()
            sdnotify.ready(f"{len(self.cameras)} camera(s)")
            interval, fed = sdnotify.watchdog_interval(), 0.0
            deadline = time.monotonic() + duration if duration else None
            try:
                while not stop_now and (deadline is None or time.monotonic() < deadline):
                    self.step()
                    if interval and time.monotonic() - fed >= interval:
                        sdnotify.watchdog()
                        fed = time.monotonic()
            finally:
                sdnotify.stopping()
                self.stop()
        finally:
            signal.signal(signal.SIGTERM, old_term)
            signal.signal(signal.SIGINT, old_int)

    # -- start-up steps -------------------------------------------------------------------------
    def prepare_state_dir(self) -> None:
        path = Path(self.cfg.state_dir)
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
            probe = path / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise EdgeError(f"the state dir {path} is not writable: {exc.strerror}") from None

    def load_initial_watchlist(self) -> None:
        if self.cfg.watchlist.folder:
            from edge.watchlist.folder import load_folder

            wl = load_folder(self.cfg.watchlist.folder, face_model.for_config(self.cfg))
            m = self.cfg.match
            wl.operating, _ = operating.for_list(operating.load_calibration(m.calibration or None, self.cfg.model),
                                                 len(wl), face_model.cap(self.cfg), m.target_fpir, m.rule)
            self.matcher.swap(wl)
            self.record("watchlist_loaded", issuer=wl.issuer, list_id=wl.list_id, entries=len(wl), arrived="folder",
                        file=str(self.cfg.watchlist.folder), refs=[e.ref for e in wl.entries],
                        categories=sorted({e.category for e in wl.entries}),
                        model=face_model.get(wl.model).ref())
            self.publish(messages.event(box_id=self.box_id, event="watchlist_loaded", list_id=wl.list_id,
                                        entries=len(wl), issuer=wl.issuer))

    def start_watchlist_service(self) -> WatchlistService:
        """Signed watch lists: reload the stored bundle, expiry and USB watcher, control commands."""
        from edge.watchlist.service import WatchlistService

        service = WatchlistService(self.cfg, identity.load(self.cfg.state_dir), self.matcher, self.publish,
                                   self.record)
        self.watchlist = service
        service.start()
        return service

    def end_lists_of_ended_deployments(self) -> None:
        """A list whose deployment window closed while the box was off ends now, with its receipt."""
        from datetime import UTC, datetime

        from edge import deployment

        service = self.watchlist
        h = service.header if service else None
        if service is None or h is None:
            return
        deps = [d for d in deployment.stored(self.cfg.state_dir, self.cfg.deployment.require_authority_ref)
                if d.deployment_id == h["deployment"]]
        if deps and all(datetime.now(UTC) >= d.until for d in deps):
            service.deployment_ended(h["deployment"], force=any(d.until < d.end for d in deps))

    def retention(self) -> Policy:
        """How long alerts are kept now (edge/alerts/retention.py): the stricter of the config and the signed
        period of the list in force; before the watch-list service runs, of the list stored on the box."""
        from edge.watchlist.service import stored_header

        header = self.watchlist.header if self.watchlist else stored_header(self.cfg.state_dir)
        return Policy.of(self.cfg.alerts.retention_days, header)

    def open_channel(self) -> Channel:
        """The CURVE-authenticated, durable alert channel (edge/alerts/publisher.py)."""
        try:
            # keys are made once, never replaced here; box.pub.json declares the face model the box runs
            ident = identity.create(self.cfg.state_dir, self.box_id, model=face_model.get(self.cfg.model).ref())
            channel = Channel(self.cfg.alerts.endpoint, self.cfg.state_dir, ident.curve_public,
                              ident.curve_secret, self.box_id,
                              on_adjudication=self.on_adjudication, record=self.record,
                              policy=self.retention, status=self.hello, verification=self.verification)
            channel.start()
        except (OSError, sqlite3.Error) as exc:
            why = getattr(exc, "strerror", None) or str(exc)
            raise EdgeError(f"the state dir {self.cfg.state_dir} is not writable: {why}") from None
        self.publisher = channel
        return channel

    def open_uplink(self) -> Callable[[], None]:
        """The audit log to the oversight service, as written (edge/audit/uplink.py); its stop, or a no-op."""
        if not self.cfg.oversight.endpoint:
            return lambda: None
        from edge.audit.uplink import Uplink

        ident = identity.create(self.cfg.state_dir, self.box_id)
        up = Uplink(self.cfg.oversight.endpoint, self.cfg.state_dir, ident.curve_public, ident.curve_secret,
                    self.cfg.oversight.service_key, self.box_id)
        up.start()
        return up.stop

    def start_cameras(self) -> None:
        threads = str(self.cfg.encode.threads)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(var, threads)  # one camera process, one core
        self.queue = self.ctx.Queue(maxsize=512)
        for cam in self.cfg.cameras:
            if cam.enabled:
                allowed = self.ctx.Event()  # set by self.duties while a deployment window is open
                if self.duties.allows(cam.id):
                    allowed.set()
                self.cameras[cam.id] = CameraProcess(self.ctx, cam, self.cfg, self.queue, allowed)
                self.cameras[cam.id].start()
