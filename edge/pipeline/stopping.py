"""Stopping deployments from a command (``edge deployment end``, ``edge trust remove``): through the running
daemon, which closes the runs and purges their lists at once, else on the stored state the next start uses."""

from __future__ import annotations

from pathlib import Path

from edge import deployment, identity
from edge.errors import EdgeError


def daemon_up(cfg) -> bool:
    """Does a daemon answer on this box's control socket?"""
    from edge.pipeline.control import request

    ep = cfg.control_endpoint
    if ep.startswith("ipc://") and not Path(ep[len("ipc://"):]).exists():
        return False
    try:
        request(ep, {"cmd": "status"}, 1.0)
        return True
    except EdgeError:
        return False


def audit(cfg):
    """Without a daemon, a command writes its own audit records (the daemon's log, same chain)."""
    from edge.audit.log import record

    return lambda kind, **fields: record(cfg.state_dir, kind, **fields)


def stop_deployments(cfg, ids: list[str], *, by: str, reason: str, ending: str) -> list[dict]:
    """Stop deployments now (each recorded first) and purge their lists with receipts; returns the receipts."""
    if daemon_up(cfg):
        from edge.pipeline.control import request

        return request(cfg.control_endpoint, {"cmd": "deployment_stop", "ids": ids, "by": by, "reason": reason,
                                              "ending": ending}, 120.0)["receipts"]
    from edge.watchlist.service import WatchlistService

    record = audit(cfg)
    svc = WatchlistService(cfg, identity.load(cfg.state_dir), record=record)
    out = []
    for dep_id in ids:
        deployment.stop(cfg.state_dir, dep_id, by=by, reason=reason, ending=ending, record=record)
        rc = svc.deployment_ended(dep_id, force=True)
        out += [rc] if rc else []
    return out


def receipt_line(rc: dict) -> str:
    """How a command that ended a list says so."""
    return f"list {rc['list_id']} purged ({rc['entries']} entries): receipt signed at {rc['time']}"
