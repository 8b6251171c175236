"""Bad config is one clear line naming the key, with a non-zero exit and no traceback."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edge import config
from edge.cli import cli
from edge.errors import ConfigError

GOOD = """
box_id = "b1"
[[cameras]]
id = "a"
source = "rtsp://127.0.0.1/x"
[[cameras]]
id = "b"
source = "0"
"""


def test_good_config_defaults():
    cfg = config.parse(GOOD)
    assert [c.id for c in cfg.cameras] == ["a", "b"]
    assert cfg.match.threshold is None and cfg.detect.max_width == 640  # None: the face model's own cap
    assert cfg.control_endpoint.startswith("ipc://")


@pytest.mark.parametrize("extra, message", [
    ("[detect]\nmax_width = 'wide'", "detect.max_width: expected an integer"),
    ("[detect]\nmax_widht = 640", "detect.max_widht: unknown key"),
    ("[match]\nthreshold = 1.5", "match.threshold: 1.5 is more lenient than the threshold floor 1.2"),
    ("[[cameras]]\nid = 'a'\nsource = 'x'", "cameras[2].id: duplicate camera id 'a'"),
    ("[[cameras]]\nid = 'c'", "cameras[2].source: required key is missing"),
    ("[quality]\nmin_face_px = 5", "quality.min_face_px: must be at least 20"),
    ("[alerts]\nendpoint = 'http://x'", "alerts.endpoint: must be a ZeroMQ endpoint"),
    ("[encode]\nmax_per_track = true", "encode.max_per_track: expected an integer"),
])
def test_bad_values_name_their_key(extra, message):
    with pytest.raises(ConfigError) as exc:
        config.parse(GOOD + extra)
    assert message in str(exc.value)


def test_cli_reports_bad_config_in_one_line(tmp_path):
    bad = tmp_path / "edge.toml"
    bad.write_text(GOOD + "[detect]\nupsample = 7\n")
    result = CliRunner().invoke(cli, ["run", "--config", str(bad), "--state-dir", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: detect.upsample: must be 0, 1 or 2"
    assert "Traceback" not in result.output


def test_cli_reports_unparsable_and_missing_files(tmp_path):
    runner = CliRunner()
    r = runner.invoke(cli, ["run", "--config", str(tmp_path / "nope.toml")])
    assert r.exit_code == 1 and "cannot read config file" in r.output and len(r.output.splitlines()) == 1
    broken = tmp_path / "broken.toml"
    broken.write_text("box_id = [")
    r = runner.invoke(cli, ["run", "--config", str(broken)])
    assert r.exit_code == 1 and "is not valid TOML" in r.output


def test_status_without_a_daemon_is_a_clear_error(tmp_path):
    cfg = tmp_path / "edge.toml"
    cfg.write_text(GOOD)
    r = CliRunner().invoke(cli, ["status", "--config", str(cfg), "--state-dir", str(tmp_path), "--timeout", "0.3"])
    assert r.exit_code == 1 and "no edge daemon is answering" in r.output
