"""The field-staff walkthrough of README.md as commands: keys, publish, provision, sync, refresh,
rotate, revoke, recover. Each command runs in-process through ``vitrina``'s real CLI and says what it did."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests import test_sync
from vitrina.export.publish.bench_sync import simulate_catalog_update
from vitrina.runtime.bundle import release_version
from vitrina.runtime.cli import main
from vitrina.runtime.sync.store import DeviceStore

world = test_sync.world


def vitrina(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_field_staff_walkthrough(world, tmp_path, capsys):
    hq, repo, device = tmp_path / "hq", tmp_path / "repo", tmp_path / "device"
    online, offline = hq / "online", hq / "root-usb"
    for role in ("targets", "snapshot", "timestamp"):
        code, out = vitrina(capsys, "keys", "generate", "--role", role, "--keys", online)
        assert code == 0 and f"new {role} key" in out
    code, out = vitrina(capsys, "keys", "generate", "--role", "root", "--count", "3", "--keys", offline)
    assert code == 0 and out.count("new root key") == 3 and "offline" in out
    keyfiles = list(online.glob("*.key"))
    assert len(keyfiles) == 3 and all(p.stat().st_mode & 0o777 == 0o600 for p in keyfiles)

    v1 = Path(shutil.copytree(world["v1"], tmp_path / "v1"))
    code, out = vitrina(capsys, "publish", v1, "--repo", repo, "--keys", online, "--root-keys", offline)
    assert code == 0, out
    assert "created a TUF repository" in out and "any 2 sign a change" in out and "published" in out
    assert "v1" in out and "--refresh-timestamp" in out

    code, out = vitrina(capsys, "trust", "provision", repo / "metadata/1.root.json", "--root", device)
    assert code == 0 and "now trusts root v1" in out
    code, out = vitrina(capsys, "sync", "--from", repo, "--root", device, "--quiet")
    assert code == 0 and "activated" in out and release_version(DeviceStore(device).current_manifest()) == 1

    # the daily cron job needs only the online timestamp key
    timestamp_only = hq / "cron"
    timestamp_only.mkdir()
    shutil.copy(next(online.glob("timestamp-*.key")), timestamp_only)
    code, out = vitrina(capsys, "publish", "--refresh-timestamp", "--repo", repo, "--keys", timestamp_only)
    assert code == 0 and "re-signed timestamp" in out

    # rotating needs the offline root keys, and says so without them
    code, out = vitrina(capsys, "keys", "rotate", "--role", "timestamp", "--repo", repo, "--keys", online)
    assert code == 2 and "needs 2 of its 3 keys; found 0" in out and "--root-keys" in out
    code, out = vitrina(
        capsys, "keys", "rotate", "--role", "timestamp", "--repo", repo, "--keys", online, "--root-keys", offline
    )
    assert code == 0 and "root v2 published" in out and "no longer trusted" in out and "next sync" in out

    # a root key is lost: revoke it (the other two still meet the threshold)
    lost = next(offline.glob("root-*.key"))
    lost_id = lost.name.split("-", 1)[1].removesuffix(".key")
    code, out = vitrina(capsys, "keys", "revoke", lost_id, "--repo", repo, "--keys", online, "--root-keys", offline)
    assert code == 0 and "root v3 published" in out
    lost.unlink()
    code, out = vitrina(capsys, "keys", "list", "--repo", repo, "--keys", online, "--root-keys", offline)
    assert code == 0 and out.count("root      (needs 2)") == 2 and lost_id not in out

    v2 = tmp_path / "v2"
    simulate_catalog_update(v1, v2, fraction=0.02)
    code, out = vitrina(capsys, "publish", v2, "--repo", repo, "--keys", online)
    assert code == 0 and "v2" in out
    code, out = vitrina(capsys, "sync", "--from", repo, "--root", device, "--quiet")
    assert code == 0 and "activated" in out and release_version(DeviceStore(device).current_manifest()) == 2
    code, out = vitrina(capsys, "trust", "show", "--root", device)
    assert code == 0 and "provisioned root: v1" in out and "newest verified root: v3" in out

    # recovery: a device is re-provisioned with another root only when staff say --replace
    other = tmp_path / "other-repo"
    code, _ = vitrina(capsys, "publish", v1, "--repo", other, "--keys", online, "--root-keys", offline)
    assert code == 0
    code, out = vitrina(capsys, "trust", "provision", other / "metadata/1.root.json", "--root", device)
    assert code == 2 and "already trusts root v1" in out and "--replace" in out
    code, out = vitrina(capsys, "trust", "provision", other / "metadata/1.root.json", "--root", device, "--replace")
    assert code == 0 and not (device / "tuf").exists()
    assert json.loads((device / "trusted_root.json").read_bytes()) == json.loads(
        (other / "metadata/1.root.json").read_bytes()
    )
