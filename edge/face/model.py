"""The face model as one unit: detector, landmarks and alignment, encoder, distance, quality gate and calibration.

Templates made by one model are meaningless to another, so everything that holds or compares templates names
the model that made them: :meth:`FaceModel.ref` (its id and the SHA-256 of the weights that decide the template
space) goes into every template set, calibration, bundle, alert and audit record, and :func:`check_same` refuses
in one sentence to compare across models. Two models:

- ``yunet-mobilefacenet`` (the default): YuNet boxes and 5 landmarks, ArcFace 5-point alignment to 112x112,
  MobileFaceNet 192-d unit vectors compared by cosine (docs/models.md);
- ``dlib-resnet``: dlib's HOG, its 5-point landmarks and 150x150 chip, the ResNet's 128-d descriptors compared
  by Euclidean distance (old lists, and the naive baseline).

Every model gives a *distance* in [0, 2] (smaller is nearer), so the matcher, the decision rules and the
calibrations work the same for both: for unit vectors it is the Euclidean distance, ``sqrt(2 - 2 cos)``, which
ranks exactly as cosine does (:meth:`FaceModel.cosine` converts back).

A flat API in the manner of ``face_recognition``: ``detect(bgr) -> [Face]``, ``prepare(rgb, face, gate) ->
(chip, Quality)``, ``encode(chips) -> (n, dim)``, ``distances(a, b)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from edge.config import MODELS, Config
from edge.errors import EdgeError
from edge.face import api, quality

Box = tuple[int, int, int, int]  # top, right, bottom, left
STILL_WIDTH = 1024


class OtherModel(EdgeError):
    """Templates or descriptors of one face model offered for comparison with another's."""


class Face(NamedTuple):
    box: Box
    landmarks: np.ndarray | None  # (5, 2) float32 in image pixels, in the model's order; None: found at prepare
    score: float


class FaceModel:
    """What every model provides; the two below fill it in."""

    id: str = ""
    dim: int = 0
    metric: str = ""  # how its vectors compare: "cosine" or "euclidean" (either way, distances() in [0, 2])
    encoder_weights: tuple[str, str] = ("", "")  # (file, SHA-256) of the weights that decide the template space
    detector_weights: tuple[str, str] = ("", "")
    chip_size: int = 0
    gate_defaults: quality.Gate = quality.DLIB_GATE
    cap: float = 0.6  # the default distance cap (config ``match.threshold`` when not set)
    # enrol's warnings: one person's photos lie under ``same_person`` apart, the same face re-saved under ``same_face``
    same_person: float = 0.6
    same_face: float = 0.3
    calibration: str = ""  # the file in edge/watchlist/ of the calibration shipped for this model

    def ref(self) -> dict[str, Any]:
        """How templates, calibrations, bundles, alerts and audit records name this model."""
        return {"id": self.id, "dim": self.dim, "sha256": self.encoder_weights[1]}

    def describe(self) -> str:
        return f"{self.id} ({self.dim}-d, {self.metric}, weights {self.encoder_weights[1][:12]})"

    def gate(self, min_face_px: int | None = None, min_sharpness: float | None = None,
             max_yaw: float | None = None) -> quality.Gate:
        """This model's gate, with the config's ``quality.*`` where it sets one (None: the model's own)."""
        g = self.gate_defaults
        return quality.Gate(g.min_face_px if min_face_px is None else min_face_px,
                            g.min_sharpness if min_sharpness is None else min_sharpness,
                            g.max_yaw if max_yaw is None else max_yaw, g.good_yaw, g.good_sharpness, g.yaw_unit)

    def detect(self, bgr: np.ndarray, scale: float = 1.0) -> list[Face]:
        raise NotImplementedError

    def find(self, rgb: np.ndarray) -> list[Face]:
        """Faces in a still (a reference image, an evaluation photo): small ones too, at most 1024 px wide."""
        scale = min(1.0, STILL_WIDTH / rgb.shape[1])
        return self.detect(np.ascontiguousarray(rgb[..., ::-1]), scale)

    def prepare(self, rgb: np.ndarray, face: Face, gate: quality.Gate) -> tuple[np.ndarray, quality.Quality]:
        """(the aligned chip to encode, its Quality): the one way a face is prepared and judged."""
        raise NotImplementedError

    def encode(self, chips: list[np.ndarray]) -> np.ndarray:
        """Aligned chips -> (n, dim) float32."""
        raise NotImplementedError

    def warm_up(self) -> None:
        """Load the weights now (in this process), so the first face does not pay for it."""
        self.encode([np.zeros((self.chip_size, self.chip_size, 3), np.uint8)])

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(len(a), len(b)) distances in float64, as the matcher ranks them."""
        a = np.asarray(a, np.float64).reshape(-1, self.dim)
        b = np.asarray(b, np.float64).reshape(-1, self.dim)
        d2 = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
        out: np.ndarray = np.sqrt(np.maximum(d2, 0.0))
        return out

    def cosine(self, distance: float) -> float:
        """The cosine similarity a distance stands for (unit vectors only)."""
        return 1.0 - distance * distance / 2.0

    def check(self, vectors: np.ndarray, what: str = "templates") -> np.ndarray:
        """``vectors`` as (n, dim) float32 if they can be this model's; else one sentence."""
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim != 2 or v.shape[1] != self.dim:
            raise EdgeError(f"{what} of {v.shape[-1] if v.ndim else 0} numbers are not {self.id} templates "
                            f"({self.dim} numbers)")
        return v


