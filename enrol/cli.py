"""`enrol`: the police SPOC's watch-list tool. Makes issuer keys, builds signed bundles encrypted to
one box, inspects them without decrypting, and verifies the deletion receipts boxes hand back.

Expected failures are ``EdgeError`` below this layer and one-line ``ClickException`` here.
"""

from __future__ import annotations

import json
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from edge import identity
from edge.cli_options import box_key_option, output_option, user_errors
from edge.codec import printable, printable_tree
from edge.config import QualityConfig
from edge.errors import EdgeError
from edge.files import write_atomic
from edge.watchlist import bundle, operating, receipt
from enrol.authorise import authorise
from enrol.keys import PASSPHRASE_ENV, ask_passphrase, load_issuer_private, load_issuer_public


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="edge-lfr")
def cli():
    """Watch lists for edge boxes: signed by you, readable only by the box they are built for."""


@cli.command()
@output_option("out_dir", folder=True, help="Folder for the key pair.")
@click.option("--name", default="", help="A label stored in issuer.pub (e.g. force and role).")
@click.option("--passphrase/--no-passphrase", default=True, show_default=True,
              help=f"Encrypt the private key with a passphrase (prompted, or ${PASSPHRASE_ENV}).")
@user_errors
def keygen(out_dir, name, passphrase):
    """Make an issuer key pair: OUT/issuer.key (private, 0600) and OUT/issuer.pub (for the boxes)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        BestAvailableEncryption,
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    out = Path(out_dir)
    if (out / "issuer.key").exists():
        raise EdgeError(f"{out / 'issuer.key'} already exists; refusing to overwrite an issuer key")
    out.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    enc = BestAvailableEncryption(ask_passphrase(confirm=True)) if passphrase else NoEncryption()
    write_atomic(out / "issuer.key", key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, enc), 0o600)
    pub = identity.issuer_public_doc(identity.raw_public(key), name)
    write_atomic(out / "issuer.pub", (json.dumps(pub, indent=1) + "\n").encode())
    click.echo(f"issuer key {pub['key_id']}: {out / 'issuer.key'} (keep it secret), {out / 'issuer.pub'} "
               "(register on each box with 'edge trust add-issuer')")


@cli.command()
@click.option("--images", "images_dir", required=True, type=click.Path(file_okay=False, exists=True))
@click.option("--refs", required=True, type=click.Path(dir_okay=False),
              help="refs.csv: ref,category,reason,images and optional source,taken (each image's provenance).")
@box_key_option(help="The target box's public identity (box.pub.json).")
@click.option("--issuer-key", required=True, type=click.Path(dir_okay=False), help="Your issuer.key.")
@click.option("--expires", required=True, help="Not-after time, UTC, e.g. 2026-12-01T18:00Z.")
@click.option("--not-before", default=None, help="Not valid before this UTC time (default: now).")
@click.option("--deployment", required=True,
              help="The deployment (operation) name, as in its window (enrol authorise): 1-64 letters, digits, "
                   "spaces, '.', '_', '-'.")
@click.option("--sequence", type=click.IntRange(0), default=None,
              help="List sequence number; must grow from list to list (default: the time in seconds).")
@click.option("--max-entries", type=click.IntRange(1, bundle.HARD_MAX_ENTRIES), default=bundle.DEFAULT_MAX_ENTRIES,
              show_default=True, help="Policy: the most entries this list may hold.")
@click.option("--threshold-floor", type=click.FloatRange(0.1, 1.9), default=None,
              help="Policy: boxes must not match more leniently than this distance (default: the face model's "
                   "cap, 0.6 for dlib-resnet, 1.2 for yunet-mobilefacenet).")
@click.option("--retention-days", type=click.IntRange(0, 3650), default=31, show_default=True,
              help="Policy: how long alerts raised on this list may be kept.")
@click.option("--target-fpir", type=click.FloatRange(0, operating.MAX_TARGET, min_open=True),
              default=operating.DEFAULT_TARGET_FPIR, show_default=True,
              help="Policy: the share of passers-by who may alert (0.001 = 1 in 1,000); the threshold is derived "
                   "from it for this list's size.")
@click.option("--rule", type=click.Choice(operating.RULES), default=None,
              help="Decision rule: nearest/second-nearest ratio (the list as its own cohort) or plain distance "
                   "(default: the face model's adopted rule: ratio for dlib-resnet, distance for yunet-mobilefacenet).")
@click.option("--calibration", "calibration_path", default=None, type=click.Path(dir_okay=False),
              help="Impostor calibration from 'edge eval --calibrate' (default: the one shipped with the box).")
@click.option("--min-face-px", type=click.IntRange(20), default=QualityConfig.min_face_px, show_default=True)
@click.option("--jobs", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Encode images in this many processes (thousands of images: one per core).")
@click.option("--strict/--allow-problems", default=True, show_default=True,
              help="Strict (the default): fail, writing nothing, if any image or row is unusable or any warning is "
                   "given (one reference holding different people; one image or face under two references). "
                   "--allow-problems: build without them, each listed.")
@click.option("--outlives-deployment", is_flag=True,
              help="Keep the list after its deployment window ends (default: the box purges it then, with a receipt).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .wlb file to write.")
@user_errors
def build(images_dir, refs, box_file, issuer_key, expires, not_before, deployment, sequence, max_entries,
          threshold_floor, retention_days, target_fpir, rule, calibration_path, min_face_px, jobs, strict,
          outlives_deployment, output):
    """Build a watch list for one box from REFS and the reference images in IMAGES.

    The threshold follows the list: it is derived for the list's size from TARGET_FPIR and the
    calibration, pooled with the list's own entries searched against each other, and signed into
    the bundle with its expected false-alert rate.
    """
    from tqdm import tqdm

    from edge.deployment import MAX_WINDOW, check_name
    from edge.face import model
    from edge.watchlist import bundle_v2
    from enrol.build import build_entries, items, list_warnings, read_refs
    from enrol.register import check_deployment_name

    check_name(deployment, "--deployment")
    check_deployment_name(Path(issuer_key).resolve().parent, deployment)
    out_dir = Path(output).resolve().parent
    if not out_dir.is_dir() or Path(output).is_dir():
        raise EdgeError(f"cannot write -o {output}: " + ("it is a folder" if Path(output).is_dir()
                                                         else f"the folder {out_dir} does not exist"))
    box = identity.load_box_public(box_file)
    # the templates are made by the model the box declares (a box.pub.json from before models: dlib)
    m = model.of(box.get("model"), f"box {box['box_id']}'s identity")
    threshold_floor = m.cap if threshold_floor is None else threshold_floor
    key = load_issuer_private(issuer_key)
    now = datetime.now(UTC).replace(microsecond=0)
    nb, na = (bundle.parse_time(not_before) if not_before else now), bundle.parse_time(expires)
    if na <= max(nb, now):
        raise EdgeError(f"--expires {expires} is not in the future (and after --not-before)")
    if na - max(nb, now) > MAX_WINDOW and not outlives_deployment:
        raise EdgeError(f"--expires {expires} is more than {MAX_WINDOW.days} days away: a list lives for one "
                        "deployment (a window lasts at most 31 days); check the date, or --outlives-deployment")
    rows, problems = read_refs(refs)
    if strict and problems:
        for p in problems:
            click.echo(f"problem: {p}", err=True)
        raise EdgeError(f"{len(problems)} problem(s) in {Path(refs).name} and --strict (the default): no face "
                        "encoded, no list written; fix them, or --allow-problems to leave those rows out")
    q = QualityConfig(min_face_px=min_face_px)
    bar = lambda it, total: tqdm(it, total=total, desc="faces", unit="img", file=sys.stderr)
    click.echo(f"face model: {m.describe()} (the one box {box['box_id']} declares)", err=True)
    res = build_entries(rows, images_dir, q, bar, jobs, m.id)
    problems += res.problems
    for p in problems:
        click.echo(f"left out: {p}", err=True)
    if strict and problems:
        raise EdgeError(f"{len(problems)} problem(s) and --strict (the default): no list written; fix them, or "
                        "--allow-problems to leave them out")
    warnings = list_warnings(res, images_dir)
    for w in warnings:
        click.echo(f"warning: {w}", err=True)
    if strict and warnings:
        raise EdgeError(f"{len(warnings)} warning(s) and --strict (the default): no list written; fix them, or "
                        "--allow-problems to build anyway")
    if not res.entries:
        raise EdgeError("no usable entries: no list written")
    if len(res.entries) > max_entries:
        raise EdgeError(f"{len(res.entries)} entries is over --max-entries {max_entries}: no list written")
    op = _operating_point(res.templates, calibration_path, target_fpir, threshold_floor, rule, m.id)
    click.echo(f"operating point: {op.describe()}")
    header = {
        "list_id": secrets.token_hex(8), "deployment": deployment, "box_id": box["box_id"],
        "created": bundle.fmt_time(now), "not_before": bundle.fmt_time(nb), "not_after": bundle.fmt_time(na),
        "sequence": int(now.timestamp()) if sequence is None else sequence, "entries": len(res.entries),
        "policy": {"max_entries": max_entries, "threshold_floor": threshold_floor,
                   "retention_days": retention_days, "target_fpir": target_fpir},
        "operating": op.to_json(), "ends_with_deployment": not outlives_deployment,
        **({"model": m.ref()} if m.id != model.DLIB else {}),  # absent: dlib (what every older box reads)
    }
    # whole or not at all, streamed: big lists never sit in memory twice
    write_atomic(Path(output), lambda f: bundle_v2.write(header, items(res), key, box["wl_public"], f))
    _register_bundle(header, box, res, key, issuer_key, output)
    click.echo(f"{output}: list {header['list_id']} for box {box['box_id']}, {len(res.entries)} entries "
               f"from {res.images_used} of {res.images_total} images, sequence {header['sequence']}, "
               f"expires {header['not_after']}; {len(problems)} problem(s), {len(warnings)} warning(s) reported")


def _operating_point(templates, calibration_path, target_fpir, cap, rule, model_id):
    """The list's operating point: derived for its size, pooled with its own N searches of itself, from the
    calibration of the face model that made the templates."""
    import numpy as np

    from edge.face import model
    from edge.watchlist import operating

    dim = model.get(model_id).dim
    owners = np.concatenate([np.full(len(np.asarray(t).reshape(-1, dim)), i) for i, t in enumerate(templates)])
    rows = np.concatenate([np.asarray(t, np.float32).reshape(-1, dim) for t in templates])
    cal = operating.load_calibration(calibration_path, model_id)
    return operating.derive(cal, len(templates), target_fpir, cap, rule, own=operating.own_searches(rows, owners))


def _register_bundle(header, box, res, key, issuer_key, output) -> None:
    """The SPOC's register line for this bundle, next to the issuer key (enrol/register.py): each image
    by the SHA-256 the bundle carries for it, so the box's report can be checked against it."""
    import hashlib

    from enrol import register

    images = {e.ref: [{"sha256": hashlib.sha256(im.jpeg).hexdigest(), "source": im.source, "taken": im.taken}
                      for im in imgs] for e, imgs in zip(res.entries, res.images, strict=True)}
    line = register.entry(dict(header, box_id=box["box_id"]), box, images, output, register.file_sha256(output))
    line["issuer"] = identity.key_id(identity.raw_public(key))
    register.append(Path(issuer_key).resolve().parent, line)


