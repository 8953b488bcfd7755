"""``vitrina search --text`` and ``vitrina eval --task text``: the text side of the core commands."""

from __future__ import annotations

import argparse
import json
import sys

from .bundle import Bundle
from .filters import SearchFilter


def search_text(bundle: Bundle, args: argparse.Namespace, *, filters: SearchFilter | None = None) -> int:
    """Run one text search and print it; a query with no known word prints an empty result (exit 0).

    JSON: ``{"results": [...], "query_words": [...], "corrected": {typed: word}, "dropped": [...],
    "synonyms": {typed phrase: words},
    "note": str|null, "method": "hybrid"|"text-visual"|"keyword"}``.
    """
    from .product_search import ProductSearch, ProductSearchOptions

    method = getattr(args, "text_method", "auto")
    engine = ProductSearch(bundle, ProductSearchOptions(args.precision, args.threads, text_method=method))
    try:
        result = engine.by_text(args.text, args.k, filters=filters)
    finally:
        engine.close()
    note = result.cap_note()
    if args.json:
        out = {
            "results": [m.to_json() for m in result.matches],
            **result.query.to_json(),
            "note": note,
            "method": result.method,
        }
        print(json.dumps(out, ensure_ascii=False))
        return 0
    if result.query.corrected:
        fixes = ", ".join(f"{typed} → {word}" for typed, word in result.query.corrected.items())
        print(f"did you mean: {' '.join(result.query.words)}  ({fixes})", file=sys.stderr)
    if result.query.synonyms:
        meant = ", ".join(f"{typed} → {words}" for typed, words in result.query.synonyms.items())
        print(f"read as: {meant}", file=sys.stderr)
    if result.query.dropped and not result.query.empty:
        print(f"ignored: {', '.join(result.query.dropped)}", file=sys.stderr)
    if note is not None and not result.matches:
        print(f"vitrina search: {note}; no results", file=sys.stderr)
        return 0
    if note is not None:
        print(
            f"vitrina search: note: {len(result.matches)} products, not the {args.k} asked for: {note}", file=sys.stderr
        )
    for rank, m in enumerate(result.matches, start=1):
        print(f"{rank:3d}. {m.score:6.3f}  {m.id:<14} {m.title}  [{m.category}, {m.color}]  ${m.price:,.0f}")
    return 0


def eval_text(args: argparse.Namespace) -> int:
    """``vitrina eval --task text``: keyword search by query kind, and the word-repair comparison."""
    from .text_eval import evaluate_text, format_report

    report = evaluate_text(Bundle.open(args.bundle))
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
        return 0
    print(format_report(report))
    return 0
