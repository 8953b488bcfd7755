"""Main-product identification at export: which product of a catalog photo is the one sold?

Retail catalog photos often show a model wearing several garments, and only one
is for sale. Indexing the whole photo, or the wrong garment, makes a sketch of
trousers return the sweater the model wears. So the build looks at every
catalog photo:

* a **packshot** (the product alone on white: at least :data:`BORDER_SHARE` of
  the photo's border is white, as a background never is) is encoded whole, and only packshots train the
  encoders, the detector and the text-visual model;
* **any other photo** is loaded again at the detector's input side (at the
  encoders' 48 px an outfit photo's products are 15-20 px), goes through the
  detector; each box is cropped (aspect kept,
  :func:`~vitrina.runtime.text_visual.square_crop`, as the device crops) and
  embedded with the product's title by the text-visual model. The box picked is the
  best by :func:`~vitrina.runtime.identify.sold_box_scores`: the title's
  plausibility for the crop × the detector's objectness × the detector's
  probability of the title's category × the share of the box's middle in the
  product's colour family (the best method of ``vitrina eval --task identify``), each
  factor's log weighed by weights fitted on scenes of products held out of the
  text-visual training (:func:`fit_identify_weights`). Its crop is what the sketch and photo codes encode. With one box,
  that box; with none, the whole photo. Without a text-visual model, the largest box.

Everything runs through LiteRT with the int8 models the bundle ships, as the
device would. The catalog's ground truth (``outfits.json`` of the demo catalog)
is never read here.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vitrina.runtime.bundle import SceneSet
from vitrina.runtime.color_search import ColorFamilies
from vitrina.runtime.detector import DetectionResult, Detector, DetectorOptions, box_areas, iou_matrix
from vitrina.runtime.identify import (
    COMBINED,
    EQUAL_WEIGHTS,
    CandidateFactors,
    FactorWeights,
    colour_shares,
    identify_accuracy,
)
from vitrina.runtime.text_visual import TextVisualEncoder, TextVisualOptions, square_crop

#: A border pixel is white when all its channels are at least this (0-255).
WHITE_LEVEL = 245
#: A photo is a packshot when at least this share of its border pixels are white. Products
#: photographed on white often touch the frame (a pullover's sleeves, a dress's hem): on 500
#: demo packshots the white share of the border was 0.48 at least (0.86 median), on 133
#: outfit photos 0.014 at most.
BORDER_SHARE = 0.3
#: Border width examined, pixels.
BORDER = 2
#: How the crop is picked (``vitrina eval --task identify`` names).
LARGEST, WHOLE = "largest", "whole photo"


def packshot_mask(images: np.ndarray) -> np.ndarray:
    """(N,) bool: which of (N, H, W, 3) uint8 photos show their product alone on white.

    A packshot's border is white (at least :data:`BORDER_SHARE` of the pixels in a
    :data:`BORDER`-pixel frame have every channel >= :data:`WHITE_LEVEL`); an outfit
    or lifestyle photo's border is background.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (N, H, W, 3) uint8, got {images.dtype} {images.shape}")
    white = images.min(axis=3) >= WHITE_LEVEL
    frame = np.ones(images.shape[1:3], bool)
    frame[BORDER:-BORDER, BORDER:-BORDER] = False
    return white[:, frame].mean(axis=1) >= BORDER_SHARE


@dataclass(frozen=True, kw_only=True)
class Identification:
    """The crop each non-packshot catalog photo is encoded by.

    Attributes:
        rows: (n,) int64 catalog image rows that are not packshots.
        side: side of the square photos the boxes refer to, pixels (they were loaded at it).
        boxes: (n, 4) float32 xyxy box picked in each photo, pixels of a ``side``-pixel photo;
            NaN where none was found (the whole photo is encoded).
        found: (n,) int32 boxes the detector found in each photo.
        crops: (n, S, S, 3) uint8 the picked crop (or the whole photo) at the encoders' side.
        method: how the box was picked (:data:`~vitrina.runtime.identify.COMBINED` or :data:`LARGEST`).
        seconds: wall-clock seconds of the identification.
    """

    rows: np.ndarray
    side: int
    boxes: np.ndarray
    found: np.ndarray
    crops: np.ndarray
    method: str
    seconds: float

    def report(self, photos: int) -> dict[str, object]:
        """The build report's entry: how many of ``photos`` catalog photos were packshots, and of
        the others how many showed several products, one, or none the detector found."""
        return {
            "photos": photos,
            "packshots": photos - len(self.rows),
            "other_photos": len(self.rows),
            "several_products": int(np.sum(self.found >= 2)),
            "one_product": int(np.sum(self.found == 1)),
            "no_product_found": int(np.sum(self.found == 0)),
            "method": self.method,
            "side": self.side,
            "seconds": round(self.seconds, 1),
        }


