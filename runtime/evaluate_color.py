"""``vitrina eval --task color``: colour sketches of held-out products, ranked as the device ranks them.

Queries: the bundle's held-out stroke lists (test-split products, a seed the
training never saw), each given the colour of its product's colour family with
a shopper's coarse-palette jitter (hue, saturation, lightness), alternately as a
fill of the drawing's outline and as a scribble inside it (:func:`colorize`; black
always as a fill, since a black scribble is ink).
Gallery: the eval set's test-split products. Each precision ranks them as
``ProductSearch.by_strokes`` does: the shape stage on the drawing's shape strokes
(``shape_strokes``; int8: shipped codes, reducer and re-rank; float: float encoder
and float gallery codes), then the colour and category stage over its
:data:`~vitrina.runtime.color_search.COLOR_SHORTLIST` best.

Figures per precision:

* ``color``: colour-aware metrics, relevant = same category and same colour family;
* ``category``: category metrics of the colour queries;
* ``black_ink``: category metrics of the same shape strokes in black ink (shape stage only);
* ``order_check``: share of queries where the mean rank of same-category
  same-colour products beats that of same-category other-colour products.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np

from .bundle import Bundle, EvalSet
from .color_search import (
    CATEGORY_STRENGTH,
    COLOR_SHORTLIST,
    COLOR_STRENGTH,
    ColorFamilies,
    ColorFamilyError,
    color_scores,
    drawn_color,
)
from .evaluate import encode_eval_set
from .metrics import RetrievalMetrics, Scorer, scored_metrics
from .rasterize import INK_MAX_CHANNEL, PenStroke, Stroke, rasterize_strokes, shape_strokes

#: Seed of the colour jitter and of the fill/scribble choice.
COLOR_EVAL_SEED = 4242


def jitter_color(rgb: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    """A shopper's version of ``rgb`` (0-255): hue ±0.03 turns, saturation ×0.8-1.2, lightness ×0.85-1.15."""
    h, light, s = colorsys.rgb_to_hls(*(v / 255.0 for v in rgb))
    h = (h + rng.uniform(-0.03, 0.03)) % 1.0
    s = float(np.clip(s * rng.uniform(0.8, 1.2), 0.0, 1.0))
    light = float(np.clip(light * rng.uniform(0.85, 1.15), 0.0, 1.0))
    r, g, b = colorsys.hls_to_rgb(h, light, s)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def colorize(strokes: list[Stroke], rgb: tuple[int, int, int], rng: np.random.Generator, *, fill: bool) -> list:
    """``strokes`` (black (m, 2) arrays) plus colour: a fill of the longest stroke's polygon
    (``fill``), or a zig-zag scribble across the middle 60% of the drawing's bounding box."""
    longest = max(strokes, key=len)
    if fill:
        return [*strokes, PenStroke(np.asarray(longest, dtype=np.float64), color=rgb, fill=True)]
    pts = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2, (hi - lo) * 0.3
    turns = int(rng.integers(4, 9))
    ys = np.linspace(-1.0, 1.0, turns)
    xs = np.where(np.arange(turns) % 2 == 0, -1.0, 1.0) + rng.normal(0.0, 0.1, turns)
    zigzag = centre + np.stack([xs, ys], axis=1) * half
    width = float(rng.uniform(6.0, 14.0))
    return [*strokes, PenStroke(zigzag, color=rgb, width=width)]


@dataclass(frozen=True)
class ColorEvalReport:
    """Attributes: queries, gallery (counts); per precision: ``color``, ``category`` and
    ``black_ink`` metrics and ``order_check`` (share of queries in [0, 1])."""

    queries: int
    gallery: int
    color: dict[str, RetrievalMetrics]
    category: dict[str, RetrievalMetrics]
    black_ink: dict[str, RetrievalMetrics]
    order_check: dict[str, float]

    def to_json(self) -> dict[str, object]:
        """``{"queries", "gallery", "<precision>": {"color": {...}, "category": {...}, "black_ink": {...}, "order_check"}}``."""
        out: dict[str, object] = {"task": "color", "queries": self.queries, "gallery": self.gallery}
        for p in self.color:
            out[p] = {
                "color": self.color[p].to_json(),
                "category": self.category[p].to_json(),
                "black_ink": self.black_ink[p].to_json(),
                "order_check": round(self.order_check[p], 4),
            }
        return out


def color_queries(bundle: Bundle, families: ColorFamilies) -> tuple[np.ndarray, list[list]]:
    """The colour queries: (Q,) int64 products and their stroke lists (see :func:`colorize`).
    Products whose colour is no family are left out."""
    rng = np.random.default_rng(COLOR_EVAL_SEED)
    item_families = families.of_items([item.color for item in bundle.items])
    items, queries = [], []
    for i, (item, strokes) in enumerate(bundle.eval_strokes()):
        family = int(item_families[item])
        if family < 0 or not strokes:
            continue
        r, g, b = (int(v) for v in families.rgb[family])
        rgb = jitter_color((r, g, b), rng)
        items.append(item)
        # a near-black scribble is ink, not colour: a shopper asks for black with a fill
        queries.append(colorize(strokes, rgb, rng, fill=i % 2 == 0 or max(rgb) <= INK_MAX_CHANNEL))
    return np.asarray(items, dtype=np.int64), queries


