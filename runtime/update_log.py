"""The device's catalog update log: an append-only file of checksummed records beside the bundle.

Stock, prices, new products and removals change daily, faster than a bundle
sync. They are written here, never into the signed bundle files, and replayed
over the bundle at open (:mod:`vitrina.runtime.live_catalog`).

Where: ``<folder holding the bundle>/.vitrina-updates/<catalog>-v<version>-<manifest sha256[:12]>/``
(the bundle's real folder, ``current`` resolved), holding::

    log                 records, appended and fsynced one at a time
    segment-<n>.bin     the log folded by ``vitrina catalog compact`` (one record)
    .lock               flock: one writer at a time

The folder is named for the bundle's identity (catalog, signed release version,
manifest hash): a re-sync of the same version finds the same log; a newer
version has another name, so the old log no longer applies, and
:func:`other_logs` lets the catalog say so (it is kept, never deleted).

A record is ``b"VUPD" | payload length (u32 LE) | crc32 of payload (u32 LE) | payload``
with a msgpack payload. A writer appends a whole record with one write, then
fsyncs; a reader stops at the first record that is short or fails its
checksum. So a process killed at any moment leaves every update applied whole
or not at all: a torn record at the end is ignored by readers and cut off by
the next writer. The log's first record is a header naming the bundle and the
segment it continues from; compaction writes the segment, then a fresh log
with a header naming it (each by temporary file, fsync and rename).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import struct
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from .files import fsync_dir, write_atomic

MAGIC = b"VUPD"
_FRAME = struct.Struct("<4sII")
UPDATES_DIR = ".vitrina-updates"
LOG = "log"
#: Largest record a reader accepts (a feed adding tens of thousands of products with thumbnails).
MAX_RECORD_BYTES = 256 << 20
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")
_IDENTITY = re.compile(r"^(?P<slug>.+)-v(?P<version>\d+)-(?P<hash>[0-9a-f]{12})$")


class UpdateLogError(Exception):
    """The update log cannot be read or written (damaged in the middle, unwritable folder)."""


@dataclass(frozen=True)
class BundleIdentity:
    """Which bundle a log belongs to.

    Attributes: catalog name; version: signed release version (0 unsigned);
    manifest_sha256: hash of the bundle's manifest.json.
    """

    catalog: str
    version: int
    manifest_sha256: str

    @property
    def folder_name(self) -> str:
        """``<catalog slug>-v<version>-<hash[:12]>``."""
        return f"{_slug(self.catalog)}-v{self.version}-{self.manifest_sha256[:12]}"


def _slug(name: str) -> str:
    return _SLUG.sub("_", name).strip("_") or "catalog"


def identity_of(bundle_path: Path, manifest: dict[str, Any]) -> BundleIdentity:
    """The identity of the bundle at ``bundle_path`` with the parsed ``manifest``."""
    release = manifest.get("release") or {}
    version = release.get("version", 0) if isinstance(release, dict) else 0
    digest = hashlib.sha256((Path(bundle_path) / "manifest.json").read_bytes()).hexdigest()
    return BundleIdentity(str(manifest["catalog"]["name"]), int(version) if isinstance(version, int) else 0, digest)


def log_folder(bundle_path: Path, identity: BundleIdentity) -> Path:
    """The log folder of a bundle: beside its real folder, named for its identity."""
    return Path(bundle_path).resolve().parent / UPDATES_DIR / identity.folder_name


@dataclass(frozen=True)
class OtherLog:
    """A log of the same catalog kept for another bundle (older or newer, or rebuilt)."""

    folder: Path
    version: int
    records: int


def other_logs(bundle_path: Path, identity: BundleIdentity) -> list[OtherLog]:
    """Logs beside the bundle for the same catalog but another bundle identity, with their record counts."""
    root = Path(bundle_path).resolve().parent / UPDATES_DIR
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        m = _IDENTITY.match(folder.name)
        if not m or m["slug"] != _slug(identity.catalog) or folder.name == identity.folder_name:
            continue
        log = UpdateLog(folder)
        try:
            records = len(log.read().records)
        except UpdateLogError:
            records = -1
        if records:
            out.append(OtherLog(folder, int(m["version"]), records))
    return out


def frame(payload: dict[str, Any]) -> bytes:
    """One record: magic, length, crc32, msgpack payload."""
    body = msgspec.msgpack.encode(payload)
    if len(body) > MAX_RECORD_BYTES:
        raise UpdateLogError(
            f"an update of {len(body) >> 20} MiB is over the {MAX_RECORD_BYTES >> 20} MiB a record may be; split the feed"
        )
    return _FRAME.pack(MAGIC, len(body), zlib.crc32(body)) + body


@dataclass(frozen=True)
class LogContents:
    """What a reader found.

    Attributes:
        header: the first record (bundle identity, segment), or None for an empty log.
        records: the update records after it, in order.
        valid_bytes: length of the whole records; a writer cuts the file there.
        torn_bytes: bytes after them (an update interrupted while written), ignored.
    """

    header: dict[str, Any] | None
    records: tuple[dict[str, Any], ...]
    valid_bytes: int
    torn_bytes: int


def parse_records(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """Whole records of ``data`` and the bytes they span; stops at the first torn or damaged one."""
    records, at = [], 0
    while at + _FRAME.size <= len(data):
        magic, length, crc = _FRAME.unpack_from(data, at)
        end = at + _FRAME.size + length
        if magic != MAGIC or length > MAX_RECORD_BYTES or end > len(data):
            break
        body = data[at + _FRAME.size : end]
        if zlib.crc32(body) != crc:
            break
        try:
            record = msgspec.msgpack.decode(body)
        except msgspec.DecodeError:
            break
        if not isinstance(record, dict):
            break
        records.append(record)
        at = end
    return records, at


class UpdateLog:
    """The log in one folder (see the module docstring); create with :func:`log_folder`."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOG

    def read(self) -> LogContents:
        """Every whole record. A missing log is an empty one.

        Raises:
            UpdateLogError: the file cannot be read.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return LogContents(None, (), 0, 0)
        except OSError as exc:
            raise UpdateLogError(f"cannot read the update log {self.path}: {exc}") from None
        records, valid = parse_records(data)
        header = records[0] if records and records[0].get("kind") == "header" else None
        body = records[1:] if header is not None else records
        return LogContents(header, tuple(body), valid, len(data) - valid)

    def read_segment(self, header: dict[str, Any] | None) -> dict[str, Any] | None:
        """The segment the header names (its hash checked), or None.

        Raises:
            UpdateLogError: the named segment is missing or does not match its hash.
        """
        name = (header or {}).get("segment")
        if not name:
            return None
        path = self.folder / str(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UpdateLogError(f"the update log names segment {path}, which cannot be read: {exc}") from None
        if hashlib.sha256(data).hexdigest() != header.get("segment_sha256"):  # type: ignore[union-attr]
            raise UpdateLogError(f"segment {path} does not match the hash its log recorded")
        records, _ = parse_records(data)
        if len(records) != 1:
            raise UpdateLogError(f"segment {path} is damaged")
        return records[0]

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the log's writer lock (blocking) for the block."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def append(self, record: dict[str, Any], header: dict[str, Any]) -> None:
        """Append one record whole and fsync it; call inside :meth:`locked`.

        A new log starts with ``header``; a torn record left by a killed writer
        is cut off first.
        """
        blob = frame(record)
        new = not self.path.exists()
        if new:
            write_atomic(self.path, frame(header))
            fsync_dir(self.folder)
        contents = self.read()
        fd = os.open(self.path, os.O_WRONLY)
        try:
            if contents.torn_bytes:
                os.ftruncate(fd, contents.valid_bytes)
            os.lseek(fd, contents.valid_bytes, os.SEEK_SET)
            written = 0
            while written < len(blob):
                written += os.write(fd, blob[written:])
            os.fsync(fd)
        finally:
            os.close(fd)

    def compact(self, snapshot: dict[str, Any], header: dict[str, Any]) -> str:
        """Fold the log into a new segment holding ``snapshot``; call inside :meth:`locked`.

        The segment is written and fsynced, then a fresh log whose header names
        it replaces the old log by rename; a kill before the rename leaves the
        old log (and an unused segment), after it the new one. Returns the
        segment's file name.
        """
        old = self.read()
        number = int((old.header or {}).get("segment_number", 0)) + 1
        name = f"segment-{number}.bin"
        data = frame(snapshot)
        write_atomic(self.folder / name, data)
        new_header = {
            **header,
            "segment": name,
            "segment_number": number,
            "segment_sha256": hashlib.sha256(data).hexdigest(),
        }
        write_atomic(self.path, frame(new_header))
        fsync_dir(self.folder)
        previous = (old.header or {}).get("segment")
        if previous and previous != name:
            (self.folder / str(previous)).unlink(missing_ok=True)
        return name
