"""The face model as one unit (edge/face/model.py): each model detects, prepares and encodes real faces through
one API, names itself in what it makes, and refuses in one sentence to compare another model's templates."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import config
from edge.errors import EdgeError
from edge.face import api, model, quality

IDENTITIES = Path(__file__).resolve().parent / "data" / "media" / "identities"


def _photos(n: int = 2):
    for person in sorted(p for p in IDENTITIES.iterdir() if p.is_dir())[:3]:
        for f in sorted(person.iterdir())[:n]:
            yield person.name, cv2.imread(str(f))


@pytest.mark.parametrize("model_id", model.ids())
def test_each_model_detects_prepares_and_encodes_real_faces_through_one_api(model_id):
    m = model.get(model_id)
    vecs, who = [], []
    for name, bgr in _photos():
        faces = m.detect(bgr)
        assert faces, f"{m.id} found no face in a photo of {name}"
        face = max(faces, key=lambda f: f.box[2] - f.box[0])
        chip, q = m.prepare(api.to_rgb(bgr), face, m.gate())
        assert chip.shape == (m.chip_size, m.chip_size, 3) and q.ok, q.reason
        vecs.append(m.encode([chip])[0])
        who.append(name)
    v = m.check(np.array(vecs))
    d = m.distances(v, v)
    same = np.array(who)[:, None] == np.array(who)[None, :]
    off = ~np.eye(len(who), dtype=bool)
    assert d[same & off].max() < d[~same].min()  # the same person nearer than anyone else, by the model's distance
    assert (d >= 0).all() and (d <= 2.0 + 1e-6).all()


def test_a_face_found_without_landmarks_is_still_prepared_by_the_new_model():
    m = model.get(model.DEFAULT)
    _, bgr = next(_photos())
    face = max(m.detect(bgr), key=lambda f: f.box[2] - f.box[0])
    rgb = api.to_rgb(bgr)
    with_pts = m.encode([m.prepare(rgb, face, m.gate())[0]])
    without = m.encode([m.prepare(rgb, model.Face(face.box, None, 1.0), m.gate())[0]])
    assert float((with_pts @ without.T)[0, 0]) > 0.99


def test_the_gate_is_the_models_own_unless_the_config_sets_it():
    m = model.get(model.DEFAULT)
    assert m.gate().min_sharpness != model.get(model.DLIB).gate().min_sharpness  # each measures its own chip
    cfg = config.parse('box_id = "b"\n[[cameras]]\nid = "c"\nsource = "x.mp4"\n[quality]\nmax_yaw = 0.3\n')
    g = m.gate(cfg.quality.min_face_px, cfg.quality.min_sharpness, cfg.quality.max_yaw)
    assert g.max_yaw == 0.3 and g.min_sharpness == m.gate_defaults.min_sharpness
    turned = quality.judge((0, 100, 100, 0), 1000.0, 0.35, g)
    assert not turned.ok and turned.reason == "turned"


def test_config_names_only_models_the_box_has():
    assert {i: model.get(i).cap for i in model.ids()} == config.MODELS
    base = 'box_id = "b"\n[[cameras]]\nid = "c"\nsource = "x.mp4"\n'
    assert config.parse(base).model == model.DEFAULT
    with pytest.raises(config.ConfigError, match="more lenient than the threshold floor 0.6"):
        config.parse('model = "dlib-resnet"\n' + base + "[match]\nthreshold = 0.7\n")
    with pytest.raises(config.ConfigError, match="^model: must be one of"):
        config.parse('model = "facenet"\n' + base)


def test_a_record_names_its_model_and_another_models_templates_are_refused_in_one_sentence():
    new, old = model.get(model.DEFAULT), model.get(model.DLIB)
    assert model.of(new.ref()) is new and model.of(None) is old  # unnamed: made before models were named
    for bad, words in (({"id": "facenet", "dim": 128, "sha256": "0" * 64}, "does not have"),
                       (dict(new.ref(), sha256="1" * 64), "other weights"),
                       ("dlib", "wrongly")):
        with pytest.raises(EdgeError, match=words) as err:
            model.of(bad, "the list")
        assert "\n" not in str(err.value)
    with pytest.raises(EdgeError, match="never compared") as err:
        model.check_same(new, old, "a template")
    with pytest.raises(EdgeError, match="not yunet-mobilefacenet templates"):
        new.check(np.zeros((2, 128), np.float32))
