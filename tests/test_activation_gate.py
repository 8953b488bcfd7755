"""The activation gate: a signed but broken release never becomes a device's active bundle.

The real TUF targets key signs each broken release, with every hash consistent, and
the repository is served over a real HTTP server on 127.0.0.1: only the gate
stands between the release and the kiosk. After every refusal the old bundle
is byte-for-byte unchanged and still answers a search, the refusal is
recorded, and a later plain sync does not take the same version again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.test_sync import FAST, assert_untouched, manifest_file, serve, snapshot, trusted, world  # noqa: F401
from vitrina.export.publish.repository import Repository
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.sync.client import ActivationRefusedError, RefusedVersionError, TrustError, VerificationError, sync
from vitrina.runtime.sync.gate import GateError, check_bundle, check_bundle_isolated
from vitrina.runtime.sync.store import DeviceStore, StoreError


@pytest.fixture()
def repo(world: dict, tmp_path: Path) -> Path:  # noqa: F811 - a private copy of the v1+v2 repository
    return Path(shutil.copytree(world["root"] / "repo", tmp_path / "repo"))


@pytest.fixture()
def device(world: dict, repo: Path, tmp_path: Path) -> Path:  # noqa: F811
    """A device that synced v1 from a folder, then v2 over HTTP: v2 active, v1 installed."""
    root = tmp_path / "device"
    sync(str(world["root"] / "repo-v1"), root, trusted(world), FAST)
    server, url = serve(repo)
    try:
        sync(url, root, trusted(world), FAST)
    finally:
        server.shutdown()
    return root


def publish_broken(sync_world: dict, repo: Path, version: int, breaks: Callable[[Path], None]) -> None:
    """Publish ``version``: v2 changed by ``breaks``, every hash made consistent, signed with the real
    targets key (snapshot and timestamp follow).

    This is what a buggy build or a stolen key would publish; ``publish_bundle()`` itself refuses
    such bundles (the gate), so the release goes in one step below, the way a build without the gate would.
    """
    bundle = repo.parent / f"broken-v{version}"
    shutil.copytree(sync_world["v2"], bundle)
    breaks(bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    for rel in list(manifest["files"]):
        path = bundle / rel
        if path.is_file():
            data = path.read_bytes()
            manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    manifest["release"] = {"version": version, "published": "2026-01-01T00:00:00Z"}
    Repository(repo, [sync_world["keys"]]).add_release(manifest, bundle)


def corrupt_model(bundle: Path) -> None:
    model = bundle / "models/sketch_int8.tflite"
    data = bytearray(model.read_bytes())
    data[8:4096] = bytes(4088)
    model.write_bytes(bytes(data))


def huge_codes_header(bundle: Path) -> None:
    """codes.npy claims (2**45, D) rows: 466 TiB if anyone believed it."""
    path = bundle / "codes/codes.npy"
    codes = np.load(path)
    header = {"descr": codes.dtype.str, "fortran_order": False, "shape": (1 << 45, codes.shape[1])}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(codes.tobytes())


def nan_codes(bundle: Path) -> None:
    path = bundle / "codes/codes.npy"
    codes = np.load(path)
    codes[::7] = np.nan
    np.save(path, codes)


def unlisted_codes(bundle: Path) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["files"]["codes/codes.npy"]
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def wrong_model_input(bundle: Path) -> None:
    """The sketch model is swapped for the photo model: it loads, but not for sketches."""
    shutil.copy(bundle / "models/photo_int8.tflite", bundle / "models/sketch_int8.tflite")


def wrong_detector(bundle: Path) -> None:
    """The detector is swapped for the photo encoder: it loads, but gives no detection grids."""
    shutil.copy(bundle / "models/photo_int8.tflite", bundle / "models/detector_int8.tflite")


@pytest.mark.parametrize(
    ("breaks", "reason"),
    [
        (corrupt_model, "sketch_int8.tflite"),
        (wrong_detector, "detector"),
        (huge_codes_header, "codes.npy"),
        (nan_codes, "NaN"),
        (unlisted_codes, "codes/codes.npy"),
        (wrong_model_input, "sketch"),
    ],
    ids=["model-will-not-load", "wrong-detector", "npy-header-466-TiB", "nan-codes", "codes-not-hashed", "wrong-model"],
)
def test_signed_broken_release_is_refused_and_never_retaken(world, repo, device, breaks, reason):  # noqa: F811
    publish_broken(world, repo, 3, breaks)
    before = snapshot(device)
    server, url = serve(repo)
    try:
        with pytest.raises(ActivationRefusedError, match=reason) as err:
            sync(url, device, trusted(world), FAST)
        assert "active bundle is unchanged" in str(err.value)
        assert_untouched(device, before)
        refusal = DeviceStore(device).refusal(world_catalog(device), 3)
        assert refusal is not None and refusal.by == "gate"
        assert not list((device / "staging").iterdir())  # the broken stage is not kept for resume
        # the next plain sync holds the version back without fetching the bundle again
        with pytest.raises(RefusedVersionError, match="v3 is held back") as held:
            sync(url, device, trusted(world), FAST)
        assert "failed the activation gate" in str(held.value)
        assert_untouched(device, before)
    finally:
        server.shutdown()


def world_catalog(device: Path) -> str:
    return Bundle.open(DeviceStore(device).current(), verify=False).name


def test_newer_good_release_after_a_refused_one_is_taken(world, repo, device, tmp_path):  # noqa: F811
    publish_broken(world, repo, 3, corrupt_model)
    server, url = serve(repo)
    try:
        with pytest.raises(ActivationRefusedError):
            sync(url, device, trusted(world), FAST)
        good = tmp_path / "v4"
        shutil.copytree(world["v2"], good)
        Repository(repo, [world["keys"]]).publish_bundle(good)  # the next number: 4
        result = sync(url, device, trusted(world), FAST)
    finally:
        server.shutdown()
    assert (result.previous, result.version) == (2, 4)


def test_staff_rollback_is_not_undone_by_a_plain_sync(world, repo, device):  # noqa: F811
    store = DeviceStore(device)
    assert store.rollback().version == 1
    before = snapshot(device)
    server, url = serve(repo)
    try:
        with pytest.raises(RefusedVersionError, match="rolled back"):
            sync(url, device, trusted(world), FAST)
        assert_untouched(device, before)
        assert store.activate_version(2).version == 2  # staff choose it by number: the hold is lifted
        assert store.refusal(world_catalog(device), 2) is None
        assert sync(url, device, trusted(world), FAST).up_to_date
    finally:
        server.shutdown()


def test_explicit_activate_runs_the_gate(world, device):  # noqa: F811
    store = DeviceStore(device)
    older = next(i for i in store.installed() if not i.active)
    corrupt_model(older.path)  # a bundle damaged on the device's disk
    with pytest.raises(StoreError, match="refusing to activate"):
        store.activate_version(older.version)
    assert store.installed()[-1].active


def test_gate_report_lists_every_model_and_query_kind(world):  # noqa: F811
    report = check_bundle(world["v2"])
    text = "\n".join(report.checks)
    for model in ("sketch int8", "sketch float", "photo int8", "photo float"):
        assert model in text
    for precision in ("int8", "float"):  # the detector itself runs, not the photo encoder under its name
        assert f"(detector {precision}): " in text and "boxes on the probe photo" in text
    for kind in ("strokes", "photo", "similar", "words"):
        assert f"{kind} query (int8)" in text
    isolated = check_bundle_isolated(world["v2"])
    assert isolated.checks == report.checks


def test_isolated_gate_survives_a_crashing_check(world, tmp_path, monkeypatch):  # noqa: F811
    """A child that dies by a signal (as LiteRT would on a hostile model) fails the gate, not the caller."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nkill -SEGV $$\n")
    fake.chmod(0o755)
    monkeypatch.setattr("sys.executable", str(fake))
    with pytest.raises(GateError, match="crashed the process"):
        check_bundle_isolated(world["v2"])


