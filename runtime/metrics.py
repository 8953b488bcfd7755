"""Retrieval metrics over full rankings (numpy only, so QA can run them on a device).

Relevance is category-level (a gallery item is relevant when it shares the
query's label); identification is instance-level (the query's own product).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_CHUNK = 256


@dataclass(frozen=True)
class RetrievalMetrics:
    """Averages over queries, each in [0, 1].

    Attributes:
        map: category mean average precision over the full ranking.
        mrr: mean reciprocal rank of the first same-category item.
        p_at_1, p_at_5, p_at_10: share of same-category items in the top 1/5/10
            (of the whole gallery when it is smaller).
        acc_at_1, acc_at_10: share of queries whose own product is ranked in
            the top 1 / top 10 (ties counted against the query).
    """

    map: float
    mrr: float
    p_at_1: float
    p_at_5: float
    p_at_10: float
    acc_at_1: float
    acc_at_10: float

    def to_json(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def retrieval_metrics(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    query_targets: np.ndarray,
) -> RetrievalMetrics:
    """Rank the whole gallery for every query by cosine similarity and score it.

    Args:
        queries: (Q, D) float32 L2-normalised query codes.
        gallery: (M, D) float32 L2-normalised gallery codes.
        query_labels: (Q,) int category of each query.
        gallery_labels: (M,) int category of each gallery item.
        query_targets: (Q,) int gallery row of each query's own product.
    """
    q, m = len(queries), len(gallery)
    if q == 0 or m == 0:
        raise ValueError(f"need at least one query and one gallery item, got {q} and {m}")
    sums = np.zeros(7, dtype=np.float64)
    gallery = np.asarray(gallery, dtype=np.float32)
    for start in range(0, q, _CHUNK):
        stop = min(q, start + _CHUNK)
        sims = np.asarray(queries[start:stop], dtype=np.float32) @ gallery.T
        sums += _chunk_sums(sims, query_labels[start:stop], gallery_labels, query_targets[start:stop])
    return RetrievalMetrics(*(sums / q))


def _chunk_sums(sims: np.ndarray, labels: np.ndarray, gallery_labels: np.ndarray, targets: np.ndarray) -> np.ndarray:
    n, m = sims.shape
    order = np.argsort(-sims, axis=1, kind="stable")
    relevant = gallery_labels[order] == labels[:, None]
    n_rel = relevant.sum(axis=1)
    hits = np.cumsum(relevant, axis=1)
    ranks = np.arange(1, m + 1)
    ap = np.where(n_rel > 0, (relevant * hits / ranks).sum(axis=1) / np.maximum(n_rel, 1), 0.0)
    first = np.where(relevant.any(axis=1), relevant.argmax(axis=1) + 1, np.inf)
    own = sims[np.arange(n), targets]
    own_rank = (sims >= own[:, None]).sum(axis=1)  # ties rank the own product last
    return np.array(
        [
            ap.sum(),
            (1.0 / first).sum(),
            relevant[:, :1].mean(axis=1).sum(),
            relevant[:, :5].mean(axis=1).sum(),
            relevant[:, :10].mean(axis=1).sum(),
            (own_rank <= 1).sum(),
            (own_rank <= 10).sum(),
        ]
    )


RECALL_LEVELS = np.linspace(0.0, 1.0, 11)


def precision_recall_curve(
    queries: np.ndarray, gallery: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Category-level 11-point interpolated precision-recall curve, averaged over queries.

    Returns:
        recall levels (11,) float64 in [0, 1] and mean interpolated precision (11,)
        (at each level, the best precision reached at that recall or beyond).
    """
    total = np.zeros(len(RECALL_LEVELS))
    gallery = np.asarray(gallery, dtype=np.float32)
    for start in range(0, len(queries), _CHUNK):
        sims = np.asarray(queries[start : start + _CHUNK], dtype=np.float32) @ gallery.T
        order = np.argsort(-sims, axis=1, kind="stable")
        relevant = gallery_labels[order] == query_labels[start : start + _CHUNK, None]
        hits = np.cumsum(relevant, axis=1)
        precision = hits / np.arange(1, relevant.shape[1] + 1)
        recall = hits / np.maximum(relevant.sum(axis=1, keepdims=True), 1)
        # interpolated precision: best precision at any rank with recall >= level
        best_after = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
        for j, level in enumerate(RECALL_LEVELS):
            first = np.argmax(recall >= level - 1e-12, axis=1)
            total[j] += best_after[np.arange(len(first)), first].sum()
    return RECALL_LEVELS.copy(), total / len(queries)
