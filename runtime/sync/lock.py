"""One writer at a time on a device root: ``vitrina sync`` and ``vitrina bundles activate|rollback|gc``.

The lock is ``fcntl.flock`` on ``<root>/.lock``, taken without waiting: a
second writer fails at once with :class:`BusyError` naming the root and the
pid written in the lock file by the holder. The kernel drops the lock when
the holder exits, so a killed sync never leaves the root locked.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".lock"
_HOLDER_READS = 10


class BusyError(Exception):
    """Another process (or thread) holds the device root's lock."""


@contextmanager
def device_lock(
    root: str | Path, what: str = "sync", busy: type[Exception] = BusyError, create: bool = True
) -> Iterator[None]:
    """Hold the exclusive lock on ``root`` for the block (``what`` names the holder to others).

    Raises ``busy`` (default :class:`BusyError`) at once if another holds it.
    ``create``: make ``root`` if missing; without it a missing root is not
    locked (there is nothing in it to protect).
    """
    root = Path(root)
    if not create and not root.is_dir():
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, holder = _holder(fd)
            raise busy(f"another {holder} is running on {root} (pid {pid}): wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {what}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(fd: int) -> tuple[str, str]:
    """(pid, what) written by the holder; ("unknown", "sync") when it has not written them yet.

    The holder writes them just after taking the lock, so an empty file is read
    again a few times (up to about 0.2 s) before giving up.
    """
    words: list[str] = []
    for _ in range(_HOLDER_READS):
        try:
            words = os.pread(fd, 64, 0).decode("ascii").split()
        except (OSError, UnicodeDecodeError):
            words = []
        if words:
            break
        time.sleep(0.02)
    pid = words[0] if words and words[0].isdigit() else "unknown"
    return pid, " ".join(words[1:]) or "sync"
