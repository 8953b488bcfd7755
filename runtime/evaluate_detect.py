"""``vitrina eval --task detect`` and ``--task photo``: the detector and photo search on held-out scenes.

The scenes are composed at build time from test-split products with a seed
training never used (``eval/scenes.npy`` in the bundle, see
``export/data/scenes.py``); the composition is synthetic, the products real.

Detection (:func:`evaluate_detector`), per precision (int8 as shipped, float reference):

* AP50 and AP@[.5:.95] computed by ``pycocotools`` (the COCO reference
  implementation), class-agnostic (a box is "a product") and by category;
  pycocotools is a workstation/dev dependency, never a device one: without it
  the AP figures are None and the rest is reported;
* recall at IoU >= 0.5 at the shipped thresholds (``detector.SCORE_THRESHOLD``
  etc.): the share of products some returned box covers, by products per scene
  and by category; boxes per scene.

Photo search (:func:`evaluate_photo`): each scene is a query for one of its
products (picked with a fixed seed), cropped three ways: the ground-truth box,
the detector's box (multi-product scenes: the detection overlapping the product
most, as a shopper taps it; one-product scenes: the largest, as ``by_photo``
picks by itself; the whole photo when there is none), and the whole photo.
The gallery is the test-split products; metrics as ``vitrina eval`` (category
P@10 and mAP, own-product acc@10). One-product scenes are reported on their own.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from .bundle import Bundle, SceneSet
from .detector import DetectionResult, Detector, DetectorOptions, crop_box, decode, iou_matrix, nms
from .encoders import PhotoEncoder, PhotoEncoderOptions
from .evaluate import EvalInputs
from .photo import prepare_photo

#: Score threshold of the candidates AP is computed from (COCO practice: keep low-score boxes).
AP_SCORE_THRESHOLD = 0.01
AP_MAX_BOXES = 100
CROPS = ("gt_box", "detector_box", "whole_image")
_QUERY_SEED = 4242


@dataclass(frozen=True)
class SceneDetections:
    """Detections of every scene at AP settings: (n, 4) boxes, (n,) scores and categories per scene."""

    boxes: list[np.ndarray]
    scores: list[np.ndarray]
    categories: list[np.ndarray]

    def shipped(self, options: DetectorOptions) -> SceneDetections:
        """The boxes the device returns at ``options``' thresholds (same NMS IoU: a prefix of each scene's list)."""
        threshold = float(options.score_threshold or 0.0)
        keep = [np.flatnonzero(s > threshold)[: options.max_boxes] for s in self.scores]
        return SceneDetections(
            [b[k] for b, k in zip(self.boxes, keep)],
            [s[k] for s, k in zip(self.scores, keep)],
            [c[k] for c, k in zip(self.categories, keep)],
        )


def detect_scenes(detector: Detector, scenes: SceneSet) -> SceneDetections:
    """Run ``detector`` on every scene, keeping candidates down to :data:`AP_SCORE_THRESHOLD`."""
    out: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for image in scenes.images:
        square, scale, offset = _square(image, detector.input_size)
        objectness, boxes, classes = detector.raw(square)
        cand, scores, cats, _ = decode(
            objectness, boxes, classes, stride=detector.stride, score_threshold=AP_SCORE_THRESHOLD
        )
        keep = nms(cand, scores, detector.options.iou_threshold, AP_MAX_BOXES)
        h, w = image.shape[:2]
        b = (cand[keep] - np.array([*offset, *offset], np.float32)) / scale
        out[0].append(np.clip(b, 0, np.array([w, h, w, h], np.float32)))
        out[1].append(scores[keep])
        out[2].append(cats[keep])
    return SceneDetections(*out)


def _square(image: np.ndarray, size: int) -> tuple[np.ndarray, float, tuple[int, int]]:
    from .detector import letterbox

    return letterbox(image, size)


def coco_ap(scenes: SceneSet, dets: SceneDetections, *, by_category: bool) -> dict[str, float] | None:
    """``{"ap": AP@[.5:.95], "ap50": AP50}`` from pycocotools (class-agnostic unless ``by_category``),
    or None when pycocotools is not installed (it is not a device dependency)."""
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError:
        return None
    cats = sorted(set(scenes.box_labels.tolist())) if by_category else [0]
    images = [
        {"id": i + 1, "width": int(scenes.images.shape[2]), "height": int(scenes.images.shape[1])}
        for i in range(len(scenes))
    ]
    annotations = []
    for j, (box, scene, label) in enumerate(zip(scenes.boxes, scenes.box_scene, scenes.box_labels)):
        x0, y0, x1, y1 = (float(v) for v in box)
        annotations.append(
            {
                "id": j + 1,
                "image_id": int(scene) + 1,
                "category_id": int(label) + 1 if by_category else 1,
                "bbox": [x0, y0, x1 - x0, y1 - y0],
                "area": (x1 - x0) * (y1 - y0),
                "iscrowd": 0,
            }
        )
    results = [
        {
            "image_id": i + 1,
            "category_id": int(c) + 1 if by_category else 1,
            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
            "score": float(s),
        }
        for i in range(len(scenes))
        for b, s, c in zip(dets.boxes[i], dets.scores[i], dets.categories[i])
    ]
    if not results:
        return {"ap": 0.0, "ap50": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress and table
        gt = COCO()
        gt.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c + 1} for c in cats]}
        gt.createIndex()
        evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluation.params.maxDets = [1, 10, AP_MAX_BOXES]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {"ap": round(float(evaluation.stats[0]), 4), "ap50": round(float(evaluation.stats[1]), 4)}


def covered(scenes: SceneSet, dets: SceneDetections, iou: float = 0.5) -> np.ndarray:
    """(M,) bool: whether some detection of its scene overlaps each ground-truth box by IoU >= ``iou``."""
    hit = np.zeros(len(scenes.boxes), bool)
    for i in range(len(scenes)):
        rows = scenes.rows(i)
        if len(rows) and len(dets.boxes[i]):
            hit[rows] = iou_matrix(scenes.boxes[rows], dets.boxes[i]).max(axis=1) >= iou
    return hit


def evaluate_detector(
    bundle: Bundle, precisions: Sequence[str] = ("float", "int8"), num_threads: int = 2
) -> dict[str, Any]:
    """The detection report (see the module docstring) as JSON-ready dicts, one per precision."""
    scenes = bundle.eval_scenes()
    per_scene = scenes.products_per_scene()
    box_n = per_scene[scenes.box_scene]
    names = bundle.categories
    report: dict[str, Any] = {
        "scenes": len(scenes),
        "products": len(scenes.boxes),
        "thresholds": None,
        "input_size": None,
    }
    for precision in precisions:
        options = DetectorOptions(num_threads=num_threads, precision=precision)
        with Detector.create_from_bundle(bundle, options) as detector:
            dets = detect_scenes(detector, scenes)
            report["input_size"] = detector.input_size
            options = detector.options  # the bundle's own score threshold
        shipped = dets.shipped(options)
        report["thresholds"] = {
            "score": options.score_threshold,
            "iou": options.iou_threshold,
            "max_boxes": options.max_boxes,
        }
        hit = covered(scenes, shipped)
        matched_cat = _category_hits(scenes, shipped)
        agnostic = coco_ap(scenes, dets, by_category=False)
        categorised = coco_ap(scenes, dets, by_category=True)
        report[precision] = {
            "ap50": agnostic and agnostic["ap50"],
            "ap": agnostic and agnostic["ap"],
            "ap50_by_category": categorised and categorised["ap50"],
            "ap_by_category": categorised and categorised["ap"],
            "recall50": round(float(hit.mean()), 4),
            "recall50_by_products": {
                str(n): round(float(hit[box_n == n].mean()), 4) for n in sorted(set(box_n.tolist()))
            },
            "recall50_by_category": {
                names[c]: round(float(hit[scenes.box_labels == c].mean()), 4)
                for c in sorted(set(scenes.box_labels.tolist()))
            },
            "category_accuracy": round(float(matched_cat[hit].mean()), 4) if hit.any() else None,
            "boxes_per_scene": round(float(np.mean([len(b) for b in shipped.boxes])), 3),
        }
    return report


def _category_hits(scenes: SceneSet, dets: SceneDetections) -> np.ndarray:
    """(M,) bool: the best-overlapping detection of each box has the box's category."""
    ok = np.zeros(len(scenes.boxes), bool)
    for i in range(len(scenes)):
        rows = scenes.rows(i)
        if len(rows) and len(dets.boxes[i]):
            best = iou_matrix(scenes.boxes[rows], dets.boxes[i]).argmax(axis=1)
            ok[rows] = dets.categories[i][best] == scenes.box_labels[rows]
    return ok


