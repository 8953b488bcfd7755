"""``vitrina sync``: fetch a bundle through TUF metadata from a repository (HTTP or folder) and activate it.

Order of work, each step leaving the active bundle untouched until the last:

0. take the device root's lock (``lock.py``): a second sync, or a ``bundles``
   command, at the same time fails at once with "another sync is running";
1. trust: the device's provisioned ``trusted_root.json`` (``trust.py``), or
   once, for a device of the pre-TUF kind, the root carried by the
   repository's ``migration.json`` signed by its old Ed25519 key;
2. ``tuf.ngclient.Updater`` refreshes the metadata (the root chain, then
   timestamp, snapshot and targets: signatures and thresholds, expiry, version
   rollback, mix-and-match, hashes and lengths) through :class:`SourceFetcher`
   (our sources and deadlines, not urllib3), and finds the catalog's
   ``manifest.json`` target; when the active bundle's manifest has that
   target's hash, nothing more is read (a "nothing new" check is 2 small
   requests: the next root version, 404, and ``timestamp.json``);
3. the manifest is downloaded as a TUF target (hash and length checked); the
   device checks the catalog, the format version, that the version is above
   the installed one (``allow_rollback`` lifts that), every path (relative,
   no ``..``, no odd characters) and size, and that the disk has room;
4. stage each file in ``staging/<catalog>-v<version>-<hash>/``: reuse a file the
   device already has with that sha256 (delta), else apply a bsdiff patch (a
   TUF target listed with the manifest) to a file the device has, else
   download ``blobs/<sha256>``, resuming a partial ``.part`` with an HTTP Range
   request; every file is hashed against the manifest before it takes its final name;
5. write the manifest and pass the stage through the activation gate
   (``gate.py``, in a child process: the whole bundle verified again, every
   model loads, one query of each kind answers; a bundle that fails for any
   reason but a damaged local copy is recorded in ``refused.json`` and never
   activated by a plain sync),
   rename it into ``bundles/`` and swap the ``current`` symlink atomically
   (``store.py``), then drop all but the previous 2 bundles.

Every read from the source, metadata included, runs against deadlines
(``SyncOptions.deadline_s`` for the whole sync; per file, a minimum rate after
a grace period), enforced by a watchdog that shuts down a blocked socket, so a
server that trickles or never answers ends the sync with a clear error. Folder
sources read only regular files inside the repository (``files.resolve_inside``).

A kill at any moment leaves ``current`` on the old or the new bundle; a rerun
resumes from the staged files.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import stat
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, Protocol

from vitrina.runtime.bundle import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    BundleError,
    check_manifest_schema,
    release_version,
)
from vitrina.runtime.files import UnsafePathError, fsync_dir, is_disk_full, resolve_inside, sha256_file, write_atomic

from .errors import (
    ActivationRefusedError,
    DiskSpaceError,
    NotFoundError,
    NotProvisionedError,
    RefusedVersionError,
    RollbackError,
    SourceError,
    SyncBusyError,
    SyncError,
    TrustError,
    VerificationError,
)
from .gate import GateError, check_bundle_isolated
from .lock import device_lock
from .repo_format import CATALOG_NAME, CATALOGS_TARGET, MIGRATION, manifest_target
from .store import STAGING, DeviceStore, slot_name

if TYPE_CHECKING:  # tuf is imported when a sync starts
    from tuf.api.metadata import TargetFile
    from tuf.ngclient import Updater

    from .tuf_fetch import SourceFetcher

__all__ = [
    "ActivationRefusedError",
    "DiskSpaceError",
    "NotProvisionedError",
    "RefusedVersionError",
    "RollbackError",
    "SourceError",
    "SyncBusyError",
    "SyncError",
    "SyncOptions",
    "SyncProgress",
    "SyncResult",
    "TrustError",
    "VerificationError",
    "sync",
]

MAX_MANIFEST_BYTES = 8 << 20
MAX_BUNDLE_BYTES = 16 << 30
_CHUNK = 1 << 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9._-]+$")


@dataclass(frozen=True)
class SyncOptions:
    """Attributes:
    catalog: which catalog to sync (default: the active one, or the repository's only one).
    allow_rollback: accept a version lower than the installed one (admin only).
    delta: reuse local files and published patches (off: download every file).
    timeout_s: per-request socket timeout (per read: a server trickling bytes
        never trips it; ``min_rate_bytes_s`` and ``deadline_s`` bound that).
    retries: attempts per file without progress before giving up.
    retry_wait_s: pause before a retry (grows with each attempt).
    max_reconnects: requests per file in all, progress or not (a server
        that drops every connection after a few bytes is given up on).
    reserve_bytes: free disk to leave untouched after the sync.
    keep_previous: installed bundles kept besides the active one.
    deadline_s: every read from the source ends within this many seconds of
        the sync's start (4 h: a 124 MB bundle at an average 8.6 kB/s).
    min_rate_bytes_s, grace_s: each file read from the source (retries
        included) must have received ``(t - grace_s) * min_rate_bytes_s``
        bytes ``t`` seconds after it started, so a file of S bytes ends within
        ``grace_s + S / min_rate_bytes_s``; checked between reads and by a
        watchdog that closes the connection of a read that blocks (headers
        or body trickled, a server that never answers). Defaults 8 kB/s after
        30 s: a 1 MB/s link has 100x the margin.
    Past either limit the sync fails with :class:`SourceError`; staged bytes
    are kept for a rerun to resume.
    """

    catalog: str | None = None
    allow_rollback: bool = False
    delta: bool = True
    timeout_s: float = 15.0
    retries: int = 4
    retry_wait_s: float = 0.3
    max_reconnects: int = 25
    reserve_bytes: int = 16 << 20
    keep_previous: int = 2
    deadline_s: float = 4 * 3600.0
    min_rate_bytes_s: float = 8192.0
    grace_s: float = 30.0


@dataclass(frozen=True)
class SyncProgress:
    """A progress report: bytes fetched of those to fetch, rate in bytes/s, ETA in s (None when unknown)."""

    file: str
    done: int
    total: int
    rate: float
    eta_s: float | None


@dataclass(frozen=True)
class SyncResult:
    """Attributes: catalog, version (now active), previous (version before, 0 for none);
    transferred: bytes read from the repository (files, patches, metadata);
    full_size: bytes of the whole bundle; reused / patched / downloaded: file counts;
    seconds; up_to_date: nothing to do; path: the active bundle;
    requests: HTTP requests (or files opened) on the source, metadata included."""

    catalog: str
    version: int
    previous: int
    transferred: int
    full_size: int
    reused: int
    patched: int
    downloaded: int
    seconds: float
    up_to_date: bool
    path: Path
    requests: int = 0


class Source(Protocol):
    """Where a sync reads a repository from: an HTTP server or a folder (a USB stick)."""

    def read(self, rel: str, max_bytes: int) -> bytes: ...

    def fetch(self, rel: str, dest: Path, size: int, on_bytes: Callable[[int], None]) -> None: ...

    def stream(self, rel: str) -> Iterator[bytes]: ...


@dataclass
class _Counter:
    bytes: int = 0
    requests: int = 0


class _Budget:
    """The time one file read from the source may take (see ``SyncOptions.min_rate_bytes_s``).

    Used as a context manager, with ``watch`` it runs a watchdog thread that
    shuts down the attached socket once the time is up, so a read blocked on
    a trickle or a silent server returns; the reader then calls :meth:`check`.
    """

    def __init__(self, what: str, options: SyncOptions, sync_deadline: float, watch: bool = False):
        self.what = what
        self.options = options
        self.sync_deadline = sync_deadline
        self.started = time.monotonic()
        self.received = 0
        self.expired = False
        self._watch = watch
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._done = threading.Event()

    def __enter__(self) -> _Budget:
        if self._watch:
            threading.Thread(target=self._watchdog, name=f"sync-watchdog {self.what}", daemon=True).start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        self.attach(None)

    def limit(self) -> float:
        """Monotonic time by which this read must have ended (or received more bytes)."""
        o = self.options
        return min(self.started + o.grace_s + self.received / o.min_rate_bytes_s, self.sync_deadline)

    def add(self, n: int) -> None:
        self.received += n
        self.check()

    def check(self) -> None:
        """Raise the deadline's :class:`SourceError` once the time is up."""
        if self.expired or time.monotonic() > self.limit():
            self.expired = True
            raise self.error()

    def error(self) -> SourceError:
        o = self.options
        elapsed = time.monotonic() - self.started
        arrived = f"{self.received} bytes arrived in {elapsed:.1f} s"
        if self.sync_deadline <= self.started + o.grace_s + self.received / o.min_rate_bytes_s:
            why = f"the sync passed its {o.deadline_s:g} s deadline (--deadline); {arrived} for this file"
        else:
            why = (
                f"too slow: {arrived}, under the minimum of {o.min_rate_bytes_s:g} bytes/s "
                f"after a {o.grace_s:g} s grace (--min-rate, --grace)"
            )
        return SourceError(f"{self.what}: {why}; bytes staged so far are kept for a rerun to resume")

    def attach(self, sock: socket.socket | None) -> None:
        """The socket the current request reads from (None: between requests)."""
        with self._lock:
            self._sock = sock
        if sock is not None and self.expired:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            if self._sock is not None:
                try:  # the base class's shutdown: on a TLS socket too, it only wakes the blocked reader
                    socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed

    def _watchdog(self) -> None:
        while not self._done.wait(min(max(self.limit() - time.monotonic(), 0.02), 0.5)):
            if time.monotonic() > self.limit():
                self.expired = True
                self._shutdown()
                return


class _HTTPConnection(http.client.HTTPConnection):
    """Hands its socket to the current :class:`_Budget`'s watchdog once connected."""

    def __init__(self, *args: Any, hook: _SocketHook, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._hook = hook

    def connect(self) -> None:
        super().connect()
        self._hook.attach(self.sock)


class _HTTPSConnection(_HTTPConnection, http.client.HTTPSConnection):
    """As :class:`_HTTPConnection`, over TLS: by the method order, HTTPSConnection.connect
    (connect and wrap in TLS) runs inside ours, so the watchdog gets the TLS socket."""


@dataclass
class _SocketHook:
    budget: _Budget | None = None

    def attach(self, sock: socket.socket) -> None:
        if self.budget is not None:
            self.budget.attach(sock)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, hook: _SocketHook):
        super().__init__()
        self._hook = hook

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_HTTPConnection, hook=self._hook), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, hook: _SocketHook):
        super().__init__()
        self._hook = hook

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        connection = functools.partial(_HTTPSConnection, hook=self._hook)
        return self.do_open(connection, req, context=getattr(self, "_context", None))


