"""The SPOC's register of issued watch lists, and reconciling it with a box's oversight report.

``enrol build`` appends one JSON line per bundle to ``bundles.jsonl`` next to the issuer key (beside
``authorisations.jsonl``): list id, box, refs, each reference image's sha256 (with source and date
taken when refs.csv gives them), expiry, deployment, sequence, and the box's public signing key.
``enrol reconcile REGISTER BOX_REPORT.json`` checks the two sides against each other: every list the
SPOC issued to that box was loaded or refused; every list the box loaded was issued; each loaded list
holds the issued references and images; and every loaded list ended with a deletion receipt that the
box's key signed. Each discrepancy is one line.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from edge import codec, files
from edge.errors import EdgeError

BUNDLES = "bundles.jsonl"
MAX_READ = 256 << 20  # a register or a box report: years of lists and alerts, far smaller


def append(folder: Path, line: dict) -> Path:
    """Add one line to ``folder/bundles.jsonl`` (0600, fsynced)."""
    path = Path(folder) / BUNDLES
    files.append_line(path, json.dumps(line, sort_keys=True), "the bundle")
    return path


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def entry(header: dict, box: dict, images: dict[str, list[dict]], output, bundle_sha256: str) -> dict:
    """The register line for one bundle ``enrol build`` made."""
    return {"list_id": header["list_id"], "box_id": header["box_id"], "deployment": header["deployment"],
            "sequence": header["sequence"], "created": header["created"], "not_before": header["not_before"],
            "not_after": header["not_after"], "entries": header["entries"], "refs": sorted(images),
            "ends_with_deployment": header.get("ends_with_deployment", True),
            "images": images, "file": str(output), "bundle_sha256": bundle_sha256,
            "box_signing_public": codec.b64(box["signing_public"])}


def read(path) -> list[dict]:
    from edge.watchlist.register_export import parse_lines

    return parse_lines(files.read_text(path, "register", MAX_READ), str(path))


def read_report(path) -> dict:
    text = files.read_text(path, "box report", MAX_READ)
    try:
        rep = json.loads(text)
    except (ValueError, RecursionError):
        raise EdgeError(f"{path} is not JSON: make it with `edge audit report --format json`") from None
    if not isinstance(rep, dict) or rep.get("type") != "edge-oversight-report" or rep.get("v", 0) < 2:
        raise EdgeError(f"{path} is not an oversight report of version 2 or later (`edge audit report --format json`)")
    return rep


def _check_receipt(rc: dict, signing_public_b64: str) -> str:
    """"" if the receipt verifies against the box's signing key from the register, else why not."""
    from edge.watchlist import receipt

    try:
        receipt.verify(rc, codec.unb64(signing_public_b64, "the register's box signing key", 32))
    except EdgeError as exc:
        return str(exc)
    return ""


def _differs(reg: dict, got: dict) -> str:
    """"" when a list the box loaded (or a file it refused) is the bundle the register issued under that id: the
    same issuer key and the same bundle SHA-256; else how it differs (a list id alone proves nothing: any
    issuer can write any id, and a refused file's id is its unverified claim)."""
    why = []
    if reg.get("issuer") and got.get("issuer") != reg["issuer"]:
        why.append(f"issuer key {got.get('issuer') or 'unknown'}, not {reg['issuer']}")
    if reg.get("bundle_sha256") and got.get("bundle_sha256") != reg["bundle_sha256"]:
        why.append(f"bundle sha256 {got.get('bundle_sha256') or 'not recorded'}, not {reg['bundle_sha256']}")
    return " and ".join(why)


def unverified(rep: dict) -> str:
    """"" when the report was built from a log that verified; else why it cannot be reconciled."""
    v = str(rep.get("verification") or "")
    if v.startswith("OK"):
        return ""
    said = v[:300] or "no verification in the report"
    return f"the box's audit log did not verify when the report was made ({said}): nothing in it can be relied on"


