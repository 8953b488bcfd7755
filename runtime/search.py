"""Brute-force product search over a bundle's catalog codes.

Batch-first like faiss: queries (n, D) in, ``(scores, ids)`` out, both (n, k),
with ``ids`` product indices padded with -1 (and scores with -inf) when fewer
than k products exist. Codes are cosine-comparable (L2-normalised), so the score
is a dot product. Several images of one product count once, at their best score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bundle import Bundle, Item

_QUERY_CHUNK = 256


@dataclass(frozen=True)
class SearchOptions:
    """Attributes: k: products to return per query (>= 1)."""

    k: int = 10

    def __post_init__(self) -> None:
        if not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")


@dataclass(frozen=True)
class Match:
    """One ranked product. ``score`` is the cosine similarity in [-1, 1]."""

    item: int
    id: str
    title: str
    category: str
    color: str
    price: float
    score: float

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "category": self.category, "color": self.color, "price": self.price, "score": round(self.score, 6)}


@dataclass(frozen=True)
class SearchResult:
    """The ranked matches of one query, best first."""

    matches: tuple[Match, ...]


class Searcher:
    """Exact cosine search over (N, D) codes whose rows belong to P products."""

    def __init__(self, codes: np.ndarray, code_items: np.ndarray, n_items: int):
        if codes.ndim != 2:
            raise ValueError(f"codes must be (N, D), got shape {codes.shape}")
        if code_items.shape != (codes.shape[0],):
            raise ValueError(f"code_items must be ({codes.shape[0]},), got {code_items.shape}")
        self.codes = codes
        self.code_items = np.asarray(code_items, dtype=np.int64)
        self.n_items = int(n_items)
        self._one_row_per_item = len(np.unique(self.code_items)) == len(self.code_items)

    @classmethod
    def create_from_bundle(cls, bundle: Bundle) -> "Searcher":
        return cls(bundle.codes, bundle.code_items, len(bundle.items))

    @property
    def dims(self) -> int:
        return int(self.codes.shape[1])

    def search(self, queries: np.ndarray, options: SearchOptions = SearchOptions()) -> tuple[np.ndarray, np.ndarray]:
        """Rank products for each query.

        Args:
            queries: (n, D) float32 L2-normalised query codes (a (D,) vector is one query).

        Returns:
            scores: (n, k) float32, best first, -inf where padded.
            ids: (n, k) int64 product indices, -1 where padded.
        """
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.ndim != 2 or queries.shape[1] != self.dims:
            raise ValueError(f"queries must be (n, {self.dims}), got shape {queries.shape}")
        k = int(options.k)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for start in range(0, len(queries), _QUERY_CHUNK):
            item_scores = self._item_scores(queries[start : start + _QUERY_CHUNK])
            s, i = _top_k(item_scores, k)
            scores[start : start + len(s), : s.shape[1]] = s
            ids[start : start + len(s), : s.shape[1]] = i
        ids[~np.isfinite(scores)] = -1
        return scores, ids

    def _item_scores(self, queries: np.ndarray) -> np.ndarray:
        """(n, P) best score of each product; -inf for products without codes."""
        row_scores = queries @ np.asarray(self.codes, dtype=np.float32).T
        item_scores = np.full((len(queries), self.n_items), -np.inf, dtype=np.float32)
        if self._one_row_per_item:
            item_scores[:, self.code_items] = row_scores
        else:
            for q in range(len(queries)):
                np.maximum.at(item_scores[q], self.code_items, row_scores[q])
        return item_scores


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``min(k, P)`` columns of each row of (n, P) scores, sorted descending; ties by lower index."""
    k = min(k, scores.shape[1])
    if k < scores.shape[1]:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    ids = np.take_along_axis(part, order, axis=1)
    return np.take_along_axis(scores, ids, axis=1), ids


def to_results(scores: np.ndarray, ids: np.ndarray, items: tuple[Item, ...]) -> list[SearchResult]:
    """Turn ``search`` arrays into per-query :class:`SearchResult` (padding dropped)."""
    results = []
    for row_scores, row_ids in zip(scores, ids):
        matches = tuple(
            Match(int(i), items[i].id, items[i].title, items[i].category, items[i].color, items[i].price, float(s))
            for s, i in zip(row_scores, row_ids)
            if i >= 0
        )
        results.append(SearchResult(matches))
    return results
