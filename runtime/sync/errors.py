"""What a sync can fail with. Every error leaves the active bundle unchanged; its message says
what failed, why, and (for trust failures) what field staff should do."""

from __future__ import annotations

from .lock import BusyError


class SyncError(Exception):
    """Sync failed; the active bundle is unchanged. The message says what and why."""


class SourceError(SyncError):
    """The repository could not be read (HTTP error, timeout, reset, missing file)."""


class NotFoundError(SourceError):
    """The repository has no such file (HTTP 403/404, or missing from the folder)."""

    def __init__(self, message: str, status: int = 404):
        super().__init__(message)
        self.status = status


class VerificationError(SyncError):
    """Something does not match what the signed metadata promises, or the metadata itself is unacceptable."""


class TrustError(VerificationError):
    """The TUF metadata was refused. Attributes: role (root, timestamp, snapshot, targets or a
    target file), check (the rule that failed: expiry, signatures, version rollback, ...), advice."""

    def __init__(self, message: str, *, role: str, check: str, advice: str):
        super().__init__(message)
        self.role = role
        self.check = check
        self.advice = advice


class NotProvisionedError(VerificationError):
    """The device has no trusted root.json yet (and no migration was possible)."""


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
