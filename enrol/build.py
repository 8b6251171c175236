"""Turn a refs.csv and a folder of reference images into watch-list entries, the box's way.

Detection, the quality gate and encoding are the box's own face model's (``edge.face.model``, the one the
box declares in its ``box.pub.json``): a template made here is the same as one the box makes from a camera
frame. Every image that cannot
serve (unreadable, no face, several faces, too small, blurred, turned) is reported and left out.

refs.csv (UTF-8, header row required)::

    ref,category,reason,images,source,taken
    PN-2026-0001,wanted,Warrant 44/2026 (robbery),pn0001_a.jpg;pn0001_b.jpg,PNC;custody suite 3,2026-01-04;2025-06-30

``images`` (or ``image``) lists file names relative to ``--images``, separated by ``;``. The optional
``source`` (or ``sources``: the system each image came from, at most 100 characters) and ``taken``
(the date each was taken, YYYY-MM-DD) give one value per image in the same order, or one value for all
of the row's images; they travel in the bundle as each image's provenance. Any other column is an error
(a typo such as ``sorce`` would silently lose the provenance), and every row needs a reason. Problems name
the file as given (``people.csv line 7: ...``).
"""

from __future__ import annotations

import contextlib
import csv
import multiprocessing as mp
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.face import api, model
from edge.files import read_text
from edge.watchlist.base import CATEGORIES, Entry
from edge.watchlist.bundle_v2 import Item, RefImage
from edge.watchlist.fields import MAX_SOURCE, REF_RE, valid_date

COLUMNS = ("ref", "category", "reason", "images", "image", "source", "sources", "taken")  # refs.csv's header
CROP_MAX_PX = 320


@dataclass
class Row:
    line: int
    ref: str
    category: str
    reason: str
    images: list[str]
    sources: list[str] = field(default_factory=list)  # one per image ("" if not given)
    taken: list[str] = field(default_factory=list)  # one per image, YYYY-MM-DD or ""


@dataclass
class Result:
    entries: list[Entry] = field(default_factory=list)
    templates: list[np.ndarray] = field(default_factory=list)
    images: list[list[RefImage]] = field(default_factory=list)  # per entry: the image of each template row
    names: list[list[str]] = field(default_factory=list)  # per entry: the file name of each template row
    problems: list[str] = field(default_factory=list)  # one line each: "<file or row>: <why>"
    images_used: int = 0
    images_total: int = 0
    model: str = model.DLIB  # the face model that made the templates


def normalise_category(text: str) -> str | None:
    c = " ".join(text.strip().lower().replace("_", " ").replace("-", " ").split())
    return c if c in CATEGORIES else None


def read_refs(path) -> tuple[list[Row], list[str]]:
    """Parse refs.csv -> (good rows, problems). A file without the needed columns is an EdgeError."""
    text = read_text(path, "refs.csv file", 256 << 20, encoding="utf-8-sig")
    reader = csv.DictReader(text.splitlines())
    cols = {c.strip().lower(): c for c in reader.fieldnames or []}
    img_col = cols.get("images") or cols.get("image")
    missing = [c for c in ("ref", "category", "reason") if c not in cols] + ([] if img_col else ["images"])
    if missing:
        raise EdgeError(f"{path} needs the columns ref,category,reason,images (missing: {', '.join(missing)})")
    unknown = [c for c in cols if c not in COLUMNS]
    if unknown:
        raise EdgeError(f"{Path(path).name} has an unknown column {cols[unknown[0]]!r} (the columns are "
                        f"{', '.join(COLUMNS)}): fix its header, or the values under it would be lost")
    src_col, taken_col = cols.get("source") or cols.get("sources"), cols.get("taken")
    rows, problems, seen = [], [], set()
    for n, rec in enumerate(reader, start=2):
        ref = (rec.get(cols["ref"]) or "").strip()
        cat = normalise_category(rec.get(cols["category"]) or "")
        images = [s.strip() for s in (rec.get(img_col) or "").split(";") if s.strip()]
        reason = (rec.get(cols["reason"]) or "").strip()
        sources = _per_image(rec.get(src_col) if src_col else "", len(images))
        taken = _per_image(rec.get(taken_col) if taken_col else "", len(images))
        why = ("reference must be 1-64 letters, digits or / _ . : -" if not REF_RE.fullmatch(ref)
               else f"reference {ref} appears twice" if ref in seen
               else f"category must be one of {', '.join(CATEGORIES)}" if cat is None
               else "a reason is required (why this person is on the list)" if not reason
               else "reason must be at most 500 characters" if len(reason) > 500
               else "no image listed" if not images
               else "source needs one value per image (separated by ;) or one for all" if sources is None
               else f"each source must be at most {MAX_SOURCE} characters" if any(len(x) > MAX_SOURCE for x in sources)
               else "taken needs one date per image (separated by ;) or one for all" if taken is None
               else "taken must be dates like 2026-03-01" if any(x and not valid_date(x) for x in taken)
               else "")
        if why or cat is None or sources is None or taken is None:  # each of those has its why
            problems.append(f"{Path(path).name} line {n}: {why}")
            continue
        seen.add(ref)
        rows.append(Row(n, ref, cat, reason, images, sources, taken))
    return rows, problems


