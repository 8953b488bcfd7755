"""Brute-force product search over a bundle's catalog codes, with an optional re-rank.

Batch-first like faiss: queries (n, d) in, ``(scores, ids)`` out, both (n, k),
with ``ids`` product indices padded with -1 (and scores with -inf) when fewer
than k products exist. The score is higher-is-better for every code type
(``codes.pairwise_scores``: cosine, minus squared L2, minus Hamming distance).
Several images of one product count once, at their best score.

Two-stage search (:class:`RerankSearcher`): shortlist the ``shortlist`` best
code rows with the compact codes, then re-rank only those rows by cosine with
the full int8 embeddings, which stay memory-mapped (only touched rows are read).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bundle import Bundle, Item
from .codes import QueryReducer, as_words, code_words, hamming_from_words, pairwise_scores

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
    """Exact search over (N, d) codes whose rows belong to P products.

    ``metric``: cosine (float32 unit codes), l2 (float16/32 codes) or hamming
    (packed uint8 codes); queries come in the same code space.
    """

    def __init__(self, codes: np.ndarray, code_items: np.ndarray, n_items: int, metric: str = "cosine"):
        if codes.ndim != 2:
            raise ValueError(f"codes must be (N, D), got shape {codes.shape}")
        if code_items.shape != (codes.shape[0],):
            raise ValueError(f"code_items must be ({codes.shape[0]},), got {code_items.shape}")
        if metric == "hamming" and codes.dtype != np.uint8:
            raise ValueError(f"hamming search needs packed uint8 codes, got {codes.dtype}")
        self.metric = metric
        # float16 codes are widened once (N·d·4 bytes: 2.2 MB for 70k × 8); float32 stay memory-mapped.
        self.codes = np.asarray(codes, dtype=np.float32) if codes.dtype == np.float16 else codes
        self.code_items = np.asarray(code_items, dtype=np.int64)
        self.n_items = int(n_items)
        self._one_row_per_item = len(np.unique(self.code_items)) == len(self.code_items)
        self._rows_are_items = len(self.code_items) == self.n_items and bool((self.code_items == np.arange(self.n_items)).all())
        self._words = code_words(np.asarray(codes)) if metric == "hamming" else None  # word-major copy, N·B bytes
        self._sq_norms = np.einsum("ij,ij->i", self.codes, self.codes) if metric == "l2" else None  # once, not per query
        pairwise_scores(np.zeros((1, self.dims), self.codes.dtype), self.codes[:1], metric)  # reject an unknown metric now

    @classmethod
    def create_from_bundle(cls, bundle: Bundle) -> "Searcher":
        return cls(bundle.codes, bundle.code_items, len(bundle.items), bundle.code_spec.metric)

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
        queries = self.check_queries(queries)
        k = int(options.k)
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for start in range(0, len(queries), _QUERY_CHUNK):
            item_scores = self._item_scores(self.row_scores(queries[start : start + _QUERY_CHUNK]))
            s, i = _top_k(item_scores, k)
            scores[start : start + len(s), : s.shape[1]] = s
            ids[start : start + len(s), : s.shape[1]] = i
        ids[~np.isfinite(scores)] = -1
        return scores, ids

    def check_queries(self, queries: np.ndarray) -> np.ndarray:
        """Queries as (n, d) in this searcher's code dtype; a (d,) vector is one query."""
        queries = np.asarray(queries, dtype=np.uint8 if self.metric == "hamming" else np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.ndim != 2 or queries.shape[1] != self.dims:
            raise ValueError(f"queries must be (n, {self.dims}), got shape {queries.shape}")
        return queries

    def row_scores(self, queries: np.ndarray) -> np.ndarray:
        """(n, N) float32 score of every code row, higher is better."""
        if self._words is not None:
            return -hamming_from_words(as_words(queries), self._words).astype(np.float32)
        if self._sq_norms is not None:
            return 2.0 * (queries @ self.codes.T) - np.einsum("ij,ij->i", queries, queries)[:, None] - self._sq_norms
        return pairwise_scores(queries, self.codes, self.metric)

    def _item_scores(self, row_scores: np.ndarray) -> np.ndarray:
        """(n, P) best score of each product; -inf for products without codes."""
        if self._rows_are_items:  # row i is product i: nothing to gather
            return row_scores
        return _best_per_item(row_scores, self.code_items, self.n_items, self._one_row_per_item)


def _best_per_item(row_scores: np.ndarray, code_items: np.ndarray, n_items: int, one_row_per_item: bool) -> np.ndarray:
    item_scores = np.full((len(row_scores), n_items), -np.inf, dtype=np.float32)
    if one_row_per_item:
        item_scores[:, code_items] = row_scores
    else:
        for q in range(len(row_scores)):
            np.maximum.at(item_scores[q], code_items, row_scores[q])
    return item_scores


class RerankSearcher:
    """Two-stage search: shortlist with compact codes, re-rank with full int8 embeddings.

    Args:
        compact: a :class:`Searcher` over the compact codes.
        rerank_codes: (N, D) int8 full embeddings, one row per code row
            (memory-mapped: only shortlisted rows are read); cosine-ranked.
        scale: the float value of one int8 step (embedding ≈ rerank_codes · scale).
        shortlist: code rows kept from the first stage (>= k).
    """

    def __init__(self, compact: Searcher, rerank_codes: np.ndarray, scale: float, shortlist: int = 200):
        if rerank_codes.ndim != 2 or len(rerank_codes) != len(compact.codes):
            raise ValueError(f"rerank codes must be ({len(compact.codes)}, D), got shape {rerank_codes.shape}")
        if shortlist < 1:
            raise ValueError(f"shortlist must be >= 1, got {shortlist}")
        self.compact = compact
        self.rerank_codes = rerank_codes
        self.scale = float(scale)
        self.shortlist = int(shortlist)

    @property
    def full_dims(self) -> int:
        return int(self.rerank_codes.shape[1])

    def search(self, codes: np.ndarray, embeddings: np.ndarray, options: SearchOptions = SearchOptions()) -> tuple[np.ndarray, np.ndarray]:
        """Rank products for each query.

        Args:
            codes: (n, d) queries in the compact code space (first stage).
            embeddings: (n, D) float32 unit embeddings of the same queries (re-rank).

        Returns:
            ``(scores, ids)`` as :meth:`Searcher.search`; scores are cosine
            similarities of the re-ranked rows.
        """
        codes = self.compact.check_queries(codes)
        embeddings = np.asarray(embeddings, dtype=np.float32).reshape(len(codes), -1)
        if embeddings.shape[1] != self.full_dims:
            raise ValueError(f"embeddings must be (n, {self.full_dims}), got shape {embeddings.shape}")
        k = int(options.k)
        scores = np.full((len(codes), k), -np.inf, dtype=np.float32)
        ids = np.full((len(codes), k), -1, dtype=np.int64)
        for q in range(len(codes)):
            rows = np.sort(shortlist_rows(self.compact.row_scores(codes[q : q + 1])[0], self.shortlist))  # sorted: sequential mmap reads
            cosine = (np.asarray(self.rerank_codes[rows], dtype=np.float32) @ embeddings[q]) * self.scale
            best: dict[int, float] = {}
            for item, score in zip(self.compact.code_items[rows].tolist(), cosine.tolist()):
                if score > best.get(item, -np.inf):
                    best[item] = score
            ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
            for j, (item, score) in enumerate(ranked):
                ids[q, j], scores[q, j] = item, score
        return scores, ids


def shortlist_rows(row_scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` best of (N,) scores (unordered; all when N <= n)."""
    if n >= len(row_scores):
        return np.arange(len(row_scores))
    return np.argpartition(-row_scores, n - 1)[:n]


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best ``min(k, P)`` columns of each row of (n, P) scores, sorted descending; ties by lower index."""
    k = min(k, scores.shape[1])
    if k == scores.shape[1]:
        ids = np.lexsort((np.broadcast_to(np.arange(k), scores.shape), -scores), axis=1)
        return np.take_along_axis(scores, ids, axis=1), ids
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    kth = np.take_along_axis(scores, part, axis=1).min(axis=1)
    ids = np.empty((len(scores), k), dtype=np.int64)
    for q, row in enumerate(scores):
        # every index tied with the k-th score competes, so ties always go to the lower index
        # (Hamming distances tie often; argpartition alone would pick among them arbitrarily)
        candidates = np.flatnonzero(row >= kth[q])
        ids[q] = candidates[np.lexsort((candidates, -row[candidates]))[:k]]
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


class CatalogIndex:
    """A bundle's catalog ready to search, whatever its code type.

    Holds the query reducer (embedding → code), the first-stage
    :class:`Searcher`, and the :class:`RerankSearcher` when the bundle ships
    re-rank embeddings. Callers pass encoder embeddings and get products.
    """

    def __init__(self, reducer: QueryReducer, searcher: Searcher, rerank: RerankSearcher | None = None):
        self.reducer = reducer
        self.searcher = searcher
        self.rerank = rerank

    @classmethod
    def create_from_bundle(cls, bundle: Bundle) -> "CatalogIndex":
        searcher = Searcher.create_from_bundle(bundle)
        rerank = None
        if bundle.has_rerank:
            codes, scale, shortlist = bundle.rerank()
            rerank = RerankSearcher(searcher, codes, scale, shortlist)
        return cls(bundle.reducer(), searcher, rerank)

    def search(self, embeddings: np.ndarray, options: SearchOptions = SearchOptions()) -> tuple[np.ndarray, np.ndarray]:
        """(n, D) float32 unit encoder embeddings → ``(scores, ids)`` as :meth:`Searcher.search`."""
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim == 1:
            embeddings = embeddings[None]
        codes = self.reducer(embeddings)
        if self.rerank is not None:
            return self.rerank.search(codes, embeddings, options)
        return self.searcher.search(codes, options)

    def search_rows(self, rows: np.ndarray, options: SearchOptions = SearchOptions()) -> tuple[np.ndarray, np.ndarray]:
        """Search with catalog code rows as queries (e.g. "similar products")."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        codes = np.asarray(self.searcher.codes[rows])
        if self.rerank is not None:
            full = np.asarray(self.rerank.rerank_codes[rows], dtype=np.float32)
            full /= np.maximum(np.linalg.norm(full, axis=1, keepdims=True), 1e-12)
            return self.rerank.search(codes, full, options)
        return self.searcher.search(codes, options)
