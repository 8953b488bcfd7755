"""The attacks The Update Framework is there for, each against a real ``vitrina serve`` on 127.0.0.1.

Shape taken from python-tuf's own tests (tests/test_updater_top_level_update.py):
a real repository, one rule attacked at a time. The attacker here is a hostile
mirror or a man in the middle: it can serve any bytes, replay anything the
publisher ever wrote, and, where a test says so, holds stolen keys. Each attack
must be refused with a :class:`TrustError` (or the deadline's ``SourceError``)
naming the role and the check, the active bundle byte-for-byte unchanged and
still answering a search. Migration from the pre-TUF Ed25519 key is tested last.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import Metadata, MetaFile, Root
from tuf.api.serialization.json import JSONSerializer

from tests import test_sync
from tests.test_sync import assert_untouched, manifest_file, serve, snapshot, trusted
from vitrina.export.publish.keys import load_keys
from vitrina.export.publish.repository import Repository
from vitrina.export.publish.serve import RangeRequestHandler
from vitrina.runtime.bundle import Bundle, release_version
from vitrina.runtime.sync.client import (
    NotProvisionedError,
    SourceError,
    SyncOptions,
    TrustError,
    VerificationError,
    sync,
)
from vitrina.runtime.sync.store import DeviceStore
from vitrina.runtime.sync.trust import TRUSTED_ROOT, legacy_key_id

world, device = test_sync.world, test_sync.device  # the same fixtures: v1 active on the device
FAST = SyncOptions(timeout_s=2.0, retries=1, retry_wait_s=0.01, reserve_bytes=0)
COMPACT = JSONSerializer(compact=True)


@pytest.fixture()
def repo(world: dict, tmp_path: Path) -> Path:
    """A private copy of the v1+v2 repository, and a private copy of its keys (tests rotate them)."""
    shutil.copytree(world["keys"], tmp_path / "keys")
    return Path(shutil.copytree(world["root"] / "repo", tmp_path / "repo"))


@pytest.fixture()
def keys(repo: Path) -> Path:
    return repo.parent / "keys"


@pytest.fixture()
def vitrina_serve() -> Iterator:
    """``vitrina_serve(folder)``: the real ``vitrina serve`` command in a child process; its URL."""
    procs: list[subprocess.Popen] = []

    def start(folder: Path) -> str:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vitrina.runtime.cli", "serve", str(folder), "--port", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        line = proc.stdout.readline() if proc.stdout else ""
        m = re.search(r"at (http://127\.0\.0\.1:\d+)/", line)
        assert m, f"vitrina serve printed {line!r}"
        return m.group(1)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def refused(url: str, device: Path, *, role: str, check: str) -> TrustError:
    """Sync, expect a TrustError naming ``role`` and ``check``; the device exactly as it was."""
    before = snapshot(device)
    with pytest.raises(TrustError) as err:
        sync(url, device, None, FAST)
    assert err.value.role == role and err.value.check == check, str(err.value)
    assert "What to do:" in str(err.value) and "active bundle is unchanged" in str(err.value)
    assert_untouched(device, before)
    return err.value


def active_version(device: Path) -> int:
    return release_version(DeviceStore(device).current_manifest() or {})


def signers(keys: Path, role: str) -> list[CryptoSigner]:
    return [s for s, kf in load_keys([keys]).values() if kf.role == role]


def write_signed(repo: Path, md: Metadata, name: str, by: list[CryptoSigner]) -> bytes:
    md.signatures.clear()
    for s in by:
        md.sign(s, append=True)
    data = md.to_bytes(COMPACT)
    (repo / "metadata" / name).write_bytes(data)
    return data


def forge_release(repo: Path, keys: Path, *, targets_by: list[CryptoSigner], timestamp_by: list[CryptoSigner]) -> None:
    """What a thief publishes: a release v9 (v2's files) in targets signed by ``targets_by``,
    snapshot by the real snapshot key, timestamp by ``timestamp_by``."""
    r = Repository(repo, [keys])
    manifest = json.loads(manifest_file(repo, 2).read_text())
    manifest["release"]["version"] = 9
    targets = r.targets()
    name = manifest["catalog"]["name"]
    r._add_target(targets.signed, f"{name}/manifest.json", json.dumps(manifest).encode(), {"version": 9, "patches": {}})
    targets.signed.version += 1
    data = write_signed(repo, targets, f"{targets.signed.version}.targets.json", targets_by)
    snap = r.snapshot()
    snap.signed.version += 1
    snap.signed.meta["targets.json"] = MetaFile(targets.signed.version, len(data))
    data = write_signed(repo, snap, f"{snap.signed.version}.snapshot.json", signers(keys, "snapshot"))
    ts = r.timestamp()
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile(snap.signed.version, len(data))
    write_signed(repo, ts, "timestamp.json", timestamp_by)


# --- freeze, rollback, mix-and-match -----------------------------------------------------------------


def test_freeze_stale_timestamp_replayed_after_expiry_is_refused(world, repo, keys, device, vitrina_serve, tmp_path):
    """The mirror keeps serving the v1-era metadata, with its timestamp, after that timestamp expired."""
    stale = Path(shutil.copytree(world["root"] / "repo-v1", tmp_path / "stale"))
    Repository(stale, [keys]).refresh_timestamp(days=1.5 / 86400)  # the publisher's, valid for 1.5 s
    time.sleep(1.6)
    err = refused(vitrina_serve(stale), device, role="timestamp", check="expiry")
    assert "freeze attack" in str(err) and "--refresh-timestamp" in str(err)
    assert active_version(device) == 1


def test_metadata_version_rollback_is_refused(world, repo, device, vitrina_serve):
    """A device that saw v2's metadata is offered the older (validly signed, unexpired) v1 metadata."""
    assert sync(vitrina_serve(repo), device, None, FAST).version == 2
    refused(vitrina_serve(world["root"] / "repo-v1"), device, role="timestamp", check="version rollback")
    assert active_version(device) == 2


def test_mix_and_match_new_snapshot_old_targets_is_refused(world, repo, device, vitrina_serve):
    """The new timestamp and snapshot, with the previous targets (validly signed) in place of the new."""
    new = Repository(repo).snapshot().signed.meta["targets.json"].version
    (repo / f"metadata/{new}.targets.json").write_bytes((repo / f"metadata/{new - 1}.targets.json").read_bytes())
    refused(vitrina_serve(repo), device, role="targets", check="hash or length")


def test_mix_and_match_without_hashes_is_refused_by_version(world, repo, keys, device, vitrina_serve):
    """Even where snapshot lists no hash for targets, an old targets under the new name fails on its version."""
    r = Repository(repo, [keys])
    snap = r.snapshot()
    new = snap.signed.meta["targets.json"].version
    snap.signed.meta["targets.json"] = MetaFile(new)  # version only
    snap.signed.version += 1
    data = write_signed(repo, snap, f"{snap.signed.version}.snapshot.json", signers(keys, "snapshot"))
    ts = r.timestamp()
    ts.signed.version += 1
    ts.signed.snapshot_meta = MetaFile(snap.signed.version, len(data))
    write_signed(repo, ts, "timestamp.json", signers(keys, "timestamp"))
    (repo / f"metadata/{new}.targets.json").write_bytes((repo / f"metadata/{new - 1}.targets.json").read_bytes())
    refused(vitrina_serve(repo), device, role="targets", check="version rollback")


# --- endless data, wrong hashes and lengths ------------------------------------------------------------


@pytest.mark.parametrize("role", ["timestamp", "root", "snapshot"])
def test_endless_metadata_is_cut_at_its_size_cap(world, repo, device, vitrina_serve, role):
    """A 64 MB metadata file: read up to the cap (16 KB timestamp, 64 KB root, the signed length of snapshot)."""
    if role == "timestamp":
        name = "timestamp.json"
    elif role == "root":
        name = "2.root.json"  # the next root the device asks for
    else:
        name = f"{Repository(repo).timestamp().signed.snapshot_meta.version}.snapshot.json"
    with open(repo / "metadata" / name, "wb") as f:
        f.write(b'{"signed": {"x": "' + b"A" * (64 << 20) + b'"}}')
    t0 = time.monotonic()
    refused(vitrina_serve(repo), device, role=role, check="size limit")
    assert time.monotonic() - t0 < 60  # stopped at the cap, not after 64 MB


def test_patch_with_wrong_hash_is_refused(world, repo, device, vitrina_serve):
    """A bsdiff patch (a TUF target) with other bytes of the same length."""
    name = Bundle.open(device / "current").name
    patches = sorted((repo / "targets" / name / "patches").glob("*.bsdiff"))
    assert patches
    for p in patches:
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0xFF
        p.write_bytes(bytes(data))
    before = snapshot(device)
    with pytest.raises(TrustError) as caught:
        sync(vitrina_serve(repo), device, None, FAST)
    err = caught.value
    assert err.role.startswith(f"target {name}/patches/") and err.check == "hash or length", str(err)
    assert_untouched(device, before)


# --- stolen keys: revocation, thresholds, the timestamp key ---------------------------------------


def test_revoked_targets_key_cannot_sign_a_new_manifest(world, repo, keys, device, vitrina_serve):
    """The targets key is stolen; headquarters revokes it (one root update). The thief's release is refused."""
    r = Repository(repo, [keys])
    stolen = signers(keys, "targets")
    change = r.revoke(stolen[0].public_key.keyid[:12])
    assert change.root_version == 2 and change.removed == {"targets": [stolen[0].public_key.keyid]}
    forge_release(repo, keys, targets_by=stolen, timestamp_by=signers(keys, "timestamp"))
    refused(vitrina_serve(repo), device, role="targets", check="signatures")
    assert (device / "tuf/root_history/2.root.json").is_file()  # the revocation reached the device at this sync
    assert active_version(device) == 1


def test_stolen_targets_key_without_the_timestamp_key_is_refused(world, repo, keys, device, vitrina_serve, tmp_path):
    """The thief has the targets and snapshot keys but not the timestamp key: it signs a timestamp with its own."""
    forge_release(repo, keys, targets_by=signers(keys, "targets"), timestamp_by=[CryptoSigner.generate_ed25519()])
    refused(vitrina_serve(repo), device, role="timestamp", check="signatures")


def test_stolen_targets_key_cannot_slip_under_the_current_timestamp(world, repo, keys, device, vitrina_serve):
    """Without the timestamp key, the thief overwrites the targets and snapshot the current timestamp names."""
    r = Repository(repo, [keys])
    ts_version = r.timestamp().signed.snapshot_meta.version
    targets_version = r.snapshot().signed.meta["targets.json"].version
    forge_release(repo, keys, targets_by=signers(keys, "targets"), timestamp_by=signers(keys, "timestamp"))
    forged = Repository(repo).timestamp().signed.snapshot_meta.version
    snap = json.loads((repo / f"metadata/{forged}.snapshot.json").read_text())
    tv = snap["signed"]["meta"]["targets.json"]["version"]
    shutil.copy(repo / f"metadata/{tv}.targets.json", repo / f"metadata/{targets_version}.targets.json")
    shutil.copy(repo / f"metadata/{forged}.snapshot.json", repo / f"metadata/{ts_version}.snapshot.json")
    (repo / "metadata/timestamp.json").write_bytes(  # the real, current timestamp, back in place
        (world["root"] / "repo" / "metadata/timestamp.json").read_bytes()
    )
    refused(vitrina_serve(repo), device, role="snapshot", check="hash or length")


def test_rotated_root_is_accepted_and_later_releases_follow(world, repo, keys, device, vitrina_serve, tmp_path):
    """Root and targets keys rotated (root v2, v3): the device walks the chain and takes a release signed by the new keys."""
    r = Repository(repo, [keys])
    old_root_keys = {s.public_key.keyid for s in signers(keys, "root")}
    assert r.rotate("root").root_version == 2
    assert r.rotate("targets").root_version == 3
    for stale in old_root_keys:  # the old root keys are gone from the workstation
        next(keys.glob(f"root-{stale[:12]}.key")).unlink()
    b = tmp_path / "v3"
    test_sync.simulate_catalog_update(world["v2"], b, fraction=0.02, seed=3)
    Repository(repo, [keys]).publish_bundle(b, version=3)
    result = sync(vitrina_serve(repo), device, None, FAST)
    assert result.version == 3
    assert sorted(p.name for p in (device / "tuf/root_history").glob("*.root.json")) == [
        "1.root.json",
        "2.root.json",
        "3.root.json",
    ]
    assert (device / TRUSTED_ROOT).read_bytes() == trusted(world)  # the anchor stays; the chain grows


def test_root_signed_below_threshold_is_refused(world, repo, keys, device, vitrina_serve):
    """A root v2 putting the thief's targets key in, signed by 1 of the 3 root keys (threshold 2)."""
    old = Metadata[Root].from_bytes((repo / "metadata/1.root.json").read_bytes())
    root = old.signed
    assert root.roles["root"].threshold == 2 and len(root.roles["root"].keyids) == 3
    thief = CryptoSigner.generate_ed25519()
    root.add_key(thief.public_key, "targets")
    root.version = 2
    one_root_key = signers(keys, "root")[:1]
    write_signed(repo, old, "2.root.json", [*one_root_key, thief])
    refused(vitrina_serve(repo), device, role="root", check="signatures")
    (repo / "metadata/2.root.json").unlink()  # the mirror repaired: the device carries on with root v1
    assert sync(vitrina_serve(repo), device, None, FAST).version == 2


# --- slow retrieval --------------------------------------------------------------------------------


class _DribbleMetadata(RangeRequestHandler):
    """Metadata bodies one byte every 100 ms after honest headers (no socket timeout ever trips)."""

    def copyfile(self, source, outputfile):  # noqa: ANN001
        if "/metadata/" not in self.path:
            return super().copyfile(source, outputfile)
        try:
            while byte := source.read(1):
                outputfile.write(byte)
                outputfile.flush()
                time.sleep(0.1)
        except OSError:
            pass  # the client hung up: what it should do
        return None


def test_slow_retrieval_of_metadata_is_cut_by_the_time_limit(world, repo, device):
    before = snapshot(device)
    server, url = serve(repo, _DribbleMetadata)
    try:
        t0 = time.monotonic()
        with pytest.raises(SourceError, match=r"metadata/timestamp\.json: too slow: \d+ bytes arrived") as err:
            sync(url, device, None, SyncOptions(timeout_s=30, grace_s=1.0, min_rate_bytes_s=2000, reserve_bytes=0))
        elapsed = time.monotonic() - t0
    finally:
        server.shutdown()
    assert elapsed < 10, elapsed  # ~1 s grace, not the 60+ s the dribble would take
    assert "--min-rate" in str(err.value)
    assert_untouched(device, before)


# --- provisioning and migration from the pre-TUF key ----------------------------------------------


def legacy_keypair(folder: Path) -> tuple[Path, Path]:
    """A key pair as the pre-TUF ``vitrina keys generate`` wrote it: PKCS#8 PEM and 64 hex digits."""
    folder.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    key, pub = folder / "vitrina.key", folder / "vitrina.pub"
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pub.write_text(raw.hex() + "\n")
    return key, pub


def make_legacy(device: Path) -> None:
    """Turn the provisioned device into one of the pre-TUF kind: it trusts no root, only a key."""
    (device / TRUSTED_ROOT).unlink()
    shutil.rmtree(device / "tuf")


def test_unprovisioned_device_refuses_and_says_how_to_provision(world, repo, device):
    make_legacy(device)
    before = snapshot(device)
    with pytest.raises(NotProvisionedError, match="vitrina trust provision"):
        sync(str(repo), device, None, FAST)
    assert_untouched(device, before)


def test_migration_bundle_signed_by_the_old_key_is_taken_once(world, repo, device, vitrina_serve, tmp_path, capsys):
    from vitrina.runtime.cli import main

    old_key, old_pub = legacy_keypair(tmp_path / "legacy")
    other_key, _ = legacy_keypair(tmp_path / "other")
    make_legacy(device)
    url = vitrina_serve(repo)
    raw = bytes.fromhex(old_pub.read_text())

    # signed by a key the device does not trust: refused
    assert main(["keys", "migrate", "--old-key", str(other_key), "--repo", str(repo)]) == 0
    before = snapshot(device)
    with pytest.raises(VerificationError, match="does not trust"):
        sync(url, device, None, FAST, legacy_keys=[raw])
    assert_untouched(device, before)
    # the right key, the root swapped for another after signing: refused
    assert main(["keys", "migrate", "--old-key", str(old_key), "--repo", str(repo)]) == 0
    doc = json.loads((repo / "migration.json").read_text())
    stranger, _ = Repository.create(tmp_path / "stranger", [tmp_path / "stranger-keys"], generate_missing=True)
    forged = dict(doc, root=base64.b64encode((stranger.path / "metadata/1.root.json").read_bytes()).decode())
    (repo / "migration.json").write_text(json.dumps(forged))
    with pytest.raises(VerificationError, match="signature does not verify"):
        sync(url, device, None, FAST, legacy_keys=[raw])
    assert_untouched(device, before)
    # the real migration bundle, through the CLI as a field device would run it
    (repo / "migration.json").write_text(json.dumps(doc))
    capsys.readouterr()
    code = main(
        ["sync", "--from", url, "--root", str(device), "--legacy-key", str(old_pub), "--quiet", "--timeout", "5"]
    )
    assert code == 0 and "activated" in capsys.readouterr().out
    assert active_version(device) == 2 and (device / TRUSTED_ROOT).read_bytes() == trusted(world)
    assert doc["key_id"] == legacy_key_id(raw)
    # once migrated, the old key counts for nothing: a later migration.json (old key, stranger's root) is never read
    stranger_doc = dict(doc, root=forged["root"])
    (repo / "migration.json").write_text(json.dumps(stranger_doc))
    assert sync(url, device, None, FAST, legacy_keys=[raw]).up_to_date
    assert (device / TRUSTED_ROOT).read_bytes() == trusted(world)
