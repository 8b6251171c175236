"""`edge watchlist ...` and `edge trust ...`: thin commands over WatchlistService and edge.identity.

With a daemon running, watch-list commands go to it over the control socket (the swap happens in the
process that matches); without one, they act on the stored state, used at the next start.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from edge import files, identity
from edge.cli_options import load_config, on_box, output_option, who_option
from edge.cli_options import who as who_is
from edge.codec import printable_tree
from edge.errors import EdgeError


def _daemon_up(cfg) -> bool:
    from edge.pipeline.stopping import daemon_up

    return daemon_up(cfg)


def _run(cfg, cmd: str, **args) -> dict:
    """Ask the running daemon, else do it here on the stored state."""
    if _daemon_up(cfg):
        from edge.pipeline.control import request

        reply = request(cfg.control_endpoint, {"cmd": cmd, **args}, 120.0)
        reply.pop("ok", None)
        return reply
    from edge.watchlist.service import WatchlistService

    svc = WatchlistService(cfg, identity.load(cfg.state_dir), record=_audit(cfg))
    return svc.commands()[cmd](args)


def _audit(cfg):
    from edge.pipeline.stopping import audit

    return audit(cfg)


def _describe(st: dict) -> str:
    if not st.get("list_id"):
        return "no watch list loaded"
    st = printable_tree(st)  # list id, deployment: an issuer's text, never a terminal's escape codes
    left = int(st["expires_in_s"])
    when = (f"expires {st['not_after']} (in {left // 3600} h {left % 3600 // 60} min)" if left > 0 else
            f"EXPIRED at {st['not_after']} ({-left // 3600} h {-left % 3600 // 60} min ago): not matched against, "
            "purged with a receipt when the box next runs")
    text = (f"list {st['list_id']} ({st['deployment']}) from issuer {st['issuer']}: {st['entries']} entries, "
            f"sequence {st['sequence']}, {when}")
    if st.get("model"):
        text += f"\nface model: {st['model']}" + (
            f" (its templates made here from its reference images: it was built for {st['templates_from']})"
            if st.get("templates_from") not in (None, st["model"]) else "")
    if st.get("operating"):
        from edge.watchlist.operating import OperatingPoint

        text += f"\nmatched at: {OperatingPoint.from_json(st['operating']).describe()}"
    return text


@click.group()
def watchlist():
    """Load, inspect and purge the signed watch list."""


@watchlist.command()
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@on_box
def load(path, config_path, state_dir):
    """Verify a .wlb bundle and put it in force (the current list stays if anything is wrong)."""
    cfg = load_config(config_path, state_dir)
    st = _run(cfg, "watchlist_load", path=str(Path(path).resolve()))
    click.echo(f"loaded {_describe(st)}")


@watchlist.command()
@click.option("--reason", default="on demand", show_default=True)
@output_option("out", required=False, help="Also write the receipt here.")
@on_box
def purge(reason, out, config_path, state_dir):
    """Delete the list from memory and disk; prints the signed deletion receipt."""
    cfg = load_config(config_path, state_dir)
    rc = _run(cfg, "watchlist_purge", reason=reason)["receipt"]
    text = json.dumps(rc, indent=1)
    if out:
        files.write_atomic(Path(out), text.encode() + b"\n", 0o600)
    click.echo(text)


@watchlist.command()
@click.option("--json", "as_json", is_flag=True)
@on_box
def status(as_json, config_path, state_dir):
    """List id, issuer, entries, expiry and sequence of the list in force."""
    cfg = load_config(config_path, state_dir)
    st = _run(cfg, "watchlist_status")
    click.echo(json.dumps(st, indent=2, sort_keys=True) if as_json else _describe(st))


@click.group()
def trust():
    """The keys this box trusts: watch-list issuers and operator consoles."""


def _add_command(what: str, add, help: str):
    @trust.command(f"add-{what}", help=help)
    @click.argument("keyfile", type=click.Path(dir_okay=False))
    @click.option("--name", default="", help="A name for a console (shown by 'edge trust list'; issuers carry theirs).")
    @on_box
    def command(keyfile, name, config_path, state_dir):
        _trust(what, add, keyfile, name, config_path, state_dir)

    return command


add_issuer = _add_command("issuer", identity.add_issuer,
                          "Trust an issuer's public key (issuer.pub from `enrol keygen`) to sign watch lists.")
add_console = _add_command("console", identity.add_console, "Trust an operator console's CURVE public key (z85).")


def _trust(what: str, add, keyfile, name: str, config_path, state_dir) -> None:
    cfg = load_config(config_path, state_dir)
    key_id = add(cfg.state_dir, keyfile)
    if what == "console" and name.strip():
        identity.name_console(cfg.state_dir, key_id, name.strip())
    name = next((n for k, kid, n in identity.trusted(cfg.state_dir) if kid == key_id and k == what), "")
    _audit(cfg)("trust_added", what=what, key_id=key_id, **({"name": name} if name or what == "issuer" else {}))
    click.echo(f"trusted {what} {key_id}" + (f" ({name})" if name else ""))


@trust.command("remove")
@click.argument("key")
@click.option("--reason", required=True, help="Why (recorded): a lost key, a retired console, ...")
@who_option("Who removes it (recorded; default: your login name).")
@on_box
def remove(key, reason, who, config_path, state_dir):
    """Stop trusting an issuer or a console (by key id or name), at once. An issuer's deployments stop and
    their lists are purged with receipts; a console gets nothing more."""
    from edge import deployment
    from edge.pipeline.stopping import receipt_line, stop_deployments

    if not reason.strip():
        raise EdgeError("say why the key is removed (--reason)")
    cfg = load_config(config_path, state_dir)
    by = who_is(who)
    kind, kid, name = identity.find_trusted(cfg.state_dir, key)
    _audit(cfg)("trust_removed", what=kind, key_id=kid, name=name, by=by, reason=reason.strip())
    receipts: list[dict] = []
    if kind == "issuer":
        now = datetime.now(UTC)
        ids = [d.deployment_id for d in deployment.stored(cfg.state_dir) if d.issuer == kid and now < d.until]
        receipts = stop_deployments(cfg, ids, by=by, reason=f"issuer {name or kid} removed: {reason.strip()}",
                                    ending="trust removed") if ids else []
        st = _run(cfg, "watchlist_status")
        if st.get("list_id") and st.get("issuer") == kid:  # a list of that issuer outside any window
            receipts.append(_run(cfg, "watchlist_purge", reason=f"issuer {name or kid} removed")["receipt"])
    identity.remove_trusted(cfg.state_dir, kind, kid)
    click.echo(f"removed {kind} {kid}" + (f" ({name})" if name else "") + f": {reason.strip()}")
    for rc in receipts:
        click.echo(receipt_line(rc))


@trust.command("list")
@on_box
def list_(config_path, state_dir):
    """Show the trusted issuer and console key ids (and any damaged trust file: exit 1)."""
    cfg = load_config(config_path, state_dir)
    for kind, kid, name in identity.trusted(cfg.state_dir):
        click.echo(f"{kind:7} {kid}  {name}".rstrip())
    problems = identity.trust_problems(cfg.state_dir)
    for why in problems:
        click.echo(f"DAMAGED {why}")
    if problems:
        raise EdgeError(f"{len(problems)} trust file(s) are damaged: add the key again with 'edge trust add-…'")
