"""One flag name per meaning across `edge` and `enrol` (old names still work, hidden), and the engineer-facing
messages of issue 19: `edge watch`'s error, `edge status` figures, deployment names shared by `enrol build`
and `enrol authorise`."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from edge import identity
from edge.cli import cli as edge_cli
from edge.pipeline import live
from edge.pipeline.health import format_status
from enrol.cli import cli as enrol_cli

# a meaning -> the one visible option name, and the old names that must not show in --help
MEANINGS = {"box identity file": ("--box-key", ("--for",)), "output": ("--output", ("--out",))}


def commands(group, prefix=()):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from commands(cmd, prefix + (name,))
        else:
            yield prefix + (name,), cmd


def shown(cmd) -> set[str]:
    ctx = click.Context(cmd)
    out = set()
    for p in cmd.params:
        rec = p.get_help_record(ctx) if isinstance(p, click.Option) else None
        if rec:
            out.update(w.strip(",") for w in rec[0].split() if w.startswith("-"))
    return out


def test_one_visible_name_per_meaning_across_edge_and_enrol():
    seen = {}
    for root, group in (("edge", edge_cli), ("enrol", enrol_cli)):
        for path, cmd in commands(group):
            names = shown(cmd)
            seen[" ".join((root, *path))] = names
            for canonical, old in MEANINGS.values():
                assert not names & set(old), f"{root} {' '.join(path)} shows {names & set(old)}, not {canonical}"
    box_key_users = {c for c, names in seen.items() if "--box-key" in names}
    assert {"enrol build", "enrol authorise", "enrol verify-receipt", "edge audit verify"} <= box_key_users
    assert "--output" in seen["enrol keygen"] and "--output" in seen["edge watchlist purge"]


def test_one_meaning_per_visible_name():
    """The converse: a name takes one kind of value everywhere (`enrol build --refs refs.csv` beside
    `edge eval --refs 3` was one name for a file and for a count)."""
    kinds: dict[str, set[str]] = {}
    for group in (edge_cli, enrol_cli):
        for _, cmd in commands(group):
            for p in cmd.params:
                for name in shown(cmd) & set(getattr(p, "opts", ())):
                    kind = "flag" if getattr(p, "is_flag", False) else p.type.name
                    kinds.setdefault(name, set()).add("path" if kind in ("file", "directory") else kind)
    assert not {n: k for n, k in kinds.items() if len(k) > 1}
    r = CliRunner().invoke(edge_cli, ["eval", "--help"])
    assert "--refs-per-entry" in r.output and "--refs " not in r.output


def test_old_names_still_work(tmp_path):
    runner = CliRunner()
    r = runner.invoke(enrol_cli, ["keygen", "--out", str(tmp_path / "k"), "--no-passphrase"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(enrol_cli, ["keygen", "-o", str(tmp_path / "k2"), "--no-passphrase"])
    assert r.exit_code == 0 and (tmp_path / "k2" / "issuer.key").exists(), r.output
    identity.create(tmp_path / "box", "box-a")
    pub = str(tmp_path / "box" / "keys" / "box.pub.json")
    from wlhelpers import make_bundle

    from enrol.keys import load_issuer_private

    (tmp_path / "l.wlb").write_bytes(make_bundle(load_issuer_private(tmp_path / "k" / "issuer.key"),
                                                 identity.load(tmp_path / "box").wl_public,
                                                 header={"deployment": "Op UX", "box_id": "box-a"}))
    common = ["authorise", "--issuer-key", str(tmp_path / "k" / "issuer.key"), "--deployment", "Op UX",
              "--location", "High St", "--camera", "cam1", "--start", "2036-12-01T08:00:00+00:00",
              "--end", "2036-12-01T20:00Z", "--purpose", "test", "--list", str(tmp_path / "l.wlb")]
    for flag, out in (("--for", "a.dep"), ("--box", "c.dep"), ("--box-key", "b.dep")):
        r = runner.invoke(enrol_cli, [*common, flag, pub, "-o", str(tmp_path / out)])
        assert r.exit_code == 0, r.output
        assert json.loads((tmp_path / out).read_text())["deployment_id"] == "Op UX"


@pytest.mark.parametrize("name", ["Op UX!", "../etc", " Op", "Op ", "x" * 65])
def test_enrol_build_and_authorise_refuse_the_same_deployment_names(tmp_path, name):
    runner = CliRunner()
    runner.invoke(enrol_cli, ["keygen", "-o", str(tmp_path / "k"), "--no-passphrase"])
    identity.create(tmp_path / "box", "box-a")
    pub = str(tmp_path / "box" / "keys" / "box.pub.json")
    (tmp_path / "refs.csv").write_text("ref,category,reason,images\nPN-1,wanted,x,a.png\n")
    build = runner.invoke(enrol_cli, ["build", "--images", str(tmp_path), "--refs", str(tmp_path / "refs.csv"),
                                      "--box-key", pub, "--issuer-key", str(tmp_path / "k" / "issuer.key"),
                                      "--expires", "2099-01-01T00:00Z", "--deployment", name, "-o",
                                      str(tmp_path / "l.wlb")])
    auth = runner.invoke(enrol_cli, ["authorise", "--issuer-key", str(tmp_path / "k" / "issuer.key"), "--box-key",
                                     pub, "--deployment", name, "--location", "x", "--camera", "c", "--start",
                                     "2026-12-01T08:00Z", "--end", "2026-12-01T09:00Z", "--purpose", "p", "-o",
                                     str(tmp_path / "d.dep")])
    for r in (build, auth):
        assert r.exit_code == 1 and "is not a deployment name: use 1-64 letters, digits, spaces" in r.output, r.output
        assert "Traceback" not in r.output
    assert not (tmp_path / "l.wlb").exists() and not (tmp_path / "d.dep").exists()


def test_edge_watch_errors_name_what_it_takes():
    r = CliRunner().invoke(edge_cli, ["watch", "nonsense"])
    assert r.exit_code == 1 and "ENDPOINT=KEY" in r.output
    assert "--box" not in r.output  # edge watch has no --box option
    h = CliRunner().invoke(edge_cli, ["watch", "--help"]).output
    assert "ENDPOINT=KEY" in h and "BOX" not in h and "--box" not in h  # the help names what the usage line shows


def test_edge_status_prints_figures_people_read():
    s = {"faces": 1_000_000, "alerts": 529_851, "decided": 2, "undecided": 529_849, "false_alerts": 1,
         "false_alert_rate": 0.5, "false_alert_rate_ci95": [0.1, 0.9], "target": 0.1,
         "alerts_per_1000_faces": 529.851, "faces_per_false_alert": 1_000_000, "expected_fpir": None,
         "measured_fpir": 1e-6, "operating": None, "warning": None}
    line = live.format_line(s)
    assert "530 alerts per 1,000 faces" in line and "1 false alert per 1,000,000 faces" in line
    assert "529.851" not in line
    assert live.figure(4.234) == "4.2" and live.figure(0.3149) == "0.31" and live.figure(1234.5) == "1,234"
    text = format_status({"box_id": "b", "uptime_s": 12_345.6, "alerts_sent": 1234,
                          "latency_ms": {"n": 20, "p50": 55.2, "p95": 165.0, "p99": 181.4}})
    assert "up 3 h 25 min" in text and "1,234 encounters" in text
    assert "p50 / p95 / p99 55 / 165 / 181 ms (20 alerts)" in text and "{" not in text
