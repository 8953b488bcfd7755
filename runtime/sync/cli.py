"""Device subcommands of ``vitrina`` for catalog sync: ``sync``, ``trust`` and ``bundles``.

Exit codes as the rest of the CLI: 0 done, 2 refused or bad input (with a
message naming what and why), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..commands import CommandPlugin, Commands
from .lock import BusyError, device_lock
from .store import KEEP_PREVIOUS, DeviceStore, StoreError

if TYPE_CHECKING:
    from .client import SyncProgress

DEFAULT_ROOT = Path("/var/lib/vitrina")


def register(commands: Commands) -> None:
    """Add ``sync``, ``trust`` and ``bundles``."""
    p = commands.add("sync", help="fetch, verify (TUF) and activate the latest bundle")
    p.add_argument("--from", dest="source", required=True, help="repository URL (http://...) or folder")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"device bundle store (default {DEFAULT_ROOT})")
    p.add_argument(
        "--trust-root",
        type=Path,
        default=None,
        help="root.json to trust if the device has none yet (same as `vitrina trust provision` first)",
    )
    p.add_argument(
        "--legacy-key",
        type=Path,
        action="append",
        default=[],
        help="pre-TUF public key (.pub): accept the repository's migration.json once; repeatable",
    )
    p.add_argument("--catalog", default=None, help="catalog name (default: the active one)")
    p.add_argument("--allow-rollback", action="store_true", help="admin: accept an older version")
    p.add_argument("--no-delta", action="store_true", help="download every file")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds a socket read may wait before retrying")
    p.add_argument(
        "--deadline", type=float, default=4 * 3600.0, help="seconds the whole sync may read from the source (4 h)"
    )
    p.add_argument(
        "--min-rate",
        type=float,
        default=8192.0,
        help="bytes/s each file must average after the grace period, or the sync stops (8192)",
    )
    p.add_argument("--grace", type=float, default=30.0, help="seconds each file gets before --min-rate applies (30)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_sync)

    p = commands.add("trust", help="the device's trusted TUF root: provision (factory, recovery) or show")
    t = p.add_subparsers(dest="trust_command", required=True, metavar="TRUST_COMMAND")
    a = t.add_parser("provision", help="make ROOT.json (from headquarters) the device's trust anchor")
    a.add_argument("root_json", type=Path)
    a.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    a.add_argument("--replace", action="store_true", help="replace a different root (recovery after a lost root key)")
    a.set_defaults(handler=_trust_provision)
    a = t.add_parser("show", help="the trusted root and the newest root this device has verified")
    a.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    a.set_defaults(handler=_trust_show)

    p = commands.add("bundles", help="installed bundles: list, activate VERSION, rollback, gc")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    b = p.add_subparsers(dest="bundles_command", required=True, metavar="BUNDLES_COMMAND")
    b.add_parser("list").set_defaults(handler=_bundles_list)
    a = b.add_parser("activate")
    a.add_argument("version", type=int)
    a.add_argument("--catalog", default=None)
    a.set_defaults(handler=_bundles_activate)
    b.add_parser("rollback").set_defaults(handler=_bundles_rollback)
    g = b.add_parser("gc")
    g.add_argument(
        "--keep", type=int, default=KEEP_PREVIOUS, help=f"previous bundles to keep (default {KEEP_PREVIOUS})"
    )
    g.add_argument("--staging", action="store_true", help="also drop partial syncs")
    g.set_defaults(handler=_bundles_gc)


def _sync(args: argparse.Namespace) -> int:
    from .client import SyncError, SyncOptions, sync
    from .trust import load_legacy_key

    try:
        trusted_root = args.trust_root.read_bytes() if args.trust_root else None
        legacy = [load_legacy_key(p.read_text(encoding="ascii")) for p in args.legacy_key]
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read a trust file: {exc}") from None
    options = SyncOptions(
        catalog=args.catalog,
        allow_rollback=args.allow_rollback,
        delta=not args.no_delta,
        timeout_s=args.timeout,
        deadline_s=args.deadline,
        min_rate_bytes_s=args.min_rate,
        grace_s=args.grace,
    )
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="B", unit_scale=True, desc="sync", mininterval=0.2)
    try:
        result = sync(
            args.source, args.root, trusted_root, options, _reporter(bar) if bar else None, legacy_keys=legacy
        )
    except SyncError as exc:
        raise ValueError(f"{exc} (active bundle unchanged)") from None
    finally:
        if bar:
            bar.close()
    if result.up_to_date:
        print(f"{result.catalog} v{result.version} is already active: nothing to do")
        return 0
    print(
        f"activated {result.catalog} v{result.version} (was v{result.previous}) in {result.seconds:.1f} s: "
        f"{result.transferred / 1e6:.2f} MB transferred of {result.full_size / 1e6:.1f} MB "
        f"({result.transferred / max(result.full_size, 1):.1%}); files reused {result.reused}, patched {result.patched}, downloaded {result.downloaded}"
    )
    return 0


def _trust_provision(args: argparse.Namespace) -> int:
    from .client import VerificationError
    from .trust import provision_root

    try:
        data = args.root_json.read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {args.root_json}: {exc.strerror or exc}") from None
    try:
        with device_lock(args.root, "trust provision", busy=_Busy):
            info = provision_root(args.root, data, replace=args.replace)
    except VerificationError as exc:
        raise ValueError(str(exc)) from None
    keys = ", ".join(f"{role} {t} of {len(ids)}" for role, (t, ids) in info.roles.items())
    print(
        f"this device now trusts root v{info.version} from {args.root_json} (keys needed per role: {keys}); "
        f"sync takes every later root that this one signs"
    )
    return 0


def _trust_show(args: argparse.Namespace) -> int:
    from .client import VerificationError
    from .trust import METADATA_CACHE, anchor_path, check_root, load_anchor

    data = load_anchor(args.root)
    if data is None:
        print(f"no trusted root on {args.root}: run `vitrina trust provision root.json --root {args.root}`")
        return 2
    newest = data
    history = args.root / METADATA_CACHE / "root_history"
    versions = sorted((int(p.name.split(".")[0]), p) for p in history.glob("*.root.json")) if history.is_dir() else []
    if versions:
        newest = versions[-1][1].read_bytes()
    try:
        anchor, latest = check_root(data, str(anchor_path(args.root))), check_root(newest)
    except VerificationError as exc:
        raise ValueError(str(exc)) from None
    print(f"provisioned root: v{anchor.version} ({anchor_path(args.root)})")
    print(f"newest verified root: v{latest.version}, expires {latest.expires}")
    for role, (threshold, ids) in latest.roles.items():
        print(f"  {role:9} needs {threshold} of {len(ids)}: {', '.join(k[:12] for k in ids)}")
    return 0


def _bundles_list(args: argparse.Namespace) -> int:
    store = DeviceStore(args.root)
    rows = store.installed()
    if not rows:
        print(f"no bundles installed under {args.root}")
        return 0
    for i in rows:
        try:
            manifest = json.loads((i.path / "manifest.json").read_text())
            release = manifest.get("release", {})
            info = f"created {manifest.get('created')}, published {release.get('published')}, {manifest.get('catalog', {}).get('items')} products"
        except (OSError, json.JSONDecodeError):
            info = "manifest unreadable"
        print(f"{'*' if i.active else ' '} {i.catalog} v{i.version}  {info}")
    return 0


def _locked(args: argparse.Namespace, what: str) -> AbstractContextManager[None]:
    """The device root's lock for a ``bundles`` command that changes the store (exit 2 while a sync runs)."""
    return device_lock(args.root, f"bundles {what}", busy=_Busy, create=False)


