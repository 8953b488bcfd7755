"""Bundle sync against a real HTTP server on 127.0.0.1: happy path, delta, and the fault matrix.

The repository is a real TUF repository (``export/publish/repository.py``) and the device
trusts its root.json. Every fault must leave the active bundle exactly as it was (same
link target, same bytes), still verified and searchable, and raise an error naming the
cause. The attacks TUF is there for are in ``test_sync_attacks.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vitrina.export.publish.bench_sync import simulate_catalog_update
from vitrina.export.publish.repository import PublishError, Repository
from vitrina.export.publish.serve import RangeRequestHandler, serve_in_thread
from vitrina.runtime.bundle import Bundle, release_version
from vitrina.runtime.product_search import ProductSearch
from vitrina.runtime.rasterize import load_strokes_json
from vitrina.runtime.sync.client import (
    DiskSpaceError,
    RollbackError,
    SourceError,
    SyncOptions,
    TrustError,
    VerificationError,
    sync,
)
from vitrina.runtime.sync.store import DeviceStore, StoreError

FAST = SyncOptions(timeout_s=1.0, retries=2, retry_wait_s=0.01, reserve_bytes=0)


@pytest.fixture(scope="session")
def world(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """TUF keys, v1 and v2 (5% of products changed), and repositories: ``repo-v1`` (v1 published),
    ``repo`` (the same, then v2 published). ``root_json``: the root devices trust."""
    root = tmp_path_factory.mktemp("sync-world")
    keys = root / "keys"
    v1, v2 = root / "v1", root / "v2"
    shutil.copytree(tiny_bundle, v1)
    simulate_catalog_update(v1, v2, fraction=0.05)
    first, _ = Repository.create(root / "repo-v1", [keys], generate_missing=True)
    first.publish_bundle(v1, version=1)
    shutil.copytree(root / "repo-v1", root / "repo")
    Repository(root / "repo", [keys]).publish_bundle(v2, version=2)
    return {"root": root, "keys": keys, "root_json": root / "repo-v1/metadata/1.root.json", "v1": v1, "v2": v2}


@pytest.fixture()
def repo(world: dict, tmp_path: Path) -> Path:
    """A private copy of the v1+v2 repository (tests may break it)."""
    return Path(shutil.copytree(world["root"] / "repo", tmp_path / "repo"))


@pytest.fixture()
def device(world: dict, tmp_path: Path) -> Path:
    """A device store with v1 active (synced from a folder)."""
    root = tmp_path / "device"
    sync(str(world["root"] / "repo-v1"), root, trusted(world), FAST)
    return root


def serve(directory: Path, handler: type[RangeRequestHandler] = RangeRequestHandler):
    server, url = serve_in_thread(directory, handler=handler)
    return server, url


def snapshot(root: Path) -> dict:
    """What 'the active bundle exactly as it was' means: the link target and every file's hash."""
    store = DeviceStore(root)
    current = store.current()
    files = {
        p.relative_to(current).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(current.rglob("*"))
        if p.is_file()
    }
    return {"target": os.readlink(root / "current"), "files": files}


def assert_untouched(root: Path, before: dict) -> None:
    assert snapshot(root) == before
    bundle = Bundle.open(DeviceStore(root).current(), verify=True)
    engine = ProductSearch(bundle)
    try:
        strokes = load_strokes_json(Path(__file__).resolve().parent.parent / "assets/sketches/trousers.json")
        assert len(engine.by_strokes(strokes, 5).matches) == 5
    finally:
        engine.close()


def trusted(world: dict) -> bytes:
    """The root.json a provisioned device trusts."""
    return world["root_json"].read_bytes()


def manifest_file(repo: Path, version: int) -> Path:
    """The stored manifest target of release ``version`` (``targets/<catalog>/<sha256>.manifest.json``)."""
    for path in repo.glob("targets/*/*.manifest.json"):
        if json.loads(path.read_text())["release"]["version"] == version:
            return path
    raise FileNotFoundError(f"no manifest of v{version} in {repo}")


def blob_of(repo: Path, version: int, rel: str) -> Path:
    manifest = json.loads(manifest_file(repo, version).read_text())
    return repo / "blobs" / manifest["files"][rel]["sha256"]


# --- happy path ---------------------------------------------------------------------


def test_full_sync_then_delta_then_rollback_and_gc(world, repo, tmp_path):
    server, url = serve(repo)
    try:
        root = tmp_path / "fresh"
        first = sync(url, root, trusted(world), FAST)
        assert first.version == 2 and first.previous == 0 and first.downloaded > 0
        assert first.transferred >= first.full_size  # an empty device downloads everything
        assert Bundle.open(root / "current").manifest["release"]["version"] == 2
    finally:
        server.shutdown()


