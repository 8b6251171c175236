"""A list made by another face model, matched by this box's: its templates computed again from its signed
reference images, by the box's own model, when it loads.

Templates of one model mean nothing to another, and are never compared with its descriptors. A list built
for another model (a list made before models were named is dlib's) still carries the reference images its
issuer signed, one per template row (version 2) or one per entry (version 1): the box detects, aligns and
encodes each with its own model, and matches on those. The issuer's quality gate already passed these
images, so only a face is needed; an entry none of whose images gives one is refused in one sentence (the
list then stays out, with the list in force kept). Cost: about 21 ms of CPU an image (105 lfw-dev reference
crops made by ``enrol build``, all re-encoded; 1,000 images ~21 s), paid once per load; ``enrol build`` for the
box's model (box.pub.json) avoids it.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.face import api
from edge.face import model as face_model
from edge.watchlist.base import WatchList
from edge.watchlist.bundle import BundleError

BATCH = 32  # chips encoded together


def _images(wl: WatchList) -> list[tuple[int, int, bytes]]:
    """(entry, image number or -1, JPEG) of every reference image the list holds."""
    if wl.image_store is not None and wl.row_images is not None:
        owners = np.repeat(np.arange(len(wl.entries)), [len(e.images) for e in wl.entries])
        return [(int(owners[i]), i, wl.image_store.read(i)) for i in range(len(owners))]
    return [(k, -1, e.image_jpeg) for k, e in enumerate(wl.entries) if e.image_jpeg]


def _chip(m: face_model.FaceModel, jpeg: bytes) -> np.ndarray | None:
    """The aligned chip of the largest face in a reference image (a face crop: padded so that a detector
    trained on whole scenes sees its edges), or None."""
    if not jpeg:
        return None
    try:
        rgb = api.decode_image(jpeg, "a reference image")
    except EdgeError:
        return None
    pad = max(rgb.shape[:2]) // 4
    rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    faces = m.find(rgb)
    if not faces:
        return None
    face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[1] - f.box[3]))
    chip, _ = m.prepare(rgb, face, m.gate(0, 0.0, 1.0))
    return chip


def for_model(wl: WatchList, m: face_model.FaceModel) -> WatchList:
    """``wl`` with its templates made again by ``m`` from its reference images (the same list if already ``m``'s)."""
    if wl.model == m.id:
        return wl
    rows, owners, row_images = [], [], []
    chips: list[np.ndarray] = []
    for entry, image, jpeg in _images(wl):
        chip = _chip(m, jpeg)
        if chip is None:
            continue
        chips.append(chip)
        owners.append(entry)
        row_images.append(image)
        if len(chips) == BATCH:
            rows.append(m.encode(chips))
            chips = []
    if chips:
        rows.append(m.encode(chips))
    missing = sorted(set(range(len(wl.entries))) - set(owners))
    if missing:
        refs = ", ".join(wl.entries[k].ref for k in missing[:3]) + (" …" if len(missing) > 3 else "")
        raise BundleError(f"this list was made by face model {wl.model} and {len(missing)} of its entries ({refs}) "
                          f"have no reference image in which this box's model {m.id} finds a face: rebuild it "
                          "with 'enrol build' for this box")
    templates = np.concatenate(rows) if rows else np.zeros((0, m.dim), np.float32)
    out = WatchList(list_id=wl.list_id, entries=wl.entries, templates=templates, owners=np.asarray(owners),
                    issuer=wl.issuer, sequence=wl.sequence, not_after=wl.not_after,
                    threshold_floor=None, meta=dict(wl.meta, templates_from=wl.model),
                    row_images=np.asarray(row_images, np.int32) if wl.row_images is not None else None,
                    image_store=wl.image_store, operating=wl.operating, model=m.id)
    wl.templates.fill(0)  # the other model's templates are let go, overwritten like a purged list's
    return out