def query_boxes(scenes: SceneSet, shipped: SceneDetections) -> tuple[np.ndarray, dict[str, list[np.ndarray | None]]]:
    """The product each scene queries for ((N,) box rows, fixed seed) and its three crops' boxes
    (None: the whole photo)."""
    rng = np.random.default_rng(_QUERY_SEED)
    picked = np.array([int(rng.choice(scenes.rows(i))) for i in range(len(scenes))], np.int64)
    crops: dict[str, list[np.ndarray | None]] = {name: [] for name in CROPS}
    for i, row in enumerate(picked):
        crops["gt_box"].append(scenes.boxes[row])
        crops["whole_image"].append(None)
        boxes = shipped.boxes[i]
        if len(boxes) == 0:
            crops["detector_box"].append(None)
        elif len(scenes.rows(i)) == 1:  # by_photo's own pick: the largest confident box
            found = DetectionResult(boxes, shipped.scores[i], shipped.categories[i])
            crops["detector_box"].append(boxes[found.largest()])
        else:  # the shopper taps the product's outline: the detection overlapping it most
            iou = iou_matrix(scenes.boxes[row][None], boxes)[0]
            crops["detector_box"].append(boxes[int(np.argmax(iou))] if iou.max() > 0 else None)
    return picked, crops


def evaluate_photo(
    bundle: Bundle, precisions: Sequence[str] = ("float", "int8"), num_threads: int = 2
) -> dict[str, Any]:
    """The photo-search report (see the module docstring): for ``multi_product`` and
    ``single_product`` scenes, per crop and precision, map / p_at_10 / acc_at_10."""
    scenes = bundle.eval_scenes()
    eval_set = bundle.eval_set()
    gallery_items = eval_set.gallery_items.astype(np.int64)
    row_of = {int(item): r for r, item in enumerate(gallery_items)}
    labels = bundle.item_categories
    single = scenes.products_per_scene() == 1
    report: dict[str, Any] = {
        "scenes": len(scenes),
        "single_product_scenes": int(single.sum()),
        "gallery": len(gallery_items),
    }
    for precision in precisions:
        options = DetectorOptions(num_threads=num_threads, precision=precision)
        with Detector.create_from_bundle(bundle, options) as detector:
            shipped = detect_scenes(detector, scenes).shipped(detector.options)
        picked, crops = query_boxes(scenes, shipped)
        items = scenes.box_items[picked].astype(np.int64)
        missing = [int(i) for i in items if int(i) not in row_of]
        if missing:
            raise ValueError(f"held-out scene products {missing[:5]} are not in the eval gallery")
        targets = np.array([row_of[int(i)] for i in items], np.int64)
        encoder_options = PhotoEncoderOptions(num_threads=num_threads, batch_size=64, precision=precision)
        with PhotoEncoder.create_from_bundle(bundle, encoder_options) as encoder:
            size = encoder.input_shape[0]
            for crop in CROPS:
                pixels = np.stack([_crop_pixels(scenes.images[i], b, size) for i, b in enumerate(crops[crop])])
                queries = encoder.embed(pixels).embeddings
                inputs = _inputs(
                    bundle,
                    precision,
                    queries,
                    eval_set.gallery_float,
                    labels[items],
                    labels[gallery_items],
                    targets,
                    gallery_items,
                )
                for group, mask in (("multi_product", ~single), ("single_product", single)):
                    if not mask.any():
                        continue
                    metrics = _subset(inputs, mask).metrics().to_json()
                    slot = report.setdefault(group, {}).setdefault(crop, {})
                    slot[precision] = {k: metrics[k] for k in ("p_at_10", "map", "acc_at_10")}
    return report


