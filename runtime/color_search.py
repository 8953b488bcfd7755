"""Colour sketches on the device: the catalog colour family a drawing is in, and ranking by it.

A bundle built from a catalog with colour names carries its colour families
(manifest ``colors``: ``{name: [r, g, b]}``, each name's typical product pixel).
A sketch with colour (a :class:`~vitrina.runtime.rasterize.PenStroke` that is
not black ink, or any fill) is searched in two stages:

1. shape: the black-ink sketch encoder ranks the catalog from the drawing's shape
   strokes (:func:`~vitrina.runtime.rasterize.shape_strokes`: ink and fill outlines;
   a colour scribble inside an outline is colour, not shape); its
   :data:`COLOR_SHORTLIST` best products go on (the shipped re-rank's shortlist
   first, in its order, then the compact codes' order);
2. colour and category (:func:`color_scores`): each drawn colour goes to its
   nearest family (CIELAB distance), the families weighed by how much of the
   drawing they cover (fill area, line length × pen width). A product scores
   ``-log(1 + shape rank)``, plus :data:`COLOR_STRENGTH` × the share of the drawing
   in its colour family, plus :data:`CATEGORY_STRENGTH` × its category's share of
   the vote of the :data:`CATEGORY_VOTE` best shapes (each weighed 1 / log2(rank + 2)).
   Ranks, not scores, so the rule is the same whatever the codes' metric.

With strength log(300), a product in the drawn colour at shape rank 300 ties one
in another colour at rank 0. Colour pulls products from deep in the shape ranking,
where other categories are common; the category vote keeps the drawn category
ahead of them. So the drawn category in the drawn colour comes first, the same
category in other colours next, and other categories after them (the order the
issue asks of a colour encoder), with the black-ink encoder unchanged. The
constants were picked on the demo bundle's colour eval (README, "Colour sketches").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import msgspec
import numpy as np

from .rasterize import REFERENCE_PEN_WIDTH, PenStroke, Stroke

#: Products the shape stage hands to the colour stage (more than a category holds in
#: the demo catalog, so the colour order reaches the drawn category's whole head).
COLOR_SHORTLIST = 4000
#: Weight of a full colour match, in log shape-rank units (log 300: 300× further down the shape ranking).
COLOR_STRENGTH = float(np.log(300.0))
#: Best shapes whose categories vote.
CATEGORY_VOTE = 50
#: Weight of a unanimous category vote, in log shape-rank units.
CATEGORY_STRENGTH = 10.0


class ColorFamilyError(ValueError):
    """The bundle's colour families are malformed."""


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(n, 3) sRGB 0-255 → (n, 3) float64 CIELAB (D65): L in [0, 100], a and b about ±128."""
    c = np.asarray(rgb, dtype=np.float64).reshape(-1, 3) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = (
        linear
        @ np.array(
            [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
        ).T
    )
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


@dataclass(frozen=True, eq=False)
class ColorFamilies:
    """A catalog's colour families.

    Attributes:
        names: family (colour) names, as in the products' ``color`` field.
        rgb: (F, 3) uint8 typical product colour of each family.
        lab: (F, 3) float64 the same in CIELAB.
    """

    names: tuple[str, ...]
    rgb: np.ndarray
    lab: np.ndarray

    @classmethod
    def from_mapping(cls, colors: object) -> ColorFamilies:
        """``{name: [r, g, b]}`` (integers 0-255) → families.

        Raises:
            ColorFamilyError: not such a mapping.
        """
        try:
            table = msgspec.convert(colors, dict[str, tuple[int, int, int]])
        except msgspec.ValidationError as exc:
            raise ColorFamilyError(f"colours must be {{name: [r, g, b]}}: {exc}") from None
        if not table:
            raise ColorFamilyError("colours must name at least one family")
        rgb = np.array(list(table.values()), dtype=np.int64)
        if rgb.min() < 0 or rgb.max() > 255:
            raise ColorFamilyError(f"colour values must be 0-255, got {rgb.min()}..{rgb.max()}")
        return cls(tuple(table), rgb.astype(np.uint8), srgb_to_lab(rgb))

    def nearest(self, rgb: Sequence[int] | np.ndarray) -> int:
        """Index of the family nearest (CIELAB distance) to one RGB 0-255 colour."""
        return int(np.argmin(((self.lab - srgb_to_lab(np.asarray(rgb)))[:, :] ** 2).sum(axis=1)))

    def of_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(..., 3) uint8 RGB pixels → (...) int64 index of each pixel's nearest family (CIELAB),
        through a table of every colour at 5 bits per channel (built once per family set)."""
        rgb = np.asarray(pixels)
        if rgb.dtype != np.uint8 or rgb.shape[-1:] != (3,):
            raise ValueError(f"pixels must be (..., 3) uint8 RGB, got {rgb.dtype} {rgb.shape}")
        q = rgb >> 3
        return self._pixel_table[q[..., 0], q[..., 1], q[..., 2]]

    @cached_property
    def _pixel_table(self) -> np.ndarray:
        """(32, 32, 32) int64 nearest family of each 5-bit colour (its cell's centre)."""
        levels = np.arange(32) * 8 + 4
        grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
        lab = srgb_to_lab(grid)
        nearest = np.argmin(((lab[:, None, :] - self.lab[None]) ** 2).sum(axis=2), axis=1)
        return nearest.reshape(32, 32, 32).astype(np.int64)

    def of_items(self, colors: Sequence[str]) -> np.ndarray:
        """(P,) int64 family of each product colour name; -1 for a name that is no family."""
        index = {name: i for i, name in enumerate(self.names)}
        return np.array([index.get(c, -1) for c in colors], dtype=np.int64)