class _Busy(BusyError, ValueError):
    """Another sync or bundles command holds the root: the CLI's exit 2."""


def _bundles_activate(args: argparse.Namespace) -> int:
    try:
        with _locked(args, "activate"):
            i = DeviceStore(args.root).activate_version(args.version, args.catalog)
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    print(f"activated {i.catalog} v{i.version}")
    return 0


def _bundles_rollback(args: argparse.Namespace) -> int:
    try:
        with _locked(args, "rollback"):
            i = DeviceStore(args.root).rollback()
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    print(f"rolled back to {i.catalog} v{i.version}")
    return 0


def _bundles_gc(args: argparse.Namespace) -> int:
    if args.keep < 0:
        raise ValueError(f"--keep must be >= 0, got {args.keep}")
    with _locked(args, "gc"):
        removed = DeviceStore(args.root).gc(args.keep, args.staging)
    print(f"removed {len(removed)}: " + (", ".join(p.name for p in removed) or "nothing"))
    return 0


PLUGIN = CommandPlugin(name="sync", commands=("sync", "trust", "bundles"), register=register, order=20)


def _reporter(bar: Any) -> Callable[[SyncProgress], None]:
    """A sync progress callback that moves a tqdm bar (bytes)."""

    def report(p: SyncProgress) -> None:
        bar.total = p.total
        bar.n = p.done
        bar.set_postfix_str(p.file[-28:])
        bar.refresh()

    return report
