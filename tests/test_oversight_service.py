"""The force's oversight service (edge oversight), on a real PostgreSQL server and on SQLite, with real boxes.

Three real boxes (tests/scenario_box.py: the daemon with its cameras replaced by a feeder of real face
descriptors) stream their audit logs over CURVE ZeroMQ to a real `edge oversight serve` process. Two SPOCs
(real `enrol keygen`/`enrol build`) issue lists: SPOC A to box 1 (a private site: loaded, matched, purged
with a receipt) and to box 2 (loaded, never ended: no receipt); SPOC B to box 3 (loaded and purged) and a
second list to box 3 that never arrives. Box 2 is killed with `kill -9`, writes more records while it is
down, and catches up without loss or duplicates; box 3 is rolled back by root (its state folder put back
to an older copy) and is flagged with the seq range it lost; an offline van's `edge audit export` is
carried by hand and ingested. The fleet report, the fleet reconcile and `verify` then answer exactly.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import LIN, REPO, free_port, wait_for
from pghelpers import Postgres, available
from test_oversight_scenario import Box, records

from edge import identity
from edge.cli import cli as edge_cli
from edge.config import QualityConfig
from enrol.build import encode_image
from enrol.cli import cli as enrol_cli

SITES = {"box-1": ("Westfield shopping centre", "private"), "box-2": ("Stratford station", "public"),
         "box-3": ("Arena car park", "private"), "van-4": ("Mobile van 4", "public")}


def ok(result):
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def postgres():
    if not available():
        pytest.skip("Debian's postgresql is not installed (.ci/install-system-deps installs it)")
    pg = Postgres().start()
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def lin_probe():
    return encode_image(LIN, QualityConfig())[0]


class Service:
    """`edge oversight serve` in its own process."""

    def __init__(self, cfg: Path):
        self.cfg = cfg
        self.log = open(cfg.parent / "service.log", "a")
        self.proc = subprocess.Popen([sys.executable, "-m", "edge", "oversight", "serve", "-c", str(cfg)],
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


def make_box(tmp: Path, box_id: str, endpoint: str, service_pub: Path | None) -> dict:
    state = tmp / box_id
    identity.create(state, box_id)
    cfg = tmp / f"{box_id}.toml"
    text = (f'box_id = "{box_id}"\nstate_dir = "{state}"\nmodel = "dlib-resnet"\n'
            '[[cameras]]\nid = "cam1"\nsource = "fed:1"\n'
            f'[alerts]\nendpoint = "tcp://127.0.0.1:{free_port()}"\n[health]\nlog_interval = 1.0\n'
            '[deployment]\nrequired = false\n')
    if service_pub:
        text += f'[oversight]\nendpoint = "{endpoint}"\nservice_key = "{service_pub}"\n'
    cfg.write_text(text)
    return {"id": box_id, "state": state, "cfg": cfg, "pub": state / "keys" / "box.pub.json"}


def spoc(tmp: Path, name: str) -> Path:
    d = tmp / name.replace(" ", "-")
    ok(CliRunner().invoke(enrol_cli, ["keygen", "--out", str(d), "--name", name, "--no-passphrase"]))
    return d


def build(tmp: Path, spoc_dir: Path, box: dict, n: int, images: Path) -> Path:
    refs = tmp / f"refs-{box['id']}-{n}.csv"
    refs.write_text("ref,category,reason,images,source,taken\n"
                    "WL-A,wanted,Warrant 11/2026,a.png,PNC custody,2026-10-02\n")
    out = tmp / f"{spoc_dir.name}-{box['id']}-{n}.wlb"
    expires = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ok(CliRunner().invoke(enrol_cli, ["build", "--images", str(images), "--refs", str(refs), "--for", str(box["pub"]),
                                      "--issuer-key", str(spoc_dir / "issuer.key"), "--expires", expires,
                                      "--deployment", f"op-{box['id']}", "--sequence", str(n), "-o", str(out)]))
    return out


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_fleet_streams_catches_up_flags_rollback_and_reconciles(engine, tmp_path, request, lin_probe):
    runner = CliRunner()
    if engine == "postgresql":
        url, reader_url = request.getfixturevalue("postgres").new_database()
        db_lines = f'url = "{url}"\nreader_url = "{reader_url}"\nreader_role = "reader"\n'
    else:
        db_lines = 'url = "oversight.db"\n'
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    svc_dir = tmp_path / "service"
    svc_dir.mkdir()
    boxes = {}
    for b in SITES:
        boxes[b] = make_box(tmp_path, b, endpoint, svc_dir / "keys" / "oversight.pub.json" if b != "van-4" else None)
    cfg = svc_dir / "oversight.toml"
    cfg.write_text(f"[database]\n{db_lines}[service]\nendpoint = \"{endpoint}\"\nkeys = \"keys\"\n"
                   + "".join(f'[[boxes]]\nidentity = "{boxes[b]["pub"]}"\nsite = "{s}"\nsite_kind = "{k}"\n'
                             for b, (s, k) in SITES.items()))
    assert "4 box(es) registered" in ok(runner.invoke(edge_cli, ["oversight", "migrate", "-c", str(cfg)]))
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(LIN, images / "a.png")
    a, b_ = spoc(tmp_path, "SPOC A"), spoc(tmp_path, "SPOC B")
    for box, s in (("box-1", a), ("box-2", a), ("box-3", b_)):
        ok(runner.invoke(edge_cli, ["trust", "add-issuer", str(s / "issuer.pub"), "--config", str(boxes[box]["cfg"])]))
    lists = {"box-1": build(tmp_path, a, boxes["box-1"], 1, images),
             "box-2": build(tmp_path, a, boxes["box-2"], 1, images),
             "box-3": build(tmp_path, b_, boxes["box-3"], 1, images)}
    build(tmp_path, b_, boxes["box-3"], 2, images)  # issued, never delivered

    service = Service(cfg)
    running = {k: Box(boxes[k]["cfg"]) for k in ("box-1", "box-2", "box-3")}
    try:
        for k, box in running.items():
            box.start()
            ok(runner.invoke(edge_cli, ["watchlist", "load", str(lists[k]), "--config", str(boxes[k]["cfg"])]))
        running["box-1"].see("cam1", "t1", lin_probe)  # a match at the private site
        wait_for(lambda: any(r["kind"] == "alert" for r in records(boxes["box-1"]["state"])), 30, "the alert")
        for k in ("box-1", "box-3"):
            ok(runner.invoke(edge_cli, ["watchlist", "purge", "--config", str(boxes[k]["cfg"])]))

        # box 2: killed, more records written while it is down, then back: it catches up
        running["box-2"].kill9()
        ok(runner.invoke(edge_cli, ["trust", "add-issuer", str(b_ / "issuer.pub"), "--config",
                                    str(boxes["box-2"]["cfg"])]))
        running["box-2"].start()

        # box 3: stopped, its state folder copied; started (more records), stopped; put back by root; started
        wait_for(lambda: service_holds(cfg, "box-3") == last_seq(boxes["box-3"]), 30, "box 3 streamed")
        running["box-3"].stop()
        snapshot = tmp_path / "box-3-copy"
        shutil.copytree(boxes["box-3"]["state"], snapshot, ignore=shutil.ignore_patterns("*.sock"))
        lost_from = last_seq(boxes["box-3"]) + 1
        running["box-3"].start()
        wait_for(lambda: service_holds(cfg, "box-3") == last_seq(boxes["box-3"]), 30, "box 3 streamed again")
        running["box-3"].stop()
        lost_to = last_seq(boxes["box-3"])
        shutil.rmtree(boxes["box-3"]["state"])
        shutil.copytree(snapshot, boxes["box-3"]["state"])  # log, head and anchor: all of them older
        running["box-3"].start()

        for k in ("box-1", "box-2"):
            wait_for(lambda k=k: service_holds(cfg, k) == last_seq(boxes[k]), 30, f"{k} caught up")
        wait_for(lambda: "ROLLBACK" in report_text(cfg, "--box", "box-3"), 30, "box 3's rollback flagged")
    finally:
        for box in running.values():
            box.stop()
        time.sleep(0.5)
        service.stop()

    # every record of boxes 1 and 2, exactly once, byte for byte
    for k in ("box-1", "box-2"):
        log = (boxes[k]["state"] / "audit" / "audit.log").read_text().splitlines()
        assert stored_lines(cfg, k) == log
    # the rollback: named with the seq range the box lost, kept apart, not merged
    rep = json.loads(ok(runner.invoke(edge_cli, ["oversight", "report", "-c", str(cfg), "--format", "json"])))
    (rb,) = [i for i in rep["incidents"] if i["box_id"] == "box-3"]
    assert (rb["kind"], rb["from_seq"], rb["to_seq"]) == ("rollback", lost_from, lost_to)
    assert f"seqs {lost_from}..{lost_to}" in rb["detail"]
    assert [i for i in rep["incidents"] if i["box_id"] != "box-3"] == []
    r = runner.invoke(edge_cli, ["oversight", "verify", "-c", str(cfg), "--box", "box-3", "--box-log",
                                 str(boxes["box-3"]["state"] / "audit" / "audit.log")])
    assert r.exit_code == 1 and f"seqs {lost_from}..{lost_to}" in r.output
    # the service's countersigned witness, kept on box 1, checks the box's log, and the service's copy holds it
    witness = boxes["box-1"]["state"] / "audit" / "oversight-witness.json"
    assert "OK:" in ok(runner.invoke(edge_cli, ["audit", "verify", "--config", str(boxes["box-1"]["cfg"]),
                                                "--witness", str(witness)]))
    out = ok(runner.invoke(edge_cli, ["oversight", "verify", "-c", str(cfg), "--witness", str(witness)]))
    assert out.count("stored record(s) checked") == 4 and "1 witnessed checkpoint(s) checked" in out

    # a hand-carried export of the offline van; the same again is all duplicates
    van = boxes["van-4"]
    ok(runner.invoke(edge_cli, ["trust", "add-issuer", str(a / "issuer.pub"), "--config", str(van["cfg"])]))
    export = tmp_path / "van-4.export"
    ok(runner.invoke(edge_cli, ["audit", "export", "--config", str(van["cfg"]), "-o", str(export)]))
    n = len(export.read_text().splitlines()) - 2
    assert f"{n} new record(s), 0 already held, 0 refused" in ok(runner.invoke(
        edge_cli, ["oversight", "ingest", "-c", str(cfg), "--export", str(export)]))
    assert f"0 new record(s), {n} already held" in ok(runner.invoke(
        edge_cli, ["oversight", "ingest", "-c", str(cfg), "--export", str(export)]))
    assert stored_lines(cfg, "van-4") == export.read_text().splitlines()[1:-1]

    # the two SPOCs' registers (A's bundles.jsonl, B's signed export), reconciled across the fleet: the receipt
    # box 2 never gave, the list never loaded
    signed = tmp_path / "spoc-b.register"
    ok(runner.invoke(enrol_cli, ["register", "--issuer-key", str(b_ / "issuer.key"), "--export", str(signed)]))
    out = ok(runner.invoke(edge_cli, ["oversight", "ingest", "-c", str(cfg), "--register", str(a / "bundles.jsonl"),
                                      "--register", str(signed)]))
    assert out.count("2 list(s) added, 0 already held") == 2
    r = runner.invoke(edge_cli, ["oversight", "reconcile", "-c", str(cfg)])
    assert r.exit_code == 1, r.output
    found = sorted(ln for ln in r.output.splitlines() if ln.startswith("DISCREPANCY"))
    assert len(found) == 2, r.output
    assert found[0].startswith("DISCREPANCY: box box-2, issuer SPOC A (") and "no deletion receipt" in found[0]
    assert found[1].startswith("DISCREPANCY: box box-3, issuer SPOC B (") and "neither loaded nor refused" in found[1]
    assert "2 list(s) issued to 2 box(es), 2 loaded, 0 refused, 1 matched, 1 valid deletion receipt(s)" in r.output

    # the question from the seeds, in one command
    out = json.loads(ok(runner.invoke(edge_cli, ["oversight", "report", "-c", str(cfg), "--issuer", "SPOC A",
                                                 "--site-kind", "private", "--detail", "--format", "json"])))
    t = out["total"]
    assert (t["shared"]["lists"], t["shared"]["images"], t["shared"]["boxes"]) == (1, 1, 1)
    assert (t["matched"]["encounters"], t["action"]["undecided"]) == (1, 1)
    assert t["deleted"]["lists_with_valid_receipt"] == 1 and t["deleted"]["lists_not_ended"] == 0
    (alert,) = out["alerts"]
    assert alert["box_id"] == "box-1" and alert["ref"] == "WL-A" and len(alert["hash"]) == 64
    text = ok(runner.invoke(edge_cli, ["oversight", "report", "-c", str(cfg), "--by", "issuer"]))
    assert "1. What images were shared" in text and "3 image(s) of 3 reference(s) in 3 list(s)" in text
    html = tmp_path / "fleet.html"
    ok(runner.invoke(edge_cli, ["oversight", "report", "-c", str(cfg), "--format", "html", "-o", str(html)]))
    assert "4. Were they deleted" in html.read_text()
    if engine == "postgresql":  # the readers' role may read, never write
        import psycopg

        with psycopg.connect(reader_url) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM incidents")


def last_seq(box: dict) -> int:
    return records(box["state"])[-1]["seq"]


def _db(cfg: Path):
    from edge.oversight import config
    from edge.oversight.db import open_db

    c = config.load(cfg)
    return open_db(c.reader_url or c.url, readonly=True)


def service_holds(cfg: Path, box: str) -> int:
    db = _db(cfg)
    try:
        row = db.one("SELECT MAX(last_seq) FROM branches WHERE box_id = ?", (box,))
        return int(row[0]) if row and row[0] is not None else 0
    finally:
        db.close()


def stored_lines(cfg: Path, box: str) -> list[str]:
    db = _db(cfg)
    try:
        return [ln for (ln,) in db.q("SELECT line FROM records WHERE box_id = ? ORDER BY branch, seq", (box,))]
    finally:
        db.close()


def report_text(cfg: Path, *args: str) -> str:
    return CliRunner().invoke(edge_cli, ["oversight", "report", "-c", str(cfg), *args]).output