def test_delta_sync_transfers_only_changes(world, repo, device):
    server, url = serve(repo)
    try:
        result = sync(url, device, trusted(world), FAST)
    finally:
        server.shutdown()
    assert (result.previous, result.version) == (1, 2)
    assert result.reused > 0 and result.patched + result.downloaded <= 3  # only items.json, codes (and re-rank) changed
    assert result.transferred < 0.25 * result.full_size
    bundle = Bundle.open(device / "current", verify=True)
    assert any(item.title.endswith("(nuevo)") for item in bundle.items)
    store = DeviceStore(device)
    assert [(i.version, i.active) for i in store.installed()] == [(1, False), (2, True)]
    assert store.rollback().version == 1 and release_version(store.current_manifest()) == 1
    assert store.activate_version(2).version == 2
    with pytest.raises(StoreError, match="no installed bundle with version 7"):
        store.activate_version(7)


def test_gc_keeps_active_and_two_previous(world, tmp_path):
    repo, _ = Repository.create(tmp_path / "repo", [world["keys"]])
    root = tmp_path / "device"
    previous = world["v1"]
    for version in range(1, 5):
        b = tmp_path / f"b{version}"
        simulate_catalog_update(previous, b, fraction=0.01, seed=version)
        assert repo.publish_bundle(b).version == version  # the next number by default
        sync(str(repo.path), root, trusted(world), SyncOptions(reserve_bytes=0, keep_previous=5))
        previous = b
    store = DeviceStore(root)
    assert [i.version for i in store.installed()] == [1, 2, 3, 4]
    removed = store.gc(keep_previous=2)
    assert [p.name.rsplit("-v", 1)[1] for p in removed] == ["1"]
    assert [(i.version, i.active) for i in store.installed()] == [(2, False), (3, False), (4, True)]
    assert store.rollback().version == 3


def test_equal_version_is_up_to_date_and_older_is_refused(world, repo, device, tmp_path):
    """A release below the active one, under fresh metadata (the targets role re-signed v1 later), is refused."""
    server, url = serve(repo)
    old = Path(shutil.copytree(world["root"] / "repo-v1", tmp_path / "old"))
    old_server, old_url = serve(old)
    try:
        assert sync(old_url, device, trusted(world), FAST).up_to_date
        first = sync(old_url, device, trusted(world), FAST)
        assert first.up_to_date and first.requests <= 2 and first.transferred <= 4096  # the "nothing new" check
        sync(url, device, trusted(world), FAST)
        for _ in range(3):  # old's metadata versions now above repo's: only the release version is older
            Repository(old, [world["keys"]]).resign()
        before = snapshot(device)
        with pytest.raises(RollbackError, match="offers .* v1 but the device has v2"):
            sync(old_url, device, trusted(world), FAST)
        assert_untouched(device, before)
        back = sync(old_url, device, trusted(world), SyncOptions(allow_rollback=True, reserve_bytes=0))
        assert back.version == 1 and release_version(DeviceStore(device).current_manifest()) == 1
    finally:
        server.shutdown()
        old_server.shutdown()


# --- fault matrix -------------------------------------------------------------------


def test_tampered_file_is_refused(world, repo, device):
    blob = blob_of(repo, 2, "codes/codes.npy")
    data = bytearray(blob.read_bytes())
    data[-10] ^= 0xFF
    blob.write_bytes(bytes(data))
    before = snapshot(device)
    server, url = serve(repo)
    try:
        with pytest.raises(VerificationError, match="codes/codes.npy.*sha256"):
            sync(
                url,
                device,
                trusted(world),
                SyncOptions(delta=False, timeout_s=1, retries=1, retry_wait_s=0.01, reserve_bytes=0),
            )
    finally:
        server.shutdown()
    assert_untouched(device, before)


def test_truncated_file_is_refused(world, repo, device):
    blob = blob_of(repo, 2, "items.json")
    blob.write_bytes(blob.read_bytes()[:1000])
    before = snapshot(device)
    server, url = serve(repo)
    try:
        with pytest.raises(SourceError, match="closed after 1000 of"):
            sync(
                url,
                device,
                trusted(world),
                SyncOptions(delta=False, timeout_s=1, retries=1, retry_wait_s=0.01, reserve_bytes=0),
            )
    finally:
        server.shutdown()
    assert_untouched(device, before)


