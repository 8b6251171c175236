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
        assert e["receipt_version"] == receipt.VERSION
        receipt.verify(receipt.from_record(e), ident.signing_public)
    (gone,) = [r["data"] for r in recs if r["kind"] == "watchlist_file_deleted"]
    assert (gone["list_id"], gone["file"], gone["mount"]) == ("L-2", "two.wlb", str(usb))


def test_a_list_that_outlives_its_deployment_stays(tmp_path):
    state = tmp_path / "state"
    ident = identity.create(state, "box-a")
    key = Ed25519PrivateKey.generate()
    trust_issuer(state, key)
    svc = WatchlistService(box_config(state), ident, Matcher(0.6))
    (tmp_path / "l.wlb").write_bytes(make_bundle(key, ident.wl_public, header={"ends_with_deployment": False}))
    svc.load(tmp_path / "l.wlb")
    assert svc.deployment_ended("test op") is None and svc.header["list_id"] == "list-1"


def test_a_console_prune_becomes_pruned_messages_kept_until_the_box_acks(tmp_path):
    import time

    from edge.alerts import protocol, retention
    from edge.console.store import Store

    store = Store(tmp_path / "console.db")
    for i, box in enumerate(("box-a", "box-a", "box-b")):
        store.receive("tcp://x", {"type": "alert", "alert_id": f"a{i}", "box_id": box, "camera_id": "cam1",
                                  "time": "2026-12-01T08:00:00.000Z", "ref": "WL-1", "distance": 0.4,
                                  "threshold": 0.6})
    assert len(retention.apply(store, retention.Policy(1 / 24, "test"), clock=lambda: time.time() + 7200)) == 3
    (msg,) = store.undelivered_prunes("box-a")
    assert msg["alert_ids"] == ["a0", "a1"] and msg["retention_days"] == round(1 / 24, 4)
    protocol.loads(protocol.messages.dumps(msg), allowed={"pruned"})  # what the box accepts
    store.prune_delivered(msg["prune_id"])
    assert store.undelivered_prunes("box-a") == [] and len(store.undelivered_prunes("box-b")) == 1


def test_reconcile_says_in_one_sentence_when_a_file_is_not_a_register_or_report(tmp_path):
    from click.testing import CliRunner

    from enrol.cli import cli

    (tmp_path / "reg.jsonl").write_text('{"list_id": "L-1", "box_id": "box-a"}\n')
    (tmp_path / "junk.json").write_text("[1, 2]")
    (tmp_path / "old.json").write_text('{"type": "edge-oversight-report", "v": 1}')
    for args, says in ((["reg.jsonl", "junk.json"], "is not an oversight report of version 2"),
                       (["reg.jsonl", "old.json"], "is not an oversight report of version 2"),
                       (["junk.json", "old.json"], "is not a bundle register entry"),
                       (["nothing.jsonl", "old.json"], "cannot read register")):
        r = CliRunner().invoke(cli, ["reconcile", *[str(tmp_path / a) for a in args]])
        assert r.exit_code != 0 and says in r.output and "Traceback" not in r.output, r.output
    rep = {"type": "edge-oversight-report", "v": 2, "box_id": "box-a", "watchlists": [], "refused": []}
    (tmp_path / "rep.json").write_text(__import__("json").dumps(rep))
    r = CliRunner().invoke(cli, ["reconcile", str(tmp_path / "reg.jsonl"), str(tmp_path / "rep.json")])
    assert r.exit_code == 1 and "DISCREPANCY: list L-1 (issued ?, deployment ?) was neither loaded nor refused" \
        in r.output
