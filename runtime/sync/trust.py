"""What a device trusts: one TUF ``root.json``, and what a refused piece of metadata means in words.

Trust starts from one root metadata file provisioned out of band (the factory,
``vitrina trust provision``, or the kiosk's admin screen), kept at
``<device root>/trusted_root.json``. Every later root version is fetched and
checked by ``tuf.ngclient`` against the one before (both its own and the
previous threshold of root keys must sign it) and cached in ``<device root>/tuf/``.

Migration from the pre-TUF scheme: a device that only trusts an Ed25519 ``.pub``
key accepts, once, a ``migration.json`` from the repository carrying the TUF
root signed by that key; from then on only TUF metadata counts and the old key
is never consulted again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from tuf.api import exceptions as tuf_errors
from tuf.api.metadata import Metadata, Root

from vitrina.runtime.files import write_atomic

from .errors import NotProvisionedError, SourceError, TrustError, VerificationError

TRUSTED_ROOT = "trusted_root.json"
METADATA_CACHE = "tuf"
MAX_ROOT_BYTES = 64 << 10
MIGRATION_FORMAT = "vitrina-tuf-migration"
# Domain separation: what the old key signs in a migration document is this prefix, then root.json's bytes.
MIGRATION_CONTEXT = b"vitrina-tuf-migration-v1:"


@dataclass(frozen=True)
class RootInfo:
    """A root metadata file, checked. version; expires (ISO 8601); roles: role -> (threshold, key ids)."""

    version: int
    expires: str
    roles: dict[str, tuple[int, tuple[str, ...]]]
    consistent_snapshot: bool


def check_root(data: bytes, where: str = "root.json") -> RootInfo:
    """Parse TUF root metadata and check it is signed by its own threshold of root keys.

    Raises :class:`VerificationError` naming what is wrong.
    """
    if len(data) > MAX_ROOT_BYTES:
        raise VerificationError(f"{where} is {len(data)} bytes, more than the {MAX_ROOT_BYTES} a root may have")
    try:
        md = Metadata[Root].from_bytes(data)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same answer for staff
        raise VerificationError(f"{where} is not TUF root metadata: {exc}") from None
    if not isinstance(md.signed, Root):
        raise VerificationError(f"{where} is TUF {md.signed.type} metadata, not root")
    try:
        md.signed.verify_delegate(Root.type, md.signed_bytes, md.signatures)
    except tuf_errors.UnsignedMetadataError as exc:
        raise VerificationError(f"{where} is not signed by enough of its own root keys: {exc}") from None
    root = md.signed
    roles = {name: (role.threshold, tuple(role.keyids)) for name, role in root.roles.items()}
    return RootInfo(root.version, root.expires.strftime("%Y-%m-%dT%H:%M:%SZ"), roles, bool(root.consistent_snapshot))


def anchor_path(device_root: str | Path) -> Path:
    """Where a device store keeps its trusted root.json."""
    return Path(device_root) / TRUSTED_ROOT


def load_anchor(device_root: str | Path) -> bytes | None:
    """The device's provisioned root.json bytes, or None when it has none yet."""
    try:
        return anchor_path(device_root).read_bytes()
    except FileNotFoundError:
        return None


def provision_root(device_root: str | Path, data: bytes, *, replace: bool = False) -> RootInfo:
    """Make ``data`` (a TUF root.json) the device's trust anchor.

    Refuses to replace a different anchor unless ``replace`` (a recovery, by
    staff): the cached metadata is then dropped so the chain starts again from
    the new root.
    """
    info = check_root(data)
    root = Path(device_root)
    current = load_anchor(root)
    if current is not None and current != data:
        if not replace:
            old = check_root(current, str(anchor_path(root)))
            raise VerificationError(
                f"this device already trusts root v{old.version} ({anchor_path(root)}); "
                "to replace it (recovery from a lost root key), run `vitrina trust provision ROOT.json --replace`"
            )
        cache = root / METADATA_CACHE
        if cache.is_dir():
            import shutil

            shutil.rmtree(cache)
    root.mkdir(parents=True, exist_ok=True)
    write_atomic(anchor_path(root), data)
    return info


# --- migration from the pre-TUF Ed25519 key ------------------------------------------------


def legacy_key_id(raw: bytes) -> str:
    """The pre-TUF key id: the first 16 hex digits of sha256(raw 32-byte public key)."""
    return hashlib.sha256(raw).hexdigest()[:16]


def load_legacy_key(text: str) -> bytes:
    """A pre-TUF public key (``.pub`` contents: 64 hex digits) as 32 raw bytes."""
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ValueError(f"a legacy public key is 64 hex digits (a .pub file), got {text.strip()[:80]!r}")
    return raw


