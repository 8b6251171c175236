"""The oversight store's checks on arrival, on real box logs (edge.audit.log, real keys): a key rotation is
followed, a re-provisioned box is kept apart and named, an edited record is refused with nothing after it
taken, and the database and config refuse in one sentence (edge/oversight/ingest.py, db.py, config.py)."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from click.testing import CliRunner
from conftest import REPO

from edge import codec, identity
from edge.audit.log import AuditLog, record
from edge.cli import cli as edge_cli
from edge.errors import EdgeError
from edge.oversight import config
from edge.oversight.db import open_db
from edge.oversight.ingest import Ingest


def provisioned(state, box_id="b1"):
    ident = identity.create(state, box_id)
    record(state, "provisioned", box_id=box_id, signing_key_id=identity.key_id(ident.signing_public),
           signing_public=codec.b64(ident.signing_public))
    return ident


def alerts(state, n, start=0):
    log = AuditLog(state)
    for i in range(start, start + n):
        log.append("alert", alert_id=f"a{i}", camera_id="cam1", time="2026-11-22T08:00:00.000Z", ref="WL-1",
                   distance=0.4)
    log.close()


def lines(state):
    return (state / "audit" / "audit.log").read_bytes().split(b"\n")[:-1]


def service(tmp_path, pub):
    (tmp_path / "o.toml").write_text(f'[database]\nurl = "o.db"\n[[boxes]]\nidentity = "{pub}"\nsite = "S"\n'
                                     'site_kind = "public"\n')
    cfg = config.load(tmp_path / "o.toml")
    db = open_db(cfg.url, migrate=True)
    config.register_boxes(db, cfg, "2026-12-01T00:00:00.000Z")
    return db


def test_rotation_followed_reprovisioned_box_kept_apart(tmp_path):
    state = tmp_path / "box"
    provisioned(state)
    alerts(state, 3)
    pub = tmp_path / "b1.pub.json"
    shutil.copy(state / "keys" / "box.pub.json", pub)  # what the force registered at provisioning
    old = identity.load(state)
    new = identity.create(state, "b1", rotate=True)
    record(state, "key_rotated", old_key_id=identity.key_id(old.signing_public),
           new_key_id=identity.key_id(new.signing_public), signing_public=codec.b64(new.signing_public))
    alerts(state, 3, 3)
    db = service(tmp_path, pub)
    ing = Ingest(db)
    out = ing.accept("b1", lines(state), "link")
    assert (out.accepted, out.refused, out.incidents) == (len(lines(state)), 0, [])
    assert out.signed_through == out.last_seq  # the new key's checkpoints count: it was rotated to
    assert len(db.q("SELECT key_id FROM box_keys WHERE box_id = 'b1'")) == 2
    held = out.last_seq

    shutil.rmtree(state)  # wiped and provisioned again: new keys, a new log from seq 1
    provisioned(state)
    alerts(state, 2)
    out = ing.accept("b1", lines(state), "link")
    kinds = {r[0]: r for r in db.q("SELECT kind, branch, from_seq, to_seq, detail FROM incidents")}
    assert set(kinds) == {"replaced", "signature"}
    assert kinds["replaced"][1:4] == (1, 1, held) and f"seqs 1..{held}" in kinds["replaced"][4]
    assert "not registered" in kinds["signature"][4]
    assert out.signed_through == 0  # held, shown, not vouched for
    assert db.one("SELECT COUNT(*) FROM records WHERE box_id = 'b1' AND branch = 0")[0] == held  # nothing merged


def test_an_edited_record_is_refused_and_nothing_after_it_taken(tmp_path):
    state = tmp_path / "box"
    provisioned(state)
    alerts(state, 10)
    ls = lines(state)
    ls[5] = ls[5].replace(b'"ref":"WL-1"', b'"ref":"WL-9"')
    db = service(tmp_path, state / "keys" / "box.pub.json")
    out = Ingest(db).accept("b1", ls, "export")
    assert (out.accepted, out.refused, out.last_seq) == (5, 1, 5)
    assert "record seq 6 (alert) was edited" in out.incidents[0]
    assert db.one("SELECT COUNT(*) FROM records")[0] == 5
    db.close()
    # a console witnessed the box's checkpoint after seq 5; the service's copy lacks it: the service is caught
    cp = next(json.loads(ln) for ln in lines(state) if b'"kind":"checkpoint"' in ln and json.loads(ln)["seq"] > 5)
    w = tmp_path / "w.json"
    w.write_text(json.dumps({"type": "edge-audit-witness", "v": 1, "console": "c1",
                             "witnesses": [{"console": "c1", "box_id": "b1", "checkpoint": cp}]}))
    r = CliRunner().invoke(edge_cli, ["oversight", "verify", "-c", str(tmp_path / "o.toml"), "--witness", str(w)])
    assert r.exit_code == 1 and f"checkpoint seq {cp['seq']} witnessed by c1: the service's copy does not hold it" \
        in r.output, r.output


def test_database_and_config_refuse_in_one_sentence(tmp_path):
    runner = CliRunner()
    cfg = tmp_path / "o.toml"
    cfg.write_text('[database]\nurl = "o.db"\n')
    r = runner.invoke(edge_cli, ["oversight", "report", "-c", str(cfg)])
    assert r.exit_code == 1 and "does not exist: run 'edge oversight migrate'" in r.output
    assert "Traceback" not in r.output
    assert "schema version 2" in runner.invoke(edge_cli, ["oversight", "migrate", "-c", str(cfg)]).output
    with sqlite3.connect(tmp_path / "o.db") as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    for cmd in ("report", "migrate"):
        r = runner.invoke(edge_cli, ["oversight", cmd, "-c", str(cfg)])
        assert r.exit_code == 1 and "schema version 99, newer than this service knows (2): update the service" \
            in r.output, r.output
    cfg.write_text('[database]\nurl = "o.db"\nurll = "x"\n')
    r = runner.invoke(edge_cli, ["oversight", "report", "-c", str(cfg)])
    assert r.exit_code == 1 and "database.urll: unknown key" in r.output
    cfg.write_text('[database]\nurl = "o.db"\n[[boxes]]\nidentity = "x.json"\nsite = "S"\nsite_kind = "secret"\n')
    r = runner.invoke(edge_cli, ["oversight", "report", "-c", str(cfg)])
    assert r.exit_code == 1 and "boxes[0].site_kind: must be one of private, public" in r.output
    assert json.loads((tmp_path / "keys" / "oversight.pub.json").read_text())["type"] == "edge-oversight-identity"


def test_witness_vector():
    """docs/oversight-service.md's test vector: the audit-format vector's checkpoint, countersigned."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge.audit.uplink import check_witness, countersign

    doc = (REPO / "docs" / "audit-format.md").read_text()
    cp = json.loads(next(ln for ln in doc.splitlines() if ln.startswith('{"box_id":"box-test","data":{"key_id"')))
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
    w = countersign(cp, "box-test", "2026-11-22T08:01:03.000Z", key)
    spec = (REPO / "docs" / "oversight-service.md").read_text()
    assert f"`{w['service_key_id']}`" in spec and f"`{w['sig']}`" in spec
    assert check_witness(w, identity.raw_public(key), "box-test") == w
    w["checkpoint"]["seq"] = 4
    with pytest.raises(EdgeError, match="not signed by the registered service key"):
        check_witness(w, identity.raw_public(key), "box-test")


