"""UTC timestamps as the bundle, the signatures and the reports write them: ISO 8601 with ``Z``."""

from __future__ import annotations

import datetime as _dt


def utc_now() -> _dt.datetime:
    """Now, in UTC, to the second."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0)


def iso(t: _dt.datetime) -> str:
    """``2026-12-01T00:00:00Z`` for a UTC datetime."""
    return t.isoformat().replace("+00:00", "Z")


def utc_stamp() -> str:
    """Now, in UTC, as ``2026-12-01T00:00:00Z``."""
    return iso(utc_now())
