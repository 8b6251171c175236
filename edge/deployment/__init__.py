"""Deployment authorisation: matching runs only inside a window an issuer signed, for the lists it names.

A deployment document (``docs/deployment-format.md``, :mod:`.window`) names the box, the location, the
cameras, a start and end time, the purpose and the watch lists it authorises (id and bundle SHA-256), and
is signed (Ed25519) by an issuer registered in the box's trust store. ``enrol authorise`` makes one;
``edge deployment load`` checks and stores it (:mod:`.store`, with the ledger that keeps an older window
from reviving a deployment); ``edge deployment end`` stops one early; the daemon's :class:`Gate`
(:mod:`.gate`) says which camera may match which list now and records each run's start and end. Outside
every window cameras may run (health) but no face is encoded or matched.
"""

from __future__ import annotations

from edge.codec import fmt_time, parse_time
from edge.deployment.gate import Gate, active
from edge.deployment.store import authorising, deployments_dir, ledger, load, scan, status, stop, stored
from edge.deployment.window import (
    DOC_TYPE,
    EMERGENCY,
    MAX_WINDOW,
    SIGN_DOMAIN,
    VERSION,
    Deployment,
    check_name,
    make,
    parse,
    same_name,
    verify,
)

__all__ = ["DOC_TYPE", "EMERGENCY", "MAX_WINDOW", "SIGN_DOMAIN", "VERSION", "Deployment", "Gate", "active",
           "authorising", "check_name", "deployments_dir", "fmt_time", "ledger", "load", "make", "parse",
           "parse_time", "same_name", "scan", "status", "stop", "stored", "verify"]
