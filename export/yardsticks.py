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
