"""`edge`: the box's command line. One click group, thin commands (datasette's cli.py style).

Expected failures are ``EdgeError`` below this layer and become ``ClickException`` here: one
sentence, exit 1, no traceback.
"""

from __future__ import annotations

import functools
import json
import sys

import click

from edge import config as config_mod
from edge.errors import EdgeError

DEFAULT_CONFIG = "/etc/edge/edge.toml"


def user_errors(fn):
    """Turn EdgeError (and a permission the user lacks) into a one-line ClickException."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeError as exc:
            raise click.ClickException(str(exc)) from None
        except PermissionError as exc:
            what = f" to {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"permission denied{what}: run this as the service user (edge) "
                                       "or with sudo") from None

    return wrapper


config_option = click.option(
    "--config", "config_path", default=DEFAULT_CONFIG, show_default=True, envvar="EDGE_CONFIG",
    type=click.Path(dir_okay=False), help="The box's TOML config file.",
)
state_dir_option = click.option(
    "--state-dir", default=None, envvar="EDGE_STATE_DIR", type=click.Path(file_okay=False),
    help="Where the box keeps its state (overrides state_dir in the config; default /var/lib/edge).",
)


def load_config(config_path: str, state_dir: str | None) -> config_mod.Config:
    return config_mod.load(config_path, state_dir)


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
    from edge.pipeline.daemon import Daemon

    cfg = load_config(config_path, state_dir)
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

    click.echo(format_status(st))


@cli.command()
@click.argument("box", metavar="ENDPOINT=KEY")
@click.option("--data", default="~/.local/share/edge-console", show_default=True, envvar="EDGE_CONSOLE_DATA",
              type=click.Path(file_okay=False), help="The console key pair (edge console keygen).")
@click.option("--count", type=int, default=0, help="Exit after this many alerts (0 = run until Ctrl-C).")
@click.option("--timeout", type=float, default=0, help="Exit after this many seconds (0 = no limit).")
@user_errors
def watch(box, data, count, timeout):
    """Print each alert and event from a box as it arrives (a terminal console).

    BOX is ENDPOINT=KEY, e.g. tcp://127.0.0.1:5599=/var/lib/edge/keys/box.pub.json.
    """
    from edge.alerts.watch import watch as do_watch

    do_watch(box, data, count=count, timeout=timeout, out=click.echo)


# --- command groups of other concerns register here (one line each) ---
from edge.audit.cli import audit  # noqa: E402, I001  (edge audit)
cli.add_command(audit)
from edge.deployment_cli import deployment  # noqa: E402, I001  (edge deployment)
cli.add_command(deployment)
from edge.eval.cli import eval_command  # noqa: E402, I001  (edge eval)
cli.add_command(eval_command)
from edge.watchlist.cli import trust, watchlist  # noqa: E402, I001  (edge watchlist / trust)
cli.add_command(watchlist)
cli.add_command(trust)
from edge.console.cli import console_group  # noqa: E402, I001  (edge console)
cli.add_command(console_group)
from edge.provision import provision_command  # noqa: E402, I001  (edge provision)
cli.add_command(provision_command)
from edge.doctor import doctor_command  # noqa: E402, I001  (edge doctor)
cli.add_command(doctor_command)
from firmware.cli import firmware  # noqa: E402, I001  (edge firmware)
cli.add_command(firmware)


def main():
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":
    main()
