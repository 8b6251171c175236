"""The box side of signed watch lists: load, keep, expire, purge (with a signed receipt), USB pick-up.

A bundle goes through: signature by a registered issuer -> addressed to this box -> validity window
-> sequence (no rollback) -> policy -> decrypt -> every entry valid -> one atomic swap. Any failure
raises a one-line ``BundleError`` and the list in force stays in force. The decrypted list lives only
in memory; ``<state_dir>/watchlist/current.wlb`` keeps the still-encrypted bundle for the next start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from edge import identity as identity_mod
from edge.alerts import messages
from edge.errors import EdgeError
from edge.identity import write_atomic
from edge.watchlist import bundle, receipt
from edge.watchlist.base import Matcher, WatchList
from edge.watchlist.bundle import BundleError, parse_time

log = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(UTC)


def read_bundle_file(path) -> bytes:
    if not path or not isinstance(path, str | Path):
        raise EdgeError("no bundle file given")
    path = Path(path)
    try:
        if path.stat().st_size > bundle.MAX_FILE:
            raise BundleError(f"{path.name} is too large to be a watch-list bundle")
        return path.read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read {path}: {exc.strerror}") from None


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
        self._seen: dict[Path, tuple[int, int]] = {}

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._reload_stored()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="watchlist", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def commands(self) -> dict:
        return {
            "watchlist_load": lambda req: self.load(req.get("path") or "", via="cli"),
            "watchlist_purge": lambda req: {"receipt": self.purge(str(req.get("reason") or "on demand"))},
            "watchlist_status": lambda req: self.status(),
        }

    # --- checks -----------------------------------------------------------------------------

    def check(self, data: bytes, *, reload: bool = False) -> bundle.Parsed:
        """Everything that can be checked before decrypting; returns the verified bundle."""
        p = bundle.parse(data)
        h = bundle.verify(p, identity_mod.issuers(self.cfg.state_dir))
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
        return p

    def open(self, data: bytes, *, reload: bool = False) -> WatchList:
        """Check, decrypt and validate a bundle -> the in-memory list (nothing is stored or swapped)."""
        p = self.check(data, reload=reload)
        h = p.header
        entries, templates, owners = bundle.decode_entries(bundle.decrypt(p, self.identity.wl_key), h["entries"])
        return WatchList(list_id=h["list_id"], entries=entries, templates=templates, owners=owners,
                         issuer=h["issuer"], sequence=h["sequence"], not_after=parse_time(h["not_after"]),
                         threshold_floor=float(h["policy"]["threshold_floor"]),
                         meta={"header": h, "deployment": h["deployment"],
                               "retention_days": h["policy"]["retention_days"]})

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
        """Verify and load a bundle file; the list in force is replaced only if all of it is good.

        ``via``: how it arrived (``cli``, ``usb`` from ``mount``); the audit record says so.
        """
        data = read_bundle_file(path)
        arrival = {"file": Path(path).name, "arrived": via, **({"mount": str(mount)} if mount else {})}
        with self._lock:
            try:
                wl = self.open(data)
            except BundleError as exc:
                self.record("watchlist_refused", **arrival, reason=str(exc), **self._refused_issuer(data))
                self.publish(messages.event(box_id=self.cfg.box_id, event="watchlist_refused",
                                            file=Path(path).name, reason=str(exc)))
                raise
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            old = self.header
            write_atomic(self.stored, data, 0o600)
            self._save_sequence(wl.meta["header"])
            old_id = old["list_id"] if old else None
            self.header = wl.meta["header"]
            self._swap(wl)
            if old and old_id != self.header["list_id"]:  # the replaced list ends with a receipt too
                self._receipt(old, f"replaced by list {self.header['list_id']}", ending="replaced")
            self._remember_source(Path(path) if via == "usb" else None, data)
            summary = self.summary()
            self.record("watchlist_loaded", replaced=old_id, **arrival, bundle_sha256=hashlib.sha256(data).hexdigest(),
                        issuer_name=self._issuer_name(wl.issuer), **summary, **_contents(wl))
            self.publish(messages.event(box_id=self.cfg.box_id, event="watchlist_loaded", **summary))
            log.info("watch list %s loaded: %d entries from issuer %s", wl.list_id, len(wl), wl.issuer)
            return summary

    def _issuer_name(self, kid: str) -> str:
        """The issuer's name as the trust store has it (issuer.pub's label), or ""."""
        try:
            doc = json.loads((Path(self.cfg.state_dir) / "trust" / "issuers" / f"{kid}.pub").read_text())
            return str(doc.get("name", "")) if isinstance(doc, dict) else ""
        except (OSError, ValueError):
            return ""

    def _refused_issuer(self, data: bytes) -> dict:
        """The issuer key id and list id a refused bundle claims, if its framing can be read (unverified)."""
        try:
            p = bundle.parse(data)
        except EdgeError:
            return {}
        out = {"issuer": p.issuer, "issuer_name": self._issuer_name(p.issuer)}
        try:
            claimed = json.loads(p.header_bytes).get("list_id")
            if isinstance(claimed, str) and len(claimed) <= 64:
                out["claimed_list_id"] = claimed
        except (ValueError, AttributeError, RecursionError):
            pass
        return out

    def _header_of(self, data: bytes) -> dict:
        p = bundle.parse(data)
        return bundle.verify(p, identity_mod.issuers(self.cfg.state_dir))

    def _swap(self, wl: WatchList | None) -> None:
        if self.matcher is None:
            return
        old = self.matcher.swap(wl)
        if old is not None and old is not wl:
            old.wipe()

    def purge(self, reason: str = "on demand", ending: str = "purged") -> dict:
        """Wipe the stored bundle and the templates in memory; return a receipt signed by the box."""
        with self._lock:
            h = self.header or self._stored_header()
            wl = self.matcher.current if self.matcher else None
            if h is None and wl is None:
                raise EdgeError("no watch list is loaded or stored on this box")
            self._swap(None)
            self._shred(self.stored)
            self.header = None
            info = h or {"list_id": wl.list_id, "issuer": wl.issuer, "deployment": "", "sequence": 0,
                         "entries": len(wl)}
            if h:
                self._save_sequence(h, purged=True)
            return self._receipt(info, reason, ending=ending)

    def _receipt(self, info: dict, reason: str, ending: str = "purged") -> dict:
        """Sign, store and record the deletion receipt of a list that ended (purged, replaced, expired)."""
        rc = receipt.make(self.identity, list_id=info["list_id"], issuer=info["issuer"],
                          deployment=info["deployment"], sequence=info["sequence"],
                          entries=info["entries"], reason=reason)
        rdir = self.dir / "receipts"
        rdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = f"{rc['time'].replace(':', '')}-{rc['list_id']}.json"
        write_atomic(rdir / name, json.dumps(rc, indent=1).encode(), 0o600)
        self.record("watchlist_purged", **{k: rc[k] for k in receipt.FIELDS}, ending=ending, receipt_file=name,
                    receipt_signature=rc["signature"])
        self.publish(messages.event(box_id=self.cfg.box_id, event="watchlist_purged",
                                    list_id=rc["list_id"], entries=rc["entries"], reason=reason))
        log.info("watch list %s ended (%s): receipt %s", rc["list_id"], reason, name)
        return rc

    def deployment_ended(self, deployment_id: str) -> dict | None:
        """A deployment window closed: a list that lives for that deployment is purged with a receipt, and
        its file on a writable USB mount is deleted (the deletion, or why not, recorded)."""
        with self._lock:
            h = self.header or self._stored_header()
            if not h or h.get("deployment") != deployment_id or not ends_with_deployment(h):
                return None
            rc = self.purge(f"deployment {deployment_id} ended", ending="deployment ended")
            self._delete_usb_copy(h)
            return rc

    def _remember_source(self, path: Path | None, data: bytes) -> None:
        """Where the list in force came from on USB (to delete that file when its deployment ends)."""
        src = self.dir / "source.json"
        if path is None:
            src.unlink(missing_ok=True)
            return
        doc = {"path": str(path.resolve()), "sha256": hashlib.sha256(data).hexdigest()}
        write_atomic(src, json.dumps(doc).encode(), 0o600)

    def _delete_usb_copy(self, h: dict) -> None:
        try:
            doc = json.loads((self.dir / "source.json").read_text())
            path, digest = Path(doc["path"]), doc["sha256"]
            (self.dir / "source.json").unlink()
        except (OSError, ValueError, KeyError, TypeError):
            return
        try:
            if not path.exists() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                return
            path.unlink()
            self.record("watchlist_file_deleted", list_id=h["list_id"], file=path.name, mount=str(path.parent))
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
        if not self.stored.exists():
            return None
        try:
            return self._header_of(self.stored.read_bytes())
        except (OSError, EdgeError):
            return None

    def _reload_stored(self) -> None:
        """At start: bring back the stored list; purge it if it expired while the box was off."""
        if not self.stored.exists():
            return
        data = self.stored.read_bytes()
        try:
            wl = self.open(data, reload=True)
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
            self.header = wl.meta["header"]
            self._swap(wl)
        self.record("watchlist_loaded", at_start=True, arrived="daemon", file=self.stored.name,
                    issuer_name=self._issuer_name(wl.issuer), **self.summary(), **_contents(wl))

    # --- status -----------------------------------------------------------------------------

    def summary(self) -> dict:
        h = self.header or self._stored_header()
        if h is None:
            return {"list_id": None}
        left = (parse_time(h["not_after"]) - _now()).total_seconds()
        return {"list_id": h["list_id"], "issuer": h["issuer"], "deployment": h["deployment"],
                "entries": h["entries"], "sequence": h["sequence"], "not_after": h["not_after"],
                "expires_in_s": int(left), "threshold_floor": h["policy"]["threshold_floor"]}

    def status(self) -> dict:
        wl = self.matcher.current if self.matcher else None
        return dict(self.summary(), in_memory=wl is not None and wl.list_id == (self.header or {}).get("list_id"),
                    stored=self.stored.exists())

    # --- background: expiry and USB ---------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.tick()
            except Exception:  # the watcher must survive anything a USB stick does
                log.exception("watch-list watcher")

    def tick(self) -> None:
        """One round of the background thread: purge an expired list, pick up new USB bundles."""
        with self._lock:
            if self.header and _now() >= parse_time(self.header["not_after"]):
                self.purge("expired", ending="expired")
        for path in self.usb_candidates():
            try:
                if self.stored.exists() and self._same_as_stored(path):
                    continue
                self.load(path, via="usb", mount=str(path.parent))
            except EdgeError as exc:
                log.warning("watch list %s from USB refused: %s", path.name, exc)

    def usb_candidates(self) -> list[Path]:
        """``*.wlb`` files on the watched mount points that are new or changed since the last look."""
        found = []
        for mount in self.cfg.watchlist.usb_mounts:
            try:
                files = sorted(Path(mount).glob("*.wlb"))
            except OSError:
                continue
            for f in files:
                try:
                    st = f.stat()
                except OSError:
                    continue
                key = (st.st_size, st.st_mtime_ns)
                if self._seen.get(f) != key:
                    self._seen[f] = key
                    found.append(f)
        return found

    def _same_as_stored(self, path: Path) -> bool:
        digest = lambda p: hashlib.sha256(p.read_bytes()).digest()
        return path.stat().st_size == self.stored.stat().st_size and digest(path) == digest(self.stored)


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


def _contents(wl) -> dict:
    """What the audit log says a list held: reference numbers, categories, and per entry its category,
    reason and images' provenance (never images). Big lists' details go in watchlist_entries records."""
    details = [{"ref": e.ref, "category": e.category, "reason": e.reason, "images": _provenance(e)}
               for e in wl.entries]
    out = {"refs": [e.ref for e in wl.entries], "categories": sorted({e.category for e in wl.entries})}
    if len(json.dumps(details)) <= DETAIL_BUDGET:
        out["entry_details"] = details
    return out
