"""Evidence for a court: one encounter as one signed package, checked offline (docs/evidence-format.md).

``build`` gathers, for one encounter: every sighting's camera crop and the matched reference image (from
the alert outbox, while retention keeps them), the encounter's audit records (its alert and sightings,
every decision on it, counted or not, its end, the deletion of its crops) and their **inclusion in the
signed log**: the log's records verbatim from the encounter's first record to the first signed
checkpoint after its last, so the hash chain can be recomputed and the box's checkpoint signature
checked. The package is signed by the box's key as a whole. ``check`` needs nothing but the package and
the box's public key: a changed byte anywhere fails.

Each alert and sighting record (since this version) holds the SHA-256 of its crop and of the reference
image it was matched against, so the images are bound to the log as it was written, not only to the
package's signature.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from edge import codec
from edge.alerts import messages
from edge.alerts.outbox import Outbox
from edge.audit.log import LOG_NAME, read_lines
from edge.audit.verify import verify_records
from edge.errors import EdgeError
from edge.identity import key_id, raw_public

TYPE, VERSION, DOMAIN = "edge-evidence", 1, "edge-evidence-v1"
MAX_FILE = 256 * 1024 * 1024
SIGHTINGS = ("alert", "sighting")
ABOUT = ("adjudication", "adjudication_refused", "encounter_end")


def _encounter(d: dict) -> str:
    return str(d.get("encounter_id") or d.get("group_id") or d.get("alert_id") or "")


def _records(recs: list[dict], encounter_id: str) -> list[dict]:
    """The encounter's own records: sightings, decisions (counted or not), its end, its crops' deletion."""
    alerts = {r["data"]["alert_id"] for r in recs if r["kind"] in SIGHTINGS and _encounter(r["data"]) == encounter_id}
    return [r for r in recs if (r["kind"] in SIGHTINGS + ABOUT and (_encounter(r["data"]) == encounter_id
                                                                  or r["data"].get("alert_id") in alerts))
            or (r["kind"] == "retention_deleted" and r["data"].get("alert_id") in alerts)]


def build(state_dir: str | Path, encounter_id: str, signing_key, box_id: str, now: str) -> dict[str, Any]:
    """The signed package of ``encounter_id`` (the log must verify and be signed past its last record)."""
    state = Path(state_dir)
    data = read_lines(state / "audit" / LOG_NAME)
    pub = raw_public(signing_key)
    res = verify_records(data, pub)
    if res.first is not None:
        raise EdgeError(f"the audit log does not verify, so no evidence can be taken from it: {res.first.message}")
    mine = _records(res.records, encounter_id)
    if not any(r["kind"] in SIGHTINGS for r in mine):
        raise EdgeError(f"no encounter {encounter_id[:64]!r} in this box's audit log")
    last = mine[-1]["seq"]
    end = next((r["seq"] for r in res.records if r["kind"] == "checkpoint" and r["seq"] >= last), None)
    if end is None:
        raise EdgeError("the encounter's last record is not yet covered by a signed checkpoint")
    lines = data.split(b"\n")[:-1]
    first = mine[0]["seq"]
    index = {r["seq"]: i for i, r in enumerate(res.records)}
    chain = [ln.decode("ascii") for ln in lines[index[first]:index[end] + 1]]
    outbox = Outbox(state / "outbox.db")
    try:
        sightings, reference = [], None
        for r in (r for r in mine if r["kind"] in SIGHTINGS):
            held = outbox.find_alert(r["data"]["alert_id"])
            body = held[1] if held else {}
            d = r["data"]
            sightings.append({"alert_id": d["alert_id"], "seq": r["seq"], "camera_id": d["camera_id"],
                              "time": d["time"], "distance": d["distance"], "crop_jpeg": body.get("crop_jpeg") or None})
            if reference is None and body:
                reference = {"ref": body.get("ref", ""), "category": body.get("category", ""),
                             "list_id": body.get("list_id", ""), "threshold": body.get("threshold"),
                             "reference_jpeg": body.get("reference_jpeg") or None, "alert_id": d["alert_id"]}
    finally:
        outbox.close()
    pkg = {"type": TYPE, "v": VERSION, "box_id": box_id, "encounter_id": encounter_id,
           "ref": mine[0]["data"].get("ref", ""), "created": now, "key_id": key_id(pub),
           "signing_public": codec.b64(pub), "records": [r["seq"] for r in mine], "sightings": sightings,
           "reference": reference, "chain": chain}
    pkg["sig"] = codec.sign(DOMAIN, pkg, signing_key)
    return pkg


def to_bytes(pkg: dict[str, Any]) -> bytes:
    return json.dumps(pkg, indent=1, sort_keys=True).encode("ascii") + b"\n"


def check(data: bytes, box_public: bytes) -> dict[str, Any]:
    """Check a package offline against the box's Ed25519 public key: the summary, or EdgeError saying what fails."""
    if len(data) > MAX_FILE:
        raise EdgeError("not an evidence package (too large)")
    try:
        pkg = json.loads(data)
        if not isinstance(pkg, dict) or pkg.get("type") != TYPE or pkg.get("v") != VERSION:
            raise ValueError
        chain, seqs = list(pkg["chain"]), list(pkg["records"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise EdgeError("not a version 1 evidence package (or it was damaged: it does not parse)") from None
    body = {k: v for k, v in pkg.items() if k != "sig"}
    if not codec.verify(DOMAIN, body, pkg.get("sig"), box_public):
        raise EdgeError(f"the package is not signed by box key {key_id(box_public)}: it was changed, or is another "
                        "box's")
    try:
        recs = [json.loads(line) for line in chain]
        anchor_seq, anchor_hash = recs[0]["seq"] - 1, recs[0]["prev"]
    except (ValueError, KeyError, TypeError, IndexError):
        raise EdgeError("the package's log records do not parse") from None
    res = verify_records("".join(line + "\n" for line in chain).encode("ascii", "replace"), box_public, anchor_seq,
                         anchor_hash, strict_keys=False)
    if res.first is not None:
        raise EdgeError(f"the package's log records do not verify: {res.first.message}")
    by_seq = {r["seq"]: r for r in res.records}
    if not seqs or any(s not in by_seq or s > res.signed_through for s in seqs):
        raise EdgeError("a record of the encounter is not in the signed log records the package carries")
    for s in pkg["sightings"]:
        rec = by_seq.get(s.get("seq"), {}).get("data", {})
        if rec.get("alert_id") != s.get("alert_id"):
            raise EdgeError(f"sighting {s.get('alert_id')} is not the log's record {s.get('seq')}")
        _image(s.get("crop_jpeg"), rec.get("crop_sha256"), f"the crop of sighting {s['alert_id']}")
    ref = pkg.get("reference") or {}
    first = next((by_seq[s] for s in seqs if by_seq[s]["kind"] in SIGHTINGS
                  and by_seq[s]["data"]["alert_id"] == ref.get("alert_id")), None)
    if ref and first is not None:
        _image(ref.get("reference_jpeg"), first["data"].get("reference_sha256"), "the matched reference image")
    kinds = [by_seq[s]["kind"] for s in seqs]
    return {"box_id": pkg["box_id"], "encounter_id": pkg["encounter_id"], "ref": pkg["ref"],
            "sightings": kinds.count("alert") + kinds.count("sighting"),
            "crops": sum(1 for s in pkg["sightings"] if s.get("crop_jpeg")),
            "decisions": kinds.count("adjudication"), "refused": kinds.count("adjudication_refused"),
            "signed_through": res.signed_through, "key_id": key_id(box_public)}


def _image(b64: object, digest: object, what: str) -> None:
    """An image in the package matches the SHA-256 its log record holds (records from before have none)."""
    if not b64 or not digest:
        return
    if hashlib.sha256(messages.unb64(str(b64))).hexdigest() != digest:
        raise EdgeError(f"{what} is not the image the log recorded")
