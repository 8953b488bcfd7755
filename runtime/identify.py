"""Which of a photo's detected boxes shows the product being sold: four pieces of evidence, multiplied.

For one photo, its candidate boxes and the sold product's title, each box scores

* ``log P(the title fits the crop)``: the text-visual model's plausibility head;
* ``+ log P(the box is a product)``: the detector's objectness;
* ``+ log P(the box is the title's category)``: the detector's category softmax;
* ``+ log (share of the box's middle in the product's colour + COLOUR_FLOOR)``: the
  product's colour family (the catalog's colour name, :mod:`~vitrina.runtime.color_search`)
  against the pixels of the middle of the box (:func:`colour_shares`);

and the best box is the sold product. The four are taken as independent evidence
(a naive-Bayes product), each log weighed by :class:`FactorWeights`: equal weights
by default; a bundle carries the weights its build fitted on scenes of products
held out of the text-visual training (``text_visual.identify_weights``,
:func:`~vitrina.runtime.text_visual.identify_weights`), since a plausibility head
that learned the category and colour counts them a second time (see the README).
Before that head learned them (equal weights), on the demo bundle's held-out
scenes (int8, detector boxes, ``vitrina eval --task identify``), plausibility
alone picked the right box for 0.740 of the queries; times objectness 0.803;
times the category 0.851; times the colour share 0.895. Weighing either detector
factor by 0.5 or 2 moved the three-factor figure by 0.011 at most; a colour floor
of 0.05 or 0.2 instead of 0.01 cost 0.004 and 0.010, and half the colour's weight
up to 0.024, so the plain product stayed. Of plausibility alone's 353 misses, 138
picked a product of another category and 128 a box that is no product (IoU < 0.5
with every one: a part, or two products in one box); 47 queries have no right box
at all, which caps any rule at 0.965.

A factor that is not known (boxes that are not the detector's, a title whose
category the detector does not know, a product whose colour is no family) is
left out, not guessed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

#: ``vitrina eval --task identify`` and the build report's name of this rule.
COMBINED = "combined"
#: Probabilities are clipped to [FLOOR, 1 - FLOOR] before the log (an int8 head can say exactly 0).
FLOOR = 1e-6
#: Added to a colour share before the log: a box with none of the colour is unlikely, not impossible
#: (shading, a pattern, the family boundary).
COLOUR_FLOOR = 0.01
#: Share of each side of a box left out when its colour is read: the middle holds the product,
#: the corners the background.
COLOUR_MARGIN = 0.2


@dataclass(frozen=True, kw_only=True)
class FactorWeights:
    """The weight of each factor's log in :func:`sold_box_scores` (finite, >= 0; 0 leaves it out)."""

    plausibility: float = 1.0
    objectness: float = 1.0
    category: float = 1.0
    colour: float = 1.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise ValueError(f"identification weight {name} must be a finite number >= 0, got {value!r}")

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_json(cls, entry: object) -> FactorWeights:
        """The weights of a manifest entry ``{"plausibility": w, "objectness": w, "category": w, "colour": w}``.

        Raises:
            ValueError: not such a mapping (a missing or unknown name, a weight that is no finite number >= 0).
        """
        names = set(asdict(cls()))
        if not isinstance(entry, Mapping) or set(entry) != names:
            got = sorted(entry) if isinstance(entry, Mapping) else type(entry).__name__
            raise ValueError(f"identification weights must name exactly {sorted(names)}, got {got}")
        return cls(**{name: entry[name] for name in names})


#: Every factor at weight 1: the plain naive-Bayes product.
EQUAL_WEIGHTS = FactorWeights()


@dataclass(frozen=True)
class CandidateFactors:
    """One photo's candidate boxes for one sold product: the factors :func:`sold_box_scores` takes,
    and (for fitting and evaluation) which boxes are right.

    Attributes:
        plausibility: (n,) float; objectness: (n,) or None; category_probs: (n, C) or None;
        category: the title's category (-1: unknown); colour_share: (n,) or None;
        right: (n,) bool, the boxes that show the sold product (all False when unknown).
    """

    plausibility: np.ndarray
    objectness: np.ndarray | None
    category_probs: np.ndarray | None
    category: int
    colour_share: np.ndarray | None
    right: np.ndarray

    def pick(self, weights: FactorWeights = EQUAL_WEIGHTS) -> int | None:
        """:func:`pick_sold_box` of these factors."""
        return pick_sold_box(
            self.plausibility,
            objectness=self.objectness,
            category_probs=self.category_probs,
            category=self.category,
            colour_share=self.colour_share,
            weights=weights,
        )


