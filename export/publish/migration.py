"""The one migration bundle for devices of the pre-TUF kind: the TUF root signed by the old Ed25519 key.

``vitrina keys migrate --old-key vitrina.key --repo REPO`` writes ``REPO/migration.json``::

    {"format": "vitrina-tuf-migration", "format_version": 1, "key_id": <old key id>,
     "root": <base64 of metadata/1.root.json>, "signature": <hex Ed25519 over
     b"vitrina-tuf-migration-v1:" + the root's bytes>}

A device that trusts only the old key (``vitrina sync --legacy-key``, the kiosk's
``trusted_keys``) accepts it once and from then on trusts only that root and its
successors; the old key signs nothing else, ever.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vitrina.runtime.files import write_atomic
from vitrina.runtime.sync.repo_format import METADATA, MIGRATION
from vitrina.runtime.sync.trust import MIGRATION_CONTEXT, MIGRATION_FORMAT, check_root, legacy_key_id


def load_legacy_private_key(path: str | Path) -> Ed25519PrivateKey:
    """The pre-TUF publisher key: an unencrypted PKCS#8 PEM Ed25519 private key (``vitrina.key``)."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ValueError(f"cannot read the old private key {path}: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def write_migration(repo_dir: str | Path, old_key_path: str | Path) -> tuple[Path, str]:
    """Sign the repository's first root with the old key into ``migration.json``; returns (path, old key id)."""
    repo = Path(repo_dir)
    root_bytes = (repo / METADATA / "1.root.json").read_bytes()
    check_root(root_bytes, str(repo / METADATA / "1.root.json"))
    private = load_legacy_private_key(old_key_path)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    doc = {
        "format": MIGRATION_FORMAT,
        "format_version": 1,
        "key_id": legacy_key_id(raw),
        "root": base64.b64encode(root_bytes).decode("ascii"),
        "root_sha256": hashlib.sha256(root_bytes).hexdigest(),
        "signature": private.sign(MIGRATION_CONTEXT + root_bytes).hex(),
    }
    path = repo / MIGRATION
    write_atomic(path, json.dumps(doc, indent=1).encode())
    return path, legacy_key_id(raw)
