"""Lists work whatever face model the box runs (edge/face/model.py, edge/watchlist/reencode.py).

A list built before models were named (dlib templates, no ``model`` in its header) still loads on a box that
runs the new default model, and matches: the box makes its own templates from the list's signed reference
images. A list built for the box's model is matched on its own templates. A template or descriptor of another
model is never compared: refused in one sentence. Real faces, real keys, real bundles."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wlhelpers import FACES, face, make_bundle, trust_issuer

from edge import config, identity
from edge.alerts import messages
from edge.config import QualityConfig
from edge.errors import EdgeError
from edge.face import model as face_model
from edge.pipeline.health import format_status
from edge.watchlist import bundle_v2
from edge.watchlist.base import Entry
from edge.watchlist.service import WatchlistService
from enrol.build import encode_image

ISSUER = Ed25519PrivateKey.generate()
NEW = face_model.DEFAULT
PEOPLE = ("obama.jpg", "biden.jpg", "alex-lacamoire.png", "lin-manuel-miranda.png")


def new_face(name: str) -> tuple[np.ndarray, bytes]:
    return encode_image(FACES / name, QualityConfig(), NEW)


def daemon_box(tmp_path, model_id: str = NEW):
    """A daemon (its matcher, counters and status) with a watch-list service, running ``model_id``."""
    from edge.pipeline.daemon import Daemon

    state = tmp_path / "state"
    cfg = config.parse(f'box_id = "box-a"\nmodel = "{model_id}"\nstate_dir = "{state}"\n'
                       '[[cameras]]\nid = "cam1"\nsource = "x.mp4"\n[deployment]\nrequired = false\n')
    daemon = Daemon(cfg)
    daemon.prepare_state_dir()
    published: list[dict] = []
    daemon.publish = published.append
    ident = identity.create(state, "box-a", model=face_model.get(model_id).ref())
    trust_issuer(state, ISSUER)
    daemon.audited = []  # what the box records, kind and fields (the audit log's contents)
    daemon.record = lambda kind, **fields: daemon.audited.append((kind, fields))
    return daemon, WatchlistService(cfg, ident, daemon.matcher, record=daemon.record), ident, published


def encoding(desc: np.ndarray, model_id: str | None, track: str = "t-1") -> dict:
    msg = {"camera_id": "cam1", "track_id": track, "frame_time": datetime.now(UTC).timestamp(),
           "descriptor": desc.tolist(), "crop_jpeg": messages.b64(b"\xff\xd8crop")}
    return msg if model_id is None else dict(msg, model=model_id)


def test_a_list_built_before_models_loads_on_the_new_model_and_matches(tmp_path):
    daemon, svc, ident, published = daemon_box(tmp_path)
    old = make_bundle(ISSUER, ident.wl_public, PEOPLE)  # dlib templates, no model in the header
    (tmp_path / "old.wlb").write_bytes(old)
    svc.load(tmp_path / "old.wlb")
    wl = daemon.matcher.current
    assert wl.model == NEW and wl.templates.shape == (len(PEOPLE), 192)  # made here, from its images
    assert wl.meta["templates_from"] == face_model.DLIB
    assert wl.operating is not None and wl.operating.calibration == "lfw-dev-yunet-mobilefacenet"
    # another photo of a listed person alerts; a listed person's other photo is what a camera sees
    daemon.on_encodings([encoding(new_face("biden2.jpg")[0], NEW)])
    (alert,) = [m for m in published if m.get("type") == "alert"]
    assert alert["ref"] == "PN-0001" and alert["model"] == NEW
    assert alert["model_sha256"] == face_model.get(NEW).encoder_weights[1]  # id and weights, in the alert
    (loaded,) = [f for k, f in daemon.audited if k == "watchlist_loaded"]
    assert loaded["model"] == face_model.get(NEW).ref() and loaded["templates_from"] == face_model.DLIB
    (audited,) = [f for k, f in daemon.audited if k == "alert"]
    assert (audited["model"], audited["model_sha256"]) == (NEW, face_model.get(NEW).encoder_weights[1])
    # a passer-by (not on the list) does not
    daemon.on_encodings([encoding(new_face("kit_harington_john1.jpeg")[0], NEW, "t-2")])
    assert len([m for m in published if m.get("type") == "alert"]) == 1
    st = daemon.status_command({})
    assert st["model"]["id"] == NEW and st["watchlist"]["templates_from"] == face_model.DLIB
    from edge.watchlist.cli import _describe  # edge watchlist status

    wst = svc.status()
    assert wst["model"] == NEW and wst["templates_from"] == face_model.DLIB
    assert f"face model: {NEW} (its templates made here from its reference images" in _describe(wst)
    text = format_status(st)
    assert f"face model: {NEW}" in text and "built for dlib-resnet" in text


def test_a_list_built_before_models_still_matches_on_a_dlib_box(tmp_path):
    daemon, svc, ident, published = daemon_box(tmp_path, face_model.DLIB)
    (tmp_path / "old.wlb").write_bytes(make_bundle(ISSUER, ident.wl_public, PEOPLE))
    svc.load(tmp_path / "old.wlb")
    assert daemon.matcher.current.model == face_model.DLIB and "templates_from" not in daemon.matcher.current.meta
    daemon.on_encodings([encoding(face("biden2.jpg")[0], None)])  # an old camera's message names no model
    (alert,) = [m for m in published if m.get("type") == "alert"]
    assert alert["ref"] == "PN-0001" and alert["model"] == face_model.DLIB
    assert "face model: dlib-resnet" in format_status(daemon.status_command({}))


def test_a_list_built_for_the_new_model_is_matched_on_its_own_templates(tmp_path):
    daemon, svc, ident, published = daemon_box(tmp_path)
    made = [new_face(f) for f in PEOPLE]
    entries = [Entry(ref=f"PN-{i:04d}", category="wanted", reason="test", image_jpeg=j)
               for i, (_, j) in enumerate(made)]
    data = make_bundle(ISSUER, ident.wl_public, entries=entries, templates=[t[None] for t, _ in made],
                       threshold_floor=face_model.get(NEW).cap, header={"model": face_model.get(NEW).ref()})
    (tmp_path / "new.wlb").write_bytes(data)
    svc.load(tmp_path / "new.wlb")
    wl = daemon.matcher.current
    assert wl.model == NEW and "templates_from" not in wl.meta
    assert np.allclose(wl.templates, np.stack([t for t, _ in made]), atol=1e-6)  # the signed templates, as sent
    daemon.on_encodings([encoding(new_face("obama2.jpg")[0], NEW)])
    (alert,) = [m for m in published if m.get("type") == "alert"]
    assert alert["ref"] == "PN-0000"


def test_a_template_of_another_model_is_never_compared(tmp_path):
    daemon, svc, ident, published = daemon_box(tmp_path)
    (tmp_path / "old.wlb").write_bytes(make_bundle(ISSUER, ident.wl_public, PEOPLE))
    svc.load(tmp_path / "old.wlb")
    # a dlib descriptor (an old camera process) against the new model's list: counted, never matched
    daemon.on_encodings([encoding(face("biden2.jpg")[0], None), encoding(face("biden2.jpg")[0], face_model.DLIB)])
    assert daemon.counts.other_model == 2 and not [m for m in published if m.get("type") == "alert"]
    with pytest.raises(face_model.OtherModel, match="never compared") as err:
        daemon.matcher.match_batch(face("biden2.jpg")[0][None], face_model.DLIB)
    assert "\n" not in str(err.value)
    # a bundle naming a model this box does not have, or other weights of its model: refused in one sentence
    for named, words in (({"id": "arcface-mobile", "dim": 192, "sha256": "0" * 64}, "which this box does not have"),
                         (dict(face_model.get(NEW).ref(), sha256="1" * 64), "other weights of face model")):
        made = [new_face("obama.jpg")]
        entries = [Entry(ref="PN-9", category="wanted", reason="test", image_jpeg=made[0][1])]
        data = make_bundle(ISSUER, ident.wl_public, entries=entries, templates=[made[0][0][None]], sequence=9,
                           header={"model": named})
        (tmp_path / "other.wlb").write_bytes(data)
        with pytest.raises(EdgeError, match=words) as err:
            svc.load(tmp_path / "other.wlb")
        assert "\n" not in str(err.value)
    assert daemon.matcher.current.model == NEW and len(daemon.matcher.current) == len(PEOPLE)  # still in force


def test_the_box_declares_its_model_and_enrol_builds_for_it(tmp_path):
    state = tmp_path / "state"
    ident = identity.create(state, "box-a", model=face_model.get(NEW).ref())
    pub = identity.load_box_public(state / "keys" / identity.PUB_FILE)
    assert face_model.of(pub["model"]).id == NEW
    identity.create(state, "box-b")  # relabelled: the declaration stays
    assert identity.load_box_public(state / "keys" / identity.PUB_FILE)["model"] == face_model.get(NEW).ref()
    del ident
    # an old box.pub.json (no model) is a dlib box: enrol builds dlib templates for it, as before
    assert face_model.of(None).id == face_model.DLIB
    assert bundle_v2.model_of({}).id == face_model.DLIB


def test_enrol_build_makes_templates_for_the_model_the_box_declares(tmp_path):
    import json
    import shutil

    from click.testing import CliRunner

    from enrol.cli import cli as enrol_cli

    def run(*args):
        res = CliRunner().invoke(enrol_cli, [str(a) for a in args], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return res.output

    run("keygen", "--out", tmp_path / "keys", "--no-passphrase")
    images = tmp_path / "images"
    images.mkdir()
    for f in ("obama.jpg", "biden.jpg"):
        shutil.copy(FACES / f, images / f)
    (tmp_path / "refs.csv").write_text("ref,category,reason,images\nPN-1,wanted,test,obama.jpg\n"
                                       "PN-2,wanted,test,biden.jpg\n")
    state = tmp_path / "box"
    ident = identity.create(state, "box-a", model=face_model.get(NEW).ref())
    run("build", "--images", images, "--refs", tmp_path / "refs.csv", "--for", state / "keys" / "box.pub.json",
        "--issuer-key", tmp_path / "keys" / "issuer.key", "--expires", "2099-01-01T00:00Z",
        "--outlives-deployment", "--deployment", "Op T",
        "-o", tmp_path / "list.wlb")
    h = json.loads(run("inspect", tmp_path / "list.wlb", "--issuer-key", tmp_path / "keys" / "issuer.pub", "--json"))
    h = h.get("header", h)
    assert h["model"] == face_model.get(NEW).ref() and h["policy"]["threshold_floor"] == face_model.get(NEW).cap
    assert h["operating"]["calibration"] == "lfw-dev-yunet-mobilefacenet"
    shown = run("inspect", tmp_path / "list.wlb", "--issuer-key", tmp_path / "keys" / "issuer.pub")
    assert f"face model: {NEW} (192 numbers a template" in shown
    del ident


def test_the_console_names_the_model_that_matched(tmp_path):
    from edge.console import watch
    from edge.console.store import Store

    daemon, svc, ident, published = daemon_box(tmp_path)
    (tmp_path / "old.wlb").write_bytes(make_bundle(ISSUER, ident.wl_public, PEOPLE))
    svc.load(tmp_path / "old.wlb")
    daemon.on_encodings([encoding(new_face("biden2.jpg")[0], NEW)])
    (alert,) = [m for m in published if m.get("type") == "alert"]
    store = Store(tmp_path / "console.db")
    try:
        store.receive("tcp://box", alert)
        (card,) = store.open_alerts()  # what the console page's card is made from
        assert card["model"] == NEW and card["ref"] == "PN-0001"
    finally:
        store.close()
    assert f"model {NEW}" in watch.describe(alert)  # edge watch, the terminal console


def test_the_model_vector_reads_by_the_page_alone_and_by_the_box():
    """docs/watchlist-format.md with header ``model``: the templates section is rows x dim x 4 bytes."""
    import base64
    import hashlib
    import importlib.util
    import json
    import struct
    from pathlib import Path

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    from edge.watchlist import reader

    vectors = Path(__file__).parent / "data" / "vectors"
    vec = json.loads((vectors / "watchlist-v2-model.json").read_text())
    data = (vectors / "watchlist-v2-model.wlb").read_bytes()
    assert hashlib.sha256(data).hexdigest() == vec["sha256"]
    _, version, _, hlen = struct.unpack_from(">6sH8sI", data)
    hb = data[20:20 + hlen]
    (clen,) = struct.unpack_from(">Q", data, 20 + hlen)
    h = json.loads(hb)
    assert version == 2 and h["model"] == face_model.get(NEW).ref()
    box = X25519PrivateKey.from_private_bytes(bytes.fromhex(vec["box_wl_private"]))
    eph = base64.b64decode(h["wrap"]["ephemeral"])
    wrap_key = HKDF(hashes.SHA256(), 32, eph + identity.raw_public(box), b"edge-watchlist/v2 wrap").derive(
        box.exchange(X25519PublicKey.from_public_bytes(eph)))
    file_key = AESGCM(wrap_key).decrypt(bytes(12), base64.b64decode(h["wrap"]["wrapped_key"]), None)
    key = AESGCM(HKDF(hashes.SHA256(), 32, base64.b64decode(h["payload"]["nonce"]),
                      b"edge-watchlist/v2 payload").derive(file_key))
    plain = key.decrypt(bytes(11) + b"\x01", data[28 + hlen:28 + hlen + clen], hashlib.sha256(hb).digest())
    rows, dim = h["payload"]["rows"], h["model"]["dim"]
    templates = np.frombuffer(plain[:rows * dim * 4], "<f4").reshape(rows, dim)
    assert np.array_equal(templates[0], ((np.arange(192) - 96) / 192).astype(np.float32))
    assert np.frombuffer(plain[rows * dim * 4:rows * (dim * 4 + 8)], "<u4").tolist() == [0, 0]

    issuer = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vec["issuer_seed"]))
    raw = identity.raw_public(issuer)
    wl = reader.open_list(reader.verify(data, {identity.key_id(raw): raw}), box)
    assert wl.model == NEW and wl.templates.shape == (1, 192) and np.array_equal(wl.templates, templates)
    spec = importlib.util.spec_from_file_location("make_vector", vectors / "make_watchlist_vector.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.build_v2_model() == data  # reproduced byte for byte


def test_a_tracks_views_are_fused_as_a_unit_vector_for_a_cosine_model(tmp_path):
    daemon, svc, ident, published = daemon_box(tmp_path)
    (tmp_path / "old.wlb").write_bytes(make_bundle(ISSUER, ident.wl_public, PEOPLE))
    svc.load(tmp_path / "old.wlb")
    wl = daemon.matcher.current
    views = [new_face("biden2.jpg")[0], new_face("biden.jpg")[0]]
    daemon.fusion.add("t-9", views[0], 0.0)
    fused = daemon.fusion.add("t-9", views[1], 0.0)  # two views of one track, as the daemon fuses them
    mean = np.mean(views, axis=0)
    assert np.allclose(fused, mean / np.linalg.norm(mean), atol=1e-6) and np.linalg.norm(mean) < 0.99
    template = wl.templates[1]  # the raw mean would sit nearer every template than its direction does
    assert np.linalg.norm(mean - template) < np.linalg.norm(fused - template)
