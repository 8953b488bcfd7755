"""Staff actions behind the admin PIN: unlock, catalog sync, benchmark, exit; and (re)opening the bundle.

Observable state stays on the App, where ``admin.kv`` binds to it:
``admin_unlocked``, ``admin_message`` (one status line), ``syncing``,
``sync_progress`` (0-1), ``bundle_summary`` (with the latest failure and the
log's path); and ``engine`` / ``unavailable_reason`` / ``unavailable_detail``
for the bundle. Bundle failures are logged to ``vitrina.kiosk``
(:mod:`~vitrina.kiosk_app.failures`). Sync and the benchmark run on their own
threads and report back through ``Clock.schedule_once``.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from kivy.clock import Clock

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.product_search import ProductSearch

from .config import verify_pin
from .failures import BUNDLE_FAILURES, LOG, describe, reason_key

if TYPE_CHECKING:
    from vitrina.runtime.sync.client import SyncProgress

    from .app import KioskApp


#: Where the admin screen's bundle summary starts saying what failed.
_FAILED = "\n\nlast bundle failure: "


def bundle_stamp(path: Path) -> tuple[str, int] | None:
    """Identity of the bundle a path points at now (resolved path, manifest mtime in ns), or None."""
    try:
        real = path.resolve()
        return str(real), (real / "manifest.json").stat().st_mtime_ns
    except OSError:
        return None


def bundle_summary(bundle: Bundle) -> str:
    """What the admin screen says about a bundle: catalog, format, products, codes, build date, path, release."""
    m = bundle.manifest
    summary = (
        f"catalog: {m['catalog']['name']}\nformat version: {m['format_version']}, vitrina {m['vitrina_version']}\n"
        f"products: {m['catalog']['items']}\ncodes: {m['codes']['type']} × {m['codes']['dims']}\n"
        f"built: {m['created']}\npath: {bundle.path}"
    )
    release = m.get("release")
    if isinstance(release, dict) and "version" in release:
        summary += f"\nrelease: v{release['version']}, published {release.get('published', 'unknown')}"
    return summary


def _trusted_root(path: Path | None, device_root: Path | None) -> bytes | None:
    """The configured root.json, read only while the device has no trusted root yet (its first sync)."""
    from vitrina.runtime.sync.trust import load_anchor

    if path is None or device_root is None or load_anchor(device_root) is not None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read trusted_root {path}: {exc.strerror or exc}") from None


def describe_sync_failure(exc: BaseException) -> str:
    """What the admin screen says when a sync fails: the role and the check that failed and what to
    do, in words; the catalog on screen is unchanged."""
    from vitrina.runtime.sync.errors import SyncError, TrustError

    if isinstance(exc, TrustError):
        return f"sync refused, catalog unchanged: the {exc.role} metadata failed its {exc.check} check. {exc.advice}."
    if isinstance(exc, SyncError | ValueError | OSError):
        return f"sync failed, catalog unchanged: {exc}"
    LOG.exception("sync failed unexpectedly")
    return f"sync failed, catalog unchanged: unexpected {type(exc).__name__}: {exc} (details in the kiosk log)"


class AdminActions:
    """The admin screen's actions for one kiosk app (``app.admin``), and the bundle it serves.

    Every action but :meth:`unlock` and :meth:`leave` does nothing until the
    PIN was given (``app.admin_unlocked``).
    """

    def __init__(self, app: KioskApp):
        self.app = app
        self._stamp: tuple[str, int] | None = None

    # --- bundle ----------------------------------------------------------------------
    def open_bundle(self) -> bool:
        """(Re)open the configured bundle; True when it opened. On failure log it, set
        ``app.unavailable_reason`` / ``unavailable_detail`` and keep any working engine."""
        app = self.app
        if app.bundle_path is None:
            detail = "no bundle configured (set bundle in the config or pass --bundle)"
            LOG.warning(detail)
            self._note_failure("reason_unconfigured", detail)
            return False
        try:
            engine = ProductSearch(Bundle.open(app.bundle_path, verify=False))  # sizes now; hashes at install
            summary = bundle_summary(engine.bundle)
        except BUNDLE_FAILURES as exc:
            detail = describe(exc)
            repeated = detail == app.unavailable_detail  # retried at each idle reset: log the traceback once
            LOG.log(
                logging.INFO if repeated else logging.ERROR,
                "cannot open the bundle at %s: %s",
                app.bundle_path,
                detail,
                exc_info=None if repeated else exc,
            )
            self._note_failure(reason_key(exc, started=False), detail)
            return False
        app.engine = engine
        self._stamp = bundle_stamp(app.bundle_path)
        app.searches.thumbnails.clear()
        app.bundle_summary = summary
        app.unavailable_reason = app.unavailable_detail = ""
        LOG.info("opened the bundle at %s: %s", app.bundle_path, summary.replace("\n", "; "))
        return True

    def bundle_failed(self, error: BaseException, during: str) -> None:
        """The open bundle failed while in use (``during``: e.g. "sketch search"): log it with
        its traceback, drop the engine, and show "unavailable" (unless admin is showing). The
        next idle reset tries to open the bundle again (the failure may have been passing)."""
        app = self.app
        LOG.error("the bundle at %s failed during %s: %s", app.bundle_path, during, describe(error), exc_info=error)
        app.engine = None
        self._stamp = None
        app.searches.forget()
        self._note_failure(reason_key(error, started=True), f"{during}: {describe(error)}")
        if app.manager.current != "admin":  # staff at the admin screen stay there and read it
            app.show("unavailable")

    def _note_failure(self, reason: str, detail: str) -> None:
        """Set the short reason (``strings`` key ``reason``) for shoppers and the detail for admin."""
        app = self.app
        app.unavailable_reason = app.texts[reason]
        app.unavailable_detail = detail
        log = f"\nlog: {app.log_path}" if app.log_path is not None else ""
        current = app.bundle_summary if app.engine is not None else "no catalog in use"
        app.bundle_summary = f"{current.split(_FAILED)[0]}{_FAILED}{detail}{log}"

    def reload_if_changed(self) -> bool:
        """Reopen the bundle if the configured path now points at another one (or a
        changed one) than was opened; True when it tried (whether or not it opened)."""
        path = self.app.bundle_path
        if path is None or bundle_stamp(path) == self._stamp:
            return False
        self.open_bundle()
        return True

    # --- PIN -------------------------------------------------------------------------
    def unlock(self, pin: str) -> None:
        """Unlock admin if ``pin`` matches the config's hash; else say why (wrong PIN, or none configured). Empties the PIN field."""
        app = self.app
        if not app.kiosk_config.admin_pin_hash:
            app.admin_message = app.texts["no_pin"]
        elif verify_pin(pin, app.kiosk_config.admin_pin_hash):
            app.admin_unlocked = True
            app.admin_message = ""
        else:
            app.admin_message = app.texts["wrong_pin"]
        if app.manager.has_screen("admin"):
            app.screen("admin").pin.text = ""

    def lock(self) -> None:
        """Lock admin again and clear its message."""
        self.app.admin_unlocked = False
        self.app.admin_message = ""

    def leave(self) -> None:
        """Lock admin and go back: to drawing if a shopper's session is open, else to attract."""
        self.lock()
        self.app.show("draw" if self.app.in_session else "attract")

    def exit_kiosk(self) -> None:
        """Stop the app (unlocked only)."""
        if self.app.admin_unlocked:
            self.app.stop()

    # --- benchmark -------------------------------------------------------------------
    def mark_out_of_stock(self, product_id: str) -> bool:
        """Record that ``product_id`` is out of stock (the device's update log: searches with
        "in stock only" leave it out from now on, and it survives a restart); True when done.
        Does nothing until the PIN was given; an unknown id is said on the admin message line."""
        app = self.app
        product_id = product_id.strip()
        if not app.admin_unlocked or app.engine is None or not product_id:
            return False
        try:
            app.engine.set_in_stock(product_id, False)
        except (ValueError, OSError) as exc:
            app.admin_message = str(exc)
            LOG.warning("cannot mark %s out of stock: %s", product_id, exc)
            return False
        app.admin_message = app.texts["marked_out_of_stock"].format(id=product_id)
        LOG.info("marked %s out of stock", product_id)
        return True

    def run_benchmark(self) -> None:
        """Benchmark the open bundle on a thread (50 queries, one cold start, no accuracy);
        sketch p50/p95 (ms) and the cold start (s) end up in ``app.admin_message``."""
        app = self.app
        if not app.admin_unlocked or app.engine is None:
            return
        path = app.engine.bundle.path
        app.admin_message = "benchmark running…"

        def work() -> None:
            from vitrina.runtime.bench.benchmark import BenchOptions, run_benchmark

            try:
                report = run_benchmark(path, BenchOptions(queries=50, cold_runs=1, accuracy=False))
                sketch = report["latency"]["1"].get("sketch", {}).get("total", {})
                text = f"sketch p50 {sketch.get('p50', 0):.1f} ms, p95 {sketch.get('p95', 0):.1f} ms; cold start {report['cold_start'].get('median_s', 0):.2f} s"
            except Exception as exc:  # noqa: BLE001 - shown to staff
                text = f"benchmark failed: {exc}"
            Clock.schedule_once(lambda _dt: setattr(app, "admin_message", text))

        threading.Thread(target=work, daemon=True).start()

    # --- sync ------------------------------------------------------------------------
    def run_sync(self) -> None:
        """Sync from the configured source on a thread; progress in ``app.sync_progress`` (0-1).

        The active bundle changes only when the whole new one is verified; it is
        loaded right away (staff are at the screen, no shopper session is open).
        """
        app = self.app
        cfg = app.kiosk_config
        if not app.admin_unlocked or app.syncing:
            return
        if not (cfg.device_root and cfg.sync_source):
            app.admin_message = "sync needs device_root and sync_source in the config"
            return
        app.syncing, app.sync_progress = True, 0.0
        app.admin_message = f"sync from {cfg.sync_source}…"

        def progress(p: SyncProgress) -> None:  # on the sync thread
            eta = f", {p.eta_s:.0f} s left" if p.eta_s is not None else ""
            text = f"{p.done / 1e6:.1f} / {p.total / 1e6:.1f} MB at {p.rate / 1e6:.1f} MB/s{eta}"
            Clock.schedule_once(lambda _dt: self._sync_update(p.done / max(p.total, 1), text))

        def work() -> None:
            from vitrina.runtime.sync.client import sync
            from vitrina.runtime.sync.trust import load_legacy_key

            try:
                result = sync(
                    cfg.sync_source,
                    cfg.device_root,
                    _trusted_root(cfg.trusted_root, cfg.device_root),
                    progress=progress,
                    legacy_keys=[load_legacy_key(k) for k in cfg.trusted_keys],
                )
                text = (
                    f"{result.catalog} v{result.version} already active"
                    if result.up_to_date
                    else f"activated {result.catalog} v{result.version} ({result.transferred / 1e6:.1f} MB in {result.seconds:.0f} s)"
                )
                ok = True
            except Exception as exc:  # noqa: BLE001 - staff read words on the screen, never a traceback
                text, ok = describe_sync_failure(exc), False
            Clock.schedule_once(lambda _dt: self._sync_done(text, ok))

        threading.Thread(target=work, daemon=True).start()

    def _sync_update(self, fraction: float, text: str) -> None:
        self.app.sync_progress = fraction
        self.app.admin_message = text

    def _sync_done(self, text: str, ok: bool) -> None:
        app = self.app
        app.syncing = False
        app.sync_progress = 1.0 if ok else app.sync_progress
        if ok:
            self.reload_if_changed()
        app.admin_message = text
