"""Catalog input: a folder with ``catalog.csv`` and the images it names.

Columns: ``id, title, category, color, price, image`` — one row per product
image; several rows may share an ``id`` (more images of one product) as long as
they agree on its title. An optional ``split`` column (``train``/``test``)
says which products training may use; without it, a stable hash of the id puts
about 1 in 7 products in ``test``. An optional ``brand`` column names the brand
words of a title: they are kept out of the bundle's text vocabulary, as numbers are.

An optional ``aliases.json`` beside catalog.csv gives the text search synonyms,
typically the words of the shoppers' other languages (:func:`load_synonyms`)::

    {"language": "es",
     "categories": {"Ankle boot": {"es": "Botín", "en": ["ankle boot", "boot"]}},
     "colors": {"naranjo": {"es": ["naranja", "naranjo"], "en": ["orange"]}}}

``language`` (default ``"es"``) is the titles' language. Each category's entry
names its word in that language and lists, per other language, the phrases that
mean it; each colour (as the ``color`` column writes it) lists the phrases that
mean it. Phrases of the titles' language are not synonyms: they are title words.

Every row is validated. Problems are collected, one clear message per row,
and raised together as :class:`CatalogError` — or, with ``skip_bad_rows``,
reported and the row dropped.

A catalog folder is untrusted input (a retailer's upload): ``catalog.csv`` must
be a regular file in the folder, not a link; every image path goes through
:func:`~vitrina.runtime.files.resolve_inside` (no ``..``, absolute paths or
links) and is decoded within a byte and pixel budget
(:func:`~vitrina.runtime.photo.load_image_bounded`). Nothing outside the folder
is read, and whatever the folder holds, the loader raises :class:`CatalogError`
or returns a :class:`Catalog`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from PIL import Image

from vitrina.runtime.bundle import Item, first_rows
from vitrina.runtime.files import UnsafePathError, resolve_inside
from vitrina.runtime.photo import (
    DECODER_ERRORS,
    IMAGE_FORMATS,
    MAX_IMAGE_PIXELS,
    ImageBudgetError,
    load_image_bounded,
    prepare_photo,
)

CSV_NAME = "catalog.csv"
ALIASES_NAME = "aliases.json"
#: Largest aliases.json, in bytes (a retailer's synonym table is a few kilobytes).
MAX_ALIASES_BYTES = 1 << 20
REQUIRED_COLUMNS = ("id", "title", "category", "color", "price", "image")
SPLITS = ("train", "test")

#: Longest row catalog.csv may have, in characters (all of its lines together).
#: Real rows are a few hundred characters; without a bound the csv module holds
#: a row of any length (many fields of up to its field limit each) in memory.
#: Rows are read one at a time, so the number of rows is not limited.
MAX_ROW_CHARS = 1 << 20

#: Largest image file, in bytes. A 32 MP photo (the pixel budget) is about 20 MB
#: as JPEG and under 100 MB as PNG; Pillow reads some parts of a file (a PNG's
#: unknown chunks, an animated WebP) whole into memory, so bytes are bounded too.
MAX_IMAGE_FILE_BYTES = 100 * 1024 * 1024


#: How much of a bad value a message quotes, in characters.
_QUOTE_CHARS = 80


@dataclass(frozen=True)
class RowError:
    """A rejected row: ``line`` is the 1-based line in catalog.csv where the row starts (the header is line 1)."""

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
        brands: the distinct values of the optional ``brand`` column, first-seen order.
        image_paths: (N,) each image's path in the catalog folder, as catalog.csv names it.
        synonyms: phrase → the catalog text it stands for, as written (``"orange"`` →
            ``"naranjo"``), from the optional aliases.json (:func:`load_synonyms`).
    """

    name: str
    items: tuple[Item, ...]
    images: np.ndarray
    image_items: np.ndarray
    skipped: tuple[RowError, ...] = ()
    brands: tuple[str, ...] = ()
    image_paths: tuple[str, ...] = ()
    synonyms: Mapping[str, str] = field(default_factory=dict)

    def split_items(self, split: str) -> np.ndarray:
        """(n,) int64 indices of the products in ``split``."""
        return np.array([i for i, item in enumerate(self.items) if item.split == split], dtype=np.int64)

    def first_images(self) -> np.ndarray:
        """(P,) int64 row in :attr:`images` of each product's first image."""
        return first_rows(self.image_items, len(self.items))


def _short(text: str) -> str:
    """``text`` cut to :data:`_QUOTE_CHARS` characters, saying how long it was."""
    if len(text) <= _QUOTE_CHARS:
        return text
    return f"{text[:_QUOTE_CHARS]}… ({len(text):,} characters)"


