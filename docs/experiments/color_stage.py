"""The colour stage's design on a bundle's colour eval (README "Colour sketches").

    python docs/experiments/color_stage.py BUNDLE [SEED]

Ranks the ``vitrina eval --task color`` queries (int8 shape stage, as shipped) with
each variant: the shape raster of every stroke or of the shape strokes only, the
shortlist, the colour strength and the category vote's strength. ``SEED`` replaces
the eval's colour-jitter seed (4242), to see how much the figures move with it.
"""

import sys

import numpy as np

from vitrina.runtime import evaluate_color
from vitrina.runtime.bundle import Bundle, EvalSet
from vitrina.runtime.color_search import COLOR_STRENGTH, ColorFamilies, color_scores, drawn_color
from vitrina.runtime.evaluate import encode_eval_set
from vitrina.runtime.metrics import scored_metrics
from vitrina.runtime.rasterize import rasterize_strokes, shape_strokes

#: (shape strokes only, shortlist, colour strength, category strength)
VARIANTS = [
    (False, 1000, COLOR_STRENGTH, 0.0),  # the stage before: every stroke drawn as ink, no vote
    (True, 1000, COLOR_STRENGTH, 0.0),
    (True, 1000, COLOR_STRENGTH, 5.0),
    (True, 2000, COLOR_STRENGTH, 5.0),
    (True, 4000, COLOR_STRENGTH, 3.0),
    (True, 4000, COLOR_STRENGTH, 5.0),
    (True, 4000, COLOR_STRENGTH, 10.0),  # shipped
    (True, 4000, float(np.log(100.0)), 10.0),
    (True, 4000, float(np.log(1000.0)), 10.0),
    (True, 10000, COLOR_STRENGTH, 10.0),
]


def main(path: str, seed: int) -> None:
    """Print one row of figures per variant."""
    bundle = Bundle.open(path)
    evaluate_color.COLOR_EVAL_SEED = seed
    families = ColorFamilies.from_mapping(bundle.manifest["colors"])
    items, queries = evaluate_color.color_queries(bundle, families)
    base = bundle.eval_set()
    gallery = base.gallery_items.astype(np.int64)
    fams = families.of_items([item.color for item in bundle.items])
    cats = bundle.item_categories.astype(np.int64)
    drawn = [drawn_color(q, families) for q in queries]
    n_fam = len(families.names) + 1
    q_color, g_color = cats[items] * n_fam + fams[items] + 1, cats[gallery] * n_fam + fams[gallery] + 1
    shape_scores, targets = {}, None
    for shape_only in (False, True):
        sketches = [rasterize_strokes(shape_strokes(q) if shape_only else q, bundle.raster_options) for q in queries]
        eval_set = EvalSet(np.stack(sketches), items.astype(np.int32), base.gallery_items, base.gallery_float)
        inputs = encode_eval_set(bundle, "int8", 1, eval_set)
        shape_scores[shape_only], targets = inputs.scorer()(0, len(items)), inputs.targets
    print(f"{len(items)} queries, seed {seed}")  # noqa: T201
    print("shape strokes  shortlist  colour  category | colour P@10  colour mAP  cat. mAP  order")  # noqa: T201
    for shape_only, shortlist, strength, category_strength in VARIANTS:
        ranked = colour_stage(
            shape_scores[shape_only], drawn, fams[gallery], cats[gallery], shortlist, (strength, category_strength)
        )
        colour = scored_metrics(lambda a, b, r=ranked: r[a:b], len(items), q_color, g_color, targets)
        category = scored_metrics(lambda a, b, r=ranked: r[a:b], len(items), cats[items], cats[gallery], targets)
        print(  # noqa: T201
            f"{str(shape_only):>13}  {shortlist:>9}  {strength:6.2f}  {category_strength:8.1f} | "
            f"{colour.p_at_10:11.3f}  {colour.map:10.3f}  {category.map:8.3f}  "
            f"{order_check(ranked, items, cats, fams, gallery):.3f}"
        )


def colour_stage(
    shape: np.ndarray,
    drawn: list,
    families: np.ndarray,
    categories: np.ndarray,
    shortlist: int,
    strengths: tuple[float, float],
) -> np.ndarray:
    """(Q, M) shape scores → (Q, M) scores: each row's ``shortlist`` best by colour and
    category vote (``strengths``: colour, category), the rest after them in shape order."""
    ranked = np.empty(shape.shape)
    for q in range(len(shape)):
        order = np.argsort(-shape[q], kind="stable")
        head, tail = order[:shortlist], order[shortlist:]
        ranked[q, head] = color_scores(
            families[head], categories[head], drawn[q], strength=strengths[0], category_strength=strengths[1]
        )
        ranked[q, tail] = -1e6 - np.arange(len(tail))
    return ranked


def order_check(
    ranked: np.ndarray, items: np.ndarray, cats: np.ndarray, fams: np.ndarray, gallery: np.ndarray
) -> float:
    """Share of queries whose same-category same-colour products have a better mean rank
    than their same-category other-colour ones (as ``vitrina eval --task color``)."""
    ranks = np.argsort(np.argsort(-ranked, axis=1, kind="stable"), axis=1)
    passed = counted = 0
    for q, item in enumerate(items):
        same_cat = cats[gallery] == cats[item]
        same, other = same_cat & (fams[gallery] == fams[item]), same_cat & (fams[gallery] != fams[item])
        if same.any() and other.any():
            counted += 1
            passed += int(ranks[q, same].mean() < ranks[q, other].mean())
    return passed / counted


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else evaluate_color.COLOR_EVAL_SEED)
