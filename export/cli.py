"""Export subcommands of ``vitrina``: ``demo-catalog``, ``build``, ``detector-sweep`` and ``eval --sweep``.

Importing this module is cheap: TensorFlow is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vitrina.runtime.commands import CommandPlugin, Commands, positive_int


def register(commands: Commands) -> None:
    """Add ``demo-catalog``, ``build`` and ``detector-sweep``, and the ``--sweep`` options of ``eval``."""
    p = commands.add("demo-catalog", help="write a demo catalog folder from Fashion-MNIST")
    p.add_argument("--out", required=True, type=Path, help="catalog folder to write")
    p.add_argument("--source", type=Path, default=None, help="folder with the Fashion-MNIST IDX .gz files")
    p.add_argument("--limit-train", type=int, default=None, help="keep only the first N train products")
    p.add_argument("--limit-test", type=int, default=None, help="keep only the first N test products")
    p.add_argument("--seed", type=int, default=7, help="seed of colours, titles and prices")
    p.add_argument(
        "--store",
        choices=("main", "second"),
        default="main",
        help="main: train+test products, the main store's titles; second: the generalisation store "
        "(test products only, its own title words)",
    )
    p.add_argument(
        "--outfit-share",
        type=float,
        default=0.3,
        help="share of products whose catalog image is an outfit photo: the product among 1-4 others "
        "of its split (0 to 1; default 0.3; ground truth in outfits.json, for the measurements only)",
    )
    p.set_defaults(handler=_demo_catalog)

    p = commands.add("build", help="train, quantise and encode a catalog into a bundle")
    p.add_argument("--catalog", required=True, type=Path, help="catalog folder (catalog.csv + images)")
    p.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    p.add_argument(
        "--profile",
        default="demo",
        help="tiny (tests), small (the text-visual model measured in minutes) or demo (default)",
    )
    p.add_argument("--work", type=Path, default=None, help="cache/checkpoint folder (default: <out>.work)")
    p.add_argument("--skip-bad-rows", action="store_true", help="report and drop invalid catalog rows")
    p.add_argument("--steps", type=int, default=None, help="override the profile's training steps")
    p.add_argument(
        "--train-styles",
        default=None,
        help="sketch styles to train on: zoo (every style but the held-out pair and hatched, a third "
        "silhouette) or comma-separated names (default: the profile's, silhouette)",
    )
    p.add_argument("--workers", type=int, default=2, help="processes for sketch rendering")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    c = p.add_argument_group("catalog codes (default: the profile's; see docs/compact-codes.md)")
    c.add_argument("--codes", default=None, help="float, pcaN, umapN or bitsN (e.g. pca8, umap8, bits64)")
    c.add_argument("--umap-fit-sample", type=int, default=None, help="fit UMAP on N catalog photos (default: all)")
    c.add_argument(
        "--umap-supervised", choices=("yes", "no"), default=None, help="fit UMAP with the catalog's categories"
    )
    c.add_argument("--hash-head", choices=("itq", "cbs", "dsh"), default=None, help="how binary codes are learnt")
    c.add_argument(
        "--rerank", choices=("yes", "no"), default=None, help="ship int8 full embeddings for a two-stage search"
    )
    c.add_argument("--shortlist", type=int, default=None, help="rows the two-stage search re-ranks (default 200)")
    c.add_argument(
        "--code-dtype",
        choices=("auto", "float16", "int8"),
        default=None,
        help="PCA / UMAP code storage (default auto: int8 with a per-dimension scale from 250,000 catalog images)",
    )
    p.set_defaults(handler=_build)

    p = commands.add("detector-sweep", help="train and measure detector variants (input size, grid, clipping, steps)")
    p.add_argument("--catalog", required=True, type=Path, help="the demo catalog folder")
    p.add_argument("--out", type=Path, default=Path("build/detector-sweep"), help="folder for the report")
    p.add_argument(
        "--variants",
        default=None,
        help="comma-separated names (default all: 128, 128-s4, 160, 192, 192-clip, 192-clip-s4, 192-clip-2400)",
    )
    p.add_argument("--jobs", type=positive_int, default=2, help="trainings side by side")
    p.add_argument("--iou", type=float, default=0.5, help="NMS IoU threshold of the measurement")
    p.set_defaults(handler=_detector_sweep)

    p = commands.get("eval")
    if p is not None:
        sweep = p.add_argument_group("compact-code sweep (export side: needs vitrina[export])")
        sweep.add_argument(
            "--sweep",
            action="store_true",
            help="compare PCA / UMAP / binary codes and two-stage search on a float bundle",
        )
        sweep.add_argument(
            "--catalog",
            type=Path,
            help="the bundle's catalog folder (train-split sketches for hash heads and distillation)",
        )
        sweep.add_argument(
            "--out", type=Path, default=Path("build/sweep"), help="folder for sweep.json, sweep.md and the plots"
        )
        sweep.add_argument("--pca-dims", default="4,8,16,32,64", help="PCA sizes, comma-separated")
        sweep.add_argument("--umap-dims", default="4,8,16", help="UMAP sizes, comma-separated")
        sweep.add_argument("--bits", default="64,128,256", help="binary code sizes, comma-separated multiples of 64")
        sweep.add_argument(
            "--umap-fit-sample", type=positive_int, default=None, help="fit UMAP on N catalog photos (default: all)"
        )
        sweep.add_argument(
            "--train-sketches", type=positive_int, default=20000, help="train-split sketches rendered for the heads"
        )
        sweep.add_argument("--hash-steps", type=positive_int, default=2000, help="training steps per hash head")
        sweep.add_argument("--cold-runs", type=int, default=3, help="fresh processes per cold-start figure (0 skips)")
        p.set_defaults(sweep_handler=_eval_sweep)
        store = p.add_argument_group("another store (export side: needs vitrina[export])")
        store.add_argument(
            "--store-catalog",
            type=Path,
            default=None,
            help="with --task identify or similar: measure the bundle's models on this other store's catalog "
            "(vitrina demo-catalog --store second)",
        )
        store.add_argument(
            "--store-scenes", type=positive_int, default=400, help="scenes composed of the other store's products"
        )
        p.set_defaults(store_handler=_eval_store)


def _demo_catalog(args: argparse.Namespace) -> int:
    from .data.demo_catalog import write_demo_catalog
    from .data.fashion_mnist import DEFAULT_DIR
    from .data.outfit_photos import OutfitOptions

    for name in ("limit_train", "limit_test"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    path = write_demo_catalog(
        args.out,
        args.source or DEFAULT_DIR,
        limit_train=args.limit_train,
        limit_test=args.limit_test,
        seed=args.seed,
        store=args.store,
        outfits=OutfitOptions(share=args.outfit_share),
    )
    print(f"wrote {path}")
    return 0


def _detector_sweep(args: argparse.Namespace) -> int:
    from .detector_sweep import parse_variants, run_sweep

    if not 0.0 < args.iou <= 1.0:
        raise ValueError(f"--iou must be in (0, 1], got {args.iou}")
    variants = parse_variants(args.variants)
    run_sweep(args.catalog, args.out, variants=variants, jobs=args.jobs, iou=args.iou)
    print(f"wrote {args.out / 'detector_sweep.md'} and detector_sweep.json")
    return 0


def _build(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from vitrina.runtime.codes import CodeType

    from .build import BuildOptions, build_bundle
    from .data.catalog import CatalogError
    from .profiles import get_profile

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
    if args.code_dtype is not None:
        code_opts = replace(code_opts, code_dtype=args.code_dtype)
    if args.shortlist is not None:
        if args.shortlist < 1:
            raise ValueError(f"--shortlist must be >= 1, got {args.shortlist}")
        code_opts = replace(code_opts, shortlist=args.shortlist)
    styles = None
    if args.train_styles is not None:
        from .data.sketch_styles import parse_styles

        styles = parse_styles(args.train_styles)
    options = BuildOptions(
        profile=args.profile,
        train_styles=styles,
        work_dir=args.work,
        skip_bad_rows=args.skip_bad_rows,
        workers=args.workers,
        steps=args.steps,
        progress=not args.quiet,
        codes=args.codes,
        code_options=code_opts,
    )
    try:
        result = build_bundle(args.catalog, args.out, options)
    except CatalogError as exc:
        raise ValueError(str(exc)) from None
    print(f"wrote bundle {result.bundle}: {result.items} products, {result.images} images, in {result.seconds:.0f} s")
    t = result.train
    print(
        f"training: {t.steps} steps ({t.steps_this_run} this run, {t.seconds:.0f} s, {t.pairs_per_second:.0f} pairs/s; {t.seconds_total:.0f} s in all), final loss {t.final_loss}"
    )
    if result.sketch_agreement:
        print(
            f"int8 vs float: sketch cosine {result.sketch_agreement.mean_cosine}, top-10 unchanged {result.sketch_agreement.top10_unchanged}, photo cosine {result.photo_cosine}"
        )
    from vitrina.runtime.bundle import Bundle

    report = Bundle.open(result.bundle, verify=False).report()
    detector = report.get("detector")
    if detector:
        d = detector["training"]
        print(
            f"detector: {d['steps']} steps ({d['steps_this_run']} this run, {d['seconds']:.0f} s in its own process, "
            f"final loss {d['final_loss']}; the build waited {detector.get('waited_for_training_seconds', 0):.0f} s "
            f"for it), {detector['input_size']} px, score threshold {detector['score_threshold']}"
        )
    text_visual = report.get("text_visual")
    if text_visual:
        tv = text_visual["training"]
        how = "cached" if tv.get("cached") else f"{tv['seconds']:.0f} s, final loss {tv['final_loss']}"
        print(
            f"text-visual: {tv['steps']} steps ({how}) on {text_visual['train_products']} products, "
            f"int8 vs float code cosine {text_visual['int8_float_code_cosine']}"
        )
    ident = report.get("identification")
    if ident and ident.get("other_photos"):
        print(
            f"identification: {ident['other_photos']} of {ident['photos']} photos are not packshots; "
            f"{ident['several_products']} showed several products, {ident['one_product']} one, "
            f"{ident['no_product_found']} none found (whole photo encoded); crop picked by {ident['method']}, "
            f"{ident['seconds']:.0f} s"
        )
    return 0


def _sizes(text: str, flag: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"{flag} must be comma-separated whole numbers such as 8,16; got {text!r}") from None
    if min(sizes, default=1) < 1:
        raise ValueError(f"{flag} sizes must be >= 1, got {text!r}")
    return sizes


def _eval_store(args: argparse.Namespace) -> int:
    import json

    from vitrina.runtime.bundle import Bundle
    from vitrina.runtime.evaluate_identify import format_identify
    from vitrina.runtime.evaluate_similar import format_similar

    from .second_store import evaluate_store_identify, evaluate_store_similar

    if args.task not in ("identify", "similar"):
        raise ValueError(f"--store-catalog goes with --task identify or similar, not {args.task}")
    bundle = Bundle.open(args.bundle)
    if args.task == "identify":
        report = evaluate_store_identify(bundle, args.store_catalog, scenes=args.store_scenes, num_threads=args.threads)
        print(json.dumps(report.to_json()) if args.json else format_identify(report, store=args.store_catalog.name))
    else:
        similar = evaluate_store_similar(bundle, args.store_catalog, num_threads=args.threads)
        print(json.dumps(similar.to_json()) if args.json else format_similar(similar))
    return 0


def _eval_sweep(args: argparse.Namespace) -> int:
    if args.catalog is None:
        raise ValueError("--sweep needs --catalog: the catalog folder the bundle was built from")
    from .codes.sweep import SweepOptions, run_sweep

    bits = _sizes(args.bits, "--bits")
    if any(b % 64 for b in bits):
        raise ValueError(f"--bits must be multiples of 64, got {args.bits!r}")
    options = SweepOptions(
        pca_dims=_sizes(args.pca_dims, "--pca-dims"),
        umap_dims=_sizes(args.umap_dims, "--umap-dims"),
        bits=bits,
        umap_fit_sample=args.umap_fit_sample,
        train_sketches=args.train_sketches,
        hash_steps=args.hash_steps,
        cold_runs=max(0, args.cold_runs),
        progress=not args.json,
    )
    report = run_sweep(args.bundle, args.catalog, args.out, options)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    from .codes.sweep import markdown_table

    print(markdown_table(report))
    print(f"wrote {args.out}/sweep.json, sweep.md, map_vs_dims.png, pr_curves.png")
    return 0


PLUGIN = CommandPlugin(
    name="export",
    commands=("demo-catalog", "build", "eval --sweep"),
    register=register,
    requires=("tensorflow", "umap", "skimage"),
    extra="export",
    order=40,
)
