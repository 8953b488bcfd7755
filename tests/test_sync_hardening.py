"""Sync hardening: deadlines against slow or silent servers, folder sources with FIFOs and links,
one sync at a time per device root, and malformed TUF metadata refused in words.

Each fault runs the real ``vitrina sync`` command (in-process, on a thread that
must finish in time, so a hang fails the test instead of stalling the suite)
against a real HTTP server on 127.0.0.1 or a real folder, and checks: exit 2,
a message naming the source or file and the problem, and the active bundle
exactly as it was, still searchable (the helpers of ``test_sync``).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests import test_sync
from tests.test_sync import assert_untouched, blob_of, serve, snapshot, trusted
from vitrina.export.publish.serve import RangeRequestHandler
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.cli import main
from vitrina.runtime.product_search import ProductSearch
from vitrina.runtime.rasterize import load_strokes_json
from vitrina.runtime.sync.client import SyncBusyError, SyncOptions, SyncResult, TrustError, sync
from vitrina.runtime.sync.lock import device_lock

world, repo, device = test_sync.world, test_sync.repo, test_sync.device  # the same fixtures

GRACE_S = 1.0
LIMIT_S = 15.0  # generous: the faults below end in 1-3 s; a hang is what this catches


def run_cli(capsys: pytest.CaptureFixture[str], *argv: Any, limit_s: float = 60.0) -> tuple[int, str, float]:
    """``vitrina ARGV`` in-process on a thread: (exit code, stderr, seconds); fails if it is still running after ``limit_s``."""
    out: dict[str, Any] = {}

    def target() -> None:
        try:
            out["code"] = main([str(a) for a in argv])
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread below
            out["error"] = exc

    t0 = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(limit_s)
    elapsed = time.monotonic() - t0
    assert not thread.is_alive(), f"vitrina {argv[0]} still running after {limit_s} s: it hangs"
    if "error" in out:
        raise out["error"]
    return out["code"], capsys.readouterr().err, elapsed


def sync_cli(source: str | Path, root: Path, world: dict, *extra: Any) -> list[Any]:
    return [
        "sync",
        "--from",
        source,
        "--root",
        root,
        "--trust-root",
        world["root_json"],
        "--quiet",
        "--no-delta",
        *extra,
    ]


def tight(min_rate: int = 20_000, deadline: float = 60.0) -> list[Any]:
    """CLI options with small limits; a long socket timeout so only the new limits can end a stall."""
    return ["--timeout", 30, "--grace", GRACE_S, "--min-rate", min_rate, "--deadline", deadline]


def assert_searchable(root: Path) -> None:
    engine = ProductSearch(Bundle.open(root / "current", verify=True))
    try:
        strokes = load_strokes_json(Path(__file__).resolve().parent.parent / "assets/sketches/trousers.json")
        assert len(engine.by_strokes(strokes, 5).matches) == 5
    finally:
        engine.close()


def staged_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in (root / "staging").rglob("*") if p.is_file())


@pytest.fixture()
def http(repo: Path) -> Iterator[Any]:
    """``http(handler)`` serves the test's repository copy with ``handler``; every server is stopped after the test."""
    servers = []

    def start(handler: type[RangeRequestHandler] = RangeRequestHandler) -> str:
        server, url = serve(repo, handler)
        servers.append(server)
        return url

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- servers that misbehave slowly ----------------------------------------------------


class _TrickleBody(RangeRequestHandler):
    """Blobs: headers and the first 20 kB at once, then one byte every 50 ms (20 B/s: no socket timeout trips)."""

    def copyfile(self, source, outputfile):  # noqa: ANN001
        if "/blobs/" not in self.path:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(20_000))
        while byte := source.read(1):
            time.sleep(0.05)
            outputfile.write(byte)
        return None


class _TrickleHeaders(RangeRequestHandler):
    """timestamp.json: the status line and headers one byte every 50 ms, for a minute."""

    def do_GET(self):  # noqa: N802
        if not self.path.endswith("/timestamp.json"):
            return super().do_GET()
        head = b"HTTP/1.0 200 OK\r\nX-Pad: " + b"a" * 2000
        try:
            for i in range(len(head)):
                self.wfile.write(head[i : i + 1])
                time.sleep(0.05)
        except OSError:
            pass  # the client hung up
        self.close_connection = True
        return None


