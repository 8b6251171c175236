"""USB pick-up: ``*.wlb`` regular files on the watched mount points, new or changed since the last look,
a bounded number per mount point and round (junk first in a listing cannot hide a real list)."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from edge.errors import EdgeError
from edge.watchlist.bundle import BundleError
from edge.watchlist.service.files import short
from edge.watchlist.service.load import Loading

log = logging.getLogger(__name__)

MAX_USB_FILES = 50  # new or changed *.wlb files opened per mount point and round
MAX_USB_LISTED = 10_000  # directory entries looked at per mount point and round


class Usb(Loading):
    def scan_usb(self) -> None:
        for path in self.usb_candidates():
            try:
                self._load_path(path, "usb", str(path.parent), skip_stored=True)
            except EdgeError as exc:
                log.warning("watch list %s from USB refused: %s", short(path.name, 80), short(exc, 300))

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
                        self._refused({"file": short(f.name, 200), "arrived": "usb", "mount": short(mount, 200)},
                                      BundleError(f"{short(f.name, 80)} is not a regular file: refused"))
        return found