@pytest.mark.parametrize("name", ["manifest", "timestamp"])
def test_deeply_nested_manifest_or_metadata_is_our_error(world, repo, device, name):  # noqa: F811
    """Deep nesting in a signed manifest, or in TUF metadata: a clear error naming it, never a RecursionError."""
    deep = "[" * 30_000 + "]" * 30_000
    if name == "manifest":  # signed by the real targets key: the device still parses it defensively
        repo_ = Repository(repo, [world["keys"]])
        targets = repo_.targets()
        info = repo_._add_target(
            targets.signed, f"{world_catalog(device)}/manifest.json", deep.encode(), {"version": 3, "patches": {}}
        )
        assert info.length == 60_000
        repo_._bump(targets.signed, "targets")
        repo_._commit(repo_.root().signed, targets, None, None)
        match, error = "nests too deeply", VerificationError
    else:
        (repo / "metadata/timestamp.json").write_text(deep[: 16_000 // 2] + deep[-16_000 // 2 :])
        match, error = "timestamp refused", TrustError
    before = snapshot(device)
    server, url = serve(repo)
    try:
        with pytest.raises(error, match=match):
            sync(url, device, trusted(world), FAST)
    finally:
        server.shutdown()
    assert_untouched(device, before)


def test_damaged_local_copy_is_an_integrity_failure_not_a_broken_release(world, tmp_path):  # noqa: F811
    """Sync drops a damaged stage and fetches again; only a broken release is refused for good."""
    copy = Path(shutil.copytree(world["v2"], tmp_path / "copy"))
    model = copy / "models/photo_int8.tflite"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    for check in (check_bundle, check_bundle_isolated):
        with pytest.raises(GateError, match="photo_int8.tflite is corrupt") as err:
            check(copy)
        assert err.value.integrity
    corrupt_model(copy)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for rel in ("models/photo_int8.tflite", "models/sketch_int8.tflite"):
        blob = (copy / rel).read_bytes()
        manifest["files"][rel] = {"sha256": hashlib.sha256(blob).hexdigest(), "size": len(blob)}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(GateError) as err:
        check_bundle_isolated(copy)
    assert not err.value.integrity
