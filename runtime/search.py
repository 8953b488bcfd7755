"""Brute-force product search over a bundle's catalog codes, with an optional re-rank.

Batch-first like faiss: queries (n, d) in, ``(scores, ids)`` out, both (n, k),
with ``ids`` product indices padded with -1 (and scores with -inf) when fewer
than k products exist. Several images of one product count once, at their
best score.

The score is higher-is-better for every code type, but it is a cosine only
for float codes (``codes.pairwise_scores``):

* ``cosine`` (float32 unit codes): the dot product of unit vectors, in [-1, 1];
* ``l2`` (float16/32 PCA and UMAP codes): minus the squared Euclidean distance, <= 0;
* ``hamming`` (packed uint8 bit codes): minus the number of differing bits, <= 0.

dtype policy (faiss's): float queries to a float index are converted to
float32; a binary (Hamming) index takes packed uint8 codes only, and any other
dtype raises ``ValueError`` instead of being cast.

Two-stage search (:class:`RerankSearcher`): shortlist the ``shortlist`` best
code rows with the compact codes, then re-rank only those rows by cosine with
the full int8 embeddings, which stay memory-mapped (only touched rows are read).

:class:`Searcher` has the device-task shape of ``encoders.py``: frozen
:class:`SearcherOptions`, :class:`SearchResult`, ``create_from_bundle`` /
``create_from_options``, ``close()`` and ``with``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundle import Bundle, Item
from .codes import QueryReducer, as_words, code_words, hamming_from_words, pairwise_scores
from .scan import CodeScan, RowFilter

#: Products returned per query when the caller does not say: the one default of
#: ``k`` for :class:`Searcher`, :class:`~vitrina.runtime.product_search.ProductSearch` and the CLI.
DEFAULT_K = 10
#: Most products one query may ask for. A shopper looks at a screen or two of
#: results (the kiosk shows 12); 1000 keeps the (n, k) result arrays small
#: (n · k · 12 bytes) while a huge ``k`` would allocate without bound.
MAX_K = 1000
#: :attr:`SearchResult.capped_by` when the re-rank's shortlist of code rows bounded the results.
CAPPED_BY_SHORTLIST = "shortlist"
#: :attr:`SearchResult.capped_by` when the catalog has fewer products with codes than ``k``.
CAPPED_BY_CATALOG = "catalog"
#: :attr:`SearchResult.capped_by` when fewer than ``k`` products match the query's filter.
CAPPED_BY_FILTER = "filter"

_QUERY_CHUNK = 256


class NonFiniteQueryError(ValueError):
    """A query code or embedding holds NaN or infinity: searching it would rank arbitrary products."""


@dataclass(frozen=True)
class SearcherOptions:
    """Options of :class:`Searcher` (and of one :meth:`Searcher.search` call).

    Tensor contract: queries (n, d) in the catalog's code space, one row per
    query (a (d,) vector is one query): any real dtype, converted to float32,
    for ``cosine`` and ``l2`` codes; packed uint8 (n, bits/8) for ``hamming``
    codes, never cast. Results: ``scores`` (n, k) float32 and ``ids`` (n, k)
    int64 product indices, best first, padded with -inf / -1.

    Attributes:
        k: products to return per query, 1 to :data:`MAX_K`.
        bundle_path: the bundle :meth:`Searcher.create_from_options` opens;
            None otherwise (ignored by a per-call ``search(queries, options)``).
        num_threads: threads splitting the scan's rows (1: the calling thread only).
    """

    k: int = DEFAULT_K
    bundle_path: str | None = None
    num_threads: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)) or self.k < 1:
            raise ValueError(f"k must be an integer >= 1, got {self.k!r}")
        if self.k > MAX_K:
            raise ValueError(f"k must be at most MAX_K = {MAX_K} products per query, got {self.k}")
        if isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int) or self.num_threads < 1:
            raise ValueError(f"num_threads must be an integer >= 1, got {self.num_threads!r}")


#: The name of :class:`SearcherOptions` before the searcher became a task; kept for callers.
SearchOptions = SearcherOptions


@dataclass(frozen=True)
class Match:
    """One ranked product.

    Attributes:
        item: product index in the bundle (``bundle.items[item]``).
        id, title, category, color: the product's catalog fields.
        price: in the store's currency units (today's, after the device's updates).
        score: higher is better; by the catalog's metric a cosine in [-1, 1]
            (float codes and the int8 re-rank), minus a squared L2 distance
            (PCA / UMAP codes) or minus a number of differing bits (binary codes).
        in_stock: False when the store marked the product out of stock.
    """

    item: int
    id: str
    title: str
    category: str
    color: str
    price: float
    score: float
    in_stock: bool = True

    def to_json(self) -> dict[str, object]:
        """The fields a client shows (``item`` left out), score rounded to 6 decimals."""
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "color": self.color,
            "price": self.price,
            "in_stock": self.in_stock,
            "score": round(self.score, 6),
        }


@dataclass(frozen=True)
class SearchResult:
    """The ranked matches of one query, best first (at most k; fewer when the catalog is smaller).

    Attributes:
        matches: the products, each with its score (see :class:`Match`).
        capped_by: why fewer than the ``k`` asked for came back, None when k did
            (or, for a keyword search, when fewer words matched):
            :data:`CAPPED_BY_SHORTLIST` (the re-rank kept only ``cap`` code rows),
            :data:`CAPPED_BY_CATALOG` (only ``cap`` products have codes) or
            :data:`CAPPED_BY_FILTER` (only ``cap`` products match the filter).
        cap: the bound ``capped_by`` names (code rows or products); None when not capped.
        note: why a filter left nothing (e.g. "no product matches in stock among
            products with category Bag"); None otherwise.
        query_color: for a colour sketch, the catalog colour family it was drawn in and
            ranked by (``vitrina.runtime.color_search``); None for black ink and other queries.
    """

    matches: tuple[Match, ...]
    capped_by: str | None = None
    cap: int | None = None
    note: str | None = None
    query_color: str | None = None

    def cap_note(self) -> str | None:
        """A sentence on why fewer products than asked for came back, or None."""
        if self.note is not None:
            return self.note
        if self.capped_by == CAPPED_BY_FILTER:
            return f"only {self.cap} products match the filter"
        if self.capped_by == CAPPED_BY_SHORTLIST:
            return (
                f"the bundle re-ranks a shortlist of its {self.cap} best catalog images, so at most that many products"
            )
        if self.capped_by == CAPPED_BY_CATALOG:
            return f"the catalog has {self.cap} products with codes"
        return None


class Searcher:
    """Exact search over (N, d) codes whose rows belong to P products.

    ``metric``: cosine (float32 unit codes), l2 (float16/32 codes) or hamming
    (packed uint8 codes); queries come in the same code space (see
    :class:`SearcherOptions` for the tensor contract and the dtype policy).
    Create with :meth:`create_from_bundle`, :meth:`create_from_options`, or
    from arrays.

    When row i is product i (one image per product, the usual catalog), the
    search is a :class:`~vitrina.runtime.scan.CodeScan` over the memory-mapped
    codes: blocks of Hamming / BLAS distances, a running k-th distance, filters
    applied during the scan, nothing N-sized kept beyond the codes (float L2
    keeps one float32 norm per row). Catalogs with several images per product
    score every row and keep each product's best.

    Args:
        codes: (N, d) catalog codes, one row per catalog image (may be memory-mapped),
            or a sequence of such arrays scanned in order (the bundle's codes, then
            the rows added on the device).
        code_items: (N,) int product index of each code row, in [0, n_items).
        n_items: P, the number of products.
        metric: cosine, l2 or hamming.
        options: default options of :meth:`search` (``k``, ``num_threads``).
        code_scale: (d,) float32 per-dimension scale of int8 codes (l2 / cosine over
            ``code * code_scale``: half the bytes of float16, see ``runtime/scan.py``).

    Raises:
        ValueError: shapes or dtypes that do not fit, or an unknown metric.
    """

    def __init__(
        self,
        codes: np.ndarray | Sequence[np.ndarray],
        code_items: np.ndarray,
        n_items: int,
        metric: str = "cosine",
        options: SearcherOptions | None = None,
        *,
        code_scale: np.ndarray | None = None,
    ):
        parts = [codes] if isinstance(codes, np.ndarray) else list(codes)
        if not parts or any(p.ndim != 2 for p in parts):
            raise ValueError(f"codes must be (N, D), got shape(s) {[p.shape for p in parts]}")
        n_rows = sum(len(p) for p in parts)
        if code_items.shape != (n_rows,):
            raise ValueError(f"code_items must be ({n_rows},), got {code_items.shape}")
        if metric == "hamming" and any(p.dtype != np.uint8 for p in parts):
            raise ValueError(f"hamming search needs packed uint8 codes, got {parts[0].dtype}")
        if metric not in _SCAN_METRIC:
            raise ValueError(f"unknown metric {metric!r}: expected one of {tuple(_SCAN_METRIC)}")
        self.options = options if options is not None else SearcherOptions()
        self.metric = metric
        self.parts = parts
        self.code_items = np.asarray(code_items)
        self.n_items = int(n_items)
        self._closed = False
        dtype = np.float32 if any(p.dtype == np.float32 for p in parts) else parts[0].dtype
        scan_parts = [p if p.dtype == dtype else np.asarray(p, dtype=dtype) for p in parts]
        self.code_scale = None if code_scale is None else np.asarray(code_scale, dtype=np.float32)
        self._scan = CodeScan(scan_parts, _SCAN_METRIC[metric], scale=self.code_scale)
        self._rows_are_items = n_rows == self.n_items and bool((self.code_items == np.arange(self.n_items)).all())
        if self._rows_are_items:
            self.searchable_items = self.n_items
            self._one_row_per_item = True
        else:
            self.searchable_items = len(np.unique(self.code_items))  # products with at least one code row
            self._one_row_per_item = self.searchable_items == n_rows
            self.code_items = self.code_items.astype(np.int64)
        self._dense: np.ndarray | None = None  # all rows as one array, for the per-row scoring path

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, options: SearcherOptions | None = None) -> Searcher:
        """A searcher over the bundle's catalog codes with its metric.

        Queries must already be in the code space (``bundle.reducer()`` of an
        encoder embedding; the identity for float codes). It does not re-rank:
        :class:`CatalogIndex` adds the reducer and the re-rank.

        Args:
            bundle: an opened bundle.
            options: default ``k``; ``bundle_path`` None or this bundle's path.

        Raises:
            ValueError: ``options.bundle_path`` names another bundle.
        """
        if (
            options is not None
            and options.bundle_path is not None
            and Path(options.bundle_path).resolve() != Path(bundle.path).resolve()
        ):
            raise ValueError(
                f"options.bundle_path {options.bundle_path} is not the bundle given ({bundle.path}); leave it None"
            )
        return cls(
            bundle.codes,
            bundle.code_items,
            len(bundle.items),
            bundle.code_spec.metric,
            options,
            code_scale=bundle.code_scale,
        )

    @classmethod
    def create_from_options(cls, options: SearcherOptions) -> Searcher:
        """Open (and verify) the bundle at ``options.bundle_path`` and search its codes.

        Raises:
            ValueError: ``options.bundle_path`` is None.
            BundleError: the bundle cannot be opened (a subclass says why).
        """
        if options.bundle_path is None:
            raise ValueError("Searcher.create_from_options needs options.bundle_path (or use create_from_bundle)")
        return cls.create_from_bundle(Bundle.open(options.bundle_path), options)

    @property
    def dims(self) -> int:
        """d, the width of one code row (bytes for packed hamming codes)."""
        return int(self.parts[0].shape[1])

    @property
    def n_rows(self) -> int:
        """N, code rows across all parts."""
        return self._scan.n_rows

    @property
    def codes(self) -> np.ndarray:
        """All code rows as one (N, d) array: the memory-mapped codes themselves when
        there is one part (rows added on the device make it a copy)."""
        if len(self.parts) == 1:
            return self.parts[0]
        return np.concatenate(self.parts)

    def row_codes(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), d) codes of the given row indices, across parts, as queries take them:
        int8 rows times their scale (float32); other codes as stored."""
        codes = gather_rows(self.parts, np.asarray(rows, dtype=np.int64))
        return codes if self.code_scale is None else codes.astype(np.float32) * self.code_scale

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def row_filter(self, item_mask: np.ndarray) -> RowFilter:
        """The :class:`~vitrina.runtime.scan.RowFilter` of the code rows whose product is kept
        by the (P,) bool ``item_mask``; keep it while the filter stays the same (a selective
        filter's codes are gathered once, on its first search)."""
        item_mask = np.asarray(item_mask, dtype=bool)
        if item_mask.shape != (self.n_items,):
            raise ValueError(f"item mask must be ({self.n_items},) bool, got {item_mask.shape}")
        return RowFilter.from_mask(item_mask if self._rows_are_items else item_mask[self.code_items])

    def search(
        self, queries: np.ndarray, options: SearcherOptions | None = None, *, within: RowFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rank products for each query.

        Args:
            queries: (n, d) query codes, float (cosine: L2-normalised) or packed
                uint8 for hamming; a (d,) vector is one query.
            options: this call's ``k`` and ``num_threads``; default the searcher's options.
            within: only these code rows (:meth:`row_filter`), applied during the scan.

        Returns:
            scores: (n, k) float32, best first, -inf where padded (see the module
                docstring for what a score is under each metric).
            ids: (n, k) int64 product indices, -1 where padded; equal scores are
                ordered by product index.

        Raises:
            ValueError: the searcher is closed, or queries of the wrong shape or dtype.
        """
        queries = self.check_queries(queries)
        options = options if options is not None else self.options
        k = int(options.k)
        if self._rows_are_items:
            dist, ids = self._scan.search(queries, k, rows=within, threads=options.num_threads)
            return _scores_from_distances(dist), ids
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for start in range(0, len(queries), _QUERY_CHUNK):
            rows = self.row_scores(queries[start : start + _QUERY_CHUNK])
            if within is not None:
                rows[:, ~within.mask] = -np.inf
            s, i = _top_k(self._item_scores(rows), k)
            scores[start : start + len(s), : s.shape[1]] = s
            ids[start : start + len(s), : s.shape[1]] = i
        ids[~np.isfinite(scores)] = -1
        return scores, ids

    def shortlist(
        self, queries: np.ndarray, n: int, *, within: RowFilter | None = None, num_threads: int = 1
    ) -> np.ndarray:
        """(q, min(n, N)) int64 indices of the ``n`` best code rows of each checked query,
        best first, ties by lower row index, -1 where fewer rows are allowed."""
        dist, ids = self._scan.search(queries, min(n, max(self.n_rows, 1)), rows=within, threads=num_threads)
        return ids

    def check_queries(self, queries: np.ndarray) -> np.ndarray:
        """Queries as (n, d): float32 for cosine / l2, packed uint8 for hamming; a (d,) vector is one query.

        Raises:
            ValueError: the searcher is closed; a hamming searcher got anything
                but uint8 (floats are never cast to bits); the width is not d.
            NonFiniteQueryError: a float query holds NaN or infinity.
        """
        self._check_open()
        if self.metric == "hamming":
            queries = np.asarray(queries)
            if queries.dtype != np.uint8:
                raise ValueError(
                    f"a hamming index takes packed uint8 queries (n, {self.dims}) like its codes, got {queries.dtype}: "
                    "pack sign bits with np.packbits (the bundle's reducer does); other dtypes are not cast"
                )
        else:
            queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim == 1:
            queries = queries[None]
        if queries.ndim != 2 or queries.shape[1] != self.dims:
            raise ValueError(f"queries must be (n, {self.dims}), got shape {queries.shape}")
        if self.metric != "hamming":
            check_finite(queries, "query codes")
        return queries

    def row_scores(self, queries: np.ndarray) -> np.ndarray:
        """(n, N) float32 score of every code row for (n, d) checked queries, higher is better
        (cosine, minus squared L2 distance, or minus differing bits, by metric)."""
        if self._dense is None:
            codes = self.codes
            self._dense = np.asarray(codes, dtype=np.float32) if codes.dtype == np.float16 else codes
            if self.code_scale is not None:
                self._dense = np.asarray(codes, dtype=np.float32) * self.code_scale
        if self.metric == "hamming":
            return -hamming_from_words(as_words(queries), code_words(np.asarray(self._dense))).astype(np.float32)
        return pairwise_scores(queries, self._dense, self.metric)

    def _item_scores(self, row_scores: np.ndarray) -> np.ndarray:
        """(n, P) best score of each product; -inf for products without codes."""
        if self._rows_are_items:  # row i is product i: nothing to gather
            return row_scores
        return _best_per_item(row_scores, self.code_items, self.n_items, self._one_row_per_item)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(
                f"this {self.metric} Searcher over {len(self.code_items)} code rows is closed; create a new one"
            )

    def close(self) -> None:
        """Drop the codes (releasing a memory map); later searches raise ``ValueError``. Closing twice is harmless."""
        self._closed = True
        self._scan.close()
        self.parts = [np.empty((0, self.dims), self.parts[0].dtype)]
        self._scan = CodeScan(self.parts, self._scan.metric, scale=self.code_scale)
        self._dense = None

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_SCAN_METRIC = {"cosine": "ip", "l2": "l2", "hamming": "hamming"}


def _scores_from_distances(dist: np.ndarray) -> np.ndarray:
    """Scan distances (lower is better, inf where padded) → scores (higher is better, -inf)."""
    return np.negative(dist).astype(np.float32, copy=False)


def gather_rows(parts: Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """(len(rows), d) rows of the arrays ``parts`` numbered in order; -1 rows give zeros.
    Reads only the rows asked for (the parts may be memory-mapped)."""
    out = np.zeros((len(rows), parts[0].shape[1]), dtype=parts[0].dtype)
    lo = 0
    for p in parts:
        hi = lo + len(p)
        sel = np.flatnonzero((rows >= lo) & (rows < hi))
        if len(sel):
            out[sel] = p[rows[sel] - lo]
        lo = hi
    return out


def _best_per_item(row_scores: np.ndarray, code_items: np.ndarray, n_items: int, one_row_per_item: bool) -> np.ndarray:
    """(n, N) row scores → (n, n_items) float32 best score per product, -inf where a product has no row."""
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
            (memory-mapped: only shortlisted rows are read), or a sequence of such
            arrays matching the compact searcher's parts; cosine-ranked, widened
            to float32 before any arithmetic.
        scale: the float value of one int8 step (embedding ≈ rerank_codes · scale).
        shortlist: code rows kept from the first stage (>= 1; all rows when N is smaller).
        blend: weight of the first-stage score in the re-rank: the cosine plus ``blend`` ×
            the row's compact score in standard deviations of the query's shortlist (>= 0;
            0, the default, ranks by cosine alone). The compact codes carry the category
            layout, the full embeddings the instance: the blend keeps both.
        instance_depth, instance_top: the **instance check** (0, 0: off; needs blend 0):
            the cosine is also taken on the compact codes' ``instance_depth`` best rows, and
            the ``instance_top`` of them with the best cosine join the shortlist. A drawing
            of one product finds that product by its full embedding even where the compact
            codes (which keep categories, not instances) ranked it below the shortlist; the
            shortlist itself stays as it was, so the category order past the first few does.
    """

    def __init__(
        self,
        compact: Searcher,
        rerank_codes: np.ndarray | Sequence[np.ndarray],
        scale: float,
        shortlist: int = 200,
        blend: float = 0.0,
        *,
        instance_depth: int = 0,
        instance_top: int = 0,
    ):
        parts = [rerank_codes] if isinstance(rerank_codes, np.ndarray) else list(rerank_codes)
        if any(p.ndim != 2 for p in parts) or sum(len(p) for p in parts) != compact.n_rows:
            raise ValueError(f"rerank codes must be ({compact.n_rows}, D), got shape(s) {[p.shape for p in parts]}")
        if shortlist < 1:
            raise ValueError(f"shortlist must be >= 1, got {shortlist}")
        if not (np.isfinite(blend) and blend >= 0):
            raise ValueError(f"blend must be finite and >= 0, got {blend}")
        if instance_depth < 0 or instance_top < 0 or (instance_top > 0) != (instance_depth > 0):
            raise ValueError(
                f"instance_depth and instance_top must be both 0 (off) or both >= 1, got {instance_depth}, {instance_top}"
            )
        if instance_top and blend:
            raise ValueError(f"the instance check ranks by cosine alone: blend must be 0, got {blend}")
        self.instance_depth = int(instance_depth)
        self.instance_top = int(instance_top)
        self.blend = float(blend)
        self.compact = compact
        self.rerank_parts = parts
        self.scale = float(scale)
        self.shortlist = int(shortlist)

    @property
    def rerank_codes(self) -> np.ndarray:
        """All re-rank rows as one (N, D) int8 array (a copy when rows were added on the device)."""
        return self.rerank_parts[0] if len(self.rerank_parts) == 1 else np.concatenate(self.rerank_parts)

    @property
    def full_dims(self) -> int:
        """D, the width of the full re-rank embeddings."""
        return int(self.rerank_parts[0].shape[1])

    def search(
        self,
        codes: np.ndarray,
        embeddings: np.ndarray,
        options: SearcherOptions | None = None,
        *,
        within: RowFilter | None = None,
        instances: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rank products for each query.

        Args:
            codes: (n, d) queries in the compact code space (first stage).
            embeddings: (n, D) float32 unit embeddings of the same queries (re-rank).
            options: this call's ``k`` and ``num_threads``; default the compact searcher's options.
            within: only these code rows, applied during the first stage's scan.
            instances: run the instance check, if any (False for a catalog row as the query:
                "similar products" wants its neighbours, and the row itself leads the shortlist).

        Returns:
            ``(scores, ids)`` as :meth:`Searcher.search`; scores are cosines
            (approximate: the catalog side is int8) of the best re-ranked row of
            each product, ties ordered by product index.

        Raises:
            ValueError: shapes or dtypes that do not fit (see :meth:`Searcher.check_queries`).
            NonFiniteQueryError: a code or an embedding holds NaN or infinity.
        """
        codes = self.compact.check_queries(codes)
        embeddings = np.asarray(embeddings, dtype=np.float32).reshape(len(codes), -1)
        if embeddings.shape[1] != self.full_dims:
            raise ValueError(f"embeddings must be (n, {self.full_dims}), got shape {embeddings.shape}")
        check_finite(embeddings, "query embeddings")
        options = options if options is not None else self.compact.options
        k = int(options.k)
        scores = np.full((len(codes), k), -np.inf, dtype=np.float32)
        ids = np.full((len(codes), k), -1, dtype=np.int64)
        for start in range(0, len(codes), _QUERY_CHUNK):
            stop = start + _QUERY_CHUNK
            s, i = self._rerank(codes[start:stop], embeddings[start:stop], k, within, options.num_threads, instances)
            scores[start : start + len(s), : s.shape[1]] = s
            ids[start : start + len(s), : s.shape[1]] = i
        return scores, ids

    def _rerank(
        self,
        codes: np.ndarray,
        embeddings: np.ndarray,
        k: int,
        within: RowFilter | None,
        threads: int,
        instances: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """One chunk: (n, d) codes and (n, D) embeddings → (n, <=k) scores and product ids."""
        depth = self.depth if instances else self.shortlist
        rows = self.compact.shortlist(codes, depth, within=within, num_threads=threads)
        return self.rerank_rows(codes, embeddings, rows, k)

    @property
    def depth(self) -> int:
        """Compact-code rows a query's re-rank reads: the shortlist, or the instance check's depth."""
        return max(self.shortlist, self.instance_depth)

    def rerank_rows(
        self, codes: np.ndarray, embeddings: np.ndarray, rows: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The second stage alone: (n, <=k) scores and product ids of (n, S) int64 code rows best
        first by the compact codes (:meth:`Searcher.shortlist`'s for :attr:`depth`, -1 for none)
        of (n, d) checked codes and (n, D) float32 unit embeddings, as :meth:`search` ranks them:
        the first ``shortlist`` rows, plus the instance check's rows."""
        if self.instance_top and rows.shape[1] > self.shortlist:
            return self._rerank_with_instances(rows, embeddings, k)
        rows = rows[:, : self.shortlist]
        missing = rows < 0  # a filter left fewer rows than the shortlist
        cosine = self._cosines(rows, embeddings)
        if self.blend:  # off by default: it costs a second full scan of the compact codes
            compact = np.take_along_axis(self.compact.row_scores(codes), np.maximum(rows, 0), axis=1)
            compact[missing] = np.nan
            fill = np.nanmin(np.where(missing.all(axis=1, keepdims=True), 0.0, compact), axis=1, keepdims=True)
            cosine = blend_scores(cosine, np.where(missing, fill, compact), self.blend)
        cosine[missing] = -np.inf
        items = np.where(missing, -1, self.compact.code_items[np.maximum(rows, 0)])
        return _best_items_top_k(cosine, items, k)

    def _rerank_with_instances(self, rows: np.ndarray, embeddings: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`rerank_rows` with the instance check: the cosine of every row; the shortlist's
        rows and the ``instance_top`` best by cosine are ranked (only they: a few hundred, not thousands)."""
        missing = rows < 0
        cosine = self._cosines(rows, embeddings)
        cosine[missing] = -np.inf
        picks = shortlist_rows(cosine, self.instance_top)  # ties by the lower column: the better compact match
        head = np.broadcast_to(np.arange(self.shortlist), (len(rows), self.shortlist))
        cols = np.concatenate([head, picks], axis=1)
        ranked = np.take_along_axis(cosine, cols, axis=1)
        ranked[:, self.shortlist :][picks < self.shortlist] = -np.inf  # already in the shortlist
        kept = np.take_along_axis(rows, cols, axis=1)
        items = np.where(kept < 0, -1, self.compact.code_items[np.maximum(kept, 0)])
        return _best_items_top_k(ranked, items, k)

    def _cosines(self, rows: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
        """(n, S) float32 cosine of each query's (n, S) code rows (-1: any value) with its embedding,
        the rows read in ascending order (sequential mmap reads) and scored by one batched
        matrix-vector product (one BLAS gemv per query, as a single query gets)."""
        order = np.argsort(rows, axis=1)
        ordered = np.take_along_axis(np.maximum(rows, 0), order, axis=1)
        full = gather_rows(self.rerank_parts, ordered.reshape(-1)).reshape(*rows.shape, -1).astype(np.float32)
        cosine = np.empty(rows.shape, dtype=np.float32)
        np.put_along_axis(cosine, order, np.matmul(full, embeddings[:, :, None])[:, :, 0] * self.scale, axis=1)
        return cosine


def blend_scores(cosine: np.ndarray, compact: np.ndarray, blend: float) -> np.ndarray:
    """(n, S) re-rank scores: ``cosine`` plus ``blend`` × each row's ``compact`` scores standardised
    over that row (mean 0, standard deviation 1), float32; both (n, S), higher is better."""
    compact = np.asarray(compact, dtype=np.float64)
    z = (compact - compact.mean(axis=1, keepdims=True)) / np.maximum(compact.std(axis=1, keepdims=True), 1e-9)
    return (cosine + blend * z).astype(np.float32)


def check_finite(queries: np.ndarray, what: str) -> None:
    """Refuse (n, d) float queries holding NaN or infinity (an encoder that failed, or a
    caller's bug): they would score every product NaN and return arbitrary ones.

    Raises:
        NonFiniteQueryError: names the first such query and how many values are bad.
    """
    finite = np.isfinite(queries)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite.reshape(len(queries), -1).all(axis=1))
        raise NonFiniteQueryError(
            f"{what}: query {int(bad_rows[0])} of {len(queries)} has {int((~finite[bad_rows[0]]).sum())} NaN or "
            "infinite values; it cannot be searched (was the encoder's output valid?)"
        )


def _best_items_top_k(scores: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, S) scores of rows owned by (n, S) products → each product once at its best score,
    the ``min(k, S)`` best sorted descending, ties by lower product index; (-inf, -1) past the
    products present."""
    by_item = np.lexsort((-scores, items), axis=1)  # grouped by product, best score first
    items = np.take_along_axis(items, by_item, axis=1)
    best = np.take_along_axis(scores, by_item, axis=1)
    repeat = np.zeros(items.shape, dtype=bool)
    repeat[:, 1:] = items[:, 1:] == items[:, :-1]
    best[repeat] = -np.inf  # keep each product's first (best) row
    top = np.lexsort((items, -best), axis=1)[:, :k]
    scores_out = np.take_along_axis(best, top, axis=1)
    ids_out = np.take_along_axis(items, top, axis=1)
    ids_out[np.isneginf(scores_out)] = -1
    return scores_out, ids_out


def shortlist_rows(row_scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` best of (N,) scores, or of each row of (q, N) scores:
    (n,) or (q, n) int64, best first, ties by the lower index (as the scan's
    shortlist); all N indices when N <= n."""
    scores = np.atleast_2d(row_scores)
    ids = _top_k(scores, min(n, scores.shape[1]))[1]
    return ids if row_scores.ndim == 2 else ids[0]


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


def to_results(
    scores: np.ndarray, ids: np.ndarray, items: Sequence[Item], in_stock: np.ndarray | None = None
) -> list[SearchResult]:
    """Turn ``search`` arrays ((n, k) scores and ids) into n :class:`SearchResult` (padding dropped);
    ``in_stock``: (P,) bool stock of every product (None: all in stock)."""
    results = []
    for row_scores, row_ids in zip(scores, ids):
        matches = tuple(
            Match(
                item=int(i),
                id=(item := items[i]).id,
                title=item.title,
                category=item.category,
                color=item.color,
                price=item.price,
                score=float(s),
                in_stock=True if in_stock is None else bool(in_stock[i]),
            )
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
        """``reducer``: (n, D) embeddings → (n, d) codes for ``searcher``; ``rerank`` optional second stage."""
        self.reducer = reducer
        self.searcher = searcher
        self.rerank = rerank

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, options: SearcherOptions | None = None) -> CatalogIndex:
        """The bundle's reducer, its codes' :class:`Searcher` (with ``options``) and its re-rank if it ships one."""
        searcher = Searcher.create_from_bundle(bundle, options)
        rerank = None
        if bundle.has_rerank:
            codes, scale, shortlist = bundle.rerank()
            depth, top = bundle.rerank_instance
            rerank = RerankSearcher(
                searcher, codes, scale, shortlist, bundle.rerank_blend, instance_depth=depth, instance_top=top
            )
        return cls(bundle.reducer(), searcher, rerank)

    def cap(self) -> tuple[str, int]:
        """What bounds the products one query can return: (:data:`CAPPED_BY_SHORTLIST`,
        shortlist code rows) when the re-rank keeps fewer rows than the catalog has, else
        (:data:`CAPPED_BY_CATALOG`, products with codes)."""
        if self.rerank is not None and self.rerank.shortlist < self.searcher.n_rows:
            return CAPPED_BY_SHORTLIST, self.rerank.shortlist
        return CAPPED_BY_CATALOG, self.searcher.searchable_items

    def search(
        self, embeddings: np.ndarray, options: SearcherOptions | None = None, *, within: RowFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n, D) float32 unit encoder embeddings (a (D,) vector is one query) → ``(scores, ids)``
        as :meth:`Searcher.search`, through the reducer and the re-rank when there is one;
        ``within`` limits the rows during the scan (:meth:`Searcher.row_filter`).

        Raises:
            NonFiniteQueryError: an embedding holds NaN or infinity (checked before the
                reducer, which could turn it into valid-looking bits).
        """
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim == 1:
            embeddings = embeddings[None]
        check_finite(embeddings, "query embeddings")
        codes = self.reducer(embeddings)
        if self.rerank is not None:
            return self.rerank.search(codes, embeddings, options, within=within)
        return self.searcher.search(codes, options, within=within)

    def search_deep(
        self, embedding: np.ndarray, *, k: int, n: int, within: RowFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One query's ``k`` best products as :meth:`search` ranks them, and the compact codes'
        ``n`` best rows below them, from one reducer call and (with a re-rank) one scan.

        Args:
            embedding: (D,) or (1, D) float32 unit encoder embedding.
            k: products ranked, 1 to :data:`MAX_K`; n: code rows listed, >= 1 (may pass MAX_K).

        Returns:
            ``(scores, ids, rows)``: (k,) float32 and (k,) int64 as one row of :meth:`search`'s,
            and (<=n,) int64 code rows best first by the compact codes (-1 where ``within``
            allows fewer).

        Raises:
            ValueError: a bad k or n, shapes that do not fit.
            NonFiniteQueryError: the embedding holds NaN or infinity.
        """
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        options = SearcherOptions(k=k)
        embeddings = np.asarray(embedding, dtype=np.float32).reshape(1, -1)
        check_finite(embeddings, "query embeddings")
        codes = self.searcher.check_queries(self.reducer(embeddings))
        depth = max(n, self.rerank.depth) if self.rerank is not None else n
        rows = self.searcher.shortlist(codes, depth, within=within)
        if self.rerank is None:
            scores, ids = self.searcher.search(codes, options, within=within)
            return scores[0], ids[0], rows[0, :n]
        found, items = self.rerank.rerank_rows(codes, embeddings, rows[:, : self.rerank.depth], options.k)
        scores = np.full(options.k, -np.inf, dtype=np.float32)
        ids = np.full(options.k, -1, dtype=np.int64)
        scores[: found.shape[1]], ids[: found.shape[1]] = found[0], items[0]
        return scores, ids, rows[0, :n]

    def search_rows(
        self, rows: np.ndarray, options: SearcherOptions | None = None, *, within: RowFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search with catalog code rows ((n,) int row indices) as queries, e.g. "similar products"."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        codes = self.searcher.row_codes(rows)
        if self.rerank is not None:
            full = gather_rows(self.rerank.rerank_parts, rows).astype(np.float32)
            full /= np.maximum(np.linalg.norm(full, axis=1, keepdims=True), 1e-12)
            return self.rerank.search(codes, full, options, within=within, instances=False)
        return self.searcher.search(codes, options, within=within)

    def close(self) -> None:
        """Close the searcher; later searches raise ``ValueError``."""
        self.searcher.close()
