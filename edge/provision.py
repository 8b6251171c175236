"""`edge provision`: make a box a box — state dir, identity, trust store, config.

Steps: state dir layout (0700) -> box identity (kept unless --rotate; a rotation is logged) ->
register issuer and console public keys -> write the config (validated by ``edge.config`` before it
replaces the old one) -> hand everything to the service user -> print the public identity file and
the fingerprint to read out to the SPOC. Every value comes from a flag; in a terminal, missing ones
are asked for; otherwise the existing config supplies them. Re-running is safe.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import sys
import tempfile
import tomllib
from pathlib import Path

import click

from edge import codec, identity
from edge import config as config_mod
from edge.audit.log import record as audit_record
from edge.audit.log import rotation
from edge.config import toml_dumps
from edge.errors import EdgeError
from edge.face import model as face_model
from edge.files import write_atomic

DEFAULT_ENDPOINT = "tcp://0.0.0.0:5599"  # consoles connect here; CURVE keeps unregistered ones out
SERVICE_USER = "edge"
LAYOUT = ("keys", "trust", "trust/issuers", "trust/consoles", "watchlist")


# --- steps -------------------------------------------------------------------------------------


def parse_camera(text: str) -> dict:
    cam_id, sep, source = text.partition("=")
    if not sep or not cam_id.strip() or not source.strip():
        raise EdgeError(f"--camera {text!r}: expected ID=SOURCE, e.g. entrance=/dev/video0")
    source = source.strip()
    if "://" not in source and not source.isdigit() and not source.startswith("/dev/"):
        source = os.path.abspath(source)
    return {"id": cam_id.strip(), "source": source}


def read_existing(config_path: Path) -> dict:
    if not config_path.exists():
        return {}
    try:
        return tomllib.loads(config_path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EdgeError(f"the existing config {config_path} cannot be read ({exc}): fix or remove it") from None


def make_layout(state_dir: Path) -> None:
    for sub in ("", *LAYOUT):
        d = state_dir / sub
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o700)


def check_key_files(issuer_keys, console_keys) -> None:
    """Register the key files in a scratch trust store first: a bad one fails before anything changes."""
    with tempfile.TemporaryDirectory() as scratch:
        for k in issuer_keys:
            identity.add_issuer(scratch, k)
        for k in console_keys:
            identity.add_console(scratch, k)


def hand_over(state_dir: Path, config_path: Path, user: str) -> str:
    """As root: the state dir belongs to the service user; the config is root:<group> 0640."""
    if os.geteuid() != 0:
        return "not root: files stay owned by the current user"
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        return f"user {user!r} does not exist (firmware/install.sh creates it): files stay owned by root"
    for dirpath, _dirs, files in os.walk(state_dir):
        for name in [dirpath, *(os.path.join(dirpath, f) for f in files)]:
            os.lchown(name, pw.pw_uid, pw.pw_gid)
    os.chown(config_path, 0, pw.pw_gid)
    return f"state dir owned by {user}, config readable by group {grp.getgrgid(pw.pw_gid).gr_name}"


def previous_keys(state_dir: Path, rotate: bool) -> dict | None:
    """The public identity of the keys already on the box (None for a new box). Without ``rotate`` a
    missing or damaged private key is refused in one sentence (never silently replaced); with it, the
    public identity left in ``box.pub.json`` names the keys being replaced."""
    kdir = state_dir / "keys"
    if not (kdir / identity.KEY_FILE).exists() and not (kdir / identity.PUB_FILE).exists():
        return None
    try:
        return identity.load(state_dir).public()
    except EdgeError:
        if not rotate:
            raise
    try:
        pub = json.loads((kdir / identity.PUB_FILE).read_text())
        return {"signing_key_id": str(pub["signing_key_id"]), "fingerprint": str(pub["fingerprint"])}
    except (OSError, ValueError, KeyError, TypeError):
        return {"signing_key_id": "unknown", "fingerprint": "unknown"}


def _old_signing_key(state_dir: Path):
    """The signing key about to be replaced, after it signed the log so far (a checkpoint): it then endorses
    its successor in the ``key_rotated`` record. None when it cannot be read (the rotation is recorded without)."""
    from edge.audit.log import AuditLog

    try:
        key = identity.load(state_dir).signing_key
        AuditLog(state_dir, signing_key=key).checkpoint()
        return key
    except EdgeError:
        return None


def provision(*, box_id: str, cameras: list[dict], config_path, state_dir, alerts_endpoint: str,
              console_keys=(), issuer_keys=(), rotate: bool = False, user: str = SERVICE_USER,
              base: dict | None = None) -> dict:
    """Do it all; returns what to print. ``base`` is the existing config (kept where not overridden)."""
    config_path, state_dir = Path(config_path), Path(state_dir).resolve()
    data = dict(base or {})
    data.update(box_id=box_id, state_dir=str(state_dir), cameras=cameras)
    data["alerts"] = {**data.get("alerts", {}), "endpoint": alerts_endpoint}
    text = toml_dumps(data)
    cfg = config_mod.parse(text, str(config_path))  # what `edge run` will check, before anything is touched
    check_key_files(issuer_keys, console_keys)
    make_layout(state_dir)
    old = previous_keys(state_dir, rotate)
    endorser = _old_signing_key(state_dir) if old is not None and rotate else None
    ident = identity.create(state_dir, box_id, rotate=rotate, model=face_model.get(cfg.model).ref())
    identity.publish_cameras(state_dir, [c["id"] for c in cameras])
    signing = {"signing_public": codec.b64(ident.signing_public),
               "fingerprint": ident.fingerprint()}
    if old is None:
        audit_record(state_dir, "provisioned", box_id=box_id, signing_key_id=identity.key_id(ident.signing_public),
                     cameras=[c["id"] for c in cameras], **signing)
    elif rotate:
        endorsed = rotation(endorser, box_id, ident.signing_public) if endorser is not None else {}
        audit_record(state_dir, "key_rotated", **{"old_key_id": old["signing_key_id"],
                     "new_key_id": identity.key_id(ident.signing_public), "previous_fingerprint": old["fingerprint"],
                     **signing, **endorsed})
    if old is not None and old.get("box_id") and old["box_id"] != box_id:  # the same keys, a new name
        audit_record(state_dir, "box_renamed", old_box_id=str(old["box_id"]), new_box_id=box_id)
    issuers = [identity.add_issuer(state_dir, k) for k in issuer_keys]
    consoles = [identity.add_console(state_dir, k) for k in console_keys]
    for what, ids in (("issuer", issuers), ("console", consoles)):
        for key_id in ids:
            audit_record(state_dir, "trust_added", what=what, key_id=key_id)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(config_path, text.encode(), 0o640)
    ownership = hand_over(state_dir, config_path, user)
    return {"public_file": str(state_dir / "keys" / identity.PUB_FILE), "fingerprint": ident.fingerprint(),
            "rotated": bool(old and rotate), "kept": bool(old and not rotate), "issuers": issuers,
            "consoles": consoles, "config": str(config_path), "ownership": ownership}


# --- the command -------------------------------------------------------------------------------


def _ask(value, existing, prompt: str, interactive: bool, flag: str, **kw):
    if value:
        return value
    if interactive:
        return click.prompt(prompt, default=existing or None, **kw)
    if existing:
        return existing
    raise EdgeError(f"{flag} is required (or run 'edge provision' in a terminal to be asked)")


@click.command("provision")
@click.option("--box-id", help="This box's name, e.g. ldn-kx-01.")
@click.option("--camera", "cameras", multiple=True, metavar="ID=SOURCE",
              help="A camera: /dev/video0, rtsp://..., or a file. Repeat for each camera.")
@click.option("--console-key", "console_keys", multiple=True, type=click.Path(dir_okay=False),
              help="An operator console's CURVE public key file to trust. Repeatable.")
@click.option("--issuer-key", "issuer_keys", multiple=True, type=click.Path(dir_okay=False),
              help="A watch-list issuer's public key file (from 'enrol keygen') to trust. Repeatable.")
@click.option("--alerts-endpoint", default=None, help=f"Where the box serves alerts [default: {DEFAULT_ENDPOINT}].")
@click.option("--config", "config_path", default="/etc/edge/edge.toml", show_default=True,
              type=click.Path(dir_okay=False), help="The config file to write.")
@click.option("--state-dir", default=None, type=click.Path(file_okay=False),
              help=f"Where keys, trust store and watch list live [default: {config_mod.DEFAULT_STATE_DIR}].")
@click.option("--user", default=SERVICE_USER, show_default=True, help="Service user that owns the state dir.")
@click.option("--rotate", is_flag=True, help="Replace the box's keys (watch lists must then be rebuilt for it).")
def provision_command(box_id, cameras, console_keys, issuer_keys, alerts_endpoint, config_path, state_dir,
                      user, rotate):
    """Provision this box: keys, trust store, cameras, config. Safe to re-run; keys stay unless --rotate."""
    try:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
        base = read_existing(Path(config_path))
        bid = _ask(box_id, base.get("box_id"), "Box id", interactive, "--box-id")
        cams = [parse_camera(c) for c in cameras]
        if not cams and interactive and not base.get("cameras"):
            while not cams or click.confirm("Add another camera?", default=False):
                cams.append(parse_camera(click.prompt(f"Camera {len(cams) + 1} as ID=SOURCE")))
        cams = cams or base.get("cameras") or []
        if not cams:
            raise EdgeError("--camera ID=SOURCE is required (at least one camera)")
        endpoint = _ask(alerts_endpoint, base.get("alerts", {}).get("endpoint") or DEFAULT_ENDPOINT,
                        "Alerts endpoint", interactive, "--alerts-endpoint")
        issuers, consoles = list(issuer_keys), list(console_keys)
        if interactive and not issuers and not consoles:
            optional = lambda what: click.prompt(f"{what} public key file (Enter to skip)", default="",
                                                 show_default=False)
            issuers += [k for k in [optional("Issuer")] if k]
            consoles += [k for k in [optional("Console")] if k]
        sd = state_dir or base.get("state_dir") or config_mod.DEFAULT_STATE_DIR
        r = provision(box_id=bid, cameras=cams, config_path=config_path, state_dir=sd, alerts_endpoint=endpoint,
                      console_keys=consoles, issuer_keys=issuers, rotate=rotate, user=user, base=base)
    except EdgeError as exc:
        raise click.ClickException(str(exc)) from None
    keys = "rotated (recorded in the audit log)" if r["rotated"] else "kept" if r["kept"] else "created"
    click.echo(f"Box {bid}: keys {keys}; config written to {r['config']} ({len(cams)} camera(s)).")
    for kind in ("issuers", "consoles"):
        if r[kind]:
            click.echo(f"Trusted {kind[:-1]} key(s): {', '.join(r[kind])}")
    click.echo(f"Ownership: {r['ownership']}")
    click.echo(f"Public identity: {r['public_file']}")
    click.echo(f"Fingerprint: {r['fingerprint']}   (read this out to the SPOC)")
