"""The publisher's TUF signing keys: one Ed25519 key per file, named by role and key id.

* ``<role>-<keyid 12>.key``: the private key, PKCS#8 PEM, mode 0600 (securesystemslib's
  ``CryptoSigner`` format). Root keys belong offline (a USB stick in a safe,
  passed as ``--root-keys``); targets, snapshot and timestamp keys live with
  whoever publishes (``--keys``); the timestamp key alone is enough for the
  daily ``vitrina publish --refresh-timestamp`` cron job.
* A key id is TUF's: sha256 over the canonical public key, 64 hex digits.
  Which role a key serves is decided by the root metadata, not the file name
  (the prefix is for people).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner

ROLES = ("root", "targets", "snapshot", "timestamp")


@dataclass(frozen=True)
class KeyFile:
    """A private key on disk. role: from the file name; keyid: TUF key id (64 hex digits)."""

    role: str
    keyid: str
    path: Path


def check_role(role: str) -> str:
    """``role`` if it is one of the four top-level roles, else ``ValueError`` naming them."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def generate_key(keys_dir: str | Path, role: str) -> tuple[CryptoSigner, KeyFile]:
    """A new Ed25519 key for ``role``, written to ``keys_dir/<role>-<keyid>.key`` (0600, never overwritten)."""
    check_role(role)
    out = Path(keys_dir)
    out.mkdir(parents=True, exist_ok=True)
    signer = CryptoSigner.generate_ed25519()
    keyid = signer.public_key.keyid
    path = out / f"{role}-{keyid[:12]}.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(signer.private_bytes)
    return signer, KeyFile(role, keyid, path)


def load_key(path: str | Path) -> CryptoSigner:
    """A signer for an unencrypted PKCS#8 PEM private key file."""
    try:
        private = load_pem_private_key(Path(path).read_bytes(), password=None)
        return CryptoSigner(private)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot read private key {path}: {exc}") from None


def load_keys(dirs: Iterable[str | Path]) -> dict[str, tuple[CryptoSigner, KeyFile]]:
    """Every ``*.key`` in ``dirs`` (missing folders are skipped), by key id."""
    out: dict[str, tuple[CryptoSigner, KeyFile]] = {}
    for d in dirs:
        folder = Path(d)
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.key")):
            signer = load_key(path)
            role = path.name.split("-", 1)[0]
            out[signer.public_key.keyid] = (signer, KeyFile(role, signer.public_key.keyid, path))
    return out
