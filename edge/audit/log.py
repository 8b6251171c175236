"""The audit log: append-only, hash-chained JSON lines with Ed25519-signed checkpoints.

Each line is one record in canonical JSON (``docs/audit-format.md``): its sequence number, time,
kind, fields, the hash of the record before it (``prev``) and its own hash. Every
``checkpoint_every`` records (or ``checkpoint_interval`` seconds, or on ``close``) the box signs a
``checkpoint`` record with its key, which covers the whole chain before it. The log never holds
images or templates: ``append`` refuses bytes, long strings and vectors of numbers.

Appends take a thread lock and an exclusive ``flock`` on the file (the daemon and a CLI command may
both write), are fsynced before returning, and pick up records another process wrote. A torn last
line (a crash mid-write) is what ``verify`` reports as truncation; the next append cuts it off and
records ``log_recovered`` with its length and hash, so the chain carries on intact.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge import codec, identity
from edge.codec import canonical
from edge.errors import EdgeError
from edge.files import StrPath, match_owner, write_atomic
from edge.identity import key_id, raw_public

VERSION = 1
GENESIS = "0" * 64
HASH_PREFIX = b"edge-audit-v1\n"
CHECKPOINT_DOMAIN = "edge-audit-checkpoint-v1"
ROTATION_DOMAIN = "edge-key-rotation-v1"  # the old key's endorsement of the new one, in key_rotated
LOG_NAME = "audit.log"
HEAD_NAME = "audit.head"
ANCHOR_NAME = "audit.anchor"  # in the state dir, apart from audit/: the newest checkpoint, never lowered
MAX_RECORD = 256 * 1024  # bytes of one line
MAX_STRING = 4096  # characters of one string field (an operator's note)
MAX_LIST = 20000  # items of one list field (the refs of a big watch list)

# kind -> required fields and their types (docs/audit-format.md); other fields are allowed.
S, INT, N, L, D = str, int, (int, float), list, dict
KINDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "provisioned": {"box_id": S, "signing_key_id": S, "signing_public": S},
    "key_rotated": {"old_key_id": S, "new_key_id": S, "signing_public": S},
    "trust_added": {"what": S, "key_id": S},
    "box_renamed": {"old_box_id": S, "new_box_id": S},  # edge provision --box-id NEW on a provisioned box
    "service_start": {},
    "service_stop": {},
    "config_changed": {"diff": D},
    "watchlist_loaded": {"issuer": S, "list_id": S, "entries": INT},  # and refs, categories (lists)
    "watchlist_entries": {"list_id": S, "part": INT, "parts": INT, "refs": L},  # a big list's refs, before loaded
    "watchlist_refused": {"reason": S},
    "watchlist_expired": {"list_id": S},
    "watchlist_purged": {"list_id": S, "reason": S},  # and the receipt's fields (receipt_id or time)
    "watchlist_file_deleted": {"list_id": S, "file": S, "mount": S},
    "watchlist_file_left": {"list_id": S, "file": S, "mount": S, "reason": S},
    "alert": {"alert_id": S, "camera_id": S, "time": S, "ref": S, "distance": N},  # + encounter_id, sighting
    "sighting": {"alert_id": S, "encounter_id": S, "sighting": INT, "camera_id": S, "time": S, "ref": S,
                 "distance": N, "state": S},
    "adjudication": {"alert_id": S, "operator": S, "decision": S, "action": S, "reason": S,
                     "seconds_to_decision": N},  # + encounter_id, sightings, console
    "adjudication_refused": {"alert_id": S, "console": S, "reason": S},
    "encounter_end": {"encounter_id": S, "ref": S, "sightings": INT, "outcome": S},
    "camera_fault": {"camera_id": S, "reason": S},
    "camera_back": {"camera_id": S},
    "console_connected": {"console": S},
    "console_refused": {"console": S, "reason": S},
    "console_pruned": {"console": S, "prune_id": S, "alert_ids": L},
    "deployment_loaded": {"deployment_id": S, "issuer": S, "location": S, "cameras": L, "start": S,
                          "end": S, "purpose": S},
    "deployment_refused": {"reason": S},
    "deployment_start": {"deployment_id": S, "location": S, "cameras": L},
    "deployment_end": {"deployment_id": S, "reason": S},
    "deployment_stopped": {"deployment_id": S, "by": S, "reason": S, "ending": S},  # before it takes effect
    "trust_removed": {"what": S, "key_id": S, "by": S, "reason": S},
    "faces_processed": {"camera_id": S, "faces": INT},
    "retention_deleted": {"alert_id": S, "alert_time": S, "files": INT},
    "audit_exported": {"from": S, "to": S, "records": INT, "sha256": S},
    "log_recovered": {"torn_bytes": INT, "torn_sha256": S},
    "checkpoint": {"key_id": S, "signing_public": S, "sig": S},
    "evidence_exported": {"encounter_id": S, "sha256": S},  # edge audit evidence (docs/evidence-format.md)
}
TIME_FIELDS = {"alert": ("time",), "sighting": ("time",), "deployment_loaded": ("start", "end")}  # in data
DECISIONS = ("confirm", "dismiss")
FACES_EVERY_S = 60.0  # the daemon records faces_processed this often: a kill -9 loses at most this much
Record = dict[str, Any]  # one parsed audit record (docs/audit-format.md)


def rotation(old_key: Ed25519PrivateKey, box_id: str, new_public: bytes) -> dict[str, str]:
    """The fields of a ``key_rotated`` record: the old key signs the new one (``endorsed``), so whoever holds
    the box's original public key (oversight's box.pub.json) verifies the log across the rotation."""
    doc = {"box_id": box_id, "old_key_id": key_id(raw_public(old_key)), "new_key_id": key_id(new_public),
           "signing_public": codec.b64(new_public)}
    return {**{k: v for k, v in doc.items() if k != "box_id"}, "endorsed": codec.sign(ROTATION_DOMAIN, doc, old_key)}


def endorsed_key(rec: Record, old_public: bytes) -> bytes | None:
    """The new key a ``key_rotated`` record names, if ``old_public`` endorsed it there; else None."""
    d = rec.get("data")
    if not isinstance(d, dict):
        return None
    doc = {"box_id": rec.get("box_id"), "old_key_id": d.get("old_key_id"), "new_key_id": d.get("new_key_id"),
           "signing_public": d.get("signing_public")}
    try:
        new = codec.unb64(d.get("signing_public"), "signing_public", 32)
    except EdgeError:
        return None
    if key_id(new) != d.get("new_key_id") or key_id(old_public) != d.get("old_key_id"):
        return None
    return new if codec.verify(ROTATION_DOMAIN, doc, d.get("endorsed"), old_public) else None


def stamp(t: float) -> str:
    """A record's time: the codec's format with milliseconds."""
    return codec.fmt_time(t, ms=True)


def record_hash(rec: Record) -> str:
    body = {k: v for k, v in rec.items() if k != "hash"}
    return hashlib.sha256(HASH_PREFIX + canonical(body)).hexdigest()


def checkpoint_message(rec: Record) -> bytes:
    """What a checkpoint's signature covers: the record minus its hash and its signature."""
    body = {k: v for k, v in rec.items() if k != "hash"}
    body["data"] = {k: v for k, v in body["data"].items() if k != "sig"}
    return codec.signed_message(CHECKPOINT_DOMAIN, body)