def identify_main_products(
    load: Callable[[int], np.ndarray],
    rows: np.ndarray,
    *,
    detector_model: bytes,
    score_threshold: float,
    text_visual_model: bytes | None,
    title_ids: np.ndarray | None,
    title_categories: np.ndarray | None = None,
    families: ColorFamilies | None = None,
    title_families: np.ndarray | None = None,
    weights: FactorWeights = EQUAL_WEIGHTS,
    crop_size: int,
    progress: bool = True,
) -> Identification:
    """Pick the sold product's box in each catalog photo ``load(row)`` of ``rows`` (see the module docstring).

    Args:
        load: catalog image row → (side, side, 3) uint8 photo, every photo at one side (the build
            loads them again at the detector's input side: at the encoders' 48 px a product of an
            outfit photo is 15-20 px, too few for the detector and the encoders).
        rows: (n,) catalog image rows to look at (the photos that are not packshots).
        detector_model: the int8 detector TFLite; score_threshold: its shipped threshold.
        text_visual_model: the int8 text-visual TFLite, or None (the largest box is picked).
        title_ids: (n, W) int32 word ids of each photo's product title (with ``text_visual_model``).
        title_categories: (n,) int index of each photo's product category among the detector's
            categories (-1: one it does not know); None leaves the category out of the pick.
        families: the catalog's colour families; title_families: (n,) int index of each photo's
            product colour among them (-1: none); either None leaves the colour out of the pick.
        weights: the factors' weights (:func:`fit_identify_weights`).
        crop_size: side of the returned crops (the encoders' input), pixels.
    """
    t0 = time.monotonic()
    rows = np.asarray(rows, np.int64)
    if text_visual_model is not None and (title_ids is None or len(title_ids) != len(rows)):
        raise ValueError("identification with a text-visual model needs one title (word ids) per photo")
    if title_families is not None and len(title_families) != len(rows):
        raise ValueError(f"title_families must have one family per photo ({len(rows)}), got {len(title_families)}")
    if title_categories is not None and len(title_categories) != len(rows):
        raise ValueError(
            f"title_categories must have one category per photo ({len(rows)}), got {len(title_categories)}"
        )
    boxes = np.full((len(rows), 4), np.nan, np.float32)
    found = np.zeros(len(rows), np.int32)
    crops = np.empty((len(rows), crop_size, crop_size, 3), np.uint8)
    method = LARGEST if text_visual_model is None else COMBINED
    if len(rows) == 0:
        return Identification(rows=rows, side=0, boxes=boxes, found=found, crops=crops, method=method, seconds=0.0)
    with _models(detector_model, score_threshold, text_visual_model) as (detector, encoder):
        side = 0
        bar = tqdm(
            total=len(rows), desc="identifying sold products", unit="photo", disable=not progress, mininterval=1.0
        )
        for start in range(0, len(rows), _CHUNK):
            part = np.arange(start, min(start + _CHUNK, len(rows)))
            images = [load(int(rows[k])) for k in part]
            side = images[0].shape[0]
            detections = [detector.detect(image) for image in images]
            picks = _pick(
                detections,
                images,
                title_ids[part] if title_ids is not None else None,
                title_categories[part] if title_categories is not None else None,
                (families, title_families[part]) if families is not None and title_families is not None else None,
                encoder,
                weights,
            )
            for j, k in enumerate(part):
                found[k] = len(detections[j])
                box = None if picks[j] is None else detections[j].boxes[picks[j]]
                if box is not None:
                    boxes[k] = box
                crops[k] = square_crop(images[j], crop_size, box)
            bar.update(len(part))
        bar.close()
    return Identification(
        rows=rows, side=side, boxes=boxes, found=found, crops=crops, method=method, seconds=time.monotonic() - t0
    )


#: Photos loaded, detected and scored at a time.
_CHUNK = 512


