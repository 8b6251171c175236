"""The box side of signed watch lists: load, keep, expire, purge (with a signed receipt), USB pick-up.

A bundle goes through: signature by a registered issuer -> addressed to this box -> validity window
-> sequence (no rollback) -> policy -> decrypt -> every entry valid -> the ``watchlist_loaded`` audit
record -> stored -> one atomic swap. Any failure raises a one-line ``EdgeError``, is itself audited
(``watchlist_refused``), and the list in force stays in force. Every change of what the box matches
against is recorded first and applied after: a list whose record cannot be written is refused, and
an on-demand purge that cannot be recorded does not happen (an expiry purge happens regardless).
The decrypted list lives only in memory; ``<state_dir>/watchlist/current.wlb`` keeps the
still-encrypted bundle for the next start, and a version-2 list reads its reference images from it,
one per alert. A bundle is never read whole into memory: it is copied (staged) next to the stored one
and read from there, so the box checks the very bytes it keeps.

Files come from USB sticks and from users: they are opened with ``O_NOFOLLOW | O_NONBLOCK``, must be
regular files (``fstat``) under the format's size cap, and are read against a deadline, so a FIFO, a
device or a symlink on a stick cannot stall the watcher. Expiry runs on its own timer thread, apart
from USB scanning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import stat
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge import identity as identity_mod
from edge.alerts import messages
from edge.errors import EdgeError
from edge.files import write_atomic
from edge.watchlist import bundle, operating, reader, receipt
from edge.watchlist.base import Matcher, WatchList
from edge.watchlist.bundle import BundleError
from edge.watchlist.fields import parse_time
from edge.watchlist.stream import Source

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


READ_TIMEOUT_S = 60.0  # a bundle (at most bundle.MAX_FILE bytes) must be read within this
MAX_USB_FILES = 50  # new or changed *.wlb files opened per mount point and round
MAX_USB_LISTED = 10_000  # directory entries looked at per mount point and round
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MALFORMED = (ValueError, TypeError, KeyError, IndexError, RecursionError, OverflowError, MemoryError,
             UnicodeError, AttributeError)  # what a hostile bundle could make a parser raise


def stage_bundle_file(path, dest: Path, max_size: int | None = None,
                      timeout: float = READ_TIMEOUT_S) -> tuple[str, tuple[int, bytes]]:
    """Copy a bundle a user or a USB stick handed us (a regular file, bounded, read against a deadline:
    ``_copy_user_file``) to ``dest`` (0600, fsynced) in blocks, never whole in memory. Returns its
    SHA-256 (hex) and, from the same pass, (n, SHA-256 of its first n bytes) for n = its size - 64:
    what a version-2 signature covers, so the copy need not be read again to check it."""
    signed, tail, copied = hashlib.sha256(), b"", 0
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise EdgeError(f"cannot write {dest}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            def write(block: bytes) -> None:
                nonlocal tail, copied
                out.write(block)
                copied += len(block)
                if len(block) >= bundle.SIG_LEN:  # all but the last 64 bytes go into the signed digest
                    signed.update(tail)
                    signed.update(memoryview(block)[:-bundle.SIG_LEN])
                    tail = block[-bundle.SIG_LEN:]
                else:
                    joined = tail + block
                    signed.update(joined[:-bundle.SIG_LEN])
                    tail = joined[-bundle.SIG_LEN:]

            _copy_user_file(path, write, max_size, timeout)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        raise EdgeError(f"cannot write {dest}: {exc.strerror}") from None
    whole = signed.copy()
    whole.update(tail)
    return whole.hexdigest(), (max(0, copied - bundle.SIG_LEN), signed.digest())


def _copy_user_file(path, sink, max_size: int | None, timeout: float) -> None:
    """Feed a regular file (no symlink, FIFO or device) of at most ``max_size`` bytes to ``sink`` in
    blocks, within ``timeout`` seconds; EdgeError in one sentence otherwise."""
    if not path or not isinstance(path, str | Path):
        raise EdgeError("no bundle file given")
    path, cap = Path(path), bundle.MAX_FILE if max_size is None else max_size
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == 40:  # ELOOP: the last component is a symbolic link
            raise BundleError(f"{path.name} is a symbolic link, not a watch-list bundle: refused") from None
        raise EdgeError(f"cannot read {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{path.name} is not a regular file: refused")
        if st.st_size > cap:
            raise BundleError(f"{path.name} is too large to be a watch-list bundle")
        got, deadline = 0, time.monotonic() + timeout
        while True:
            chunk = os.read(fd, min(1 << 20, cap + 1 - got))
            if not chunk:
                break
            got += len(chunk)
            if got > cap:
                raise BundleError(f"{path.name} is too large to be a watch-list bundle")
            sink(chunk)
            if time.monotonic() > deadline:
                raise BundleError(f"{path.name} could not be read within {timeout:.0f} s: refused")
    except BlockingIOError:
        raise BundleError(f"{path.name} is not a regular file: refused") from None
    except OSError as exc:
        raise EdgeError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def stored_header(state_dir) -> dict | None:
    """The signed header of the list stored on the box (signature checked against the trust store, nothing
    decrypted); None when there is none or it is refused."""
    path = Path(state_dir) / "watchlist" / "current.wlb"
    if not path.exists():
        return None
    try:
        src = open_bundle_file(path)
        try:
            return reader.verify(src, identity_mod.issuers(state_dir)).header
        finally:
            src.close()
    except (OSError, EdgeError, *MALFORMED):
        return None


def open_bundle_file(path) -> Source:
    """A bundle file (already checked or the box's own) opened for random access, never read whole."""
    if not path or not isinstance(path, str | Path):
        raise EdgeError("no bundle file given")
    path = Path(path)
    try:
        src = Source.open(path)
    except OSError as exc:
        raise EdgeError(f"cannot read {path}: {exc.strerror}") from None
    if src.size > bundle.MAX_FILE:
        src.close()
        raise BundleError(f"{path.name} is too large to be a watch-list bundle")
    return src


def file_safe(text: str) -> str:
    """A list id (chosen by the issuer) as part of a file name: kept when harmless, else a digest."""
    text = str(text)
    if SAFE_NAME.fullmatch(text) and ".." not in text:
        return text
    return "list-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _short(text, limit: int = 300) -> str:
    """Bounded text for a refusal record (never long enough to look like encoded data)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


class WatchlistService:
    def __init__(self, cfg, identity, matcher: Matcher | None = None, publish=None, record=None,
                 poll: float = 2.0):
        self.cfg = cfg
        self.identity = identity
        self.matcher = matcher
        self.publish = publish or (lambda msg: None)
        self.record = record or (lambda kind, **fields: None)
        self.poll = poll
        self.dir = Path(cfg.state_dir) / "watchlist"
        self.stored = self.dir / "current.wlb"
        self.header: dict | None = None  # header of the list in force (or stored, when offline)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._expiry_thread: threading.Thread | None = None
        self._seen: dict[Path, tuple[int, int, int]] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._reload_stored()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="watchlist-usb", daemon=True)
        self._thread.start()
        self._expiry_thread = threading.Thread(target=self._expire_loop, name="watchlist-expiry", daemon=True)
        self._expiry_thread.start()

    def stop(self) -> None:
        self._stop.set()
        for th in (self._thread, self._expiry_thread):
            if th:
                th.join(timeout=5)

    def commands(self) -> dict:
        return {
            "watchlist_load": lambda req: self.load(req.get("path") or "", via="cli"),
            "watchlist_purge": lambda req: {"receipt": self.purge(str(req.get("reason") or "on demand"))},
            "watchlist_status": lambda req: self.status(),
        }

    # --- checks -----------------------------------------------------------------------------

    def check(self, data: bytes | Source, *, reload: bool = False) -> tuple[reader.Checked, operating.OperatingPoint]:
        """Everything that can be checked before decrypting; returns the verified bundle and the operating
        point it will be matched at (worked out once per load, here: :meth:`open` uses it)."""
        c = reader.verify(data, identity_mod.issuers(self.cfg.state_dir))
        h = c.header
        mine = identity_mod.key_id(self.identity.wl_public)
        if h["box"] != mine:
            raise BundleError(f"this list is for box {h['box_id']} (key {h['box']}), "
                              f"not this box {self.identity.box_id} (key {mine})")
        now, nb, na = _now(), parse_time(h["not_before"]), parse_time(h["not_after"])
        if now < nb:
            raise BundleError(f"the list is not valid before {h['not_before']}")
        if now >= na:
            raise BundleError(f"the list expired at {h['not_after']}")
        self._check_sequence(h, reload)
        bundle.check_policy(h)
        threshold = self.matcher.threshold if self.matcher else self.cfg.match.threshold
        if threshold > h["policy"]["threshold_floor"]:
            raise BundleError(f"this box matches at distance {threshold}, more lenient than the list's "
                              f"threshold floor {h['policy']['threshold_floor']}: lower match.threshold")
        op = self.operating_point(h)  # refused here, before decrypting, if it breaks the list's own policy
        return c, op

    def operating_point(self, h: dict) -> operating.OperatingPoint:
        """How this list will be matched: its signed operating point re-checked, or one derived for it."""
        m = self.cfg.match
        cap = min(self.matcher.threshold if self.matcher else m.threshold, float(h["policy"]["threshold_floor"]))
        signed = h["policy"].get("target_fpir")
        ok = isinstance(signed, int | float) and not isinstance(signed, bool) and 0.0 < signed < 1.0
        target = min(m.target_fpir, float(signed)) if ok else m.target_fpir
        op, problem = operating.for_list(operating.load_calibration(m.calibration or None), int(h["entries"]),
                                         cap, target, m.rule, h.get("operating"))
        if problem:
            raise BundleError(problem)
        return op

    def open(self, data: bytes | Path | Source, *, reload: bool = False,
             known: tuple[int, bytes] | None = None) -> WatchList:
        """Check, decrypt and validate a bundle (bytes, or a file a version-2 list then reads its
        reference images from) -> the in-memory list (nothing is stored or swapped).
        Whatever a hostile bundle makes a parser raise is a one-sentence BundleError."""
        src = data if isinstance(data, Source) else open_bundle_file(data) if isinstance(data, Path) \
            else Source(bytes(data))
        src.known = known or src.known  # the digest stage_bundle_file took of the copy it made
        try:
            c, op = self.check(src, reload=reload)
            wl = reader.open_list(c, self.identity.wl_key)
            wl.operating = op
        except MALFORMED as exc:
            src.close()
            raise BundleError(f"the bundle is malformed ({exc.__class__.__name__}): refused") from None
        except BaseException:
            src.close()
            raise
        if wl.image_store is None:
            src.close()  # version 1: everything is in memory now
        return wl

    def _sequences(self) -> dict:
        """{issuer: {sequence, list_id, purged}}; a damaged record stops loading (no silent rollback)."""
        path = self.dir / "sequence.json"
        try:
            seqs = json.loads(path.read_text())
            if not isinstance(seqs, dict) or not all(isinstance(v, dict) for v in seqs.values()):
                raise ValueError
            return seqs
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            raise EdgeError(f"the list sequence record {path} is damaged: no list can be loaded until an "
                            "engineer restores it") from None

    def _check_sequence(self, h: dict, reload: bool) -> None:
        last = self._sequences().get(h["issuer"])
        if not last:
            return
        seq, prev = h["sequence"], last["sequence"]
        if seq < prev:
            raise BundleError(f"sequence {seq} is older than list {last['list_id']} (sequence {prev}) "
                              "already accepted from this issuer: rollback refused")
        if seq == prev and h["list_id"] != last["list_id"]:
            raise BundleError(f"sequence {seq} was already used by list {last['list_id']} from this issuer")
        if seq == prev and last.get("purged") and not reload:
            raise BundleError(f"list {h['list_id']} was purged from this box: load a newer list")

    def _save_sequence(self, h: dict, purged: bool = False) -> None:
        seqs = self._sequences()
        seqs[h["issuer"]] = {"sequence": h["sequence"], "list_id": h["list_id"], "purged": purged}
        write_atomic(self.dir / "sequence.json", json.dumps(seqs, indent=1).encode(), 0o600)

    # --- load / purge -----------------------------------------------------------------------

    def load(self, path, via: str = "cli", mount: str = "") -> dict:
        """Verify and load a bundle file; the list in force is replaced only if all of it is good and
        its ``watchlist_loaded`` record was written. Every refusal is recorded.

        ``via``: how it arrived (``cli``, ``usb`` from ``mount``); the audit record says so.
        """
        loaded = self._load_path(path, via, mount)
        assert loaded is not None  # only skip_stored gives None
        return loaded

    def _load_path(self, path, via: str, mount: str = "", skip_stored: bool = False) -> dict | None:
        """Stage the file next to the stored list, then load the staged copy (``skip_stored``: None,
        silently, when it is the list already stored)."""
        name = _short(Path(path).name if isinstance(path, str | Path) and path else "", 200)
        arrival = {"file": name, "arrived": via, **({"mount": _short(mount, 200)} if mount else {})}
        staged = self.dir / ".incoming.wlb"
        with self._lock:
            try:
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                digest, known = stage_bundle_file(path, staged)  # a full disk refuses it before anything is said
                if skip_stored and digest == self._stored_digest():
                    return None
                return self._load_staged(staged, digest, arrival, source=Path(path) if via == "usb" else None,
                                         known=known)
            except EdgeError as exc:
                self._refused(arrival, exc, staged)
                raise
            finally:
                staged.unlink(missing_ok=True)

    def load_bytes(self, data: bytes, arrival: dict | None = None, source: Path | None = None) -> dict:
        """Load a bundle held in memory (staged to a file first, like any other)."""
        staged = self.dir / ".incoming.wlb"
        with self._lock:
            try:
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                write_atomic(staged, data, 0o600)
                return self._load_staged(staged, hashlib.sha256(data).hexdigest(), arrival, source)
            finally:
                staged.unlink(missing_ok=True)

    def _load_staged(self, staged: Path, digest: str, arrival: dict | None = None,
                     source: Path | None = None, known: tuple[int, bytes] | None = None) -> dict:
        """Record first, then apply: check -> ``watchlist_loaded`` -> store -> swap (raises EdgeError)."""
        arrival = arrival or {"file": "", "arrived": "cli"}
        with self._lock:
            wl = self.open(staged, known=known)
            h = wl.meta["header"]
            summary = self._summary(h)
            old = self.header
            old_id = old["list_id"] if old else None
            try:
                try:
                    self.record("watchlist_loaded", replaced=old_id, **arrival, bundle_sha256=digest,
                                issuer_name=self._issuer_name(wl.issuer), **summary, **self._contents(wl))
                except EdgeError as exc:
                    raise BundleError(f"the list cannot be recorded in the audit log ({exc}), "
                                      "so it is not put in force") from None
                os.replace(staged, self.stored)  # a version-2 list keeps reading its images from this file
                self._save_sequence(h)
            except (EdgeError, OSError) as exc:
                wl.wipe()
                if isinstance(exc, EdgeError):
                    raise
                raise EdgeError(f"cannot store the list in {self.dir}: {exc.strerror}") from None
            self.header = h
            self._swap(wl)
            if old and old_id != h["list_id"]:  # the replaced list ends with a receipt too
                try:
                    self._receipt(old, f"replaced by list {_short(h['list_id'], 80)}", ending="replaced")
                except EdgeError as exc:
                    log.error("the receipt of replaced list %s failed: %s", _short(old_id, 80), _short(exc, 200))
            self._remember_source(source, digest)
            self.publish(messages.event(box_id=self.cfg.box_id, event="watchlist_loaded", **summary))
            log.info("watch list %s loaded: %d entries from issuer %s", _short(wl.list_id, 80), len(wl),
                     wl.issuer)
            return summary

    def _refused(self, arrival: dict, exc: Exception, data: bytes | Path = b"") -> None:
        """Audit and announce a refusal; a refusal that cannot be recorded is still refused."""
        reason = _short(exc)
        try:
            self.record("watchlist_refused", **arrival, reason=reason, **self._refused_issuer(data))
        except Exception as rec_exc:  # noqa: BLE001 - the refusal stands whatever the log says
            log.error("could not record the refusal of %s: %s", arrival.get("file"), _short(rec_exc, 200))
        try:
            self.publish(messages.event(box_id=self.cfg.box_id, event="watchlist_refused",
                                        file=arrival.get("file", ""), reason=reason))
        except Exception as pub_exc:  # noqa: BLE001
            log.error("could not announce the refusal of %s: %s", arrival.get("file"), _short(pub_exc, 200))

    def _issuer_name(self, kid: str) -> str:
        """The issuer's name as the trust store has it (issuer.pub's label), or ""."""
        try:
            doc = json.loads((Path(self.cfg.state_dir) / "trust" / "issuers" / f"{file_safe(kid)}.pub").read_text())
            return _short(doc.get("name", ""), 200) if isinstance(doc, dict) else ""
        except (OSError, ValueError, RecursionError):
            return ""

    def _refused_issuer(self, data: bytes | Path) -> dict:
        """The issuer key id and list id a refused bundle claims, if its framing can be read (unverified)."""
        try:
            if isinstance(data, Path):
                with open(data, "rb") as f:
                    size, head = os.fstat(f.fileno()).st_size, f.read(bundle.PREFIX.size + bundle.MAX_HEADER)
            else:
                size, head = len(data), data[:bundle.PREFIX.size + bundle.MAX_HEADER]
            _, issuer, hlen = bundle.parse_prefix(head, size)
        except (OSError, EdgeError, *MALFORMED):
            return {}
        out = {"issuer": issuer, "issuer_name": self._issuer_name(issuer)}
        try:
            claimed = bundle.load_json(head[bundle.PREFIX.size:bundle.PREFIX.size + hlen], "header").get("list_id")
            if isinstance(claimed, str) and len(claimed) <= 64:
                out["claimed_list_id"] = claimed
        except (EdgeError, AttributeError):
            pass
        return out

    def _header_of(self, data: bytes | Path) -> dict:
        src = open_bundle_file(data) if isinstance(data, Path) else Source(bytes(data))
        try:
            return reader.verify(src, identity_mod.issuers(self.cfg.state_dir)).header
        finally:
            src.close()

    def _contents(self, wl: WatchList) -> dict:
        """What the ``watchlist_loaded`` record says the list holds; a list whose reference numbers do not
        fit one audit record (more than ~10,000) has them recorded first, in ``watchlist_entries`` parts."""
        out = _contents(wl)
        parts = _ref_parts(out["refs"])
        if len(parts) > 1:
            for i, refs in enumerate(parts):
                self.record("watchlist_entries", list_id=wl.list_id, part=i + 1, parts=len(parts), refs=refs)
            del out["refs"]
            out["refs_parts"] = len(parts)
        return out

    def _swap(self, wl: WatchList | None) -> None:
        if self.matcher is None:
            return
        old = self.matcher.swap(wl)
        if old is not None and old is not wl:
            old.wipe()

    def purge(self, reason: str = "on demand", ending: str = "purged") -> dict:
        """Wipe the stored bundle and the templates in memory; return a receipt signed by the box.

        The ``watchlist_purged`` record is written first. If it cannot be, an on-demand purge is
        refused (the list stays, and the operator is told why); an expiry or deployment-end purge goes
        ahead anyway: a list past its signed end must never be matched against."""
        reason = _short(reason, 200)
        with self._lock:
            h = self.header or self._stored_header()
            wl = self.matcher.current if self.matcher else None
            if h is not None:
                info = h
            elif wl is not None:
                info = {"list_id": wl.list_id, "issuer": wl.issuer, "deployment": "", "sequence": 0,
                        "entries": len(wl)}
            else:
                raise EdgeError("no watch list is loaded or stored on this box")
            rc, name = self._sign_receipt(info, reason)
            try:
                self._record_end(rc, name, ending)
            except EdgeError as exc:
                if ending == "purged":
                    raise EdgeError(f"the purge cannot be recorded in the audit log ({exc}): "
                                    "the list stays in force") from None
                log.error("list %s ended (%s) without its audit record: %s", _short(rc["list_id"], 80), ending,
                          _short(exc, 200))
            self._swap(None)
            self._shred(self.stored)
            self.header = None
            if h:
                self._save_sequence(h, purged=True)
            self._store_receipt(rc, name, reason)
            return rc

    def _sign_receipt(self, info: dict, reason: str) -> tuple[dict, str]:
        rc = receipt.make(self.identity, list_id=info["list_id"], issuer=info["issuer"],
                          deployment=info["deployment"], sequence=info["sequence"],
                          entries=info["entries"], reason=reason)
        return rc, f"{rc['time'].replace(':', '')}-{file_safe(rc['list_id'])}.json"  # ids never make paths

    def _record_end(self, rc: dict, name: str, ending: str) -> None:
        self.record("watchlist_purged", **{k: rc[k] for k in receipt.FIELDS}, ending=ending, receipt_file=name,
                    receipt_signature=rc["signature"], receipt_version=rc["version"])

    def _store_receipt(self, rc: dict, name: str, reason: str) -> None:
        rdir = self.dir / "receipts"
        rdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(rdir / name, json.dumps(rc, indent=1).encode(), 0o600)
        self.publish(messages.event(box_id=self.cfg.box_id, event="watchlist_purged",
                                    list_id=rc["list_id"], entries=rc["entries"], reason=reason))
        log.info("watch list %s ended (%s): receipt %s", _short(rc["list_id"], 80), reason, name)

    def _receipt(self, info: dict, reason: str, ending: str = "purged") -> dict:
        """Sign, record and store the deletion receipt of a list that has already ended (replaced)."""
        rc, name = self._sign_receipt(info, reason)
        self._record_end(rc, name, ending)
        self._store_receipt(rc, name, reason)
        return rc

    def deployment_ended(self, deployment_id: str) -> dict | None:
        """A deployment window closed: a list that lives for that deployment is purged with a receipt, and
        its file on a writable USB mount is deleted (the deletion, or why not, recorded)."""
        with self._lock:
            h = self.header or self._stored_header()
            if not h or h.get("deployment") != deployment_id or not ends_with_deployment(h):
                return None
            rc = self.purge(f"deployment {_short(deployment_id, 80)} ended", ending="deployment ended")
            self._delete_usb_copy(h)
            return rc

    def _remember_source(self, path: Path | None, digest: str) -> None:
        """Where the list in force came from on USB (to delete that file when its deployment ends)."""
        src = self.dir / "source.json"
        if path is None:
            src.unlink(missing_ok=True)
            return
        doc = {"path": str(path.resolve()), "sha256": digest}
        write_atomic(src, json.dumps(doc).encode(), 0o600)

    def _delete_usb_copy(self, h: dict) -> None:
        try:
            doc = json.loads((self.dir / "source.json").read_text())
            path, digest = Path(doc["path"]), doc["sha256"]
            (self.dir / "source.json").unlink()
        except (OSError, ValueError, KeyError, TypeError):
            return
        try:
            if not path.exists() or _file_digest(path) != digest:
                return
            path.unlink()
            self.record("watchlist_file_deleted", list_id=h["list_id"], file=path.name, mount=str(path.parent))
        except EdgeError:
            return  # no longer the regular file we loaded: leave it
        except OSError as exc:
            self.record("watchlist_file_left", list_id=h["list_id"], file=path.name, mount=str(path.parent),
                        reason=f"cannot delete it: {exc.strerror}")

    @staticmethod
    def _shred(path: Path) -> None:
        """Overwrite then delete (best effort on flash; the file is encrypted to the box key anyway)."""
        try:
            size = path.stat().st_size
            with open(path, "r+b") as f:
                f.write(bytes(size))
                f.flush()
                os.fsync(f.fileno())
            path.unlink()
        except FileNotFoundError:
            pass

    def _stored_header(self) -> dict | None:
        return stored_header(self.cfg.state_dir)

    def _reload_stored(self) -> None:
        """At start: bring back the stored list; purge it if it expired while the box was off."""
        if not self.stored.exists():
            return
        try:
            wl = self.open(self.stored, reload=True)
        except EdgeError as exc:
            h = self._stored_header()
            try:
                if h and _now() >= parse_time(h["not_after"]):
                    self.purge("expired", ending="expired")
                    return
            except EdgeError:
                pass
            log.warning("the stored watch list was not reloaded: %s", exc)
            self.publish(messages.event(box_id=self.cfg.box_id, event="watchlist_refused",
                                        file=self.stored.name, reason=str(exc)))
            return
        with self._lock:
            try:
                self.record("watchlist_loaded", at_start=True, arrived="daemon", file=self.stored.name,
                            issuer_name=self._issuer_name(wl.issuer), **self._summary(wl.meta["header"]),
                            **self._contents(wl))
            except EdgeError as exc:
                wl.wipe()
                log.warning("the stored watch list was not reloaded: %s", exc)
                self._refused({"file": self.stored.name, "arrived": "daemon"}, exc)
                return
            self.header = wl.meta["header"]
            self._swap(wl)

    # --- status -----------------------------------------------------------------------------

    def summary(self) -> dict:
        return self._summary(self.header or self._stored_header())

    @staticmethod
    def _summary(h: dict | None) -> dict:
        if h is None:
            return {"list_id": None}
        left = (parse_time(h["not_after"]) - _now()).total_seconds()
        return {"list_id": h["list_id"], "issuer": h["issuer"], "deployment": h["deployment"],
                "entries": h["entries"], "sequence": h["sequence"], "not_after": h["not_after"],
                "expires_in_s": int(left), "threshold_floor": h["policy"]["threshold_floor"]}

    def status(self) -> dict:
        wl = self.matcher.current if self.matcher else None
        in_memory = wl is not None and wl.list_id == (self.header or {}).get("list_id")
        return dict(self.summary(), in_memory=in_memory, stored=self.stored.exists(),
                    operating=wl.operating.to_json() if wl is not None and in_memory and wl.operating is not None
                    else None)

    # --- background: expiry and USB ---------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.scan_usb()
            except Exception:  # the watcher must survive anything a USB stick does
                log.exception("watch-list USB watcher")

    def _expire_loop(self) -> None:
        """Expiry on its own timer: nothing a USB stick does can keep an expired list in force."""
        while not self._stop.wait(min(self.poll, 1.0)):
            try:
                self.expire()
            except Exception:
                log.exception("watch-list expiry")

    def tick(self) -> None:
        """One round of both background jobs: purge an expired list, pick up new USB bundles."""
        self.expire()
        self.scan_usb()

    def expire(self) -> None:
        with self._lock:
            if self.header and _now() >= parse_time(self.header["not_after"]):
                self.purge("expired", ending="expired")

    def scan_usb(self) -> None:
        for path in self.usb_candidates():
            try:
                self._load_path(path, "usb", str(path.parent), skip_stored=True)
            except EdgeError as exc:
                log.warning("watch list %s from USB refused: %s", _short(path.name, 80), _short(exc, 300))

    def usb_candidates(self) -> list[Path]:
        """``*.wlb`` regular files on the watched mount points that are new or changed since the last look
        (symlinks and other non-regular files are skipped here, and refused again when opened)."""
        found = []
        for mount in self.cfg.watchlist.usb_mounts:
            try:
                with os.scandir(mount) as it:
                    names = sorted(e.name for _, e in zip(range(MAX_USB_LISTED), it, strict=False)
                                   if e.name.lower().endswith(".wlb"))
            except OSError:
                continue
            new = 0
            for name in names:
                if new >= MAX_USB_FILES:
                    break  # the rest next round: junk files first in the listing cannot hide a real list
                f = Path(mount) / name
                try:
                    st = os.lstat(f)
                except OSError:
                    continue
                key = (st.st_mode, st.st_size, st.st_mtime_ns)
                if self._seen.get(f) != key:
                    self._seen[f] = key
                    new += 1
                    if stat.S_ISREG(st.st_mode):
                        found.append(f)
                    else:
                        self._refused({"file": _short(f.name, 200), "arrived": "usb", "mount": _short(mount, 200)},
                                      BundleError(f"{_short(f.name, 80)} is not a regular file: refused"))
        return found

    def _stored_digest(self) -> str | None:
        try:
            return _file_digest(self.stored)
        except OSError:
            return None


def _file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file, read in blocks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def ends_with_deployment(h: dict) -> bool:
    """Does this list end with its deployment window? (the header says so; lists without the field do)."""
    return bool(h.get("ends_with_deployment", True))


def _provenance(e) -> list[dict]:
    """Each reference image's sha256, source system and date taken, as the bundle carries them."""
    out = []
    for img in getattr(e, "images", None) or getattr(e, "provenance", None) or []:
        get = img.get if isinstance(img, dict) else lambda k, o=img: getattr(o, k, "")
        out.append({k: str(get(k) or "") for k in ("sha256", "source", "taken")})
    return out