def _verified_header(path, issuer_key) -> dict:
    raw = load_issuer_public(issuer_key)
    from edge.watchlist import reader
    from edge.watchlist.service import open_bundle_file

    src = open_bundle_file(path)
    try:
        return reader.verify(src, {identity.key_id(raw): raw}).header
    finally:
        src.close()


@cli.command()
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--issuer-key", required=True, type=click.Path(dir_okay=False), help="issuer.pub (or issuer.key).")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def inspect(path, issuer_key, as_json):
    """Show a bundle's signed header (target box, entries, expiry, policy); never decrypts it."""
    h = _verified_header(path, issuer_key)
    if as_json:
        click.echo(json.dumps(h, indent=2, sort_keys=True))
        return
    pol = h["policy"]
    fmt = f"version {h['version']}" + (f", {h['payload']['images']} reference images" if h["version"] >= 2 else "")
    for k, v in [("list", h["list_id"]), ("deployment", h["deployment"]), ("issuer", h["issuer"]),
                 ("signature", "valid"), ("box", f"{h['box_id']} (key {h['box']})"),
                 ("entries", h["entries"]), ("sequence", h["sequence"]), ("created", h["created"]),
                 ("valid", f"{h['not_before']} .. {h['not_after']}"),
                 ("policy", f"max {pol['max_entries']} entries, threshold floor {pol['threshold_floor']}, "
                            f"alerts kept {pol['retention_days']} days"),
                 ("format", fmt), ("face model", _model_row(h))] + _operating_rows(h):
        click.echo(f"{k:>11}: {printable(v)}")


