"""`edge`: the box's command line. One click group, thin commands (datasette's cli.py style).

Expected failures are ``EdgeError`` below this layer and become ``ClickException`` here: one
sentence, exit 1, no traceback.
"""

from __future__ import annotations

import json
import sys

import click

from edge.audit.cli import audit
from edge.cli_options import (  # noqa: F401  (user_errors, config_option, ... re-exported for scripts)
    DEFAULT_CONFIG,
    config_option,
    load_config,
    state_dir_option,
    user_errors,
)
from edge.codec import printable_tree
from edge.console.cli import console_group
from edge.deployment_cli import deployment
from edge.doctor import doctor_command
from edge.eval.cli import eval_command
from edge.oversight.cli import oversight
from edge.provision import provision_command
from edge.watchlist.cli import trust, watchlist
from firmware.cli import firmware


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edge-lfr")
def cli():
    """An accountable live-facial-recognition box.

    The daemon (`edge run`) reads the cameras, matches faces against the loaded watch list and
    sends alerts to the operator console. `edge status` shows how it is doing; `edge watch`
    prints alerts in a terminal.
    """


@cli.command()
@config_option
@state_dir_option
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (demos, tests).")
@user_errors
def run(config_path, state_dir, duration):
    """Run the daemon in the foreground: one process per camera, alerts over ZeroMQ.

    Stops cleanly on SIGTERM or Ctrl-C. Under systemd it notifies readiness and feeds the watchdog.
    """
    import logging

    from edge.pipeline.daemon import Daemon

    cfg = load_config(config_path, state_dir)
    # the one place logging is set up for the daemon: the library only logs (to "edge", "edge.zap", ...)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    Daemon(cfg).run(duration=duration)


@cli.command()
@config_option
@state_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the raw status as JSON.")
@click.option("--timeout", type=float, default=3.0, show_default=True)
@user_errors
def status(config_path, state_dir, as_json, timeout):
    """Show cameras (fps, lag, dropped frames), the watch list and alert counts of the running daemon."""
    from edge.pipeline.control import request

    cfg = load_config(config_path, state_dir)
    st = request(cfg.control_endpoint, {"cmd": "status"}, timeout)
    if as_json:
        click.echo(json.dumps(st, indent=2, sort_keys=True))
        return
    from edge.pipeline.health import format_status

    click.echo(format_status(printable_tree(st)))


@cli.command()
@click.argument("box", metavar="ENDPOINT=KEY")
@click.option("--data", default="~/.local/share/edge-console", show_default=True, envvar="EDGE_CONSOLE_DATA",
              type=click.Path(file_okay=False), help="The console key pair (edge console keygen).")
@click.option("--count", type=int, default=0, help="Exit after this many alerts (0 = run until Ctrl-C).")
@click.option("--timeout", type=float, default=0, help="Exit after this many seconds (0 = no limit).")
@user_errors
def watch(box, data, count, timeout):
    """Print each alert and event from a box as it arrives (a terminal console).

    ENDPOINT=KEY: the box's alert endpoint and its public identity file, e.g.
    tcp://127.0.0.1:5599=/var/lib/edge/keys/box.pub.json.
    """
    from edge.console.watch import watch as do_watch

    do_watch(box, data, count=count, timeout=timeout, out=click.echo)


# --- the command groups of the other concerns, registered here from the top (one line each) ---
for group in (audit, deployment, eval_command, watchlist, trust, console_group, provision_command, doctor_command,
              firmware, oversight):
    cli.add_command(group)


def main():
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
