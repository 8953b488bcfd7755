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
from typing import TYPE_CHECKING

import numpy as np

from . import photo_cli, similar_cli
from .bundle import Bundle, BundleError

if TYPE_CHECKING:
    from .evaluate_styles import StyleEvalReport
from .commands import CommandPlugin, Commands, Unavailable, assemble, bounded_int, discover, positive_int
from .filters import SearchFilter
from .search import DEFAULT_K, MAX_K
from .update_log import UpdateLogError

EXIT_BAD_INPUT = 2


def register(commands: Commands) -> None:
    """Add the device core's ``search``, ``eval``, ``info``, ``detect`` (``photo_cli.py``) and ``similar``
    (``similar_cli.py``)."""
    p = commands.add("search", help="search a bundle with a sketch, a photo or words")
    p.add_argument("--bundle", required=True, type=Path)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--sketch", type=Path, help="sketch image (PNG, JPEG...), dark ink on light paper")
    src.add_argument("--strokes", type=Path, help='strokes JSON: {"strokes": [[[x, y], ...], ...], "canvas": [w, h]}')
    src.add_argument(
        "--text", help='words, e.g. "zapatilla roja"; misspellings are repaired, brands and numbers dropped'
    )
    src.add_argument(
        "--photo", type=Path, help="photo (JPEG, PNG...): the detected product (largest, or --box) is searched"
    )
    p.add_argument("--box", type=int, default=None, help="with --photo: index of the detected box to search")
    p.add_argument(
        "--text-method",
        choices=("auto", "hybrid", "text-visual", "keyword"),
        default="auto",
        help="with --text: keyword match first and the text-visual model next (hybrid; auto: hybrid when the "
        "bundle has the model, else keyword), the model alone, or keyword match alone",
    )
    p.add_argument(
        "-k",
        type=bounded_int(MAX_K, why="MAX_K, the most products one search returns"),
        default=DEFAULT_K,
        help=f"products to return (1 to {MAX_K}, default {DEFAULT_K})",
    )
    p.add_argument("--precision", choices=("int8", "float"), default="int8")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON")
    add_filter_arguments(p)
    p.set_defaults(handler=_search)

    p = commands.add("eval", help="quality on the bundle's held-out queries (sketch, colour, text) or scenes")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument(
        "--task",
        choices=("sketch", "color", "text", "detect", "photo", "similar", "identify", "outfit"),
        default="sketch",
        help="sketch: black-ink queries (default); color: colour sketches; text: category and colour words; "
        "detect: the detector on held-out scenes; photo: photo search on held-out scenes; "
        "similar: more-like-this, visual vs text-visual; identify: the sold product among a photo's products; "
        "outfit: sketch search on outfit-photo products indexed by the whole photo, the identified crop, the true crop",
    )
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_eval)

    p = commands.add("info", help="describe a bundle")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--verify", action="store_true", help="re-hash every file against the manifest now")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=_info)
    photo_cli.register(commands)
    similar_cli.register(commands)


