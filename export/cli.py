"""Export subcommands of ``vitrina``: ``demo-catalog`` and ``build``.

Importing this module is cheap: TensorFlow is imported only when a command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("demo-catalog", help="write a demo catalog folder from Fashion-MNIST")
    p.add_argument("--out", required=True, type=Path, help="catalog folder to write")
    p.add_argument("--source", type=Path, default=None, help="folder with the Fashion-MNIST IDX .gz files")
    p.add_argument("--limit-train", type=int, default=None, help="keep only the first N train products")
    p.add_argument("--limit-test", type=int, default=None, help="keep only the first N test products")
    p.add_argument("--seed", type=int, default=7, help="seed of colours, styles and prices")
    p.set_defaults(handler=_demo_catalog)

    p = subparsers.add_parser("build", help="train, quantise and encode a catalog into a bundle")
    p.add_argument("--catalog", required=True, type=Path, help="catalog folder (catalog.csv + images)")
    p.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    p.add_argument("--profile", default="demo", help="tiny (tests) or demo (default)")
    p.add_argument("--work", type=Path, default=None, help="cache/checkpoint folder (default: <out>.work)")
    p.add_argument("--skip-bad-rows", action="store_true", help="report and drop invalid catalog rows")
    p.add_argument("--steps", type=int, default=None, help="override the profile's training steps")
    p.add_argument("--workers", type=int, default=2, help="processes for sketch rendering")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    c = p.add_argument_group("catalog codes (default: the profile's; see docs/compact-codes.md)")
    c.add_argument("--codes", default=None, help="float, pcaN, umapN or bitsN (e.g. pca8, umap8, bits64)")
    c.add_argument("--umap-fit-sample", type=int, default=None, help="fit UMAP on N catalog photos (default: all)")
    c.add_argument("--umap-supervised", choices=("yes", "no"), default=None, help="fit UMAP with the catalog's categories")
    c.add_argument("--hash-head", choices=("itq", "cbs", "dsh"), default=None, help="how binary codes are learnt")
    c.add_argument("--rerank", choices=("yes", "no"), default=None, help="ship int8 full embeddings for a two-stage search")
    c.add_argument("--shortlist", type=int, default=None, help="rows the two-stage search re-ranks (default 200)")
    s = p.add_argument_group("release (see the field-staff section of README.md)")
    s.add_argument("--sign", type=Path, default=None, help="private key: sign the bundle")
    s.add_argument("--release-version", type=int, default=None, help="release version to sign (monotonic per catalog)")
    s.add_argument("--expires-days", type=float, default=30.0, help="days until the signed manifest expires")
    p.set_defaults(handler=_build)


def _demo_catalog(args: argparse.Namespace) -> int:
    from .demo_catalog import write_demo_catalog
    from .fashion_mnist import DEFAULT_DIR

    for name in ("limit_train", "limit_test"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    path = write_demo_catalog(args.out, args.source or DEFAULT_DIR, args.limit_train, args.limit_test, args.seed)
    print(f"wrote {path}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from .build import BuildOptions, build_bundle
    from .catalog import CatalogError

    from dataclasses import replace

    from vitrina.runtime.codes import CodeType

    from .profiles import get_profile

    if (args.sign is None) != (args.release_version is None):
        raise ValueError("--sign KEY and --release-version N go together")
    profile = get_profile(args.profile)
    if args.codes is not None:
        CodeType.parse(args.codes)
    code_opts = profile.code_options
    umap = code_opts.umap
    if args.umap_fit_sample is not None:
        umap = replace(umap, fit_sample=args.umap_fit_sample)
    if args.umap_supervised is not None:
        umap = replace(umap, supervised=args.umap_supervised == "yes")
    code_opts = replace(code_opts, umap=umap)
    if args.hash_head:
        code_opts = replace(code_opts, hash_head=args.hash_head)
    if args.rerank is not None:
        code_opts = replace(code_opts, rerank=args.rerank == "yes")
    if args.shortlist is not None:
        if args.shortlist < 1:
            raise ValueError(f"--shortlist must be >= 1, got {args.shortlist}")
        code_opts = replace(code_opts, shortlist=args.shortlist)
    options = BuildOptions(args.profile, args.work, args.skip_bad_rows, args.workers, args.steps, not args.quiet, args.codes, code_opts)
    try:
        result = build_bundle(args.catalog, args.out, options)
    except CatalogError as exc:
        raise ValueError(str(exc)) from None
    print(f"wrote bundle {result.bundle}: {result.items} products, {result.images} images, in {result.seconds:.0f} s")
    if args.sign:
        from vitrina.runtime.signing import sign_bundle

        release = sign_bundle(result.bundle, args.sign, args.release_version, args.expires_days)
        print(f"signed: version {release['version']}, expires {release['expires']}")
    t = result.train
    print(f"training: {t.steps} steps ({t.steps_this_run} this run, {t.seconds:.0f} s, {t.pairs_per_second:.0f} pairs/s; {t.seconds_total:.0f} s in all), final loss {t.final_loss}")
    if result.sketch_agreement:
        print(f"int8 vs float: sketch cosine {result.sketch_agreement.mean_cosine}, top-10 unchanged {result.sketch_agreement.top10_unchanged}, photo cosine {result.photo_cosine}")
    return 0
