"""`enrol authorise`: sign a deployment window for one box and the watch lists it authorises
(docs/deployment-format.md).

The box matches faces only inside a window like this, signed by an issuer it trusts, and only against the
lists it names (id and SHA-256): where, which cameras, from when to when, why, and under which prior
authorisation. Mistakes are refused before anything is signed: an ended window, a camera the box does not
have, a list for another deployment, box or issuer, a name that reads like another deployment's.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import click

from edge import files
from edge.cli_options import box_key_option, user_errors
from edge.errors import EdgeError
from enrol.keys import load_issuer_private

REGISTER = "authorisations.jsonl"


def _issuer_name(pub: Path) -> str:
    """The label in issuer.pub next to the key (shown in the box's reports as 'authorised by')."""
    try:
        return str(json.loads(pub.read_text()).get("name", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def _register(folder: Path, doc: dict, output) -> Path:
    """The SPOC's own record of what it authorised: one JSON line per document, next to the key."""
    path = folder / REGISTER
    line = {k: doc[k] for k in ("deployment_id", "box_id", "location", "cameras", "start", "end", "purpose",
                                "issuer", "issued", "lists", "authority_ref")}
    line.update(file=str(output), signature_sha256=hashlib.sha256(doc["signature"].encode()).hexdigest())
    files.append_line(path, json.dumps(line, sort_keys=True), "the authorisation")
    return path


def _list(path: str, raw_public: bytes, deployment_id: str, box_id: str) -> tuple[str, str]:
    """(list id, bundle SHA-256) of a list this window may authorise: signed by this issuer, for this box and
    this deployment, not expired; EdgeError in one sentence otherwise."""
    from edge import identity
    from edge.watchlist import reader
    from edge.watchlist.fields import parse_time
    from edge.watchlist.service import open_bundle_file
    from enrol.register import file_sha256

    src = open_bundle_file(path)
    try:
        h = reader.verify(src, {identity.key_id(raw_public): raw_public}).header
    except EdgeError as exc:
        raise EdgeError(f"--list {Path(path).name}: {exc}") from None
    finally:
        src.close()
    name = Path(path).name
    if h["deployment"] != deployment_id:
        raise EdgeError(f"--list {name} is for deployment {h['deployment']!r}, not {deployment_id!r}: "
                        "a window authorises only lists built for it")
    if h["box_id"] != box_id:
        raise EdgeError(f"--list {name} is for box {h['box_id']!r}, not {box_id!r}")
    if parse_time(h["not_after"]) <= datetime.now(UTC):
        raise EdgeError(f"--list {name} expired at {h['not_after']}")
    return h["list_id"], file_sha256(path)


def _check_cameras(box: dict | None, cameras: tuple[str, ...]) -> None:
    have = box.get("cameras") if box else None
    if not isinstance(have, list):
        click.echo("warning: the box's public identity names no cameras (give --box-key box.pub.json from a "
                   "box provisioned by this version): camera ids not checked", err=True)
        return
    unknown = [c for c in cameras if c not in have]
    if unknown:
        raise EdgeError(f"camera {unknown[0]!r} is not a camera of this box (it has {', '.join(have) or 'none'})")


@click.command()
@click.option("--issuer-key", required=True, type=click.Path(dir_okay=False), help="Your issuer.key.")
@box_key_option(required=False, help="The box's public identity (box.pub.json); or give --box-id.")
@click.option("--box-id", default=None, help="The box id, when you have no box.pub.json (camera ids unchecked).")
@click.option("--deployment", "deployment_id", required=True,
              help="The deployment (operation) name, exactly as in the watch lists built for it (enrol build): "
                   "1-64 letters, digits, spaces, '.', '_', '-'.")
@click.option("--list", "lists", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="A watch list (.wlb from enrol build) this window authorises (repeat for each).")
@click.option("--location", required=True, help="Where the cameras are, e.g. 'King's Cross, north exit'.")
@click.option("--camera", "cameras", multiple=True, required=True, help="A camera id (repeat for each).")
@click.option("--start", required=True, help="Start, UTC, e.g. 2026-12-01T08:00Z.")
@click.option("--end", required=True, help="End, UTC, e.g. 2026-12-01T20:00Z (at most 31 days after start).")
@click.option("--purpose", required=True, help="Why: the policing purpose of the deployment.")
@click.option("--authority-ref", default="",
              help="The prior authorisation's reference (a box with require_authority_ref runs a window without "
                   "one for at most 24 h, as emergency use).")
@click.option("--verification", type=click.Choice(["one", "two"]), default="one", show_default=True,
              help="two: while this window is open, a confirmation counts only when two different operators "
                   "verified it (EU AI Act Art. 14(5)), whatever the box's own alerts.verification.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The file to write.")
@user_errors
def authorise(issuer_key, box_file, box_id, deployment_id, lists, location, cameras, start, end, purpose,
              authority_ref, verification, output):
    """Sign a deployment window for a box: it will match the named lists only inside it."""
    from edge import deployment, identity
    from enrol.register import check_deployment_name

    if bool(box_file) == bool(box_id):
        raise EdgeError("give exactly one of --box-key box.pub.json and --box-id")
    box = identity.load_box_public(box_file) if box_file else None
    box_id = box["box_id"] if box else box_id
    deployment.check_name(deployment_id, "--deployment")
    folder = Path(issuer_key).resolve().parent
    check_deployment_name(folder, deployment_id)
    if not lists:
        raise EdgeError("name the watch list(s) this window authorises: --list LIST.wlb (from enrol build)")
    t0, t1 = deployment.parse_time(start, "--start"), deployment.parse_time(end, "--end")
    if t1 <= datetime.now(UTC):
        raise EdgeError(f"--end {end} is in the past: a window that has ended authorises nothing")
    _check_cameras(box, cameras)
    if not Path(output).resolve().parent.is_dir():
        raise EdgeError(f"the folder of -o {output} does not exist")
    key = load_issuer_private(issuer_key)
    named = [_list(p, identity.raw_public(key), deployment_id, box_id) for p in lists]
    doc = deployment.make(key, box_id=box_id, deployment_id=deployment_id, location=location,
                          cameras=list(cameras), start=t0, end=t1, purpose=purpose, lists=named,
                          authority_ref=authority_ref.strip(), issuer_name=_issuer_name(folder / "issuer.pub"),
                          verification=verification)
    files.write_atomic(Path(output).resolve(), json.dumps(doc, indent=1).encode() + b"\n", 0o644)
    register = _register(folder, doc, output)
    click.echo(f"deployment {doc['deployment_id']} for box {box_id}: {location}, cameras "
               f"{', '.join(cameras)}, {doc['start']} to {doc['end']}, lists {', '.join(i for i, _ in named)}"
               f"{', authority ' + doc['authority_ref'] if doc['authority_ref'] else ', no authority reference'}"
               f"{'; two people verify each confirmation' if verification == 'two' else ''}; "
               f"written to {output} (recorded in {register})")