def _model_row(h: dict) -> str:
    """The face model of the list's templates as its header names it (none: dlib, as every list before)."""
    m = h.get("model")
    if not isinstance(m, dict):
        return "dlib-resnet (not named: made before face models were named)"
    return f"{m.get('id')} ({m.get('dim')} numbers a template, weights SHA-256 {str(m.get('sha256'))[:16]}…)"


def _operating_rows(h: dict) -> list[tuple[str, str]]:
    from edge.watchlist import operating

    try:
        op = operating.OperatingPoint.from_json(h["operating"])
    except (KeyError, TypeError, ValueError):
        return [("operating", "none signed (the box derives one for the list's size)")]
    return [("operating", op.describe())]


@cli.command()
@click.argument("register_file", metavar="REGISTER", type=click.Path(dir_okay=False))
@click.argument("report_file", metavar="BOX_REPORT.json", type=click.Path(dir_okay=False))
@user_errors
def reconcile(register_file, report_file):
    """Check the register (bundles.jsonl) against a box's `edge audit report --format json`: every issued
    list loaded or refused, every loaded list issued and ended with a valid receipt. Exit 1 on any
    discrepancy, each named in one line."""
    from enrol import register

    problems, n = register.reconcile(register.read(register_file), register.read_report(report_file))
    for p in problems:
        click.echo(printable(f"DISCREPANCY: {p}"))
    rep = register.read_report(report_file)
    click.echo(f"box {printable(rep.get('box_id'))}: {n['issued']} list(s) issued to it, {n['loaded']} loaded, "
               f"{n['refused']} refused, {n['receipts']} valid deletion receipt(s); "
               + (f"{len(problems)} discrepancy(ies)" if problems else "both sides agree"))
    if problems:
        sys.exit(1)