class _Paced(RangeRequestHandler):
    """Every file at about ``rate`` bytes/s (a slow link that works)."""

    rate = 1_000_000

    def copyfile(self, source, outputfile):  # noqa: ANN001
        while chunk := source.read(8192):
            outputfile.write(chunk)
            time.sleep(len(chunk) / self.rate)


class _Paced100k(_Paced):
    rate = 100_000


@pytest.fixture()
def silent_url() -> Iterator[str]:
    """A server that accepts connections (the kernel's backlog) and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    listener.close()


def test_defaults_leave_a_slow_working_link_alone():
    """A 124 MB bundle at 1 MB/s (124 s) is far inside every default limit."""
    o = SyncOptions()
    assert o.grace_s + 124e6 / o.min_rate_bytes_s > 10 * 124
    assert o.deadline_s > 10 * 124


def test_trickling_body_stops_at_min_rate_and_keeps_staged_bytes(world, repo, device, http, capsys):
    before = snapshot(device)
    url = http(_TrickleBody)
    code, err, elapsed = run_cli(capsys, *sync_cli(url, device, world, *tight()))
    assert code == 2, err
    assert f"{url}/blobs/" in err and "too slow" in err and "bytes arrived in" in err
    assert "minimum of 20000 bytes/s" in err and "active bundle unchanged" in err
    assert elapsed < LIMIT_S
    assert_untouched(device, before)
    staged = staged_bytes(device)
    assert staged >= 20_000  # kept for the rerun
    result = sync(http(), device, trusted(world), SyncOptions(delta=False, reserve_bytes=0))
    assert result.version == 2 and result.transferred <= result.full_size - staged + 100_000  # resumed


def test_trickling_headers_stop_at_grace(world, device, http, capsys):
    before = snapshot(device)
    url = http(_TrickleHeaders)
    code, err, elapsed = run_cli(capsys, *sync_cli(url, device, world, *tight()))
    assert code == 2, err
    assert f"{url}/metadata/timestamp.json: too slow: 0 bytes arrived in" in err
    assert elapsed < LIMIT_S
    assert_untouched(device, before)


def test_server_that_never_answers_stops_at_grace(world, device, silent_url, capsys):
    before = snapshot(device)
    code, err, elapsed = run_cli(capsys, *sync_cli(silent_url, device, world, *tight()))
    assert code == 2, err
    assert f"{silent_url}/metadata/2.root.json: too slow: 0 bytes arrived in" in err
    assert elapsed < LIMIT_S
    assert_untouched(device, before)


def test_whole_sync_deadline(world, device, http, capsys):
    """Every file above the minimum rate (100 kB/s against 1 kB/s), the whole sync past its deadline."""
    before = snapshot(device)
    url = http(_Paced100k)
    code, err, elapsed = run_cli(capsys, *sync_cli(url, device, world, *tight(min_rate=1000, deadline=2.0)))
    assert code == 2, err
    assert f"{url}/" in err and "passed its 2 s deadline (--deadline)" in err
    assert elapsed < LIMIT_S
    assert_untouched(device, before)


def test_slow_link_above_min_rate_completes(world, device, http):
    result = sync(
        http(_Paced),
        device,
        trusted(world),
        SyncOptions(reserve_bytes=0, grace_s=GRACE_S, min_rate_bytes_s=100_000, timeout_s=5),
    )
    assert result.version == 2
    assert_searchable(device)


def test_bad_time_limits_are_refused(world, repo, tmp_path):
    with pytest.raises(ValueError, match="min_rate_bytes_s must be > 0"):
        sync(str(repo), tmp_path / "d", trusted(world), SyncOptions(min_rate_bytes_s=0))


# --- folder sources: FIFOs and links ------------------------------------------------


def test_fifo_in_folder_source_is_refused(world, repo, device, capsys):
    blob = blob_of(repo, 2, "items.json")
    blob.unlink()
    os.mkfifo(blob)
    before = snapshot(device)
    code, err, elapsed = run_cli(capsys, *sync_cli(repo, device, world), limit_s=LIMIT_S)
    assert code == 2, err
    assert f"blobs/{blob.name}" in err and str(repo) in err and "not a regular file" in err
    assert_untouched(device, before)


@pytest.mark.parametrize("what", ["blob", "blobs-folder", "timestamp"])
def test_symlink_in_folder_source_is_refused(world, repo, device, tmp_path, capsys, what):
    """Links are refused even to the right bytes (a link can point anywhere on the device)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    if what == "blob":
        target = blob_of(repo, 2, "items.json")
    elif what == "blobs-folder":
        target = repo / "blobs"
    else:
        target = repo / "metadata/timestamp.json"
    moved = outside / target.name
    shutil.move(target, moved)
    target.symlink_to(moved)
    before = snapshot(device)
    code, err, _ = run_cli(capsys, *sync_cli(repo, device, world), limit_s=LIMIT_S)
    assert code == 2, err
    assert str(repo) in err and "symbolic link" in err and "active bundle unchanged" in err
    assert_untouched(device, before)


