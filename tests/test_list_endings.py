"""Every ending of a watch list has a signed receipt in the audit log; a list lives for one deployment."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wlhelpers import box_config, make_bundle, trust_issuer

from edge import identity
from edge.audit.log import AuditLog
from edge.audit.verify import verify_log
from edge.watchlist import receipt
from edge.watchlist.base import Matcher
from edge.watchlist.service import WatchlistService


def test_replaced_and_deployment_ended_lists_get_receipts_and_the_usb_file_goes(tmp_path):
    state, usb = tmp_path / "state", tmp_path / "usb"
    usb.mkdir()
    ident = identity.create(state, "box-a")
    key = Ed25519PrivateKey.generate()
    trust_issuer(state, key)
    log = AuditLog(state)
    cfg = box_config(state, usb=[usb])
    svc = WatchlistService(cfg, ident, Matcher(0.6), record=log.append)
    (tmp_path / "one.wlb").write_bytes(make_bundle(key, ident.wl_public, sequence=1, list_id="L-1"))
    svc.load(tmp_path / "one.wlb", via="cli")
    (usb / "two.wlb").write_bytes(make_bundle(key, ident.wl_public, sequence=2, list_id="L-2"))
    svc.scan_usb()
    assert svc.header["list_id"] == "L-2"
    again = WatchlistService(cfg, ident, Matcher(0.6), record=log.append)  # a restart
    again.start()
    again.stop()
    again.scan_usb()  # the same file, still on the stick: not loaded again
    assert again.deployment_ended("another op") is None
    rc = again.deployment_ended("test op")
    assert rc["reason"] == "deployment test op ended" and not (usb / "two.wlb").exists()
    log.close()
    recs = verify_log(state).records
    ends = [r["data"] for r in recs if r["kind"] == "watchlist_purged"]
    assert [(e["list_id"], e["ending"]) for e in ends] == [("L-1", "replaced"), ("L-2", "deployment ended")]
    for e in ends:  # each receipt can be rebuilt from the log and verifies with the box key
        body = {"type": receipt.RECEIPT_TYPE, "version": 1, **{k: e[k] for k in receipt.FIELDS},
                "signature": e["receipt_signature"]}
        receipt.verify(body, ident.signing_public)
    (gone,) = [r["data"] for r in recs if r["kind"] == "watchlist_file_deleted"]
    assert (gone["list_id"], gone["file"], gone["mount"]) == ("L-2", "two.wlb", str(usb))
