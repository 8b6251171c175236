"""`edge oversight migrate | serve | ingest | report | reconcile | verify` (docs/oversight-service.md).

The ingest side (migrate, serve, ingest) opens the database for writing and holds the service's keys;
the readers' side (report, reconcile, verify) opens it read-only, with ``database.reader_url`` when set,
and never needs the keys.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from edge.cli_options import emit_report, user_errors
from edge.errors import EdgeError

config_opt = click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
                          help="The oversight service's TOML file.")


def _cfg(path):
    from edge.oversight import config

    return config.load(path)


def _now() -> str:
    from edge.codec import fmt_time

    return fmt_time(time.time(), ms=True)


def _writer(cfg, migrate: bool = False):
    from edge.oversight.db import open_db

    return open_db(cfg.url, migrate=migrate, reader_role=cfg.reader_role)


def _reader(cfg):
    from edge.oversight.db import open_db

    return open_db(cfg.reader_url or cfg.url, readonly=True)


@click.group("oversight")
def oversight():
    """The force's data office: every box's audit log in one verified store, the four questions fleet-wide."""


@oversight.command()
@config_opt
@user_errors
def migrate(config_path):
    """Create or bring the database up to date, make the service's keys, register the config's boxes."""
    from edge.oversight import config
    from edge.oversight.db import VERSION

    cfg = _cfg(config_path)
    db = _writer(cfg, migrate=True)
    try:
        boxes = config.register_boxes(db, cfg, _now())
    finally:
        db.close()
    config.keys(cfg.keys, create=True)
    click.echo(f"database {db.where} at schema version {VERSION}; {len(boxes)} box(es) registered; "
               f"the boxes' [oversight] service_key: {Path(cfg.keys) / config.PUB_FILE}")


@oversight.command()
@config_opt
@user_errors
def serve(config_path):
    """Receive the boxes' audit records over CURVE ZeroMQ, verify and store each, countersign checkpoints."""
    import logging
    import signal

    from edge import sdnotify
    from edge.oversight import config
    from edge.oversight.server import Server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = _cfg(config_path)
    db = _writer(cfg, migrate=True)
    try:
        server = Server(cfg, db, config.keys(cfg.keys, create=True))
        signal.signal(signal.SIGTERM, lambda *_: server.stop())
        signal.signal(signal.SIGINT, lambda *_: server.stop())
        sdnotify.ready(f"{len(server.boxes)} box(es)")
        server.run()
    finally:
        db.close()


@oversight.command()
@config_opt
@click.option("--export", "exports", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="A hand-carried `edge audit export` file (repeatable).")
@click.option("--register", "registers", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="An issuer's bundles.jsonl (repeatable); its issuer.pub is read from beside it.")
@click.option("--issuer-key", type=click.Path(dir_okay=False, exists=True),
              help="With one --register: the issuer's issuer.pub, when it is not beside the register.")
@user_errors
def ingest(config_path, exports, registers, issuer_key):
    """Ingest hand-carried exports and issuers' registers (each export verified whole, then record by record)."""
    from edge.oversight import config
    from edge.oversight import registers as reg
    from edge.oversight.ingest import Ingest, ingest_export

    if not exports and not registers:
        raise EdgeError("nothing to ingest: give --export FILE or --register FILE")
    if issuer_key and len(registers) != 1:
        raise EdgeError("--issuer-key goes with exactly one --register")
    cfg = _cfg(config_path)
    db = _writer(cfg, migrate=True)
    try:
        config.register_boxes(db, cfg, _now())
        for f in exports:
            out = ingest_export(Ingest(db), Path(f).read_bytes())
            click.echo(f"{f}: {out.summary()}")
        for f in registers:
            issuer, new, held = reg.ingest(db, f, issuer_key, _now())
            click.echo(f"{f}: issuer {issuer}: {new} list(s) added, {held} already held")
    finally:
        db.close()


@oversight.command()
@config_opt
@click.option("--issuer", default="", help="An issuer's key id or name.")
@click.option("--site-kind", type=click.Choice(["private", "public"]), default=None,
              help="Only private or public sites.")