class HttpSource:
    """A repository behind HTTP(S): plain GETs, Range requests to resume; every read within its deadline."""

    def __init__(self, base_url: str, options: SyncOptions, counter: _Counter):
        self.base = base_url.rstrip("/")
        self.options = options
        self.counter = counter
        self.deadline = time.monotonic() + options.deadline_s
        self._hook = _SocketHook()
        self._opener = urllib.request.build_opener(_HTTPHandler(self._hook), _HTTPSHandler(self._hook))

    def _url(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def _budget(self, url: str) -> _Budget:
        budget = _Budget(url, self.options, self.deadline, watch=True)
        self._hook.budget = budget
        return budget

    def _open(self, request: str | urllib.request.Request) -> http.client.HTTPResponse:
        self.counter.requests += 1
        return self._opener.open(request, timeout=self.options.timeout_s)

    def stream(self, rel: str) -> Iterator[bytes]:
        """``rel``'s bytes as they arrive; retried while nothing has arrived, within the deadlines.

        Raises :class:`NotFoundError` for HTTP 403/404, :class:`SourceError` otherwise.
        """
        url = self._url(rel)
        with self._budget(url) as budget:
            for attempt in range(self.options.retries + 1):
                budget.check()
                try:
                    resp = self._open(url)
                except urllib.error.HTTPError as exc:
                    self._give_up_on_http(url, exc, attempt)
                except _TRANSIENT as exc:
                    self._give_up_on_transient(url, exc, attempt, budget)
                else:
                    with resp:
                        try:
                            while chunk := resp.read1(_CHUNK):
                                self.counter.bytes += len(chunk)
                                budget.add(len(chunk))
                                yield chunk
                        except _TRANSIENT as exc:
                            budget.check()
                            raise SourceError(f"{url}: {_describe(exc)}") from None
                    if budget.expired:  # the watchdog's shutdown ended the body early: not a short file
                        raise budget.error()
                    return
                budget.attach(None)
                time.sleep(self.options.retry_wait_s * (attempt + 1))

    def _give_up_on_http(self, url: str, exc: urllib.error.HTTPError, attempt: int) -> None:
        """Raise for an HTTP error unless it is worth another attempt (a 5xx before the last one).

        Raises:
            NotFoundError: 403 or 404. SourceError: another 4xx, or a 5xx on the last attempt.
        """
        exc.close()
        if exc.code in (403, 404):
            raise NotFoundError(f"{url}: HTTP {exc.code} {exc.reason}", exc.code) from None
        if exc.code < 500 or attempt == self.options.retries:
            raise SourceError(f"{url}: HTTP {exc.code} {exc.reason}") from None

    def _give_up_on_transient(self, url: str, exc: BaseException, attempt: int, budget: _Budget) -> None:
        """Raise for a dropped or refused connection on the last attempt, or when the watchdog
        ended it (its shutdown reads as a dropped connection); return to try again otherwise."""
        budget.check()
        if attempt == self.options.retries:
            raise SourceError(f"{url}: {_describe(exc)} (after {attempt + 1} attempts)") from None

    def read(self, rel: str, max_bytes: int) -> bytes:
        url = self._url(rel)
        with self._budget(url) as budget:
            for attempt in range(self.options.retries + 1):
                budget.check()
                try:
                    with self._open(url) as resp:
                        data = _read_capped(resp, max_bytes + 1, budget)
                    self.counter.bytes += len(data)
                    if len(data) > max_bytes:
                        raise VerificationError(f"{url} is larger than {max_bytes} bytes: refusing it")
                    return data
                except urllib.error.HTTPError as exc:
                    self._give_up_on_http(url, exc, attempt)
                except _TRANSIENT as exc:
                    self._give_up_on_transient(url, exc, attempt, budget)
                budget.attach(None)
                time.sleep(self.options.retry_wait_s * (attempt + 1))
        raise SourceError(f"{url}: unreachable")  # pragma: no cover - loop always returns or raises

    def fetch(self, rel: str, dest: Path, size: int, on_bytes: Callable[[int], None]) -> None:
        url = self._url(rel)
        with self._budget(url) as budget:
            self._fetch(url, dest, size, on_bytes, budget)

    def _fetch(self, url: str, dest: Path, size: int, on_bytes: Callable[[int], None], budget: _Budget) -> None:
        failures = best = requests = 0
        while True:
            budget.check()
            have = dest.stat().st_size if dest.exists() else 0
            if have > size:
                dest.unlink()
                have = 0
            if have == size:
                return
            requests += 1
            if requests > self.options.max_reconnects:
                raise SourceError(
                    f"{url}: gave up after {self.options.max_reconnects} requests ({have} of {size} bytes; the connection keeps dropping)"
                )
            request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
            before = have
            try:
                with self._open(request) as resp:
                    if have and resp.status == 206:
                        start = _range_start(resp.headers.get("Content-Range", ""))
                        if start != have:
                            raise SourceError(f"{url}: asked for bytes from {have}, server sent from {start}")
                        mode = "ab"
                    else:
                        have, mode = 0, "wb"
                    have = _copy_capped(resp, dest, mode, have, size, url, on_bytes, self.counter, budget)
            except urllib.error.HTTPError as exc:
                if exc.code == 416:
                    dest.unlink(missing_ok=True)
                elif exc.code < 500:
                    raise SourceError(f"{url}: HTTP {exc.code} {exc.reason}") from None
                last: BaseException = exc
            except _TRANSIENT as exc:
                last = exc
            else:
                if have == size:
                    return
                last = ConnectionError(f"connection closed after {have} of {size} bytes")
            budget.attach(None)
            budget.check()  # a watchdog's shutdown reads as a dropped connection
            have = dest.stat().st_size if dest.exists() else 0
            failures = 0 if have > max(before, best) else failures + 1  # only new bytes count as progress
            best = max(best, have)
            if failures > self.options.retries:
                raise SourceError(f"{url}: {_describe(last)} (no progress after {failures} attempts)")
            time.sleep(self.options.retry_wait_s * max(failures, 1))


class DirSource:
    """A repository in a folder (USB stick, network share): regular files only, no links, FIFOs or devices."""

    def __init__(self, root: Path, counter: _Counter, options: SyncOptions = SyncOptions()):
        self.root = root
        self.counter = counter
        self.options = options
        self.deadline = time.monotonic() + options.deadline_s

    def _open(self, rel: str) -> BinaryIO:
        """``root/rel`` opened for reading, after :func:`resolve_inside` and again on the open file."""
        try:
            path = resolve_inside(self.root, rel)
        except FileNotFoundError:
            raise NotFoundError(f"{self.root / rel} is missing from the repository") from None
        except UnsafePathError as exc:
            raise SourceError(f"refusing to read {rel} from the repository folder {self.root}: {exc}") from None
        try:  # O_NONBLOCK: a FIFO swapped in since the check must not block the open
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
        f = os.fdopen(fd, "rb")
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            f.close()
            raise SourceError(f"refusing to read {path}: it is no longer a regular file")
        os.set_blocking(fd, True)
        self.counter.requests += 1
        return f

    def stream(self, rel: str) -> Iterator[bytes]:
        """``rel``'s bytes in chunks, within the deadlines; :class:`NotFoundError` when it is missing."""
        path = self.root / rel
        with _Budget(str(path), self.options, self.deadline) as budget, self._open(rel) as f:
            try:
                while chunk := f.read(_CHUNK):
                    self.counter.bytes += len(chunk)
                    budget.add(len(chunk))
                    yield chunk
            except OSError as exc:
                raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None

    def read(self, rel: str, max_bytes: int) -> bytes:
        path = self.root / rel
        with _Budget(str(path), self.options, self.deadline) as budget, self._open(rel) as f:
            try:
                data = _read_capped(f, max_bytes + 1, budget)
            except OSError as exc:
                raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from None
        self.counter.bytes += len(data)
        if len(data) > max_bytes:
            raise VerificationError(f"{path} is larger than {max_bytes} bytes: refusing it")
        return data

    def fetch(self, rel: str, dest: Path, size: int, on_bytes: Callable[[int], None]) -> None:
        path = self.root / rel
        have = dest.stat().st_size if dest.exists() else 0
        if have > size:
            dest.unlink()
            have = 0
        with _Budget(str(path), self.options, self.deadline) as budget, self._open(rel) as src:
            src.seek(have)
            mode = "ab" if have else "wb"
            have = _copy_capped(src, dest, mode, have, size, str(path), on_bytes, self.counter, budget)
        if have != size:
            raise VerificationError(f"{path} has {have} bytes, the manifest says {size} (truncated)")


_TRANSIENT = (urllib.error.URLError, TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException, OSError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, (TimeoutError, socket.timeout)) or "timed out" in str(exc):
        return "timed out (server stalled)"
    if isinstance(exc, urllib.error.URLError):
        return f"cannot connect ({exc.reason})"
    if isinstance(exc, (ConnectionResetError, http.client.IncompleteRead)):
        return "connection reset mid-file"
    return f"{type(exc).__name__}: {exc}"


def _range_start(content_range: str) -> int:
    m = re.match(r"bytes (\d+)-", content_range)
    return int(m.group(1)) if m else -1


def _read_capped(src: Any, limit: int, budget: _Budget) -> bytes:
    """Up to ``limit`` bytes of ``src``, read as they arrive (``read1``) so the budget is checked between reads."""
    read = getattr(src, "read1", src.read)
    parts: list[bytes] = []
    got = 0
    while got < limit:
        chunk = read(min(_CHUNK, limit - got))
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
        budget.add(len(chunk))
    if budget.expired:  # the watchdog's shutdown ended the headers or the body early: not a short file
        raise budget.error()
    return b"".join(parts)


def _copy_capped(
    src: Any,
    dest: Path,
    mode: str,
    have: int,
    size: int,
    what: str,
    on_bytes: Callable[[int], None],
    counter: _Counter,
    budget: _Budget | None = None,
) -> int:
    """Append ``src`` to ``dest`` without going past ``size`` bytes; fsync; return the new length.

    Reads what has arrived (``read1``), so ``budget`` is checked after every
    read even when the source trickles; what was written is kept (and
    fsynced) when the budget runs out, for a rerun to resume.
    """
    read = getattr(src, "read1", src.read)
    try:
        with open(dest, mode) as f:
            try:
                while have < size:
                    chunk = read(min(_CHUNK, size - have + 1))
                    if not chunk:
                        break
                    if have + len(chunk) > size:
                        raise VerificationError(f"{what} is longer than the {size} bytes the manifest says")
                    f.write(chunk)
                    have += len(chunk)
                    counter.bytes += len(chunk)
                    on_bytes(len(chunk))
                    if budget is not None:
                        budget.add(len(chunk))
            finally:
                f.flush()
                os.fsync(f.fileno())
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskSpaceError(
                f"disk full while writing {dest.name} ({exc.strerror}); the active bundle is unchanged, free space and rerun to resume"
            ) from None
        raise
    return have


def open_source(text: str, options: SyncOptions, counter: _Counter) -> Source:
    """An HTTP source for ``http(s)://`` URLs, else a folder source; bytes read are counted in ``counter``.

    The sync's deadline (``options.deadline_s``) starts now. Raises ``ValueError``
    for time limits that are not positive.
    """
    for label, value in (
        ("deadline_s", options.deadline_s),
        ("min_rate_bytes_s", options.min_rate_bytes_s),
        ("timeout_s", options.timeout_s),
    ):
        if not value > 0:
            raise ValueError(f"SyncOptions.{label} must be > 0, got {value!r}")
    if not options.grace_s >= 0:
        raise ValueError(f"SyncOptions.grace_s must be >= 0, got {options.grace_s!r}")
    if re.match(r"^https?://", text):
        return HttpSource(text, options, counter)
    path = Path(text)
    if not path.is_dir():
        raise SourceError(f"sync source {text!r} is neither an http(s):// URL nor a folder")
    return DirSource(path, counter, options)


def check_manifest_files(manifest: dict) -> dict[str, dict]:
    """The manifest's file list, after checking every path, hash and size."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise VerificationError("manifest lists no files")
    total = 0
    for rel, entry in files.items():
        parts = PurePosixPath(rel).parts
        if (
            not isinstance(rel, str)
            or rel.startswith("/")
            or "\\" in rel
            or not parts
            or any(p in ("", ".", "..") or not _SAFE_PART.match(p) for p in parts)
            or rel == MANIFEST
        ):
            raise VerificationError(
                f"manifest lists an unsafe path {rel!r}: paths must be relative, inside the bundle, without '..'"
            )
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("size"), int)
            or entry["size"] < 0
            or not _SHA256.match(str(entry.get("sha256", "")))
        ):
            raise VerificationError(f"manifest entry for {rel!r} needs a sha256 (64 hex digits) and a size in bytes")
        total += entry["size"]
    if total > MAX_BUNDLE_BYTES:
        raise VerificationError(f"manifest lists {total} bytes, more than the {MAX_BUNDLE_BYTES} a bundle may have")
    return files


def _local_files(store: DeviceStore) -> dict[str, Path]:
    """sha256 → a path of that content in an installed bundle (per its manifest)."""
    out: dict[str, Path] = {}
    for installed in store.installed():
        try:
            manifest = json.loads((installed.path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        for rel, entry in manifest.get("files", {}).items():
            path = installed.path / rel
            if path.is_file() and path.stat().st_size == entry.get("size"):
                out.setdefault(entry["sha256"], path)
    return out


@dataclass
class _Progress:
    total: int
    report: Callable[[SyncProgress], None] | None
    done: int = 0
    started: float = field(default_factory=time.monotonic)
    last: float = 0.0
    file: str = ""

    def add(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.report and (now - self.last >= 0.1 or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.started, 1e-6)
            eta = (self.total - self.done) / rate if rate > 0 else None
            self.report(SyncProgress(self.file, self.done, self.total, rate, eta))


def sync(
    source: str,
    root: str | Path,
    trusted_root: bytes | None = None,
    options: SyncOptions = SyncOptions(),
    progress: Callable[[SyncProgress], None] | None = None,
    *,
    legacy_keys: Sequence[bytes] = (),
) -> SyncResult:
    """Sync the device store at ``root`` from ``source`` (URL or folder). See the module docstring.

    Args:
        trusted_root: TUF root.json bytes to provision when the device has no
            trusted root yet (ignored once it has one: the provisioned root,
            and the chain of roots it signed, is what the device trusts).
        legacy_keys: pre-TUF Ed25519 public keys (32 raw bytes each): used only
            when the device has no trusted root, to accept the repository's
            ``migration.json`` once.

    Holds the device root's lock throughout: a second sync on the same root
    fails at once with :class:`SyncBusyError`.
    """
    with device_lock(root, "sync", busy=SyncBusyError):
        return _sync(source, root, trusted_root, options, progress, legacy_keys)


@dataclass(frozen=True)
class _Release:
    """What the targets role signs about a catalog's manifest: its version and the patches to it."""

    version: int
    patches: dict[str, dict[str, str]]


def _sync(
    source: str,
    root: str | Path,
    trusted_root: bytes | None,
    options: SyncOptions,
    progress: Callable[[SyncProgress], None] | None,
    legacy_keys: Sequence[bytes],
) -> SyncResult:
    t0 = time.monotonic()
    store = DeviceStore(root)
    store.ensure()
    counter = _Counter()
    src = open_source(source, options, counter)
    anchor = _trust_anchor(store, src, trusted_root, legacy_keys)
    updater, fetcher = _updater(store, src, anchor)
    current = store.current_manifest()
    with _trust_errors(fetcher):
        updater.refresh()
        name = _pick_catalog(updater, fetcher, options.catalog, current)
        info = updater.get_targetinfo(manifest_target(name))
    if info is None:
        raise SourceError(f"the repository's signed targets list no catalog {name!r}")
    release = _release_of(info, name)
    version = release.version
    previous = release_version(current) if current and current.get("catalog", {}).get("name") == name else 0
    if version == previous and current is not None:
        if updater.find_cached_target(info, str(store.current() / MANIFEST)) is None:
            raise VerificationError(
                f"{name} v{version} on the server differs from the installed v{version}: refusing a re-signed version number"
            )
        return SyncResult(
            catalog=name,
            version=version,
            previous=previous,
            transferred=counter.bytes,
            full_size=0,
            reused=0,
            patched=0,
            downloaded=0,
            seconds=round(time.monotonic() - t0, 3),
            up_to_date=True,
            path=store.current() or Path(),
            requests=counter.requests,
        )
    if version < previous and not options.allow_rollback:
        raise RollbackError(
            f"the repository offers {name} v{version} but the device has v{previous}: refusing to go back "
            "(a replayed older bundle?); an admin may pass --allow-rollback"
        )
    refusal = store.refusal(name, version)
    if refusal is not None:
        raise RefusedVersionError(
            f"{name} v{version} is held back on this device ({refusal.reason}, {refusal.when}); "
            f"a newer release, or `vitrina bundles activate {version}` by staff, lifts this"
        )
    if info.length > MAX_MANIFEST_BYTES:
        raise VerificationError(f"the manifest of {name} v{version} is {info.length} bytes, over {MAX_MANIFEST_BYTES}")
    manifest_bytes = _download_target(updater, fetcher, info, store.root / STAGING / f".{name}-manifest")
    manifest = _parse_json(manifest_bytes, MANIFEST)
    _check_release(manifest, name, version)
    files = check_manifest_files(manifest)
    try:
        check_manifest_schema(manifest, where=f"the signed manifest of {name} v{version}")
    except BundleError as exc:
        _refuse(store, name, version, f"{exc}")
    digest = hashlib.sha256(manifest_bytes).hexdigest()[:12]
    slot = store.slot(name, version)
    stage = store.root / STAGING / f"{slot_name(name, version)}-{digest}"
    for stale in (store.root / STAGING).iterdir():  # partial syncs of other versions: never resumed now
        if stale != stage and re.fullmatch(rf"{re.escape(name)}-v\d+-[0-9a-f]{{12}}", stale.name):
            shutil.rmtree(stale, ignore_errors=True)
    patches = _Patches(updater, fetcher, release.patches if options.delta else {})
    stats = _stage_files(src, store, stage, files, patches, options, progress)
    _write_file(stage / MANIFEST, manifest_bytes)
    try:
        check_bundle_isolated(stage)  # the whole stage verified again (every file hashed), then smoke-tested
    except GateError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        if exc.integrity:  # the staged copy, not the release: a rerun fetches it again
            raise VerificationError(f"staged bundle does not verify: {exc}") from None
        _refuse(store, name, version, f"{exc}")
    fsync_dir(stage)
    _install(store, stage, slot, manifest_bytes)
    store.activate(slot, gate=False)  # passed the gate as the stage, just above
    store.gc(options.keep_previous)
    full = sum(e["size"] for e in files.values())
    reused, patched, downloaded = stats
    return SyncResult(
        catalog=name,
        version=version,
        previous=previous,
        transferred=counter.bytes,
        full_size=full,
        reused=reused,
        patched=patched,
        downloaded=downloaded,
        seconds=round(time.monotonic() - t0, 3),
        up_to_date=False,
        path=slot,
        requests=counter.requests,
    )


def _trust_anchor(store: DeviceStore, src: Source, trusted_root: bytes | None, legacy_keys: Sequence[bytes]) -> bytes:
    """The device's trusted root.json: provisioned, given now, or (once) taken from a migration document."""
    from .trust import load_anchor, missing_anchor, provision_root, verify_migration

    anchor = load_anchor(store.root)
    if anchor is not None:
        return anchor
    if trusted_root is None and legacy_keys:
        try:
            doc = src.read(MIGRATION, 256 << 10)
        except NotFoundError:
            raise NotProvisionedError(
                "this device trusts only a pre-TUF key and the repository has no migration.json: "
                "headquarters runs `vitrina keys migrate`, or provision the device with `vitrina trust provision root.json`"
            ) from None
        trusted_root = verify_migration(doc, legacy_keys)
    if trusted_root is None:
        raise missing_anchor(store.root)
    provision_root(store.root, trusted_root)
    return trusted_root


def _updater(store: DeviceStore, src: Source, anchor: bytes) -> tuple[Updater, SourceFetcher]:
    from tuf.api.exceptions import RepositoryError
    from tuf.ngclient import Updater

    from .trust import METADATA_CACHE
    from .tuf_fetch import BASE, SourceFetcher, updater_config

    cache = store.root / METADATA_CACHE
    cache.mkdir(parents=True, exist_ok=True)
    for leftover in cache.glob("tmp*"):  # a temporary file of a sync killed mid-write
        leftover.unlink(missing_ok=True)
    fetcher = SourceFetcher(src)
    try:
        updater = Updater(
            str(cache),
            f"{BASE}metadata/",
            target_base_url=f"{BASE}targets/",
            fetcher=fetcher,
            config=updater_config(),
            bootstrap=anchor,
        )
    except RepositoryError as exc:
        raise VerificationError(
            f"the device's trusted root ({store.root}/trusted_root.json) is unusable: {exc}"
        ) from None
    return updater, fetcher


@contextmanager
def _trust_errors(fetcher: SourceFetcher) -> Iterator[None]:
    """TUF's exceptions as our :class:`TrustError` / :class:`SourceError`, naming the role and the check."""
    from tuf.api.exceptions import DownloadError, RepositoryError

    from .trust import explain

    try:
        yield
    except (RepositoryError, DownloadError) as exc:
        raise explain(exc, fetcher.last) from None


def _pick_catalog(updater: Updater, fetcher: SourceFetcher, wanted: str | None, current: dict | None) -> str:
    name = wanted or (current or {}).get("catalog", {}).get("name")
    if name is not None:
        if not CATALOG_NAME.match(str(name)):
            raise SyncError(f"catalog name {name!r} cannot name a folder (letters, digits, '.', '_' and '-')")
        return str(name)
    info = updater.get_targetinfo(CATALOGS_TARGET)
    if info is None:
        raise SourceError("the repository's signed targets list no catalogs: nothing was published yet")
    names = _parse_json(_download_target(updater, fetcher, info, None), CATALOGS_TARGET)
    names = names.get("catalogs") if isinstance(names, dict) else None
    if not isinstance(names, list) or not all(isinstance(n, str) and CATALOG_NAME.match(n) for n in names):
        raise VerificationError(f"{CATALOGS_TARGET} does not list catalog names")
    if len(names) != 1:
        raise SyncError(
            f"the repository has {len(names)} catalogs ({', '.join(sorted(names)) or 'none'}): choose one with --catalog"
        )
    return names[0]


def _release_of(info: TargetFile, name: str) -> _Release:
    """The version and patch list the targets role signed for ``name``'s manifest."""
    custom = info.custom
    version = custom.get("version") if isinstance(custom, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version < (1 << 53):
        raise VerificationError(f"the signed target {info.path} carries no release version (custom.version)")
    raw = custom.get("patches") if isinstance(custom, dict) else None
    patches: dict[str, dict[str, str]] = {}
    for rel, p in (raw or {}).items() if isinstance(raw, dict) else ():
        if (
            isinstance(p, dict)
            and _SHA256.match(str(p.get("from", "")))
            and _SHA256.match(str(p.get("to", "")))
            and str(p.get("target", "")).startswith(f"{name}/patches/")
        ):
            patches[rel] = {"from": p["from"], "to": p["to"], "target": p["target"]}
    return _Release(version, patches)


def _download_target(updater: Updater, fetcher: SourceFetcher, info: TargetFile, path: Path | None) -> bytes:
    """A target's bytes, its length and hashes checked by the ``Updater`` (``path``: where to put it meanwhile)."""
    import tempfile

    from tuf.api.exceptions import DownloadError, RepositoryError

    from .trust import explain

    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent if path else None, prefix=".target-") as tmp:
        out = Path(tmp) / "target"
        try:
            updater.download_target(info, str(out))
        except (RepositoryError, DownloadError) as exc:
            raise explain(exc, fetcher.last) from None
        return out.read_bytes()


class _Patches:
    """The bsdiff patches signed with a manifest; each one fetched as a TUF target (length and hash checked)."""

    def __init__(self, updater: Updater, fetcher: SourceFetcher, entries: dict[str, dict[str, str]]):
        self.updater = updater
        self.fetcher = fetcher
        self.entries = entries
        self._infos: dict[str, TargetFile | None] = {}

    def info(self, rel: str) -> TargetFile | None:
        entry = self.entries.get(rel)
        if entry is None:
            return None
        if rel not in self._infos:
            with _trust_errors(self.fetcher):
                self._infos[rel] = self.updater.get_targetinfo(entry["target"])
        return self._infos[rel]

    def fetch(self, rel: str, dest: Path) -> None:
        info = self.info(rel)
        if info is None:
            raise VerificationError(f"patch for {rel} is not a signed target")
        with _trust_errors(self.fetcher):
            self.updater.download_target(info, str(dest))


def _refuse(store: DeviceStore, name: str, version: int, reason: str) -> NoReturn:
    """Record that ``name`` ``version`` failed the activation gate and raise :class:`ActivationRefusedError`."""
    store.refuse(name, version, by="gate", reason=f"failed the activation gate: {reason}")
    raise ActivationRefusedError(
        f"{name} v{version} is signed but broken and was not activated; the active bundle is unchanged and "
        f"this version will not be taken again: {reason}"
    )


def _parse_json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise VerificationError(f"{what} nests too deeply to be a repository file") from None


def _stage_files(
    src: Source,
    store: DeviceStore,
    stage: Path,
    files: dict[str, dict],
    patches: _Patches,
    options: SyncOptions,
    progress: Callable[[SyncProgress], None] | None,
) -> tuple[int, int, int]:
    """Put every manifest file into ``stage``, verified. Returns (reused, patched, downloaded)."""
    stage.mkdir(parents=True, exist_ok=True)
    local = _local_files(store) if options.delta else {}
    todo = {rel: e for rel, e in files.items() if not (stage / rel).is_file()}
    plan: dict[str, tuple[str, int]] = {}
    for rel, e in todo.items():
        p = patches.entries.get(rel)
        info = patches.info(rel) if p and p["to"] == e["sha256"] and p["from"] in local else None
        if e["sha256"] in local:
            plan[rel] = ("reuse", 0)
        elif info is not None and 0 < info.length <= e["size"]:
            plan[rel] = ("patch", info.length)
        else:
            plan[rel] = ("download", e["size"])
    _check_space(store, stage, todo, plan, options)
    bar = _Progress(sum(n for _, n in plan.values()), progress)
    counts = {"reuse": 0, "patch": 0, "download": 0}
    for rel, (how, _) in plan.items():
        e = todo[rel]
        final = stage / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        part = final.with_name(final.name + ".part")
        bar.file = rel
        if how == "reuse":
            _copy_local(local[e["sha256"]], part)
        elif how == "patch":
            _apply_patch(patches, rel, local[patches.entries[rel]["from"]], part, e)
            bar.add(plan[rel][1])
        else:
            src.fetch(f"blobs/{e['sha256']}", part, e["size"], bar.add)
        if part.stat().st_size != e["size"] or sha256_file(part) != e["sha256"]:
            part.unlink()
            raise VerificationError(
                f"{rel}: the received file does not match the signed manifest's sha256 (tampered or truncated on the server)"
            )
        os.replace(part, final)
        counts[how] += 1
    return counts["reuse"], counts["patch"], counts["download"]


def _check_release(manifest: Any, name: str, version: int) -> None:
    """The downloaded manifest is a vitrina manifest of catalog ``name`` at the signed ``version``."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise VerificationError("the signed manifest is not a vitrina bundle manifest")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise VerificationError(
            f"bundle format {manifest.get('format_version')!r} is newer than this device reads ({FORMAT_VERSION}): update vitrina first"
        )
    catalog = manifest.get("catalog")
    if not isinstance(catalog, dict) or catalog.get("name") != name:
        got = catalog.get("name") if isinstance(catalog, dict) else None
        raise VerificationError(f"the manifest is for catalog {got!r}, the signed target says {name!r}")
    if release_version(manifest) != version:
        raise VerificationError(
            f"the manifest says release v{release_version(manifest)}, the signed targets say v{version}"
        )


def _check_space(
    store: DeviceStore, stage: Path, todo: dict[str, dict], plan: dict[str, tuple[str, int]], options: SyncOptions
) -> None:
    need = 0
    for rel, e in todo.items():
        part = (stage / rel).with_name(Path(rel).name + ".part")
        have = part.stat().st_size if part.exists() and plan[rel][0] == "download" else 0
        need += e["size"] - have + (plan[rel][1] if plan[rel][0] == "patch" else 0)
    free = shutil.disk_usage(store.root).free - options.reserve_bytes
    if need > free:
        raise DiskSpaceError(
            f"not enough disk: the sync needs {need / 1e6:.1f} MB, {max(free, 0) / 1e6:.1f} MB is free after the "
            f"{options.reserve_bytes / 1e6:.0f} MB reserve; run `vitrina bundles gc` or free space, then rerun"
        )


def _copy_local(src: Path, part: Path) -> None:
    try:
        os.link(src, part)  # same content, same file system: no copy at all
    except OSError:
        shutil.copyfile(src, part)


def _apply_patch(patches: _Patches, rel: str, old: Path, part: Path, entry: dict) -> None:
    """Fetch ``rel``'s signed patch (a TUF target: length and hash checked) and apply it to ``old``."""
    import bsdiff4

    patch_part = part.with_name(part.name + ".patch")
    target = patches.entries[rel]["target"]
    patches.fetch(rel, patch_part)
    try:
        data = bsdiff4.patch(old.read_bytes(), patch_part.read_bytes())
    except Exception as exc:  # a malformed patch must not crash the sync
        raise VerificationError(f"patch {target} cannot be applied: {exc}") from None
    if len(data) != entry["size"]:
        raise VerificationError(f"patch {target} produced {len(data)} bytes, the manifest says {entry['size']}")
    _write_file(part, data)
    patch_part.unlink()


def _write_file(path: Path, data: bytes) -> None:
    try:
        write_atomic(path, data)
    except OSError as exc:
        if is_disk_full(exc):
            raise DiskSpaceError(
                f"disk full while writing {path.name} ({exc.strerror}); the active bundle is unchanged"
            ) from None
        raise


def _install(store: DeviceStore, stage: Path, slot: Path, manifest_bytes: bytes) -> None:
    """Move the verified stage into bundles/ (a leftover slot from a killed run is replaced)."""
    if slot.exists():
        if slot.resolve() == store.current():
            if (slot / MANIFEST).read_bytes() != manifest_bytes:
                raise VerificationError(f"{slot.name} is active and differs from the synced manifest")
            shutil.rmtree(stage)
            return
        shutil.rmtree(slot)
    os.replace(stage, slot)
    fsync_dir(slot.parent)
