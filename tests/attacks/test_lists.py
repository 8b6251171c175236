"""A list that ended stays ended (issue 24, item 1 and the Lows on sequence.json and image hashes): a replaced
list leaves a purge record, a receipt and its sequence marked purged, with the daemon running or not and whoever
signed the later list; a deleted or older sequence record does not let an older or ended list load again; a
reference image whose signed SHA-256 is wrong is refused at load."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wlhelpers import make_bundle, trust_issuer

from attacks.hostile import ISSUER, Box, face, t, write_config
from edge.cli import cli
from edge.errors import EdgeError
from edge.watchlist import bundle_v2
from edge.watchlist.service import WatchlistService

OTHER = Ed25519PrivateKey.generate()


def _second(box: Box, who: str) -> bytes:
    """The later list: from the same issuer (a higher sequence) or from another trusted issuer."""
    if who == "same issuer":
        return box.bundle(sequence=5, list_id="Y", faces=("lin-manuel-miranda.png",))
    trust_issuer(box.state, OTHER)
    return make_bundle(OTHER, box.ident.wl_public, ("lin-manuel-miranda.png",), sequence=1, list_id="Y")


def _ended_for_good(box: Box, path) -> None:
    ends = [r["data"] for r in box.records("watchlist_purged") if r["data"]["list_id"] == "X"]
    assert ends and ends[-1]["ending"] == "replaced", "no purge record and receipt for the replaced list"
    assert list((box.state / "watchlist" / "receipts").glob("*-X.json")), "no receipt file"
    fresh = WatchlistService(box.cfg, box.ident, box.matcher, record=box.log.append)  # a later daemon or CLI
    with pytest.raises(EdgeError, match="purged from this box|older"):
        fresh.load(path)
    assert not box.matches_alex(), "the replaced list matches again"


@pytest.mark.parametrize("who", ["same issuer", "another issuer"])
def test_a_list_replaced_with_the_daemon_stopped_leaves_proof_and_never_returns(tmp_path, who):
    box = Box(tmp_path)
    cfg = write_config(box)
    cfg.write_text(cfg.read_text() + "[deployment]\nrequired = false\n")  # as the Box's own config
    x = box.file(box.bundle(sequence=4, list_id="X"), "x.wlb")
    y = box.file(_second(box, who), "y.wlb")
    for path in (x, y):  # two offline commands: each its own process, as an engineer would run them
        r = CliRunner().invoke(cli, ["watchlist", "load", str(path), "--config", str(cfg)])
        assert r.exit_code == 0, r.output
    _ended_for_good(box, x)


def _replaced_live(box: Box, who: str):
    """List X loaded on a running box, then replaced by list Y (``who`` signed it); X's file."""
    x = box.file(box.bundle(sequence=4, list_id="X"), "x.wlb")
    box.svc.load(x)
    box.svc.load(box.file(_second(box, who), "y.wlb"))
    return x


@pytest.mark.parametrize("who", ["same issuer", "another issuer"])
def test_a_list_replaced_on_a_live_box_never_loads_again(tmp_path, who):
    box = Box(tmp_path)
    x = _replaced_live(box, who)
    _ended_for_good(box, x)
    with pytest.raises(EdgeError, match="purged from this box|older"):
        box.svc.load(x)


@pytest.mark.parametrize("how", ["deleted", "put back to an older copy"])
def test_the_sequence_record_rolled_back_does_not_let_an_older_list_load(tmp_path, how):
    box = Box(tmp_path)
    seq = box.state / "watchlist" / "sequence.json"
    old = box.file(box.bundle(sequence=2, list_id="old"), "old.wlb")
    box.svc.load(old)
    shutil.copy(seq, tmp_path / "seq.bak")
    box.svc.load(box.file(box.bundle(sequence=3, list_id="new"), "new.wlb"))
    if how == "deleted":
        seq.unlink()
    else:
        shutil.copy(tmp_path / "seq.bak", seq)
    fresh = WatchlistService(box.cfg, box.ident, box.matcher, record=box.log.append)
    with pytest.raises(EdgeError, match="older|rollback"):
        fresh.load(old)
    assert box.svc.status()["list_id"] == "new"


@pytest.mark.parametrize("who", ["same issuer", "another issuer"])
def test_the_sequence_record_deleted_after_a_replacement_does_not_bring_the_list_back(tmp_path, who):
    box = Box(tmp_path)
    x = _replaced_live(box, who)
    (box.state / "watchlist" / "sequence.json").unlink()
    fresh = WatchlistService(box.cfg, box.ident, box.matcher, record=box.log.append)
    with pytest.raises(EdgeError, match="purged from this box|older"):
        fresh.load(x)


class _Swapped:
    """A reference image whose bytes change after the writer hashed them: what a hostile (or broken) issuer
    tool makes, a signed SHA-256 that is not the image's."""

    def __init__(self, jpeg: bytes):
        self.first, self.then, self.reads = jpeg, jpeg[:-3] + bytes([jpeg[-3] ^ 1]) + jpeg[-2:], 0
        self.source = self.taken = ""

    @property
    def jpeg(self) -> bytes:
        self.reads += 1
        return self.first if self.reads <= 2 else self.then


