"""A tiny flat face API in the manner of face_recognition's ``api.py``.

Plain tuples and numpy arrays in and out, never dlib objects. Boxes are ``(top, right, bottom, left)``
in pixel coordinates of the image passed in. Images are C-contiguous RGB ``uint8`` arrays (dlib
rejects a ``[:, :, ::-1]`` view: use :func:`to_rgb`).

One code path serves the live pipeline, ``enrol build`` and ``edge eval``:
``detect`` -> ``align`` (5-point landmarks and the 150x150 chip, one landmark run) -> ``encode_chips`` (128-d).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.errors import EdgeError
from edge.face import models

Box = tuple[int, int, int, int]  # top, right, bottom, left
CHIP_SIZE = 150
CHIP_PADDING = 0.25
MAX_IMAGE_PIXELS = 50_000_000  # refuse absurd images instead of exhausting memory


def to_rgb(bgr: np.ndarray) -> np.ndarray:
    """OpenCV BGR (or BGRA / grey) frame -> C-contiguous RGB uint8."""
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.shape[2] == 4:
        return cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Bytes of a JPEG/PNG/... -> RGB array; one clear EdgeError for anything unreadable."""
    if not data:
        raise EdgeError(f"{name} is empty")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        # Check the declared size before decoding pixels (a 60000x60000 PNG is a few KB).
        header = cv2.imdecode(buf, cv2.IMREAD_REDUCED_GRAYSCALE_8)
        if header is None:
            raise EdgeError(f"{name} is not a readable image")
        if header.shape[0] * header.shape[1] * 64 > MAX_IMAGE_PIXELS:
            raise EdgeError(f"{name} is too large (more than {MAX_IMAGE_PIXELS} pixels)")
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        if img is None or img.size == 0:
            raise EdgeError(f"{name} is not a readable image")
        if img.dtype != np.uint8:
            img = cv2.convertScaleAbs(img, alpha=255.0 / max(1, int(img.max())))
        return to_rgb(img)
    except cv2.error:  # OpenCV refuses (e.g. more than 2^30 declared pixels) by raising
        raise EdgeError(f"{name} is not a readable image, or is too large") from None


def load_image(path: str | Path) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read image {path}: {exc.strerror}") from exc
    return decode_image(data, str(path))


def detect(rgb: np.ndarray, max_width: int = 0, upsample: int = 0) -> list[Box]:
    """HOG face detection, optionally on a copy downscaled to ``max_width``; boxes in ``rgb`` coords."""
    scale = 1.0
    img = rgb
    if max_width and rgb.shape[1] > max_width:
        scale = max_width / rgb.shape[1]
        img = cv2.resize(rgb, (max_width, round(rgb.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]
    boxes = []
    for r in models.detector()(img, upsample):
        top = max(0, int(r.top() / scale))
        left = max(0, int(r.left() / scale))
        bottom = min(h, int(r.bottom() / scale))
        right = min(w, int(r.right() / scale))
        if bottom > top and right > left:
            boxes.append((top, right, bottom, left))
    return boxes


def _rect(box: Box):
    import dlib

    top, right, bottom, left = box
    return dlib.rectangle(int(left), int(top), int(right), int(bottom))


def _shape(rgb: np.ndarray, box: Box):
    return models.shape_predictor()(rgb, _rect(box))


def _points(shape) -> np.ndarray:
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=np.float32)


def align(rgb: np.ndarray, box: Box) -> tuple[np.ndarray, np.ndarray]:
    """(aligned 150x150 RGB chip, (5, 2) landmarks) from one run of the landmark model."""
    import dlib

    shape = _shape(rgb, box)
    face = dlib.get_face_chip(rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
    return np.ascontiguousarray(face), _points(shape)


def chip(rgb: np.ndarray, box: Box) -> np.ndarray:
    """The aligned 150x150 RGB face chip the ResNet encoder consumes (dlib's own alignment)."""
    return align(rgb, box)[0]


def encode_chips(chips: list[np.ndarray], encoder: str | None = None) -> np.ndarray:
    """Aligned chips -> (n, 128) float32 descriptors, by the configured encoder backend."""
    from edge.face import encoder as enc

    if not chips:
        return np.zeros((0, 128), dtype=np.float32)
    return enc.get(encoder).encode(chips)


def encode(rgb: np.ndarray, boxes: list[Box], encoder: str | None = None) -> np.ndarray:
    """Descriptors for the faces at ``boxes`` in ``rgb``: (n, 128) float32."""
    return encode_chips([chip(rgb, b) for b in boxes], encoder)


def warm_up(encoder: str | None = None) -> None:
    """Load every model now (in this process), so the first face does not pay for it."""
    from edge.face import encoder as enc

    models.detector()
    models.shape_predictor()
    enc.get(encoder)


def encoder_name(encoder: str | None = None) -> str:
    """The name of the backend ``encoder`` resolves to ("auto" -> the fastest available)."""
    from edge.face import encoder as enc

    return enc.get(encoder).name


def crop(rgb: np.ndarray, box: Box, margin: float = 0.25) -> np.ndarray:
    """The face region with a margin, for display to an operator (never written to disk here)."""
    top, right, bottom, left = box
    h, w = rgb.shape[:2]
    mh, mw = int((bottom - top) * margin), int((right - left) * margin)
    return rgb[max(0, top - mh) : min(h, bottom + mh), max(0, left - mw) : min(w, right + mw)]


def context(rgb: np.ndarray, box: Box, margin: float = 2.0, max_px: int = 480) -> np.ndarray:
    """A wider view around the face (``margin`` face sizes each side, at most ``max_px`` wide or high) with
    the face outlined: where the person is, for the operator's card (memory only, like the crop)."""
    top, right, bottom, left = box
    view = crop(rgb, box, margin).copy()
    h, w = rgb.shape[:2]
    oy, ox = max(0, top - int((bottom - top) * margin)), max(0, left - int((right - left) * margin))
    scale = min(1.0, max_px / max(view.shape[:2]))
    if scale < 1.0:
        view = cv2.resize(view, (max(1, round(view.shape[1] * scale)), max(1, round(view.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    p = lambda y, x: (round((x - ox) * scale), round((y - oy) * scale))  # noqa: E731
    cv2.rectangle(view, p(top, left), p(bottom, right), (255, 215, 0), max(1, round(2 * max(1.0, scale * 2))))
    return view


def jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise EdgeError("could not encode a JPEG")
    return buf.tobytes()
