"""Black-ink retrieval per drawing style: how the encoder does on styles it trained on and on styles it never saw.

The bundle's per-style eval set (``eval/styles/``, manifest ``eval_styles``) holds
sketches of the same held-out test products drawn in every style of the export
side's style zoo, with a seed training never used. Each style is scored like
``vitrina eval`` scores the main eval set: int8 with the shipped codes,
reducer and re-rank; float with the float encoder and float gallery codes.
A style is ``trained`` (the model trained on it), ``held_out`` (kept out of
training by design) or ``untrained`` (not in this bundle's training mix).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np

from .bundle import Bundle, BundleFormatError, EvalSet
from .evaluate import encode_eval_set
from .metrics import RetrievalMetrics, Scorer, scored_metrics

#: Figures reported per style and precision.
STYLE_FIGURES = ("map", "p_at_10", "acc_at_10", "mrr")


class _StylesEntry(msgspec.Struct):
    names: list[str]
    trained: list[str]
    held_out: list[str]


@dataclass(frozen=True)
class StyleEvalReport:
    """Attributes: names (styles, in order), group of each (trained / held_out / untrained),
    queries per style, and metrics[precision][style]."""

    names: tuple[str, ...]
    groups: dict[str, str]
    queries: int
    metrics: dict[str, dict[str, RetrievalMetrics]]

    def group_map(self, precision: str, group: str) -> float | None:
        """Mean mAP of the styles in ``group`` at ``precision``, or None when the group is empty."""
        values = [self.metrics[precision][n].map for n in self.names if self.groups[n] == group]
        return float(np.mean(values)) if values else None

    def to_json(self) -> dict[str, object]:
        """``{"queries_per_style", "summary": {precision: {trained_map, held_out_map, untrained_map,
        held_out_gap}}, "per_style": {style: {"group", precision: {figure: value}}}}``."""
        summary: dict[str, dict[str, float | None]] = {}
        for p in self.metrics:
            trained, held = self.group_map(p, "trained"), self.group_map(p, "held_out")
            summary[p] = {
                "trained_map": _r(trained),
                "held_out_map": _r(held),
                "untrained_map": _r(self.group_map(p, "untrained")),
                "held_out_gap": _r(trained - held if trained is not None and held is not None else None),
            }
        per_style = {
            n: {
                "group": self.groups[n],
                **{p: {f: round(getattr(self.metrics[p][n], f), 4) for f in STYLE_FIGURES} for p in self.metrics},
            }
            for n in self.names
        }
        return {"queries_per_style": self.queries, "summary": summary, "per_style": per_style}


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def has_style_eval(bundle: Bundle) -> bool:
    """True when the bundle carries a per-style eval set."""
    return bundle.manifest.get("eval_styles") is not None


def evaluate_styles(
    bundle: Bundle, precisions: tuple[str, ...] = ("float", "int8"), num_threads: int = 1
) -> StyleEvalReport:
    """Score every style's sketches at each precision.

    Raises:
        BundleFormatError: the per-style eval set is missing or malformed.
    """
    try:
        entry = msgspec.convert(bundle.manifest.get("eval_styles"), _StylesEntry)
    except msgspec.ValidationError as exc:
        raise BundleFormatError(f"bundle {bundle.path}: manifest eval_styles: {exc}") from None
    sketches = bundle.array("eval/styles/sketches.npy")
    items = bundle.array("eval/styles/items.npy").astype(np.int64)
    style = bundle.array("eval/styles/style.npy").astype(np.int64)
    n_styles = len(entry.names)
    if not (len(sketches) == len(items) == len(style)) or len(style) % max(n_styles, 1):
        raise BundleFormatError(f"bundle {bundle.path}: eval/styles arrays disagree on their length")
    per = len(style) // n_styles
    if not np.array_equal(style, np.repeat(np.arange(n_styles), per)):
        raise BundleFormatError(f"bundle {bundle.path}: eval/styles/style.npy is not {n_styles} blocks of {per}")
    base = bundle.eval_set()
    eval_set = EvalSet(sketches, items.astype(np.int32), base.gallery_items, base.gallery_float)
    groups = {
        n: "trained" if n in entry.trained else "held_out" if n in entry.held_out else "untrained" for n in entry.names
    }
    metrics: dict[str, dict[str, RetrievalMetrics]] = {}
    for precision in precisions:
        inputs = encode_eval_set(bundle, precision, num_threads, eval_set)
        scorer = inputs.scorer()
        metrics[precision] = {}
        for s, name in enumerate(entry.names):
            lo, hi = s * per, (s + 1) * per

            def block(a: int, b: int, lo: int = lo, scorer: Scorer = scorer) -> np.ndarray:
                return scorer(lo + a, lo + b)

            metrics[precision][name] = scored_metrics(
                block, per, inputs.query_labels[lo:hi], inputs.gallery_labels, inputs.targets[lo:hi]
            )
    return StyleEvalReport(tuple(entry.names), groups, per, metrics)
