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
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vitrina.runtime.bundle import MANIFEST, Bundle
from vitrina.runtime.files import write_atomic
from vitrina.runtime.sync.trust import ALGORITHM, ENDORSE_CONTEXT, SIGNATURE_FILE, PublicKey, SignatureError
from vitrina.runtime.timeutil import iso, utc_now


def generate_keys(out_dir: str | Path, name: str = "vitrina") -> tuple[Path, Path]:
    """Write ``<name>.key`` (private, 0600) and ``<name>.pub`` in ``out_dir``; refuses to overwrite."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out / f"{name}.key", out / f"{name}.pub"
    for p in (key_path, pub_path):
        if p.exists():
            raise ValueError(f"{p} exists: refusing to overwrite a key (choose another --name or folder)")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub_path.write_text(raw.hex() + "\n", encoding="ascii")
    return key_path, pub_path


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Read an unencrypted PKCS#8 PEM Ed25519 private key (a ``.key`` file)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"cannot read private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path} is not an Ed25519 private key")
    return key


def public_of(private: Ed25519PrivateKey) -> PublicKey:
    """The public half of a private key."""
    return PublicKey(private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def sign_bundle(
    bundle_dir: str | Path, key_path: str | Path, version: int, expires_days: float = 30.0
) -> dict[str, Any]:
    """Set the manifest's ``release`` (version, signed, expires) and sign it.

    Rewrites ``manifest.json`` atomically, then writes ``signature.json``.
    Returns the release entry.
    """
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


def endorse_key(old_key_path: str | Path, new_public: PublicKey) -> dict[str, str]:
    """A rotation endorsement: the new public key signed by the old private key."""
    old = load_private_key(old_key_path)
    sig = old.sign(ENDORSE_CONTEXT + new_public.raw)
    return {
        "public_key": new_public.raw.hex(),
        "key_id": new_public.key_id,
        "endorsed_by": public_of(old).key_id,
        "signature": sig.hex(),
    }