def _looks_binary(s: str) -> bool:
    """Long runs of base64/hex are how an image or template would sneak in as text."""
    if len(s) < 256:
        return False
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-")
    return sum(c in alphabet for c in s) / len(s) > 0.97


def check_value(value: object, path: str) -> None:
    """Refuse anything that could carry an image or a template (EdgeError names the field)."""
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise EdgeError(f"audit field {path} is not a finite number")
        return
    if isinstance(value, str):
        if len(value) > MAX_STRING or _looks_binary(value):
            raise EdgeError(f"audit field {path} is too long or looks like encoded data")
        return
    if isinstance(value, list | tuple):
        if len(value) > MAX_LIST:
            raise EdgeError(f"audit field {path} has too many items")
        if len(value) >= 32 and all(isinstance(v, float) for v in value):
            raise EdgeError(f"audit field {path} looks like a template (a vector of numbers)")
        for i, v in enumerate(value):
            check_value(v, f"{path}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise EdgeError(f"audit field {path} has a non-string key")
            check_value(v, f"{path}.{k}")
        return
    raise EdgeError(f"audit field {path} has type {type(value).__name__}, not allowed in the audit log")


def check_fields(kind: str, fields: dict[str, Any]) -> None:
    if kind not in KINDS:
        raise EdgeError(f"unknown audit record kind {kind!r}")
    for name, tp in KINDS[kind].items():
        v = fields.get(name)
        if not isinstance(v, tp) or isinstance(v, bool):
            raise EdgeError(f"audit record {kind} needs field {name!r}")
    if kind == "adjudication" and fields["decision"] not in DECISIONS:
        raise EdgeError(f"adjudication decision must be one of {', '.join(DECISIONS)}")
    for k, v in fields.items():
        check_value(v, f"{kind}.{k}")


def damage(kind: str, fields: object, time_text: object) -> str:
    """Why a record read back cannot be used ("" when it can): a field its kind requires is missing or of the
    wrong type, or its time is not a time. (Only what readers rely on; ``check_fields`` is the writer's check.)"""
    if not isinstance(fields, dict):
        return "its data is not an object"
    for name, tp in KINDS.get(kind, {}).items():
        v = fields.get(name)
        if not isinstance(v, tp) or isinstance(v, bool):
            return f"its field {name!r} is missing or not a {getattr(tp, '__name__', 'number')}"
    for name, text in (("record time", time_text), *((n, fields.get(n)) for n in TIME_FIELDS.get(kind, ()))):
        if name == "time" and text == "" and kind in ("alert", "sighting"):
            continue  # no time of its own: the record's time stands for it (report_matches)
        try:
            codec.parse_time(text)
        except EdgeError:
            return f"its {name} is not a time"
    return ""


def read_lines(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
    except OSError as exc:
        raise EdgeError(f"cannot read the audit log {path}: {exc.strerror}") from None


def _last_line(f: BinaryIO) -> tuple[bytes, int]:
    """(last complete line, offset just past its newline); a record is at most MAX_RECORD bytes."""
    size = os.fstat(f.fileno()).st_size
    base = max(0, size - 2 * MAX_RECORD - 2)
    f.seek(base)
    tail = f.read()
    nl = tail.rfind(b"\n")
    if nl < 0:
        return b"", base
    start = tail.rfind(b"\n", 0, nl) + 1
    return tail[start:nl], base + nl + 1


class AuditLog:
    """The box's audit log under ``<state_dir>/audit/``. ``append(kind, **fields)`` is the one hook."""

    def __init__(self, state_dir: StrPath, *, signing_key: Ed25519PrivateKey | None = None,
                 box_id: str | None = None, checkpoint_every: int = 50, checkpoint_interval: float = 300.0,
                 clock: Callable[[], float] = time.time, on_checkpoint: Callable[[Record], Any] | None = None):
        self.state_dir = Path(state_dir)
        self.dir = self.state_dir / "audit"
        self.path = self.dir / LOG_NAME
        self.head_path = self.dir / HEAD_NAME
        self.anchor_path = self.state_dir / ANCHOR_NAME
        # fn(checkpoint record): the daemon sends each checkpoint to its consoles, which keep the newest
        self.on_checkpoint = on_checkpoint
        self.signing_key = signing_key
        self.box_id = box_id
        self.checkpoint_every = checkpoint_every
        self.checkpoint_interval = checkpoint_interval
        self.clock = clock
        self._lock = threading.Lock()
        self._seq, self._hash, self._size = 0, GENESIS, -1
        self._since_checkpoint = 0
        self._last_checkpoint = clock()
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            match_owner(self.dir, self.state_dir)
        except OSError as exc:
            raise EdgeError(f"the audit log folder {self.dir} is not writable: {exc.strerror}") from None
        if self.signing_key is None:
            self._load_identity()

    def _load_identity(self) -> None:
        try:
            ident = identity.load(self.state_dir)
        except EdgeError:
            return  # not provisioned yet: records are chained, checkpoints wait for the key
        self.signing_key, self.box_id = ident.signing_key, self.box_id or ident.box_id

    # -- writing ----------------------------------------------------------------------------------
    def append(self, kind: str, **fields: Any) -> Record:
        """Add one record (validated, chained, fsynced); returns it. Raises EdgeError on bad fields."""
        check_fields(kind, fields)
        with self._lock:
            rec = self._write(kind, fields)
            if kind == "key_rotated":
                self.signing_key = None
                self._load_identity()
            if self._checkpoint_due(kind):
                self._write_checkpoint()
        return rec

    def head(self) -> Record | None:
        """The newest signed checkpoint (from the head file), or None."""
        try:
            rec = json.loads(self.head_path.read_bytes())
            return rec if isinstance(rec, dict) and rec.get("kind") == "checkpoint" else None
        except (OSError, ValueError, RecursionError):
            return None

    def checkpoint(self) -> Record | None:
        """Sign the chain so far now (no-op without a box key, or when the last record is a checkpoint)."""
        with self._lock:
            try:
                with self._locked_file() as f:
                    self._sync_tail(f)
            except OSError as exc:
                raise EdgeError(f"the audit log {self.path} is not readable: {exc.strerror}") from None
            return self._write_checkpoint() if self._since_checkpoint else None

    def tick(self) -> None:
        """Call now and then: writes a checkpoint when the interval has passed and records are unsigned."""
        with self._lock:
            if self._since_checkpoint and self.clock() - self._last_checkpoint >= self.checkpoint_interval:
                self._write_checkpoint()

    def close(self) -> None:
        with self._lock:
            if self._since_checkpoint:
                self._write_checkpoint()

    def _checkpoint_due(self, kind: str) -> bool:
        return (self._since_checkpoint >= self.checkpoint_every
                or kind in ("service_stop", "key_rotated", "provisioned", "audit_exported")
                or self.clock() - self._last_checkpoint >= self.checkpoint_interval)

    def _write_checkpoint(self) -> Record | None:
        if self.signing_key is None:
            self._load_identity()
        key = self.signing_key
        if key is None:
            return None
        pub = raw_public(key)
        fields = {"key_id": key_id(pub), "signing_public": codec.b64(pub), "sig": ""}

        def sign(rec: Record) -> None:
            rec["data"]["sig"] = codec.b64(key.sign(checkpoint_message(rec)))

        rec = self._write("checkpoint", fields, finish=sign)
        self._since_checkpoint = 0
        self._last_checkpoint = self.clock()
        self._witness(rec)
        return rec

    @contextlib.contextmanager
    def _locked_file(self) -> Iterator[BinaryIO]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+b", buffering=0) as f:
            match_owner(self.path, self.state_dir)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def _write(self, kind: str, fields: dict[str, Any], finish: Callable[[Record], None] | None = None) -> Record:
        try:
            return self._write_locked(kind, fields, finish)
        except OSError as exc:
            raise EdgeError(f"the audit log {self.path} is not writable: {exc.strerror}") from None

    def _write_locked(self, kind: str, fields: dict[str, Any], finish: Callable[[Record], None] | None) -> Record:
        with self._locked_file() as f:
            self._sync_tail(f)
            rec: dict[str, Any] = {"v": VERSION, "seq": self._seq + 1, "time": stamp(self.clock()),
                                   "kind": kind, "box_id": self.box_id or "", "data": fields, "prev": self._hash}
            if finish:
                finish(rec)
            rec["hash"] = record_hash(rec)
            line = canonical(rec) + b"\n"
            if len(line) > MAX_RECORD:
                raise EdgeError(f"audit record {kind} is too large ({len(line)} bytes)")
            f.write(line)
            os.fsync(f.fileno())
            if kind == "checkpoint":  # the head: the log may not end before it (still under the lock)
                write_atomic(self.head_path, line, 0o600)
                match_owner(self.head_path, self.state_dir)
                self._raise_anchor(rec["seq"], line)
            self._seq, self._hash = rec["seq"], rec["hash"]
            self._size = os.fstat(f.fileno()).st_size
            self._since_checkpoint += kind != "checkpoint"
            return rec

    def _raise_anchor(self, seq: int, line: bytes) -> None:
        """The anchor only ever moves forward: a log (and head) put back to an older copy stays behind it. An
        anchor this box did not sign (an unsigned one with a huge seq) does not hold it back: it is replaced."""
        try:
            old = json.loads(self.anchor_path.read_bytes())
            if int(old["seq"]) >= seq and self._signed_here(old):
                return
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            pass  # damaged: replaced by the newest checkpoint
        write_atomic(self.anchor_path, line, 0o600)
        match_owner(self.anchor_path, self.state_dir)

    def _signed_here(self, rec: Record) -> bool:
        """Is this checkpoint record signed by the box's signing key now?"""
        if self.signing_key is None or not isinstance(rec.get("data"), dict):
            return False
        pub = raw_public(self.signing_key)
        return (rec["data"].get("signing_public") == codec.b64(pub)
                and codec.verify_message(checkpoint_message(rec), rec["data"].get("sig"), pub))

    def _witness(self, rec: Record) -> None:
        if self.on_checkpoint is None:
            return
        try:
            self.on_checkpoint(rec)
        except Exception:  # noqa: BLE001 - a console being away must not stop the log
            logging.getLogger(__name__).debug("checkpoint %s not sent to the consoles", rec["seq"], exc_info=True)

    def _sync_tail(self, f: BinaryIO) -> None:
        """Under the file lock: catch up with other writers and cut off a torn last line."""
        size = os.fstat(f.fileno()).st_size
        if size == self._size:
            return
        line, end = _last_line(f)
        torn = None
        if end < size:
            f.seek(end)
            torn = f.read()
            os.ftruncate(f.fileno(), end)
            os.fsync(f.fileno())
        if line:
            try:
                last = json.loads(line)
                self._seq, self._hash = int(last["seq"]), str(last["hash"])
                self._since_checkpoint = max(self._since_checkpoint, int(last["kind"] != "checkpoint"))
            except (ValueError, KeyError, TypeError, RecursionError):
                raise EdgeError(f"the last record of {self.path} is damaged: run 'edge audit verify'") from None
        else:
            self._seq, self._hash = 0, GENESIS
        self._size = end
        if torn is not None:
            rec: dict[str, Any] = {
                "v": VERSION, "seq": self._seq + 1, "time": stamp(self.clock()), "kind": "log_recovered",
                "box_id": self.box_id or "", "prev": self._hash,
                "data": {"torn_bytes": len(torn), "torn_sha256": hashlib.sha256(torn).hexdigest()}}
            rec["hash"] = record_hash(rec)
            f.write(canonical(rec) + b"\n")
            os.fsync(f.fileno())
            self._seq, self._hash = rec["seq"], rec["hash"]
            self._size = os.fstat(f.fileno()).st_size


def record(state_dir: StrPath, kind: str, **fields: Any) -> Record:
    """One record from a short-lived command (``edge provision``, ``edge trust add-issuer``): append, sign."""
    log = AuditLog(state_dir)
    rec = log.append(kind, **fields)
    log.close()
    return rec