def test_a_box_speaks_only_for_itself(tmp_path):
    """The link: a registered box's CURVE key may send only its own records; other keys are not let in."""
    from edge.audit import uplink
    from edge.oversight.server import Server

    state, other = tmp_path / "box", tmp_path / "other"
    ident = provisioned(state)
    provisioned(other, "b2")
    alerts(other, 2)
    db = service(tmp_path, state / "keys" / "box.pub.json")
    server = Server(config.load(tmp_path / "o.toml"), db, config.keys(tmp_path / "keys", create=True))
    assert server.callback("oversight", ident.curve_public)
    assert not server.callback("oversight", identity.load(other).curve_public)
    spoof = uplink.dumps("uplink_records", box_id="b2", records=[ln.decode() for ln in lines(other)], box_last_seq=4)
    assert server.handle(ident.curve_public, spoof) is None and server.counts["bad_messages"] == 1
    own = uplink.dumps("uplink_records", box_id="b1", records=[ln.decode() for ln in lines(state)], box_last_seq=2)
    ack = uplink.loads(server.handle(ident.curve_public, own), {"uplink_ack"})
    assert ack["seq"] == 2 and ack["witness"]["checkpoint"]["seq"] == 2
    assert db.one("SELECT COUNT(*) FROM records")[0] == 2


