"""Store feeds for on-device catalog updates: CSV files read row by row, each bad row reported by line.

* stock / price feed (``vitrina catalog update --from stock.csv``): columns
  ``id, price, in_stock``; an empty cell leaves that value unchanged;
  ``in_stock`` is 1/0, true/false, yes/no (any case).
* new products (``vitrina catalog add --from new.csv``): columns
  ``id, title, category, color, price, photo`` and optionally ``in_stock``;
  ``photo`` is a path relative to the CSV's folder. Each photo is encoded on the
  device with the bundle's photo encoder (and reducer, and int8 re-rank), and with
  the bundle's text-visual model (title + photo) when it has one, so a product that
  arrives today is findable today, by sketch, photo, words and "more like this".

A feed with bad rows is refused whole unless the caller keeps the good rows
(``--skip-bad-rows``); either way every bad row is listed with its line number.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from .bundle import Bundle
from .encoders import PhotoEncoder, PhotoEncoderOptions
from .live_catalog import EncodedProducts, LiveCatalog, NewProduct, StockRow
from .photo import DECODER_ERRORS, ImageBudgetError, load_image_bounded, prepare_photo
from .text import WordRepair
from .text_visual import TextVisualEncoder, TextVisualOptions, has_text_visual, square_crop

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "y", "in", "in_stock"}
_FALSE = {"0", "false", "no", "n", "out", "out_of_stock"}
STOCK_COLUMNS = ("id", "price", "in_stock")
PRODUCT_COLUMNS = ("id", "title", "category", "color", "price", "photo")
#: Rows one feed may hold (a store's daily feed is thousands; this bounds memory).
MAX_FEED_ROWS = 2_000_000


@dataclass(frozen=True)
class FeedError:
    """One bad row: ``line`` is the CSV file's line number (the header is line 1)."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass(frozen=True)
class Feed(Generic[T]):
    """The good rows of a feed (with their line numbers) and the bad ones."""

    path: Path
    rows: tuple[T, ...]
    lines: tuple[int, ...]
    errors: tuple[FeedError, ...]


def _open_rows(path: Path, required: Sequence[str]) -> tuple[list[tuple[int, dict[str, str]]], list[FeedError]]:
    try:
        f = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise ValueError(f"cannot read feed {path}: {exc}") from None
    with f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(f"feed {path}: the header lacks column(s) {missing}; expected {list(required)}")
        reader.fieldnames = header
        rows: list[tuple[int, dict[str, str]]] = []
        errors: list[FeedError] = []
        try:
            for row in reader:
                if len(rows) >= MAX_FEED_ROWS:
                    raise ValueError(f"feed {path} has more than {MAX_FEED_ROWS} rows; split it")
                if None in row:
                    errors.append(
                        FeedError(
                            reader.line_num, f"{len(row[None]) + len(header)} cells, the header has {len(header)}"
                        )
                    )
                    continue
                rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items()}))
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ValueError(f"feed {path}: not a readable CSV file near line {reader.line_num}: {exc}") from None
    return rows, errors


def _price(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"price {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"price {text!r} must be a finite number >= 0")
    return value


def _flag(text: str) -> bool:
    low = text.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"in_stock {text!r} is not one of 1/0, true/false, yes/no")


def read_stock_feed(path: str | Path) -> Feed[StockRow]:
    """Parse a stock / price feed; rows with a bad value are errors (by line), not rows.

    Raises:
        ValueError: the file cannot be read, or its header lacks a column.
    """
    path = Path(path)
    raw, errors = _open_rows(path, STOCK_COLUMNS)
    rows: list[StockRow] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    for line, r in raw:
        try:
            if not r["id"]:
                raise ValueError("empty id")
            if r["id"] in seen:
                raise ValueError(f"id {r['id']!r} appears again (first on line {seen[r['id']]})")
            price = _price(r["price"]) if r["price"] else None
            stock = _flag(r["in_stock"]) if r["in_stock"] else None
            if price is None and stock is None:
                raise ValueError("neither a price nor in_stock: nothing to update")
        except ValueError as exc:
            errors.append(FeedError(line, str(exc)))
            continue
        seen[r["id"]] = line
        rows.append(StockRow(r["id"], price, stock))
        lines.append(line)
    return Feed(path, tuple(rows), tuple(lines), tuple(sorted(errors, key=lambda e: e.line)))