PLUGIN = CommandPlugin(
    name="core", commands=("search", "eval", "info", "detect", "similar"), register=register, order=0
)


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
    except UpdateLogError as exc:
        print(f"vitrina {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"vitrina {args.command}: error: a dependency is missing: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `vitrina info | head`: the reader left; nothing more to say, no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit-time flush cannot fail again
        return 1


def _search(args: argparse.Namespace) -> int:
    from .product_search import ProductSearch, ProductSearchOptions
    from .rasterize import has_color, load_sketch_image, load_strokes_json, rasterize_strokes

    if args.photo:
        return photo_cli.photo_search_command(args, filters=filter_from_arguments(args))
    if args.box is not None:
        raise ValueError("--box picks a detected product of a photo: it needs --photo")
    bundle = Bundle.open(args.bundle, verify=False)  # the device's open: see Bundle.open
    if args.text is not None:
        from .text_cli import search_text

        return search_text(bundle, args, filters=filter_from_arguments(args))
    # The query becomes (S, S) pixels before the encoders load, so a large input and
    # the interpreters are never in memory together (colour strokes stay strokes: small).
    strokes = load_strokes_json(args.strokes) if args.strokes else None
    if strokes is not None:
        pixels = rasterize_strokes(strokes, bundle.raster_options)
        strokes = strokes if has_color(strokes) else None
    else:
        pixels = load_sketch_image(args.sketch, bundle.raster_options)
    engine = ProductSearch(bundle, ProductSearchOptions(args.precision, args.threads))
    try:
        filters = filter_from_arguments(args)
        if strokes is not None:
            result = engine.by_strokes(strokes, args.k, filters=filters)
        else:
            result = engine.by_sketch_pixels(pixels, args.k, filters=filters)
    finally:
        engine.close()
    note = result.cap_note()
    if args.json:
        out = {
            "results": [m.to_json() for m in result.matches],
            "capped_by": result.capped_by,
            "cap": result.cap,
            "note": note,
        }
        if result.query_color is not None:
            out["query_color"] = result.query_color
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if note is not None:
        print(
            f"vitrina search: note: {len(result.matches)} products, not the {args.k} asked for: {note}", file=sys.stderr
        )
    if result.query_color is not None:
        print(f"colour sketch: ranked by shape, then the colour family {result.query_color!r}")
    for rank, m in enumerate(result.matches, start=1):
        print(f"{rank:3d}. {m.score:6.3f}  {m.id:<14} {m.title}  [{m.category}, {m.color}]  ${m.price:,.0f}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate_bundle

    if getattr(args, "sweep", False):
        return int(args.sweep_handler(args))
    if getattr(args, "store_catalog", None) is not None:
        return int(args.store_handler(args))
    if args.task in ("detect", "photo"):
        return photo_cli.eval_command(args)
    if args.task == "text":
        from .text_cli import eval_text

        return eval_text(args)
    if args.task == "color":
        return _eval_color(args)
    if args.task == "similar":
        return similar_cli.eval_similar(args)
    if args.task == "identify":
        return similar_cli.eval_identify(args)
    if args.task == "outfit":
        return similar_cli.eval_outfit(args)

    from .evaluate_styles import evaluate_styles, has_style_eval

    bundle = Bundle.open(args.bundle)
    report = evaluate_bundle(bundle, num_threads=args.threads)
    styles = evaluate_styles(bundle, num_threads=args.threads) if has_style_eval(bundle) else None
    if args.json:
        print(json.dumps(report.to_json() | ({"styles": styles.to_json()} if styles else {})))
        return 0
    print(f"{report.queries} held-out sketch queries, gallery of {report.gallery} products")
    names = ("map", "mrr", "p_at_1", "p_at_5", "p_at_10", "acc_at_1", "acc_at_10")
    print(f"{'':8}" + "".join(f"{n:>10}" for n in names))
    for precision, metrics in report.metrics.items():
        values = metrics.to_json()
        print(f"{precision:8}" + "".join(f"{values[n]:>10.4f}" for n in names))
    if styles is not None:
        _print_styles(styles)
    return 0


def _print_styles(styles: StyleEvalReport) -> None:
    """The per-style table of ``vitrina eval`` (black ink; int8 shipped codes, float codes)."""
    print(f"\nper drawing style ({styles.queries} held-out sketches each): mAP / P@10 / own acc@10")
    precisions = list(styles.metrics)
    print(f"{'style':20}{'group':>11}" + "".join(f"{p + ' mAP':>11}{'P@10':>7}{'acc@10':>8}" for p in precisions))
    for name in styles.names:
        row = f"{name:20}{styles.groups[name]:>11}"
        for p in precisions:
            m = styles.metrics[p][name]
            row += f"{m.map:>11.3f}{m.p_at_10:>7.3f}{m.acc_at_10:>8.3f}"
        print(row)
    for p in precisions:
        trained, held = styles.group_map(p, "trained"), styles.group_map(p, "held_out")
        if trained is not None and held is not None:
            print(f"{p}: trained-style mAP {trained:.3f}, held-out-style mAP {held:.3f}, gap {trained - held:+.3f}")


def _eval_color(args: argparse.Namespace) -> int:
    from .evaluate_color import evaluate_color

    report = evaluate_color(Bundle.open(args.bundle), num_threads=args.threads)
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    print(f"{report.queries} held-out colour sketch queries, gallery of {report.gallery} products")
    print(f"{'':8}{'colour P@10':>12}{'colour mAP':>12}{'cat. mAP':>10}{'black mAP':>11}{'order':>8}")
    for p in report.color:
        c, k, b = report.color[p], report.category[p], report.black_ink[p]
        print(f"{p:8}{c.p_at_10:>12.4f}{c.map:>12.4f}{k.map:>10.4f}{b.map:>11.4f}{report.order_check[p]:>8.3f}")
    return 0


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    """The search filter options (``--category``, ``--color``, ``--min-price``, ``--max-price``, ``--in-stock``)."""
    g = p.add_argument_group(
        "filters (applied during the scan; a filter matching nothing returns no products and says why)"
    )
    g.add_argument(
        "--category", action="append", default=[], help="keep this category (repeat, or comma-separate, for several)"
    )
    g.add_argument(
        "--color", action="append", default=[], help="keep this colour (repeat, or comma-separate, for several)"
    )
    g.add_argument("--min-price", type=float, default=None, help="lowest price kept (inclusive)")
    g.add_argument("--max-price", type=float, default=None, help="highest price kept (inclusive)")
    g.add_argument("--in-stock", action="store_true", help="only products in stock")


def filter_from_arguments(args: argparse.Namespace) -> SearchFilter:
    """The :class:`SearchFilter` the filter options describe.

    Raises:
        ValueError: a bad price range or an empty name.
    """

    def split(values: list[str]) -> tuple[str, ...]:
        return tuple(v.strip() for value in values for v in value.split(","))

    return SearchFilter(
        categories=split(args.category),
        colors=split(args.color),
        min_price=args.min_price,
        max_price=args.max_price,
        in_stock=args.in_stock,
    )


def _info(args: argparse.Namespace) -> int:
    bundle = Bundle.open(args.bundle, verify=args.verify)
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
    if args.verify:
        info["verified"] = f"all {len(m['files'])} files hash as the manifest says"
    if args.json:
        print(json.dumps(info, ensure_ascii=False, indent=2))
        return 0
    for key, value in info.items():
        print(f"{key:>16}: {value}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
