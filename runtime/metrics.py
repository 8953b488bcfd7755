"""Retrieval metrics over full rankings (numpy only, so QA can run them on a device).

Relevance is category-level (a gallery item is relevant when it shares the
query's label); identification is instance-level (the query's own product).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from .codes import pairwise_scores

Scorer = Callable[[int, int], np.ndarray]
"""``scorer(start, stop)`` → (stop - start, M) float32 scores of queries start..stop against the gallery, higher is better."""

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
        """Each metric by name, a float in [0, 1] rounded to 4 decimals."""
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def retrieval_metrics(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    query_targets: np.ndarray,
    metric: str = "cosine",
) -> RetrievalMetrics:
    """Rank the whole gallery for every query and score it.

    Args:
        queries: (Q, d) query codes: float32 L2-normalised for ``cosine``,
            float for ``l2``, packed uint8 bits for ``hamming``.
        gallery: (M, d) gallery codes of the same kind.
        query_labels: (Q,) int category of each query.
        gallery_labels: (M,) int category of each gallery item.
        query_targets: (Q,) int gallery row of each query's own product.
        metric: cosine, l2 or hamming (see ``codes.pairwise_scores``).
    """
    return scored_metrics(
        _pairwise_scorer(queries, gallery, metric), len(queries), query_labels, gallery_labels, query_targets
    )


def _pairwise_scorer(queries: np.ndarray, gallery: np.ndarray, metric: str) -> Scorer:
    if len(gallery) == 0:
        raise ValueError("need at least one gallery item, got 0")
    return lambda start, stop: pairwise_scores(queries[start:stop], gallery, metric)


def scored_metrics(
    scorer: Scorer, n_queries: int, query_labels: np.ndarray, gallery_labels: np.ndarray, query_targets: np.ndarray
) -> RetrievalMetrics:
    """:func:`retrieval_metrics` for any ranking: ``scorer`` gives each chunk's (n, M) scores."""
    if n_queries == 0 or len(gallery_labels) == 0:
        raise ValueError(f"need at least one query and one gallery item, got {n_queries} and {len(gallery_labels)}")
    sums = np.zeros(7, dtype=np.float64)
    for start in range(0, n_queries, _CHUNK):
        stop = min(n_queries, start + _CHUNK)
        sums += _chunk_sums(scorer(start, stop), query_labels[start:stop], gallery_labels, query_targets[start:stop])
    return RetrievalMetrics(*(sums / n_queries))


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
    queries: np.ndarray,
    gallery: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    metric: str = "cosine",
) -> tuple[np.ndarray, np.ndarray]:
    """Category-level 11-point interpolated precision-recall curve, averaged over queries.

    ``metric`` as in :func:`retrieval_metrics`.

    Returns:
        recall levels (11,) float64 in [0, 1] and mean interpolated precision (11,)
        (at each level, the best precision reached at that recall or beyond).
    """
    return scored_pr_curve(_pairwise_scorer(queries, gallery, metric), len(queries), query_labels, gallery_labels)


def scored_pr_curve(
    scorer: Scorer, n_queries: int, query_labels: np.ndarray, gallery_labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`precision_recall_curve` for any ranking given by ``scorer``."""
    total = np.zeros(len(RECALL_LEVELS))
    for start in range(0, n_queries, _CHUNK):
        sims = scorer(start, min(n_queries, start + _CHUNK))
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
    return RECALL_LEVELS.copy(), total / n_queries