def reconcile(register: list[dict], rep: dict) -> tuple[list[str], dict]:
    """(discrepancies, counts) between the SPOC's register and one box's report. Lists are matched by issuer,
    list id and bundle hash; a report whose log did not verify is itself a discrepancy."""
    box = rep.get("box_id", "")
    names = set(rep.get("box_ids") or []) | {box}  # a renamed box: the lists issued under its earlier names too
    issued = {r["list_id"]: r for r in register if r["box_id"] in names}
    out: list[str] = [why] if (why := unverified(rep)) else []
    loaded = [w for w in rep.get("watchlists") or [] if isinstance(w, dict)]
    refused = [r for r in rep.get("refused") or [] if isinstance(r, dict) and r.get("claimed_list_id")]
    counts = {"issued": len(issued), "loaded": 0, "refused": 0, "receipts": 0}
    matched: list[tuple[dict, dict]] = []  # (register line, the box's row of that very bundle)
    for lid, reg in issued.items():
        rows = [w for w in loaded if w.get("list_id") == lid and not _differs(reg, w)]
        if rows:
            counts["loaded"] += 1
            matched += [(reg, w) for w in rows]
        elif any(r["claimed_list_id"] == lid and not _differs(reg, r) for r in refused):
            counts["refused"] += 1
        else:
            out.append(f"list {lid} (issued {reg.get('created') or '?'}, deployment {reg.get('deployment') or '?'}) "
                       f"was neither loaded nor refused by box {box} in the report's period")
            for r in refused:
                if r["claimed_list_id"] == lid:
                    out.append(f"a file {r.get('file') or '?'} refused at {r.get('time')} claims list {lid}, but it "
                               f"is not the issued bundle ({_differs(reg, r)})")
    for w in loaded:
        if any(w is row for _, row in matched):
            continue
        lid = w.get("list_id")
        issuer = w.get("issuer_name") or w.get("issuer")
        same_id = issued.get(lid)
        out.append(f"list {lid} was loaded by box {box} (issuer {issuer}) but is not in the register"
                   if same_id is None else
                   f"list {lid} was loaded by box {box} but is not the bundle the register issued under that id "
                   f"({_differs(same_id, w)})")
    for reg, w in matched:
        lid = reg["list_id"]
        box_refs, reg_refs = set(w.get("refs") or []), set(reg.get("refs") or [])
        if extra := ", ".join(sorted(box_refs - reg_refs)):
            out.append(f"list {lid}: the box held reference(s) not issued: {extra}")
        if missing := ", ".join(sorted(reg_refs - box_refs)):
            out.append(f"list {lid}: issued reference(s) the box did not hold: {missing}")
        for d in w.get("entry_details") or []:
            hashes = {i.get("sha256") for i in (reg.get("images") or {}).get(d.get("ref"), [])}
            for img in d.get("images") or []:
                if img.get("sha256") and img["sha256"] not in hashes:
                    out.append(f"list {lid}: reference {d.get('ref')} holds image sha256 {img['sha256']} "
                               "that the register does not list for it")
        end = w.get("ended")
        if end is None:
            out.append(f"list {lid}: has not ended (still in force at the end of the report's period): "
                       "no deletion receipt")
        elif not end.get("receipt"):
            out.append(f"list {lid}: {end.get('how')} at {end.get('time')} without a deletion receipt")
        else:
            why = _check_receipt(end["receipt"], reg.get("box_signing_public", ""))
            rc = end["receipt"]
            if why:
                out.append(f"list {lid}: its deletion receipt does not verify: {why}")
            elif rc.get("list_id") != lid or rc.get("box_id") not in names:
                out.append(f"list {lid}: its deletion receipt is for list {rc.get('list_id')} "
                           f"on box {rc.get('box_id')}")
            else:
                counts["receipts"] += 1
    return out, counts


def deployment_names(folder: Path) -> set[str]:
    """The deployment names already used in the registers next to the issuer key (bundles and windows)."""
    names: set[str] = set()
    for name in (BUNDLES, "authorisations.jsonl"):
        path = Path(folder) / name
        if not path.exists():
            continue
        for ln in files.read_text(path, "register", MAX_READ).splitlines():
            try:
                rec = json.loads(ln)
            except ValueError:
                continue
            got = rec.get("deployment") or rec.get("deployment_id") if isinstance(rec, dict) else None
            if isinstance(got, str):
                names.add(got)
    return names


def check_deployment_name(folder: Path, name: str) -> None:
    """Refuse a deployment name that reads like one already in the registers but is not it ("OpLantern" after
    "Op Lantern"): a list and its window are tied by the exact name, so a typo would never match."""
    from edge.deployment import same_name

    alike = sorted(n for n in deployment_names(folder) if n != name and same_name(n, name))
    if alike:
        raise EdgeError(f"deployment {name!r} looks like {alike[0]!r} in your register but is not the same name: "
                        "a list matches only under a window of exactly its deployment name; use that spelling")


def table(folder: Path) -> list[dict[str, str]]:
    """The SPOC's registers (bundles.jsonl and authorisations.jsonl next to the issuer key) as rows, oldest
    first: each list built and each window signed, with its deployment, box, size and validity."""
    rows = []
    for name, what in ((BUNDLES, "list"), ("authorisations.jsonl", "window")):
        path = Path(folder) / name
        if not path.exists():
            continue
        for n, ln in enumerate(files.read_text(path, "register", MAX_READ).splitlines(), start=1):
            try:
                r = json.loads(ln)
            except ValueError:
                raise EdgeError(f"{path} line {n} is not JSON: the register is damaged") from None
            if not isinstance(r, dict):
                raise EdgeError(f"{path} line {n} is not a register entry")
            if what == "list":
                rows.append({"when": str(r.get("created", "")), "what": what, "deployment": str(r.get("deployment")),
                             "id": str(r.get("list_id")), "box": str(r.get("box_id")),
                             "entries": str(r.get("entries", "")),
                             "valid": f"{r.get('not_before', '')} .. {r.get('not_after', '')}",
                             "file": str(r.get("file", ""))})
            else:
                got = r.get("lists")
                lists = got if isinstance(got, list) else []
                rows.append({"when": str(r.get("issued", "")), "what": what,
                             "deployment": str(r.get("deployment_id")),
                             "id": ",".join(str(x.get("list_id")) for x in lists if isinstance(x, dict)) or "-",
                             "box": str(r.get("box_id")), "entries": "-",
                             "valid": f"{r.get('start', '')} .. {r.get('end', '')}", "file": str(r.get("file", ""))})
    return sorted(rows, key=lambda x: x["when"])