def verify_migration(doc_bytes: bytes, legacy_keys: Iterable[bytes]) -> bytes:
    """The TUF root.json carried by a migration document, after checking the old key's signature.

    Raises :class:`VerificationError` when it is malformed or not signed by one of ``legacy_keys``.
    """
    try:
        doc: Any = json.loads(doc_bytes.decode("utf-8"))
        if not isinstance(doc, dict) or doc.get("format") != MIGRATION_FORMAT:
            raise ValueError(f"not a {MIGRATION_FORMAT} document")
        root_bytes = base64.b64decode(str(doc["root"]), validate=True)
        signature = bytes.fromhex(str(doc["signature"]))
        key_id = str(doc["key_id"])
    except (ValueError, KeyError, UnicodeDecodeError, RecursionError) as exc:
        raise VerificationError(f"migration.json is malformed: {exc}") from None
    keys = {legacy_key_id(raw): raw for raw in legacy_keys}
    raw = keys.get(key_id)
    if raw is None:
        raise VerificationError(
            f"migration.json is signed by key {key_id}, which this device does not trust (trusted: {sorted(keys)})"
        )
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(signature, MIGRATION_CONTEXT + root_bytes)
    except InvalidSignature:
        raise VerificationError(f"migration.json's signature does not verify with key {key_id}") from None
    check_root(root_bytes, "the root carried by migration.json")
    return root_bytes


# --- TUF failures in words ---------------------------------------------------------------

_ADVICE = {
    "expiry": (
        "the server is serving stale metadata: a freeze attack, or headquarters' timestamp refresh "
        "(`vitrina publish --refresh-timestamp`, a daily cron) stopped; ask headquarters to refresh it, then sync again"
    ),
    "version rollback": (
        "the server offers older metadata than this device has already seen (a rollback or mix-and-match attack, "
        "or an old backup restored on the server); do not use this server; tell headquarters"
    ),
    "signatures": (
        "the metadata is not signed by enough keys this device trusts (a forged, revoked or stolen key, "
        "or a root this device was never given); tell headquarters; after a lost root key, re-provision with "
        "`vitrina trust provision ROOT.json --replace`"
    ),
    "hash or length": (
        "a file differs from what the signed metadata says (tampered with or damaged on the server); "
        "tell headquarters to publish again"
    ),
    "size limit": "the server sent more bytes than the metadata allows (an endless-data attack or a broken server)",
    "metadata": "the metadata is malformed or inconsistent; tell headquarters",
}


def _role_of(rel: str | None) -> str:
    if not rel:
        return "metadata"
    name = rel.rsplit("/", 1)[-1]
    if rel.startswith("metadata/"):
        m = re.fullmatch(r"(?:\d+\.)?(root|timestamp|snapshot|targets)\.json", name)
        return m.group(1) if m else name
    target = rel.split("/", 1)[-1]
    folder, _, name = target.rpartition("/")
    name = re.sub(r"^[0-9a-f]{64}\.", "", name)  # consistent snapshots store a target under its hash
    return f"target {folder}/{name}" if folder else f"target {name}"


def explain(exc: BaseException, last_fetched: str | None) -> TrustError | SourceError:
    """A TUF client exception as a :class:`TrustError` (role, check, advice) or :class:`SourceError`."""
    role = _role_of(last_fetched)
    text = str(exc) or type(exc).__name__
    if role == "metadata":  # nothing fetched yet (a cached file failed): tuf's message names the role
        found = re.search(r"\b(root|timestamp|snapshot|targets)\b", text, re.IGNORECASE)
        role = found.group(1).lower() if found else role
    if isinstance(exc, tuf_errors.ExpiredMetadataError):
        check = "expiry"
    elif isinstance(exc, tuf_errors.BadVersionNumberError):
        check = "version rollback"
    elif isinstance(exc, tuf_errors.UnsignedMetadataError):
        check = "signatures"
    elif isinstance(exc, tuf_errors.LengthOrHashMismatchError):
        check = "hash or length"
    elif isinstance(exc, tuf_errors.DownloadLengthMismatchError):
        check = "size limit"
    elif isinstance(exc, tuf_errors.DownloadHTTPError):
        return SourceError(f"{last_fetched}: HTTP {exc.status_code} ({text})")
    elif isinstance(exc, tuf_errors.DownloadError):
        cause = exc.__cause__ or exc
        return SourceError(f"{last_fetched}: {cause}")
    elif isinstance(exc, tuf_errors.RepositoryError):
        check = "metadata"
    else:
        raise exc
    if role.startswith("target ") and check == "version rollback":
        check = "metadata"
    advice = _ADVICE[check]
    return TrustError(
        f"{role} refused ({check} check failed: {text}). What to do: {advice}. The active bundle is unchanged.",
        role=role,
        check=check,
        advice=advice,
    )


def missing_anchor(device_root: str | Path) -> NotProvisionedError:
    """The error for a device that trusts no root yet, saying how to provision one."""
    return NotProvisionedError(
        f"this device has no trusted root ({anchor_path(device_root)}): provision it once with "
        "`vitrina trust provision root.json --root DEVICE_ROOT` (the root.json headquarters hands out), "
        "or pass --trust-root root.json to the first sync; a device of the pre-TUF kind passes --legacy-key KEY.pub "
        "to accept the repository's migration.json"
    )