def _per_image(cell: str | None, n: int) -> list[str] | None:
    """A ;-separated cell -> one value per image (a single value applies to all); None if it does not fit."""
    vals = [v.strip() for v in (cell or "").split(";")]
    if vals == [""]:
        return [""] * n
    if len(vals) == 1:
        return vals * n
    return vals if len(vals) == n else None


def encode_image(path: Path, q, model_id: str = model.DLIB) -> tuple[np.ndarray, bytes]:
    """One reference image -> (template of the model, JPEG face crop); EdgeError naming the problem."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read the file ({exc.strerror})") from None
    rgb = api.decode_image(data, "the file")
    m = model.get(model_id)
    faces = m.find(rgb)
    if not faces:
        raise EdgeError("no face found")
    if len(faces) > 1:
        raise EdgeError(f"{len(faces)} faces found, expected one")
    box = faces[0].box
    g = m.gate(q.min_face_px, q.min_sharpness, q.max_yaw)
    chip, qual = m.prepare(rgb, faces[0], g)
    if not qual.ok:
        why = {"small": f"face too small ({qual.height} px, need {g.min_face_px})",
               "blurred": f"face too blurred (sharpness {qual.sharpness:.0f}, need {g.min_sharpness:.0f})",
               "turned": f"face turned too far (yaw {qual.yaw:.2f}, at most {g.max_yaw})"}
        raise EdgeError(why.get(qual.reason, qual.reason))
    face = api.crop(rgb, box, margin=0.4)
    if face.shape[0] > CROP_MAX_PX:  # the operator's reference picture: enough to compare, not more
        scale = CROP_MAX_PX / face.shape[0]
        face = cv2.resize(face, (max(1, round(face.shape[1] * scale)), CROP_MAX_PX), interpolation=cv2.INTER_AREA)
    return m.encode([chip])[0], api.jpeg(face)


def _encode_job(args) -> tuple[tuple[np.ndarray, bytes] | None, str]:
    try:
        return encode_image(*args), ""
    except EdgeError as exc:
        return None, str(exc)


def build_entries(rows: list[Row], images_dir, q, progress: Callable[..., Iterable] = lambda it, total: it,
                  jobs: int = 1, model_id: str = model.DLIB) -> Result:
    """Detect and encode every listed image by the face model (in ``jobs`` processes); an entry keeps the
    images that passed (at least one)."""
    images_dir = Path(images_dir)
    res = Result(images_total=sum(len(r.images) for r in rows), model=model_id)
    work = [(r, name, k) for r in rows for k, name in enumerate(r.images)]
    args = [(images_dir / name, q, model_id) for _, name, _ in work]
    good: dict[str, list[tuple[np.ndarray, bytes, int]]] = {}
    with contextlib.ExitStack() as stack:
        if jobs > 1 and len(work) > 1:
            pool = stack.enter_context(ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn")))
            results = pool.map(_encode_job, args, chunksize=4)
        else:
            results = map(_encode_job, args)
        for (row, name, k), (found, problem) in progress(zip(work, results, strict=True), len(work)):
            if found is None:
                res.problems.append(f"{name} ({row.ref}): {problem}")
            else:
                good.setdefault(row.ref, []).append((*found, k))
    for row in rows:
        found = good.get(row.ref, [])
        if not found:
            res.problems.append(f"{row.ref}: left out, none of its images could be used")
            continue
        res.entries.append(Entry(ref=row.ref, category=row.category, reason=row.reason, image_jpeg=found[0][1]))
        res.templates.append(np.stack([t for t, _, _ in found]))
        res.images.append([RefImage(jpeg, _at(row.sources, k), _at(row.taken, k)) for _, jpeg, k in found])
        res.names.append([row.images[k] for _, _, k in found])
        res.images_used += len(found)
    return res


def _at(values: list[str], k: int) -> str:
    return values[k] if k < len(values) else ""


def items(res: Result) -> list[Item]:
    """The entries of a build as bundle items: each template row with the image it was made from."""
    return [Item(e.ref, e.category, e.reason, t, imgs)
            for e, t, imgs in zip(res.entries, res.templates, res.images, strict=True)]


def list_warnings(res: Result, images_dir) -> list[str]:
    """The warnings of a build (see ``check_list``), each image by the SHA-256 of its file."""
    import hashlib

    images_dir = Path(images_dir)

    def sha(name):
        try:
            return hashlib.sha256((images_dir / name).read_bytes()).hexdigest()
        except OSError:
            return name
    return check_list([(e.ref, [(n, sha(n), t) for n, t in zip(names, tmpl, strict=True)])
                       for e, names, tmpl in zip(res.entries, res.names, res.templates, strict=True)], res.model)


def check_list(refs: list[tuple[str, list[tuple[str, str, np.ndarray]]]], model_id: str = model.DLIB) -> list[str]:
    """[(ref, [(file name, sha256, descriptor)])] -> one line per problem: a reference whose images look
    like different people (farther than the model's ``same_person``), and an image under two references that
    is the same file (same SHA-256) or the same face (nearer than ``same_face``). Matrix products in blocks:
    10,000 images check in seconds. (dlib: one person's photos lie well under 0.6 apart, the bundled samples
    0.35-0.52, two people's over it, 0.7-0.96, the same photo re-saved under 0.1.)"""
    m = model.get(model_id)
    mixed, same = m.same_person, m.same_face
    out = []
    for ref, imgs in refs:
        for i, (n1, _, d1) in enumerate(imgs):
            for n2, _, d2 in imgs[i + 1:]:
                dist = float(np.linalg.norm(np.asarray(d1) - np.asarray(d2)))
                if dist > mixed:
                    out.append(f"{ref}: {n1} and {n2} look like different people (distance {dist:.2f})")
    flat = [(r, ref, n, h) for r, (ref, imgs) in enumerate(refs) for n, h, _ in imgs]
    if not flat:
        return out
    desc = np.stack([np.asarray(d, np.float32).reshape(m.dim) for _, imgs in refs for _, _, d in imgs])
    owner = np.array([r for r, *_ in flat])
    sq = (desc * desc).sum(1)
    pairs: dict[tuple[int, int], str] = {}
    by_hash: dict[str, int] = {}
    for j, (r, _, _, h) in enumerate(flat):
        i = by_hash.setdefault(h, j)
        if i != j and flat[i][0] != r:
            pairs[(i, j)] = "image"
    for start in range(0, len(flat), 1024):
        block = desc[start:start + 1024]
        d2 = np.maximum(sq[start:start + 1024, None] + sq[None, :] - 2 * block @ desc.T, 0)
        for a, b in zip(*np.nonzero(d2 < same ** 2), strict=True):
            i, j = start + int(a), int(b)
            if i < j and owner[i] != owner[j]:
                pairs.setdefault((i, j), "face")
    for i, j in sorted(pairs, key=lambda p: (owner[p[0]], owner[p[1]], p)):
        (_, ref1, n1, _), (_, ref2, n2, _) = flat[i], flat[j]
        if pairs[(i, j)] == "image":
            out.append(f"{n2} ({ref2}) is the same image as {n1} ({ref1})")
        else:
            out.append(f"{n2} ({ref2}) is the same face as {n1} ({ref1}) "
                       f"(distance {float(np.linalg.norm(desc[i] - desc[j])):.2f})")
    return out