def test_tampered_manifest_is_refused(world, repo, device):
    path = manifest_file(repo, 2)
    text = path.read_text()
    path.write_text(text.replace('"items": ', '"items":\t', 1))  # same length, other bytes
    before = snapshot(device)
    name = Bundle.open(device / "current").name
    with pytest.raises(TrustError, match="hash or length check failed") as err:
        sync(str(repo), device, trusted(world), FAST)
    assert err.value.role == f"target {name}/manifest.json"
    path.write_text(text + " ")  # one byte longer: cut at the signed length
    with pytest.raises(TrustError, match="size limit check failed"):
        sync(str(repo), device, trusted(world), FAST)
    assert_untouched(device, before)


def test_device_trusting_another_root_refuses(world, repo, device, tmp_path):
    stranger, _ = Repository.create(tmp_path / "stranger", [tmp_path / "stranger-keys"], generate_missing=True)
    fresh = tmp_path / "fresh"
    with pytest.raises(TrustError, match="signatures check failed") as err:
        sync(str(repo), fresh, (stranger.path / "metadata/1.root.json").read_bytes(), FAST)
    assert err.value.role == "timestamp" and "What to do" in str(err.value)
    assert DeviceStore(fresh).current() is None


def test_path_traversal_in_signed_manifest_is_refused(world, repo, device, tmp_path):
    manifest = json.loads(manifest_file(repo, 2).read_text())
    manifest["files"]["../../evil.json"] = manifest["files"]["items.json"]
    manifest["release"]["version"] = 3
    # signed by the real targets key: the path check must hold even for a signed manifest
    Repository(repo, [world["keys"]]).add_release(manifest, world["v2"])
    before = snapshot(device)
    with pytest.raises(VerificationError, match="unsafe path '../../evil.json'"):
        sync(str(repo), device, trusted(world), FAST)
    assert_untouched(device, before)
    assert not list(device.parent.rglob("evil.json"))


class _Fail500(RangeRequestHandler):
    def do_GET(self):  # noqa: N802
        if "/blobs/" in self.path or "/patches/" in self.path:
            self.send_error(500, "boom")
            return
        super().do_GET()


class _Stall(RangeRequestHandler):
    def do_GET(self):  # noqa: N802
        if "/blobs/" in self.path or "/patches/" in self.path:
            time.sleep(3)
        super().do_GET()


class _ResetMidFile(RangeRequestHandler):
    """Sends half of each blob then drops the connection; ``always`` or only the first time."""

    always = False
    seen: set = set()

    def copyfile(self, source, outputfile):  # noqa: ANN001
        if "/blobs/" in self.path and (self.always or self.path not in self.seen) and self.headers.get("Range") is None:
            type(self).seen.add(self.path)
            data = source.read()
            outputfile.write(data[: len(data) // 2])
            outputfile.flush()
            self.connection.shutdown(2)
            self.close_connection = True
            return
        super().copyfile(source, outputfile)


class _ResetAlways(RangeRequestHandler):
    """Drops every blob connection after 100 bytes, resumed or not."""

    def copyfile(self, source, outputfile):  # noqa: ANN001
        if "/blobs/" in self.path:
            outputfile.write(source.read(100))
            outputfile.flush()
            self.connection.shutdown(2)
            self.close_connection = True
            return
        super().copyfile(source, outputfile)


@pytest.mark.parametrize(
    "handler, message",
    [(_Fail500, "HTTP 500"), (_Stall, "timed out"), (_ResetAlways, "gave up after 25 requests")],
    ids=["http-500", "stall", "reset-always"],
)
def test_server_faults_leave_device_untouched(world, repo, device, handler, message):
    before = snapshot(device)
    server, url = serve(repo, handler)
    try:
        with pytest.raises(SourceError, match=message):
            sync(
                url,
                device,
                trusted(world),
                SyncOptions(delta=False, timeout_s=0.5, retries=1, retry_wait_s=0.01, reserve_bytes=0),
            )
    finally:
        server.shutdown()
    assert_untouched(device, before)


def test_reset_mid_file_resumes_with_range(world, repo, device):
    _ResetMidFile.seen = set()
    server, url = serve(repo, _ResetMidFile)
    try:
        result = sync(
            url,
            device,
            trusted(world),
            SyncOptions(delta=False, timeout_s=2, retries=2, retry_wait_s=0.01, reserve_bytes=0),
        )
    finally:
        server.shutdown()
    assert result.version == 2 and _ResetMidFile.seen
    # each reset blob was sent half, then resumed: about 1.5x the bundle, not 2x
    assert result.transferred < 1.7 * result.full_size


def test_disk_space_checked_before_download(world, repo, device):
    before = snapshot(device)
    with pytest.raises(DiskSpaceError, match="not enough disk"):
        sync(str(repo), device, trusted(world), SyncOptions(delta=False, reserve_bytes=1 << 60))
    assert_untouched(device, before)


def test_disk_full_during_download(world, repo, device):
    """A real write failure: the sync process runs with a 64 KiB file-size limit (EFBIG)."""
    before = snapshot(device)
    code = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536)); "
        "from vitrina.runtime.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "sync",
            "--from",
            str(repo),
            "--root",
            str(device),
            "--trust-root",
            str(world["root_json"]),
            "--no-delta",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "disk full" in proc.stderr and "active bundle unchanged" in proc.stderr
    assert_untouched(device, before)