def _quote(text: str) -> str:
    """``repr`` of ``text`` for a message, cut to :data:`_QUOTE_CHARS` characters."""
    if len(text) <= _QUOTE_CHARS:
        return repr(text)
    return f"{text[:_QUOTE_CHARS]!r}… ({len(text):,} characters)"


def _hash_split(product_id: str) -> str:
    return "test" if hashlib.sha256(product_id.encode("utf-8")).digest()[0] % 7 == 0 else "train"


def _open_csv(folder: Path) -> TextIO:
    """Open ``folder/catalog.csv`` for reading (:func:`_open_regular`)."""
    try:
        return _open_regular(folder, CSV_NAME, "a CSV file")
    except FileNotFoundError:
        raise CatalogError(f"no catalog at {folder}: {CSV_NAME} is missing") from None


def _open_regular(folder: Path, name: str, expected: str) -> TextIO:
    """Open ``folder/name`` as UTF-8 text: a regular file inside ``folder``, not a link.

    The file is checked by path (:func:`resolve_inside`), then opened without
    following a link or blocking on a FIFO and checked again by descriptor, so
    nothing swapped in between is read.

    Raises:
        FileNotFoundError: there is no such file.
        CatalogError: it is a link, leaves the folder, or is not a regular file.
    """
    try:
        path = resolve_inside(folder, name)
    except UnsafePathError as exc:
        raise CatalogError(f"no usable catalog at {folder}: {exc}") from None
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise CatalogError(f"{path} cannot be opened: {exc.strerror or exc}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise CatalogError(f"{path} is not a regular file (a folder, FIFO or device): expected {expected}")
        return open(fd, newline="", encoding="utf-8-sig")
    except BaseException:
        os.close(fd)
        raise


def load_synonyms(folder: str | Path) -> dict[str, str]:
    """The text search's synonyms from ``folder/aliases.json`` (format: the module docstring):
    phrase → the catalog text it stands for, as written; ``{}`` when there is no such file.

    Raises:
        CatalogError: the file is a link, not a regular file, over :data:`MAX_ALIASES_BYTES`,
            not UTF-8 JSON, or not shaped as the module docstring shows.
    """
    folder = Path(folder)
    try:
        file = _open_regular(folder, ALIASES_NAME, "a JSON file")
    except FileNotFoundError:
        return {}
    path = folder / ALIASES_NAME
    with file:
        try:
            text = file.read(MAX_ALIASES_BYTES + 1)
        except UnicodeDecodeError as exc:
            raise CatalogError(f"{path} is not UTF-8 text ({exc.reason}); save it as UTF-8") from None
    if len(text) > MAX_ALIASES_BYTES:
        raise CatalogError(f"{path} is over {MAX_ALIASES_BYTES:,} characters: expected a synonym table")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path} is not valid JSON: {exc}") from None
    try:
        return _synonym_table(doc)
    except ValueError as exc:
        raise CatalogError(f"{path}: {exc}") from None


def _synonym_table(doc: Any) -> dict[str, str]:
    """Phrase → text from a parsed aliases.json. Raises ValueError naming the first bad part."""
    if not isinstance(doc, dict):
        raise ValueError(f"expected an object with categories and colors, got {type(doc).__name__}")
    language = doc.get("language", "es")
    if not isinstance(language, str) or not language:
        raise ValueError(f'language must be a language code such as "es", got {language!r}')
    table: dict[str, str] = {}
    for section in ("categories", "colors"):
        entries = doc.get(section, {})
        if not isinstance(entries, dict):
            raise ValueError(
                f"{section} must be an object (name → its words by language), got {type(entries).__name__}"
            )
        for name, by_language in entries.items():
            if not isinstance(by_language, dict):
                raise ValueError(f"{section}[{_quote(name)}] must be an object of language → phrases")
            own = by_language.get(language, name) if section == "categories" else name
            meant = own if isinstance(own, str) else own[0] if isinstance(own, list) and own else None
            if not isinstance(meant, str) or not meant.strip():
                raise ValueError(f"{section}[{_quote(name)}][{language!r}] must name the word titles use")
            for lang, phrases in by_language.items():
                phrases = [phrases] if isinstance(phrases, str) else phrases
                if not isinstance(phrases, list) or not all(isinstance(p, str) for p in phrases):
                    raise ValueError(f"{section}[{_quote(name)}][{lang!r}] must be a phrase or a list of phrases")
                if lang != language:
                    table.update((p, meant) for p in phrases if p.strip())
    return table


