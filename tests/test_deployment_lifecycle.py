"""One deployment's whole life on the real daemon (tests/scenario_box.py), as a SPOC, an engineer and an
oversight body go through it: `enrol build` -> `enrol authorise --list` -> `edge deployment load` ->
`edge watchlist load` -> matches seen by a real console -> `kill -9` (run 1 ends: box down) -> restart
(run 2) -> `edge deployment end` (the list purged with a receipt, at once) -> the earlier window re-loaded
(refused: no revival) -> the report names both runs, why each ended, the refusal and the receipt, and
`enrol reconcile` agrees with the SPOC's register."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from conftest import ALEX, LIN, free_port, wait_for
from test_oversight_scenario import Box, Console, ok, records, screenshot, utc

from edge import identity
from edge.cli import cli as edge_cli
from edge.config import QualityConfig
from enrol.build import encode_image
from enrol.cli import cli as enrol_cli


def test_build_authorise_load_match_end_early_no_revival_report(tmp_path):
    runner = CliRunner()
    state, spoc, images = tmp_path / "state", tmp_path / "spoc", tmp_path / "images"
    images.mkdir()
    identity.create(state, "scn-box")
    identity.publish_cameras(state, ["cam1", "cam2"])
    cfg = tmp_path / "edge.toml"
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg.write_text(f'box_id = "scn-box"\nstate_dir = "{state}"\nmodel = "dlib-resnet"\n'  # the feeder's descriptors
                   '[[cameras]]\nid = "cam1"\nsource = "fed:1"\n'
                   f'[[cameras]]\nid = "cam2"\nsource = "fed:2"\n[alerts]\nendpoint = "{endpoint}"\n')
    ok(runner.invoke(enrol_cli, ["keygen", "--out", str(spoc), "--name", "SPOC Lifecycle", "--no-passphrase"]))
    ok(runner.invoke(edge_cli, ["trust", "add-issuer", str(spoc / "issuer.pub"), "--config", str(cfg)]))
    shutil.copy(LIN, images / "a.png")
    shutil.copy(ALEX, images / "b.png")
    (tmp_path / "refs.csv").write_text("ref,category,reason,images\nWL-A,wanted,Warrant 3/2026,a.png\n"
                                       "WL-B,missing person,Missing since Monday,b.png\n")
    now = datetime.now(UTC)
    ok(runner.invoke(enrol_cli, ["build", "--images", str(images), "--refs", str(tmp_path / "refs.csv"),
                                 "--for", str(state / "keys" / "box.pub.json"),
                                 "--issuer-key", str(spoc / "issuer.key"), "--expires", utc(now + timedelta(days=1)),
                                 "--deployment", "Op Lantern", "-o", str(tmp_path / "list.wlb")]))
    ok(runner.invoke(enrol_cli, ["authorise", "--issuer-key", str(spoc / "issuer.key"),
                                 "--for", str(state / "keys" / "box.pub.json"), "--deployment", "Op Lantern",
                                 "--list", str(tmp_path / "list.wlb"), "--location", "Station forecourt",
                                 "--camera", "cam1", "--camera", "cam2", "--start", utc(now - timedelta(minutes=5)),
                                 "--end", utc(now + timedelta(hours=4)), "--purpose", "locate wanted persons",
                                 "--authority-ref", "MPS-LFR-0412", "-o", str(tmp_path / "window.json")]))
    box_ = ["--config", str(cfg)]
    ok(runner.invoke(edge_cli, ["deployment", "load", str(tmp_path / "window.json"), *box_]))
    ok(runner.invoke(edge_cli, ["watchlist", "load", str(tmp_path / "list.wlb"), *box_]))
    probes = {"A": encode_image(LIN, QualityConfig())[0], "B": encode_image(ALEX, QualityConfig())[0]}
    rng = np.random.default_rng(5)
    box, console = Box(cfg), Console({"tmp": tmp_path, "state": state, "endpoint": endpoint})
    try:
        box.start()
        box.see("cam1", "t1", probes["A"] + rng.normal(0, 0.002, probes["A"].shape).astype(np.float32))
        wait_for(lambda: len(console.alerts) == 1, 30, "run 1's alert")
        box.kill9()  # run 1 ends with the box: its counts since the last flush are lost, and the report says so
        box.start()
        box.see("cam2", "t2", probes["B"] + rng.normal(0, 0.002, probes["B"].shape).astype(np.float32))
        wait_for(lambda: len(console.alerts) == 2, 30, "run 2's alert")
        console.decide(console.alerts[1], "confirm", "approached", "")
        wait_for(lambda: any(r["kind"] == "adjudication" for r in records(state)), 30, "the decision")
        r = runner.invoke(edge_cli, ["deployment", "end", "Op Lantern", "--reason", "suspect found",
                                     "--who", "Insp Wood", *box_])
        assert r.exit_code == 0, r.output
        assert "list " in r.output and "purged (2 entries): receipt signed at" in r.output  # by the running daemon
        st = json.loads(ok(runner.invoke(edge_cli, ["status", "--json", *box_])))
        assert st["watchlist"] is None and not any(st["deployment"]["authorised"].values())
        r = runner.invoke(edge_cli, ["deployment", "load", str(tmp_path / "window.json"), *box_])
        assert r.exit_code == 1 and "cannot revive it" in r.output and "Traceback" not in r.output
    finally:
        box.stop()
        console.close()
    out = tmp_path / "report.json"
    ok(runner.invoke(edge_cli, ["audit", "report", "--format", "json", "-o", str(out), *box_]))
    rep = json.loads(out.read_text())
    dep = rep["runs"]["deployments"]["Op Lantern"]
    run1, run2 = dep["runs"]
    assert run1["why"].startswith("box down") and "were lost when the box went down" in run1["counts_lost"]
    assert run1["sightings"] == 1 and run1["lists"] == [rep["watchlists"][0]["list_id"]]
    assert run2["why"] == "command: ended by Insp Wood: suspect found"
    assert (run2["sightings"], run2["confirmed"], run2["verified_by"]) == (1, 1, ["PC Jones"])
    (refused,) = dep["refused"]
    assert "cannot revive it" in refused["reason"]
    (wl,) = rep["watchlists"]
    assert wl["ended"]["how"] == "deployment ended" and wl["ended"]["receipt_check"].startswith("signature valid")
    assert rep["runs"]["unauthorised"]["sightings"] == 0
    (row,) = rep["summary"]["deployments"]["rows"]
    assert row[:2] == ["Op Lantern", "2"] and row[5] == "1" and row[7] == "MPS-LFR-0412"
    text = ok(runner.invoke(edge_cli, ["audit", "report", *box_]))
    assert "run 1: " in text and "run 2: " in text and wl["ended"]["receipt_file"] in text
    assert f"{wl['list_id']} (bundle sha256 {wl['bundle_sha256']})" in text  # the list the window named, by hash
    assert text.index("Summary. Deployments") < text.index("1. What images were shared")
    agree = ok(runner.invoke(enrol_cli, ["reconcile", str(spoc / "bundles.jsonl"), str(out)]))
    assert "both sides agree" in agree
    ok(runner.invoke(edge_cli, ["audit", "report", "--format", "html", "-o", str(tmp_path / "report.html"), *box_]))
    page = (tmp_path / "report.html").read_text()
    assert page.index('id="summary-deployments"') < page.index("<svg") and "<ul>" not in page  # tables first
    if os.environ.get("EDGE_REPORT_SCREENSHOT"):  # refresh docs/report.png
        screenshot(tmp_path / "report.html", Path(os.environ["EDGE_REPORT_SCREENSHOT"]), height=1000)
