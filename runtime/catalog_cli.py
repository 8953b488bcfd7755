"""``vitrina catalog``: the store's daily updates on the device, without a rebuild.

* ``catalog update --bundle B --from stock.csv``: prices and stock (columns id, price, in_stock);
* ``catalog add --bundle B --from new.csv``: new products with photos, encoded here with the
  bundle's photo encoder (columns id, title, category, color, price, photo[, in_stock]);
* ``catalog remove --bundle B --id X ...``: removals (tombstones);
* ``catalog compact --bundle B``: fold the update log into a new segment;
* ``catalog status --bundle B``: what the log holds, and notes (superseded logs, torn records).

Updates go to the append-only log beside the bundle (:mod:`vitrina.runtime.update_log`);
the signed bundle files are never modified. A feed with bad rows is refused whole
(exit 2, each bad row listed by line) unless ``--skip-bad-rows`` applies the rest.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .commands import CommandPlugin, Commands, positive_int

EXIT_BAD_INPUT = 2


def register(commands: Commands) -> None:
    """Add the ``catalog`` group."""
    group = commands.group("catalog", help="on-device catalog updates: stock and prices, new products, removals")
    p = group.add_parser("update", help="set prices and stock from a CSV feed (id, price, in_stock)")
    _common(p)
    p.add_argument("--from", dest="feed", required=True, type=Path, help="CSV with columns id, price, in_stock")
    p.add_argument("--skip-bad-rows", action="store_true", help="apply the good rows of a feed with bad ones")
    p.set_defaults(handler=_update)
    p = group.add_parser("add", help="add products with photos, encoded on this device")
    _common(p)
    p.add_argument(
        "--from", dest="feed", required=True, type=Path, help="CSV: id, title, category, color, price, photo"
    )
    p.add_argument("--skip-bad-rows", action="store_true", help="add the good rows of a feed with bad ones")
    p.add_argument("--precision", choices=("int8", "float"), default="int8", help="photo encoder to use")
    p.add_argument("--threads", type=positive_int, default=1)
    p.set_defaults(handler=_add)
    p = group.add_parser("remove", help="remove products (tombstones: never returned again)")
    _common(p)
    p.add_argument("--id", dest="ids", action="append", required=True, help="product id (repeat for several)")
    p.set_defaults(handler=_remove)
    p = group.add_parser("compact", help="fold the update log into a new segment")
    _common(p)
    p.set_defaults(handler=_compact)
    p = group.add_parser("status", help="what the update log holds")
    _common(p)
    p.set_defaults(handler=_status)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bundle", required=True, type=Path, help="the bundle (e.g. <device root>/current)")
    p.add_argument("--json", action="store_true", help="print JSON")


PLUGIN = CommandPlugin(
    name="catalog",
    commands=("catalog update", "catalog add", "catalog remove", "catalog compact", "catalog status"),
    register=register,
    order=20,
)


def _catalog(path: Path):  # noqa: ANN202 - LiveCatalog, imported lazily
    from .bundle import Bundle
    from .live_catalog import LiveCatalog

    return LiveCatalog.open(Bundle.open(path, verify=False))


def _report_bad_rows(errors: Sequence[object], skip: bool, feed: Path) -> bool:
    """Print the bad rows; True when the command must stop (bad rows and no --skip-bad-rows)."""
    for error in errors:
        print(f"vitrina catalog: {feed}: {error}", file=sys.stderr)
    if errors and not skip:
        print(
            f"vitrina catalog: error: {len(errors)} bad row(s) in {feed}; nothing was applied "
            "(fix them, or pass --skip-bad-rows to apply the other rows)",
            file=sys.stderr,
        )
        return True
    return False


def _done(args: argparse.Namespace, out: dict) -> int:
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        for key, value in out.items():
            print(f"{key:>10}: {value}")
    return 0


def _update(args: argparse.Namespace) -> int:
    from .catalog_feed import check_against_catalog, read_stock_feed

    catalog = _catalog(args.bundle)
    feed = check_against_catalog(read_stock_feed(args.feed), catalog, adding=False)
    if _report_bad_rows(feed.errors, args.skip_bad_rows, args.feed):
        return EXIT_BAD_INPUT
    applied = catalog.update_stock(feed.rows)
    return _done(args, {"updated": applied, "skipped": len(feed.errors), "log": str(catalog.log.path)})


def _add(args: argparse.Namespace) -> int:
    from .catalog_feed import check_against_catalog, encode_new_products, read_product_feed

    catalog = _catalog(args.bundle)
    feed = check_against_catalog(read_product_feed(args.feed), catalog, adding=True)
    if _report_bad_rows(feed.errors, args.skip_bad_rows, args.feed):
        return EXIT_BAD_INPUT
    products, encoded, photo_errors = encode_new_products(
        catalog.bundle, feed, precision=args.precision, num_threads=args.threads
    )
    if _report_bad_rows(photo_errors, args.skip_bad_rows, args.feed):
        return EXIT_BAD_INPUT
    added = catalog.add_products(products, encoded)
    skipped = len(feed.errors) + len(photo_errors)
    return _done(
        args, {"added": added, "skipped": skipped, "products": len(catalog.items), "log": str(catalog.log.path)}
    )


def _remove(args: argparse.Namespace) -> int:
    catalog = _catalog(args.bundle)
    removed = catalog.remove_products(list(dict.fromkeys(args.ids)))
    return _done(args, {"removed": removed, "log": str(catalog.log.path)})


def _compact(args: argparse.Namespace) -> int:
    catalog = _catalog(args.bundle)
    segment = catalog.compact()
    return _done(
        args, {"segment": segment or "nothing to fold", **{k: v for k, v in catalog.status().items() if k != "notes"}}
    )


def _status(args: argparse.Namespace) -> int:
    status = _catalog(args.bundle).status()
    return _done(args, status)