DETAIL_BUDGET = 150_000  # bytes of entry details in one watchlist_loaded record (a record is at most 256 KiB)
REFS_BUDGET = 150_000  # bytes of reference numbers in one audit record
REFS_PER_PART = 10_000  # and at most this many (the audit log takes lists of up to 20,000 items)


def _contents(wl) -> dict:
    """What the audit log says a list held: reference numbers, categories, and per entry its category,
    reason and images' provenance (never images), the details left out when they pass DETAIL_BUDGET."""
    details: list[dict[str, Any]] = []
    size = 0
    for e in wl.entries:
        d = {"ref": e.ref, "category": e.category, "reason": e.reason, "images": _provenance(e)}
        size += len(json.dumps(d)) + 1
        if size > DETAIL_BUDGET:
            break
        details.append(d)
    out: dict[str, Any] = {"refs": [e.ref for e in wl.entries], "categories": sorted({e.category for e in wl.entries})}
    if size <= DETAIL_BUDGET:  # all of them fit
        out["entry_details"] = details
    return out


def _ref_parts(refs: list[str]) -> list[list[str]]:
    """Reference numbers cut into parts that each fit one audit record."""
    parts: list[list[str]] = []
    cur: list[str] = []
    size = 0
    for r in refs:
        if cur and (size + len(r) + 4 > REFS_BUDGET or len(cur) >= REFS_PER_PART):
            parts.append(cur)
            cur, size = [], 0
        cur.append(r)
        size += len(r) + 4
    return parts + [cur] if cur or not parts else parts
