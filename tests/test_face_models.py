"""The shipped face models (YuNet detector, MobileFaceNet encoder): checked at load, and they do their job
on real faces (the identities set: five people, several photos each)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.errors import EdgeError
from edge.face import mobilefacenet, weights, yunet

IDENTITIES = Path(__file__).resolve().parent / "data" / "media" / "identities"


def test_weights_with_a_wrong_checksum_are_refused_in_one_sentence(tmp_path):
    for name in weights.PINNED:
        data = bytearray((weights.FOLDER / name).read_bytes())
        data[len(data) // 2] ^= 1
        (tmp_path / name).write_bytes(bytes(data))
        with pytest.raises(EdgeError) as err:
            weights.load(name, tmp_path)
        msg = str(err.value)
        assert "fail their checksum" in msg and name in msg and "\n" not in msg
    with pytest.raises(EdgeError, match="cannot be read"):
        weights.load(next(iter(weights.PINNED)), tmp_path / "missing")


def test_the_shipped_weights_match_their_pins():
    for name in weights.PINNED:
        assert weights.load(name) == (weights.FOLDER / name).read_bytes()


def _embeddings():
    people = sorted(p for p in IDENTITIES.iterdir() if p.is_dir())
    vecs, who = [], []
    for i, person in enumerate(people):
        for f in sorted(person.iterdir())[:3]:
            bgr = cv2.imread(str(f))
            faces = yunet.detect(bgr)
            assert faces, f"YuNet found no face in {f.name}"
            face = max(faces, key=lambda x: x.box[2] - x.box[0])
            chip = mobilefacenet.align(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), face.landmarks)
            assert chip.shape == (112, 112, 3)
            vecs.append(mobilefacenet.encode([chip])[0])
            who.append(i)
    return np.array(vecs), np.array(who)


def test_yunet_and_mobilefacenet_tell_real_people_apart():
    vecs, who = _embeddings()
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    sims = vecs @ vecs.T
    same = (who[:, None] == who[None, :]) & ~np.eye(len(who), dtype=bool)
    different = who[:, None] != who[None, :]
    assert sims[same].min() > sims[different].max()  # every same-person pair above every other pair
