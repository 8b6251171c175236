"""How a list ends: purged on demand, expired, replaced, or its deployment ended; each time with a signed
deletion receipt, recorded in the audit log first (an on-demand purge that cannot be recorded does not
happen; an expiry or deployment-end purge happens regardless), and its USB copy deleted with its deployment."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from edge.alerts import messages
from edge.errors import EdgeError
from edge.files import write_atomic
from edge.watchlist import receipt
from edge.watchlist.fields import parse_time
from edge.watchlist.service import state
from edge.watchlist.service.files import file_digest, file_safe, short
from edge.watchlist.service.state import ListState, ends_with_deployment

log = logging.getLogger(__name__)


class Endings(ListState):
    def purge(self, reason: str = "on demand", ending: str = "purged") -> dict:
        """Wipe the stored bundle and the templates in memory; return a receipt signed by the box.

        The ``watchlist_purged`` record is written first. If it cannot be, an on-demand purge is
        refused (the list stays, and the operator is told why); an expiry or deployment-end purge goes
        ahead anyway: a list past its signed end must never be matched against."""
        reason = short(reason, 200)
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
                log.error("list %s ended (%s) without its audit record: %s", short(rc["list_id"], 80), ending,
                          short(exc, 200))
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
        log.info("watch list %s ended (%s): receipt %s", short(rc["list_id"], 80), reason, name)

    def _receipt(self, info: dict, reason: str, ending: str = "purged") -> dict:
        """Sign, record and store the deletion receipt of a list that has already ended (replaced)."""
        rc, name = self._sign_receipt(info, reason)
        self._record_end(rc, name, ending)
        self._store_receipt(rc, name, reason)
        return rc

    def deployment_ended(self, deployment_id: str, force: bool = False) -> dict | None:
        """A deployment window closed: a list that lives for that deployment is purged with a receipt, and
        its file on a writable USB mount is deleted (the deletion, or why not, recorded). ``force``: the
        deployment was stopped early (by command, a trust removal, a lapsed emergency use): even a list
        that outlives its deployment's time goes."""
        with self._lock:
            h = self.header or self._stored_header()
            if not h or h.get("deployment") != deployment_id or not (force or ends_with_deployment(h)):
                return None
            rc = self.purge(f"deployment {short(deployment_id, 80)} ended" + (" early" if force else ""),
                            ending="deployment ended")
            self._delete_usb_copy(h)
            self.ended_receipts.append(rc)
            return rc

    def take_receipts(self) -> list[dict]:
        """The receipts of lists ended with their deployment since the last call (for the command that
        ended it)."""
        out, self.ended_receipts = self.ended_receipts, []
        return out

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
        left = {"list_id": h["list_id"], "file": path.name, "mount": str(path.parent)}
        try:
            if not path.exists():
                self.record("watchlist_file_left", **left, reason="it is no longer on the mount (removed earlier)")
                return
            if file_digest(path) != digest:
                self.record("watchlist_file_left", **left, reason="it is no longer the list that was loaded "
                                                                  "(changed or replaced on the mount): left there")
                return
            path.unlink()
            self.record("watchlist_file_deleted", **left)
        except EdgeError:
            self.record("watchlist_file_left", **left, reason="it is no longer a regular file: left there")
        except OSError as exc:
            self.record("watchlist_file_left", list_id=h["list_id"], file=path.name, mount=str(path.parent),
                        reason=f"cannot delete it: {exc.strerror}")

    def expire(self) -> None:
        with self._lock:
            if self.header and state.now() >= parse_time(self.header["not_after"]):
                self.purge("expired", ending="expired")
