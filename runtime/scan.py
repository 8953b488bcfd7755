"""Exact k-nearest-neighbour scans over memory-mapped catalog codes, in numpy.

The kernels behind :class:`vitrina.runtime.search.Searcher` at catalog scale
(a million rows). Every scan is exact and returns, per query, the ``k``
smallest distances in ascending order, ties broken by the lower row index,
padded with ``inf`` / ``-1`` (faiss's shape: (n, k) distances and ids).

Metrics (:class:`CodeScan`):

* ``hamming``: packed uint8 codes (any width; viewed as uint64 words when the
  width is a multiple of 8 bytes). XOR + ``np.bitwise_count`` block by block
  into small integers, one pass per word into reused buffers; never an
  ``argpartition`` of the catalog (which cost 9 of 10 ms per million 64-bit
  codes): see the selection below.
* ``l2``: float16 / float32 codes; ``‖x‖² − 2 x·q + ‖q‖²`` with the row norms
  precomputed once, one BLAS matrix product per cache-sized block. float16
  blocks are widened with a bit trick (sign-extend, shift, mask, and a power of
  two folded into the query), 5× faster than numpy's float16 cast.
* ``ip``: minus the inner product (cosine for unit codes).

Float codes may also be int8 with a per-dimension scale (row value ``code * scale``):
half the bytes of float16, and numpy widens int8 to float32 in one cast pass (float16
needs the two-pass bit trick), so an 8-d int8 scan reads 8 MB per million rows and costs
about what faiss's float32 scan does. The scale is folded into the query; distances are
those of the dequantised rows, exactly as a float32 scan of them would give.

Selection (every metric) keeps a running k-th distance per query: after a small
first block is partitioned, a later block contributes only rows strictly
better than the current k-th (a tie with it loses: it has a higher row index),
so a block usually costs one comparison and one empty ``flatnonzero``.

Filters are applied during the scan, not after: a :class:`RowFilter` either
scans only its rows (gathered once and cached, for a selective filter) or
masks the excluded rows of each block before selection (for a broad one).

Memory: the codes stay memory-mapped; a scan allocates one block of
temporaries (``BLOCK_ROWS`` rows); float L2 keeps one float32 norm per row.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

#: Rows per Hamming block: 128k rows of a 64-bit code are 1 MB. One query over 1M 64-bit rows:
#: 1.10 / 0.92 / 0.83 / 0.81 ms with 32k / 64k / 128k / 256k-row blocks (per-block overhead);
#: 256-bit codes slow down past 128k (the per-word buffers leave the L2 cache).
BLOCK_ROWS = 1 << 17
#: Float blocks are sized by their widened float32 bytes instead (a 1 MB L2 cache): 32k rows of
#: an 8-d code, 4k of a 64-d one. Measured at 1M 8-d rows: 16k-row blocks cost ~15% more (numpy's
#: per-call overhead, ~8 calls a block), 64k-row blocks no less (the widened copy leaves L2).
FLOAT_BLOCK_BYTES = 1 << 20
#: A filter keeping at most this share of the rows is scanned from a gathered copy of its rows.
GATHER_BELOW = 0.5
METRICS = ("hamming", "l2", "ip")
_F16_MASK = np.int32(-1879056384)  # 0x8FFFE000: sign bit + exponent/mantissa of a widened half
_F16_SCALE = np.float32(2.0**112)  # 2^(127-15): rebias a half's exponent into a float's


@dataclass(frozen=True, eq=False)
class RowFilter:
    """The rows a filtered scan may return.

    Build with :meth:`from_mask`; a :class:`CodeScan` gathers the codes of a
    selective filter once (cached on the filter object), so keep the filter
    while it stays the same (the kiosk keeps one per selected chip set).

    Attributes:
        rows: (M,) int64 sorted row indices kept.
        mask: (N,) bool, True where a row is kept.
    """

    rows: np.ndarray
    mask: np.ndarray
    _gathered: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_mask(cls, mask: np.ndarray) -> RowFilter:
        """A filter keeping the rows where the (N,) bool ``mask`` is True."""
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 1:
            raise ValueError(f"a row filter mask must be (N,) bool, got shape {mask.shape}")
        return cls(np.flatnonzero(mask).astype(np.int64), mask)

    @property
    def count(self) -> int:
        """Rows kept."""
        return len(self.rows)

    @property
    def fraction(self) -> float:
        """Share of the rows kept, in [0, 1]."""
        return len(self.rows) / max(len(self.mask), 1)


class CodeScan:
    """Exact k-NN over the rows of one or more (N_i, w) code arrays, scanned in row order.

    Args:
        parts: code arrays with one dtype and width (e.g. the bundle's memory-mapped
            codes, then the rows added on the device); rows are numbered across
            them in order.
        metric: ``hamming`` (uint8), ``l2`` (float16/float32/int8) or ``ip`` (float16/float32/int8).
        block_rows: rows per block (cache-sized).
        scale: (w,) float32 per-dimension scale of int8 codes (a row's values are
            ``code * scale``); required for int8, refused otherwise.

    Raises:
        ValueError: an unknown metric, mixed widths or dtypes, or a dtype the metric does not take.
    """

    def __init__(
        self,
        parts: Sequence[np.ndarray],
        metric: str,
        *,
        block_rows: int = BLOCK_ROWS,
        scale: np.ndarray | None = None,
    ):
        if metric not in METRICS:
            raise ValueError(f"unknown scan metric {metric!r}: expected one of {METRICS}")
        parts = [p for p in parts]
        if not parts:
            raise ValueError("a scan needs at least one code array (it may have 0 rows)")
        dtype, width = parts[0].dtype, parts[0].shape[1] if parts[0].ndim == 2 else -1
        for p in parts:
            if p.ndim != 2 or p.shape[1] != width or p.dtype != dtype:
                raise ValueError(f"code parts must all be (N, {width}) {dtype}, got {p.dtype} {p.shape}")
        if metric == "hamming" and dtype != np.uint8:
            raise ValueError(f"hamming scans packed uint8 codes, got {dtype}")
        if metric != "hamming" and dtype not in (np.float16, np.float32, np.int8):
            raise ValueError(f"{metric} scans float16, float32 or int8 codes, got {dtype}")
        if (dtype == np.int8) != (scale is not None):
            raise ValueError(f"int8 codes need a per-dimension scale and other codes take none (got {dtype} codes)")
        if scale is not None:
            scale = np.asarray(scale, dtype=np.float32)
            if scale.shape != (width,) or not np.isfinite(scale).all() or (scale <= 0).any():
                raise ValueError(f"an int8 code scale must be ({width},) finite and positive, got shape {scale.shape}")
        self.scale = scale
        self.metric = metric
        self.parts = parts
        self.dtype = np.dtype(dtype)
        self.width = int(width)
        if metric != "hamming" and block_rows == BLOCK_ROWS:
            block_rows = max(1024, FLOAT_BLOCK_BYTES // (4 * max(int(width), 1)))
        self.block_rows = int(block_rows)
        self.offsets = np.cumsum([0] + [len(p) for p in parts])
        self.n_rows = int(self.offsets[-1])
        self.max_distance = self.width * 8 if metric == "hamming" else None
        self._words = metric == "hamming" and self.width % 8 == 0
        self._local = threading.local()  # per-thread scratch (float16 widening)
        self._executor: ThreadPoolExecutor | None = None
        self._norms = self._row_norms() if metric == "l2" else None

    # --- public ------------------------------------------------------------
    def search(
        self, queries: np.ndarray, k: int, *, rows: RowFilter | None = None, threads: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest rows of each query.

        Args:
            queries: (n, w) queries, uint8 for hamming, float (any) for l2 / ip.
            k: rows per query, >= 1.
            rows: scan only these rows (a filter), or None for all.
            threads: worker threads (the rows are split between them; numpy and
                BLAS release the GIL).

        Returns:
            distances: (n, k) float32 ascending (Hamming: bit counts; l2: squared
                distances; ip: minus the inner product), ``inf`` where padded.
            ids: (n, k) int64 row indices, ties by lower index, ``-1`` where padded.
        """
        queries = self._check_queries(queries)
        k = int(k)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if rows is not None and len(rows.mask) != self.n_rows:
            raise ValueError(f"the row filter covers {len(rows.mask)} rows, the scan has {self.n_rows}")
        n = len(queries)
        dist = np.full((n, k), np.inf, dtype=np.float32)
        ids = np.full((n, k), -1, dtype=np.int64)
        if n == 0 or self.n_rows == 0 or (rows is not None and rows.count == 0):
            return dist, ids
        sources: list[tuple[np.ndarray, int | np.ndarray, np.ndarray | None]]
        if rows is not None and rows.fraction <= GATHER_BELOW:
            sources = [(self._gather(rows), rows.rows, None)]
        else:
            mask = rows.mask if rows is not None else None
            sources = [(p, int(self.offsets[i]), mask) for i, p in enumerate(self.parts) if len(p)]
        spans = _split(sources, max(1, int(threads)), self.block_rows)
        if len(spans) == 1:
            results = [self._scan(queries, k, spans[0])]
        else:
            results = list(self._pool(len(spans)).map(lambda s: self._scan(queries, k, s), spans))
        d, i = _merge(results, k)
        dist[:, : d.shape[1]], ids[:, : i.shape[1]] = d, i
        ids[~np.isfinite(dist)] = -1
        return dist, ids

    def bytes_scanned(self, rows: RowFilter | None = None) -> int:
        """Code bytes one query reads (all rows, or a gathered filter's rows)."""
        n = self.n_rows if rows is None or rows.fraction > GATHER_BELOW else rows.count
        return int(n * self.width * self.dtype.itemsize)

    # --- internals -------------------------------------------------------------
    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        q = np.asarray(queries)
        if self.metric == "hamming":
            if q.dtype != np.uint8:
                raise ValueError(f"hamming queries must be packed uint8 like the codes, got {q.dtype}")
        else:
            q = q.astype(np.float32, copy=False)
        if q.ndim == 1:
            q = q[None]
        if q.ndim != 2 or q.shape[1] != self.width:
            raise ValueError(f"queries must be (n, {self.width}), got shape {q.shape}")
        return np.ascontiguousarray(q)

    def _gather(self, rows: RowFilter) -> np.ndarray:
        """The filter's rows' codes, gathered once per scan object and cached on the filter."""
        key = id(self)
        got = rows._gathered.get(key)
        if got is None:
            got = np.empty((rows.count, self.width), self.dtype)
            for i, p in enumerate(self.parts):
                lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
                a, b = np.searchsorted(rows.rows, [lo, hi])
                got[a:b] = p[rows.rows[a:b] - lo]
            rows._gathered.clear()
            rows._gathered[key] = got
        return got

    def _pool(self, workers: int) -> ThreadPoolExecutor:
        """The scan's worker threads, kept between searches (starting threads per query costs more than a small scan)."""
        pool = self._executor
        if pool is None or pool._max_workers != workers:
            if pool is not None:
                pool.shutdown(wait=False)
            pool = self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vitrina-scan")
        return pool

    def close(self) -> None:
        """Stop the worker threads (a later threaded search starts them again)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    def _buffer(self, size: int) -> np.ndarray | None:
        """A per-thread 4-byte buffer for widening float16 / int8 blocks (None for float32 codes)."""
        if self.dtype == np.float32:
            return None
        local = self._local
        buf = getattr(local, "buf", None)
        if buf is None or buf.size < size:
            buf = local.buf = np.empty(max(size, self.block_rows * self.width), np.int32)
        return buf

    def _hamming_scratch(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Per-thread (_XOR_ROWS,) buffers for one word's XOR (``dtype``) and its bit counts (uint8)."""
        local = self._local
        got = getattr(local, "hamming", None)
        if got is None or got[0].dtype != dtype:
            got = local.hamming = (np.empty(_XOR_ROWS, dtype), np.empty(_XOR_ROWS, np.uint8))
        return got

    def _dots(self, n: int, rows: int, dtype: type = np.float32) -> np.ndarray:
        """A per-thread (n, rows) buffer of ``dtype`` for one block's distances (reused: the
        scan copies what it keeps out of it before the next block)."""
        local = self._local
        buf = getattr(local, "dots", None)
        if buf is None or buf.size < n * rows or buf.dtype != dtype:
            buf = local.dots = np.empty(max(n * rows, self.block_rows), dtype)
        return buf[: n * rows].reshape(n, rows)

    def _row_norms(self) -> np.ndarray:
        """(N,) float32 squared norms of every row, computed block by block."""
        norms = np.empty(self.n_rows, dtype=np.float32)
        for i, p in enumerate(self.parts):
            lo = int(self.offsets[i])
            for s in range(0, len(p), self.block_rows):
                x = _widen(p[s : s + self.block_rows])
                if self.dtype == np.float16:
                    x = x * _F16_SCALE
                elif self.scale is not None:
                    x = x * self.scale
                norms[lo + s : lo + s + len(x)] = np.einsum("ij,ij->i", x, x)
        return norms

    def _scan(self, queries: np.ndarray, k: int, span: list[tuple]) -> tuple[np.ndarray, np.ndarray]:
        """One span's k best rows per query: block distances, then a running k-th distance per query.

        The first block is small (``_FIRST_BLOCK`` rows) so the k-th distance is known cheaply;
        after it a block contributes only rows strictly better than the current k-th (a tie
        with it loses: its row index is higher), usually none, found with one comparison.
        """
        n = len(queries)
        hamming = self.metric == "hamming"
        if hamming:
            qs = _as_words(queries) if self._words else queries
            q_sq = None
        else:
            # the float16 bit trick leaves rows 2^-112 too small: fold 2^112 into the query;
            # l2 also folds the -2 of ‖x‖² − 2x·q into it (exact: a power of two)
            # (int8 codes: their per-dimension scale)
            scale = _F16_SCALE if self.dtype == np.float16 else (self.scale if self.scale is not None else 1.0)
            qs = queries * (np.asarray(scale, np.float32) * np.float32(-2.0 if self.metric == "l2" else 1.0))
            q_sq = np.einsum("ij,ij->i", queries, queries) if self.metric == "l2" else None
        best_d = [np.empty(0, np.float32) for _ in range(n)]
        best_i = [np.empty(0, np.int64) for _ in range(n)]
        # the running k-th distance, typed like the block (a float64 bound would widen every block)
        kth: list = [None] * n
        # rows better than the k-th wait here and are merged into the k best in batches: a
        # merge sorts k + pending rows, so merging each block's few rows cost k log k a block
        pend_d: list[list[np.ndarray]] = [[] for _ in range(n)]
        pend_i: list[list[np.ndarray]] = [[] for _ in range(n)]
        pend_n = [0] * n
        merge_at = max(4 * k, 1024)
        for codes, lo, hi, ids_base, mask in span:
            for s, e in _blocks(lo, hi, self.block_rows):
                if isinstance(ids_base, int):  # rows ids_base + [s, e)
                    first, ids = ids_base + s, None
                    norms = self._norms[first : first + e - s] if self._norms is not None else None
                else:  # a gathered filter: the rows' ids are listed
                    first, ids = 0, ids_base[s:e]
                    norms = self._norms[ids] if self._norms is not None else None
                block_d = self._block_distances(codes[s:e], qs, q_sq, norms)
                if mask is not None:
                    excluded = ~mask[first : first + e - s]
                    block_d[:, excluded] = np.iinfo(block_d.dtype).max if hamming else np.inf
                for j in range(n):
                    row = block_d[j]
                    if kth[j] is None:
                        cand = (
                            np.flatnonzero(row != np.iinfo(row.dtype).max)
                            if hamming
                            else np.flatnonzero(np.isfinite(row))
                        )
                        if len(cand) > k:
                            # only this block's k best can enter (ties kept: the row order decides)
                            cand = cand[row[cand] <= np.partition(row[cand], k - 1)[k - 1]]
                    else:
                        cand = np.flatnonzero(row < kth[j])
                    if len(cand) == 0:
                        continue
                    pend_d[j].append(row[cand].astype(np.float32))
                    pend_i[j].append(first + cand if ids is None else ids[cand])
                    pend_n[j] += len(cand)
                    if kth[j] is None or pend_n[j] >= merge_at:
                        best_d[j], best_i[j] = _keep_best([best_d[j], *pend_d[j]], [best_i[j], *pend_i[j]], k)
                        pend_d[j], pend_i[j], pend_n[j] = [], [], 0
                        if len(best_d[j]) == k:
                            kth[j] = int(best_d[j][-1]) if hamming else np.float32(best_d[j][-1])
        for j in range(n):
            if pend_n[j]:
                best_d[j], best_i[j] = _keep_best([best_d[j], *pend_d[j]], [best_i[j], *pend_i[j]], k)
        dist_out = np.full((n, k), np.inf, np.float32)
        ids_out = np.full((n, k), -1, np.int64)
        for j in range(n):
            m = len(best_d[j])
            dist_out[j, :m] = np.maximum(best_d[j] + q_sq[j], 0.0) if q_sq is not None else best_d[j]
            ids_out[j, :m] = best_i[j]
        return dist_out, ids_out

    def _block_distances(
        self, block: np.ndarray, qs: np.ndarray, q_sq: np.ndarray | None, norms: np.ndarray | None
    ) -> np.ndarray:
        """(n, B) distances of a block of codes to the (prepared) queries: uint8 / uint16 bit
        counts for hamming, float32 otherwise."""
        if self.metric == "hamming":
            words = _as_words(block) if self._words else np.asarray(block)
            dtype = np.uint16 if self.max_distance >= 255 else np.uint8  # type: ignore[operator]
            out = self._dots(len(qs), len(block), dtype)
            scratch = self._hamming_scratch(words.dtype)
            for j, q in enumerate(qs):
                _hamming_block(words, q, out[j], scratch)
            return out
        x = _widen(block, self._buffer(len(block) * block.shape[1]))
        # (n, B): one BLAS gemv / gemm into a per-thread buffer (a fresh 128 KB+ array per block
        # would be a fresh mmap, its pages faulted in at every block)
        dots = self._dots(len(qs), len(block))
        if len(qs) == 1:
            np.dot(x, qs[0], out=dots[0])
        else:
            np.dot(qs, x.T, out=dots)
        if self.metric == "ip":
            return np.negative(dots, out=dots)
        if norms is None:
            raise RuntimeError("an l2 scan block needs the row norms")
        # the query holds -2 already: ‖x‖² − 2x·q; the query's own ‖q‖² is the same for every
        # row, so it is added to the k kept distances at the end, not to every block
        dots += norms[None, :]
        return dots