def test_deleted_records_are_a_gap_named_by_their_seqs(tmp_path):
    state = tmp_path / "box"
    provisioned(state)
    alerts(state, 10)
    ls = lines(state)
    db = service(tmp_path, state / "keys" / "box.pub.json")
    out = Ingest(db).accept("b1", ls[:5] + ls[8:], "link")  # seqs 6..8 deleted on the way
    assert out.incidents and out.accepted == len(ls) - 3
    assert db.q("SELECT kind, branch, from_seq, to_seq FROM incidents") == [("gap", 1, 6, 8)]
    assert "seqs 6..8 were never received" in out.incidents[0]


def test_a_log_cut_back_is_truncated_at_the_next_contact(tmp_path):
    state = tmp_path / "box"
    provisioned(state)
    alerts(state, 10)
    ls = lines(state)
    db = service(tmp_path, state / "keys" / "box.pub.json")
    ing = Ingest(db)
    ing.accept("b1", ls, "link")
    out = ing.accept("b1", [], "link", box_last=7)  # the box now says its log ends at seq 7
    assert db.q("SELECT kind, from_seq, to_seq FROM incidents") == [("truncated", 8, len(ls))]
    assert f"holds seqs 8..{len(ls)}" in out.incidents[0]


def test_migration_2_files_each_decision_and_deletion_on_its_alert(tmp_path):
    """A version 1 store (alerts, decisions and deletions in their own tables) is brought up to version 2 in
    place: each alert row then holds its decision and its deletion, which the report reads."""
    from edge.oversight.db import Database
    from edge.oversight.report import Scope, build

    db = Database(str(tmp_path / "o.db"))
    db.migrate(upto=1)
    with db.tx():
        db.x("INSERT INTO boxes VALUES ('b1', 'S', 'private', 'k', 'now')")
        for n in (1, 2, 3):
            db.x("INSERT INTO alerts VALUES ('b1', ?, 0, ?, '2026-11-22T08:00:00.000Z', 'WL-1', 'L1', 'i', '', "
                 "'cam1', 0.4)", (f"a{n}", n))
        db.x("INSERT INTO decisions VALUES ('b1', 'a1', 0, 7, 't', 'confirm', 'arrested', '', 'PC 1')")
        db.x("INSERT INTO decisions VALUES ('b1', 'a2', 0, 8, 't', 'dismiss', '', 'poor image', 'PC 1')")
        db.x("INSERT INTO deletions VALUES ('b1', 'a1', 0, 9, 't')")
    assert db.version() == 1 and db.migrate() == [2] and db.version() == 2
    assert db.q("SELECT alert_id, decision, action, decision_seq, deleted_seq FROM alerts ORDER BY alert_id") == [
        ("a1", "confirm", "arrested", 7, 9), ("a2", "dismiss", "poor image", 8, None), ("a3", None, None, None, None)]
    t = build(db, Scope())["total"]
    assert (t["action"]["confirmed"], t["action"]["dismissed"], t["action"]["undecided"]) == (1, 1, 1)
    assert t["action"]["actions"] == {"arrested": 1} and t["deleted"]["alerts_deleted"] == 1


def test_register_export_vector():
    """docs/register-export.md's vector is what the code writes, and any change to it is refused."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from edge.watchlist import register_export

    doc = (REPO / "docs" / "register-export.md").read_text()
    vector = doc.split("```\n")[1].encode()
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    assert register_export.make([b'{"box_id":"box-test","list_id":"L1"}'], key, "Test SPOC",
                                "2026-11-22T08:00:00Z") == vector
    header, lines = register_export.verify(vector)
    assert (header["issuer"], header["name"], lines) == ("56475aa75463474c", "Test SPOC",
                                                        [b'{"box_id":"box-test","list_id":"L1"}'])
    for bad, why in ((vector.replace(b"L1", b"L2"), "does not verify"), (vector.rsplit(b"\n", 2)[0], "cut short"),
                     (vector.replace(b'"issuer":"5', b'"issuer":"6'), "bad header")):
        with pytest.raises(EdgeError, match=why):
            register_export.verify(bad)
