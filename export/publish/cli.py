"""Publisher subcommands of ``vitrina``: ``keys``, ``publish``, ``serve`` and ``bench sync``.

What a build server or a field-staff laptop runs; a kiosk never needs them.
Exit codes as the rest of the CLI: 0 done, 2 refused or bad input, 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from vitrina.runtime.commands import CommandPlugin, Commands


def register(commands: Commands) -> None:
    """Add ``keys``, ``publish``, ``serve`` and ``bench sync``."""
    p = commands.add("keys", help="TUF signing keys: generate, list, rotate, revoke; migrate pre-TUF devices")
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    k = keys.add_parser("generate", help="new private keys for a role (root: keep them offline)")
    k.add_argument("--keys", type=Path, required=True, help="folder for the key files")
    k.add_argument(
        "--role", default="all", help="root, targets, snapshot, timestamp, or all (3 root keys and one of each other)"
    )
    k.add_argument("--count", type=int, default=1, help="how many keys (default 1)")
    k.set_defaults(handler=_keys_generate)
    k = keys.add_parser("list", help="the keys and thresholds of the repository's newest root")
    _repo_and_keys(k)
    k.set_defaults(handler=_keys_list)
    k = keys.add_parser("rotate", help="replace a role's keys with new ones (a new root version)")
    k.add_argument("--role", required=True, help="root, targets, snapshot or timestamp")
    _repo_and_keys(k)
    k.set_defaults(handler=_keys_rotate)
    k = keys.add_parser("revoke", help="drop a (stolen or lost) key from every role (a new root version)")
    k.add_argument("keyid", help="the key id, or its first 8+ hex digits (`vitrina keys list`)")
    _repo_and_keys(k)
    k.set_defaults(handler=_keys_revoke)
    k = keys.add_parser("migrate", help="sign the TUF root with the pre-TUF key, for devices that trust only that key")
    k.add_argument("--old-key", type=Path, required=True, help="the pre-TUF private key (vitrina.key)")
    k.add_argument("--repo", type=Path, required=True)
    k.set_defaults(handler=_keys_migrate)

    p = commands.add("publish", help="publish a bundle to a TUF sync repository (targets, snapshot, timestamp)")
    p.add_argument("bundle", type=Path, nargs="?", help="bundle folder (leave out to re-sign the metadata only)")
    _repo_and_keys(p)
    p.add_argument("--version", type=int, default=None, help="release version (default: one above the published)")
    p.add_argument(
        "--refresh-timestamp",
        action="store_true",
        help="only re-sign timestamp.json for another day (the daily cron job; needs only the timestamp key)",
    )
    p.add_argument("--root-threshold", type=int, default=None, help="new repository: root keys needed (default 2)")
    p.set_defaults(handler=_publish)

    p = commands.add("serve", help="serve a sync repository over HTTP (Range supported)")
    p.add_argument("repo", type=Path)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.set_defaults(handler=_serve)

    b = commands.add_to(
        "bench", "sync", help="delta bytes after a 1%% catalog change, sync time over loopback, kill -9 crash loop"
    )
    b.add_argument("--bundle", required=True, type=Path)
    b.add_argument("--kills", type=int, default=0, help="crash-loop iterations (kill -9 at random moments), e.g. 200")
    b.add_argument("--fraction", type=float, default=0.01, help="share of products changed in v2 (default 0.01)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(handler=_bench_sync)


def _repo_and_keys(p: argparse.ArgumentParser) -> None:
    p.add_argument("--repo", type=Path, required=True, help="the repository folder")
    p.add_argument("--keys", type=Path, action="append", default=[], help="folder of online keys; repeatable")
    p.add_argument("--root-keys", type=Path, default=None, help="folder of the offline root keys (a USB stick)")


def _key_dirs(args: argparse.Namespace) -> list[Path]:
    return [*args.keys, *([args.root_keys] if args.root_keys else [])]


def _keys_generate(args: argparse.Namespace) -> int:
    from .keys import ROLES, check_role, generate_key

    if args.count < 1:
        raise ValueError(f"--count must be >= 1, got {args.count}")
    plan = {r: (3 if r == "root" else 1) for r in ROLES} if args.role == "all" else {check_role(args.role): args.count}
    for role, n in plan.items():
        for _ in range(n):
            _, kf = generate_key(args.keys, role)
            print(f"new {role} key {kf.keyid[:12]}: {kf.path} (private, mode 0600)")
    if "root" in plan:
        print("Keep the root keys offline (a USB stick in a safe): they are needed only to rotate or revoke keys.")
    print("The first `vitrina publish BUNDLE --repo REPO --keys DIR` makes a repository trusting these keys.")
    return 0


def _open_repo(args: argparse.Namespace):  # noqa: ANN202 - Repository, imported lazily
    from .repository import Repository

    repo = Repository(args.repo, _key_dirs(args))
    if not repo.exists():
        raise ValueError(f"{args.repo} is not a vitrina TUF repository (no metadata/1.root.json or timestamp.json)")
    return repo


def _keys_list(args: argparse.Namespace) -> int:
    repo = _open_repo(args)
    print(f"root v{repo.root().signed.version} of {args.repo}:")
    for role, threshold, keyid, here in repo.key_table():
        print(f"  {role:9} (needs {threshold})  {keyid}  {'private key here' if here else ''}")
    for role, when in repo.expiries().items():
        print(f"  {role} metadata expires {when}")
    return 0


def _tell_change(what: str, change) -> None:  # noqa: ANN001 - KeyChange
    print(f"{what}: root v{change.root_version} published.")
    for role, ids in change.removed.items():
        print(f"  {role}: key {', '.join(k[:12] for k in ids)} is no longer trusted")
    for role, ids in change.added.items():
        print(f"  {role}: new key {', '.join(k[:12] for k in ids)}")
    for path in change.new_files:
        print(f"  wrote {path}")
    print(
        "Devices take the new root at their next sync (it is signed by the old root keys and the new ones); "
        "nothing needs doing on them."
    )


def _keys_rotate(args: argparse.Namespace) -> int:
    from .repository import PublishError

    try:
        change = _open_repo(args).rotate(args.role)
    except PublishError as exc:
        raise ValueError(str(exc)) from None
    _tell_change(f"rotated the {args.role} keys", change)
    return 0


def _keys_revoke(args: argparse.Namespace) -> int:
    from .repository import PublishError

    try:
        change = _open_repo(args).revoke(args.keyid)
    except PublishError as exc:
        raise ValueError(str(exc)) from None
    _tell_change(f"revoked key {args.keyid}", change)
    return 0


def _keys_migrate(args: argparse.Namespace) -> int:
    from .migration import write_migration

    _open_repo(argparse.Namespace(repo=args.repo, keys=[], root_keys=None))
    path, key_id = write_migration(args.repo, args.old_key)
    print(
        f"wrote {path}: the repository's root signed by the old key {key_id}. Devices that trust only that key "
        "(--legacy-key, the kiosk's trusted_keys) take this root at their next sync, once, and trust only TUF from then on."
    )
    return 0


def _warn_expiring(repo) -> None:  # noqa: ANN001 - Repository, imported lazily
    """Tell staff which signed metadata expires within 14 days, and the command that renews it."""
    import datetime as dt

    from vitrina.runtime.timeutil import utc_now

    soon = utc_now() + dt.timedelta(days=14)
    fix = {
        "root": "a new root version: `vitrina keys rotate --role timestamp ... --root-keys DIR`",
        "targets": "`vitrina publish --repo REPO --keys KEYS`",
        "snapshot": "`vitrina publish --repo REPO --keys KEYS`",
    }
    for role, when in repo.expiries().items():
        if role in fix and dt.datetime.fromisoformat(when.replace("Z", "+00:00")) < soon:
            print(f"warning: {role} metadata expires {when}: devices will refuse it then; renew it with {fix[role]}")


def _publish(args: argparse.Namespace) -> int:
    from .repository import PublishError, Repository, publish

    try:
        if args.refresh_timestamp or args.bundle is None:
            repo = _open_repo(args)
            ts = repo.refresh_timestamp() if args.refresh_timestamp else repo.resign()
            what = "timestamp" if args.refresh_timestamp else "targets, snapshot and timestamp"
            print(
                f"re-signed {what} of {args.repo}: timestamp v{ts.signed.version} expires {ts.signed.expires:%Y-%m-%d %H:%M} UTC; "
                "devices see the same catalog, still fresh."
            )
            _warn_expiring(repo)
            return 0
        if not Repository(args.repo).exists():
            repo, _ = Repository.create(args.repo, _key_dirs(args), root_threshold=args.root_threshold)
            root = repo.root().signed
            print(
                f"created a TUF repository in {args.repo}: root v1 trusts {len(root.roles['root'].keyids)} root keys "
                f"(any {root.roles['root'].threshold} sign a change) and one key each for targets, snapshot and timestamp."
            )
            print(f"Give devices {args.repo}/metadata/1.root.json: `vitrina trust provision 1.root.json --root ROOT`.")
        r = publish(
            args.bundle,
            args.repo,
            _key_dirs(args),
            version=args.version,
            progress=lambda msg: print(f"publish: {msg}", file=sys.stderr, flush=True),
        )
    except PublishError as exc:
        raise ValueError(str(exc)) from None
    print(
        f"published {r.catalog} v{r.version} to {args.repo}: {r.blobs_added} new files ({r.blob_bytes_added / 1e6:.1f} MB), "
        f"{r.patches} deltas ({r.patch_bytes / 1e6:.2f} MB); targets v{r.targets_version}, snapshot v{r.snapshot_version}, "
        f"timestamp v{r.timestamp_version} (expires {r.timestamp_expires}: keep `vitrina publish --refresh-timestamp` in a daily cron job)"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from .serve import make_server

    server = make_server(args.repo, args.host, args.port)
    host, port = str(server.server_address[0]), server.server_address[1]
    print(f"serving {args.repo} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _bench_sync(args: argparse.Namespace) -> int:
    from .bench_sync import run_sync_bench

    if args.kills < 0:
        raise ValueError(f"--kills must be >= 0, got {args.kills}")
    r = run_sync_bench(
        args.bundle,
        args.kills,
        args.fraction,
        progress=lambda msg: print(f"bench sync: {msg}", file=sys.stderr, flush=True),
    )
    if args.json:
        print(json.dumps(r.to_json()))
        return 0
    mb = lambda n: f"{n / 1e6:.2f} MB"  # noqa: E731
    print(f"bundle: {mb(r.bundle_bytes)}; {r.changed_products} products changed in v2")
    print(
        f"full sync (v1, empty device): {mb(r.full_sync_bytes)} in {r.full_sync_s:.2f} s ({r.full_sync_bytes / 1e6 / max(r.full_sync_s, 1e-9):.0f} MB/s)"
    )
    print(
        f"delta sync (v1 → v2): {mb(r.delta_sync_bytes)} in {r.delta_sync_s:.2f} s = {r.delta_ratio:.2%} of the full transfer (target <= 1%)"
    )
    print(
        f"'nothing new' check: {r.check_requests} requests, {r.check_bytes} bytes of metadata (target <= 2 requests, <= 4 KB)"
    )
    if r.crash_kills:
        print(
            f"crash loop: {r.crash_kills} kill -9: {r.crash_outcomes} (other must be 0); {r.crash_resumed_runs} runs resumed a partial sync"
        )
    ok = (
        r.delta_ratio <= 0.01
        and r.crash_outcomes.get("other", 0) == 0
        and r.check_requests <= 2
        and r.check_bytes <= 4096
    )
    return 0 if ok else 1


PLUGIN = CommandPlugin(name="publish", commands=("keys", "publish", "serve", "bench sync"), register=register, order=30)