#: Rows of a span's first block: enough to know a k-th distance, small enough to partition cheaply.
_FIRST_BLOCK = 4096


def _keep_best(dists: list[np.ndarray], ids: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest of the concatenated float32 distances with their int64 ids, ascending,
    ties by lower id: a partition keeps every row at most the k-th (ties included), a sort of
    those few decides."""
    dd, pos = np.concatenate(dists), np.concatenate(ids)
    if len(dd) > k:
        keep = np.flatnonzero(dd <= np.partition(dd, k - 1)[k - 1])
        dd, pos = dd[keep], pos[keep]
    order = np.lexsort((pos, dd))[:k]
    return dd[order], pos[order]


def _blocks(lo: int, hi: int, size: int) -> list[tuple[int, int]]:
    """[lo, hi) as a small first block, then blocks of ``size`` rows."""
    out = []
    s = lo
    first = min(_FIRST_BLOCK, size)
    while s < hi:
        e = min(s + (first if s == lo else size), hi)
        out.append((s, e))
        s = e
    return out


def _split(sources: list[tuple], parts: int, block: int) -> list[list[tuple]]:
    """Split the rows of ``sources`` ((codes, ids_base, mask)) into ``parts`` contiguous spans
    of (codes, lo, hi, ids_base, mask), block-aligned; ids_base is a row offset or an id array."""
    total = sum(len(c) for c, _, _ in sources)
    per = max(block, -(-total // parts))
    per = -(-per // block) * block if parts > 1 else per
    spans: list[list[tuple]] = []
    current: list[tuple] = []
    room = per
    for codes, ids_base, mask in sources:
        lo = 0
        while lo < len(codes):
            take = min(room, len(codes) - lo)
            current.append((codes, lo, lo + take, ids_base, mask))
            lo += take
            room -= take
            if room == 0:
                spans.append(current)
                current, room = [], per
    if current:
        spans.append(current)
    return spans or [[]]


def _merge(results: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query k best of several spans' (n, k) results; ties by lower id."""
    if len(results) == 1:
        return results[0]
    d = np.concatenate([r[0] for r in results], axis=1)
    i = np.concatenate([r[1] for r in results], axis=1)
    i_key = np.where(i < 0, np.iinfo(np.int64).max, i)
    order = np.lexsort((i_key, d), axis=1)[:, :k]
    return np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)