@contextmanager
def _models(
    detector_model: bytes, score_threshold: float, text_visual_model: bytes | None
) -> Iterator[tuple[Detector, TextVisualEncoder | None]]:
    """The int8 detector (at ``score_threshold``) and text-visual encoder (None without a model), open."""
    with tempfile.TemporaryDirectory(prefix="vitrina-identify-") as tmp:
        det_path = Path(tmp) / "detector.tflite"
        det_path.write_bytes(detector_model)
        tv_path = Path(tmp) / "text_visual.tflite"
        if text_visual_model is not None:
            tv_path.write_bytes(text_visual_model)
        options = DetectorOptions(model_path=str(det_path), num_threads=2, score_threshold=score_threshold)
        tv_options = TextVisualOptions(model_path=str(tv_path), num_threads=2, batch_size=64)
        with (
            Detector.create_from_options(options) as detector,
            TextVisualEncoder.create_from_options(tv_options)
            if text_visual_model is not None
            else nullcontext() as encoder,
        ):
            yield detector, encoder


def _pick(
    detections: list[DetectionResult],
    images: list[np.ndarray],
    title_ids: np.ndarray | None,
    title_categories: np.ndarray | None,
    colours: tuple[ColorFamilies, np.ndarray] | None,
    encoder: TextVisualEncoder | None,
    weights: FactorWeights,
) -> list[int | None]:
    """Index of the picked box of each photo (None: no box): the best by
    :func:`~vitrina.runtime.identify.pick_sold_box` with a text-visual encoder, else the largest box."""
    if encoder is None or title_ids is None:
        return [None if not len(d) else int(np.argmax(box_areas(d.boxes))) for d in detections]
    factors = _factors(detections, images, title_ids, title_categories, colours, encoder)
    return [None if f is None else f.pick(weights) for f in factors]


def _factors(
    detections: list[DetectionResult],
    images: list[np.ndarray],
    title_ids: np.ndarray,
    title_categories: np.ndarray | None,
    colours: tuple[ColorFamilies, np.ndarray] | None,
    encoder: TextVisualEncoder,
    right: list[np.ndarray] | None = None,
) -> list[CandidateFactors | None]:
    """Each photo's boxes' factors for its title ``title_ids[j]`` (None: no box); ``right[j]``: (n,)
    bool which of photo ``j``'s boxes are right (unknown: all False)."""
    pairs = [(j, box) for j, d in enumerate(detections) for box in d.boxes]
    if not pairs:
        return [None] * len(detections)
    crops = np.stack([square_crop(images[j], encoder.image_size, box) for j, box in pairs])
    words = np.stack([title_ids[j] for j, _ in pairs]).astype(np.int32)
    plausibility = encoder.encode(words=words, images=crops).plausibility
    out: list[CandidateFactors | None] = []
    start = 0
    for j, d in enumerate(detections):
        if not len(d):
            out.append(None)
            continue
        out.append(
            CandidateFactors(
                plausibility=plausibility[start : start + len(d)],
                objectness=d.scores,
                category_probs=d.category_probs,
                category=int(title_categories[j]) if title_categories is not None else -1,
                colour_share=_colour_share(colours, images[j], d.boxes, j),
                right=right[j] if right is not None else np.zeros(len(d), bool),
            )
        )
        start += len(d)
    return out


#: The weights :func:`fit_identify_weights` tries (only their ratios matter): plausibility,
#: objectness, category, colour.
WEIGHT_GRID: tuple[tuple[float, ...], ...] = ((0.25, 0.5, 1.0), (0.5, 1.0, 2.0, 3.0), (0.5, 1.0, 2.0), (0.5, 1.0, 2.0))


@dataclass(frozen=True)
class WeightFit:
    """Identification weights fitted on validation scenes.

    Attributes: weights (the best of the grid), accuracy (their share of right picks with the
    detector's boxes), equal_accuracy (every weight 1), queries ((scene, product) queries),
    scenes (with 2+ products), seconds (wall clock)."""

    weights: FactorWeights
    accuracy: float
    equal_accuracy: float
    queries: int
    scenes: int
    seconds: float

    def report(self) -> dict[str, object]:
        return {
            "weights": self.weights.to_json(),
            "accuracy": round(self.accuracy, 4),
            "equal_weights_accuracy": round(self.equal_accuracy, 4),
            "queries": self.queries,
            "scenes": self.scenes,
            "seconds": round(self.seconds, 1),
        }