@cli.command("register")
@click.option("--issuer-key", required=True, type=click.Path(dir_okay=False),
              help="Your issuer.key (or issuer.pub): the registers are kept next to it.")
@click.option("--export", "export_file", type=click.Path(dir_okay=False),
              help="Write bundles.jsonl signed with issuer.key for the oversight service (docs/register-export.md).")
@user_errors
def register_command(issuer_key, export_file):
    """List what you issued: every watch list built and every deployment window signed, oldest first."""
    from edge.codec import printable
    from enrol import register

    if export_file:
        import json
        import time

        from edge import files
        from edge.codec import fmt_time
        from edge.watchlist import register_export

        folder = Path(issuer_key).resolve().parent
        lines = [ln.encode() for ln in files.read_text(folder / register.BUNDLES, "register", register.MAX_READ)
                 .splitlines() if ln.strip()]
        pub = folder / "issuer.pub"
        name = str(json.loads(pub.read_text()).get("name", "")) if pub.is_file() else ""
        data = register_export.make(lines, load_issuer_private(issuer_key), name, fmt_time(time.time()))
        files.write_atomic(Path(export_file).resolve(), data, 0o644)
        click.echo(f"{len(lines)} issued list(s) written to {export_file}, signed by your issuer key")
        return

    rows = register.table(Path(issuer_key).resolve().parent)
    cols = ["when", "what", "deployment", "id", "box", "entries", "valid", "file"]
    width = {c: max([len(c)] + [len(printable(r[c])) for r in rows]) for c in cols[:-1]}
    click.echo("  ".join(c.ljust(width.get(c, 0)) for c in cols).rstrip())
    for r in rows:
        click.echo("  ".join(printable(r[c]).ljust(width.get(c, 0)) for c in cols).rstrip())
    if not rows:
        click.echo("(nothing issued yet)")


@cli.command("verify-receipt")
@click.argument("receipt_file", type=click.Path(dir_okay=False))
@box_key_option(help="The box's public identity (box.pub.json) you received at provisioning.")
@user_errors
def verify_receipt(receipt_file, box_file):
    """Check a deletion receipt a box produced when it purged a list."""
    box = identity.load_box_public(box_file)
    r = receipt.verify(receipt.load_file(receipt_file), box["signing_public"])
    r = printable_tree(r)
    click.echo(f"valid: box {r['box_id']} purged list {r['list_id']} ({r['entries']} entries, "
               f"issuer {r['issuer']}, sequence {r['sequence']}) at {r['time']}, reason: {r['reason']}")


cli.add_command(authorise)  # enrol authorise: docs/deployment-format.md


def main():
    cli(standalone_mode=True)


if __name__ == "__main__":
    main()
