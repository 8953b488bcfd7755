"""Catalog input: a folder with ``catalog.csv`` and the images it names.

Columns: ``id, title, category, color, price, image`` — one row per product
image; several rows may share an ``id`` (more images of one product) as long as
they agree on its title. An optional ``split`` column (``train``/``test``)
says which products training may use; without it, a stable hash of the id puts
about 1 in 7 products in ``test``.

Every row is validated. Problems are collected, one clear message per row,
and raised together as :class:`CatalogError` — or, with ``skip_bad_rows``,
reported and the row dropped.
"""

from __future__ import annotations

import csv
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from PIL import Image

from vitrina.runtime.bundle import Item, first_rows
from vitrina.runtime.photo import prepare_photo

REQUIRED_COLUMNS = ("id", "title", "category", "color", "price", "image")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class RowError:
    """A rejected row: ``line`` is the 1-based line in catalog.csv (the header is line 1)."""

    line: int
    id: str
    message: str

    def __str__(self) -> str:
        who = f" (id {self.id!r})" if self.id else ""
        return f"catalog.csv line {self.line}{who}: {self.message}"


class CatalogError(ValueError):
    """The catalog cannot be used; ``errors`` lists every bad row."""

    def __init__(self, message: str, errors: tuple[RowError, ...] = ()):
        lines = [message, *(f"  {e}" for e in errors)]
        super().__init__("\n".join(lines))
        self.errors = errors


@dataclass(frozen=True)
class Catalog:
    """A validated catalog.

    Attributes:
        name: catalog name (the folder name).
        items: one per product id, in first-seen order.
        images: (N, W, W, 3) uint8 photos prepared on white at ``image_size``.
        image_items: (N,) int32 product index of each image.
        skipped: rows dropped with ``skip_bad_rows``.
    """

    name: str
    items: tuple[Item, ...]
    images: np.ndarray
    image_items: np.ndarray
    skipped: tuple[RowError, ...] = ()

    def split_items(self, split: str) -> np.ndarray:
        """(n,) int64 indices of the products in ``split``."""
        return np.array([i for i, item in enumerate(self.items) if item.split == split], dtype=np.int64)

    def first_images(self) -> np.ndarray:
        """(P,) int64 row in :attr:`images` of each product's first image."""
        return first_rows(self.image_items, len(self.items))


def _hash_split(product_id: str) -> str:
    return "test" if hashlib.sha256(product_id.encode("utf-8")).digest()[0] % 7 == 0 else "train"


def _check_row(row: dict[str, str], folder: Path, has_split: bool, image_size: int) -> tuple[Item, np.ndarray]:
    """Validate one row; return its item and prepared image, or raise ValueError naming the problem."""
    product_id = (row.get("id") or "").strip()
    if not product_id:
        raise ValueError("empty id")
    title = (row.get("title") or "").strip()
    if not title:
        raise ValueError("empty title")
    category = (row.get("category") or "").strip()
    if not category:
        raise ValueError("empty category")
    raw_price = (row.get("price") or "").strip()
    try:
        price = float(raw_price)
    except ValueError:
        raise ValueError(f"bad price {raw_price!r}: expected a number such as 12990 or 19.99") from None
    if not math.isfinite(price) or price < 0:
        raise ValueError(f"bad price {raw_price!r}: expected a finite number >= 0")
    split = (row.get("split") or "").strip() if has_split else _hash_split(product_id)
    if split not in SPLITS:
        raise ValueError(f"bad split {split!r}: expected one of {', '.join(SPLITS)}")
    rel = (row.get("image") or "").strip()
    if not rel:
        raise ValueError("empty image path")
    path = folder / rel
    if not path.is_file():
        raise ValueError(f"missing image {rel!r} (looked for {path})")
    try:
        with Image.open(path) as image:
            image.load()
            pixels = prepare_photo(image, image_size)
    except (OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ValueError(f"image {rel!r} cannot be decoded: {exc}") from None
    item = Item(product_id, title, category, (row.get("color") or "").strip(), price, split)
    return item, pixels


def load_catalog(
    folder: str | Path, image_size: int = 64, skip_bad_rows: bool = False, progress: bool = True
) -> Catalog:
    """Read and validate ``folder/catalog.csv`` and decode every image.

    Args:
        image_size: side of the prepared square images, pixels.
        skip_bad_rows: drop bad rows (listed in ``Catalog.skipped``) instead of failing.

    Raises:
        CatalogError: missing file or columns; bad rows unless ``skip_bad_rows``;
            no usable rows at all.
    """
    folder = Path(folder)
    csv_path = folder / "catalog.csv"
    if not csv_path.is_file():
        raise CatalogError(f"no catalog at {folder}: catalog.csv is missing")
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            columns = tuple(c.strip() for c in (reader.fieldnames or ()))
            missing = [c for c in REQUIRED_COLUMNS if c not in columns]
            if missing:
                raise CatalogError(
                    f"{csv_path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}"
                )
            reader.fieldnames = list(columns)
            rows = list(reader)
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{csv_path} is not UTF-8 text: {exc}") from None
    except csv.Error as exc:
        raise CatalogError(f"{csv_path} is not valid CSV: {exc}") from None
    return _validate_rows(folder, rows, "split" in columns, image_size, skip_bad_rows, progress)


def _validate_rows(
    folder: Path, rows: list[dict[str, str]], has_split: bool, image_size: int, skip: bool, progress: bool
) -> Catalog:
    errors: list[RowError] = []
    items: dict[str, Item] = {}
    images: list[np.ndarray] = []
    owners: list[str] = []
    iterator = rows
    if progress:
        from tqdm import tqdm

        iterator = tqdm(rows, desc="catalog", unit="row", mininterval=1.0)
    for line, row in enumerate(iterator, start=2):
        surplus = cast(dict[Any, Any], row).get(None)  # csv puts surplus fields under the None key
        if surplus is not None:
            errors.append(
                RowError(line, (row.get("id") or "").strip(), f"{len(surplus)} more field(s) than the header has")
            )
            continue
        try:
            item, pixels = _check_row(row, folder, has_split, image_size)
        except ValueError as exc:
            errors.append(RowError(line, (row.get("id") or "").strip(), str(exc)))
            continue
        known = items.get(item.id)
        if known is not None and known.title != item.title:
            errors.append(
                RowError(
                    line, item.id, f"duplicate id with conflicting title {item.title!r} (first seen as {known.title!r})"
                )
            )
            continue
        items.setdefault(item.id, item)
        images.append(pixels)
        owners.append(item.id)
    if errors and not skip:
        raise CatalogError(
            f"{folder}/catalog.csv has {len(errors)} bad row(s) (use --skip-bad-rows to drop them):", tuple(errors)
        )
    if not items:
        raise CatalogError(f"{folder}/catalog.csv has no usable rows", tuple(errors))
    index = {pid: i for i, pid in enumerate(items)}
    return Catalog(
        name=folder.resolve().name,
        items=tuple(items.values()),
        images=np.stack(images),
        image_items=np.array([index[pid] for pid in owners], dtype=np.int32),
        skipped=tuple(errors),
    )
