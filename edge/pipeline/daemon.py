"""The daemon: a supervisor for one process per camera, the matcher, the alert channel and control.

Camera processes send stage messages (edge/pipeline/camera.py); the daemon matches each track's
descriptor against the watch list in force, turns each hit into a sighting of an encounter (one
listed person's continuous presence: one alert, one decision; edge/pipeline/alerting.py), and
publishes it. A camera process that dies is restarted a bounded number of times (a watchdog, as in
Frigate). Descriptors and crops of non-matching faces exist only in memory here and are dropped
as soon as they are matched.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import time
from multiprocessing.queues import Queue

import numpy as np

from edge.alerts import messages
from edge.alerts.publisher import Channel
from edge.config import Config
from edge.errors import EdgeError
from edge.face import model as face_model
from edge.pipeline import cards, live
from edge.pipeline.alerting import Encounter, EncounterPolicy
from edge.pipeline.control import ControlServer
from edge.pipeline.duties import Duties
from edge.pipeline.fusion import TrackFusion
from edge.pipeline.health import Latency, camera_line
from edge.pipeline.lifecycle import Lifecycle
from edge.pipeline.supervisor import CameraProcess
from edge.watchlist.base import Matcher

log = logging.getLogger("edge")
MATCH_BATCH = 64  # stage messages taken off the queue at once; their descriptors are matched together
EXPIRY_WARNING_S = 24 * 3600.0  # a watchlist_expiring event this long before the list expires


class Daemon(Lifecycle):
    """The running box: stage messages in, matches, encounters and alerts out (its start and stop, and
    their order: edge/pipeline/lifecycle.py)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.box_id = cfg.box_id
        self.matcher = Matcher(face_model.cap(cfg))
        self.duties = Duties(cfg, publish=self.publish)  # audit log, deployment windows, face counts
        self.duties.gate.record = self.record  # a deployment's end reaches the watch-list service (record())
        self.duties.gate.list_id = lambda: self.matcher.current.list_id if self.matcher.current else None
        self.control = ControlServer(cfg.control_endpoint)
        self.commands = self.control.commands
        self.commands.update(status=self.status_command, adjudications=self.adjudications_command,
                             deployment_stop=self.deployment_stop_command)
        self.latency = Latency()
        # "alerts": encounters opened (each one alert to decide); "sightings": every alert message published
        self.counts = live.Counts()
        self.decisions: dict[str, dict[str, int]] = {"confirm": {}, "dismiss": {}}  # action / reason -> n
        self.policy = EncounterPolicy(cfg.alerts.encounter_gap_s)  # which hits become alerts
        self.fusion = TrackFusion()  # a track's views matched as one mean descriptor (memory only)
        self._expiry_warned = ""
        self._started = time.time()
        self._last_health_log = time.monotonic()

    # -- the main loop ----------------------------------------------------------------------------
    def step(self) -> None:
        batch = []
        q = self._camera_queue()
        try:
            batch.append(q.get(timeout=0.2))
            while len(batch) < MATCH_BATCH:  # whatever else is waiting is matched in one go
                batch.append(q.get_nowait())
        except queue.Empty:
            pass
        self.handle_batch(batch)
        for enc in self.policy.ended(time.time()):
            self.end_encounter(enc, "gap")
        self.watchdog()
        self.duties.tick(self.cameras)
        if time.monotonic() - self._last_health_log >= self.cfg.health.log_interval:
            self._last_health_log = time.monotonic()
            self.check_expiry()
            for cam_id, cam in sorted(self.cameras.items()):
                log.info("health %s", camera_line(cam_id, {"state": cam.state, "stats": cam.stats,
                                                           "restarts": cam.restarts}))
            accuracy = live.summary(self.counts, self.cfg.match.max_false_alert_rate)
            if accuracy.get("warning"):
                log.warning("%s", accuracy["warning"])

    def drain(self) -> None:
        q = self._camera_queue()
        while True:
            try:
                self.handle(q.get(timeout=0.1))
            except queue.Empty:
                return
            except (EOFError, OSError):
                return

    def handle(self, raw: str) -> None:
        self.handle_batch([raw])

    def handle_batch(self, raws: list[str]) -> None:
        encodings = []
        for raw in raws:
            try:
                msg = messages.loads(raw, allowed={"encoding", "health", "camera"})
            except messages.MessageError:
                self.counts.bad_stage_messages += 1
                continue
            cam = self.cameras.get(msg["camera_id"])
            if cam is None:
                continue
            if msg["type"] == "health":
                cam.stats = msg["stats"]
            elif msg["type"] == "camera":
                self.on_camera_state(cam, msg["state"], msg["reason"])
            else:
                encodings.append(msg)
        if encodings:
            self.on_encodings(encodings)

    def on_camera_state(self, cam: CameraProcess, state: str, reason: str) -> None:
        was = cam.state
        cam.state = state
        if state == "down":
            log.warning("camera %s down: %s", cam.cam.id, reason)
            self.record("camera_fault", camera_id=cam.cam.id, reason=reason)
            self.publish(messages.event(box_id=self.box_id, event="camera_down", camera_id=cam.cam.id,
                                        reason=reason))
        elif state == "up" and was in ("down", "failed", "restarting"):  # back after a fault or restart
            log.info("camera %s back", cam.cam.id)
            self.record("camera_back", camera_id=cam.cam.id)
            self.publish(messages.event(box_id=self.box_id, event="camera_up", camera_id=cam.cam.id))
        elif state == "up" and was == "starting":  # first frames after start: consoles learn it is up
            log.info("camera %s up", cam.cam.id)
            self.publish(messages.event(box_id=self.box_id, event="camera_up", camera_id=cam.cam.id,
                                        first=True))

    def on_encoding(self, msg: dict) -> None:
        self.on_encodings([msg])

    def on_encodings(self, msgs: list[dict]) -> None:
        """Match every waiting track descriptor in one matrix product; alert on the hits."""
        self.counts.encodings += len(msgs)
        usable, probes = [], []
        for msg in msgs:
            if not self.duties.allows(msg["camera_id"]):
                self.counts.not_authorised += 1
                continue
            probe = np.asarray(msg["descriptor"], dtype=np.float32)
            if not np.isfinite(probe).all() or probe.ndim != 1:
                self.counts.bad_stage_messages += 1
                continue
            wl = self.matcher.current
            if wl is not None and (msg.get("model", face_model.DLIB) != wl.model or probe.shape != (wl.dim,)):
                self.counts.other_model += 1  # never compared: another model's descriptor means nothing here
                continue
            usable.append(msg)
            probes.append(self.fusion.add(msg["track_id"], probe, time.monotonic()) if self.cfg.match.fuse_views
                          else probe)  # fused: a cosine model's mean is a unit vector again (operating.fused)
        if not usable:
            return
        try:
            hits = self.matcher.match_batch(np.stack(probes), usable[0].get("model", face_model.DLIB))
        except face_model.OtherModel:  # the list was swapped for one of another model meanwhile
            self.counts.other_model += len(usable)
            return
        for msg, probe, hit in zip(usable, probes, hits, strict=True):
            if hit is not None:
                self.raise_alert(msg, *hit, probe=probe)
        del probes  # passers-by's descriptors go no further

    def raise_alert(self, msg: dict, entry, distance: float, probe=None) -> None:
        """A hit: a sighting of its entry's encounter; the first sighting is the alert to decide."""
        now = time.time()
        for enc in self.policy.ended(now):  # an encounter past its gap is closed before a new one opens
            self.end_encounter(enc, "gap")
        alert_id = messages.new_id()
        admitted = self.policy.admit(msg["track_id"], msg["camera_id"], entry.ref, now, new_id=lambda: alert_id)
        if admitted is None:
            self.counts.matches_suppressed += 1
            return
        enc, sighting = admitted
        wl = self.matcher.current
        decision = dict(enc.decision) if enc.decision else None
        alert = messages.alert(
            box_id=self.box_id, camera_id=msg["camera_id"], track_id=msg["track_id"], ref=entry.ref,
            distance=distance, threshold=self.matcher.threshold,
            crop_jpeg=messages.unb64(msg["crop_jpeg"]), reference_jpeg=cards.reference_image(wl, entry, probe),
            category=entry.category, list_id=wl.list_id if wl else "", frame_time=msg["frame_time"],
            alert_id=alert_id, encounter_id=enc.encounter_id, sighting=sighting, state=enc.state,
            decision=decision)
        alert.update(cards.extras(msg, wl, entry, probe))
        matched = face_model.get(wl.model if wl else msg.get("model", face_model.DLIB))  # the face model that matched
        alert.update(model=matched.id, model_sha256=matched.encoder_weights[1])
        # the audit record first: an alert is never delivered without being in the log
        fields = dict(alert_id=alert_id, camera_id=alert["camera_id"], time=alert["time"], ref=entry.ref,
                      distance=alert["distance"], track_id=alert["track_id"], encounter_id=enc.encounter_id,
                      sighting=sighting, crop_sha256=hashlib.sha256(messages.unb64(alert["crop_jpeg"])).hexdigest(),
                      reference_sha256=hashlib.sha256(messages.unb64(alert["reference_jpeg"])).hexdigest(),
                      model=alert["model"], model_sha256=alert["model_sha256"])
        where = [msg.get("frame_no"), *(msg.get("box") or [])]  # the frame in the stream, the face in it
        if len(where) == 5 and all(type(v) is int for v in where):
            fields.update(frame_no=where[0], box=where[1:])
        if sighting == 1:
            self.record("alert", **fields)
        else:
            self.record("sighting", **fields, state=enc.state)
        self.publish(alert)
        self.counts.sightings += 1
        if sighting == 1:
            self.counts.alerts += 1
        self.latency.add((time.time() - msg["frame_time"]) * 1000)
        log.info("%s %s: camera %s ref %s distance %.3f (encounter %s, %s)",
                 "alert" if sighting == 1 else f"sighting {sighting}", alert_id, alert["camera_id"], entry.ref,
                 distance, enc.encounter_id[:8], enc.state)

    def end_encounter(self, enc: Encounter, reason: str) -> None:
        self.record("encounter_end", encounter_id=enc.encounter_id, ref=enc.ref, sightings=enc.sightings,
                    outcome="undecided" if enc.decision is None else enc.state, cameras=list(enc.cameras),
                    first=messages.iso(enc.first), last=messages.iso(enc.last), reason=reason)

    def watchdog(self) -> None:
        if self._stopping:
            return
        now = time.monotonic()
        for cam_id, cam in self.cameras.items():
            if cam.alive() or cam.state == "failed":
                continue
            if cam.restarts >= self.cfg.health.max_restarts:
                cam.state = "failed"
                log.error("camera %s process died %d times; giving up", cam_id, cam.restarts + 1)
                self.record("camera_fault", camera_id=cam_id, reason="process failed, restarts exhausted")
                self.publish(messages.event(box_id=self.box_id, event="camera_failed", camera_id=cam_id))
                continue
            if cam.next_restart == 0.0:
                cam.next_restart = now + min(2.0 ** cam.restarts, 30.0)
                code = cam.proc.exitcode if cam.proc is not None else None
                log.warning("camera %s process exited (code %s); restarting", cam_id, code)
                self.record("camera_fault", camera_id=cam_id, reason=f"process exited ({code})")
            elif now >= cam.next_restart:
                cam.restarts += 1
                cam.next_restart = 0.0
                cam.state = "restarting"
                cam.start()

    # -- hooks other concerns use -----------------------------------------------------------------
    def _channel(self) -> Channel:
        if self.publisher is None:
            raise EdgeError("the alert channel is not open yet")
        return self.publisher

    def _camera_queue(self) -> Queue[str]:
        if self.queue is None:
            raise EdgeError("the cameras are not started")
        return self.queue

    def publish(self, msg: dict) -> None:
        """Send a box message to the consoles: durable in the outbox once this returns."""
        self._channel().publish(msg)

    def on_adjudication(self, msg: dict, console: str) -> None:
        """The first valid decision on an encounter (channel thread; edge/alerts/publisher.py has checked that
        the alert exists, was sent to this console and that its encounter is undecided): record it first."""
        alert = self._channel().outbox.get(msg["alert_id"]) or {}
        encounter_id = str(msg.get("encounter_id") or messages.encounter_of({"alert_id": msg["alert_id"], **alert}))
        enc = self.policy.get(encounter_id)
        seconds = msg.get("seconds_to_decision")
        action, reason = str(msg.get("action", "")), str(msg.get("reason", ""))
        self.record("adjudication", alert_id=msg["alert_id"], encounter_id=encounter_id, operator=msg["operator"],
                    decision=msg["decision"], action=action, reason=reason, note=str(msg.get("note", "")),
                    console=console, sightings=enc.sightings if enc else int(alert.get("sighting") or 1),
                    seconds_to_decision=float(seconds) if isinstance(seconds, int | float) else 0.0,
                    **({"verifications": msg["verifications"]} if msg.get("verifications") else {}))
        self.counts.adjudications += 1
        self.counts.decide(msg["decision"], reason)
        detail = self.decisions[msg["decision"]]
        key = action if msg["decision"] == "confirm" else reason
        detail[key] = detail.get(key, 0) + 1
        log.info("encounter %s: %s by %s", encounter_id[:8], msg["decision"], msg["operator"])
        self.policy.decided(encounter_id, str(alert.get("ref", "")), {
            "decision": msg["decision"], "action": action, "reason": reason, "operator": msg["operator"],
            "time": str(msg.get("time") or messages.utcnow())}, track_ids=[alert["track_id"]] if alert else [])

    def check_expiry(self) -> None:
        """A watchlist_expiring event, once per list, a day before it expires."""
        wl = self.matcher.current
        if wl is None or wl.not_after is None or self._expiry_warned == wl.list_id:
            return
        left = wl.not_after.timestamp() - time.time()
        if 0 < left <= EXPIRY_WARNING_S:
            self._expiry_warned = wl.list_id
            self.publish(messages.event(box_id=self.box_id, event="watchlist_expiring", list_id=wl.list_id,
                                        not_after=wl.not_after.isoformat(), expires_in_s=int(left)))

    def matching_status(self) -> dict:
        """Whether this box matches faces now, for the console's "NOT matching" banner (hello ``matching``,
        docs/alerts.md): a list loaded and at least one camera inside a deployment window."""
        wl = self.matcher.current
        allowed = [c for c in self.cameras if self.duties.allows(c)]
        why = ("no watch list is loaded" if wl is None or len(wl) == 0
               else "no deployment window is open" if not allowed else "")
        return {"on": not why, "why": why, "list_id": wl.list_id if wl else "", "entries": len(wl) if wl else 0,
                "not_after": wl.not_after.isoformat() if wl is not None and wl.not_after else None,
                "not_authorised": [c for c in self.cameras if c not in allowed],
                "emergency": self.duties.gate.emergency_notes(),
                "unauthorised": not self.duties.require}  # [deployment] required = false: no window needed

    def hello(self) -> dict:
        """What the channel tells each console that connects (its hello ``status``, docs/alerts.md)."""
        return {"cameras": self.camera_states(), "accuracy": self.accuracy(), "matching": self.matching_status(),
                "verification": self.verification()}

    def verification(self) -> str:
        """The box's two-person rule now: "two" if the config or an open deployment window requires it
        (edge/alerts/verification.py)."""
        return "two" if self.cfg.alerts.verification == "two" or self.duties.requires_two() else "one"

    def camera_states(self) -> dict[str, str]:
        """What the console's health bar shows per camera, including "not authorised" (no matching)."""
        return {cid: c.state if self.duties.allows(cid) else f"not authorised ({c.state})"
                for cid, c in self.cameras.items()}

    def adjudications_command(self, req: dict) -> dict:
        return {"adjudications": self._channel().outbox.adjudications(int(req.get("limit", 100)))}

    def record(self, kind: str, **fields) -> None:
        """Audit hook: every load, alert, decision and purge goes through here (docs/audit-format.md)."""
        self.duties.record(kind, **fields)
        if kind == "deployment_end" and fields.get("reason") != "service stopped" and self.watchlist is not None:
            # lists live for one deployment: its time up, ended by command, its issuer removed, emergency lapsed
            self.watchlist.deployment_ended(str(fields["deployment_id"]),
                                            force=fields.get("reason") != "window closed")

    def deployment_stop_command(self, req: dict) -> dict:
        """``edge deployment end`` / ``edge trust remove`` on a running box: stop the deployments now (recorded
        first), then the gate closes their runs and their lists are purged with receipts, all before replying."""
        from edge import deployment

        ids, by, reason, ending = list(req.get("ids") or []), str(req.get("by") or ""), str(req.get("reason") or ""), \
            str(req.get("ending") or "command")
        self.duties.count_faces(self.cameras)  # the run's faces are recorded before it ends
        for dep_id in ids:
            deployment.stop(self.cfg.state_dir, str(dep_id), by=by, reason=reason, ending=ending, record=self.record)
        self.duties.tick(self.cameras, reload=True)  # deployment_end -> record() -> the lists purged with receipts
        return {"stopped": ids, "receipts": self.watchlist.take_receipts() if self.watchlist else []}

    def accuracy(self) -> dict:
        """Live false-alert figures beside the expected ones of the list in force (status, consoles)."""
        wl = self.matcher.current
        op = wl.operating.to_json() if wl is not None and wl.operating is not None else None
        return live.summary(self.counts, self.cfg.match.max_false_alert_rate, expected=op)

    def status_command(self, _req: dict) -> dict:
        wl = self.matcher.current
        return {
            "box_id": self.box_id,
            "uptime_s": round(time.time() - self._started, 1),
            "model": dict(face_model.for_config(self.cfg).ref(), name=face_model.for_config(self.cfg).describe()),
            "watchlist": None if wl is None else {
                "list_id": wl.list_id, "entries": len(wl), "issuer": wl.issuer, "sequence": wl.sequence,
                "not_after": wl.not_after.isoformat() if wl.not_after else None, "model": wl.model,
                "templates_from": wl.meta.get("templates_from", wl.model)},
            "threshold": self.matcher.threshold,
            "alerts_sent": self.counts.alerts,  # encounters: each one alert to decide
            "encounters": self.counts.alerts,
            "sightings": self.counts.sightings,
            "decisions": {"total": self.counts.adjudications, "confirm": dict(self.decisions["confirm"]),
                          "dismiss": dict(self.decisions["dismiss"])},
            "counts": self.counts.as_dict(),
            "latency_ms": self.latency.summary(),
            "accuracy": self.accuracy(),
            "channel": self.publisher.info() if self.publisher else {},
            "deployment": self.duties.status(),
            "cameras": {cid: {"state": c.state, "restarts": c.restarts, "stats": c.stats}
                        for cid, c in self.cameras.items()},
        }