def read_product_feed(path: str | Path) -> Feed[tuple[NewProduct, Path]]:
    """Parse a new-products feed: each good row is the product and its photo's path.

    Raises:
        ValueError: the file cannot be read, or its header lacks a column.
    """
    path = Path(path)
    raw, errors = _open_rows(path, PRODUCT_COLUMNS)
    rows: list[tuple[NewProduct, Path]] = []
    lines: list[int] = []
    seen: dict[str, int] = {}
    for line, r in raw:
        try:
            for col in ("id", "title", "category", "color", "photo"):
                if not r[col]:
                    raise ValueError(f"empty {col}")
            if r["id"] in seen:
                raise ValueError(f"id {r['id']!r} appears again (first on line {seen[r['id']]})")
            stock = _flag(r["in_stock"]) if r.get("in_stock") else True
            product = NewProduct(r["id"], r["title"], r["category"], r["color"], _price(r["price"]), stock)
            photo = (path.parent / r["photo"]).resolve()
            if not photo.is_file():
                raise ValueError(f"photo {r['photo']!r} is not a file (looked at {photo})")
        except ValueError as exc:
            errors.append(FeedError(line, str(exc)))
            continue
        seen[r["id"]] = line
        rows.append((product, photo))
        lines.append(line)
    return Feed(path, tuple(rows), tuple(lines), tuple(sorted(errors, key=lambda e: e.line)))


def check_against_catalog(feed: Feed[T], catalog: LiveCatalog, *, adding: bool) -> Feed[T]:
    """Move the rows whose id does not fit the catalog into the errors, by line: for an
    update, an unknown or removed id; for an add, an id that exists (or existed)."""
    columns = catalog.columns
    rows, lines, errors = [], [], list(feed.errors)
    for row, line in zip(feed.rows, feed.lines):
        pid = row[0].id if isinstance(row, tuple) else row.id  # type: ignore[attr-defined]
        at = columns.index_of(pid)
        if adding and at is not None:
            errors.append(
                FeedError(
                    line, f"a product with id {pid!r} exists already{' (removed)' if columns.removed[at] else ''}"
                )
            )
        elif not adding and at is None:
            errors.append(FeedError(line, f"no product with id {pid!r} in this catalog"))
        elif not adding and columns.removed[at]:
            errors.append(FeedError(line, f"product {pid!r} was removed"))
        else:
            rows.append(row)
            lines.append(line)
    return Feed(feed.path, tuple(rows), tuple(lines), tuple(sorted(errors, key=lambda e: e.line)))


def encode_new_products(
    bundle: Bundle, feed: Feed[tuple[NewProduct, Path]], *, precision: str = "int8", num_threads: int = 1
) -> tuple[list[NewProduct], EncodedProducts, list[FeedError]]:
    """Encode each good row's photo with the bundle's photo encoder, reducer and re-rank quantiser.

    Returns:
        the products whose photo decoded, their :class:`EncodedProducts` (codes in the
        bundle's dtype, int8 re-rank rows when the bundle re-ranks, thumbnails, text-visual
        codes when the bundle has the model), and one :class:`FeedError` per photo that
        could not be decoded.
    """
    encoder = PhotoEncoder.create_from_bundle(bundle, PhotoEncoderOptions(num_threads=num_threads, precision=precision))
    tile = int(bundle.manifest["thumbnails"]["tile"])
    size = encoder.input_shape[0]
    tv_size = int(bundle.manifest["text_visual"]["image_size"]) if has_text_visual(bundle) else 0
    products, inputs, thumbs, tv_inputs, errors = [], [], [], [], []
    try:
        for (product, photo), line in zip(feed.rows, feed.lines):
            try:
                image = load_image_bounded(photo, min_side=max(size, tile, tv_size))
                inputs.append(prepare_photo(image, size))
                thumbs.append(prepare_photo(image, tile))
                if tv_size:
                    tv_inputs.append(square_crop(image, tv_size))
                products.append(product)
            except (ImageBudgetError, *DECODER_ERRORS) as exc:
                errors.append(FeedError(line, f"photo {photo.name} cannot be used: {exc}"))
        width = bundle.codes.shape[1]
        if not products:
            empty = EncodedProducts(
                np.empty((0, width), bundle.codes.dtype), None, np.empty((0, tile, tile, 3), np.uint8)
            )
            return [], empty, errors
        embeddings = encoder.embed(np.stack(inputs)).embeddings
    finally:
        encoder.close()
    codes = bundle.codes_from_values(bundle.reducer()(embeddings))
    rerank = None
    if bundle.has_rerank:
        _, scale, _ = bundle.rerank()
        rerank = np.clip(np.round(embeddings / scale), -127, 127).astype(np.int8)
    text_visual = None
    if tv_size:
        text_visual = _text_visual_codes(
            bundle, [p.title for p in products], np.stack(tv_inputs), precision=precision, num_threads=num_threads
        )
    return products, EncodedProducts(codes, rerank, np.stack(thumbs), text_visual), errors


def _text_visual_codes(
    bundle: Bundle, titles: Sequence[str], images: np.ndarray, *, precision: str, num_threads: int
) -> np.ndarray:
    """(n, C) float32 text-visual codes of n (title, photo) pairs, as export codes the bundle's products:
    titles through the device's word repair, photos (n, S, S, 3) uint8 padded square."""
    repair = WordRepair.for_titles(bundle.vocabulary)
    options = TextVisualOptions(num_threads=num_threads, batch_size=32, precision=precision)
    with TextVisualEncoder.create_from_bundle(bundle, options) as encoder:
        words = np.stack([encoder.ids(repair.normalize(t).words) for t in titles])
        return encoder.encode(words=words, images=images).codes.astype(np.float32)