@click.option("--site", default="", help="One site, as the config names it.")
@click.option("--box", default="", help="One box id.")
@click.option("--deployment", default="", help="One deployment id.")
@click.option("--from", "start", default=None, help="Start: a day (2026-01-01) or an ISO time, UTC.")
@click.option("--to", "end", default=None, help="End: a day (included) or an ISO time (exclusive), UTC.")
@click.option("--by", type=click.Choice(["issuer", "site", "box", "deployment", "month"]), default=None,
              help="Answer per issuer, site, box, deployment or month as well.")
@click.option("--detail", is_flag=True, help="Drill down: each list and alert by box, seq and record hash.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "html"]), default="text", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to this file instead of stdout.")
@user_errors
def report(config_path, issuer, site_kind, site, box, deployment, start, end, by, detail, fmt, output):
    """The four questions across the fleet: shared, matched, action taken, deleted (with exact counts).

    "How many images did issuer X share with private sites, did any match, was any action taken, and were
    they deleted?": edge oversight report -c oversight.toml --issuer X --site-kind private --detail"""
    from datetime import timedelta

    from edge.codec import fmt_time, parse_time
    from edge.oversight import render
    from edge.oversight.report import Scope, build

    lo = fmt_time(parse_time(start, "--from", date_ok=True)) if start else ""
    hi = ""
    if end:
        to = parse_time(end, "--to", date_ok=True)
        hi = fmt_time(to + timedelta(days=1) if len(end.strip()) == 10 else to)
    if lo and hi and hi <= lo:
        raise EdgeError("--to must be after --from")
    db = _reader(_cfg(config_path))
    try:
        rep = build(db, Scope(issuer, site_kind or "", site, box, deployment, lo, hi), by or "", detail)
    finally:
        db.close()
    text = {"text": render.render_text, "json": render.render_json, "html": render.render_html}[fmt](rep)
    emit_report(text, output)


@oversight.command()
@config_opt
@click.option("--issuer", default="", help="Only this issuer (key id or name).")
@user_errors
def reconcile(config_path, issuer):
    """Every list any issuer issued to any box: loaded or refused, ended with a valid receipt; exit 1 if not."""
    from edge.oversight import registers

    db = _reader(_cfg(config_path))
    try:
        problems, summary = registers.reconcile(db, issuer)
    finally:
        db.close()
    for p in problems:
        click.echo(f"DISCREPANCY: {p}")
    for s in summary:
        click.echo(f"issuer {s['issuer_name'] or s['issuer']} ({s['issuer']}): {s['issued']} list(s) issued to "
                   f"{len(s['boxes'])} box(es), {s['loaded']} loaded, {s['refused']} refused, {s['matched']} "
                   f"matched, {s['receipts']} valid deletion receipt(s)")
    click.echo(f"{len(problems)} discrepancy(ies)" if problems else "the registers and the boxes' logs agree")
    if problems:
        sys.exit(1)


@oversight.command()
@config_opt
@click.option("--box", default="", help="Only this box.")
@click.option("--box-log", type=click.Path(dir_okay=False, exists=True),
              help="A box's audit.log to check against the service's copy (with --box).")
@click.option("--witness", "witness_files", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="A console's witness file (`edge console witness`): the service's copy must hold each checkpoint.")
@user_errors
def verify(config_path, box, box_log, witness_files):
    """Check the service's stored copy again (every hash, link and signature), or a box's log against it."""
    from edge.audit.verify import load_witnesses
    from edge.oversight import verify as v

    if box_log and not box:
        raise EdgeError("--box-log needs --box (the box whose log it is)")
    witnesses = [w for f in witness_files for w in load_witnesses(f)]
    db = _reader(_cfg(config_path))
    try:
        if box_log:
            problems = v.against(db, box, Path(box_log).read_bytes())
            lines = [f"box {box}: its log agrees with the service's copy"] if not problems else []
        else:
            problems, lines = v.stored(db, box)
        if witnesses:
            problems += v.witnessed(db, witnesses)
            lines.append(f"{len(witnesses)} witnessed checkpoint(s) checked against the service's copy")
    finally:
        db.close()
    for ln in lines:
        click.echo(ln)
    for p in problems:
        click.echo(f"PROBLEM: {p}")
    if problems:
        sys.exit(1)
