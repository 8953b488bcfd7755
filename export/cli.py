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

    options = BuildOptions(args.profile, args.work, args.skip_bad_rows, args.workers, args.steps, not args.quiet)
    try:
        result = build_bundle(args.catalog, args.out, options)
    except CatalogError as exc:
        raise ValueError(str(exc)) from None
    print(f"wrote bundle {result.bundle}: {result.items} products, {result.images} images, in {result.seconds:.0f} s")
    t = result.train
    print(f"training: {t.steps} steps ({t.steps_this_run} this run, {t.seconds:.0f} s, {t.pairs_per_second:.0f} pairs/s; {t.seconds_total:.0f} s in all), final loss {t.final_loss}")
    if result.sketch_agreement:
        print(f"int8 vs float: sketch cosine {result.sketch_agreement.mean_cosine}, top-10 unchanged {result.sketch_agreement.top10_unchanged}, photo cosine {result.photo_cosine}")
    return 0
