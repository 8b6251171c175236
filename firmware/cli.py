"""`edge firmware`: signed update bundles. Vendor side: keygen, build. Box side: verify, apply, rollback."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
from pathlib import Path

import click

from edge.cli_options import user_errors
from edge.errors import EdgeError
from firmware import bundle, update

VENDOR_KEYS = "/etc/edge/vendor-keys"


vendor_key_option = click.option(
    "--vendor-key", "vendor_keys", multiple=True, default=[VENDOR_KEYS], show_default=True,
    type=click.Path(exists=True), help="Trusted vendor public key file or folder of *.pub files. Repeatable.")
root_option = click.option("--root", default=update.DEFAULT_ROOT, show_default=True, type=click.Path(file_okay=False),
                           help="Where firmware versions are installed.")
config_option = click.option("--config", "config_path", default="/etc/edge/edge.toml", show_default=True,
                             type=click.Path(dir_okay=False), help="The config the bundle's migrations update.")


@click.group("firmware")
def firmware():
    """Signed firmware update bundles (.efw): build, verify, apply, rollback."""


@firmware.command()
@click.argument("private_key", type=click.Path(dir_okay=False))
@click.argument("public_key", type=click.Path(dir_okay=False))
@click.option("--name", default="", help="A label stored in both files.")
@user_errors
def keygen(private_key, public_key, name):
    """Make a vendor signing key pair (vendor side; keep PRIVATE_KEY offline)."""
    click.echo(f"vendor key {bundle.keygen(private_key, public_key, name)} written to {public_key}")


@firmware.command()
@click.option("--version", "version", required=True, help="The firmware version, e.g. 1.4.0 (must increase).")
@click.option("--key", "key_path", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The vendor private key file.")
@click.option("--wheel", "wheels", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="A wheel to install (the package and every dependency). Repeatable.")
@click.option("--unit", "units", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A systemd unit file. Repeatable.")
@click.option("--udev", "rules", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A udev rules file. Repeatable.")
@click.option("--migrations", type=click.Path(exists=True, dir_okay=False),
              help="JSON list of config migrations (docs/firmware-format.md).")
@click.option("--notes", default="", help="Release notes shown by verify.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .efw file to write.")
@user_errors
def build(version, key_path, wheels, units, rules, migrations, notes, output):
    """Build and sign a firmware bundle (vendor side)."""
    files = {f"{folder}/{Path(p).name}": Path(p).read_bytes()
             for folder, paths in (("wheels", wheels), ("units", units), ("udev", rules)) for p in paths}
    try:
        migs = json.loads(Path(migrations).read_text()) if migrations else []
    except ValueError:
        raise EdgeError(f"{migrations} is not valid JSON") from None
    data = bundle.build(version, bundle.load_private_key(key_path), files, migs, notes)
    Path(output).write_bytes(data)
    click.echo(f"firmware {version}: {len(files)} file(s), {len(data)} bytes -> {output}")


@firmware.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@vendor_key_option
@user_errors
def verify(bundle_path, vendor_keys):
    """Check a bundle's signature and contents without installing it."""
    b = bundle.verify(bundle.read(bundle_path), bundle.trusted_keys(vendor_keys))
    click.echo(f"OK: firmware {b.version}, signed by vendor key {b.header['key_id']} on {b.header['created']}")
    for f in b.header["files"]:
        click.echo(f"  {f['path']}  {f['size']} bytes  sha256 {f['sha256'][:16]}…")
    if b.header["migrations"]:
        click.echo(f"  {len(b.header['migrations'])} config migration(s)")
    if b.header["notes"]:
        click.echo(f"  notes: {b.header['notes']}")


@firmware.command()
@click.argument("bundle_path", metavar="BUNDLE", type=click.Path(dir_okay=False))
@vendor_key_option
@root_option
@config_option
@click.option("--restart/--no-restart", default=True, show_default=True,
              help="Reload systemd and restart edge.service afterwards (when systemd runs).")
@user_errors
def apply(bundle_path, vendor_keys, root, config_path, restart):
    """Verify a bundle, install it beside the current version and switch to it atomically."""
    b = bundle.verify(bundle.read(bundle_path), bundle.trusted_keys(vendor_keys))
    with _file_errors():
        old = update.apply(b, root, config_path)
    click.echo(f"firmware {b.version} installed and active (was {old or 'none'}); "
               f"'edge firmware rollback' goes back")
    _restart(restart)


@firmware.command()
@root_option
@config_option
@click.option("--restart/--no-restart", default=True, show_default=True)
@user_errors
def rollback(root, config_path, restart):
    """Switch back to the previous firmware version and its config."""
    with _file_errors():
        cur, prev = update.rollback(root, config_path)
    click.echo(f"rolled back from firmware {cur or 'of unknown version'} to {prev}")
    _restart(restart)


@firmware.command()
@root_option
def status(root):
    """Show the current and previous firmware versions."""
    click.echo(f"current: {update.current_version(root) or 'none'}")
    click.echo(f"previous: {update.previous_version(root) or 'none'}")


@contextlib.contextmanager
def _file_errors():
    try:
        yield
    except OSError as exc:
        raise EdgeError(f"cannot write {exc.filename or 'the firmware folders'}: {exc.strerror} "
                        "(run as root?)") from None


def _restart(restart: bool) -> None:
    if not restart or shutil.which("systemctl") is None or not Path("/run/systemd/system").is_dir():
        return
    for cmd in (["systemctl", "daemon-reload"], ["systemctl", "try-restart", "edge.service"]):
        if subprocess.run(cmd).returncode != 0:
            raise EdgeError(f"'{' '.join(cmd)}' failed: check 'journalctl -u edge'")
