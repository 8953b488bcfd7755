"""Field-staff subcommands of ``vitrina``: keys, sign, publish, serve, sync, bundles.

Exit codes as the rest of the CLI: 0 done, 2 refused or bad input (with a
message naming what and why), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .device_store import KEEP_PREVIOUS, DeviceStore, StoreError, release_version
from .signing import PublicKey, SignatureError

DEFAULT_ROOT = Path("/var/lib/vitrina")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="signing keys: generate a pair, endorse a new key with an old one")
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    k = keys.add_parser("generate", help="write NAME.key (private, 0600) and NAME.pub")
    k.add_argument("--out", type=Path, required=True, help="folder for the key files")
    k.add_argument("--name", default="vitrina")
    k.set_defaults(handler=_keys_generate)
    k = keys.add_parser("endorse", help="sign a new public key with the old private key (key rotation)")
    k.add_argument("--old-key", type=Path, required=True, help="the old private key (.key)")
    k.add_argument("--new-pub", type=Path, required=True, help="the new public key (.pub)")
    k.add_argument("--out", type=Path, required=True, help="endorsement JSON to write (pass to `vitrina publish --endorsement`)")
    k.set_defaults(handler=_keys_endorse)

    p = sub.add_parser("sign", help="set a bundle's release version and expiry and sign its manifest")
    p.add_argument("bundle", type=Path)
    p.add_argument("--key", type=Path, required=True, help="private key (.key)")
    p.add_argument("--version", type=int, required=True, help="release version, monotonic per catalog (>= 1)")
    p.add_argument("--expires-days", type=float, default=30.0, help="days until devices refuse this manifest (default 30)")
    p.set_defaults(handler=_sign)

    p = sub.add_parser("publish", help="add a signed bundle to a sync repository folder (with deltas)")
    p.add_argument("bundle", type=Path)
    p.add_argument("--repo", type=Path, required=True)
    p.add_argument("--endorsement", type=Path, action="append", default=[], help="key endorsement JSON to publish")
    p.set_defaults(handler=_publish)

    p = sub.add_parser("serve", help="serve a sync repository over HTTP (Range supported)")
    p.add_argument("repo", type=Path)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(handler=_serve)

    p = sub.add_parser("sync", help="fetch, verify and activate the latest signed bundle")
    p.add_argument("--from", dest="source", required=True, help="repository URL (http://...) or folder")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT, help=f"device bundle store (default {DEFAULT_ROOT})")
    p.add_argument("--trust", type=Path, action="append", required=True, help="trusted public key file (.pub); repeatable")
    p.add_argument("--catalog", default=None, help="catalog name (default: the active one)")
    p.add_argument("--allow-rollback", action="store_true", help="admin: accept an older version")
    p.add_argument("--no-delta", action="store_true", help="download every file")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per request before retrying")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=_sync)

    p = sub.add_parser("bundles", help="installed bundles: list, activate VERSION, rollback, gc")
    p.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    b = p.add_subparsers(dest="bundles_command", required=True, metavar="BUNDLES_COMMAND")
    b.add_parser("list").set_defaults(handler=_bundles_list)
    a = b.add_parser("activate")
    a.add_argument("version", type=int)
    a.add_argument("--catalog", default=None)
    a.set_defaults(handler=_bundles_activate)
    b.add_parser("rollback").set_defaults(handler=_bundles_rollback)
    g = b.add_parser("gc")
    g.add_argument("--keep", type=int, default=KEEP_PREVIOUS, help=f"previous bundles to keep (default {KEEP_PREVIOUS})")
    g.add_argument("--staging", action="store_true", help="also drop partial syncs")
    g.set_defaults(handler=_bundles_gc)


def _keys_generate(args: argparse.Namespace) -> int:
    from .signing import generate_keys

    key, pub = generate_keys(args.out, args.name)
    print(f"private key: {key} (keep it off devices)\npublic key:  {pub} (copy to devices: --trust / trusted_keys)")
    print(f"key id: {PublicKey.load(pub).key_id}")
    return 0


def _keys_endorse(args: argparse.Namespace) -> int:
    from .signing import endorse_key

    try:
        doc = endorse_key(args.old_key, PublicKey.load(args.new_pub))
    except SignatureError as exc:
        raise ValueError(str(exc)) from None
    args.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}: key {doc['key_id']} endorsed by {doc['endorsed_by']}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from .signing import sign_bundle

    try:
        release = sign_bundle(args.bundle, args.key, args.version, args.expires_days)
    except SignatureError as exc:
        raise ValueError(str(exc)) from None
    print(f"signed {args.bundle}: version {release['version']}, expires {release['expires']}")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from .repository import publish

    endorsements = []
    for path in args.endorsement:
        try:
            endorsements.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read endorsement {path}: {exc}") from None
    r = publish(args.bundle, args.repo, endorsements, progress=lambda msg: print(f"publish: {msg}", file=sys.stderr, flush=True))
    print(f"published {r.catalog} v{r.version} to {args.repo}: {r.blobs_added} new files ({r.blob_bytes_added / 1e6:.1f} MB), "
          f"{r.patches} deltas ({r.patch_bytes / 1e6:.2f} MB)")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve import make_server

    server = make_server(args.repo, args.host, args.port)
    host, port = server.server_address[:2]
    print(f"serving {args.repo} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _sync(args: argparse.Namespace) -> int:
    from .sync import SyncError, SyncOptions, sync

    try:
        trusted = [PublicKey.load(p) for p in args.trust]
    except SignatureError as exc:
        raise ValueError(str(exc)) from None
    options = SyncOptions(catalog=args.catalog, allow_rollback=args.allow_rollback, delta=not args.no_delta, timeout_s=args.timeout)
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit="B", unit_scale=True, desc="sync", mininterval=0.2)

    def report(p) -> None:  # noqa: ANN001
        bar.total = p.total
        bar.n = p.done
        bar.set_postfix_str(p.file[-28:])
        bar.refresh()

    try:
        result = sync(args.source, args.root, trusted, options, report if bar else None)
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
            info = f"created {manifest.get('created')}, expires {release.get('expires')}, {manifest.get('catalog', {}).get('items')} products"
        except (OSError, json.JSONDecodeError):
            info = "manifest unreadable"
        print(f"{'*' if i.active else ' '} {i.catalog} v{i.version}  {info}")
    return 0


def _bundles_activate(args: argparse.Namespace) -> int:
    try:
        i = DeviceStore(args.root).activate_version(args.version, args.catalog)
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    print(f"activated {i.catalog} v{i.version}")
    return 0


def _bundles_rollback(args: argparse.Namespace) -> int:
    try:
        i = DeviceStore(args.root).rollback()
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    print(f"rolled back to {i.catalog} v{i.version}")
    return 0


def _bundles_gc(args: argparse.Namespace) -> int:
    if args.keep < 0:
        raise ValueError(f"--keep must be >= 0, got {args.keep}")
    removed = DeviceStore(args.root).gc(args.keep, args.staging)
    print(f"removed {len(removed)}: " + (", ".join(p.name for p in removed) or "nothing"))
    return 0


__all__ = ["register", "release_version"]
