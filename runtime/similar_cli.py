"""``vitrina similar`` and ``vitrina eval --task similar|identify`` (registered by ``cli.py``).

``vitrina similar --bundle B --id ID [-k K] [--json]``: the products nearest
product ``ID`` in the text-visual space (title and main image together), or by
``--method visual`` in the photo encoder's codes; the search filters apply.
A bundle without the text-visual model answers ``--method auto`` visually and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .bundle import Bundle
from .commands import Commands, bounded_int, positive_int
from .search import DEFAULT_K, MAX_K

SIMILAR_METHODS = ("auto", "text-visual", "visual")


def register(commands: Commands) -> None:
    """Add ``vitrina similar``."""
    from .cli import add_filter_arguments  # cli.py registers this module: imported when it runs

    p = commands.add("similar", help="products like one product (text-visual nearest neighbours)")
    p.add_argument("--bundle", required=True, type=Path)
    p.add_argument("--id", required=True, help="the product's id, as in the catalog")
    p.add_argument(
        "-k",
        type=bounded_int(MAX_K, why="MAX_K, the most products one search returns"),
        default=DEFAULT_K,
        help=f"products to return (1 to {MAX_K}, default {DEFAULT_K})",
    )
    p.add_argument(
        "--method",
        choices=SIMILAR_METHODS,
        default="auto",
        help="text-visual (title + image), visual (photo codes); auto: text-visual when the bundle has it",
    )
    p.add_argument("--precision", choices=("int8", "float"), default="int8")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--json", action="store_true", help="print JSON")
    add_filter_arguments(p)
    p.set_defaults(handler=similar_command)


def similar_command(args: argparse.Namespace) -> int:
    """Print the products like ``args.id`` (JSON: ``{"id", "method", "results", "note"}``)."""
    from .cli import filter_from_arguments
    from .product_search import ProductSearch, ProductSearchOptions
    from .text_visual import has_text_visual

    bundle = Bundle.open(args.bundle, verify=False)
    filters = filter_from_arguments(args)
    method = args.method
    if method == "auto":
        method = "text-visual" if has_text_visual(bundle) else "visual"
    with ProductSearch(bundle, ProductSearchOptions(args.precision, args.threads)) as engine:
        index = {item.id: i for i, item in enumerate(engine.catalog.items)}
        if args.id not in index:
            raise ValueError(f"no product with id {args.id!r} in bundle {args.bundle}")
        item = index[args.id]
        if method == "text-visual":
            result = engine.similar_by_text_visual(item, args.k, filters=filters)
        else:
            result = engine.similar(item, args.k, filters=filters)
    note = result.cap_note()
    if args.method == "auto" and method == "visual":
        note = "; ".join(n for n in (note, "the bundle has no text-visual model: ranked by the photo codes") if n)
    if args.json:
        out = {"id": args.id, "method": method, "results": [m.to_json() for m in result.matches], "note": note}
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if note:
        print(f"vitrina similar: note: {note}", file=sys.stderr)
    for rank, m in enumerate(result.matches, start=1):
        print(f"{rank:3d}. {m.score:6.3f}  {m.id:<14} {m.title}  [{m.category}, {m.color}]  ${m.price:,.0f}")
    return 0


def eval_similar(args: argparse.Namespace) -> int:
    """``vitrina eval --task similar``."""
    from .evaluate_similar import evaluate_similar, format_similar

    report = evaluate_similar(Bundle.open(args.bundle))
    print(json.dumps(report.to_json()) if args.json else format_similar(report))
    return 0


def eval_identify(args: argparse.Namespace) -> int:
    """``vitrina eval --task identify``."""
    from .evaluate_identify import evaluate_identify, format_identify

    report = evaluate_identify(Bundle.open(args.bundle), num_threads=args.threads)
    print(json.dumps(report.to_json()) if args.json else format_identify(report))
    return 0


def eval_outfit(args: argparse.Namespace) -> int:
    """``vitrina eval --task outfit``."""
    from .evaluate_outfits import evaluate_outfits, format_outfits

    report = evaluate_outfits(Bundle.open(args.bundle), num_threads=args.threads)
    print(json.dumps(report.to_json()) if args.json else format_outfits(report))
    return 0