class _BoundedLines:
    """The lines of catalog.csv, for ``csv.reader``; refuses a row longer than :data:`MAX_ROW_CHARS`.

    The reader calls :meth:`start_row` before each row; a row may span lines
    (quoted newlines), and the budget counts all of them.
    """

    def __init__(self, file: TextIO, path: Path):
        self._file = file
        self._path = path
        self.lines_read = 0
        self._row_start = 1
        self._row_chars = 0

    def start_row(self) -> int:
        """Begin a row; returns the line it starts on."""
        self._row_start = self.lines_read + 1
        self._row_chars = 0
        return self._row_start

    def __iter__(self) -> _BoundedLines:
        return self

    def __next__(self) -> str:
        line = self._file.readline(MAX_ROW_CHARS - self._row_chars + 1)
        if not line:
            raise StopIteration
        self.lines_read += 1
        self._row_chars += len(line)
        if self._row_chars > MAX_ROW_CHARS:
            raise CatalogError(
                f"{self._path} line {self._row_start}: the row is longer than {MAX_ROW_CHARS:,} characters "
                "(an unclosed quote, or not a catalog): expected one product image per row"
            )
        return line


def _read_records(file: TextIO, path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line, fields)`` for each non-blank CSV record, one at a time.

    Raises:
        CatalogError: the file is not UTF-8, not CSV, or has a row over :data:`MAX_ROW_CHARS`.
    """
    lines = _BoundedLines(file, path)
    reader = csv.reader(lines)
    while True:
        line = lines.start_row()
        try:
            fields = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            bad = exc.object[exc.start : exc.start + 1].hex()
            raise CatalogError(
                f"{path} is not UTF-8 text: byte 0x{bad} at or after line {line} ({exc.reason}); save it as UTF-8"
            ) from None
        except csv.Error as exc:
            raise CatalogError(f"{path} line {line} is not valid CSV: {exc}") from None
        if fields:
            yield line, fields


def load_catalog_image(folder: Path, rel: str, image_size: int) -> np.ndarray:
    """The prepared photo of ``folder/rel``: (image_size, image_size, 3) uint8, padded square on white
    (the loader's rules and budgets); ValueError naming the path and why it cannot be used."""
    try:
        path = resolve_inside(folder, rel)
    except FileNotFoundError as exc:
        raise ValueError(f"missing image {_quote(rel)} ({exc})") from None
    except UnsafePathError as exc:
        raise ValueError(f"image {_quote(rel)} refused: {exc}") from None
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ValueError(f"image {_quote(rel)} cannot be read: {exc.strerror or exc}") from None
    if size > MAX_IMAGE_FILE_BYTES:
        raise ValueError(
            f"image {_quote(rel)} is {size:,} bytes, over the {MAX_IMAGE_FILE_BYTES:,} bytes an image file may have: "
            "recompress or downscale it"
        )
    _check_header(path, rel)
    try:
        image = load_image_bounded(path, min_side=image_size)
    except (ImageBudgetError, *DECODER_ERRORS) as exc:
        raise ValueError(f"image {_quote(rel)} cannot be decoded: {exc}") from None
    try:
        with image:
            return prepare_photo(image, image_size)
    except DECODER_ERRORS as exc:
        raise ValueError(f"image {_quote(rel)} cannot be decoded: {exc}") from None


def _check_header(path: Path, rel: str) -> None:
    """Refuse an image whose header names a format outside :data:`IMAGE_FORMATS` or too many pixels.

    Only the header is read; nothing is decoded.
    """
    try:
        with Image.open(path, formats=IMAGE_FORMATS) as image:
            width, height = image.size
    except Image.DecompressionBombError as exc:
        raise ValueError(
            f"image {_quote(rel)} has more than {MAX_IMAGE_PIXELS:,} pixels, the limit for an image: {exc}"
        ) from None
    except Image.UnidentifiedImageError:
        raise ValueError(f"image {_quote(rel)} cannot be decoded: not a {', '.join(IMAGE_FORMATS)} image") from None
    except DECODER_ERRORS as exc:
        raise ValueError(f"image {_quote(rel)} cannot be decoded: {exc}") from None
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"image {_quote(rel)} is {width}×{height} = {width * height:,} pixels, over the limit of "
            f"{MAX_IMAGE_PIXELS:,} pixels an image may have: downscale it"
        )


def _text(row: dict[str, str], column: str) -> str:
    """The stripped value of ``column``; ValueError if it holds a NUL character."""
    value = row.get(column, "").strip()
    if "\x00" in value:
        raise ValueError(f"{column} {_quote(value)} contains a NUL character")
    return value