class MobileFaceNet(FaceModel):
    id = "yunet-mobilefacenet"
    dim = 192
    metric = "cosine"
    encoder_weights = ("mobilefacenet.onnx", "42417535354dc9fc042dc2ad1e8dfb7f8722737f81b92f38aee8e28048d859d1")
    detector_weights = ("face_detection_yunet_2026may.onnx",
                        "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0")
    chip_size = 112
    # re-tuned on lfw-dev (docs/models.md): the dlib gate's bars carried to this chip and these landmarks by
    # quantile on 652 faces (sharpness on the 112 px chip reads ~3.2x the 150 px one; the nose tip ~1.1x the base)
    gate_defaults = quality.Gate(40, 45.0, 0.5, good_yaw=0.16, good_sharpness=320.0, yaw_unit=1.1)
    cap = MODELS["yunet-mobilefacenet"]  # 1.2, cosine 0.28: farther is not the same person; the point decides within
    same_person, same_face = 1.2, 0.45  # cosine 0.28 and 0.9
    calibration = "calibration-yunet-mobilefacenet.json"

    def detect(self, bgr: np.ndarray, scale: float = 1.0) -> list[Face]:
        from edge.face import yunet

        return [Face(f.box, f.landmarks, f.score) for f in yunet.detect(bgr, scale=scale)]

    def prepare(self, rgb: np.ndarray, face: Face, gate: quality.Gate) -> tuple[np.ndarray, quality.Quality]:
        from edge.face import mobilefacenet

        pts = face.landmarks if face.landmarks is not None else self._landmarks(rgb, face.box)
        if pts is None:
            blank = np.zeros((self.chip_size, self.chip_size, 3), np.uint8)
            return blank, quality.Quality(face.box[2] - face.box[0], 0.0, 1.0, False, "undetected", 0.0)
        chip = mobilefacenet.align(rgb, pts)
        # YuNet: the person's right eye, left eye, nose tip, right and left mouth corners
        turn = quality.yaw(pts[0], pts[1], pts[2])
        return chip, quality.judge(face.box, quality.sharpness(chip), turn, gate)

    def _landmarks(self, rgb: np.ndarray, box: Box) -> np.ndarray | None:
        """Landmarks for a box found some other way: YuNet on the box and a margin around it."""
        top, right, bottom, left = box
        m = max(bottom - top, right - left) // 2
        y0, x0 = max(0, top - m), max(0, left - m)
        region = np.ascontiguousarray(rgb[y0:bottom + m, x0:right + m, ::-1])
        faces = self.detect(region) if region.size else []
        if not faces:
            return None
        cy, cx = (top + bottom) / 2 - y0, (left + right) / 2 - x0
        best = min(faces, key=lambda f: abs((f.box[0] + f.box[2]) / 2 - cy) + abs((f.box[1] + f.box[3]) / 2 - cx))
        assert best.landmarks is not None
        return best.landmarks + np.array([x0, y0], np.float32)

    def encode(self, chips: list[np.ndarray]) -> np.ndarray:
        from edge.face import mobilefacenet

        return mobilefacenet.encode(chips)


