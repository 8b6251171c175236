"""The list in force and what the box keeps about it: the stored bundle's header, the sequence record per
issuer (no rollback), where it came from, its summary and status."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

from edge import identity as identity_mod
from edge.errors import EdgeError
from edge.files import write_atomic
from edge.watchlist import reader
from edge.watchlist.base import Matcher, WatchList
from edge.watchlist.bundle import BundleError
from edge.watchlist.fields import parse_time
from edge.watchlist.service.files import MALFORMED, file_digest, file_safe, open_bundle_file, short


def now() -> datetime:
    return datetime.now(UTC)


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


def ends_with_deployment(h: dict) -> bool:
    """Does this list end with its deployment window? (the header says so; lists without the field do)."""
    return bool(h.get("ends_with_deployment", True))


class ListState:
    """What every part of the service shares: the configuration, the box identity, the matcher, the audit
    ``record`` and ``publish`` callbacks, the state folder and the header of the list in force."""

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
        self.ended_receipts: list[dict] = []  # receipts of lists ended with their deployment (take_receipts)

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

    def _logged_sequences(self) -> dict:
        """Each issuer's last list as the audit log tells it ({issuer: {sequence, list_id, purged}}): a sequence
        record deleted or put back to an older copy cannot let an older or ended list load again."""
        out: dict[str, dict] = {}
        try:
            f = open(Path(self.cfg.state_dir) / "audit" / "audit.log", "rb")  # noqa: SIM115
        except OSError:
            return out
        with f:
            for line in f:
                if b'"watchlist_' not in line:
                    continue
                try:
                    rec = json.loads(line)
                    kind, d = rec["kind"], rec["data"]
                    issuer, lid = str(d["issuer"]), str(d["list_id"])
                except (ValueError, KeyError, TypeError, RecursionError):
                    continue
                last = out.get(issuer)
                if kind == "watchlist_loaded" and isinstance(d.get("sequence"), int) \
                        and (last is None or d["sequence"] >= last["sequence"]):
                    out[issuer] = {"sequence": d["sequence"], "list_id": lid, "purged": False}
                elif kind == "watchlist_purged" and last is not None and last["list_id"] == lid:
                    last["purged"] = True
        return out

    def _check_sequence(self, h: dict, reload: bool) -> None:
        last = self._sequences().get(h["issuer"])
        logged = self._logged_sequences().get(h["issuer"])
        if logged and (not last or logged["sequence"] > last["sequence"]
                       or logged["sequence"] == last["sequence"] and logged["list_id"] == last["list_id"]
                       and logged["purged"]):
            last = logged
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

    def _issuer_name(self, kid: str) -> str:
        """The issuer's name as the trust store has it (issuer.pub's label), or ""."""
        try:
            doc = json.loads((Path(self.cfg.state_dir) / "trust" / "issuers" / f"{file_safe(kid)}.pub").read_text())
            return short(doc.get("name", ""), 200) if isinstance(doc, dict) else ""
        except (OSError, ValueError, RecursionError):
            return ""

    def _swap(self, wl: WatchList | None) -> None:
        if self.matcher is None:
            return
        old = self.matcher.swap(wl)
        if old is not None and old is not wl:
            old.wipe()

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

    def _stored_digest(self) -> str | None:
        try:
            return file_digest(self.stored)
        except (OSError, EdgeError):
            return None


    # --- status -----------------------------------------------------------------------------

    def summary(self) -> dict:
        return self._summary(self.header or self._stored_header())

    @staticmethod
    def _summary(h: dict | None) -> dict:
        if h is None:
            return {"list_id": None}
        left = (parse_time(h["not_after"]) - now()).total_seconds()
        return {"list_id": h["list_id"], "issuer": h["issuer"], "deployment": h["deployment"],
                "entries": h["entries"], "sequence": h["sequence"], "not_after": h["not_after"],
                "expires_in_s": int(left), "threshold_floor": h["policy"]["threshold_floor"]}

    def status(self) -> dict:
        wl = self.matcher.current if self.matcher else None
        in_memory = wl is not None and wl.list_id == (self.header or {}).get("list_id")
        models = {"model": wl.model, "templates_from": wl.meta.get("templates_from", wl.model)} \
            if wl is not None and in_memory else {}
        return dict(self.summary(), in_memory=in_memory, stored=self.stored.exists(), **models,
                    operating=wl.operating.to_json() if wl is not None and in_memory and wl.operating is not None
                    else None)
