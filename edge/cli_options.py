"""What every command line of the project shares, in a leaf (docs/architecture.md): the one-sentence error
wrapper, the options that mean the same in `edge` and `enrol` (one name per meaning, the old names kept as
hidden aliases for one release), and config loading. Command modules import this, never ``edge.cli``.

One name per meaning:

| meaning | option | hidden aliases (until 2.0) |
|---|---|---|
| the box's public identity file (box.pub.json) | ``--box-key FILE`` | ``--for``, ``--box`` (enrol) |
| a file the command writes | ``-o/--output FILE`` | ``--out`` |
| a folder the command writes into | ``-o/--output DIR`` | ``--out`` |
| the box's config / state dir | ``--config``, ``--state-dir`` | |
| a box to connect to (consoles) | ``--box ENDPOINT=KEY`` | |
| reference images per listed identity (``edge eval``) | ``--refs-per-entry K`` | ``--refs`` (enrol: the CSV) |
| who does what is recorded (``edge deployment end``, ``edge trust remove``) | ``--who NAME`` | |
"""

from __future__ import annotations

import functools
from pathlib import Path

import click

from edge.codec import printable
from edge.errors import EdgeError
from edge.files import write_atomic

DEFAULT_CONFIG = "/etc/edge/edge.toml"


def user_errors(fn):
    """Turn EdgeError (and a permission the user lacks) into a one-line ClickException."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgeError as exc:
            raise click.ClickException(printable(str(exc))) from None
        except PermissionError as exc:
            what = f" to {exc.filename}" if exc.filename else ""
            raise click.ClickException(f"permission denied{what}: run this as the service user (edge) "
                                       "or with sudo") from None

    return wrapper


class AliasedOption(click.Option):
    """An option whose old spellings still work but are not shown in ``--help``."""

    def __init__(self, *args, hidden_aliases: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden_aliases = tuple(hidden_aliases)

    def get_help_record(self, ctx):
        shown = self.opts
        self.opts = [o for o in shown if o not in self.hidden_aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown


def aliased(*names: str, old: tuple[str, ...] = (), **kwargs):
    """``click.option(*names, ...)`` that also accepts the hidden spellings ``old``."""
    decls = [n for n in names if n.startswith("-")] + list(old) + [n for n in names if not n.startswith("-")]
    return click.option(*decls, cls=AliasedOption, hidden_aliases=old, **kwargs)


def box_key_option(dest: str = "box_file", required: bool = True, help: str | None = None):
    """``--box-key box.pub.json``: the box's public identity file (old names ``--for``, ``--box``)."""
    return aliased("--box-key", dest, old=("--for", "--box"), required=required,
                   type=click.Path(dir_okay=False),
                   help=help or "The box's public identity (box.pub.json from 'edge provision').")


def output_option(dest: str = "output", required: bool = True, folder: bool = False, help: str | None = None,
                  **kwargs):
    """``-o/--output``: the file (or folder) the command writes (old name ``--out``)."""
    return aliased("-o", "--output", dest, old=("--out",), required=required,
                   type=click.Path(file_okay=not folder, dir_okay=folder), help=help, **kwargs)


config_option = click.option(
    "--config", "config_path", default=DEFAULT_CONFIG, show_default=True, envvar="EDGE_CONFIG",
    type=click.Path(dir_okay=False), help="The box's TOML config file.",
)
state_dir_option = click.option(
    "--state-dir", default=None, envvar="EDGE_STATE_DIR", type=click.Path(file_okay=False),
    help="Where the box keeps its state (overrides state_dir in the config; default /var/lib/edge).",
)


def who_option(help: str = "Who does it (recorded in the audit log; default: your login name)."):
    """``--who NAME``: the person a recorded action is attributed to (``who(value)`` gives the default)."""
    return click.option("--who", "who", default=None, help=help)


def who(value: str | None) -> str:
    """The name given with ``--who``, else the login name; EdgeError if that is empty."""
    import getpass

    name = (value if value is not None else getpass.getuser()).strip()
    if not name:
        raise EdgeError("say who does it (--who NAME)")
    return printable(name)[:200]


def on_box(fn):
    """``--config`` and ``--state-dir`` (the box whose state the command reads or changes), and errors in one
    sentence: what every box command takes."""
    return config_option(state_dir_option(user_errors(fn)))


def load_config(config_path: str, state_dir: str | None):
    from edge import config as config_mod

    return config_mod.load(config_path, state_dir)


def resolve_state_dir(config_path: str, state_dir: str | None) -> Path:
    """``--state-dir`` as given, else the config's state dir."""
    return Path(state_dir) if state_dir else Path(load_config(config_path, None).state_dir)


def emit_report(text: str, output: str | None) -> None:
    """A report to ``-o`` (0600: for whom it is handed to, not every user on the box) or to stdout."""
    if output:
        write_atomic(Path(output).resolve(), text.encode(), 0o600)
        click.echo(f"report written to {output}")
    else:
        click.echo(text, nl=False)
