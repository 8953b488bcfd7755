"""File helpers shared by the bundle writer, signing, the repository and sync."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
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


class UnsafePathError(ValueError):
    """A path names something outside its root, a symlink, or not a regular file."""


def resolve_inside(root: str | Path, rel: str) -> Path:
    """The regular file ``root/rel``, checked to be safely inside ``root``.

    The one resolver for files named by untrusted text (a bundle manifest, a
    catalog CSV, a sync repository). ``rel`` must be a relative POSIX path
    without ``..``, empty, ``.`` or backslash parts; no component under
    ``root`` may be a symlink (checked with ``lstat``, so a link is refused
    even when it points inside); the file must be a regular file (not a FIFO,
    device or folder); and its resolved path must stay inside ``root``.

    Raises:
        UnsafePathError: the path is unsafe; the message names it and why.
        FileNotFoundError: the path is safe but nothing is there.
    """
    root = Path(root)
    if not isinstance(rel, str) or not rel:
        raise UnsafePathError(f"{rel!r} is not a file path: expected a non-empty relative path")
    if rel.startswith("/") or "\\" in rel or "\x00" in rel or (len(rel) > 1 and rel[1] == ":"):
        raise UnsafePathError(f"{rel!r} is not a relative path inside {root}")
    parts = rel.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafePathError(f"{rel!r} has an empty, '.' or '..' part: expected a plain relative path inside {root}")
    path = root
    for i, part in enumerate(parts):
        path = path / part
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist") from None
        except OSError as exc:  # e.g. a name too long, a part that is a file
            raise UnsafePathError(f"{rel!r} cannot be looked up under {root}: {exc.strerror or exc}") from None
        if stat.S_ISLNK(mode):
            raise UnsafePathError(f"{path} is a symbolic link: links are not followed (copy the file in instead)")
        last = i == len(parts) - 1
        if not last and not stat.S_ISDIR(mode):
            raise UnsafePathError(f"{rel!r}: {path} is not a folder")
        if last and not stat.S_ISREG(mode):
            raise UnsafePathError(f"{path} is not a regular file (a folder, FIFO or device): refusing to read it")
    resolved = path.resolve()
    if not resolved.is_relative_to(root.resolve()):
        raise UnsafePathError(f"{rel!r} resolves to {resolved}, outside {root}")
    return path