def evaluate_color(
    bundle: Bundle, precisions: tuple[str, ...] = ("float", "int8"), num_threads: int = 1
) -> ColorEvalReport:
    """Score the colour queries at each precision (see the module docstring).

    Raises:
        ValueError: the bundle has no colour families or no held-out strokes.
    """
    if bundle.manifest.get("colors") is None:
        raise ValueError(f"bundle {bundle.path} has no colour families (manifest 'colors'); rebuild it")
    try:
        families = ColorFamilies.from_mapping(bundle.manifest["colors"])
    except ColorFamilyError as exc:
        raise ValueError(f"bundle {bundle.path}: {exc}") from None
    items, queries = color_queries(bundle, families)
    if not len(items):
        raise ValueError(f"bundle {bundle.path} has no held-out strokes of products with a colour family")
    base = bundle.eval_set()
    raster = bundle.raster_options
    eval_set = EvalSet(
        sketches=np.stack([rasterize_strokes(shape_strokes(q), raster) for q in queries]),
        query_items=items.astype(np.int32),
        gallery_items=base.gallery_items,
        gallery_float=base.gallery_float,
    )
    item_families = families.of_items([item.color for item in bundle.items])
    drawn = [drawn_color(q, families) for q in queries]
    gallery = base.gallery_items.astype(np.int64)
    cats, fams = bundle.item_categories.astype(np.int64), item_families
    n_fam = len(families.names) + 1
    q_color = cats[items] * n_fam + fams[items] + 1
    g_color = cats[gallery] * n_fam + fams[gallery] + 1
    report: dict[str, dict] = {"color": {}, "category": {}, "black_ink": {}, "order": {}}
    for precision in precisions:
        inputs = encode_eval_set(bundle, precision, num_threads, eval_set)
        shape = inputs.scorer()

        def colour_scorer(a: int, b: int, shape: Scorer = shape) -> np.ndarray:
            return colour_stage(shape(a, b), drawn[a:b], fams[gallery], cats[gallery])

        report["color"][precision] = scored_metrics(colour_scorer, len(items), q_color, g_color, inputs.targets)
        report["category"][precision] = scored_metrics(
            colour_scorer, len(items), inputs.query_labels, inputs.gallery_labels, inputs.targets
        )
        report["black_ink"][precision] = scored_metrics(
            shape, len(items), inputs.query_labels, inputs.gallery_labels, inputs.targets
        )
        report["order"][precision] = order_check(
            colour_scorer, len(items), cats[items], fams[items], cats[gallery], fams[gallery]
        )
    return ColorEvalReport(
        len(items), len(gallery), report["color"], report["category"], report["black_ink"], report["order"]
    )


def colour_stage(
    shape: np.ndarray,
    drawn: list,
    gallery_families: np.ndarray,
    gallery_categories: np.ndarray,
    *,
    shortlist: int = COLOR_SHORTLIST,
    strength: float = COLOR_STRENGTH,
    category_strength: float = CATEGORY_STRENGTH,
) -> np.ndarray:
    """(n, M) shape scores → (n, M) float64 scores ranking each row's colour-ranked shortlist (its
    ``shortlist`` best by shape, scored by :func:`~vitrina.runtime.color_search.color_scores`
    with ``strength`` and ``category_strength``) first, the rest after it by shape, as
    ``ProductSearch`` does with the defaults. ``drawn``: each row's colour (None: shape order)."""
    out = np.empty(shape.shape, dtype=np.float64)
    for q in range(len(out)):
        order = np.argsort(-shape[q], kind="stable")
        if drawn[q] is None:
            out[q, order] = -np.arange(len(order), dtype=np.float64)
            continue
        head, tail = order[:shortlist], order[shortlist:]
        out[q, head] = color_scores(
            gallery_families[head],
            gallery_categories[head],
            drawn[q],
            strength=strength,
            category_strength=category_strength,
        )
        out[q, tail] = -1e6 - np.arange(len(tail), dtype=np.float64)  # below the shortlist, shape order kept
    return out


def order_check(
    scorer: Scorer, n: int, q_cat: np.ndarray, q_fam: np.ndarray, g_cat: np.ndarray, g_fam: np.ndarray
) -> float:
    """Share of queries whose same-category same-colour products have a better (smaller) mean
    rank than their same-category other-colour products (queries lacking either are left out)."""
    passed = counted = 0
    for start in range(0, n, 64):
        scores = scorer(start, min(n, start + 64))
        ranks = np.argsort(np.argsort(-scores, axis=1, kind="stable"), axis=1)
        for r, q in enumerate(range(start, min(n, start + 64))):
            same_cat = g_cat == q_cat[q]
            same = same_cat & (g_fam == q_fam[q])
            other = same_cat & (g_fam != q_fam[q])
            if same.any() and other.any():
                counted += 1
                passed += int(ranks[r, same].mean() < ranks[r, other].mean())
    return passed / counted if counted else float("nan")