# --- one sync at a time ----------------------------------------------------------------


def test_two_concurrent_syncs_one_runs_the_other_is_refused(world, device, http, capsys):
    url = http(_Paced)  # about 3 s for the bundle: the two overlap
    barrier = threading.Barrier(2)
    outcomes: list[Any] = []
    done = threading.Event()

    def one() -> None:
        barrier.wait()
        try:
            outcomes.append(sync(url, device, trusted(world), SyncOptions(delta=False, reserve_bytes=0)))
        except BaseException as exc:  # noqa: BLE001 - the test checks which
            outcomes.append(exc)
        if len(outcomes) == 1:
            done.set()

    threads = [threading.Thread(target=one, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    assert done.wait(LIMIT_S)
    # the loser returned at once; while the winner still holds the root, the bundles commands wait their turn too
    assert any(t.is_alive() for t in threads), "the winning sync ended before the loser: no overlap to test"
    code, err, _ = run_cli(capsys, "bundles", "--root", device, "gc", limit_s=LIMIT_S)
    assert code == 2 and f"another sync is running on {device} (pid {os.getpid()})" in err
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    results = [o for o in outcomes if isinstance(o, SyncResult)]
    busy = [o for o in outcomes if isinstance(o, SyncBusyError)]
    assert len(results) == 1 and len(busy) == 1, outcomes
    assert results[0].version == 2
    assert str(busy[0]) == f"another sync is running on {device} (pid {os.getpid()}): wait for it to finish"
    assert_searchable(device)


def test_sync_while_bundles_command_holds_root_exits_2(world, repo, device, capsys):
    before = snapshot(device)
    with device_lock(device, "bundles gc"):
        code, err, elapsed = run_cli(capsys, *sync_cli(repo, device, world), limit_s=LIMIT_S)
    assert code == 2 and f"another bundles gc is running on {device} (pid {os.getpid()})" in err
    assert elapsed < 5
    assert_untouched(device, before)
    assert sync(str(repo), device, trusted(world), SyncOptions(reserve_bytes=0)).version == 2  # released


# --- malformed TUF metadata ----------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"not json at all", b"[]", b'{"signed": {"_type": "timestamp"}, "signatures": []}', b"\xff\xfe", b""],
    ids=["not-json", "a-list", "no-fields", "not-utf8", "empty"],
)
def test_malformed_timestamp_is_refused_naming_the_role(world, repo, device, capsys, content):
    (repo / "metadata/timestamp.json").write_bytes(content)
    before = snapshot(device)
    with pytest.raises(TrustError) as err:
        sync(str(repo), device, trusted(world), SyncOptions(reserve_bytes=0))
    assert err.value.role == "timestamp" and "What to do" in str(err.value)
    code, out, _ = run_cli(capsys, *sync_cli(repo, device, world), limit_s=LIMIT_S)
    assert code == 2 and "timestamp refused" in out and "Traceback" not in out
    assert_untouched(device, before)


@given(st.binary(max_size=2000))
def test_arbitrary_timestamp_bytes_are_refused_or_taken_never_crash(data):
    """Whatever bytes arrive as timestamp.json, the TUF check ends in a TrustError (never another exception)."""
    from tuf.api.exceptions import RepositoryError
    from tuf.api.metadata import Metadata

    from vitrina.runtime.sync.trust import explain

    try:
        Metadata.from_bytes(data)
    except RepositoryError as exc:  # what the Updater raises for them
        err = explain(exc, "metadata/timestamp.json")
        assert isinstance(err, TrustError) and err.role == "timestamp" and err.check == "metadata"
