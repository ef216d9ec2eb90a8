"""The gateway's Ed25519 signing key: made at first start, kept in the state folder.

The private key is a PKCS#8 PEM file readable by the gateway's user only (0600),
created with ``O_EXCL`` so two starts can never make two keys.  Back it up with
the state folder: a new key starts records that verify only against the new
public key.  The public key is shown as base64 of its 32 raw bytes.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from gateway.ledger.errors import LedgerKeyError


def load_or_create(path: Path) -> Ed25519PrivateKey:
    """The key in ``path``, made (0600) if the file does not exist yet.  Blocking."""
    try:
        return _load(path)
    except FileNotFoundError:
        pass
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _load(path)  # another start made it first
    except OSError as err:
        raise LedgerKeyError(
            f"cannot create the ledger key {path}: {err}; check that the state folder is writable"
        ) from err
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return key


def _load(path: Path) -> Ed25519PrivateKey:
    data = path.read_bytes()
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise LedgerKeyError(
            f"{path} is not a PEM private key ({err}); restore it from a backup, or move it "
            "away to start a new key (old records then verify only with the old public key)"
        ) from err
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerKeyError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def public_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode("ascii")


def parse_public(text: str) -> Ed25519PublicKey:
    """A public key given as base64 or hex of its 32 raw bytes, or as PEM."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PublicKey):
            raise LedgerKeyError("the PEM public key is not an Ed25519 key")
        return key
    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as err:
            raise LedgerKeyError(f"{text!r} is not a base64 or hex Ed25519 public key") from err
    if len(raw) != 32:
        raise LedgerKeyError(f"an Ed25519 public key has 32 bytes, this one {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)
