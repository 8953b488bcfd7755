"""Search yardsticks for the QA benchmark (``vitrina bench run``): faiss's exact indexes.

faiss is a bench/dev dependency (``vitrina[dev]``) that a device never imports, so
the yardstick lives outside ``vitrina.runtime`` and reaches the benchmark through
the entry-point group ``vitrina.bench.yardsticks`` (see ``pyproject.toml``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from vitrina.runtime.bench.benchmark import BenchOptions
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.search import Searcher, SearchOptions


def faiss_search(bundle: Bundle, options: BenchOptions) -> dict[str, Any] | None:
    """Search speed and agreement against faiss's exact index for the code type
    (IndexFlatIP, IndexFlatL2 or IndexBinaryFlat; bench/dev dependency only)."""
    try:
        import faiss  # bench/dev dependency only (vitrina[dev])
    except ImportError:
        return None
    metric = bundle.code_spec.metric
    index: Any
    queries: np.ndarray
    rng = np.random.default_rng(1)
    picks = rng.choice(len(bundle.codes), size=min(100, len(bundle.codes)), replace=False)
    if metric == "hamming":
        codes = np.ascontiguousarray(bundle.codes)
        queries = codes[picks] ^ (rng.random(codes[picks].shape) < 0.02).astype(np.uint8)  # a few flipped bits
        index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
    else:
        codes = np.ascontiguousarray(bundle.codes, dtype=np.float32)
        queries = codes[picks] + rng.normal(
            scale=0.05 * float(np.std(codes)), size=(len(picks), codes.shape[1])
        ).astype(np.float32)
        if metric == "cosine":
            queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
        index = faiss.IndexFlatIP(codes.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(codes.shape[1])
    index.add(codes)
    searcher = Searcher(codes, np.arange(len(codes)), len(codes), metric)
    k = options.k
    ours, theirs, agree = [], [], []
    faiss.omp_set_num_threads(options.threads[0])
    for q in queries:
        t = time.perf_counter_ns()
        scores, ids = searcher.search(q[None], SearchOptions(k=k))
        ours.append((time.perf_counter_ns() - t) / 1e6)
        t = time.perf_counter_ns()
        f_scores, f_ids = index.search(q[None], k)
        theirs.append((time.perf_counter_ns() - t) / 1e6)
        if metric != "cosine":
            f_scores = -np.asarray(f_scores, dtype=np.float32)  # faiss gives distances; ours are negated
        # allow for ties: the scores must match rank by rank (ids may differ among equals)
        agree.append(bool(np.allclose(scores[0], f_scores[0], rtol=1e-4, atol=1e-4)))
    ours_p50, theirs_p50 = float(np.median(ours)), float(np.median(theirs))
    return {
        "index": type(index).__name__,
        "rows": int(len(codes)),
        "ours_p50_ms": round(ours_p50, 4),
        "faiss_p50_ms": round(theirs_p50, 4),
        "ratio_ours_to_faiss": round(ours_p50 / theirs_p50, 3) if theirs_p50 > 0 else None,
        "score_agreement": round(float(np.mean(agree)), 4),
    }


class FaissReference:
    """faiss's exact indexes as the reference of ``vitrina bench search`` (bench/dev only).

    ``index(metric, codes)`` builds IndexBinaryFlat (hamming, packed uint8),
    IndexFlatL2 (l2) or IndexFlatIP (ip) over float32 copies of float codes;
    ``search(index, queries, k, mask)`` returns faiss's (distances, ids), a
    (N,) bool ``mask`` applied during faiss's scan through an IDSelectorBitmap.
    """

    name = "faiss"

    def __init__(self) -> None:
        import faiss  # bench/dev dependency only (vitrina[dev])

        self._faiss = faiss
        self.version = faiss.__version__

    def set_threads(self, threads: int) -> None:
        """OpenMP threads faiss may use."""
        self._faiss.omp_set_num_threads(int(threads))

    def index(self, metric: str, codes: np.ndarray) -> Any:
        """An exact faiss index holding ``codes`` for ``metric`` (hamming, l2 or ip)."""
        faiss = self._faiss
        if metric == "hamming":
            index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
            index.add(np.ascontiguousarray(codes, dtype=np.uint8))
            return index
        index = faiss.IndexFlatL2(codes.shape[1]) if metric == "l2" else faiss.IndexFlatIP(codes.shape[1])
        for start in range(0, len(codes), 1 << 18):  # float32 copy, added in chunks
            index.add(np.ascontiguousarray(codes[start : start + (1 << 18)], dtype=np.float32))
        return index

    def search(
        self, index: Any, queries: np.ndarray, k: int, mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """faiss's (n, k) distances and ids; ``mask`` (N,) bool keeps rows during the scan."""
        faiss = self._faiss
        params = None
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
            params = faiss.SearchParameters(sel=selector)
            params._keep = (bitmap, selector)  # the selector reads the bitmap during the search
        q = queries if queries.dtype == np.uint8 else np.ascontiguousarray(queries, dtype=np.float32)
        return index.search(q, k, params=params)


def faiss_reference() -> FaissReference | None:
    """The faiss reference for ``vitrina bench search``, or None when faiss is not installed."""
    try:
        return FaissReference()
    except ImportError:
        return None
