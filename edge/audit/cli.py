"""`edge audit`: verify the log (or an export, off the box), export a period, report on a period."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from edge import files
from edge.cli_options import (
    box_key_option,
    config_option,
    emit_report,
    load_config,
    resolve_state_dir,
    state_dir_option,
    user_errors,
)
from edge.codec import fmt_time, parse_time, printable
from edge.errors import EdgeError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def period(start: str | None, end: str | None) -> tuple[datetime, datetime]:
    """--from/--to: ISO times or whole days (a bare date in --to includes that day); --to defaults to now."""
    lo = parse_time(start, "--from", date_ok=True) if start else EPOCH
    hi = parse_time(end, "--to", date_ok=True) if end else datetime.now(UTC)
    if end and len(end.strip()) == 10:
        hi += timedelta(days=1)
    if hi <= lo:
        raise EdgeError("--to must be after --from")
    return lo, hi


def since_first_record(state: Path, start, lo: datetime, hi: datetime, records=None):
    """Without --from, a period starts at the log's first record (not at 1970)."""
    from edge.audit.verify import verify_log

    if start is None:
        records = verify_log(state).records if records is None else records
        if records:
            lo = max(lo, parse_time(records[0]["time"]).replace(microsecond=0))
    return lo, hi


def open_log(state: Path):
    from edge.audit.log import AuditLog

    return AuditLog(state)


period_options = [
    click.option("--from", "start", default=None,
                 help="Start: a day (2026-11-01, from its midnight) or an ISO time, UTC; default: the first record."),
    click.option("--to", "end", default=None,
                 help="End: a day (2026-11-30, that whole day included) or an ISO time (exclusive), UTC; "
                      "default: now."),
]


def with_period(fn):
    for opt in reversed(period_options):
        fn = opt(fn)
    return fn


@click.group()
def audit():
    """The tamper-evident audit log: verify it, export a period, report to an oversight body."""


def verified_export(export_file, box_key):
    """An audit export checked against the box key it must be signed by: (header, result, that key)."""
    from edge import identity
    from edge.audit import verify as v

    if not box_key:
        raise EdgeError("--export needs --box-key box.pub.json (the key the export must be signed by)")
    pub = identity.load_box_public(box_key)["signing_public"]
    header, res = v.verify_export(Path(export_file).read_bytes(), pub)
    return header, res, pub


@audit.command()
@config_option
@state_dir_option
@click.option("--export", "export_file", type=click.Path(dir_okay=False, exists=True),
              help="Check this export file instead of the box's log (works off the box).")
