"""The TUF client's network: ``tuf.ngclient`` reads through our sync sources, not urllib3.

:class:`SourceFetcher` is a ``tuf.ngclient.FetcherInterface`` over a sync
:class:`~vitrina.runtime.sync.client.Source` (HTTP or a folder), so every
metadata and target read by the ``Updater`` runs under the same deadlines as
bundle files (``SyncOptions.deadline_s``, ``min_rate_bytes_s`` after
``grace_s``, enforced by a watchdog that closes a blocked socket): a server
that dribbles bytes is cut off by our limits, and a folder source reads only
regular files inside the repository. The ``Updater`` itself caps each file's
length (:func:`updater_config`), so an endless stream ends at that cap.

URLs are ``vitrina-repo:/<path in the repository>``; the fetcher remembers the
last path it was asked for, which names the role when TUF refuses a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import FetcherInterface, UpdaterConfig

from .errors import NotFoundError

BASE = "vitrina-repo:/"

#: Size caps per metadata file (bytes): far above what a repository of a few catalogs writes
#: (root ~3 KB with 6 keys, timestamp ~0.5 KB), far below what would hurt a kiosk.
ROOT_MAX_BYTES = 64 << 10
TIMESTAMP_MAX_BYTES = 16 << 10
SNAPSHOT_MAX_BYTES = 1 << 20
TARGETS_MAX_BYTES = 4 << 20


class Streams(Protocol):
    """What the fetcher needs of a sync source: a file's bytes in chunks, within the deadlines."""

    def stream(self, rel: str) -> Iterator[bytes]: ...


def updater_config() -> UpdaterConfig:
    """The ``Updater``'s limits: metadata size caps above, at most 32 root rotations per sync."""
    return UpdaterConfig(
        max_root_rotations=32,
        max_delegations=8,
        root_max_length=ROOT_MAX_BYTES,
        timestamp_max_length=TIMESTAMP_MAX_BYTES,
        snapshot_max_length=SNAPSHOT_MAX_BYTES,
        targets_max_length=TARGETS_MAX_BYTES,
    )


class SourceFetcher(FetcherInterface):
    """``FetcherInterface`` over a sync source: chunks as they arrive, within the sync's deadlines.

    A missing file is ``DownloadHTTPError`` 404 (how the ``Updater`` learns there is
    no newer root); every other failure is the source's own ``SourceError``.
    """

    def __init__(self, source: Streams):
        self.source = source
        self.last: str | None = None

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(BASE):
            raise ValueError(f"{url!r} is not a repository URL ({BASE}...)")
        rel = url[len(BASE) :]
        self.last = rel
        return self._chunks(rel)

    def _chunks(self, rel: str) -> Iterator[bytes]:
        try:
            yield from self.source.stream(rel)
        except NotFoundError as exc:
            raise DownloadHTTPError(str(exc), exc.status) from None