class DlibResNet(FaceModel):
    id = "dlib-resnet"
    dim = 128
    metric = "euclidean"
    encoder_weights = ("dlib_face_recognition_resnet_model_v1.dat",
                       "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30")
    detector_weights = ("shape_predictor_5_face_landmarks.dat",
                        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888")
    chip_size = api.CHIP_SIZE
    gate_defaults = quality.DLIB_GATE
    cap = MODELS["dlib-resnet"]  # 0.6: dlib's own
    calibration = "calibration.json"

    def __init__(self, backend: str | None = None) -> None:
        self.backend = backend  # encoder backend (edge/face/encoder.py): the same descriptors from each

    def detect(self, bgr: np.ndarray, scale: float = 1.0) -> list[Face]:
        rgb = api.to_rgb(bgr)
        width = round(rgb.shape[1] * scale) if scale < 1.0 else 0
        return [Face(b, None, 1.0) for b in api.detect(rgb, width, 1 if scale >= 2.0 else 0)]

    def find(self, rgb: np.ndarray) -> list[Face]:
        return [Face(b, None, 1.0) for b in api.detect(rgb, STILL_WIDTH, 1)]

    def prepare(self, rgb: np.ndarray, face: Face, gate: quality.Gate) -> tuple[np.ndarray, quality.Quality]:
        chip, pts = api.align(rgb, face.box)
        turn = quality.yaw(pts[0:2].mean(axis=0), pts[2:4].mean(axis=0), pts[4])
        return chip, quality.judge(face.box, quality.sharpness(chip), turn, gate)

    def encode(self, chips: list[np.ndarray]) -> np.ndarray:
        return api.encode_chips(chips, self.backend)

    def warm_up(self) -> None:
        api.warm_up(self.backend)


DEFAULT = MobileFaceNet.id
DLIB = DlibResNet.id
_MODELS: dict[str, type[FaceModel]] = {MobileFaceNet.id: MobileFaceNet, DlibResNet.id: DlibResNet}
_instances: dict[str, FaceModel] = {}


def ids() -> list[str]:
    return list(_MODELS)


def get(model_id: str | None = None) -> FaceModel:
    """The model called ``model_id`` (None: the default), one instance per process."""
    model_id = model_id or DEFAULT
    if model_id not in _MODELS:
        raise EdgeError(f"unknown face model {model_id!r} (this box knows {', '.join(_MODELS)})")
    if model_id not in _instances:
        _instances[model_id] = _MODELS[model_id]()
    return _instances[model_id]


def of(ref: Any, what: str = "the list") -> FaceModel:
    """The model a record names (its ``model`` object; absent: dlib, which made everything before models were
    named), checked: an unknown id, or weights other than this box's, is refused in one sentence."""
    if ref is None:
        return get(DLIB)
    if not isinstance(ref, dict) or not isinstance(ref.get("id"), str):
        raise EdgeError(f"{what} names its face model wrongly (expected an object with an id)")
    m = get(ref["id"]) if ref["id"] in _MODELS else None
    if m is None:
        raise EdgeError(f"{what} was made by face model {ref['id']!r}, which this box does not have "
                        f"(it has {', '.join(_MODELS)})")
    if ref.get("sha256") != m.encoder_weights[1] or ref.get("dim") != m.dim:
        raise EdgeError(f"{what} was made by other weights of face model {m.id} (SHA-256 "
                        f"{str(ref.get('sha256'))[:12]}…, this box has {m.encoder_weights[1][:12]}…): its templates "
                        "cannot be compared")
    return m


def for_config(cfg: Config) -> FaceModel:
    """The model a box's config names (``model``), dlib's on the config's encoder backend."""
    if cfg.model == DLIB and cfg.encode.backend not in ("auto", ""):
        key = f"{DLIB}/{cfg.encode.backend}"
        if key not in _instances:
            _instances[key] = DlibResNet(cfg.encode.backend)
        return _instances[key]
    return get(cfg.model)


def cap(cfg: Config) -> float:
    """The box's distance cap: ``match.threshold`` if the config sets it, else its model's."""
    return cfg.match.threshold if cfg.match.threshold is not None else get(cfg.model).cap


def check_same(have: FaceModel, got: FaceModel, what: str = "a template") -> None:
    """Refuse, in one sentence, to compare ``got``'s templates with ``have``'s."""
    if have.id != got.id:
        raise OtherModel(f"{what} of face model {got.id} is never compared with {have.id} templates")