def _as_words(packed: np.ndarray) -> np.ndarray:
    """(n, B) packed uint8 with B % 8 == 0 → (n, B/8) uint64 (a view when contiguous)."""
    return np.ascontiguousarray(packed).view(np.uint64)


def _hamming_block(
    words: np.ndarray, query: np.ndarray, out: np.ndarray, scratch: tuple[np.ndarray, np.ndarray]
) -> None:
    """Hamming distances of (B, W) words to one (W,) query into ``out`` (B,) uint8/uint16.

    One pass per word, :data:`_XOR_ROWS` rows at a time: XOR the word's column into a
    scratch buffer, count its bits into another, add them into ``out``. ``scratch``:
    ((_XOR_ROWS,) of the words' dtype, (_XOR_ROWS,) uint8), reused between blocks, so
    every pass stays in the L2 cache and the scan holds 288 KB of temporaries (a (B, W)
    XOR then a SWAR sum of the byte counts allocated W times more and was slower at 128
    and 256 bits).
    """
    for s in range(0, len(words), _XOR_ROWS):
        chunk, dist = words[s : s + _XOR_ROWS], out[s : s + _XOR_ROWS]
        n = len(chunk)
        xor, counts = scratch[0][:n], scratch[1][:n]
        np.bitwise_count(np.bitwise_xor(chunk[:, 0], query[0], out=xor), out=dist)
        for w in range(1, chunk.shape[1]):
            np.bitwise_xor(chunk[:, w], query[w], out=xor)
            np.bitwise_count(xor, out=counts)
            np.add(dist, counts, out=dist)


#: Rows XORed per pass inside a Hamming block: 256 KB of 64-bit words.
_XOR_ROWS = 1 << 15


def _widen(block: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """A float16 / float32 / int8 block as float32; float16 via the bit trick (value × 2^-112:
    the caller folds 2^112 into the query), int8 by one cast (the caller folds the scale in),
    float32 as is. ``out``: an int32 buffer of at least the block's size to write into
    (float16: two passes; no allocation)."""
    if block.dtype == np.float32:
        return np.asarray(block)
    if block.dtype == np.int8:
        floats = np.empty(block.shape, np.float32) if out is None else out.reshape(-1)[: block.size].view(np.float32)
        floats = floats.reshape(block.shape)
        np.copyto(floats, block, casting="unsafe")
        return floats
    halves = np.asarray(block).view(np.int16)
    bits = np.empty(halves.shape, np.int32) if out is None else out.reshape(-1)[: halves.size].reshape(halves.shape)
    np.left_shift(halves, 13, dtype=np.int32, out=bits)  # sign-extended while shifted
    np.bitwise_and(bits, _F16_MASK, out=bits)
    return bits.view(np.float32)
