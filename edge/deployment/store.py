"""The deployment windows on a box: ``<state_dir>/deployments/<id>.json`` (the newest document per id) and
``ledger.json``, which remembers per id the newest ``issued`` time ever accepted and when (by whom, why) the
deployment was stopped early. A document issued before either never counts again: an older window cannot
revive a deployment that was superseded or ended.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge import files, identity
from edge.codec import canonical, fmt_time, parse_time
from edge.deployment.window import EMERGENCY, Deployment, parse, same_name, verify
from edge.errors import EdgeError
from edge.files import match_owner

log = logging.getLogger("edge.deployment")

StatePath = str | os.PathLike[str]
Record = Callable[..., object]  # the audit log's append(kind, **fields)
LEDGER = "ledger.json"
EMERGENCY_REASON = "emergency use without an authority reference lapsed after 24 h"


def deployments_dir(state_dir: StatePath) -> Path:
    return Path(state_dir) / "deployments"


def ledger(state_dir: StatePath) -> dict[str, dict[str, Any]]:
    """{deployment_id: {issued, stopped, by, reason, ending}}; a damaged ledger stops every load (no revival)."""
    path = deployments_dir(state_dir) / LEDGER
    if not path.exists():
        return {}
    doc = files.read_json(path, "the deployment ledger")
    if not isinstance(doc, dict) or not all(isinstance(v, dict) for v in doc.values()):
        raise EdgeError(f"the deployment ledger {path} is damaged: an engineer must restore it")
    return doc


def _save_ledger(state_dir: StatePath, doc: dict[str, dict[str, Any]]) -> None:
    d = deployments_dir(state_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    files.write_atomic(d / LEDGER, json.dumps(doc, indent=1, sort_keys=True).encode(), 0o600)
    match_owner(d / LEDGER, Path(state_dir))


def _against_ledger(dep: Deployment, entry: dict[str, Any] | None) -> Deployment:
    """The window as the ledger has it: refused if superseded, marked stopped if ended early."""
    if not entry:
        return dep
    newest = parse_time(entry.get("issued", "1970-01-01T00:00:00Z"), "issued")
    if dep.issued < newest:
        raise EdgeError(f"this window for deployment {dep.deployment_id} (issued {fmt_time(dep.issued, ms=True)}) "
                        f"is superseded by one issued {fmt_time(newest, ms=True)}: an older window never revives it")
    stopped = entry.get("stopped")
    if stopped:
        at = parse_time(stopped, "stopped")
        if dep.issued <= at:
            return _stop(dep, at, f"ended by {entry.get('by') or 'command'}: {entry.get('reason', '')}".rstrip(": "))
    return dep


def _stop(dep: Deployment, at: datetime, why: str) -> Deployment:
    if dep.stopped and dep.stopped <= at:
        return dep
    return replace(dep, stopped=at, stop_reason=why)


def _issuer_of(path: Path) -> str:
    """The issuer key id of a window stored on the box ("" if none is stored there)."""
    try:
        doc = json.loads(path.read_bytes())
        return str(doc.get("issuer") or "") if isinstance(doc, dict) else ""
    except (OSError, ValueError, RecursionError):
        return ""


def load(state_dir: StatePath, path: StatePath, *, record: Record | None = None,
         now: datetime | None = None) -> Deployment:
    """Check a deployment file and store it on the box; logged as deployment_loaded or _refused."""
    record = record or (lambda kind, **f: None)
    now = now or datetime.now(UTC)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read {path}: {exc.strerror}") from None
    named: dict[str, str] = {}  # the deployment a refused window is for, once its signature is known good
    try:
        box_id = identity.load(state_dir).box_id
        dep = verify(parse(data), identity.issuers(state_dir), box_id)
        named["deployment_id"] = dep.deployment_id
        book = ledger(state_dir)
        dep = _against_ledger(dep, book.get(dep.deployment_id))
        if dep.stopped:
            raise EdgeError(f"deployment {dep.deployment_id} was {dep.stop_reason} at {fmt_time(dep.stopped)}; "
                            "a window issued before that cannot revive it")
        if dep.end <= now:
            raise EdgeError(f"the deployment ended at {fmt_time(dep.end)}")
        held = _issuer_of(deployments_dir(state_dir) / f"{dep.deployment_id}.json")
        if held and held != dep.issuer:
            raise EdgeError(f"deployment {dep.deployment_id} is already authorised by issuer {held}: a window from "
                            f"issuer {dep.issuer} cannot replace it")
    except EdgeError as exc:
        record("deployment_refused", file=Path(path).name, reason=str(exc), **named)
        raise
    d = deployments_dir(state_dir)
    d.mkdir(parents=True, exist_ok=True, mode=0o700)
    record("deployment_loaded", **dep.fields())
    book.setdefault(dep.deployment_id, {})["issued"] = fmt_time(dep.issued, ms=True)
    _save_ledger(state_dir, book)
    files.write_atomic(d / f"{dep.deployment_id}.json", canonical(dep.doc) + b"\n", 0o600)
    for p in (d, d / f"{dep.deployment_id}.json"):  # readable by the daemon when loaded as root
        match_owner(p, Path(state_dir))
    return dep


def scan(state_dir: StatePath, require_ref: bool = False) -> tuple[list[Deployment], list[str]]:
    """The deployments on the box, each re-verified against the trust store and the ledger (stopped ones carry
    when and why), and one sentence per stored file that fails (damaged, superseded, or its issuer no longer
    trusted): such a window does not count. ``require_ref``: a window without an authority reference stops
    24 h after it starts (emergency use)."""
    d = deployments_dir(state_dir)
    if not d.is_dir():
        return [], []
    issuers = identity.issuers(state_dir)
    try:
        box_id = identity.load(state_dir).box_id
        book = ledger(state_dir)
    except EdgeError as exc:
        return [], [f"stored deployments cannot be checked: {exc}"]
    out, problems = [], []
    for p in sorted(d.glob("*.json")):
        if p.name == LEDGER:
            continue
        try:
            dep = verify(parse(p.read_bytes()), issuers, box_id)
            dep = _against_ledger(dep, book.get(dep.deployment_id))
            if require_ref and not dep.authority_ref:
                dep = _stop(dep, dep.start + EMERGENCY, EMERGENCY_REASON)
            out.append(dep)
        except OSError as exc:
            problems.append(f"stored deployment {p} cannot be read: {exc.strerror}")
        except EdgeError as exc:
            problems.append(f"stored deployment {p} does not count: {exc}")
    return sorted(out, key=lambda x: x.start), problems


def stored(state_dir: StatePath, require_ref: bool = False) -> list[Deployment]:
    """The deployments that count; each file that does not is logged (once per version of it) as a warning."""
    deps, problems = scan(state_dir, require_ref)
    for why in problems:
        files.warn_once(log, deployments_dir(state_dir), why)
    return deps


def stop(state_dir: StatePath, deployment_id: str, *, by: str, reason: str, ending: str = "command",
         record: Record | None = None, now: datetime | None = None) -> Deployment:
    """End a deployment now (``edge deployment end``, a trust removal): recorded first, then in the ledger, so
    no window issued before now counts again. EdgeError if there is no such deployment or it already ended."""
    record = record or (lambda kind, **f: None)
    now = now or datetime.now(UTC)
    if not reason.strip():
        raise EdgeError("say why the deployment ends (--reason)")
    dep = next((d for d in stored(state_dir) if d.deployment_id == deployment_id), None)
    if dep is None:
        known = [d.deployment_id for d in stored(state_dir)]
        raise EdgeError(f"there is no deployment {deployment_id!r} on this box"
                        + (f" (there is: {', '.join(known)})" if known else ""))
    if now >= dep.until:
        raise EdgeError(f"deployment {deployment_id} already ended at {fmt_time(dep.until)}")
    book = ledger(state_dir)
    record("deployment_stopped", deployment_id=deployment_id, by=by, reason=reason, ending=ending,
           issuer=dep.issuer_name or dep.issuer, window_end=fmt_time(dep.end))
    book.setdefault(deployment_id, {"issued": fmt_time(dep.issued, ms=True)}).update(
        stopped=fmt_time(now, ms=True), by=by, reason=reason, ending=ending)
    _save_ledger(state_dir, book)
    return _stop(dep, now, f"ended by {by}: {reason}")


def status(state_dir: StatePath, now: datetime | None = None, problems: list[str] | None = None,
           require_ref: bool = False) -> list[dict[str, Any]]:
    """Each deployment that counts with its state (active, upcoming, ended, stopped); the files that do not
    count are appended to ``problems`` when given."""
    now = now or datetime.now(UTC)
    out = []
    deps, bad = scan(state_dir, require_ref)
    if problems is not None:
        problems.extend(bad)
    for d in deps:
        state = ("active" if d.live(now) else "upcoming" if now < d.start
                 else "stopped" if d.stopped and d.stopped < d.end else "ended")
        extra = {"stopped": fmt_time(d.stopped), "stop_reason": d.stop_reason} if d.stopped and state == "stopped" \
            else {}
        out.append(dict(d.fields(), state=state, emergency=require_ref and not d.authority_ref, **extra))
    return out


def authorising(state_dir: StatePath, header: dict[str, Any], digest: str, now: datetime | None = None,
                require_ref: bool = False) -> Deployment:
    """The window under which this list (its signed header and the bundle's SHA-256) may be loaded: one for the
    list's own deployment, by the list's issuer, naming this list id and hash, not over. EdgeError otherwise."""
    now = now or datetime.now(UTC)
    name, list_id = str(header.get("deployment", "")), str(header.get("list_id", ""))
    deps = stored(state_dir, require_ref)
    mine = [d for d in deps if d.deployment_id == name]
    if not mine:
        alike = [d.deployment_id for d in deps if same_name(d.deployment_id, name)]
        if alike:
            raise EdgeError(f"list {list_id} is for deployment {name!r}, not {alike[0]!r}: a list matches only "
                            "under a window of exactly its own deployment name")
        others = [d.deployment_id for d in deps]
        raise EdgeError(f"no deployment window on this box is for deployment {name!r} of list {list_id}"
                        + (f" (windows here: {', '.join(others)})" if others else "")
                        + ": load its window first ('edge deployment load')")
    dep = mine[0]
    if now >= dep.until:
        raise EdgeError(f"the window of deployment {name} ended at {fmt_time(dep.until)}: list {list_id} refused")
    named = dict(dep.lists)
    if list_id not in named:
        raise EdgeError(f"the window of deployment {name} does not name list {list_id}: refused (it names "
                        f"{', '.join(named)})")
    if named[list_id] != digest:
        raise EdgeError(f"list {list_id} is not the file the window of deployment {name} authorised "
                        "(its SHA-256 differs): refused")
    if header.get("issuer") != dep.issuer:
        raise EdgeError(f"list {list_id} is signed by another issuer than the window of deployment {name}: refused")
    return dep

