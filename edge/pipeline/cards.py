"""What an alert card shows beside the camera crop: the reference image of the template row that
matched, the wider view around the face, the entry's reason for inclusion and a few of its other
reference images (docs/alerts.md). A damaged stored bundle costs a picture, never the alert."""

from __future__ import annotations

import logging

from edge.alerts import messages
from edge.errors import EdgeError

log = logging.getLogger("edge")


def reference_image(wl, entry, probe) -> bytes:
    """The reference image of the template row that matched, read from the stored bundle (v2)."""
    if wl is None or probe is None:
        return entry.image_jpeg
    try:
        return wl.image(wl.matched_row(entry, probe))
    except (EdgeError, OSError) as exc:
        log.warning("reference image for %s not shown: %s", entry.ref, exc)
        return b""


def extras(msg: dict, wl, entry, probe, others: int = 3) -> dict:
    """The alert's optional card fields: the entry's reason for inclusion, the wider view around the
    face (memory only on the camera side, retained with the alert like the crop), and up to ``others``
    of the entry's other reference images."""
    extra: dict[str, str | list[str]] = {"listed_for": entry.reason, "context_jpeg": msg.get("context_jpeg") or ""}
    if wl is not None and probe is not None:
        try:
            matched = wl.matched_row(entry, probe)
            seen = {wl.image(matched)}
            imgs: list[str] = []
            for row in wl.rows_of(int(wl.owners[matched])) if matched >= 0 else []:
                img = wl.image(int(row)) if int(row) != matched else b""
                if img and img not in seen and len(imgs) < others:
                    seen.add(img)
                    imgs.append(messages.b64(img))
            extra["other_references_jpeg"] = imgs
        except (ValueError, EdgeError, OSError) as exc:
            log.warning("other reference images for %s not sent: %s", entry.ref, exc)
    return extra