def identify_accuracy(queries: Sequence[CandidateFactors], weights: FactorWeights) -> float:
    """Share of ``queries`` whose picked box is right (a query without boxes counts as missed)."""
    if not queries:
        raise ValueError("identification accuracy needs at least one query")
    hits = 0
    for q in queries:
        pick = q.pick(weights)
        hits += int(pick is not None and bool(q.right[pick]))
    return hits / len(queries)


def colour_shares(family_map: np.ndarray, boxes: np.ndarray, family: int) -> np.ndarray:
    """(n,) float64 share of the middle of each box whose pixels are in colour ``family``.

    Args:
        family_map: (H, W) int colour family of each pixel of the photo
            (:meth:`~vitrina.runtime.color_search.ColorFamilies.of_pixels`).
        boxes: (n, 4) xyxy boxes in the photo's pixels; each loses :data:`COLOUR_MARGIN`
            of its width and height on every side (at least one pixel is read).
        family: the family index to count.
    """
    h, w = family_map.shape[:2]
    out = np.zeros(len(boxes), np.float64)
    for i, (x0, y0, x1, y1) in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        dx, dy = (x1 - x0) * COLOUR_MARGIN, (y1 - y0) * COLOUR_MARGIN
        c0, r0 = int(np.clip(np.floor(x0 + dx), 0, w - 1)), int(np.clip(np.floor(y0 + dy), 0, h - 1))
        c1, r1 = int(np.clip(np.ceil(x1 - dx), c0 + 1, w)), int(np.clip(np.ceil(y1 - dy), r0 + 1, h))
        out[i] = float(np.mean(family_map[r0:r1, c0:c1] == family))
    return out


def sold_box_scores(
    plausibility: np.ndarray,
    *,
    objectness: np.ndarray | None = None,
    category_probs: np.ndarray | None = None,
    category: int = -1,
    colour_share: np.ndarray | None = None,
    weights: FactorWeights = EQUAL_WEIGHTS,
) -> np.ndarray:
    """The log-evidence that each candidate box shows the sold product.

    Args:
        plausibility: (n,) float probability that the title fits each box's crop (text-visual head).
        objectness: (n,) float detector objectness of each box in (0, 1), or None (left out).
        category_probs: (n, C) float detector category probabilities of each box, or None (left out).
        category: the title's category index into ``category_probs``' columns; -1 or out of
            range: the category factor is left out.
        colour_share: (n,) share of each box's middle in the product's colour family
            (:func:`colour_shares`), or None (left out).
        weights: each factor's weight (:class:`FactorWeights`).

    Returns:
        (n,) float64 scores, higher is better (a weighted sum of log probabilities).
    """
    w = weights
    plausibility = np.asarray(plausibility, np.float64).reshape(-1)
    n = len(plausibility)
    total = w.plausibility * _log(plausibility)
    if objectness is not None:
        total = total + w.objectness * _log(_check(objectness, (n,), "objectness"))
    if category_probs is not None and 0 <= category < np.shape(category_probs)[-1]:
        probs = _check(category_probs, (n, np.shape(category_probs)[-1]), "category_probs")
        total = total + w.category * _log(probs[:, category])
    if colour_share is not None:
        shares = np.clip(_check(colour_share, (n,), "colour_share"), 0.0, 1.0)
        total = total + w.colour * np.log(shares + COLOUR_FLOOR)
    return total


def pick_sold_box(
    plausibility: np.ndarray,
    *,
    objectness: np.ndarray | None = None,
    category_probs: np.ndarray | None = None,
    category: int = -1,
    colour_share: np.ndarray | None = None,
    weights: FactorWeights = EQUAL_WEIGHTS,
) -> int | None:
    """Index of the box with the best :func:`sold_box_scores` (the first on ties), None without boxes."""
    scores = sold_box_scores(
        plausibility,
        objectness=objectness,
        category_probs=category_probs,
        category=category,
        colour_share=colour_share,
        weights=weights,
    )
    return int(np.argmax(scores)) if len(scores) else None


def _log(p: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(p, np.float64), FLOOR, 1.0 - FLOOR))


def _check(values: np.ndarray, shape: tuple[int, ...], name: str) -> np.ndarray:
    values = np.asarray(values, np.float64)
    if values.shape != shape:
        raise ValueError(f"{name} must have shape {shape} (one row per box), got {values.shape}")
    return values
