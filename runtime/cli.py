"""The ``vitrina`` command.

The command is assembled from plugins (``vitrina.runtime.commands``): this module
adds the device core's ``search``, ``eval`` and ``info``, which need only numpy,
pillow and LiteRT; the sync client, the QA benchmark, the publisher tools, the
export pipeline and the kiosk register their own subcommands.

Exit codes: 0 success, 2 bad input (unreadable or empty sketch, bad options,
unusable bundle or catalog), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import photo_cli
from .bundle import Bundle, BundleError
from .commands import CommandPlugin, Commands, Unavailable, assemble, bounded_int, discover, positive_int
from .search import DEFAULT_K, MAX_K

EXIT_BAD_INPUT = 2


def register(commands: Commands) -> None:
    """Add the device core's ``search``, ``eval``, ``info`` and ``detect`` (``photo_cli.py``)."""
    p = commands.add("search", help="search a bundle with a sketch or a photo")
    p.add_argument("--bundle", required=True, type=Path)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sketch", type=Path, help="sketch image (PNG, JPEG...), dark ink on light paper")
    src.add_argument("--strokes", type=Path, help='strokes JSON: {"strokes": [[[x, y], ...], ...], "canvas": [w, h]}')
    src.add_argument(
        "--photo", type=Path, help="photo (JPEG, PNG...): the detected product (largest, or --box) is searched"
    )
    p.add_argument("--box", type=int, default=None, help="with --photo: index of the detected box to search")
    p.add_argument(
        "-k",
        type=bounded_int(MAX_K, why="MAX_K, the most products one search returns"),
        default=DEFAULT_K,
        help=f"products to return (1 to {MAX_K}, default {DEFAULT_K})",
    )
    p.add_argument("--precision", choices=("int8", "float"), default="int8")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_search)

    p = commands.add("eval", help="retrieval quality on the bundle's held-out sketch queries (or scenes: --task)")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument(
        "--task",
        choices=("sketch", "detect", "photo"),
        default="sketch",
        help="sketch queries (default), the detector, or photo search on held-out scenes",
    )
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_eval)

    p = commands.add("info", help="describe a bundle")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_info)
    photo_cli.register(commands)


PLUGIN = CommandPlugin(name="core", commands=("search", "eval", "info", "detect"), register=register, order=0)


def build_parser(plugins: Sequence[CommandPlugin] | None = None) -> tuple[argparse.ArgumentParser, list[Unavailable]]:
    """The ``vitrina`` parser with every plugin that can run here, and the commands of those that cannot."""
    parser = argparse.ArgumentParser(
        prog="vitrina", description="On-device product search: sketches, photos and words."
    )
    _, unavailable = assemble(parser, discover() if plugins is None else plugins)
    return parser, unavailable


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``vitrina`` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, unavailable = build_parser()
    for command in unavailable:
        if command.matches(argv):
            print(f"vitrina: error: {command.message()}", file=sys.stderr)
            return EXIT_BAD_INPUT
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except (BundleError, ValueError) as exc:
        print(f"vitrina {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ImportError as exc:
        print(f"vitrina {args.command}: error: a dependency is missing: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `vitrina info | head`: the reader left; nothing more to say, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 1


def _search(args: argparse.Namespace) -> int:
    from .product_search import ProductSearch, ProductSearchOptions
    from .rasterize import load_sketch_image, load_strokes_json, rasterize_strokes

    if args.photo:
        return photo_cli.photo_search_command(args)
    if args.box is not None:
        raise ValueError("--box picks a detected product of a photo: it needs --photo")
    bundle = Bundle.open(args.bundle)
    # The query becomes (S, S) pixels before the encoders load, so a large input and
    # the interpreters are never in memory together.
    if args.strokes:
        pixels = rasterize_strokes(load_strokes_json(args.strokes), bundle.raster_options)
    else:
        pixels = load_sketch_image(args.sketch, bundle.raster_options)
    engine = ProductSearch(bundle, ProductSearchOptions(args.precision, args.threads))
    try:
        result = engine.by_sketch_pixels(pixels, args.k)
    finally:
        engine.close()
    note = result.cap_note()
    if args.json:
        out = {"results": [m.to_json() for m in result.matches], "capped_by": result.capped_by, "cap": result.cap}
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if note is not None:
        print(
            f"vitrina search: note: {len(result.matches)} products, not the {args.k} asked for: {note}", file=sys.stderr
        )
    for rank, m in enumerate(result.matches, start=1):
        print(f"{rank:3d}. {m.score:6.3f}  {m.id:<14} {m.title}  [{m.category}, {m.color}]  ${m.price:,.0f}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_bundle

    if getattr(args, "sweep", False):
        return int(args.sweep_handler(args))
    if args.task != "sketch":
        return photo_cli.eval_command(args)

    report = evaluate_bundle(Bundle.open(args.bundle), num_threads=args.threads)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    print(f"{report.queries} held-out sketch queries, gallery of {report.gallery} products")
    names = ("map", "mrr", "p_at_1", "p_at_5", "p_at_10", "acc_at_1", "acc_at_10")
    print(f"{'':8}" + "".join(f"{n:>10}" for n in names))
    for precision, metrics in report.metrics.items():
        values = metrics.to_json()
        print(f"{precision:8}" + "".join(f"{values[n]:>10.4f}" for n in names))
    return 0


def _info(args: argparse.Namespace) -> int:
    bundle = Bundle.open(args.bundle)
    m = bundle.manifest
    codes = m["codes"]
    sizes = bundle.size_by_part()
    info = {
        "path": str(bundle.path),
        "catalog": m["catalog"]["name"],
        "format_version": m["format_version"],
        "vitrina_version": m["vitrina_version"],
        "created": m["created"],
        "items": m["catalog"]["items"],
        "images": m["catalog"]["images"],
        "code_type": codes["type"],
        "dims": codes["dims"],
        "metric": codes.get("metric", "cosine"),
        "bytes_per_item": codes.get("bytes_per_item", int(codes["dims"]) * np.dtype(codes["dtype"]).itemsize),
        "reducer": (codes.get("reducer") or {}).get("about", "encoder embedding, no reduction"),
        "rerank": codes.get("rerank"),
        "inputs": m["inputs"],
        "models": {role: sorted(p) for role, p in m["models"].items()},
        "categories": list(bundle.categories),
        "eval_set": bool(m.get("eval")),
        "bytes_by_part": sizes,
    }
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    for key, value in info.items():
        print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
