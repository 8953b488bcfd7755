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
from vitrina.runtime.color_search import COLOR_STRENGTH, ColorFamilies, drawn_color
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
        ranked = evaluate_color.colour_stage(
            shape_scores[shape_only],
            drawn,
            fams[gallery],
            cats[gallery],
            shortlist=shortlist,
            strength=strength,
            category_strength=category_strength,
        )

        def scorer(a: int, b: int, r: np.ndarray = ranked) -> np.ndarray:
            return r[a:b]

        colour = scored_metrics(scorer, len(items), q_color, g_color, targets)
        category = scored_metrics(scorer, len(items), cats[items], cats[gallery], targets)
        order = evaluate_color.order_check(scorer, len(items), cats[items], fams[items], cats[gallery], fams[gallery])
        print(  # noqa: T201
            f"{str(shape_only):>13}  {shortlist:>9}  {strength:6.2f}  {category_strength:8.1f} | "
            f"{colour.p_at_10:11.3f}  {colour.map:10.3f}  {category.map:8.3f}  "
            f"{order:.3f}"
        )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else evaluate_color.COLOR_EVAL_SEED)
