"""Bundle failures in the running kiosk: what counts as one, the short reason staff
see, and the log an operator reads.

A broken bundle never crashes the kiosk: opening it, warming it up or a search
failing switches to the "unavailable" screen (``app.admin.bundle_failed``).
Shoppers see only a short reason from :mod:`~vitrina.kiosk_app.strings`
(``reason_*``); the full message and traceback go to the Python logger
``vitrina.kiosk``, which writes to ``<KIVY_HOME>/vitrina-kiosk.log`` (see
:func:`start_file_log`) whether or not Kivy's console log is on. The admin
screen (behind the PIN) shows the message and the log's path.

Importing this module does not import Kivy.
"""

from __future__ import annotations

import logging
from logging.handlers import RotatingFileHandler
from pathlib import Path

from vitrina.runtime.bundle import BundleError, BundleNotFoundError, BundleVersionError
from vitrina.runtime.photo import ImageBudgetError
from vitrina.runtime.rasterize import SketchInputError

LOG = logging.getLogger("vitrina.kiosk")
#: The kiosk's log file, inside KIVY_HOME but outside ``logs/`` (Kivy deletes old files there).
LOG_NAME = "vitrina-kiosk.log"
#: Log rotation: bytes per file and old files kept (a kiosk runs for months).
LOG_MAX_BYTES, LOG_BACKUPS = 1_000_000, 3

#: What opening or using a broken bundle raises: the runtime's BundleError (and
#: subclasses); LiteRT's ValueError / RuntimeError for a model it cannot load or
#: run; OSError for unreadable files and images; and the LookupError, TypeError
#: and AttributeError of code reading a malformed manifest. (The runtime wraps
#: most of these into BundleError; the kiosk does not rely on it.)
BUNDLE_FAILURES: tuple[type[Exception], ...] = (
    BundleError,
    ValueError,
    RuntimeError,
    OSError,
    LookupError,
    TypeError,
    AttributeError,
)


class PhotoUnreadableError(ValueError):
    """A shopper's photo file cannot be read or is too large (their input, not the bundle)."""


#: Search errors caused by the shopper's input: shown on the status line, the bundle stays in use.
SHOPPER_ERRORS: tuple[type[Exception], ...] = (SketchInputError, ImageBudgetError, PhotoUnreadableError)


def reason_key(error: BaseException, started: bool) -> str:
    """Key in ``strings.TEXTS`` of the short reason staff see for a bundle failure;
    ``started``: the bundle had been working (a search or warm-up failed)."""
    if isinstance(error, BundleNotFoundError):
        return "reason_missing"
    if isinstance(error, BundleVersionError):
        return "reason_version"
    if isinstance(error, BundleError) or not started:
        return "reason_damaged"
    return "reason_failed"


def describe(error: BaseException) -> str:
    """One line for the log and the admin screen: the exception's type and message."""
    return f"{type(error).__name__}: {error}"


def start_file_log(folder: Path) -> Path | None:
    """Send the ``vitrina.kiosk`` logger (INFO and up) to ``folder/vitrina-kiosk.log``
    as well (rotated at :data:`LOG_MAX_BYTES`, :data:`LOG_BACKUPS` kept); returns the
    file's path, or None when the folder is not writable (the kiosk runs on, logging
    only through Kivy's handlers). Calling it again for the same folder adds no second handler."""
    path = (folder / LOG_NAME).resolve()
    LOG.setLevel(logging.INFO)
    for handler in LOG.handlers:
        if isinstance(handler, RotatingFileHandler) and Path(handler.baseFilename) == path:
            return path
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8")
    except OSError as exc:
        LOG.warning("cannot write the kiosk log %s: %s", path, exc.strerror or exc)
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    LOG.addHandler(handler)
    return path
