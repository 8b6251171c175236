"""Loading a list: signature by a registered issuer -> addressed to this box -> validity window -> sequence
(no rollback) -> policy -> decrypt -> every entry valid -> the ``watchlist_loaded`` audit record -> stored
-> one atomic swap. Any failure raises a one-line ``EdgeError``, is itself audited (``watchlist_refused``),
and the list in force stays in force. Also the list brought back from the state folder at start."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from edge import deployment
from edge import identity as identity_mod
from edge.alerts import messages
from edge.errors import EdgeError
from edge.face import model as face_model
from edge.files import write_atomic
from edge.watchlist import bundle, operating, reader, reencode
from edge.watchlist.base import WatchList
from edge.watchlist.bundle import BundleError
from edge.watchlist.fields import parse_time
from edge.watchlist.service import state
from edge.watchlist.service.endings import Endings
from edge.watchlist.service.files import MALFORMED, open_bundle_file, short, stage_bundle_file
from edge.watchlist.stream import Source

log = logging.getLogger(__name__)


class Loading(Endings):
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
        now, nb, na = state.now(), parse_time(h["not_before"]), parse_time(h["not_after"])
        if now < nb:
            raise BundleError(f"the list is not valid before {h['not_before']}")
        if now >= na:
            raise BundleError(f"the list expired at {h['not_after']}")
        self._check_sequence(h, reload)
        bundle.check_policy(h)
        # a list of the box's own model is held to its signed floor and operating point; one of another model
        # is matched on templates the box makes from its images (reencode.py), at a point derived for them
        same = reader.model_of(c).id == self.face_model.id
        threshold = self.matcher.threshold if self.matcher else face_model.cap(self.cfg)
        if same and threshold > h["policy"]["threshold_floor"]:
            raise BundleError(f"this box matches at distance {threshold}, more lenient than the list's "
                              f"threshold floor {h['policy']['threshold_floor']}: lower match.threshold")
        op = self.operating_point(h, same)  # refused here, before decrypting, if it breaks the list's own policy
        return c, op

    @property
    def face_model(self) -> face_model.FaceModel:
        """The face model this box runs (config ``model``): the one every list in force is matched by."""
        return face_model.get(self.cfg.model)

    def operating_point(self, h: dict, same_model: bool = True) -> operating.OperatingPoint:
        """How this list will be matched: its signed operating point re-checked, or one derived for it (and
        always derived, for the model matching, when the list was made by another model)."""
        m = self.cfg.match
        cap = self.matcher.threshold if self.matcher else face_model.cap(self.cfg)
        if same_model:
            cap = min(cap, float(h["policy"]["threshold_floor"]))
        signed = h["policy"].get("target_fpir")
        ok = isinstance(signed, int | float) and not isinstance(signed, bool) and 0.0 < signed < 1.0
        target = min(m.target_fpir, float(signed)) if ok else m.target_fpir
        cal = operating.load_calibration(m.calibration or None, self.face_model.id)
        op, problem = operating.for_list(cal, int(h["entries"]), cap, target, m.rule,
                                         h.get("operating") if same_model else None)
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
            wl = reencode.for_model(reader.open_list(c, self.identity.wl_key), self.face_model)
            wl.operating = op
        except MALFORMED as exc:
            src.close()
            raise BundleError(f"the bundle is malformed ({exc.__class__.__name__}): refused") from None
        except BaseException:
            src.close()
            raise
        if wl.image_store is None:
            src.close()  # version 1: everything is in memory now
        elif not reload:  # each reference image against its signed SHA-256 now, not first when a console asks
            try:
                for i in range(len(wl.image_store)):
                    wl.image_store.read(i)
            except BaseException:
                wl.wipe()
                raise
        return wl

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
        name = short(Path(path).name if isinstance(path, str | Path) and path else "", 200)
        arrival = {"file": name, "arrived": via, **({"mount": short(mount, 200)} if mount else {})}
        staged = self.dir / ".incoming.wlb"
        with self._lock:
            try:
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                digest, known = stage_bundle_file(path, staged,  # framing and signature checked before copying
                                                  issuers=identity_mod.issuers(self.cfg.state_dir))
                if skip_stored and digest == self._stored_digest():
                    return None
                return self._load_staged(staged, digest, arrival, source=Path(path) if via == "usb" else None,
                                         known=known)
            except EdgeError as exc:  # refused before staging (framing, signature): what the file itself claims
                self._refused(arrival, exc, Path(path) if isinstance(path, str | Path) and path else staged)
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
            try:
                self.authorised(h, digest)
            except EdgeError:
                wl.wipe()
                raise
            summary = self._summary(h)
            old = self.header or self._stored_header()  # the daemon stopped: the stored list is replaced too
            old_id = old["list_id"] if old else None
            try:
                try:
                    self.record("watchlist_loaded", replaced=old_id, **arrival, bundle_sha256=digest,
                                issuer_name=self._issuer_name(wl.issuer), **summary, **self._contents(wl),
                                **self._models(wl))
                except EdgeError as exc:
                    raise BundleError(f"the list cannot be recorded in the audit log ({exc}), "
                                      "so it is not put in force") from None
                os.replace(staged, self.stored)  # a version-2 list keeps reading its images from this file
                if old and old_id != h["list_id"] and old["issuer"] != h["issuer"]:
                    self._save_sequence(old, purged=True)  # never loaded again, whoever signed its successor
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
                    self._receipt(old, f"replaced by list {short(h['list_id'], 80)}", ending="replaced")
                except EdgeError as exc:
                    log.error("the receipt of replaced list %s failed: %s", short(old_id, 80), short(exc, 200))
            self._remember_source(source, digest)
            self.publish(messages.event(box_id=self.cfg.box_id, event="watchlist_loaded", **summary))
            log.info("watch list %s loaded: %d entries from issuer %s", short(wl.list_id, 80), len(wl),
                     wl.issuer)
            return summary

    def authorised(self, h: dict, digest: str) -> None:
        """Where matching needs a deployment window (``[deployment] required``): the list is put in force only
        under a window on this box for its own deployment, by its issuer, naming its id and SHA-256."""
        if self.cfg.deployment.required:
            deployment.authorising(self.cfg.state_dir, h, digest, state.now(),
                                   self.cfg.deployment.require_authority_ref)

    @staticmethod
    def _models(wl: WatchList) -> dict:
        """The face model matching the list (``model``: id, weights), and the one that made its signed templates
        when the box made its own from the reference images (``templates_from``)."""
        out: dict[str, Any] = {"model": face_model.get(wl.model).ref()}
        if wl.meta.get("templates_from"):
            out["templates_from"] = wl.meta["templates_from"]
        return out

    def _refused(self, arrival: dict, exc: Exception, data: bytes | Path = b"") -> None:
        """Audit and announce a refusal; a refusal that cannot be recorded is still refused."""
        reason = short(exc)
        try:
            self.record("watchlist_refused", **arrival, reason=reason, **self._refused_issuer(data))
        except Exception as rec_exc:  # noqa: BLE001 - the refusal stands whatever the log says
            log.error("could not record the refusal of %s: %s", arrival.get("file"), short(rec_exc, 200))
        try:
            self.publish(messages.event(box_id=self.cfg.box_id, event="watchlist_refused",
                                        file=arrival.get("file", ""), reason=reason))
        except Exception as pub_exc:  # noqa: BLE001
            log.error("could not announce the refusal of %s: %s", arrival.get("file"), short(pub_exc, 200))

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
        try:  # which file it was: what `enrol reconcile` matches a refusal against the issued bundle by
            if size > bundle.MAX_FILE:
                pass  # no bundle is that large: not read through (a stick's huge file)
            elif isinstance(data, Path):
                with open(data, "rb") as f:
                    out["bundle_sha256"] = hashlib.file_digest(f, "sha256").hexdigest()
            else:
                out["bundle_sha256"] = hashlib.sha256(data).hexdigest()
        except OSError:
            pass
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

    def _reload_stored(self) -> None:
        """At start: bring back the stored list; purge it if it expired while the box was off."""
        if not self.stored.exists():
            return
        try:
            wl = self.open(self.stored, reload=True)
        except EdgeError as exc:
            h = self._stored_header()
            try:
                if h and state.now() >= parse_time(h["not_after"]):
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
