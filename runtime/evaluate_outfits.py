"""``vitrina eval --task outfit``: sketch search on products whose catalog photo is an outfit photo.

A retailer's outfit photo shows the sold product among others. The build picks
the sold product's crop (main-product identification, ``export/identify_products.py``)
and encodes only that crop. This eval measures what it is worth: every outfit
photo's product is searched by a held-out sketch of the product alone, in the
bundle's held-out gallery (every test product), with the outfit products indexed
three ways:

* ``whole``: the whole photo (what indexing without identification gives);
* ``identified``: the crop the build picked (what the bundle ships);
* ``truth``: the ground-truth crop (the best identification could do).

Metrics (:class:`~vitrina.runtime.metrics.RetrievalMetrics`): category mAP and
P@10, and own-product acc@10 (the drawn product in the top ten). ``float``: the
float encoders and embeddings; ``int8``: the int8 sketch encoder against the int8
photo embeddings (the bundle's re-rank codes), cosine over the whole gallery,
without the compact first stage (which is fitted on the shipped codes only).

Next to it, identification itself on the catalog's own outfit photos: the share
whose picked box overlaps the sold product's true box at IoU >= 0.5, by products
in the photo.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bundle import Bundle
from .detector import iou_matrix
from .encoders import SketchEncoder, SketchEncoderOptions
from .metrics import RetrievalMetrics, retrieval_metrics

PREFIX = "eval/outfits/"
INDEXINGS = ("whole", "identified", "truth")
#: A picked box identifies the sold product when it overlaps its true box at least this much.
MATCH_IOU = 0.5


@dataclass(frozen=True)
class OutfitReport:
    """Attributes:
    metrics[precision][indexing]: retrieval metrics of the outfit products' sketches;
    identified[group]: share of outfit photos whose picked box is right (group "2".."5", "all");
    photos[group]: outfit photos per group; gallery: products in the gallery."""

    metrics: dict[str, dict[str, RetrievalMetrics]]
    identified: dict[str, float]
    photos: dict[str, int]
    gallery: int

    def to_json(self) -> dict[str, object]:
        return {
            "metrics": {p: {i: m.to_json() for i, m in by.items()} for p, by in self.metrics.items()},
            "identified": {g: round(v, 4) for g, v in self.identified.items()},
            "photos": self.photos,
            "gallery": self.gallery,
        }


def has_outfit_eval(bundle: Bundle) -> bool:
    """Whether the bundle carries the outfit eval set (built from a catalog with outfit ground truth)."""
    return bool(bundle.manifest.get("eval_outfits"))


def _gallery(bundle: Bundle, precision: str, gallery_items: np.ndarray, gallery_float: np.ndarray) -> np.ndarray:
    """(M, D) float32 photo embeddings of the gallery products at ``precision``."""
    if precision == "float":
        return gallery_float
    rows = bundle.first_code_rows[gallery_items]
    if bundle.has_rerank:
        full, scale, _ = bundle.rerank()
        return np.asarray(full[rows], np.float32) * scale
    if bundle.code_spec.family == "float":
        return np.asarray(bundle.code_values(rows), np.float32)
    raise ValueError(f"bundle {bundle.path} keeps no int8 photo embeddings (codes {bundle.code_spec}, no re-rank)")


def evaluate_outfits(bundle: Bundle, *, num_threads: int = 2) -> OutfitReport:
    """The tables of the module docstring.

    Raises:
        ValueError: the bundle has no outfit eval set (its catalog had no outfit ground truth).
    """
    if not has_outfit_eval(bundle):
        raise ValueError(
            f"bundle {bundle.path} has no outfit eval set: it was built from a catalog without "
            "outfit photos and their ground truth (vitrina demo-catalog --outfit-share)"
        )
    eval_set = bundle.eval_set()
    gallery_items = eval_set.gallery_items.astype(np.int64)
    row_of = {int(item): row for row, item in enumerate(gallery_items)}
    items = bundle.array(PREFIX + "items.npy").astype(np.int64)
    targets = np.array([row_of[int(i)] for i in items], np.int64)
    labels = bundle.item_categories
    sketches = bundle.array(PREFIX + "sketches.npy")
    metrics: dict[str, dict[str, RetrievalMetrics]] = {}
    for precision in ("int8", "float"):
        options = SketchEncoderOptions(num_threads=num_threads, batch_size=64, precision=precision)
        with SketchEncoder.create_from_bundle(bundle, options) as encoder:
            queries = encoder.embed(sketches).embeddings
        shipped = _gallery(bundle, precision, gallery_items, eval_set.gallery_float)
        metrics[precision] = {}
        for indexing in INDEXINGS:
            gallery = shipped.copy()
            if indexing != "identified":
                gallery[targets] = bundle.array(PREFIX + f"{indexing}_{precision}.npy")
            metrics[precision][indexing] = retrieval_metrics(
                queries, gallery, labels[items], labels[gallery_items], targets
            )
    identified, photos = _identification(bundle)
    return OutfitReport(metrics=metrics, identified=identified, photos=photos, gallery=len(gallery_items))


def _identification(bundle: Bundle) -> tuple[dict[str, float], dict[str, int]]:
    """Share of outfit photos whose picked box matches the true box, by products in the photo."""
    picked = bundle.array(PREFIX + "identified_box.npy")
    truth = bundle.array(PREFIX + "truth_box.npy")
    products = bundle.array(PREFIX + "products.npy")
    found = ~np.isnan(picked).any(axis=1)
    right = np.zeros(len(picked), bool)
    if found.any():
        right[found] = np.diag(iou_matrix(picked[found], truth[found])) >= MATCH_IOU
    groups = {str(g): products == g for g in sorted(set(products.tolist()))} | {"all": np.ones(len(products), bool)}
    return (
        {g: float(right[m].mean()) if m.any() else 0.0 for g, m in groups.items()},
        {g: int(m.sum()) for g, m in groups.items()},
    )


def format_outfits(report: OutfitReport) -> str:
    """The effect table (indexing × precision) and the identification line."""
    n = report.photos.get("all", 0)
    lines = [
        f"sketch search on {n} outfit-photo products (a sketch of the product alone each), "
        f"gallery of {report.gallery} held-out products",
        f"{'indexing':12}{'model':7}{'mAP':>8}{'P@10':>8}{'acc@10':>8}",
    ]
    for indexing in INDEXINGS:
        for precision, by in report.metrics.items():
            m = by[indexing]
            lines.append(f"{indexing:12}{precision:7}{m.map:8.4f}{m.p_at_10:8.4f}{m.acc_at_10:8.4f}")
    groups = [g for g in report.photos if g != "all"] + ["all"]
    lines.append(
        "identified box right (IoU >= 0.5), by products in the photo: "
        + ", ".join(f"{g}: {report.identified[g]:.3f} (n={report.photos[g]})" for g in groups)
    )
    return "\n".join(lines)
