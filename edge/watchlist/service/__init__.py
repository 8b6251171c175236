"""The box side of signed watch lists: load, keep, expire, purge (with a signed receipt), USB pick-up.

One concern per module, each a layer of the one service class (``WatchlistService``), bottom up:
``files`` (bundle files from users and USB sticks: bounded, staged), ``state`` (the list in force, its
sequence record, status), ``endings`` (purge, expiry, deployment end, receipts), ``load`` (check, decrypt,
record, store, swap), ``usb`` (the USB watcher), and here the lifecycle (the two background threads).

Every change of what the box matches against is recorded first and applied after: a list whose record
cannot be written is refused. The decrypted list lives only in memory; ``<state_dir>/watchlist/current.wlb``
keeps the still-encrypted bundle for the next start, and a version-2 list reads its reference images from
it, one per alert. Expiry runs on its own timer thread, apart from USB scanning.
"""

from __future__ import annotations

import logging
import threading

from edge.watchlist.service.files import file_safe, open_bundle_file, stage_bundle_file
from edge.watchlist.service.state import ends_with_deployment, stored_header
from edge.watchlist.service.usb import Usb

__all__ = ["WatchlistService", "ends_with_deployment", "file_safe", "open_bundle_file", "stage_bundle_file",
           "stored_header"]

log = logging.getLogger(__name__)


class WatchlistService(Usb):
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
