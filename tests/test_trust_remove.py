"""`edge trust remove` of a console that is connected: it gets nothing more, at once (issue 25; the same
live-connection check issue 24 item 2 asks for). Real CURVE sockets, the real channel and console link."""

from __future__ import annotations

import zmq.utils.z85 as z85
from click.testing import CliRunner
from conftest import wait_for
from test_channel import BOX, box, synthetic_alert  # noqa: F401 - box is the channel fixture

from edge import identity
from edge.cli import cli as edge_cli


def test_a_removed_console_gets_no_more_alerts_on_its_live_connection(box, tmp_path):  # noqa: F811
    retired, kept = box.console("retired"), box.console("kept")
    retired.start()
    kept.start()
    box.publish(synthetic_alert(1))
    assert wait_for(lambda: retired.refs() == kept.refs() == ["R0001"], 20, "both consoles' first alert")
    from edge.console import keys

    pub = (retired.data / keys.PUB_FILE).read_text().split()[-1]
    kid = identity.key_id(z85.decode(pub.encode()))
    cfg = tmp_path / "edge.toml"
    cfg.write_text(f'box_id = "{BOX}"\nstate_dir = "{box.state}"\n[[cameras]]\nid = "cam1"\nsource = "a.mp4"\n'
                   f'[alerts]\ncontrol_endpoint = "ipc://{tmp_path}/none.sock"\n')
    r = CliRunner().invoke(edge_cli, ["trust", "remove", kid, "--reason", "console retired", "--config", str(cfg)])
    assert r.exit_code == 0 and f"removed console {kid}" in r.output, r.output
    assert wait_for(lambda: box.info()["consoles_connected"] == 1, 20, "the retired console's session to close")
    box.publish(synthetic_alert(2))
    assert wait_for(lambda: kept.refs() == ["R0001", "R0002"], 20, "the kept console's second alert")
    assert retired.refs() == ["R0001"]  # the alert sent after the removal never reached the retired console