def _check_row(row: dict[str, str], folder: Path, has_split: bool, image_size: int) -> tuple[Item, np.ndarray]:
    """Validate one row; return its item and prepared image, or raise ValueError naming the problem."""
    product_id = _text(row, "id")
    if not product_id:
        raise ValueError("empty id")
    title = _text(row, "title")
    if not title:
        raise ValueError("empty title")
    category = _text(row, "category")
    if not category:
        raise ValueError("empty category")
    color = _text(row, "color")
    raw_price = row.get("price", "").strip()
    try:
        price = float(raw_price)
    except ValueError:
        raise ValueError(f"bad price {_quote(raw_price)}: expected a number such as 12990 or 19.99") from None
    if not math.isfinite(price) or price < 0:
        raise ValueError(f"bad price {_quote(raw_price)}: expected a finite number >= 0")
    split = row.get("split", "").strip() if has_split else _hash_split(product_id)
    if split not in SPLITS:
        raise ValueError(f"bad split {_quote(split)}: expected one of {', '.join(SPLITS)}")
    rel = row.get("image", "").strip()
    if not rel:
        raise ValueError("empty image path")
    pixels = load_catalog_image(folder, rel, image_size)
    return Item(product_id, title, category, color, price, split), pixels


def load_catalog(
    folder: str | Path, image_size: int = 64, skip_bad_rows: bool = False, progress: bool = True
) -> Catalog:
    """Read and validate ``folder/catalog.csv`` and decode every image.

    Args:
        image_size: side of the prepared square images, pixels.
        skip_bad_rows: drop bad rows (listed in ``Catalog.skipped``) instead of failing.

    Raises:
        CatalogError: catalog.csv missing, not a regular file, a link, not
            UTF-8 CSV, a row over :data:`MAX_ROW_CHARS`, or missing columns; bad
            rows unless ``skip_bad_rows``; no usable rows at all.
    """
    folder = Path(folder)
    with _open_csv(folder) as file:
        path = folder / CSV_NAME
        records = _read_records(file, path)
        header = next(records, None)
        columns = tuple(c.strip() for c in header[1]) if header else ()
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise CatalogError(
                f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(REQUIRED_COLUMNS)}"
            )
        return _validate_rows(folder, columns, records, image_size, skip_bad_rows, progress)


def _validate_rows(
    folder: Path,
    columns: tuple[str, ...],
    records: Iterator[tuple[int, list[str]]],
    image_size: int,
    skip: bool,
    progress: bool,
) -> Catalog:
    errors: list[RowError] = []
    items: dict[str, Item] = {}
    images: list[np.ndarray] = []
    owners: list[str] = []
    paths: list[str] = []
    brands: dict[str, None] = {}
    has_split = "split" in columns
    iterator = records
    if progress:
        from tqdm import tqdm

        iterator = tqdm(records, desc="catalog", unit="row", mininterval=1.0)
    for line, fields in iterator:
        row = dict(zip(columns, fields))
        row_id = _short(row.get("id", "").strip())
        if len(fields) > len(columns):
            errors.append(RowError(line, row_id, f"{len(fields) - len(columns)} more field(s) than the header has"))
            continue
        try:
            item, pixels = _check_row(row, folder, has_split, image_size)
        except ValueError as exc:
            errors.append(RowError(line, row_id, str(exc)))
            continue
        known = items.get(item.id)
        if known is not None and known.title != item.title:
            errors.append(
                RowError(
                    line,
                    row_id,
                    f"duplicate id with conflicting title {_quote(item.title)} (first seen as {_quote(known.title)})",
                )
            )
            continue
        items.setdefault(item.id, item)
        brand = _short(row.get("brand", "").strip())
        if brand:
            brands.setdefault(brand)
        images.append(pixels)
        owners.append(item.id)
        paths.append(row.get("image", "").strip())
    if errors and not skip:
        raise CatalogError(
            f"{folder}/{CSV_NAME} has {len(errors)} bad row(s) (use --skip-bad-rows to drop them):", tuple(errors)
        )
    if not items:
        raise CatalogError(f"{folder}/{CSV_NAME} has no usable rows", tuple(errors))
    index = {pid: i for i, pid in enumerate(items)}
    return Catalog(
        name=folder.resolve().name,
        items=tuple(items.values()),
        images=np.stack(images),
        image_items=np.array([index[pid] for pid in owners], dtype=np.int32),
        skipped=tuple(errors),
        brands=tuple(brands),
        image_paths=tuple(paths),
        synonyms=load_synonyms(folder),
    )
