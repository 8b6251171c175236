"""`edge eval` on the bundled identities (5 people, 11 images each), and the live false-alert measure.

The data set is encoded once per module (the live pipeline's detector, gate and encoder: ~5 s);
the CLI test encodes it again end to end and must give the very same report.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.cli import cli
from edge.eval import dataset, encode, metrics, report
from edge.pipeline import live
from edge.watchlist.base import Entry, Matcher, WatchList

REPO = Path(__file__).resolve().parent.parent
IDENTITIES = REPO / "tests" / "data" / "media" / "identities"
GROUPS = REPO / "tests" / "data" / "eval" / "groups.csv"
DOC = REPO / "docs" / "eval.md"
SETTINGS = dict(splits=5, seed=3, max_fpir=0.05)


@pytest.fixture(scope="module")
def data():
    ds = dataset.load(IDENTITIES, GROUPS)
    return ds, encode.encode_dataset(ds)


def build(data, **kw) -> dict:
    return report.build(*data, report.Settings(**{**SETTINGS, **kw}))


def run(*args):
    return CliRunner().invoke(cli, ["eval", *map(str, args)])


def test_cli_runs_end_to_end_writes_a_png_and_matches_the_library(data, tmp_path):
    plot = tmp_path / "det.png"
    res = run(IDENTITIES, "--model", "dlib-resnet", "--threshold", 0.6, "--groups", GROUPS, "--splits", 5, "--seed", 3,
              "--recommend", "--max-fpir", 0.05, "--plot", plot, "--json", "--no-progress")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["format"] == "edge-eval/1"
    assert rep["images"]["total"] == 55 and rep["images"]["usable"] >= 50
    expected = build(data)
    for key in ("images", "identification", "verification", "groups", "recommendation"):
        assert rep[key] == expected[key], key  # one code path: CLI encoding == library encoding
    png = plot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width > 400 and height > 200
    assert not list(tmp_path.glob(".*tmp"))


def test_fpir_rises_and_fnir_falls_as_the_threshold_loosens(data):
    curve = build(data)["identification"]["curve"]
    t = curve["thresholds"]
    for fnir, fpir in zip([curve["fnir_mean"], *curve["fnir_by_split"]],
                          [curve["fpir_mean"], *curve["fpir_by_split"]], strict=True):
        assert (np.diff(fnir) <= 0).all(), "FNIR must not rise as the threshold loosens"
        assert (np.diff(fpir) >= 0).all(), "FPIR must not fall as the threshold loosens"
    strict, loose = t.index(0.3), t.index(0.9)
    assert curve["fnir_mean"][strict] > 0.5 > curve["fnir_mean"][loose]
    assert curve["fpir_mean"][strict] == 0.0 < curve["fpir_mean"][loose]


def test_identification_decisions_are_the_live_matchers(data):
    """metrics.search hits == edge.watchlist Matcher.match hits, probe by probe."""
    ds, enc = data
    split = metrics.make_splits(enc.labels, 1, 0.5, 1, seed=1)[0]
    found = metrics.search(enc.descriptors, enc.labels, split)
    entries = [Entry(ref=ds.identities[i]) for i in enc.labels[split.gallery]]
    wl = WatchList("t", entries, enc.descriptors[split.gallery], np.arange(len(entries)))
    m = Matcher(0.5)
    m.swap(wl)
    for rows, ours in ((split.mated, found.fnir(0.5)), (split.non_mated, found.fpir(0.5))):
        hits = [m.match(enc.descriptors[r]) for r in rows]
        if rows is split.mated:
            live_fnir = np.mean([h is None or h[0].ref != ds.identities[enc.labels[r]]
                                 for h, r in zip(hits, rows, strict=True)])
            assert live_fnir == pytest.approx(float(ours))
        else:
            assert np.mean([h is not None for h in hits]) == pytest.approx(float(ours))


def test_same_seed_same_json_other_seed_other_splits(data):
    a, b = json.dumps(build(data), sort_keys=True), json.dumps(build(data), sort_keys=True)
    assert a == b
    c = build(data, seed=4)
    assert c["identification"]["curve"]["fnir_by_split"] != json.loads(a)["identification"]["curve"][
        "fnir_by_split"]


def test_every_json_key_is_documented(data):
    doc = DOC.read_text()

    def keys(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield k
                yield from keys(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from keys(v)

    missing = sorted({k for k in keys(build(data)) if f"`{k}`" not in doc})
    assert not missing, f"keys not described in docs/eval.md: {missing}"


def test_group_rows_add_up_with_their_counts(data):
    rep = build(data)
    rows = {g["group"]: g for g in rep["groups"]}
    assert set(rows) == {"group-a", "group-b"}
    assert rows["group-a"]["identities"] == 3 and rows["group-b"]["identities"] == 2
    assert sum(g["images"] for g in rows.values()) == rep["images"]["usable"]
    per_split = rep["identification"]
    assert sum(g["mated_searches"] for g in rows.values()) == round(
        per_split["mated_searches_per_split"]["mean"] * SETTINGS["splits"])
    assert sum(g["genuine_pairs"] for g in rows.values()) == rep["verification"]["genuine_pairs"]
    for g in rows.values():
        assert g["fnir"]["splits"] >= 1 and 0.0 <= g["fnir"]["mean"] <= 1.0


def test_recommend_gives_the_most_lenient_threshold_meeting_the_target(data):
    rep = build(data)
    rec, curve = rep["recommendation"], rep["identification"]["curve"]
    k = curve["thresholds"].index(rec["threshold"])
    assert all(split[k] <= 0.05 for split in curve["fpir_by_split"])
    assert any(split[k + 1] > 0.05 for split in curve["fpir_by_split"])
    assert rec["demonstrable"] is False and rec["non_mated_searches_needed"] == 60  # 22 unlisted searches


def test_verification_eer_and_rates_at_threshold(data):
    ver = build(data)["verification"]
    n = data[1].descriptors.shape[0]
    assert ver["genuine_pairs"] + ver["impostor_pairs"] == n * (n - 1) // 2
    assert ver["impostor_pairs_sampled"] is False
    assert 0.0 <= ver["eer"] < 0.1
    roc = ver["roc"]
    assert roc["fmr"] == sorted(roc["fmr"]) and roc["tmr"] == sorted(roc["tmr"])


def two_person_set(root: Path, per_person: int = 3) -> Path:
    for person in ("John_Simm", "John_Salley"):
        (root / person).mkdir(parents=True)
        for img in sorted((IDENTITIES / person).glob("*.jpg"))[:per_person]:
            shutil.copy(img, root / person / img.name)
    return root


def test_text_report_marks_the_threshold_shows_groups_and_lists_unusable_images(tmp_path):
    root = two_person_set(tmp_path / "set")
    cv2.imwrite(str(root / "John_Simm" / "blank.png"), np.full((120, 120, 3), 128, np.uint8))
    (root / "John_Salley" / "broken.jpg").write_bytes(b"not a jpeg")
    (root / "groups.csv").write_text("John_Simm,north\nJohn_Salley,south\n")
    res = run(root, "--threshold", 0.55, "--plot", tmp_path / "p.png", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "8 images of 2 identities, 6 usable, 2 with no usable face" in res.output
    assert "*     0.55" in res.output and "EER" in res.output
    assert "  north " in res.output and "  south " in res.output
    assert "John_Simm/blank.png: no face found" in res.output
    assert "John_Salley/broken.jpg: the file is not a readable image" in res.output
    assert f"DET plot written to {tmp_path / 'p.png'}" in res.output


def test_the_configs_quality_gate_and_threshold_are_used(tmp_path):
    root = two_person_set(tmp_path / "set", per_person=4)  # faces 108 or 129 px high
    config = tmp_path / "edge.toml"
    config.write_text('box_id = "t"\nmodel = "dlib-resnet"\n[[cameras]]\nid = "a"\nsource = "a.mp4"\n'
                      '[quality]\nmin_face_px = 120\n[match]\nthreshold = 0.55\n')
    res = run(root, "--config", config, "--plot", tmp_path / "p.png", "--no-progress")
    assert res.exit_code == 0, res.output
    assert "8 images of 2 identities, 3 usable, 5 with no usable face" in res.output
    assert res.output.count(": quality gate: small") == 5
    # what the box would do, not the raw cap: the model, its rule and the threshold derived for 1,000 entries
    assert "face model: dlib-resnet" in res.output and "for a list of 1,000 at 1 per 1,000 passers-by" in res.output
    assert "ratio rule at" in res.output and "(distance cap 0.55)" in res.output  # the config's cap holds
    derived = float(re.search(r"distance rule at that rate: (\d\.\d+)", res.output).group(1))
    assert derived < 0.55 and f"*     {derived:.2f}" in res.output


def test_a_single_identity_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "set" / "only_one").mkdir(parents=True)
    res = run(tmp_path / "set", "--plot", tmp_path / "p.png")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "needs at least 2 identity folders" in res.output


def test_a_groups_file_naming_an_unknown_identity_is_refused(tmp_path):
    root = two_person_set(tmp_path / "set")
    (root / "groups.csv").write_text("identity,group\nJohn_Simm,x\nzed,y\n")
    res = run(root, "--plot", tmp_path / "p.png")
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "row 2 names identity 'zed', which has no folder of images" in res.output
    assert not (tmp_path / "p.png").exists()


# -- the live measure ------------------------------------------------------------------------------

def test_live_false_alert_rate_and_drift_warning():
    counts = live.Counts(encodings=12_000, alerts=30)
    for _ in range(22):
        counts.decide("confirm")
    for _ in range(5):
        counts.decide("dismiss", "Not the person")
    counts.decide("dismiss", "poor image")
    s = live.summary(counts, target=0.1)
    assert s["decided"] == 28 and s["undecided"] == 2 and s["false_alerts"] == 5
    assert s["false_alert_rate"] == pytest.approx(5 / 28, abs=1e-4)
    lo, hi = s["false_alert_rate_ci95"]
    assert lo < 5 / 28 < hi
    assert s["alerts_per_1000_faces"] == 2.5 and s["faces_per_false_alert"] == 2400
    assert "above the target 10.0%" in s["warning"]
    line = live.format_line(s)
    assert "5 of 28 decided" in line and "1 false alert per 2,400 faces" in line and "WARNING" in line
    assert live.summary(counts, target=0.2)["warning"] == ""


def test_live_measure_stays_quiet_with_few_decisions():
    counts = live.Counts(encodings=100, alerts=3)
    counts.decide("dismiss", "not the person")
    s = live.summary(counts, target=0.1)
    assert s["false_alert_rate"] == 1.0 and s["warning"] == ""  # 1 decision proves nothing
    assert "no decided" in live.format_line(live.summary(live.Counts(), 0.1))
    with pytest.raises(ValueError):
        counts.decide("shrug")


def test_list_sizes_report_both_rules_and_the_operating_point(tmp_path):
    plot = tmp_path / "sizes.png"
    res = run(IDENTITIES, "--list-sizes", "1", "--splits", 2, "--plot", plot, "--json", "--no-progress")
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    size = rep["sizes"]["1"]
    assert set(size["rules"]) == {"ratio", "distance"}
    assert rep["model"] == "yunet-mobilefacenet" and rep["adopted_rule"] == "distance"  # the model's own rule
    for r in size["rules"].values():
        assert {"fnir_at_fpir_0.01", "fnir_at_fpir_0.001", "fpir", "fnir", "threshold", "det"} <= set(r)
    assert size["calibration"] == "lfw-dev-yunet-mobilefacenet"  # too few people to calibrate on: the shipped one
    assert plot.read_bytes()[:4] == b"\x89PNG"
    bad = run(IDENTITIES, "--list-sizes", "ten", "--no-progress")
    assert bad.exit_code == 1 and "is not a comma-separated list of sizes" in bad.output


def test_calibrate_needs_enough_people_and_says_so(tmp_path):
    res = run(IDENTITIES, "--calibrate", tmp_path / "cal.json", "--no-progress")
    assert res.exit_code == 1 and "at least 50 different people" in res.output
    assert "Traceback" not in res.output and not (tmp_path / "cal.json").exists()
