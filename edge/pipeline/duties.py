"""The daemon's accountability duties in one object, so the daemon calls four methods and no more.

- ``start()``: opens the audit log, records what changed in the config since the last start, and
  reads the deployment windows;
- ``allows(camera_id)``: may a face from this camera be matched now (inside a deployment window)?
- ``tick(cameras)``: every loop: opens/closes each camera's encode switch as windows open and close
  (events ``authorised`` / ``not_authorised`` to the consoles), records the face counts every
  ``faces_every`` seconds and signs checkpoints;
- ``stop(cameras)``: last face counts, closes the windows (the daemon's ``service_stop`` record that
  follows is signed at once).

``cameras`` maps camera id -> an object with ``stats`` (the camera's health counters) and
``encode_allowed`` (a multiprocessing Event the camera process obeys). Retention is not here: the
alert channel calls ``edge.alerts.retention.sweep`` through its prune hook.
"""

from __future__ import annotations

import dataclasses
import time

from edge.alerts import messages
from edge.audit import configdiff
from edge.audit.log import FACES_EVERY_S, AuditLog
from edge.deployment import Gate
from edge.errors import EdgeError

COUNTED = ("faces", "encodes", "not_authorised")  # camera counters summed into faces_processed


class Duties:
    def __init__(self, cfg, *, publish=None, clock=time.time, require_deployment: bool | None = None,
                 faces_every: float = FACES_EVERY_S, gate_every: float = 1.0):
        self.cfg = cfg
        self.publish = publish or (lambda msg: None)
        self.clock = clock
        self.require = cfg.deployment.required if require_deployment is None else require_deployment
        self.faces_every, self.gate_every = faces_every, gate_every
        self.log: AuditLog | None = None
        self.gate = Gate(cfg.state_dir, [c.id for c in cfg.cameras if c.enabled], record=self.record,
                         clock=clock, require_ref=cfg.deployment.require_authority_ref)
        self._allowed: dict[str, bool] = {}
        self._counted: dict[str, dict] = {}  # camera -> counters at the last faces_processed
        self._last = {"faces": clock(), "gate": 0.0}

    def record(self, kind: str, **fields) -> None:
        if self.log is not None:
            self.log.append(kind, **fields)

    # -- the four calls ---------------------------------------------------------------------------
    def start(self, first: tuple[str, dict] | None = None) -> None:
        """Open the log (``first``: the (kind, fields) record to write before any other)."""
        try:
            self.log = AuditLog(self.cfg.state_dir, box_id=self.cfg.box_id, clock=self.clock,
                                on_checkpoint=self.witness)
            if first:
                self.record(first[0], **first[1])
            diff = configdiff.changes(self.cfg.state_dir, dataclasses.asdict(self.cfg))
            if diff:
                self.record("config_changed", diff=diff)
        except (OSError, EdgeError) as exc:  # a full or read-only disk: one sentence, nothing started
            why = getattr(exc, "strerror", None) or str(exc)
            raise EdgeError(f"the state dir {self.cfg.state_dir} is not writable ({why})") from None
        self.gate.update()

    def witness(self, checkpoint: dict | None = None) -> None:
        """Send a signed checkpoint (default: the newest) to the consoles, which keep the newest one per
        box: a log later cut back or swapped for an older copy contradicts what they hold."""
        cp = checkpoint or (self.log.head() if self.log is not None else None)
        if cp is not None:
            self.publish(messages.event(box_id=self.cfg.box_id, event="audit_checkpoint", checkpoint=cp))

    def allows(self, camera_id: str) -> bool:
        return not self.require or self.gate.allows(camera_id)

    def tick(self, cameras: dict, reload: bool = False) -> None:
        """``reload``: re-read the deployment windows now (after ``edge deployment load``)."""
        now = self.clock()
        if reload or now - self._last["gate"] >= self.gate_every:
            self._last["gate"] = now
            self.gate.update(reload)
            self._switch(cameras)
        if now - self._last["faces"] >= self.faces_every:
            self.count_faces(cameras)
        if self.log is not None:
            self.log.tick()

    def stop(self, cameras: dict) -> None:
        """Before ``service_stop`` (whose record is followed by a signed checkpoint)."""
        self.count_faces(cameras)
        self.gate.close()

    # -- helpers ----------------------------------------------------------------------------------
    def _switch(self, cameras: dict) -> None:
        for cam_id, cam in cameras.items():
            ok = self.allows(cam_id)
            if ok:
                cam.encode_allowed.set()
            else:
                cam.encode_allowed.clear()
            if self._allowed.get(cam_id) != ok:
                self._allowed[cam_id] = ok
                self.publish(messages.event(box_id=self.cfg.box_id, event="authorised" if ok else "not_authorised",
                                            camera_id=cam_id, deployment=self.gate.allowed.get(cam_id) or "",
                                            emergency=self.gate.allowed.get(cam_id) in self.gate.emergency()))

    def count_faces(self, cameras: dict) -> None:
        """faces_processed per camera: counts since the last record (a restarted camera starts at 0)."""
        now = self.clock()
        for cam_id, cam in cameras.items():
            stats = {k: int(cam.stats.get(k, 0) or 0) for k in COUNTED}
            last = self._counted.get(cam_id, dict.fromkeys(COUNTED, 0))
            delta = {k: stats[k] - last[k] if stats[k] >= last[k] else stats[k] for k in COUNTED}
            self._counted[cam_id] = stats
            if any(delta.values()):
                self.record("faces_processed", camera_id=cam_id, faces=delta["faces"], encodings=delta["encodes"],
                            not_authorised=delta["not_authorised"], interval_s=round(now - self._last["faces"], 1))
        self._last["faces"] = now

    def requires_two(self) -> bool:
        """Does an open deployment window require two people to verify a confirmation (its signed
        ``verification``, docs/deployment-format.md)?"""
        return any(d.verification == "two" for d in self.gate.current.values())

    def status(self) -> dict:
        return {"deployment_required": self.require, "emergency": self.gate.emergency(),
                "authorised": {c: self.gate.allowed.get(c) if self.require else "not required"
                               for c in self.gate.camera_ids}}
