"""Ed25519 signatures over bundle manifests, and key rotation by endorsement.

* A key pair is two small files: ``<name>.key`` (PKCS#8 PEM private key, mode
  0600, stays with whoever publishes bundles) and ``<name>.pub`` (the raw
  32-byte public key, hex, one line, copied into device configs).
* A key id is the first 16 hex digits of sha256(public key bytes).
* ``vitrina sign`` adds a ``release`` entry to ``manifest.json`` (catalog
  version, monotonic per catalog, and an expiry) and writes ``signature.json``:
  ``{"algorithm": "ed25519", "key_id": ..., "signature": <hex>}`` over the
  exact bytes of ``manifest.json``. The manifest already lists every file's
  sha256 and size, so the signature covers the whole bundle.
* Rotation: an *endorsement* is a new public key signed by an old one
  (``{"public_key", "key_id", "endorsed_by", "signature"}``); a device that
  trusts the old key accepts the new key once it sees the endorsement.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .files import write_atomic

SIGNATURE_FILE = "signature.json"
ALGORITHM = "ed25519"
_ENDORSE_CONTEXT = b"vitrina-key-endorsement-v1:"


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
    def from_hex(cls, text: str) -> "PublicKey":
        try:
            raw = bytes.fromhex(text.strip())
        except ValueError:
            raise SignatureError(f"public key must be 64 hex digits, got {text.strip()[:80]!r}") from None
        if len(raw) != 32:
            raise SignatureError(f"public key must be 32 bytes (64 hex digits), got {len(raw)} bytes")
        return cls(raw)

    @classmethod
    def load(cls, path: str | Path) -> "PublicKey":
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


def generate_keys(out_dir: str | Path, name: str = "vitrina") -> tuple[Path, Path]:
    """Write ``<name>.key`` (private, 0600) and ``<name>.pub`` in ``out_dir``; refuses to overwrite."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (key_path, pub_path):
        if p.exists():
            raise ValueError(f"{p} exists: refusing to overwrite a key (choose another --name or folder)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub_path.write_text(raw.hex() + "\n", encoding="ascii")
    return key_path, pub_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"cannot read private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an Ed25519 private key")
    return key


def public_of(private: Ed25519PrivateKey) -> PublicKey:
    return PublicKey(private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)


def iso(t: _dt.datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> _dt.datetime:
    try:
        t = _dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise SignatureError(f"bad timestamp {text!r}: expected ISO 8601 such as 2026-12-01T00:00:00Z") from None
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def sign_bundle(bundle_dir: str | Path, key_path: str | Path, version: int, expires_days: float = 30.0) -> dict[str, Any]:
    """Set the manifest's ``release`` (version, signed, expires) and sign it.

    Rewrites ``manifest.json`` atomically, then writes ``signature.json``.
    Returns the release entry.
    """
    from .bundle import MANIFEST, Bundle

    if not isinstance(version, int) or version < 1:
        raise ValueError(f"bundle version must be a whole number >= 1, got {version!r}")
    if expires_days <= 0:
        raise ValueError(f"expiry must be in the future: --expires-days must be > 0, got {expires_days}")
    bundle = Bundle.open(bundle_dir)  # refuse to sign a broken bundle
    private = load_private_key(key_path)
    now = utc_now()
    release = {"version": version, "signed": iso(now), "expires": iso(now + _dt.timedelta(days=expires_days))}
    manifest = dict(bundle.manifest) | {"release": release}
    data = json.dumps(manifest, indent=2, ensure_ascii=False).encode("utf-8")
    write_atomic(bundle.path / MANIFEST, data)
    signature = {"algorithm": ALGORITHM, "key_id": public_of(private).key_id, "signature": private.sign(data).hex()}
    write_atomic(bundle.path / SIGNATURE_FILE, json.dumps(signature, indent=2).encode())
    return release


def verify_manifest(manifest_bytes: bytes, signature_doc: Mapping[str, Any], trusted: Iterable[PublicKey]) -> PublicKey:
    """Check ``signature_doc`` over ``manifest_bytes`` against the trusted keys; returns the signer."""
    if not isinstance(signature_doc, Mapping) or signature_doc.get("algorithm") != ALGORITHM:
        raise SignatureError(f"signature must be an {ALGORITHM} signature document")
    by_id = {k.key_id: k for k in trusted}
    key = by_id.get(str(signature_doc.get("key_id")))
    if key is None:
        raise SignatureError(f"manifest is signed by key {signature_doc.get('key_id')!r}, which this device does not trust (trusted: {sorted(by_id)})")
    try:
        sig = bytes.fromhex(str(signature_doc.get("signature")))
    except ValueError:
        raise SignatureError("signature is not hex") from None
    if not key.verify(sig, manifest_bytes):
        raise SignatureError(f"manifest signature does not verify with key {key.key_id}: the manifest was altered or signed by another key")
    return key


def endorse_key(old_key_path: str | Path, new_public: PublicKey) -> dict[str, str]:
    """A rotation endorsement: the new public key signed by the old private key."""
    old = load_private_key(old_key_path)
    sig = old.sign(_ENDORSE_CONTEXT + new_public.raw)
    return {"public_key": new_public.raw.hex(), "key_id": new_public.key_id, "endorsed_by": public_of(old).key_id, "signature": sig.hex()}


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
            if signer.verify(sig, _ENDORSE_CONTEXT + new.raw) and new.key_id not in keys:
                keys[new.key_id] = new
                changed = True
    return list(keys.values())