@box_key_option("box_key", required=False, help="The box's public identity (box.pub.json) an export must be signed by.")
@click.option("--witness", "witness_files", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="A console's witness file (`edge console witness -o FILE`): the log may not end before it.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@user_errors
def verify(config_path, state_dir, export_file, box_key, witness_files, as_json):
    """Check the hash chain and signatures; name the first broken record and exit 1 if any.

    A log cut back to an earlier checkpoint is caught by the box's own anchor and, with --witness, by
    the newest checkpoint each console received from this box."""
    from edge import identity
    from edge.audit import verify as v

    if export_file:
        header, res, _ = verified_export(export_file, box_key)
        what = f"export of box {header.get('box_id')} ({header.get('from')} .. {header.get('to')})"
    else:
        state = resolve_state_dir(config_path, state_dir)
        trusted = identity.load_box_public(box_key)["signing_public"] if box_key else None
        res = v.verify_log(state, trusted, [w for f in witness_files for w in v.load_witnesses(f)])
        what = f"audit log {state / 'audit' / 'audit.log'}"
    if as_json:
        click.echo(json.dumps(res.as_dict(), indent=2))
    else:
        click.echo(printable(f"{what}: {res.summary()}"))
        for w in res.warnings:
            click.echo(printable(f"  note: {w}"))
    if not res.ok:
        sys.exit(1)


@audit.command()
@config_option
@state_dir_option
@with_period
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Export file to write.")
@user_errors
def export(config_path, state_dir, start, end, output):
    """Write a signed export of a period that `edge audit verify --export` checks off the box."""
    import hashlib

    from edge import identity
    from edge.audit.verify import make_export

    state = resolve_state_dir(config_path, state_dir)
    ident = identity.load(state)
    lo, hi = since_first_record(state, start, *period(start, end))
    log = open_log(state)
    log.checkpoint()
    data, n = make_export(state, lo, hi, ident.signing_key, ident.box_id, fmt_time(time.time(), ms=True))
    files.write_atomic(Path(output).resolve(), data, 0o600)  # for whom it is handed to, not every user
    log.append("audit_exported", **{"from": lo.isoformat(), "to": hi.isoformat(), "records": n,
                                    "sha256": hashlib.sha256(data).hexdigest()})
    click.echo(f"exported {n} records to {output}")


@audit.command()
@config_option
@state_dir_option
@with_period
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@click.option("--export", "export_file", type=click.Path(dir_okay=False, exists=True),
              help="Report on this export (`edge audit export`) instead of the box's log: works off the box.")
@click.option("--box-key", type=click.Path(dir_okay=False, exists=True),
              help="With --export: the box's public identity (box.pub.json) the export must be signed by.")
@user_errors
def report(config_path, state_dir, start, end, fmt, output, export_file, box_key):
    """The oversight report for a period: what was shared, what matched, what was decided, what was deleted.

    Four questions, each under its own heading (docs/report-format.md); --from/--to are whole days.
    """
    from edge.audit import report as rep
    from edge.audit import verify as v

    if export_file:
        _, res, pub = verified_export(export_file, box_key)
        lo, hi = period(start, end)
        if start is None and res.usable:
            from edge.codec import parse_time

            lo = max(lo, parse_time(res.usable[0]["time"]).replace(microsecond=0))
        checker, names = receipt_check(pub), {}
    else:
        state = resolve_state_dir(config_path, state_dir)
        res = v.verify_log(state)
        lo, hi = since_first_record(state, start, *period(start, end), res.usable)
        checker, names = receipt_checker(state), trusted_issuer_names(state)
    label = (start or rep.iso(lo), end or f"now ({rep.iso(hi)})")
    r = rep.build(res.usable, lo, hi, verification=res.summary(), period_label=label, check_receipt=checker,
                  issuer_names=names)
    text = {"text": rep.render_text, "json": rep.render_json, "html": rep.render_html}[fmt](r)
    emit_report(text, output)


def trusted_issuer_names(state: Path) -> dict[str, str]:
    """Issuer key id -> the name in its trust-store file (<state>/trust/issuers/<key id>.pub)."""
    names = {}
    for p in sorted((state / "trust" / "issuers").glob("*.pub")) if (state / "trust" / "issuers").is_dir() else []:
        try:
            doc = json.loads(p.read_text())
            names[p.stem] = str(doc.get("name", "")) if isinstance(doc, dict) else ""
        except (OSError, ValueError, UnicodeDecodeError):
            continue
    return names


def receipt_checker(state: Path):
    """fn(receipt) -> "signature valid ..." or why not, with this box's own signing key (None: no key)."""
    from edge import identity

    try:
        return receipt_check(identity.load(state).signing_public)
    except EdgeError:
        return None


def receipt_check(pub: bytes):
    from edge import identity
    from edge.watchlist import receipt

    def check(rc: dict) -> str:
        try:
            receipt.verify(rc, pub)
            return f"signature valid (box key {identity.key_id(pub)})"
        except EdgeError as exc:
            return f"INVALID: {exc}"

    return check


@audit.command()
@config_option
@state_dir_option
@click.option("--days", type=float, default=None,
              help="Keep alert crops and details this long if that is shorter than the box's policy (the "
                   "stricter of alerts.retention_days in the config and the list's signed policy.retention_days).")
@user_errors
def retention(config_path, state_dir, days):
    """Delete alert crops and details older than the retention period now; each deletion is logged."""
    from edge.alerts.retention import DEFAULT_DAYS, Policy, sweep
    from edge.watchlist.service import stored_header

    state = resolve_state_dir(config_path, state_dir)
    try:
        config_days = load_config(config_path, state_dir).alerts.retention_days
    except EdgeError:
        if state_dir is None:
            raise
        config_days = DEFAULT_DAYS  # a state dir without its config (an off-box copy): the default period
    policy = Policy.of(config_days, stored_header(state))  # the daemon's policy (Daemon.retention)
    if days is not None:
        if not days > 0:
            raise EdgeError("--days must be a positive number of days")
        policy = policy.stricter(days, "--days")  # shorter only: never keeps what the box's policy deletes
    log = open_log(state)
    deleted = sweep(state, policy, record=log.append)
    log.close()
    click.echo(f"deleted {len(deleted)} alert(s) older than {policy.days:g} days ({policy.source})")


@audit.command()
@click.argument("encounter")
@config_option
@state_dir_option
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Package file to write.")
@user_errors
def evidence(encounter, config_path, state_dir, output):
    """Write one encounter as a signed evidence package for a court: its crops, the matched reference, every
    sighting, every decision record with its inclusion in the signed log (docs/evidence-format.md).

    `edge audit verify-evidence FILE --box-key box.pub.json` checks it anywhere, offline."""
    import hashlib

    from edge import identity
    from edge.audit import evidence as ev

    state = resolve_state_dir(config_path, state_dir)
    ident = identity.load(state)
    log = open_log(state)
    log.checkpoint()  # the encounter's last records are signed before they are taken out
    data = ev.to_bytes(ev.build(state, encounter, ident.signing_key, ident.box_id, fmt_time(time.time(), ms=True)))
    files.write_atomic(Path(output).resolve(), data, 0o600)
    log.append("evidence_exported", encounter_id=encounter[:64], sha256=hashlib.sha256(data).hexdigest())
    click.echo(f"wrote {output}: encounter {printable(encounter)}, {len(data)} bytes; check it with "
               f"'edge audit verify-evidence {output} --box-key box.pub.json'")


@audit.command("verify-evidence")
@click.argument("package", type=click.Path(dir_okay=False))
@box_key_option("box_key", help="The box's public identity (box.pub.json) the package must be signed by.")
@user_errors
def verify_evidence(package, box_key):
    """Check an evidence package offline against the box's public key (box.pub.json): the images, records
    and their inclusion in the box's signed log; any changed byte fails."""
    from edge import identity
    from edge.audit import evidence as ev

    pub = identity.load_box_public(box_key)["signing_public"]
    s = ev.check(files.read_text(package, "evidence package", ev.MAX_FILE).encode(), pub)
    click.echo(f"OK: evidence of encounter {printable(s['encounter_id'])} ({printable(s['ref'])}) on box "
               f"{printable(s['box_id'])}, signed by box key {s['key_id']}: {s['sightings']} sighting(s), "
               f"{s['crops']} crop(s), {s['decisions']} decision(s) counted, {s['refused']} not counted; every "
               f"record in the log signed through seq {s['signed_through']}")