def fit_identify_weights(
    scenes: SceneSet,
    *,
    title_ids: np.ndarray,
    item_categories: np.ndarray,
    families: ColorFamilies | None,
    item_families: np.ndarray | None,
    detector_model: bytes,
    score_threshold: float,
    text_visual_model: bytes,
    grid: Sequence[Sequence[float]] = WEIGHT_GRID,
) -> WeightFit:
    """The factor weights (from ``grid``) that pick the sold product's box best on ``scenes``.

    Every product of every scene with two or more products is once the sold one; a detector
    box is right when it overlaps its box at IoU >= 0.5, as ``vitrina eval --task identify``
    counts. The scenes' products must be ones the text-visual model never trained on (its
    plausibility would flatter them). Ties go to the weights nearest equal ones.

    Args:
        scenes: validation scenes (``box_items`` index the per-product arrays).
        title_ids: (P, W) int32 each product's title word ids; item_categories: (P,) its category
            (the detector's index, -1 unknown); families, item_families: the colour families and
            (P,) each product's family (-1 none), or None.

    Raises:
        ValueError: no scene with two or more products, or a grid that is not four lists of weights.
    """
    t0 = time.monotonic()
    if len(grid) != 4 or any(not len(g) or min(g) <= 0 for g in grid):
        raise ValueError(f"grid must give positive weights for each of the four factors, got {grid!r}")
    multi = [s for s, n in enumerate(scenes.products_per_scene()) if n >= 2]
    if not multi:
        raise ValueError("fitting identification weights needs scenes with two or more products")
    queries: list[CandidateFactors] = []
    with _models(detector_model, score_threshold, text_visual_model) as (detector, encoder):
        if encoder is None:
            raise ValueError("fitting identification weights needs the text-visual model")
        for s in multi:
            rows = scenes.rows(s)
            items = scenes.box_items[rows].astype(np.int64)
            found = detector.detect(scenes.images[s])
            right = [iou_matrix(found.boxes, scenes.boxes[r][None])[:, 0] >= 0.5 for r in rows]
            factors = _factors(
                [found] * len(rows),
                [scenes.images[s]] * len(rows),
                title_ids[items],
                item_categories[items],
                (families, item_families[items]) if families is not None and item_families is not None else None,
                encoder,
                right=right,
            )
            queries += [f if f is not None else _nothing() for f in factors]
    best = best_weights(queries, grid)
    return WeightFit(
        weights=best,
        accuracy=identify_accuracy(queries, best),
        equal_accuracy=identify_accuracy(queries, EQUAL_WEIGHTS),
        queries=len(queries),
        scenes=len(multi),
        seconds=time.monotonic() - t0,
    )


def best_weights(queries: Sequence[CandidateFactors], grid: Sequence[Sequence[float]] = WEIGHT_GRID) -> FactorWeights:
    """The weights of ``grid`` (plausibility, objectness, category, colour lists) with the most
    right picks on ``queries``; ties go to the weights nearest equal ones."""
    return max(
        (FactorWeights(plausibility=p, objectness=o, category=c, colour=k) for p, o, c, k in itertools.product(*grid)),
        key=lambda w: (identify_accuracy(queries, w), *_tie_break(w)),
    )


def _nothing() -> CandidateFactors:
    """A query whose photo gave no box (counts as missed)."""
    empty = np.zeros(0)
    return CandidateFactors(empty, None, None, -1, None, np.zeros(0, bool))


def _tie_break(w: FactorWeights) -> tuple[float, float]:
    """How far ``w``'s ratios are from equal ones (only ratios change a pick), then how far ``w``
    is from every weight 1 (of two rules with equal ratios, the one nearer 1 is named); negated,
    so that nearer is larger."""
    logs = np.log([w.plausibility, w.objectness, w.category, w.colour])
    return -float(np.sum(np.abs(logs - logs.mean()))), -float(np.sum(np.abs(logs)))


def _colour_share(
    colours: tuple[ColorFamilies, np.ndarray] | None, image: np.ndarray, boxes: np.ndarray, j: int
) -> np.ndarray | None:
    """Photo ``j``'s boxes' share of its product's colour family, None when it has none (or no families)."""
    if colours is None or not len(boxes) or colours[1][j] < 0:
        return None
    families, title_families = colours
    return colour_shares(families.of_pixels(image), boxes, int(title_families[j]))
