"""File helpers shared by the bundle writer, signing, the repository and sync."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

_HASH_CHUNK = 1 << 20

# errno values that mean "no room to write": disk full, file too large, quota exceeded.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


def is_disk_full(exc: OSError) -> bool:
    """True when an OSError means the disk (or the file-size or quota limit) is full."""
    return exc.errno in DISK_FULL_ERRNOS


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _temporary_beside(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def copy_atomic(src: str | Path, dest: str | Path) -> int:
    """Copy a file as :func:`write_atomic` writes one (temporary sibling, fsync, rename);
    returns the bytes copied."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_beside(dest)
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout, _HASH_CHUNK)
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dest)
    return dest.stat().st_size


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to a sibling temporary file, fsync it, then rename it over ``path``:
    readers see the old content or the new, never a partial file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_beside(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename or a new entry in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
