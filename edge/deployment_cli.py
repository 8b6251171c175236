"""`edge deployment`: load a signed deployment authorisation onto the box, end one early, show which are in force."""

from __future__ import annotations

import json

import click

from edge.cli_options import (
    config_option,
    load_config,
    on_box,
    resolve_state_dir,
    state_dir_option,
    user_errors,
    who_option,
)
from edge.cli_options import who as who_is
from edge.codec import printable


@click.group()
def deployment():
    """Deployment windows: matching runs only inside one signed by a trusted issuer."""


@deployment.command("load")
@click.argument("path", type=click.Path(dir_okay=False))
@on_box
def load_command(path, config_path, state_dir):
    """Check a deployment authorisation (from `enrol authorise`) and store it; logged either way."""
    from edge import deployment as dep_mod
    from edge.audit.log import AuditLog

    state = resolve_state_dir(config_path, state_dir)
    log = AuditLog(state)
    try:
        dep = dep_mod.load(state, path, record=log.append)
    finally:
        log.close()
    click.echo(printable(f"deployment {dep.deployment_id} loaded: {dep.location}, cameras {', '.join(dep.cameras)}, "
               f"{dep_mod.fmt_time(dep.start)} to {dep_mod.fmt_time(dep.end)}, authorised by "
               f"{dep.issuer_name or dep.issuer}"))


@deployment.command("end")
@click.argument("deployment_id")
@click.option("--reason", required=True, help="Why it ends early (recorded in the audit log).")
@who_option("Who ends it (recorded; default: your login name).")
@on_box
def end_command(deployment_id, reason, who, config_path, state_dir):
    """End a deployment now: no window issued before now revives it; its lists are purged with receipts."""
    from edge.errors import EdgeError
    from edge.pipeline.stopping import receipt_line, stop_deployments

    if not reason.strip():
        raise EdgeError("say why the deployment ends (--reason)")
    cfg = load_config(config_path, state_dir)
    by = who_is(who)
    receipts = stop_deployments(cfg, [deployment_id], by=by, reason=reason.strip(), ending="command")
    click.echo(f"deployment {deployment_id} ended by {by}: {reason.strip()}")
    for rc in receipts:
        click.echo(receipt_line(rc))
    if not receipts:
        click.echo("no watch list of this deployment was on the box")


@deployment.command("status")
@config_option
@state_dir_option
@click.option("--json", "as_json", is_flag=True)
@user_errors
def status_command(config_path, state_dir, as_json):
    """List the deployments on the box and whether each is active, upcoming or ended."""
    from edge import deployment as dep_mod
    from edge.errors import EdgeError

    try:  # a box that requires an authority reference: windows without one are emergency use
        require_ref = load_config(config_path, state_dir).deployment.require_authority_ref
    except EdgeError:
        require_ref = False  # a state dir looked at without its config
    problems: list[str] = []
    deps = dep_mod.status(resolve_state_dir(config_path, state_dir), problems=problems, require_ref=require_ref)
    if as_json:
        click.echo(json.dumps(deps, indent=2))
        return
    for why in problems:
        click.echo(f"DAMAGED  {why}")
    if not any(d["state"] == "active" for d in deps):
        click.echo("not authorised: no deployment window is active now (no face is encoded or matched)")
    for d in deps:
        cams = ", ".join(d["cameras"])
        click.echo(printable(f"{d['state']:8} {d['deployment_id']}: {d['location']}, cameras {cams}, "
                   f"{d['start']} to {d['end']}, purpose: {d['purpose']}, authorised by {d['issuer']}, lists "
                   f"{', '.join(x['list_id'] for x in d['lists'])}"
                   + (f"; {d['stop_reason']} at {d['stopped']}" if d.get("stopped") else "")
                   + ("; EMERGENCY USE: no authority reference, stops 24 h after its start" if d["emergency"]
                      else "")))
