"""A bundle's catalog as the store has it today: the bundle plus the device's update log.

:class:`LiveCatalog` replays the update log (:mod:`vitrina.runtime.update_log`)
over an opened bundle: current prices and stock, products added on the device
(with their codes, re-rank rows and thumbnails, encoded on the device), and
removed products (tombstones: never returned by a search). The bundle's own
files are never modified.

Product indices: the bundle's products keep theirs (0 .. P-1); added products
follow (P, P+1, ...), in the order they were added; a removed product keeps its
index and is masked out of every search.

Writers (:meth:`LiveCatalog.update_stock`, :meth:`add_products`,
:meth:`remove_products`, :meth:`compact`) take the log's lock, validate against
the state as it is on disk at that moment, append one record (applied whole or
not at all) and reload.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, overload

import numpy as np

from .bundle import Bundle, Item
from .filters import CatalogColumns
from .timeutil import utc_stamp
from .update_log import (
    BundleIdentity,
    UpdateLog,
    UpdateLogError,
    identity_of,
    log_folder,
    other_logs,
)


@dataclass(frozen=True)
class StockRow:
    """One row of a stock / price feed. ``price`` or ``in_stock`` None: unchanged."""

    id: str
    price: float | None = None
    in_stock: bool | None = None


@dataclass(frozen=True)
class NewProduct:
    """A product added on the device (its photo already encoded by the caller)."""

    id: str
    title: str
    category: str
    color: str
    price: float
    in_stock: bool = True


@dataclass(frozen=True)
class EncodedProducts:
    """Device-encoded rows for :meth:`LiveCatalog.add_products`, one per product, in order.

    Attributes:
        codes: (A, w) in the bundle's code dtype and width.
        rerank: (A, D) int8 re-rank rows when the bundle re-ranks, else None.
        thumbnails: (A, T, T, 3) uint8 at the bundle's thumbnail tile size.
        text_visual: (A, C) float32 unit text-visual codes (title + photo) when the bundle
            has the text-visual model, else None (the products get no text-visual code).
    """

    codes: np.ndarray
    rerank: np.ndarray | None
    thumbnails: np.ndarray
    text_visual: np.ndarray | None = None


class LiveItems(Sequence[Item]):
    """The catalog's products with today's prices: bundle products, then added ones."""

    def __init__(self, base: Sequence[Item], added: Sequence[Item], prices: dict[str, float]):
        self._base, self._added, self._prices = base, added, prices

    def __len__(self) -> int:
        return len(self._base) + len(self._added)

    @overload
    def __getitem__(self, i: int) -> Item: ...

    @overload
    def __getitem__(self, i: slice) -> Sequence[Item]: ...

    def __getitem__(self, i: int | slice) -> Item | Sequence[Item]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"product {i} out of range for {n} products")
        item = self._base[i] if i < len(self._base) else self._added[i - len(self._base)]
        price = self._prices.get(item.id)
        return item if price is None else replace(item, price=price)


@dataclass
class _State:
    """The folded updates (what a snapshot holds)."""

    prices: dict[str, float]
    stock: dict[str, bool]
    removed: set[str]
    added: list[dict[str, Any]]
    codes: list[bytes]
    rerank: list[bytes]
    thumbs: list[bytes]
    #: float32 text-visual codes of the added products, ``tv_dims`` each; all zero: none.
    tv: list[bytes]
    tv_dims: int

    @classmethod
    def empty(cls, tv_dims: int = 0) -> _State:
        return cls({}, {}, set(), [], [], [], [], [], tv_dims)

    def apply(self, record: dict[str, Any]) -> None:
        kind = record.get("kind")
        if kind in ("snapshot", "add"):
            items = list(record.get("items", []))
            self.added += items
            for key in ("codes", "rerank", "thumbs"):
                if record.get(key):
                    getattr(self, key).append(bytes(record[key]))
            if self.tv_dims:
                # records written without codes (older logs, or a bundle without the model
                # when they were written) give their products none: zero rows
                size = 4 * self.tv_dims * len(items)
                tv = bytes(record.get("tv") or b"")
                self.tv.append(tv if len(tv) == size else bytes(size))
        if kind == "snapshot":
            self.prices.update(record.get("prices", {}))
            self.stock.update(record.get("stock", {}))
            self.removed |= set(record.get("removed", []))
        elif kind == "update":
            for pid, price, stock in record.get("rows", []):
                if price is not None:
                    self.prices[pid] = float(price)
                if stock is not None:
                    self.stock[pid] = bool(stock)
        elif kind == "remove":
            self.removed |= set(record.get("ids", []))

    def snapshot(self) -> dict[str, Any]:
        return {
            "kind": "snapshot",
            "at": utc_stamp(),
            "prices": self.prices,
            "stock": self.stock,
            "removed": sorted(self.removed),
            "items": self.added,
            "codes": b"".join(self.codes),
            "rerank": b"".join(self.rerank),
            "thumbs": b"".join(self.thumbs),
            "tv": b"".join(self.tv),
        }


class LiveCatalog:
    """An opened bundle with the device's catalog updates applied (see the module docstring).

    Attributes:
        bundle: the opened bundle.
        identity: the bundle identity the log is kept for.
        notes: sentences for the operator: a torn record ignored, logs of other
            bundle versions superseded (kept, not applied).
        n_base: products in the bundle; added products follow.

    Raises (open):
        UpdateLogError: the log names a segment that is missing or damaged.
    """

    def __init__(self, bundle: Bundle):
        self.bundle = bundle
        self.identity: BundleIdentity = identity_of(bundle.path, bundle.manifest)
        self.log = UpdateLog(log_folder(bundle.path, self.identity))
        self.n_base = int(bundle.manifest["catalog"]["items"])  # items.json is parsed only when needed
        self._load()

    @classmethod
    def open(cls, bundle: Bundle) -> LiveCatalog:
        """The bundle's catalog with its update log replayed."""
        return cls(bundle)

    # --- reading ----------------------------------------------------------------
    def _load(self) -> None:
        contents = self.log.read()
        state = _State.empty(self._tv_dims)
        segment = self.log.read_segment(contents.header)
        if segment is not None:
            state.apply(segment)
        for record in contents.records:
            state.apply(record)
        self._state = state
        self._stamp = self._log_stamp()
        notes = []
        if contents.torn_bytes:
            notes.append(
                f"the update log ends with {contents.torn_bytes} bytes of an update interrupted while written; "
                "it was not applied (the next update removes it)"
            )
        version = self.identity.version
        for other in other_logs(self.bundle.path, self.identity):
            if other.version <= version:
                notes.append(
                    f"{other.records} catalog update(s) recorded for {self.identity.catalog} v{other.version} are "
                    f"superseded by this bundle (v{version}) and not applied; they are kept in {other.folder}"
                )
            else:
                notes.append(
                    f"{other.records} catalog update(s) belong to the newer bundle v{other.version}; "
                    f"not applied to this v{version} (kept in {other.folder})"
                )
        self.notes = tuple(notes)
        self.__dict__.pop("columns", None)
        self.__dict__.pop("items", None)
        self.__dict__.pop("added_codes", None)
        self.__dict__.pop("added_rerank", None)
        self.__dict__.pop("added_text_visual", None)
        self.__dict__.pop("_thumbs", None)

    def _log_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.log.path)
        except FileNotFoundError:
            return None
        return st.st_size, st.st_mtime_ns

    def changed(self) -> bool:
        """True when the log on disk differs from what was replayed (another process wrote)."""
        return self._log_stamp() != self._stamp

    def reload(self) -> bool:
        """Replay the log again if it changed; returns whether it did."""
        if not self.changed():
            return False
        self._load()
        return True

    @property
    def n_added(self) -> int:
        """Products added on the device."""
        return len(self._state.added)

    @property
    def n_updates(self) -> int:
        """Products whose price or stock the device changed."""
        return len(set(self._state.prices) | set(self._state.stock))

    @property
    def n_removed(self) -> int:
        """Products removed on the device."""
        return len(self._state.removed)

    @cached_property
    def items(self) -> LiveItems:
        """Every product with today's price: the bundle's, then the added ones."""
        added = [
            Item(a["id"], a["title"], a["category"], a["color"], float(a["price"]), "train") for a in self._state.added
        ]
        return LiveItems(self.bundle.items, added, self._state.prices)

    @cached_property
    def columns(self) -> CatalogColumns:
        """The filterable columns (built on first use: a pass over the products)."""
        base = self.bundle.items
        cat_names = list(self.bundle.categories)
        color_names = list(dict.fromkeys(item.color for item in base))
        cat_lookup = {n: i for i, n in enumerate(cat_names)}
        color_lookup = {n: i for i, n in enumerate(color_names)}
        for a in self._state.added:
            cat_lookup.setdefault(a["category"], len(cat_lookup))
            color_lookup.setdefault(a["color"], len(color_lookup))
        items = [*base, *self.items[self.n_base :]]
        ids = [item.id for item in items]
        categories = np.fromiter((cat_lookup[i.category] for i in items), dtype=np.int32, count=len(items))
        colors = np.fromiter((color_lookup[i.color] for i in items), dtype=np.int32, count=len(items))
        price = np.fromiter((i.price for i in items), dtype=np.float64, count=len(items))
        in_stock = np.ones(len(items), dtype=bool)
        removed = np.zeros(len(items), dtype=bool)
        index = {pid: i for i, pid in enumerate(ids)}
        for pid, value in self._state.prices.items():
            if pid in index:
                price[index[pid]] = value
        for a in self._state.added:  # as added, then as updated since
            in_stock[index[a["id"]]] = bool(a.get("in_stock", True))
        for pid, value in self._state.stock.items():
            if pid in index:
                in_stock[index[pid]] = value
        for pid in self._state.removed:
            if pid in index:
                removed[index[pid]] = True
        cols = CatalogColumns(
            ids=ids,
            categories=categories,
            category_names=list(cat_lookup),
            colors=colors,
            color_names=list(color_lookup),
            price=price,
            in_stock=in_stock,
            removed=removed,
        )
        cols._index = index
        return cols

    @property
    def has_removed(self) -> bool:
        """True when some product is removed (every search then masks it)."""
        return bool(self._state.removed)

    def in_stock(self, item: int) -> bool:
        """Whether product ``item`` is in stock today."""
        return bool(self.columns.in_stock[item])

    @cached_property
    def added_codes(self) -> np.ndarray:
        """(A, w) codes of the added products, in the bundle's code dtype."""
        codes = self.bundle.codes
        return np.frombuffer(b"".join(self._state.codes), dtype=codes.dtype).reshape(-1, codes.shape[1])

    @cached_property
    def added_rerank(self) -> np.ndarray | None:
        """(A, D) int8 re-rank rows of the added products, or None when the bundle does not re-rank."""
        if not self.bundle.has_rerank:
            return None
        dims = int(self.bundle.manifest["codes"]["rerank"]["dims"])
        return np.frombuffer(b"".join(self._state.rerank), dtype=np.int8).reshape(-1, dims)

    @property
    def _tv_dims(self) -> int:
        """Dimensions of the bundle's text-visual codes (0: the bundle has no text-visual model)."""
        entry = self.bundle.manifest.get("text_visual")
        return int(entry["code_dims"]) if isinstance(entry, dict) and "code_dims" in entry else 0

    @cached_property
    def added_text_visual(self) -> np.ndarray | None:
        """(A, C) float32 text-visual codes of the added products (all-zero rows: a product added
        without one), or None when the bundle has no text-visual model."""
        dims = self._tv_dims
        if not dims:
            return None
        return np.frombuffer(b"".join(self._state.tv), dtype=np.float32).reshape(-1, dims)

    @cached_property
    def _thumbs(self) -> np.ndarray:
        tile = int(self.bundle.manifest["thumbnails"]["tile"])
        return np.frombuffer(b"".join(self._state.thumbs), dtype=np.uint8).reshape(-1, tile, tile, 3)

    def thumbnail(self, item: int) -> np.ndarray:
        """(T, T, 3) uint8 thumbnail of any product, bundle or added."""
        if item < self.n_base:
            return self.bundle.thumbnail(item)
        return self._thumbs[item - self.n_base].copy()

    # --- writing ------------------------------------------------------------
    def _header(self) -> dict[str, Any]:
        return {
            "kind": "header",
            "catalog": self.identity.catalog,
            "version": self.identity.version,
            "manifest_sha256": self.identity.manifest_sha256,
            "created": utc_stamp(),
        }

    def _write(self, make_record: Any) -> None:
        """Under the lock: reload the state from disk, build the record from it, append, reload."""
        try:
            with self.log.locked():
                self._load()
                record = make_record()
                if record is not None:
                    self.log.append(record, self._header())
        except OSError as exc:
            raise UpdateLogError(f"cannot write the update log in {self.log.folder}: {exc}") from None
        finally:
            self._load()

    def _live_ids(self) -> dict[str, int]:
        return {pid: i for i, pid in enumerate(self.columns.ids)}

    def update_stock(self, rows: Sequence[StockRow]) -> int:
        """Set prices and stock of existing products, all rows in one record. Returns rows applied.

        Raises:
            ValueError: an unknown or removed id, or a bad price (nothing is written).
        """

        def record() -> dict[str, Any] | None:
            index = self.columns
            problems = []
            for n, row in enumerate(rows, start=1):
                at = index.index_of(row.id)
                if at is None:
                    problems.append(f"row {n}: no product with id {row.id!r}")
                elif index.removed[at]:
                    problems.append(f"row {n}: product {row.id!r} was removed")
                if row.price is not None and (not np.isfinite(row.price) or row.price < 0):
                    problems.append(f"row {n}: price {row.price!r} is not a number >= 0")
            if problems:
                raise ValueError("; ".join(problems[:10]))
            if not rows:
                return None
            return {"kind": "update", "at": utc_stamp(), "rows": [[r.id, r.price, r.in_stock] for r in rows]}

        self._write(record)
        return len(rows)

    def add_products(self, products: Sequence[NewProduct], encoded: EncodedProducts) -> int:
        """Add products with their device-encoded rows, all in one record. Returns products added.

        Raises:
            ValueError: an id that exists (or existed), a duplicate within the
                batch, or encoded rows that do not fit the bundle (nothing is written).
        """
        codes = self.bundle.codes
        n = len(products)
        tile = int(self.bundle.manifest["thumbnails"]["tile"])
        if encoded.codes.shape != (n, codes.shape[1]) or encoded.codes.dtype != codes.dtype:
            raise ValueError(
                f"added codes must be ({n}, {codes.shape[1]}) {codes.dtype}, got {encoded.codes.dtype} {encoded.codes.shape}"
            )
        if not np.isfinite(encoded.codes.astype(np.float32)).all():
            raise ValueError("added codes hold NaN or infinity: the photo encoder's output was not valid")
        if self.bundle.has_rerank:
            dims = int(self.bundle.manifest["codes"]["rerank"]["dims"])
            if encoded.rerank is None or encoded.rerank.shape != (n, dims) or encoded.rerank.dtype != np.int8:
                raise ValueError(f"this bundle re-ranks: added products need ({n}, {dims}) int8 re-rank rows")
        if encoded.thumbnails.shape != (n, tile, tile, 3) or encoded.thumbnails.dtype != np.uint8:
            raise ValueError(f"added thumbnails must be ({n}, {tile}, {tile}, 3) uint8, got {encoded.thumbnails.shape}")
        tv = encoded.text_visual
        if tv is not None:
            dims = self._tv_dims
            if not dims:
                raise ValueError("this bundle has no text-visual model: added products cannot carry text-visual codes")
            if tv.shape != (n, dims) or tv.dtype != np.float32 or not np.isfinite(tv).all():
                raise ValueError(
                    f"added text-visual codes must be ({n}, {dims}) finite float32, got {tv.dtype} {tv.shape}"
                )

        def record() -> dict[str, Any] | None:
            index = self.columns
            problems, seen = [], set()
            for k, p in enumerate(products, start=1):
                if index.index_of(p.id) is not None:
                    problems.append(f"row {k}: a product with id {p.id!r} exists already")
                if p.id in seen:
                    problems.append(f"row {k}: id {p.id!r} appears twice")
                seen.add(p.id)
            if problems:
                raise ValueError("; ".join(problems[:10]))
            if not products:
                return None
            return {
                "kind": "add",
                "at": utc_stamp(),
                "items": [
                    {
                        "id": p.id,
                        "title": p.title,
                        "category": p.category,
                        "color": p.color,
                        "price": p.price,
                        "in_stock": p.in_stock,
                    }
                    for p in products
                ],
                "codes": np.ascontiguousarray(encoded.codes).tobytes(),
                "rerank": np.ascontiguousarray(encoded.rerank).tobytes() if encoded.rerank is not None else b"",
                "thumbs": np.ascontiguousarray(encoded.thumbnails).tobytes(),
                "tv": np.ascontiguousarray(tv).tobytes() if tv is not None else b"",
            }

        self._write(record)
        return n

    def remove_products(self, ids: Sequence[str]) -> int:
        """Tombstone products (bundle or added), all in one record. Returns products removed.

        Raises:
            ValueError: an unknown id (nothing is written). Removing twice is harmless.
        """

        def record() -> dict[str, Any] | None:
            unknown = [pid for pid in ids if self.columns.index_of(pid) is None]
            if unknown:
                raise ValueError(f"no product with id(s) {unknown[:10]}")
            if not ids:
                return None
            return {"kind": "remove", "at": utc_stamp(), "ids": list(ids)}

        self._write(record)
        return len(ids)

    def compact(self) -> str | None:
        """Fold the log into a new segment (same state, one record); returns its file name,
        or None when there is nothing to fold."""
        folded: list[str] = []

        def record() -> None:
            contents = self.log.read()
            if contents.records or contents.torn_bytes:
                folded.append(self.log.compact(self._state.snapshot(), self._header()))

        try:
            with self.log.locked():
                self._load()
                record()
        except OSError as exc:
            raise UpdateLogError(f"cannot compact the update log in {self.log.folder}: {exc}") from None
        finally:
            self._load()
        return folded[0] if folded else None

    def status(self) -> dict[str, Any]:
        """What the log holds, for ``vitrina catalog status``."""
        contents = self.log.read()
        return {
            "bundle": str(self.bundle.path),
            "catalog": self.identity.catalog,
            "version": self.identity.version,
            "log": str(self.log.path),
            "records": len(contents.records),
            "segment": (contents.header or {}).get("segment"),
            "products": len(self.items),
            "added": self.n_added,
            "updated": self.n_updates,
            "removed": self.n_removed,
            "notes": list(self.notes),
        }