@pytest.mark.parametrize("which", ["the only image", "the second image of an entry", "the last of three entries"])
def test_an_image_whose_signed_sha256_is_wrong_is_refused_at_load(tmp_path, which):
    box = Box(tmp_path)
    names = ["alex-lacamoire.png", "lin-manuel-miranda.png", "alex_lacamoire1.jpg"]
    n_entries = 3 if which.startswith("the last") else 1
    items = []
    for e in range(n_entries):
        tmpl, jpeg = face(names[e])
        images = [bundle_v2.RefImage(jpeg)]
        if which.startswith("the second"):
            images.append(bundle_v2.RefImage(face(names[1])[1]))
        rows = np.stack([tmpl] * len(images))
        items.append(bundle_v2.Item(f"PN-{e:04d}", "wanted", "test", rows, images))
    items[-1].images[-1] = _Swapped(items[-1].images[-1].jpeg)
    data = bundle_v2.write(_header(box, n_entries), items, ISSUER, box.ident.wl_public)
    with pytest.raises(EdgeError, match="sha256|SHA-256|image"):
        box.svc.load(box.file(data))
    assert box.matcher.current is None and box.records("watchlist_refused")


def _header(box: Box, n: int) -> dict:
    return {"list_id": "L-img", "deployment": "test op", "box_id": "box", "created": t(), "not_before": t(minutes=-1),
            "not_after": t(hours=2), "sequence": 3, "entries": n,
            "policy": {"max_entries": 100, "threshold_floor": 0.6, "retention_days": 31}}


@pytest.mark.parametrize("how", ["swapped for another file", "removed", "replaced by a FIFO"])
def test_a_lists_usb_file_changed_before_its_deployment_ends_is_recorded(tmp_path, how):
    import os

    usb = tmp_path / "usb"
    usb.mkdir()
    box = Box(tmp_path, usb=[usb])
    (usb / "list.wlb").write_bytes(box.bundle(sequence=2, list_id="L-usb"))
    box.svc.scan_usb()
    assert box.svc.status()["list_id"] == "L-usb"
    (usb / "list.wlb").unlink()
    if how.startswith("swapped"):
        (usb / "list.wlb").write_bytes(b"another file")
    elif how.endswith("FIFO"):
        os.mkfifo(usb / "list.wlb")
    assert box.svc.deployment_ended("test op") is not None
    left = [r["data"] for r in box.records("watchlist_file_left")]
    assert left and left[0]["file"] == "list.wlb" and left[0]["list_id"] == "L-usb", "the ending left no record"


# --- deployment windows (issue 24, Lows) --------------------------------------------------------------------

def _window(key, deployment_id: str, cameras: list[str]) -> bytes:
    """A window signed by ``key`` as `enrol authorise` writes it, but with whatever camera ids a hostile (or
    careless) issuer tool puts in (``window.make`` itself checks them)."""
    import json
    from datetime import UTC, datetime, timedelta

    from edge import codec, identity
    from edge.deployment import window

    now = datetime.now(UTC)
    doc = {"type": window.DOC_TYPE, "v": window.VERSION, "deployment_id": deployment_id, "box_id": "box-a",
           "location": "King's Cross", "cameras": cameras, "start": codec.fmt_time(now - timedelta(minutes=1)),
           "end": codec.fmt_time(now + timedelta(hours=2)), "purpose": "wanted persons",
           "issuer": identity.key_id(identity.raw_public(key)), "issuer_name": "", "authority_ref": "",
           "issued": codec.fmt_time(now, ms=True), "lists": [{"list_id": "L-1", "sha256": "0" * 64}]}
    doc["signature"] = codec.sign(window.SIGN_DOMAIN, doc, key)
    return json.dumps(doc).encode()


@pytest.mark.parametrize("cam", ["cam1\n"])
def test_a_window_camera_id_with_a_trailing_newline_is_refused(tmp_path, cam):
    from edge.deployment import store

    box = Box(tmp_path)
    path = box.file(_window(ISSUER, "dep-1", [cam]), "w.json")
    with pytest.raises(EdgeError, match="camera"):
        store.load(box.state, path, record=box.log.append)
    assert box.records("deployment_refused")


def test_a_window_from_another_issuer_does_not_replace_one_with_the_same_id(tmp_path):
    from edge.deployment import store

    box = Box(tmp_path)
    trust_issuer(box.state, OTHER)
    store.load(box.state, box.file(_window(ISSUER, "dep-1", ["cam1"]), "a.json"), record=box.log.append)
    with pytest.raises(EdgeError, match="already authorised by issuer"):
        store.load(box.state, box.file(_window(OTHER, "dep-1", ["cam1", "cam2"]), "b.json"), record=box.log.append)
    (dep,) = store.stored(box.state)
    assert dep.cameras == ("cam1",) and box.records("deployment_refused")
