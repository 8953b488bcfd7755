"""What a device trusts: Ed25519 public keys, manifest signature checks, key endorsements.

The private-key side (generating keys, signing bundles, endorsing a new key)
is the publisher's: ``vitrina.export.publish.signing``.

* A key id is the first 16 hex digits of sha256(public key bytes).
* ``signature.json`` is ``{"algorithm": "ed25519", "key_id": ..., "signature": <hex>}``
  over the exact bytes of ``manifest.json``; the manifest lists every file's
  sha256 and size, so the signature covers the whole bundle.
* An endorsement is a new public key signed by an old one; a device that
  trusts the old key accepts the new key once it sees the endorsement.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNATURE_FILE = "signature.json"


ALGORITHM = "ed25519"


# Domain separation: what an endorsement signature covers is this prefix, then the new public key.
ENDORSE_CONTEXT = b"vitrina-key-endorsement-v1:"


class SignatureError(Exception):
    """A signature is missing, malformed, made by an untrusted key, or does not verify."""


@dataclass(frozen=True)
class PublicKey:
    """A trusted Ed25519 public key. raw: 32 bytes."""

    raw: bytes

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    @classmethod
    def from_hex(cls, text: str) -> PublicKey:
        try:
            raw = bytes.fromhex(text.strip())
        except ValueError:
            raise SignatureError(f"public key must be 64 hex digits, got {text.strip()[:80]!r}") from None
        if len(raw) != 32:
            raise SignatureError(f"public key must be 32 bytes (64 hex digits), got {len(raw)} bytes")
        return cls(raw)

    @classmethod
    def load(cls, path: str | Path) -> PublicKey:
        try:
            return cls.from_hex(Path(path).read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError) as exc:
            raise SignatureError(f"cannot read public key {path}: {exc}") from None

    def verify(self, signature: bytes, message: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.raw).verify(signature, message)
            return True
        except InvalidSignature:
            return False


def verify_manifest(manifest_bytes: bytes, signature_doc: Mapping[str, Any], trusted: Iterable[PublicKey]) -> PublicKey:
    """Check ``signature_doc`` over ``manifest_bytes`` against the trusted keys; returns the signer."""
    if not isinstance(signature_doc, Mapping) or signature_doc.get("algorithm") != ALGORITHM:
        raise SignatureError(f"signature must be an {ALGORITHM} signature document")
    by_id = {k.key_id: k for k in trusted}
    key = by_id.get(str(signature_doc.get("key_id")))
    if key is None:
        raise SignatureError(
            f"manifest is signed by key {signature_doc.get('key_id')!r}, which this device does not trust (trusted: {sorted(by_id)})"
        )
    try:
        sig = bytes.fromhex(str(signature_doc.get("signature")))
    except ValueError:
        raise SignatureError("signature is not hex") from None
    if not key.verify(sig, manifest_bytes):
        raise SignatureError(
            f"manifest signature does not verify with key {key.key_id}: the manifest was altered or signed by another key"
        )
    return key


def accept_endorsements(trusted: Iterable[PublicKey], endorsements: Iterable[Mapping[str, Any]]) -> list[PublicKey]:
    """Trusted keys plus every key endorsed (directly or in a chain) by one of them."""
    keys = {k.key_id: k for k in trusted}
    pending = [e for e in endorsements if isinstance(e, Mapping)]
    changed = True
    while changed:
        changed = False
        for e in list(pending):
            signer = keys.get(str(e.get("endorsed_by")))
            if signer is None:
                continue
            pending.remove(e)
            try:
                new = PublicKey.from_hex(str(e.get("public_key")))
                sig = bytes.fromhex(str(e.get("signature")))
            except (SignatureError, ValueError):
                continue
            if signer.verify(sig, ENDORSE_CONTEXT + new.raw) and new.key_id not in keys:
                keys[new.key_id] = new
                changed = True
    return list(keys.values())


def parse_iso(text: str) -> _dt.datetime:
    """An ISO 8601 timestamp (``Z`` or an offset; none means UTC) as an aware datetime."""
    try:
        t = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(f"bad timestamp {text!r}: expected ISO 8601 such as 2026-12-01T00:00:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.UTC)
