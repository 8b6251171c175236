"""`enrol authorise`: sign a deployment window for one box (docs/deployment-format.md).

The box matches faces only inside a window like this, signed by an issuer it trusts: where, which
cameras, from when to when, and why.
"""

from __future__ import annotations

import hashlib
import json
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
                                "issuer", "issued")}
    line.update(file=str(output), signature_sha256=hashlib.sha256(doc["signature"].encode()).hexdigest())
    files.append_line(path, json.dumps(line, sort_keys=True), "the authorisation")
    return path


@click.command()
@click.option("--issuer-key", required=True, type=click.Path(dir_okay=False), help="Your issuer.key.")
@box_key_option(required=False, help="The box's public identity (box.pub.json); or give --box-id.")
@click.option("--box-id", default=None, help="The box id, when you have no box.pub.json.")
@click.option("--deployment", "deployment_id", required=True,
              help="The deployment (operation) name, as in the watch lists built for it (enrol build): "
                   "1-64 letters, digits, spaces, '.', '_', '-'.")
@click.option("--location", required=True, help="Where the cameras are, e.g. 'King's Cross, north exit'.")
@click.option("--camera", "cameras", multiple=True, required=True, help="A camera id (repeat for each).")
@click.option("--start", required=True, help="Start, UTC, e.g. 2026-12-01T08:00Z.")
@click.option("--end", required=True, help="End, UTC, e.g. 2026-12-01T20:00Z (at most 31 days after start).")
@click.option("--purpose", required=True, help="Why: the policing purpose of the deployment.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The file to write.")
@user_errors
def authorise(issuer_key, box_file, box_id, deployment_id, location, cameras, start, end, purpose, output):
    """Sign a deployment window for a box: it will match faces only inside it."""
    from edge import deployment, identity

    if bool(box_file) == bool(box_id):
        raise EdgeError("give exactly one of --box-key box.pub.json and --box-id")
    if box_file:
        box_id = identity.load_box_public(box_file)["box_id"]
    deployment.check_name(deployment_id, "--deployment")
    key = load_issuer_private(issuer_key)
    name = _issuer_name(Path(issuer_key).with_name("issuer.pub"))
    doc = deployment.make(key, box_id=box_id, deployment_id=deployment_id, location=location,
                          cameras=list(cameras), start=deployment.parse_time(start, "--start"),
                          end=deployment.parse_time(end, "--end"), purpose=purpose, issuer_name=name)
    files.write_atomic(Path(output).resolve(), json.dumps(doc, indent=1).encode() + b"\n", 0o644)
    register = _register(Path(issuer_key).resolve().parent, doc, output)
    click.echo(f"deployment {doc['deployment_id']} for box {box_id}: {location}, cameras "
               f"{', '.join(cameras)}, {doc['start']} to {doc['end']}; written to {output} "
               f"(recorded in {register})")
