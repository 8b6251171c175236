"""End to end: a real bundle, loaded with `edge watchlist load` into a real running daemon reading the
Hamilton clip, makes it alert on Lin-Manuel Miranda; a purge stops it and leaves a valid receipt."""

from __future__ import annotations

import json
import subprocess
import time

from conftest import HAMILTON, edge_cmd, free_port, running_daemon, write_config
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from wlhelpers import make_bundle, trust_issuer

from edge import identity
from edge.watchlist import operating, receipt


def edge(*args) -> subprocess.CompletedProcess:
    return subprocess.run(edge_cmd(*[str(a) for a in args]), capture_output=True, text=True, timeout=60)


def wait_for_daemon(config, proc, seconds=30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, (config.parent / "daemon.log").read_text()
        if edge("status", "--json", "--config", config, "--timeout", "1").returncode == 0:
            return
        time.sleep(0.3)
    raise AssertionError("the daemon did not answer")


def test_bundle_loaded_into_a_running_daemon_alerts_on_lin_then_purges(tmp_path, subscriber_factory):
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    cfg = write_config(tmp_path / "edge.toml", [{"id": "cam1", "source": HAMILTON, "loop": True}], None, endpoint)
    state = tmp_path / "state"
    ident = identity.create(state, "test-box")
    issuer = Ed25519PrivateKey.generate()
    trust_issuer(state, issuer)
    wlb = tmp_path / "lin.wlb"
    wlb.write_bytes(make_bundle(issuer, ident.wl_public, ("lin-manuel-miranda.png",), sequence=1))

    sub = subscriber_factory(endpoint)
    with running_daemon(cfg) as proc:
        wait_for_daemon(cfg, proc)
        refused = edge("watchlist", "load", tmp_path / "edge.toml", "--config", cfg)
        assert refused.returncode == 1 and "not a watch-list bundle" in refused.stderr
        out = edge("watchlist", "load", wlb, "--config", cfg)
        assert out.returncode == 0, out.stderr
        assert "loaded list list-1" in out.stdout
        st = json.loads(edge("status", "--json", "--config", cfg).stdout)
        assert st["watchlist"]["list_id"] == "list-1" and st["watchlist"]["entries"] == 1
        # the operating point derived for this list, and expected beside measured false alerts
        assert st["accuracy"]["operating"]["list_size"] == 1 and st["accuracy"]["expected_fpir"] <= 0.01
        # the box runs the default model and matches by the rule adopted for it (the list was dlib's: re-encoded)
        rule = operating.ADOPTED_RULE[st["model"]["id"]]
        assert f"matched at: {rule} rule" in edge("watchlist", "status", "--config", cfg).stdout
        assert "expected false alerts: 1 per" in edge("status", "--config", cfg).stdout

        msgs = sub.collect(60, until=lambda ms: any(m["type"] == "alert" for m in ms))
        alerts = [m for m in msgs if m["type"] == "alert"]
        assert alerts and alerts[0]["ref"] == "PN-0000" and alerts[0]["list_id"] == "list-1"
        assert any(m.get("event") == "watchlist_loaded" for m in msgs)

        out = edge("watchlist", "purge", "--reason", "test over", "--config", cfg)
        assert out.returncode == 0, out.stderr
        rc = json.loads(out.stdout)
        assert receipt.verify(rc, ident.signing_public)["entries"] == 1
        st = json.loads(edge("status", "--json", "--config", cfg).stdout)
        assert st["watchlist"] is None
        assert "no watch list loaded" in edge("watchlist", "status", "--config", cfg).stdout
    assert not (state / "watchlist" / "current.wlb").exists()
