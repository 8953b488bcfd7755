"""``vitrina eval --task identify``: which of a photo's products is the one being sold?

On the bundle's held-out scenes (test-split products composed like outfit
photos, ``eval/scenes.npy`` with ground-truth boxes), every product of every
scene with two or more products is once "the sold product": its title is the
query, and each candidate crop of the scene competes.

Candidates:

* ``gt``: the ground-truth boxes (right = the sold product's box);
* ``detector``: the detector's boxes at its shipped thresholds (right = a box
  overlapping the sold product's box at IoU >= 0.5).

Methods:

* ``text-visual``: embed each crop with the title (fused code) and pick the crop
  whose code is nearest the title's own code (cosine), as export does;
* ``plausibility``: the crop with the highest plausibility for the title;
* ``combined``: plausibility × the detector's objectness × its probability of the
  title's category × the share of the box's middle in the product's colour family,
  each factor's log weighed by the weights the build fitted (the bundle's
  ``text_visual.identify_weights``; equal when it has none): what export does
  (:mod:`~vitrina.runtime.identify`); ground-truth boxes have no objectness, and take
  the category probabilities of the detection overlapping them at IoU >= 0.5 (none:
  uniform);
* ``equal weights``: the same product with every weight 1 (the rule before fitted weights);
* ``category``: the simple baseline: the title's category against the
  detector's category of each box (ground-truth boxes take the category of
  the detection overlapping them most); ties and misses count as a random pick
  among them (expected accuracy);
* ``random``: the expected accuracy of a random pick.

Accuracy by products in the photo (2, 3, 4, 5) and over all; int8 models
next to float (detector and text-visual of the same precision).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bundle import Bundle, Item, SceneSet
from .color_search import ColorFamilies
from .detector import DetectionResult, Detector, DetectorOptions, iou_matrix
from .identify import COMBINED, EQUAL_WEIGHTS, CandidateFactors, FactorWeights, colour_shares
from .text import WordRepair
from .text_visual import TextVisualEncoder, TextVisualOptions, has_text_visual, identify_weights, square_crop

#: The combined rule with every weight 1.
EQUAL = "equal weights"
METHODS = ("text-visual", "plausibility", COMBINED, EQUAL, "category", "random")
CANDIDATES = ("gt", "detector")
#: A detector box identifies a product when it overlaps the product's box at least this much.
MATCH_IOU = 0.5


@dataclass(frozen=True)
class IdentifyReport:
    """Attributes: accuracy[precision][candidates][method][group] in [0, 1] (group: "2".."5", "all"),
    queries[group]: (scene, product) queries, scenes: scenes with 2+ products, weights: the
    combined rule's (the bundle's fitted ones)."""

    accuracy: dict[str, dict[str, dict[str, dict[str, float]]]]
    queries: dict[str, int]
    scenes: int
    weights: FactorWeights = EQUAL_WEIGHTS

    def to_json(self) -> dict[str, object]:
        rounded = {
            p: {c: {m: {g: round(v, 4) for g, v in groups.items()} for m, groups in ms.items()} for c, ms in cs.items()}
            for p, cs in self.accuracy.items()
        }
        return {"accuracy": rounded, "queries": self.queries, "scenes": self.scenes, "weights": self.weights.to_json()}


def pick_nearest(title_code: np.ndarray, fused: np.ndarray) -> int:
    """Index of the row of ``fused`` (n, D) nearest ``title_code`` (D,) by cosine (unit rows)."""
    return int(np.argmax(fused @ title_code))


def _credit(right: np.ndarray, chosen: np.ndarray) -> float:
    """Expected accuracy of a random pick among ``chosen`` (bool mask over candidates); ``right`` (bool mask)."""
    if not chosen.any():
        return 0.0
    return float(right[chosen].mean())


def evaluate_identify(
    bundle: Bundle, *, num_threads: int = 2, scenes: SceneSet | None = None, items: Sequence[Item] | None = None
) -> IdentifyReport:
    """The tables of the module docstring.

    Args:
        scenes, items: another store's scenes and products (``box_items`` index ``items``;
            their titles go through this bundle's word repair); default: the bundle's own
            held-out scenes and products.

    Raises:
        ValueError: no text-visual model, no held-out scenes, or no scene with two products.
    """
    if not has_text_visual(bundle):
        raise ValueError(f"bundle {bundle.path} has no text-visual model: --task identify needs one")
    if scenes is None:
        if not bundle.manifest.get("eval_scenes"):
            raise ValueError(f"bundle {bundle.path} has no held-out scenes (built without a detector)")
        scenes = bundle.eval_scenes()
    products = bundle.items if items is None else items
    counts = scenes.products_per_scene()
    multi = [s for s in range(len(scenes)) if counts[s] >= 2]
    if not multi:
        raise ValueError(f"bundle {bundle.path}: no held-out scene has two or more products")
    # own titles are the catalog's words; another store's go through the shoppers' repair (synonyms too)
    repair = WordRepair.for_titles(bundle.vocabulary) if items is None else WordRepair(bundle.vocabulary)
    categories = {name: i for i, name in enumerate(bundle.categories)}
    colors = bundle.manifest.get("colors")
    families = ColorFamilies.from_mapping(colors) if colors else None
    product_families = families.of_items([p.color for p in products]) if families else None
    weights = identify_weights(bundle)
    accuracy: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    queries: dict[str, int] = {}
    for precision in ("int8", "float"):
        rows: dict[str, dict[str, list[tuple[str, float]]]] = {c: {m: [] for m in METHODS} for c in CANDIDATES}
        with (
            TextVisualEncoder.create_from_bundle(
                bundle, TextVisualOptions(precision=precision, num_threads=num_threads, batch_size=32)
            ) as encoder,
            Detector.create_from_bundle(bundle, DetectorOptions(precision=precision, num_threads=num_threads)) as det,
        ):
            for s in multi:
                image = scenes.images[s]
                gt_rows = scenes.rows(s)
                gt_boxes = scenes.boxes[gt_rows]
                found = det.detect(image)
                candidates = {"gt": gt_boxes, "detector": found.boxes}
                # the detector's category of each ground-truth box: the detection overlapping it most
                overlap = iou_matrix(gt_boxes, found.boxes) if len(found) else np.zeros((len(gt_rows), 0))
                gt_cats = np.where(
                    overlap.max(axis=1, initial=0.0) >= MATCH_IOU,
                    found.categories[overlap.argmax(axis=1)] if len(found) else -1,
                    -1,
                )
                box_cats = {"gt": gt_cats, "detector": found.categories}
                evidence = {
                    "gt": (None, _gt_category_probs(overlap, found)),
                    "detector": (found.scores, found.category_probs),
                }
                crops = {
                    c: np.stack([square_crop(image, encoder.image_size, b) for b in boxes]) if len(boxes) else None
                    for c, boxes in candidates.items()
                }
                group = str(len(gt_rows))
                family_map = families.of_pixels(image) if families is not None else None
                for j, row in enumerate(gt_rows):
                    item = int(scenes.box_items[row])
                    ids = encoder.ids(repair.normalize(products[item].title).words)
                    title_code = encoder.encode(words=ids[None]).codes[0]
                    want = categories.get(products[item].category, -2)
                    for c in CANDIDATES:
                        boxes = candidates[c]
                        if c == "gt":
                            right = np.arange(len(boxes)) == j
                        else:
                            right = (
                                (iou_matrix(boxes, gt_boxes[j][None])[:, 0] >= MATCH_IOU)
                                if len(boxes)
                                else np.zeros(0, bool)
                            )
                        if len(boxes) == 0:
                            for m in METHODS:
                                rows[c][m].append((group, 0.0))
                            continue
                        fused = encoder.encode(words=np.repeat(ids[None], len(boxes), axis=0), images=crops[c])
                        rows[c]["text-visual"].append((group, float(right[pick_nearest(title_code, fused.codes)])))
                        rows[c]["plausibility"].append((group, float(right[int(np.argmax(fused.plausibility))])))
                        objectness, probs = evidence[c]
                        family = int(product_families[item]) if product_families is not None else -1
                        shares = (
                            colour_shares(family_map, boxes, family) if family_map is not None and family >= 0 else None
                        )
                        factors = CandidateFactors(fused.plausibility, objectness, probs, want, shares, right)
                        for method, w in ((COMBINED, weights), (EQUAL, EQUAL_WEIGHTS)):
                            pick = factors.pick(w)
                            rows[c][method].append((group, float(right[pick]) if pick is not None else 0.0))
                        same = box_cats[c] == want
                        rows[c]["category"].append((group, _credit(right, same) if same.any() else float(right.mean())))
                        rows[c]["random"].append((group, float(right.mean())))
        accuracy[precision] = {c: {m: _by_group(rows[c][m]) for m in METHODS} for c in CANDIDATES}
        queries = {g: n for g, n in _group_counts(rows["gt"]["random"]).items()}
    return IdentifyReport(accuracy=accuracy, queries=queries, scenes=len(multi), weights=weights)


def _gt_category_probs(overlap: np.ndarray, found: DetectionResult) -> np.ndarray | None:
    """(n_gt, C) category probabilities of each ground-truth box: those of the detection overlapping
    it most at IoU >= :data:`MATCH_IOU`, uniform where none does; None when the detector gives none."""
    probs = found.category_probs
    if probs is None or probs.shape[1] == 0:
        return None
    out = np.full((overlap.shape[0], probs.shape[1]), 1.0 / probs.shape[1], np.float32)
    if overlap.shape[1]:
        matched = overlap.max(axis=1) >= MATCH_IOU
        out[matched] = probs[overlap.argmax(axis=1)[matched]]
    return out


def _by_group(rows: list[tuple[str, float]]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for g, v in rows:
        groups.setdefault(g, []).append(v)
    out = {g: float(np.mean(groups[g])) for g in sorted(groups)}
    out["all"] = float(np.mean([v for _, v in rows])) if rows else 0.0
    return out


def _group_counts(rows: list[tuple[str, float]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for g, _ in rows:
        counts[g] = counts.get(g, 0) + 1
    return dict(sorted(counts.items())) | {"all": len(rows)}


def format_identify(report: IdentifyReport, store: str = "") -> str:
    """The study's table: accuracy by products in the photo, per candidates, method and precision."""
    groups = list(report.queries)
    lines = [
        f"identification on {report.scenes} held-out scenes with 2+ products{' of ' + store if store else ''} "
        f"({report.queries.get('all', 0)} queries: each product of a scene once the sold one)"
    ]
    lines.append(
        f"{'boxes':10}{'method':14}{'model':7}"
        + "".join(f"{g + ' prod.' if g != 'all' else 'all':>10}" for g in groups)
    )
    lines.append(f"{'':31}" + "".join(f"{'n=' + str(report.queries[g]):>10}" for g in groups))
    for c in CANDIDATES:
        for m in METHODS:
            for p in report.accuracy:
                acc = report.accuracy[p][c][m]
                lines.append(f"{c:10}{m:14}{p:7}" + "".join(f"{acc.get(g, float('nan')):10.4f}" for g in groups))
    w = report.weights
    lines.append(
        f"{COMBINED} weights (the bundle's): plausibility {w.plausibility:g}, objectness {w.objectness:g}, "
        f"category {w.category:g}, colour {w.colour:g}"
    )
    return "\n".join(lines)