def _crop_pixels(scene: np.ndarray, box: np.ndarray | None, size: int) -> np.ndarray:
    """The photo encoder's (size, size, 3) input for ``box`` of ``scene`` (the whole scene for None)."""
    image = Image.fromarray(scene)
    return prepare_photo(image if box is None else crop_box(image, box), size)


def _inputs(
    bundle: Bundle,
    precision: str,
    queries: np.ndarray,
    gallery_float: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    targets: np.ndarray,
    gallery_items: np.ndarray,
) -> EvalInputs:
    """Photo queries against the gallery as the device ranks them (int8: shipped codes, reducer,
    re-rank) or against the float gallery embeddings (float)."""
    if precision == "float":
        return EvalInputs(queries, gallery_float, query_labels, gallery_labels, targets)
    rows = bundle.first_code_rows[gallery_items]
    if (rows < 0).any():
        raise ValueError("an eval gallery product has no catalog code")
    codes = bundle.reducer()(queries)
    gallery = bundle.code_values(rows)
    metric = bundle.code_spec.metric
    if not bundle.has_rerank:
        return EvalInputs(codes, gallery, query_labels, gallery_labels, targets, metric)
    full, scale, shortlist = bundle.rerank()
    rerank_gallery = np.asarray(full[rows], dtype=np.float32) * scale
    return EvalInputs(codes, gallery, query_labels, gallery_labels, targets, metric, queries, rerank_gallery, shortlist)


def _subset(inputs: EvalInputs, mask: np.ndarray) -> EvalInputs:
    """The same eval with only the queries of ``mask``."""
    return replace(
        inputs,
        queries=inputs.queries[mask],
        query_labels=inputs.query_labels[mask],
        targets=inputs.targets[mask],
        rerank_queries=None if inputs.rerank_queries is None else inputs.rerank_queries[mask],
    )
