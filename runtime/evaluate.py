"""``vitrina eval``: retrieval quality of a bundle on its held-out sketch queries.

The queries are synthetic sketches of test-split products drawn with a seed the
training never saw; the gallery is the test-split products. The int8 path uses
the shipped catalog codes, reducer and re-rank with the int8 sketch encoder,
exactly as the device searches; the float path uses the float sketch encoder
and the float gallery embeddings (the full-embedding reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bundle import Bundle, EvalSet
from .codes import pairwise_scores
from .encoders import SketchEncoder, SketchEncoderOptions
from .metrics import RetrievalMetrics, Scorer, scored_metrics
from .search import blend_scores, shortlist_rows

_EVAL_BATCH = 64


@dataclass(frozen=True)
class EvalReport:
    """Attributes: queries, gallery: counts of eval queries and gallery products;
    metrics: one :class:`RetrievalMetrics` per precision (``"float"``, ``"int8"``)."""

    queries: int
    gallery: int
    metrics: dict[str, RetrievalMetrics]

    def to_json(self) -> dict[str, object]:
        """``{"queries": Q, "gallery": M, "<precision>": {metric: value}, ...}`` (values rounded to 4 decimals)."""
        return {"queries": self.queries, "gallery": self.gallery, **{p: m.to_json() for p, m in self.metrics.items()}}


@dataclass(frozen=True)
class EvalInputs:
    """Encoded eval set for one precision.

    Attributes:
        queries: (Q, d) query codes in the gallery's code space (float32, or
            packed uint8 for hamming).
        gallery: (M, d) gallery codes compared with ``metric`` (scores higher
            is better: cosine, minus squared L2, minus differing bits).
        query_labels, gallery_labels: category of each; targets: (Q,) each query's own gallery row.
        metric: cosine, l2 or hamming.
        rerank_queries, rerank_gallery: (Q, D) / (M, D) float32 full embeddings
            for a two-stage search, with ``shortlist``; None for one stage.
        blend, instance_depth, instance_top: the re-rank's blend and instance check
            (:class:`~vitrina.runtime.search.RerankSearcher`).
    """

    queries: np.ndarray
    gallery: np.ndarray
    query_labels: np.ndarray
    gallery_labels: np.ndarray
    targets: np.ndarray
    metric: str = "cosine"
    rerank_queries: np.ndarray | None = None
    rerank_gallery: np.ndarray | None = None
    shortlist: int = 0
    blend: float = 0.0
    instance_depth: int = 0
    instance_top: int = 0

    def scorer(self) -> Scorer:
        """Scores of query chunks against the whole gallery, as the device ranks them."""
        rerank_queries, rerank_gallery = self.rerank_queries, self.rerank_gallery
        if rerank_queries is None or rerank_gallery is None:
            return lambda a, b: pairwise_scores(self.queries[a:b], self.gallery, self.metric)
        return lambda a, b: two_stage_scores(
            pairwise_scores(self.queries[a:b], self.gallery, self.metric),
            rerank_queries[a:b],
            rerank_gallery,
            self.shortlist,
            self.blend,
            instance=(self.instance_depth, self.instance_top),
        )

    def metrics(self) -> RetrievalMetrics:
        """Score the full ranking of every query (:func:`~vitrina.runtime.metrics.scored_metrics`)."""
        return scored_metrics(self.scorer(), len(self.queries), self.query_labels, self.gallery_labels, self.targets)


def two_stage_scores(
    compact: np.ndarray,
    queries: np.ndarray,
    gallery: np.ndarray,
    shortlist: int,
    blend: float = 0.0,
    *,
    instance: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """(n, M) float64 scores ranking each row's ``shortlist`` best compact matches first,
    re-ranked by cosine of the full embeddings (plus ``blend`` × the standardised compact
    score, as :class:`~vitrina.runtime.search.RerankSearcher` does), then the rest by compact score.

    ``compact``: (n, M) first-stage scores (higher is better); ``queries``: (n, D)
    and ``gallery``: (M, D) float32 full embeddings; ``instance``: the re-rank's instance
    check ``(depth, top)``, (0, 0) for none: the ``top`` rows of best cosine among the
    ``depth`` best compact matches are re-ranked too. Only the order is meaningful: the
    values below the shortlist are shifted compact scores, not cosines.
    """
    # push every compact score below any re-ranked one (order kept), then lift the shortlist
    # to its cosine in [-1, 1] (plus the blend's standardised compact score)
    floor = 3.0 + blend * np.sqrt(max(shortlist, 1))  # |z| <= sqrt(S - 1) for S standardised values
    out = compact.astype(np.float64) - compact.max(axis=1, keepdims=True) - floor
    depth, top = instance
    for q in range(len(out)):
        rows = shortlist_rows(compact[q], max(shortlist, depth if top else 0))
        cosine = gallery[rows] @ queries[q]
        if top and len(rows) > shortlist:
            keep = np.arange(len(rows)) < shortlist
            keep[shortlist_rows(cosine, top)] = True
            rows, cosine = rows[keep], cosine[keep]
        out[q, rows] = blend_scores(cosine[None], compact[q, rows][None], blend)[0] if blend else cosine
    return out


def encode_eval_set(
    bundle: Bundle, precision: str, num_threads: int = 1, eval_set: EvalSet | None = None
) -> EvalInputs:
    """Encode the held-out sketches with the ``precision`` (int8/float) sketch encoder, paired with
    the gallery codes of the same precision (shipped int8 codes or float codes), ``num_threads``
    interpreter threads. Pass ``eval_set`` when it is already loaded (it is tens of MB)."""
    eval_set = eval_set if eval_set is not None else bundle.eval_set()
    labels = bundle.item_categories
    gallery_items = eval_set.gallery_items.astype(np.int64)
    row_of_gallery = {int(item): row for row, item in enumerate(gallery_items)}
    try:
        targets = np.array([row_of_gallery[int(i)] for i in eval_set.query_items], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"eval query depicts product {exc} which is not in the eval gallery") from None
    options = SketchEncoderOptions(num_threads=num_threads, batch_size=_EVAL_BATCH, precision=precision)
    with SketchEncoder.create_from_bundle(bundle, options) as encoder:
        queries = encoder.embed(eval_set.sketches).embeddings
    query_labels, gallery_labels = labels[eval_set.query_items], labels[gallery_items]
    if precision == "float":
        return EvalInputs(queries, eval_set.gallery_float, query_labels, gallery_labels, targets)
    rows = _first_rows_of(bundle, gallery_items)
    codes = bundle.reducer()(queries)
    gallery = bundle.code_values(rows)
    if not bundle.has_rerank:
        return EvalInputs(codes, gallery, query_labels, gallery_labels, targets, bundle.code_spec.metric)
    full, scale, shortlist = bundle.rerank()
    blend = bundle.rerank_blend
    depth, top = bundle.rerank_instance
    rerank_gallery = np.asarray(full[rows], dtype=np.float32) * scale
    return EvalInputs(
        codes,
        gallery,
        query_labels,
        gallery_labels,
        targets,
        bundle.code_spec.metric,
        queries,
        rerank_gallery,
        shortlist,
        blend,
        instance_depth=depth,
        instance_top=top,
    )


def evaluate_bundle(
    bundle: Bundle, precisions: tuple[str, ...] = ("float", "int8"), num_threads: int = 1
) -> EvalReport:
    """Encode the eval sketches with each precision's encoder (``num_threads`` interpreter
    threads) and score the rankings; metrics in [0, 1] per precision."""
    eval_set = bundle.eval_set()
    metrics = {}
    for precision in precisions:
        metrics[precision] = encode_eval_set(bundle, precision, num_threads, eval_set).metrics()
    return EvalReport(len(eval_set.sketches), len(eval_set.gallery_items), metrics)


def _first_rows_of(bundle: Bundle, items: np.ndarray) -> np.ndarray:
    """(len(items),) int64: the first catalog code row of each product in ``items``."""
    picked = bundle.first_code_rows[np.asarray(items, dtype=np.int64)]
    if (picked < 0).any():
        raise ValueError("an eval gallery product has no catalog code")
    return picked
