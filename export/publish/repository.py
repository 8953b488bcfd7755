"""The sync repository as a TUF repository (python-tuf ``tuf.api.metadata``): plain files any
static web server, or a USB stick, can serve. Layout: ``vitrina.runtime.sync.repo_format``.

Four top-level roles, each with its own keys (``keys.py``):

* **root** (offline, threshold e.g. 2 of 3, expires in a year): names every
  role's keys and thresholds; the only role that rotates or revokes a key,
  always through a new root version signed by the old and the new root keys;
* **targets** (90 days): signs each catalog's ``manifest.json`` (hash, length,
  release version, its bsdiff patches) and the patches themselves. The
  manifest lists every bundle file's sha256, so the big content-addressed
  blobs are authenticated through it;
* **snapshot** (90 days): the version of targets, so a device never mixes
  metadata of two publishes;
* **timestamp** (1 day): the version of snapshot. Re-signed daily by
  ``vitrina publish --refresh-timestamp`` (cron), so a server that replays old
  metadata (a freeze attack) is noticed within a day.

Consistent snapshots: every metadata and target file carries its version or
hash in its name and is never overwritten, and ``timestamp.json`` is written
last, so a device reading during a publish sees the old set or the new one.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Metadata,
    MetaFile,
    Role,
    Root,
    Signed,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from vitrina.runtime.bundle import Bundle, release_version
from vitrina.runtime.files import copy_atomic, write_atomic
from vitrina.runtime.sync.gate import GateError, check_bundle
from vitrina.runtime.sync.repo_format import (
    BLOBS,
    CATALOGS_TARGET,
    METADATA,
    TARGETS,
    manifest_target,
    patch_target,
)
from vitrina.runtime.timeutil import iso, utc_now

from .keys import ROLES, KeyFile, check_role, generate_key, load_keys

# A patch is published only when it is smaller than this share of the file.
MAX_PATCH_RATIO = 0.5
EXPIRY_DAYS = {"root": 365.0, "targets": 90.0, "snapshot": 90.0, "timestamp": 1.0}
_SERIALIZER = JSONSerializer(compact=True)


class PublishError(ValueError):
    """The repository or the keys cannot do what was asked; the message says what to do."""


@dataclass(frozen=True)
class PublishResult:
    """Attributes: catalog, version; blobs_added / blob_bytes_added: new full files;
    patches: files with a delta from the previous version; patch_bytes: their total size;
    targets_version / snapshot_version / timestamp_version: the new metadata versions;
    timestamp_expires: ISO 8601 UTC."""

    catalog: str
    version: int
    blobs_added: int
    blob_bytes_added: int
    patches: int
    patch_bytes: int
    targets_version: int
    snapshot_version: int
    timestamp_version: int
    timestamp_expires: str


@dataclass(frozen=True)
class KeyChange:
    """A rotation or revocation: the new root version, key ids removed and added per role,
    and the key files written for the new keys."""

    root_version: int
    removed: dict[str, list[str]]
    added: dict[str, list[str]]
    new_files: list[Path]


def _expiry(role: str, days: float | None = None) -> _dt.datetime:
    return (utc_now() + _dt.timedelta(days=EXPIRY_DAYS[role] if days is None else days)).replace(microsecond=0)


class Repository:
    """A TUF repository folder and the private keys that can sign for it.

    Args:
        path: the repository folder (what ``vitrina serve`` serves).
        key_dirs: folders with ``*.key`` files (online keys, and the root keys'
            folder when a root change is asked for).
    """

    def __init__(self, path: str | Path, key_dirs: Sequence[str | Path] = ()):
        self.path = Path(path)
        self.key_dirs = [Path(d) for d in key_dirs]
        self._keys = load_keys(self.key_dirs)

    # --- reading the current state ----------------------------------------------------------
    @property
    def meta(self) -> Path:
        return self.path / METADATA

    def exists(self) -> bool:
        """True when the folder holds TUF metadata (a root and a timestamp)."""
        return (self.meta / "1.root.json").is_file() and (self.meta / "timestamp.json").is_file()

    def _read(self, name: str) -> Metadata:
        try:
            return Metadata.from_bytes((self.meta / name).read_bytes())
        except FileNotFoundError:
            raise PublishError(
                f"{self.meta / name} is missing: is {self.path} a vitrina repository? (the first `vitrina publish` creates one)"
            ) from None

    def root(self) -> Metadata[Root]:
        """The newest root version."""
        versions = [int(p.name.split(".", 1)[0]) for p in self.meta.glob("*.root.json")]
        if not versions:
            raise PublishError(f"{self.path} has no root metadata: the first `vitrina publish` creates it")
        return self._read(f"{max(versions)}.root.json")

    def timestamp(self) -> Metadata[Timestamp]:
        return self._read("timestamp.json")

    def snapshot(self) -> Metadata[Snapshot]:
        return self._read(f"{self.timestamp().signed.snapshot_meta.version}.snapshot.json")

    def targets(self) -> Metadata[Targets]:
        return self._read(f"{self.snapshot().signed.meta['targets.json'].version}.targets.json")

    # --- signing -------------------------------------------------------------------------------
    def _signers(self, role: Role, what: str) -> list[CryptoSigner]:
        have = [self._keys[k][0] for k in role.keyids if k in self._keys]
        if len(have) < role.threshold:
            missing = [k[:12] for k in role.keyids if k not in self._keys]
            raise PublishError(
                f"signing {what} needs {role.threshold} of its {len(role.keyids)} keys; found {len(have)} "
                f"in {', '.join(map(str, self.key_dirs)) or 'no key folder'} (missing: {', '.join(missing)}); "
                "pass the folder holding them (--keys, --root-keys for the offline root keys)"
            )
        return have

    def _write(self, md: Metadata, name: str, root: Root, *, also: Role | None = None) -> bytes:
        """Sign ``md`` with its role's keys in ``root`` (and ``also``'s, for a root change), write it."""
        md.signatures.clear()
        role_name = md.signed.type
        signers = self._signers(root.roles[role_name], f"{role_name} v{md.signed.version}")
        if also is not None:
            signers += [
                s
                for s in self._signers(also, f"root v{md.signed.version} (by the previous root keys)")
                if s not in signers
            ]
        for signer in signers:
            md.sign(signer, append=True)
        data = md.to_bytes(_SERIALIZER)
        write_atomic(self.meta / name, data)
        return data

    @staticmethod
    def _bump(signed: Signed, role: str, days: float | None = None) -> None:
        signed.version += 1
        signed.expires = _expiry(role, days)

    # --- creating --------------------------------------------------------------------------
    @classmethod
    def create(
        cls,
        path: str | Path,
        key_dirs: Sequence[str | Path],
        *,
        root_threshold: int | None = None,
        generate_missing: bool = False,
    ) -> tuple[Repository, list[KeyFile]]:
        """A new repository: root v1 naming the keys found in ``key_dirs`` (by file-name role),
        empty targets, snapshot and timestamp. ``generate_missing`` writes one key for a role with
        none (three for root, threshold 2) into the first folder. Returns it and the new key files."""
        repo = cls(path, key_dirs)
        if (repo.meta / "1.root.json").exists():
            raise PublishError(f"{repo.path} already holds a TUF repository")
        created: list[KeyFile] = []
        by_role: dict[str, list[str]] = {r: [] for r in ROLES}
        for keyid, (_, kf) in repo._keys.items():
            if kf.role in by_role:
                by_role[kf.role].append(keyid)
        for role in ROLES:
            if not by_role[role]:
                if not generate_missing or not repo.key_dirs:
                    raise PublishError(
                        f"no {role} key in {', '.join(map(str, repo.key_dirs)) or 'no key folder'}: "
                        f"run `vitrina keys generate --role {role} --keys DIR` first"
                    )
                for _ in range(3 if role == "root" else 1):
                    _, kf = generate_key(repo.key_dirs[0], role)
                    created.append(kf)
                    by_role[role].append(kf.keyid)
        repo._keys = load_keys(repo.key_dirs)
        n_root = len(by_role["root"])
        threshold = root_threshold if root_threshold is not None else min(2, n_root)
        if not 1 <= threshold <= n_root:
            raise PublishError(f"root threshold must be between 1 and the {n_root} root keys, got {threshold}")
        root = Root(expires=_expiry("root"), consistent_snapshot=True)
        for role, ids in by_role.items():
            for keyid in ids:
                root.add_key(repo._keys[keyid][0].public_key, role)
        root.roles["root"].threshold = threshold
        repo.meta.mkdir(parents=True, exist_ok=True)
        repo._write(Metadata(root), "1.root.json", root)
        targets = Targets(expires=_expiry("targets"))
        repo._commit(root, Metadata(targets), Metadata(Snapshot(expires=_expiry("snapshot"))), None)
        return repo, created

    # --- publishing ------------------------------------------------------------------------
    def _commit(
        self,
        root: Root,
        targets: Metadata[Targets] | None,
        snapshot: Metadata[Snapshot] | None,
        timestamp: Metadata[Timestamp] | None,
    ) -> Metadata[Timestamp]:
        """Write new targets (if given), a new snapshot (if given or targets changed) and a new timestamp, in that order."""
        if targets is not None:
            data = self._write(targets, f"{targets.signed.version}.targets.json", root)
            if snapshot is None:
                snapshot = self.snapshot()
                self._bump(snapshot.signed, "snapshot")
            snapshot.signed.meta["targets.json"] = MetaFile(
                version=targets.signed.version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
            )
        if snapshot is not None:
            data = self._write(snapshot, f"{snapshot.signed.version}.snapshot.json", root)
            if timestamp is None:
                timestamp = (
                    self.timestamp()
                    if (self.meta / "timestamp.json").exists()
                    else Metadata(Timestamp(expires=_expiry("timestamp")))
                )
                if (self.meta / "timestamp.json").exists():
                    self._bump(timestamp.signed, "timestamp")
            timestamp.signed.snapshot_meta = MetaFile(
                version=snapshot.signed.version, length=len(data), hashes={"sha256": hashlib.sha256(data).hexdigest()}
            )
        if timestamp is None:
            timestamp = self.timestamp()
            self._bump(timestamp.signed, "timestamp")
        self._write(timestamp, "timestamp.json", root)
        return timestamp

    def _add_target(self, targets: Targets, path: str, data: bytes, custom: dict[str, Any] | None = None) -> TargetFile:
        """Store ``data`` as target ``path`` (under its hash: consistent snapshots) and list it in ``targets``."""
        info = TargetFile.from_data(path, data, ["sha256"])
        if custom is not None:
            info.unrecognized_fields["custom"] = custom
        folder, _, name = path.rpartition("/")
        dest = self.path / TARGETS / folder / f"{info.hashes['sha256']}.{name}"
        if not dest.is_file():
            write_atomic(dest, data)
        targets.targets[path] = info
        return info

    def add_release(
        self,
        manifest: dict[str, Any],
        files_dir: Path,
        *,
        progress: Callable[[str], None] = lambda _: None,
        expires_days: float | None = None,
    ) -> PublishResult:
        """Publish ``manifest`` (its files read from ``files_dir``) as its catalog's latest release.

        No gate here (``publish_bundle`` runs it): tests use this to publish what a buggy build would.
        """
        name = manifest["catalog"]["name"]
        version = release_version(manifest)
        root = self.root().signed
        targets = self.targets()
        previous = targets.signed.targets.get(manifest_target(name))
        if previous is not None and previous.custom["version"] >= version:
            raise PublishError(
                f"{name} v{previous.custom['version']} is already published: the new version ({version}) must be higher"
            )
        added = added_bytes = 0
        for rel, entry in manifest["files"].items():
            dest = self.path / BLOBS / entry["sha256"]
            if not dest.is_file():
                n = copy_atomic(files_dir / rel, dest)
                added, added_bytes = added + 1, added_bytes + n
        old_manifest = self._target_json(previous) if previous is not None else None
        for path in [p for p in targets.signed.targets if p.startswith(f"{name}/patches/")]:
            del targets.signed.targets[path]  # patches to the previous release only
        patches: dict[str, dict[str, str]] = {}
        patch_bytes = 0
        for rel, (old_sha, new_sha, patch) in self._make_patches(old_manifest, manifest, progress).items():
            target = patch_target(name, old_sha, new_sha)
            self._add_target(targets.signed, target, patch)
            patches[rel] = {"from": old_sha, "to": new_sha, "target": target}
            patch_bytes += len(patch)
        data = json.dumps(manifest, indent=1, ensure_ascii=False).encode("utf-8")
        self._add_target(targets.signed, manifest_target(name), data, {"version": version, "patches": patches})
        catalogs = sorted({p.split("/", 1)[0] for p in targets.signed.targets if p.endswith("/manifest.json")})
        self._add_target(targets.signed, CATALOGS_TARGET, json.dumps({"catalogs": catalogs}).encode())
        self._bump(targets.signed, "targets", expires_days)
        ts = self._commit(root, targets, None, None)
        snap = self.snapshot().signed
        return PublishResult(
            name, version, added, added_bytes, len(patches), patch_bytes,
            targets.signed.version, snap.version, ts.signed.version, iso(ts.signed.expires),
        )  # fmt: skip

    def publish_bundle(
        self, bundle_dir: str | Path, *, version: int | None = None, progress: Callable[[str], None] = lambda _: None
    ) -> PublishResult:
        """Gate, then publish a built bundle as the next release of its catalog.

        ``version``: the release number (default: one above the published one). Refuses a bundle
        that fails the devices' activation gate and a version not above the published one.
        """
        try:
            check_bundle(bundle_dir)  # the same gate every device runs: a broken bundle is stopped here first
        except GateError as exc:
            raise PublishError(f"refusing to publish: {exc}") from None
        bundle = Bundle.open(bundle_dir)
        previous = self.targets().signed.targets.get(manifest_target(bundle.name))
        latest = previous.custom["version"] if previous is not None else 0
        if version is None:
            version = latest + 1
        if not isinstance(version, int) or version < 1:
            raise PublishError(f"release version must be a whole number >= 1, got {version!r}")
        manifest = dict(bundle.manifest)
        manifest["release"] = {"version": version, "published": iso(utc_now())}
        return self.add_release(manifest, bundle.path, progress=progress)

    def _target_json(self, info: TargetFile) -> dict[str, Any]:
        folder, _, name = info.path.rpartition("/")
        return json.loads((self.path / TARGETS / folder / f"{info.hashes['sha256']}.{name}").read_bytes())

    def _make_patches(
        self, old: dict | None, new: dict, progress: Callable[[str], None]
    ) -> dict[str, tuple[str, str, bytes]]:
        """bsdiff patches from the previous release's file at the same path, where they pay off."""
        if not old:
            return {}
        import bsdiff4

        out = {}
        for rel, entry in new["files"].items():
            before = old.get("files", {}).get(rel)
            blob = self.path / BLOBS / (before or {}).get("sha256", "-")
            if not before or before["sha256"] == entry["sha256"] or not blob.is_file():
                continue
            progress(f"delta {rel}")
            patch = bsdiff4.diff(blob.read_bytes(), (self.path / BLOBS / entry["sha256"]).read_bytes())
            if len(patch) <= MAX_PATCH_RATIO * entry["size"]:
                out[rel] = (before["sha256"], entry["sha256"], patch)
        return out

    def resign(self, *, days: float | None = None) -> Metadata[Timestamp]:
        """New targets, snapshot and timestamp versions with fresh expiry dates (no new release)."""
        targets = self.targets()
        self._bump(targets.signed, "targets", days)
        return self._commit(self.root().signed, targets, None, None)

    def refresh_timestamp(self, *, days: float | None = None) -> Metadata[Timestamp]:
        """A new timestamp version expiring in ``days`` (default 1): the daily cron job; needs only the timestamp key."""
        timestamp = self.timestamp()
        self._bump(timestamp.signed, "timestamp", days)
        self._write(timestamp, "timestamp.json", self.root().signed)
        return timestamp

    def expiries(self) -> dict[str, str]:
        """Each role's current expiry date, ISO 8601 UTC."""
        return {
            "root": iso(self.root().signed.expires),
            "targets": iso(self.targets().signed.expires),
            "snapshot": iso(self.snapshot().signed.expires),
            "timestamp": iso(self.timestamp().signed.expires),
        }

    # --- key changes: always a new root version -------------------------------------------------
    def _new_root(
        self,
        change: Callable[[Root], tuple[dict[str, list[str]], dict[str, list[str]], list[Path]]],
        *,
        distrust: str | None = None,
    ) -> KeyChange:
        """Apply ``change`` to a copy of the newest root, sign it as the next version (by the old
        root's threshold and the new one's; never by ``distrust``, a revoked key), then re-sign what
        the change touched."""
        old_md = self.root()
        old = old_md.signed
        new_md = Metadata[Root].from_bytes(old_md.to_bytes())
        new = new_md.signed
        removed, added, files = change(new)
        self._keys = load_keys(self.key_dirs)
        self._bump(new, "root")
        if distrust is not None:  # a revoked root key does not sign the root that drops it
            self._keys.pop(distrust, None)
        self._write(new_md, f"{new.version}.root.json", new, also=old.roles["root"])
        changed = {r for r in (*removed, *added) if r != "root"}
        targets = self.targets() if "targets" in changed else None
        if targets is not None:
            self._bump(targets.signed, "targets")
        snapshot = None
        if targets is None and "snapshot" in changed:
            snapshot = self.snapshot()
            self._bump(snapshot.signed, "snapshot")
        self._commit(new, targets, snapshot, None)
        return KeyChange(new.version, removed, added, files)

    def rotate(self, role: str) -> KeyChange:
        """Replace every key of ``role`` with new ones (as many, same threshold), through a new root version."""
        check_role(role)
        folder = self._folder_for(role)

        def change(root: Root) -> tuple[dict[str, list[str]], dict[str, list[str]], list[Path]]:
            old_ids = list(root.roles[role].keyids)
            files = []
            new_ids = []
            for _ in old_ids:
                signer, kf = generate_key(folder, role)
                root.add_key(signer.public_key, role)
                files.append(kf.path)
                new_ids.append(kf.keyid)
            for keyid in old_ids:
                root.revoke_key(keyid, role)
            return {role: old_ids}, {role: new_ids}, files

        return self._new_root(change)

    def revoke(self, keyid: str) -> KeyChange:
        """Drop a key (a full key id, or a unique prefix of at least 8 digits) from every role that
        has it, through a new root version; a role left below its threshold gets a new key."""
        root = self.root().signed
        matches = [k for k in root.keys if k.startswith(keyid.lower())] if len(keyid) >= 8 else []
        if len(matches) != 1:
            raise PublishError(
                f"key {keyid!r} matches {len(matches)} keys of root v{root.version}"
                + (" (give at least 8 hex digits)" if len(keyid) < 8 else "")
                + "; `vitrina keys list --repo REPO` shows them"
            )
        full = matches[0]

        def change(root: Root) -> tuple[dict[str, list[str]], dict[str, list[str]], list[Path]]:
            removed: dict[str, list[str]] = {}
            added: dict[str, list[str]] = {}
            files = []
            for role in ROLES:
                r = root.roles[role]
                if full not in r.keyids:
                    continue
                root.revoke_key(full, role)
                removed[role] = [full]
                while len(r.keyids) < r.threshold:
                    signer, kf = generate_key(self._folder_for(role), role)
                    root.add_key(signer.public_key, role)
                    added.setdefault(role, []).append(kf.keyid)
                    files.append(kf.path)
            return removed, added, files

        return self._new_root(change, distrust=full)

    def _folder_for(self, role: str) -> Path:
        """Where a new key of ``role`` goes: the folder already holding one of that role, else the first."""
        for _, kf in self._keys.values():
            if kf.role == role:
                return kf.path.parent
        if not self.key_dirs:
            raise PublishError("no key folder given (--keys)")
        return self.key_dirs[0]

    def key_table(self) -> list[tuple[str, int, str, bool]]:
        """(role, threshold, key id, private key found here) for every key of the newest root."""
        root = self.root().signed
        return [
            (role, root.roles[role].threshold, k, k in self._keys) for role in ROLES for k in root.roles[role].keyids
        ]


def publish(
    bundle_dir: str | Path,
    repo_dir: str | Path,
    key_dirs: Iterable[str | Path],
    *,
    version: int | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> PublishResult:
    """Publish a bundle to ``repo_dir`` (creating the TUF repository from the keys on first use)."""
    dirs = list(key_dirs)
    repo = Repository(repo_dir, dirs)
    if not repo.exists():
        repo, _ = Repository.create(repo_dir, dirs)
    return repo.publish_bundle(bundle_dir, version=version, progress=progress)