@dataclass(frozen=True)
class DrawnColor:
    """The colour of a drawing.

    Attributes:
        weights: (F,) float64 share of the drawing's colour in each family, summing to 1.
        family: name of the family with the largest share.
    """

    weights: np.ndarray
    family: str


def drawn_color(strokes: Sequence[Stroke | PenStroke], families: ColorFamilies) -> DrawnColor | None:
    """The colour families of ``strokes``' colour pens, or None when the drawing is black ink only.

    A fill weighs its polygon's area, a line its length × pen width (canvas
    pixels², :data:`~vitrina.runtime.rasterize.REFERENCE_PEN_WIDTH` when it has none);
    a black fill is colour (black is a family), a black line is ink.
    """
    weights = np.zeros(len(families.names), dtype=np.float64)
    for stroke in strokes:
        if not isinstance(stroke, PenStroke) or stroke.is_ink or len(stroke.points) == 0:
            continue
        pts = np.asarray(stroke.points, dtype=np.float64)
        width = stroke.width if stroke.width is not None else REFERENCE_PEN_WIDTH
        length = float(np.hypot(*np.diff(pts, axis=0).T).sum()) if len(pts) > 1 else 0.0
        weight = length * width + width * width  # a dot still counts
        if stroke.fill and len(pts) >= 3:
            x, y = pts[:, 0], pts[:, 1]
            weight += 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
        weights[families.nearest(stroke.color)] += weight
    total = weights.sum()
    if total <= 0:
        return None
    weights /= total
    return DrawnColor(weights, families.names[int(np.argmax(weights))])


def category_votes(shape_categories: np.ndarray, n: int = CATEGORY_VOTE) -> np.ndarray:
    """Each category's share of the vote of the ``n`` best shapes, rank r weighed 1 / log2(r + 2).

    Args:
        shape_categories: (m,) int category of each candidate, in shape order (-1: none, no vote).
        n: how many of the best shapes vote.

    Returns:
        (C,) float64 shares summing to 1 (C = the largest category + 1; all zero with no voter).
    """
    voters = np.asarray(shape_categories[:n], dtype=np.int64)
    size = int(np.max(shape_categories, initial=-1)) + 1
    weights = 1.0 / np.log2(np.arange(len(voters)) + 2.0)
    weights[voters < 0] = 0.0
    total = weights.sum()
    votes = np.bincount(np.maximum(voters, 0), weights=weights, minlength=size)[:size]
    return votes / total if total > 0 else votes


def color_scores(
    item_families: np.ndarray,
    item_categories: np.ndarray,
    drawn: DrawnColor,
    *,
    strength: float = COLOR_STRENGTH,
    category_strength: float = CATEGORY_STRENGTH,
) -> np.ndarray:
    """Blend one query's shape ranking with its colour and its category vote.

    Args:
        item_families: (n,) int family of each candidate, in shape order (-1: none).
        item_categories: (n,) int category of each candidate, in the same order (-1: none).
        drawn: the drawing's colour.
        strength: weight of a full colour match, in log shape-rank units.
        category_strength: weight of a unanimous category vote (:func:`category_votes`).

    Returns:
        (n,) float64 scores, higher is better: ``-log(1 + rank) + strength × colour share
        + category_strength × category vote``.
    """
    families = np.asarray(item_families, dtype=np.int64)
    categories = np.asarray(item_categories, dtype=np.int64)
    if families.shape != categories.shape:
        raise ValueError(f"families {families.shape} and categories {categories.shape} must match")
    share = np.where(families >= 0, drawn.weights[np.maximum(families, 0)], 0.0)
    votes = category_votes(categories)
    vote = np.where(categories >= 0, votes[np.maximum(categories, 0)], 0.0) if len(votes) else 0.0
    return -np.log1p(np.arange(len(families), dtype=np.float64)) + strength * share + category_strength * vote
