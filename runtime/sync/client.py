"""``vitrina sync``: fetch a signed bundle from a repository (HTTP or folder) and activate it.

Order of work, each step leaving the active bundle untouched until the last:

0. take the device root's lock (``lock.py``): a second sync, or a ``bundles``
   command, at the same time fails at once with "another sync is running";
1. read ``index.json`` (schema-checked), the catalog's ``manifest.json`` and ``signature.json``
   (size-capped); verify the signature with the device's trusted keys (plus
   keys endorsed by them), the expiry, the catalog name, the format version
   and that the version is above the installed one (``allow_rollback`` lifts that);
2. check every manifest path (relative, no ``..``, no odd characters) and size,
   and that the disk has room for what must be fetched;
3. stage each file in ``staging/<catalog>-v<version>-<hash>/``: reuse a file the
   device already has with that sha256 (delta), else apply a published bsdiff
   patch to a file the device has, else download it, resuming a partial
   ``.part`` with an HTTP Range request; every file is hashed before it takes
   its final name;
4. write the manifest and pass the stage through the activation gate
   (``gate.py``, in a child process: the whole bundle verified again, every
   model loads, one query of each kind answers; a bundle that fails for any
   reason but a damaged local copy is recorded in ``refused.json`` and never
   activated by a plain sync),
   rename it into ``bundles/`` and swap the ``current`` symlink atomically
   (``store.py``), then drop all but the previous 2 bundles.

Every read from the source runs against deadlines (``SyncOptions.deadline_s``
for the whole sync; per file, a minimum rate after a grace period), enforced
by a watchdog that shuts down a blocked socket, so a server that trickles or
never answers ends the sync with a clear error. Folder sources read only
regular files inside the repository (``files.resolve_inside``).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Annotated, Any, BinaryIO, NoReturn, Protocol

import msgspec

from vitrina.runtime.bundle import (
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    BundleError,
    check_manifest_schema,
    release_version,
)
from vitrina.runtime.files import UnsafePathError, fsync_dir, is_disk_full, resolve_inside, sha256_file, write_atomic
from vitrina.runtime.timeutil import utc_now

from .gate import GateError, check_bundle_isolated
from .lock import BusyError, device_lock
from .repo_format import INDEX, PATCHES, REPO_FORMAT, REPO_FORMAT_VERSION
from .store import STAGING, DeviceStore, slot_name
from .trust import SIGNATURE_FILE, PublicKey, SignatureError, accept_endorsements, parse_iso, verify_manifest

MAX_INDEX_BYTES = 1 << 20
MAX_MANIFEST_BYTES = 8 << 20
MAX_BUNDLE_BYTES = 16 << 30
KEYS_FILE = "keys.json"
_CHUNK = 1 << 16
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SAFE_PART = re.compile(r"^[A-Za-z0-9._-]+$")


class SyncError(Exception):
    """Sync failed; the active bundle is unchanged. The message says what and why."""


class SourceError(SyncError):
    """The repository could not be read (HTTP error, timeout, reset, missing file)."""


class VerificationError(SyncError):
    """Something does not match what the signed manifest promises, or the manifest itself is unacceptable."""


class RollbackError(VerificationError):
    """The repository offers a version not newer than the installed one."""


class ActivationRefusedError(VerificationError):
    """The signed bundle failed the activation gate (it cannot search); it is recorded and never activated by sync."""


class RefusedVersionError(VerificationError):
    """The offered version failed the gate earlier or staff rolled back from it: sync holds it back."""


class DiskSpaceError(SyncError):
    """Not enough free disk for the files to fetch."""


class SyncBusyError(SyncError, BusyError):
    """Another sync (or ``vitrina bundles`` command) holds the device root's lock."""


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
    seconds; up_to_date: nothing to do; path: the active bundle."""

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


class Source(Protocol):
    """Where a sync reads a repository from: an HTTP server or a folder (a USB stick)."""

    def read(self, rel: str, max_bytes: int) -> bytes: ...

    def fetch(self, rel: str, dest: Path, size: int, on_bytes: Callable[[int], None]) -> None: ...


@dataclass
class _Counter:
    bytes: int = 0


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
        return self._opener.open(request, timeout=self.options.timeout_s)

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
                    if exc.code < 500 or attempt == self.options.retries:
                        raise SourceError(f"{url}: HTTP {exc.code} {exc.reason}") from None
                except _TRANSIENT as exc:
                    budget.check()  # a watchdog's shutdown reads as a dropped connection
                    if attempt == self.options.retries:
                        raise SourceError(f"{url}: {_describe(exc)} (after {attempt + 1} attempts)") from None
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
            raise SourceError(f"{self.root / rel} is missing from the repository") from None
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
        return f

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


_CATALOG_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")
_INDEX_PATH = re.compile(r"^catalogs/[A-Za-z0-9._-]+/\d+$")


class IndexEntry(msgspec.Struct, frozen=True):
    """One catalog in ``index.json``: its latest version and the folder holding it."""

    version: Annotated[int, msgspec.Meta(ge=1, le=(1 << 53))]
    path: str


class RepoIndex(msgspec.Struct, frozen=True):
    """``index.json`` after :func:`parse_index` (see ``repo_format``); unknown fields are ignored."""

    format: str
    catalogs: dict[str, IndexEntry]
    format_version: int = REPO_FORMAT_VERSION
    keys: list[dict[str, Any]] = []


class _IndexDoc(msgspec.Struct):
    format: str
    catalogs: dict[str, Any]
    format_version: int = REPO_FORMAT_VERSION
    keys: list[dict[str, Any]] = []


def parse_index(data: bytes, where: str) -> RepoIndex:
    """Check ``index.json`` against its schema; any departure is a :class:`VerificationError` naming the field."""
    try:
        doc = msgspec.json.decode(data, type=_IndexDoc, strict=True)
    except msgspec.ValidationError as exc:
        raise VerificationError(f"{where} is not a valid {REPO_FORMAT} index: {exc}") from None
    except msgspec.DecodeError as exc:
        raise VerificationError(f"{where} is not valid JSON: {exc}") from None
    except RecursionError:
        raise VerificationError(f"{where} is not a valid {REPO_FORMAT} index: nested too deeply") from None
    if doc.format != REPO_FORMAT:
        raise VerificationError(f"{where} is not a {REPO_FORMAT} index (format {doc.format!r})")
    if doc.format_version > REPO_FORMAT_VERSION:
        raise VerificationError(
            f"{where} has repository format {doc.format_version}, newer than this device reads "
            f"({REPO_FORMAT_VERSION}): update vitrina first"
        )
    catalogs: dict[str, IndexEntry] = {}
    for name, raw in doc.catalogs.items():
        field_name = f"$.catalogs.{name}" if _CATALOG_NAME.match(name) else f"$.catalogs[{name!r}]"
        if not _CATALOG_NAME.match(name):
            raise VerificationError(
                f"{where}: catalog name {name!r} at `{field_name}` cannot name a folder "
                "(letters, digits, '.', '_' and '-', not starting with '.', at most 128)"
            )
        try:
            entry = msgspec.convert(raw, type=IndexEntry, strict=True)
        except msgspec.ValidationError as exc:
            message = str(exc).replace("`$", f"`{field_name}")
            if "- at `" not in message:
                message += f" - at `{field_name}`"
            raise VerificationError(f"{where} is not a valid {REPO_FORMAT} index: {message}") from None
        if not _INDEX_PATH.match(entry.path):
            raise VerificationError(
                f"{where}: index entry for {name} has an unsafe path {entry.path!r} at `{field_name}.path` "
                "(expected catalogs/<name>/<version>)"
            )
        catalogs[name] = entry
    return RepoIndex(format=doc.format, catalogs=catalogs, format_version=doc.format_version, keys=doc.keys)


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
            or rel in (MANIFEST, SIGNATURE_FILE)
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


def load_device_keys(root: Path) -> list[PublicKey]:
    """Keys the device accepted earlier through endorsements by a configured key (``<root>/keys.json``)."""
    try:
        return [PublicKey.from_hex(k) for k in json.loads((root / KEYS_FILE).read_text())["keys"]]
    except (OSError, ValueError, KeyError, TypeError, SignatureError):
        return []


def _save_device_keys(root: Path, keys: list[PublicKey]) -> None:
    write_atomic(root / KEYS_FILE, json.dumps({"keys": sorted(k.raw.hex() for k in keys)}).encode())


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
    trusted: list[PublicKey],
    options: SyncOptions = SyncOptions(),
    progress: Callable[[SyncProgress], None] | None = None,
) -> SyncResult:
    """Sync the device store at ``root`` from ``source`` (URL or folder). See the module docstring.

    Holds the device root's lock throughout: a second sync on the same root
    fails at once with :class:`SyncBusyError`.
    """
    with device_lock(root, "sync", busy=SyncBusyError):
        return _sync(source, root, trusted, options, progress)


def _sync(
    source: str,
    root: str | Path,
    trusted: list[PublicKey],
    options: SyncOptions,
    progress: Callable[[SyncProgress], None] | None,
) -> SyncResult:
    t0 = time.monotonic()
    store = DeviceStore(root)
    store.ensure()
    counter = _Counter()
    src = open_source(source, options, counter)
    index = parse_index(src.read(INDEX, MAX_INDEX_BYTES), f"{source}/{INDEX}")
    current = store.current_manifest()
    name = _pick_catalog(index.catalogs, options.catalog, current)
    base = index.catalogs[name].path
    manifest_bytes = src.read(f"{base}/{MANIFEST}", MAX_MANIFEST_BYTES)
    signature_bytes = src.read(f"{base}/{SIGNATURE_FILE}", 64 << 10)
    keys = accept_endorsements(list(trusted) + load_device_keys(store.root), index.keys)
    try:
        verify_manifest(manifest_bytes, _parse_json(signature_bytes, SIGNATURE_FILE), keys)
    except SignatureError as exc:
        raise VerificationError(str(exc)) from None
    manifest = _parse_json(manifest_bytes, MANIFEST)
    version = _check_release(manifest, name)
    previous = release_version(current) if current and current.get("catalog", {}).get("name") == name else 0
    if version == previous and current is not None:
        if json.dumps(current.get("files"), sort_keys=True) != json.dumps(manifest.get("files"), sort_keys=True):
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
        )
    if version < previous and not options.allow_rollback:
        raise RollbackError(
            f"the repository offers {name} v{version} but the device has v{previous}: refusing to go back "
            "(a replayed older bundle?); an admin may pass --allow-rollback"
        )
    files = check_manifest_files(manifest)
    refusal = store.refusal(name, version)
    if refusal is not None:
        raise RefusedVersionError(
            f"{name} v{version} is held back on this device ({refusal.reason}, {refusal.when}); "
            f"a newer release, or `vitrina bundles activate {version}` by staff, lifts this"
        )
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
    patches = _read_patches(src, base) if options.delta else {}
    stats = _stage_files(src, store, stage, files, patches, options, progress)
    _write_file(stage / MANIFEST, manifest_bytes)
    _write_file(stage / SIGNATURE_FILE, signature_bytes)
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
    configured = {k.key_id for k in trusted}
    _save_device_keys(store.root, [k for k in keys if k.key_id not in configured])  # only keys learnt by endorsement
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
    )


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


def _pick_catalog(catalogs: Mapping[str, IndexEntry], wanted: str | None, current: dict | None) -> str:
    name = wanted or (current or {}).get("catalog", {}).get("name")
    if name is None:
        if len(catalogs) != 1:
            raise SyncError(
                f"the repository has {len(catalogs)} catalogs ({', '.join(sorted(catalogs)) or 'none'}): choose one with --catalog"
            )
        name = next(iter(catalogs))
    if name not in catalogs:
        raise SourceError(f"the repository has no catalog {name!r} (it has: {', '.join(sorted(catalogs)) or 'none'})")
    return name


def _check_release(manifest: Any, name: str) -> int:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise VerificationError("the signed manifest is not a vitrina bundle manifest")
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise VerificationError(
            f"bundle format {manifest.get('format_version')!r} is newer than this device reads ({FORMAT_VERSION}): update vitrina first"
        )
    if manifest.get("catalog", {}).get("name") != name:
        raise VerificationError(
            f"the manifest is for catalog {manifest.get('catalog', {}).get('name')!r}, the index says {name!r}"
        )
    release = manifest.get("release")
    if not isinstance(release, dict) or not isinstance(release.get("version"), int) or release["version"] < 1:
        raise VerificationError("the manifest has no signed release version")
    try:
        expires = parse_iso(release.get("expires", ""))
    except SignatureError as exc:
        raise VerificationError(f"the manifest's expiry is unreadable: {exc}") from None
    if utc_now() >= expires:
        raise VerificationError(
            f"the manifest of {name} v{release['version']} expired at {release['expires']}: the publisher must re-sign it (or the server is replaying a stale one)"
        )
    return int(release["version"])


def _read_patches(src: Source, base: str) -> dict[str, dict]:
    try:
        doc = json.loads(src.read(f"{base}/{PATCHES}", MAX_MANIFEST_BYTES).decode("utf-8"))
        files = doc.get("files", {})
    except (SourceError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, RecursionError):
        return {}  # patches are an optimisation: without them every changed file is downloaded
    if not isinstance(files, dict):
        return {}
    return {rel: entry for rel, entry in files.items() if isinstance(entry, dict)}  # a malformed entry: download


def _stage_files(
    src: Source,
    store: DeviceStore,
    stage: Path,
    files: dict[str, dict],
    patches: dict[str, dict],
    options: SyncOptions,
    progress: Callable[[SyncProgress], None] | None,
) -> tuple[int, int, int]:
    """Put every manifest file into ``stage``, verified. Returns (reused, patched, downloaded)."""
    stage.mkdir(parents=True, exist_ok=True)
    local = _local_files(store) if options.delta else {}
    todo = {rel: e for rel, e in files.items() if not (stage / rel).is_file()}
    plan: dict[str, tuple[str, int]] = {}
    for rel, e in todo.items():
        p = patches.get(rel)
        if e["sha256"] in local:
            plan[rel] = ("reuse", 0)
        elif (
            p
            and p.get("to") == e["sha256"]
            and p.get("from") in local
            and _SHA256.match(str(p.get("sha256", "")))
            and isinstance(p.get("size"), int)
            and 0 < p["size"] <= e["size"]
            and re.fullmatch(r"patches/[0-9a-f]{64}", str(p.get("patch", "")))
        ):
            plan[rel] = ("patch", p["size"])
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
            _apply_patch(src, patches[rel], local[patches[rel]["from"]], part, e, bar)
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


def _apply_patch(src: Source, patch: dict, old: Path, part: Path, entry: dict, bar: _Progress) -> None:
    import bsdiff4

    patch_part = part.with_name(part.name + ".patch")
    src.fetch(patch["patch"], patch_part, patch["size"], bar.add)
    if sha256_file(patch_part) != patch["sha256"]:
        patch_part.unlink()
        raise VerificationError(f"patch {patch['patch']} does not match its published sha256")
    try:
        data = bsdiff4.patch(old.read_bytes(), patch_part.read_bytes())
    except Exception as exc:  # a malformed patch must not crash the sync
        raise VerificationError(f"patch {patch['patch']} cannot be applied: {exc}") from None
    if len(data) != entry["size"]:
        raise VerificationError(f"patch {patch['patch']} produced {len(data)} bytes, the manifest says {entry['size']}")
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