class _Slow(RangeRequestHandler):
    def copyfile(self, source, outputfile):  # noqa: ANN001
        while chunk := source.read(16 << 10):
            outputfile.write(chunk)
            time.sleep(0.01)


def test_kill_9_during_download_then_rerun_resumes(world, repo, device):
    before = snapshot(device)
    server, url = serve(repo, _Slow)
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "vitrina.runtime.cli",
                "sync",
                "--from",
                url,
                "--root",
                str(device),
                "--trust-root",
                str(world["root_json"]),
                "--no-delta",
                "--quiet",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
            p.stat().st_size > 100_000 for p in (device / "staging").rglob("*") if p.is_file()
        ):
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert_untouched(device, before)
        staged = sum(p.stat().st_size for p in (device / "staging").rglob("*") if p.is_file())
        assert staged > 100_000
    finally:
        server.shutdown()
    server, url = serve(repo)
    try:
        result = sync(url, device, trusted(world), SyncOptions(delta=False, reserve_bytes=0))
    finally:
        server.shutdown()
    assert result.version == 2
    assert result.transferred <= result.full_size - staged + 200_000  # resumed, not restarted


class _Died(BaseException):
    """Stands in for the process dying at a given line (kill -9 cannot be aimed that precisely)."""


@pytest.mark.parametrize("where", ["before-rename", "before-swap"])
def test_death_during_activation_then_rerun_completes(world, repo, device, monkeypatch, where):
    import vitrina.runtime.sync.client as sync_module

    before = snapshot(device)

    def die(*args, **kwargs):
        raise _Died()

    if where == "before-rename":
        monkeypatch.setattr(sync_module, "_install", die)
    else:
        monkeypatch.setattr(DeviceStore, "activate", die)
    with pytest.raises(_Died):
        sync(str(repo), device, trusted(world), FAST)
    assert_untouched(device, before)
    monkeypatch.undo()
    assert sync(str(repo), device, trusted(world), FAST).version == 2
    assert Bundle.open(device / "current", verify=True).manifest["release"]["version"] == 2
    assert not any((device / "staging").iterdir())


def test_publishing_needs_the_keys_and_a_higher_version(world, tmp_path):
    b = tmp_path / "b"
    simulate_catalog_update(world["v1"], b, fraction=0.01)
    with pytest.raises(PublishError, match="no root key in"):
        Repository.create(tmp_path / "repo", [tmp_path / "no-keys"])
    shutil.copytree(world["root"] / "repo-v1", tmp_path / "repo")
    online_only = tmp_path / "online"
    online_only.mkdir()
    for key in world["keys"].glob("timestamp-*.key"):
        shutil.copy(key, online_only)
    with pytest.raises(PublishError, match=r"signing targets v\d+ needs 1 of its 1 keys; found 0"):
        Repository(tmp_path / "repo", [online_only]).publish_bundle(b)
    repo = Repository(tmp_path / "repo", [world["keys"]])
    with pytest.raises(PublishError, match="must be higher"):
        repo.publish_bundle(b, version=1)
    assert repo.publish_bundle(b).version == 2


def test_partial_sync_of_another_version_is_cleared(world, repo, device):
    name = Bundle.open(device / "current").name
    stale = device / "staging" / f"{name}-v9-0123456789ab"
    (stale / "codes").mkdir(parents=True)
    (stale / "codes" / "codes.npy.part").write_bytes(b"x" * 1000)
    other = device / "staging" / "another-catalog-v9-0123456789ab"
    other.mkdir()
    sync(str(repo), device, trusted(world), FAST)
    assert not stale.exists() and other.exists()  # only this catalog's leftovers go
