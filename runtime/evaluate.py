"""``vitrina eval``: retrieval quality of a bundle on its held-out sketch queries.

The queries are synthetic sketches of test-split products drawn with a seed the
training never saw; the gallery is the test-split products. The int8 path uses
the shipped catalog codes and the int8 sketch encoder, exactly as the device
searches; the float path uses the float sketch encoder and float gallery codes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bundle import Bundle, EvalSet
from .encoders import SketchEncoder
from .metrics import RetrievalMetrics, retrieval_metrics

_EVAL_BATCH = 64


@dataclass(frozen=True)
class EvalReport:
    """Attributes: queries, gallery: counts; metrics: one entry per precision."""

    queries: int
    gallery: int
    metrics: dict[str, RetrievalMetrics]

    def to_json(self) -> dict[str, object]:
        return {"queries": self.queries, "gallery": self.gallery, **{p: m.to_json() for p, m in self.metrics.items()}}


@dataclass(frozen=True)
class EvalInputs:
    """Encoded eval set for one precision: queries (Q, D), gallery (M, D) float32,
    category labels of both, and each query's own gallery row (Q,)."""

    queries: np.ndarray
    gallery: np.ndarray
    query_labels: np.ndarray
    gallery_labels: np.ndarray
    targets: np.ndarray


def encode_eval_set(bundle: Bundle, precision: str, num_threads: int = 1, eval_set: EvalSet | None = None) -> EvalInputs:
    """Encode the held-out sketches with the ``precision`` sketch encoder, paired with
    the gallery codes of the same precision (shipped int8 codes or float codes).
    Pass ``eval_set`` when it is already loaded (it is tens of MB)."""
    eval_set = eval_set if eval_set is not None else bundle.eval_set()
    labels = bundle.item_categories
    gallery_items = eval_set.gallery_items.astype(np.int64)
    row_of_gallery = {int(item): row for row, item in enumerate(gallery_items)}
    try:
        targets = np.array([row_of_gallery[int(i)] for i in eval_set.query_items], dtype=np.int64)
    except KeyError as exc:
        raise ValueError(f"eval query depicts product {exc} which is not in the eval gallery") from None
    with SketchEncoder.create_from_bundle(bundle, precision, num_threads, batch_size=_EVAL_BATCH) as encoder:
        queries = encoder.embed(eval_set.sketches)
    gallery = eval_set.gallery_float if precision == "float" else gallery_codes(bundle, gallery_items)
    return EvalInputs(queries, gallery, labels[eval_set.query_items], labels[gallery_items], targets)


def evaluate_bundle(bundle: Bundle, precisions: tuple[str, ...] = ("float", "int8"), num_threads: int = 1) -> EvalReport:
    """Encode the eval sketches with each precision's encoder and score the rankings."""
    eval_set = bundle.eval_set()
    metrics = {}
    for precision in precisions:
        e = encode_eval_set(bundle, precision, num_threads, eval_set)
        metrics[precision] = retrieval_metrics(e.queries, e.gallery, e.query_labels, e.gallery_labels, e.targets)
    return EvalReport(len(eval_set.sketches), len(eval_set.gallery_items), metrics)


def gallery_codes(bundle: Bundle, items: np.ndarray) -> np.ndarray:
    """(len(items), D) float32: the first catalog code of each product in ``items``."""
    picked = bundle.first_code_rows[np.asarray(items, dtype=np.int64)]
    if (picked < 0).any():
        raise ValueError("an eval gallery product has no catalog code")
    return np.asarray(bundle.codes[picked], dtype=np.float32)
