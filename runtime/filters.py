"""Search filters: which products a query may return.

A :class:`SearchFilter` names what a shopper narrowed to: categories, colours,
a price range, "in stock only", and allow / deny lists of product ids. It is
compiled against the live catalog's columns (:class:`CatalogColumns`) into a
(P,) bool product mask, and the searcher applies that mask *during* the scan
(:class:`~vitrina.runtime.scan.RowFilter`), so a filtered query still returns
the ``k`` best matching products, not the matching part of the ``k`` best.

A filter that matches nothing is not an error: :meth:`CatalogColumns.compile`
returns an empty mask and a sentence saying which condition left nothing.
Category and colour names compare accent- and case-insensitively.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np


def fold_name(text: str) -> str:
    """Lower-case, accents stripped, surrounding blanks trimmed: ``" Pantalón "`` → ``"pantalon"``."""
    decomposed = unicodedata.normalize("NFKD", str(text).strip().lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def _names(value: str | Iterable[str] | None, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    names = tuple(str(v) for v in value)
    if any(not n.strip() for n in names):
        raise ValueError(f"filter {what}: an empty name in {list(names)!r}")
    return names


@dataclass(frozen=True)
class SearchFilter:
    """What a query may return. Every condition given must hold (AND); the
    names within one condition are alternatives (OR). The default filter keeps
    every product (except removed ones, which no search returns).

    Attributes:
        categories: product categories to keep (any of them); empty: all.
        colors: colours to keep (any of them); empty: all.
        min_price, max_price: inclusive bounds in the store's currency units; None: open.
        in_stock: True keeps only products in stock.
        allow_ids: product ids to keep (None: no allow list; an empty tuple keeps none).
        deny_ids: product ids never to return.

    Raises:
        ValueError: a price that is negative or not finite, ``min_price`` above
            ``max_price``, or an empty name.
    """

    categories: tuple[str, ...] = ()
    colors: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool = False
    allow_ids: tuple[str, ...] | None = None
    deny_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "categories", _names(self.categories, "categories"))
        object.__setattr__(self, "colors", _names(self.colors, "colors"))
        object.__setattr__(self, "deny_ids", _names(self.deny_ids, "deny_ids"))
        if self.allow_ids is not None:
            object.__setattr__(self, "allow_ids", _names(self.allow_ids, "allow_ids"))
        for name in ("min_price", "max_price"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"filter {name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.min_price is not None and self.max_price is not None and self.min_price > self.max_price:
            raise ValueError(f"filter min_price {self.min_price:g} is above max_price {self.max_price:g}")
        if not isinstance(self.in_stock, bool):
            raise ValueError(f"filter in_stock must be True or False, got {self.in_stock!r}")

    @property
    def is_open(self) -> bool:
        """True when the filter keeps every product."""
        return self == SearchFilter()

    def describe(self) -> str:
        """The conditions in words, e.g. ``category Bag or Shirt, price <= 20, in stock``."""
        parts = []
        if self.categories:
            parts.append("category " + " or ".join(self.categories))
        if self.colors:
            parts.append("colour " + " or ".join(self.colors))
        if self.min_price is not None and self.max_price is not None:
            parts.append(f"price {self.min_price:g} to {self.max_price:g}")
        elif self.min_price is not None:
            parts.append(f"price >= {self.min_price:g}")
        elif self.max_price is not None:
            parts.append(f"price <= {self.max_price:g}")
        if self.in_stock:
            parts.append("in stock")
        if self.allow_ids is not None:
            parts.append(f"{len(self.allow_ids)} allowed id(s)")
        if self.deny_ids:
            parts.append(f"{len(self.deny_ids)} denied id(s)")
        return ", ".join(parts) or "no filter"


@dataclass(frozen=True)
class FilterMatch:
    """A filter compiled against the catalog.

    Attributes:
        mask: (P,) bool, True for the products the filter keeps (removed products never).
        count: products kept.
        why_empty: when ``count`` is 0, a sentence naming the condition that left
            nothing (or the unknown name); None otherwise.
    """

    mask: np.ndarray
    count: int
    why_empty: str | None = None


class CatalogColumns:
    """The catalog's filterable columns, one entry per product (bundle products, then added ones).

    Args:
        ids: product ids.
        categories, colors: (P,) int32 codes into ``category_names`` / ``color_names``.
        category_names, color_names: the names the codes stand for.
        price: (P,) float64 current prices.
        in_stock: (P,) bool.
        removed: (P,) bool tombstones: never returned.
    """

    def __init__(
        self,
        *,
        ids: Sequence[str],
        categories: np.ndarray,
        category_names: Sequence[str],
        colors: np.ndarray,
        color_names: Sequence[str],
        price: np.ndarray,
        in_stock: np.ndarray,
        removed: np.ndarray,
    ):
        self.ids = ids
        self.categories = categories
        self.category_names = tuple(category_names)
        self.colors = colors
        self.color_names = tuple(color_names)
        self.price = price
        self.in_stock = in_stock
        self.removed = removed
        self._index: dict[str, int] | None = None

    def index_of(self, product_id: str) -> int | None:
        """The product index of ``product_id`` (built once), or None."""
        if self._index is None:
            self._index = {pid: i for i, pid in enumerate(self.ids)}
        return self._index.get(product_id)

    def compile(self, f: SearchFilter) -> FilterMatch:
        """The (P,) mask of ``f`` and, when it keeps nothing, why."""
        mask = ~self.removed
        if not mask.any():
            return FilterMatch(mask, 0, "the catalog has no products (all were removed)")
        steps: list[tuple[str, np.ndarray | str]] = []
        if f.categories:
            steps.append((f"category {' or '.join(f.categories)}", self._name_mask(f.categories, "category")))
        if f.colors:
            steps.append((f"colour {' or '.join(f.colors)}", self._name_mask(f.colors, "colour")))
        if f.min_price is not None:
            steps.append((f"price >= {f.min_price:g}", self.price >= f.min_price))
        if f.max_price is not None:
            steps.append((f"price <= {f.max_price:g}", self.price <= f.max_price))
        if f.in_stock:
            steps.append(("in stock", self.in_stock))
        if f.allow_ids is not None:
            steps.append((f"the {len(f.allow_ids)} allowed id(s)", self._id_mask(f.allow_ids)))
        if f.deny_ids:
            steps.append(("the denied ids", ~self._id_mask(f.deny_ids)))
        said: list[str] = []
        for label, step in steps:
            if isinstance(step, str):  # an unknown name: say so, match nothing
                return FilterMatch(np.zeros_like(mask), 0, step)
            mask = mask & step
            said.append(label)
            if not mask.any():
                before = f" among products with {', '.join(said[:-1])}" if len(said) > 1 else ""
                return FilterMatch(mask, 0, f"no product matches {label}{before}")
        return FilterMatch(mask, int(np.count_nonzero(mask)))

    def _name_mask(self, names: Sequence[str], what: str) -> np.ndarray | str:
        known = self.category_names if what == "category" else self.color_names
        codes = self.categories if what == "category" else self.colors
        folded = {fold_name(n): i for i, n in enumerate(known)}
        wanted = [folded.get(fold_name(n)) for n in names]
        if all(w is None for w in wanted):
            shown = ", ".join(known[:12]) + (" ..." if len(known) > 12 else "")
            return f"no {what} named {' or '.join(repr(n) for n in names)} in this catalog (it has: {shown})"
        lut = np.zeros(max(len(known), 1), dtype=bool)
        lut[[w for w in wanted if w is not None]] = True
        return lut[codes]

    def _id_mask(self, ids: Sequence[str]) -> np.ndarray:
        out = np.zeros(len(self.removed), dtype=bool)
        rows = [self.index_of(pid) for pid in ids]
        out[[r for r in rows if r is not None]] = True
        return out
