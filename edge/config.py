"""The box's one TOML config file, validated up front.

Every value is checked before anything starts; the first bad one is reported as one sentence naming
its key path (``cameras[1].source: ...``), in the manner of Frigate's config validation. Unknown keys
are errors too: a typo must not silently fall back to a default.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import MISSING, dataclass, field, fields, is_dataclass
from pathlib import Path
from types import UnionType
from typing import Any, get_args, get_origin, get_type_hints

from edge.errors import ConfigError

DEFAULT_STATE_DIR = "/var/lib/edge"


@dataclass
class CameraConfig:
    id: str
    source: str  # file path, rtsp://, http://, or a V4L2 device ("/dev/video0" or "0")
    loop: bool = False  # a file source restarts at its end (demos)
    realtime: bool = True  # a file source is read at its own frame rate, like a live camera
    enabled: bool = True


@dataclass
class DetectConfig:
    max_width: int = 640  # whole-frame scans run on a copy downscaled to this width (YuNet: faces from ~3 % of it)
    upsample: int = 1  # 1: whole-frame scans also look for detect.min_face_px faces, a band at a time; 0: not
    every_n_frames: int = 2  # a detection pass on every n-th frame handed to the pipeline
    full_every: int = 4  # every k-th pass scans the whole frame; the others only look around live tracks
    fine_every: int = 4  # ... in this many bands, on every other whole-frame scan (at that scale 1080p is 1.3 Mpx)
    track_iou: float = 0.3  # a detection joins a track when it overlaps its predicted box this much
    track_gate: float = 3.0  # ... or when its centre is within this many standard deviations of the predicted
    #                          centre (a fast mover; the deviation is in face heights and grows with time unseen)
    track_lost_s: float = 1.0  # seconds a track without detections is kept as lost, to be re-joined (same id)
    track_reid_distance: float = 0.5  # a re-join needs descriptors this close when both have one (memory only)
    track_max_speed: float = 10.0  # face heights per second a new track may move (its first search region)
    min_face_px: int = 40  # smallest face (frame px, YuNet box: forehead to chin) looked for where the picture moved
    motion: bool = True  # fixed camera: look for small faces where the picture changed (background model)
    motion_every: int = 2  # every k-th pass looks for new faces where the picture changed
    scan_budget_px: int = 250_000  # scaled pixels scanned for new faces per such pass, at most


@dataclass
class QualityConfig:
    min_face_px: int = 40  # face height in full-frame pixels
    # not set: the face model's own (edge/face/model.py; docs/models.md), as each measures on its own chip
    min_sharpness: float | None = None  # variance of the Laplacian on the model's aligned chip
    max_yaw: float | None = None  # |nose offset from the eye midpoint| / eye distance


@dataclass
class EncodeConfig:
    max_per_track: int = 3  # encodes per track at most
    improve_ratio: float = 1.3  # re-encode only when the quality score beats the last by this
    hold_s: float = 0.5  # a new track's first view that is not frontal and sharp waits this long for a better one
    backend: str = "auto"  # "auto", "dlib" or another registered encoder
    threads: int = 1  # math threads per camera process: one camera, one core


@dataclass
class MatchConfig:
    # not set: the face model's cap (dlib-resnet 0.6, yunet-mobilefacenet 1.2: docs/models.md)
    threshold: float | None = None  # distance cap: no hit is farther than this, whatever the list's operating point
    threshold_floor: float | None = None  # the daemon refuses a more lenient threshold than this
    target_fpir: float = 0.001  # share of passers-by who may alert (1 in 1,000); the list's policy can be stricter
    # decision rule for lists that do not sign one: "ratio" (nearest/second-nearest) or "distance"; not set: the
    # face model's adopted rule (operating.ADOPTED_RULE: dlib-resnet ratio, yunet-mobilefacenet distance)
    rule: str | None = None
    fuse_views: bool = True  # match a track's encodes as one mean descriptor (fewer misses, same FPIR)
    calibration: str = ""  # impostor calibration file (`edge eval --calibrate`); "" = the one shipped with the box
    max_false_alert_rate: float = 0.1  # warn when operators dismiss more than this share as "not the person"


@dataclass
class AlertsConfig:
    endpoint: str = "tcp://127.0.0.1:5599"  # where the box serves alerts
    control_endpoint: str = ""  # `edge status` etc. talk to the daemon here; "" = ipc in the state dir (ipc:// only)
    retention_days: float = 31.0  # alerts (crop, details) are kept this long, then deleted and logged
    # one listed person's continuous presence is one encounter (one alert, one decision): a hit for the
    # same entry within this many seconds of its last sighting joins it; it ends after this gap
    encounter_gap_s: float = 60.0
    # "two": a confirmation counts only once two different operators verified it (EU AI Act Art. 14(5));
    # a disagreement goes to a supervisor. The box refuses a confirmation that does not carry both.
    verification: str = "one"


@dataclass
class WatchlistConfig:
    folder: str = ""  # simple local list: reference_number.jpg files (development and demos)
    usb_mounts: list[str] = field(default_factory=list)  # mount points watched for .wlb files


@dataclass
class DeploymentConfig:
    required: bool = True  # match only inside a deployment window an issuer signed (`edge deployment load`)
    # a window without an authority_ref (prior authorisation) runs at most 24 h as emergency use, then stops
    require_authority_ref: bool = False


MIN_AUDIT_RETENTION_DAYS = 183  # logs of every use are kept at least 6 months (UK APP on LFR; EU AI Act Art. 26)


@dataclass
class AuditConfig:
    retention_days: int = MIN_AUDIT_RETENTION_DAYS  # the audit log is kept at least this long; never less than 183


@dataclass
class HealthConfig:
    log_interval: float = 10.0  # seconds between health log lines
    max_restarts: int = 5  # a dead camera process is restarted at most this many times
    reconnect_max_backoff: float = 30.0  # seconds


@dataclass
class OversightConfig:
    endpoint: str = ""  # the oversight service (docs/oversight-service.md); "" = this box sends its log nowhere
    service_key: str = ""  # the service's oversight.pub.json (its CURVE key and its witness-signing key)


@dataclass
class Config:
    box_id: str
    cameras: list[CameraConfig]
    state_dir: str = DEFAULT_STATE_DIR
    model: str = "yunet-mobilefacenet"  # the face model the box runs (edge/face/model.py, docs/models.md)
    detect: DetectConfig = field(default_factory=DetectConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    watchlist: WatchlistConfig = field(default_factory=WatchlistConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    deployment: DeploymentConfig = field(default_factory=DeploymentConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    oversight: OversightConfig = field(default_factory=OversightConfig)
    path: str = ""  # where it was read from (not a config key)

    @property
    def control_endpoint(self) -> str:
        return self.alerts.control_endpoint or f"ipc://{Path(self.state_dir) / 'control.sock'}"


# edge.face.model's ids and each one's default distance cap (match.threshold and its floor when not set): here,
# where the config is validated (a lower layer than the models); docs/models.md
MODELS = {"yunet-mobilefacenet": 1.2, "dlib-resnet": 0.6}
RENAMED = {"detect.track_max_missed": "no longer used: set detect.track_lost_s (seconds) instead"}
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _build(cls, data: Any, path: str):
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'}: expected a table")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.name != "path"}
    for key in data:
        if key not in known:
            full = f"{path + '.' if path else ''}{key}"
            raise ConfigError(f"{full}: {RENAMED[full]}" if full in RENAMED else f"{full}: unknown key")
    kwargs = {}
    for f in fields(cls):
        if f.name not in data:
            if f.name != "path" and f.default is MISSING and f.default_factory is MISSING:
                raise ConfigError(f"{path + '.' if path else ''}{f.name}: required key is missing")
            continue
        kwargs[f.name] = _value(hints[f.name], data[f.name], f"{path + '.' if path else ''}{f.name}")
    return cls(**kwargs)


def _value(tp, value: Any, path: str):
    if isinstance(tp, UnionType):  # ``float | None``: TOML has no null, so a value given is the other type
        (tp,) = [t for t in get_args(tp) if t is not type(None)]
    if is_dataclass(tp):
        return _build(tp, value, path)
    if get_origin(tp) is list:
        (item,) = get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list")
        return [_value(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and not isinstance(value, bool) or tp is not bool and isinstance(value, bool):
        raise ConfigError(f"{path}: expected {_TYPE_NAMES[tp]}")
    if not isinstance(value, tp):
        raise ConfigError(f"{path}: expected {_TYPE_NAMES.get(tp, tp.__name__)}")
    return value


def _check(cfg: Config) -> None:
    def need(ok: bool, path: str, why: str):
        if not ok:
            raise ConfigError(f"{path}: {why}")

    need(bool(cfg.box_id.strip()), "box_id", "must not be empty")
    need(len(cfg.cameras) >= 1, "cameras", "at least one camera is needed")
    seen = set()
    for i, cam in enumerate(cfg.cameras):
        need(bool(cam.id) and cam.id.replace("-", "").replace("_", "").isalnum(), f"cameras[{i}].id",
             "must be letters, digits, - or _")
        need(cam.id not in seen, f"cameras[{i}].id", f"duplicate camera id {cam.id!r}")
        seen.add(cam.id)
        need(bool(cam.source.strip()), f"cameras[{i}].source", "must not be empty")
    need(160 <= cfg.detect.max_width <= 4096, "detect.max_width", "must be between 160 and 4096")
    need(0 <= cfg.detect.upsample <= 2, "detect.upsample", "must be 0, 1 or 2")
    need(1 <= cfg.detect.fine_every <= 100, "detect.fine_every", "must be between 1 and 100")
    need(1 <= cfg.detect.full_every <= 100, "detect.full_every", "must be between 1 and 100")
    need(1 <= cfg.detect.every_n_frames <= 10, "detect.every_n_frames", "must be between 1 and 10")
    need(0.0 < cfg.detect.track_iou < 1.0, "detect.track_iou", "must be between 0 and 1")
    need(1.0 <= cfg.detect.track_gate <= 10.0, "detect.track_gate", "must be between 1 and 10")
    need(0.0 < cfg.detect.track_lost_s <= 10.0, "detect.track_lost_s", "must be between 0 and 10 seconds")
    need(0.0 < cfg.detect.track_reid_distance < 2.0, "detect.track_reid_distance", "must be between 0 and 2")
    need(1.0 <= cfg.detect.track_max_speed <= 50.0, "detect.track_max_speed", "must be between 1 and 50")
    need(20 <= cfg.detect.min_face_px <= 1000, "detect.min_face_px", "must be between 20 and 1000")
    need(1 <= cfg.detect.motion_every <= 100, "detect.motion_every", "must be between 1 and 100")
    need(50_000 <= cfg.detect.scan_budget_px <= 20_000_000, "detect.scan_budget_px",
         "must be between 50000 and 20000000")
    need(cfg.quality.min_face_px >= 20, "quality.min_face_px", "must be at least 20")
    need(cfg.quality.min_sharpness is None or cfg.quality.min_sharpness >= 0, "quality.min_sharpness",
         "must not be negative")
    need(cfg.quality.max_yaw is None or 0 < cfg.quality.max_yaw <= 1.0, "quality.max_yaw", "must be between 0 and 1")
    need(cfg.model in MODELS, "model", f"must be one of: {', '.join(MODELS)}")
    need(1 <= cfg.encode.max_per_track <= 10, "encode.max_per_track", "must be between 1 and 10")
    need(cfg.encode.improve_ratio >= 1.0, "encode.improve_ratio", "must be at least 1.0")
    need(0.0 <= cfg.encode.hold_s <= 5.0, "encode.hold_s", "must be between 0 and 5")
    need(1 <= cfg.encode.threads <= 64, "encode.threads", "must be between 1 and 64")
    m = cfg.match
    need(m.threshold is None or 0.0 < m.threshold < 2.0, "match.threshold", "must be between 0 and 2")
    need(m.threshold_floor is None or 0.0 < m.threshold_floor < 2.0, "match.threshold_floor", "must be between 0 and 2")
    floor = MODELS.get(cfg.model, 2.0) if m.threshold_floor is None else m.threshold_floor
    need(m.threshold is None or m.threshold <= floor, "match.threshold",
         f"{m.threshold} is more lenient than the threshold floor {floor}")
    need(cfg.alerts.endpoint.startswith(("tcp://", "ipc://")), "alerts.endpoint",
         "must be a ZeroMQ endpoint (tcp://host:port or ipc://path)")
    # the control socket has no authentication of its own (it can purge the list): only a Unix socket,
    # whose folder's permissions decide who may use it, is allowed
    need(cfg.alerts.control_endpoint == "" or cfg.alerts.control_endpoint.startswith("ipc://"),
         "alerts.control_endpoint", "must be an ipc:// path (the control socket is unauthenticated, so TCP "
         "is refused); leave it out to use <state_dir>/control.sock")
    need(0.0 < cfg.match.target_fpir <= 0.02, "match.target_fpir", "must be more than 0 and at most 0.02")
    need(cfg.match.rule in (None, "ratio", "distance"), "match.rule", 'must be "ratio" or "distance"')
    need(0.0 < cfg.match.max_false_alert_rate <= 1.0, "match.max_false_alert_rate", "must be between 0 and 1")
    need(0 < cfg.alerts.retention_days <= 3650, "alerts.retention_days", "must be between 0 and 3650")
    need(MIN_AUDIT_RETENTION_DAYS <= cfg.audit.retention_days <= 36500, "audit.retention_days",
         f"must be at least {MIN_AUDIT_RETENTION_DAYS} (the log of every use is kept at least 6 months)")
    need(cfg.alerts.verification in ("one", "two"), "alerts.verification", 'must be "one" or "two"')
    need(0 < cfg.alerts.encounter_gap_s <= 3600, "alerts.encounter_gap_s", "must be more than 0 and at most 3600")
    need(cfg.oversight.endpoint == "" or cfg.oversight.endpoint.startswith(("tcp://", "ipc://")),
         "oversight.endpoint", "must be a ZeroMQ endpoint (tcp://host:port or ipc://path)")
    need(cfg.oversight.endpoint == "" or bool(cfg.oversight.service_key), "oversight.service_key",
         "is needed with oversight.endpoint: the service's oversight.pub.json")
    need(cfg.health.log_interval > 0, "health.log_interval", "must be positive")
    need(cfg.health.max_restarts >= 0, "health.max_restarts", "must not be negative")


def parse(text: str, source: str = "config", state_dir: str | None = None) -> Config:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source} is not valid TOML: nested too deeply") from None
    alerts = data.get("alerts")
    if isinstance(alerts, dict) and "group_window_s" in alerts and "encounter_gap_s" not in alerts:
        alerts["encounter_gap_s"] = alerts.pop("group_window_s")  # its name before encounters
    cfg = _build(Config, data, "")
    if state_dir:
        cfg.state_dir = state_dir
    _check(cfg)
    return cfg


def load(path: str | Path, state_dir: str | None = None) -> Config:
    """Read and validate a config file; relative camera/watch-list paths resolve from its folder."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    cfg = parse(text, str(path), state_dir)
    cfg.path = str(path.resolve())
    base = path.resolve().parent
    for cam in cfg.cameras:
        if "://" not in cam.source and not cam.source.isdigit() and not cam.source.startswith("/dev/"):
            cam.source = str((base / cam.source).resolve())
    if cfg.watchlist.folder:
        cfg.watchlist.folder = str((base / cfg.watchlist.folder).resolve())
    if cfg.match.calibration:
        cfg.match.calibration = str((base / cfg.match.calibration).resolve())
    if cfg.oversight.service_key:
        cfg.oversight.service_key = str((base / cfg.oversight.service_key).resolve())
    cfg.state_dir = str((base / cfg.state_dir).resolve()) if not state_dir else str(Path(state_dir).resolve())
    return cfg


# --- a small TOML writer (the config is tables, arrays of tables and scalars) ---------------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(v, list) and not any(isinstance(x, dict) for x in v):
        return "[" + ", ".join(_scalar(x) for x in v) + "]"
    raise ConfigError(f"cannot write {type(v).__name__} to TOML")


def toml_dumps(data: dict, prefix: str = "") -> str:
    """Scalars first, then [tables], then [[arrays of tables]], recursively; None (not set) is left out."""
    data = {k: v for k, v in data.items() if v is not None}
    is_tables = lambda v: isinstance(v, list) and v and all(isinstance(x, dict) for x in v)
    out = [f"{_key(k)} = {_scalar(v)}" for k, v in data.items() if not isinstance(v, dict) and not is_tables(v)]
    for k, v in data.items():
        name = f"{prefix}{_key(k)}"
        if isinstance(v, dict):
            out += ["", f"[{name}]", toml_dumps(v, name + ".").strip("\n")]
        elif is_tables(v):
            for item in v:
                out += ["", f"[[{name}]]", toml_dumps(item, name + ".").strip("\n")]
    return "\n".join(out).lstrip("\n") + "\n"
