"""`edge console`: the operator console (web page) and its key and operator accounts."""

from __future__ import annotations

import sys

import click

from edge.alerts.retention import DEFAULT_DAYS
from edge.cli_options import user_errors
from edge.errors import EdgeError

DEFAULT_DATA = "~/.local/share/edge-console"
data_option = click.option("--data", default=DEFAULT_DATA, show_default=True, envvar="EDGE_CONSOLE_DATA",
                           type=click.Path(file_okay=False), help="The console's keys and its own database.")


@click.group("console", invoke_without_command=True)
@click.option("--listen", default="127.0.0.1:8080", show_default=True, help="HOST:PORT of the web page.")
@click.option("--box", "boxes", multiple=True, metavar="ENDPOINT=KEY",
              help="A box to receive alerts from, e.g. tcp://10.0.0.5:5599=box.pub.json (repeatable).")
@data_option
@click.option("--retention-days", type=click.FloatRange(min=0.01), default=DEFAULT_DAYS, show_default=True,
              help="Alerts (with their crops) older than this are deleted from the console's database; "
                   "sooner for a box that keeps its own for less (its retention policy, which it says).")
@click.option("--timezone", "timezone", default="UTC", show_default=True, envvar="EDGE_CONSOLE_TIMEZONE",
              help="The site's time zone (console.timezone): every time on the page is shown in it, with its offset.")
@click.pass_context
@user_errors
def console_group(ctx, listen, boxes, data, retention_days, timezone):
    """Serve the operator console: alerts from one or more boxes, live, with Confirm / Dismiss.

    Set up once: `edge console keygen` (then register console.pub on each box with
    `edge trust add-console`), and `edge console adduser NAME` for each operator.
    """
    if ctx.invoked_subcommand is not None:
        return
    from edge.console import keys
    from edge.console.link import BoxLink
    from edge.console.store import Store
    from edge.console.web import Console, serve, zone

    if not boxes:
        raise EdgeError("give at least one --box ENDPOINT=KEY")
    zone(timezone)
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise EdgeError(f"--listen {listen!r}: expected HOST:PORT")
    key_pair = keys.load(data)
    parsed = [keys.parse_box(b) for b in boxes]
    store = Store(keys.data_dir(data) / "console.db")
    if not store.has_users():
        raise EdgeError("no operator accounts yet: add one with 'edge console adduser NAME'")
    links = [BoxLink(ep, key, key_pair, store) for ep, key in parsed]
    click.echo(f"edge console on http://{listen}/ for {len(links)} box(es)")
    serve(Console(store, links, retention_days, timezone), host, int(port))


@console_group.command()
@data_option
@click.option("--force", is_flag=True, help="Replace an existing key pair (boxes must register the new one).")
@user_errors
def keygen(data, force):
    """Make the console's CURVE key pair; prints the public key file to register on boxes."""
    from edge.console import keys

    pub = keys.keygen(data, force)
    click.echo(f"wrote {pub}: register it on each box with 'edge trust add-console {pub}'")


@console_group.command()
@click.argument("name")
@data_option
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--supervisor", is_flag=True, help="A supervisor decides when two verifications disagree.")
@user_errors
def adduser(name, data, password_stdin, supervisor):
    """Add an operator (or set a new password); the password is stored argon2-hashed."""
    from edge.console import keys
    from edge.console.store import Store

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = Store(keys.data_dir(data) / "console.db")
    try:
        store.add_user(name, password, "supervisor" if supervisor else "operator")
    finally:
        store.close()
    click.echo(f"{'supervisor' if supervisor else 'operator'} {name} can log in")


@console_group.command()
@data_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Write it here (else print).")
@user_errors
def witness(data, output):
    """The newest signed audit checkpoint received from each box, for `edge audit verify --witness`.

    A box whose log was cut back or replaced by an older copy cannot take back what its consoles hold."""
    import json
    import socket
    from pathlib import Path

    from edge.console import keys
    from edge.console.store import Store
    from edge.files import write_atomic

    store = Store(keys.data_dir(data) / "console.db")
    try:
        rows = store.witnesses()
    finally:
        store.close()
    doc = {"type": "edge-audit-witness", "v": 1, "console": socket.gethostname(),
           "witnesses": [dict(w, console=socket.gethostname()) for w in rows]}
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    if output:
        write_atomic(Path(output), text.encode(), 0o600)
        click.echo(f"wrote {output}: {len(rows)} box(es)")
    else:
        click.echo(text, nl=False)
