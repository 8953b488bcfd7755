"""Publisher subcommands of ``vitrina``: ``keys``, ``sign``, ``publish``, ``serve`` and ``bench sync``.

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
    """Add ``keys``, ``sign``, ``publish``, ``serve`` and ``bench sync``."""
    p = commands.add("keys", help="signing keys: generate a pair, endorse a new key with an old one")
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="KEYS_COMMAND")
    k = keys.add_parser("generate", help="write NAME.key (private, 0600) and NAME.pub")
    k.add_argument("--out", type=Path, required=True, help="folder for the key files")
    k.add_argument("--name", default="vitrina")
    k.set_defaults(handler=_keys_generate)
    k = keys.add_parser("endorse", help="sign a new public key with the old private key (key rotation)")
    k.add_argument("--old-key", type=Path, required=True, help="the old private key (.key)")
    k.add_argument("--new-pub", type=Path, required=True, help="the new public key (.pub)")
    k.add_argument(
        "--out", type=Path, required=True, help="endorsement JSON to write (pass to `vitrina publish --endorsement`)"
    )
    k.set_defaults(handler=_keys_endorse)

    p = commands.add("sign", help="set a bundle's release version and expiry and sign its manifest")
    p.add_argument("bundle", type=Path)
    p.add_argument("--key", type=Path, required=True, help="private key (.key)")
    p.add_argument("--version", type=int, required=True, help="release version, monotonic per catalog (>= 1)")
    p.add_argument(
        "--expires-days", type=float, default=30.0, help="days until devices refuse this manifest (default 30)"
    )
    p.set_defaults(handler=_sign)

    p = commands.add("publish", help="add a signed bundle to a sync repository folder (with deltas)")
    p.add_argument("bundle", type=Path)
    p.add_argument("--repo", type=Path, required=True)
    p.add_argument("--endorsement", type=Path, action="append", default=[], help="key endorsement JSON to publish")
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


def _keys_generate(args: argparse.Namespace) -> int:
    from vitrina.runtime.sync.trust import PublicKey

    from .signing import generate_keys

    key, pub = generate_keys(args.out, args.name)
    print(f"private key: {key} (keep it off devices)\npublic key:  {pub} (copy to devices: --trust / trusted_keys)")
    print(f"key id: {PublicKey.load(pub).key_id}")
    return 0


def _keys_endorse(args: argparse.Namespace) -> int:
    from vitrina.runtime.sync.trust import PublicKey, SignatureError

    from .signing import endorse_key

    try:
        doc = endorse_key(args.old_key, PublicKey.load(args.new_pub))
    except SignatureError as exc:
        raise ValueError(str(exc)) from None
    args.out.write_text(json.dumps(doc, indent=2))
    print(f"wrote {args.out}: key {doc['key_id']} endorsed by {doc['endorsed_by']}")
    return 0


def _sign(args: argparse.Namespace) -> int:
    from vitrina.runtime.sync.trust import SignatureError

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
    r = publish(
        args.bundle, args.repo, endorsements, progress=lambda msg: print(f"publish: {msg}", file=sys.stderr, flush=True)
    )
    print(
        f"published {r.catalog} v{r.version} to {args.repo}: {r.blobs_added} new files ({r.blob_bytes_added / 1e6:.1f} MB), "
        f"{r.patches} deltas ({r.patch_bytes / 1e6:.2f} MB)"
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
        f"delta sync (v1 → v2): {mb(r.delta_sync_bytes)} in {r.delta_sync_s:.2f} s = {r.delta_ratio:.2%} of the full transfer (target <= 5%)"
    )
    if r.crash_kills:
        print(
            f"crash loop: {r.crash_kills} kill -9: {r.crash_outcomes} (other must be 0); {r.crash_resumed_runs} runs resumed a partial sync"
        )
    ok = r.delta_ratio <= 0.05 and r.crash_outcomes.get("other", 0) == 0
    return 0 if ok else 1


PLUGIN = CommandPlugin(
    name="publish", commands=("keys", "sign", "publish", "serve", "bench sync"), register=register, order=30
)
