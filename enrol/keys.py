"""The SPOC's issuer key files: the private key (PKCS#8 PEM, optionally passphrase-protected) and the
public ``issuer.pub`` (docs/keys.md). Used by every `enrol` command that signs or checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from edge import identity
from edge.errors import EdgeError
from edge.files import StrPath, read_text

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

PASSPHRASE_ENV = "ENROL_PASSPHRASE"
MIN_PASSPHRASE = 12  # characters of a new issuer key's passphrase


def ask_passphrase(confirm: bool = False) -> bytes:
    """The passphrase ($ENROL_PASSPHRASE or a prompt); ``confirm``: a new one, asked twice, 12+ characters."""
    text = os.environ.get(PASSPHRASE_ENV)
    if text is None:
        text = click.prompt("Issuer key passphrase", hide_input=True, confirmation_prompt=confirm)
    if confirm and len(text) < MIN_PASSPHRASE:
        raise EdgeError(f"the passphrase must be at least {MIN_PASSPHRASE} characters (it protects the key that "
                        "authorises watch lists)")
    return text.encode()


def load_issuer_private(path: StrPath) -> Ed25519PrivateKey:
    """The issuer's Ed25519 private key (PKCS#8 PEM, passphrase from $ENROL_PASSPHRASE or a prompt)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise EdgeError(f"cannot read issuer key {path}: {exc.strerror}") from None
    if b"PRIVATE KEY" not in pem:
        raise EdgeError(f"{path} is not an issuer private key (PEM)")
    pw = ask_passphrase() if b"ENCRYPTED" in pem else None
    try:
        key = load_pem_private_key(pem, password=pw)
    except (ValueError, TypeError):
        raise EdgeError(f"cannot open issuer key {path}: wrong passphrase or damaged file") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EdgeError(f"{path} is not an Ed25519 key")
    return key


def load_issuer_public(path: StrPath) -> bytes:
    """Raw issuer public key from ``issuer.pub`` (or from the private ``issuer.key``)."""
    text = read_text(path, "issuer key file")
    if "PRIVATE KEY" in text:
        return identity.raw_public(load_issuer_private(path))
    return identity.parse_issuer_key(text, str(path))
