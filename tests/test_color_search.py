"""Colour sketches on the device: colour families, the drawn colour, the colour stage, end to end."""

import json

import numpy as np
import pytest

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.color_search import (
    ColorFamilies,
    ColorFamilyError,
    category_votes,
    color_scores,
    drawn_color,
    srgb_to_lab,
)
from vitrina.runtime.product_search import ProductSearch
from vitrina.runtime.rasterize import (
    MAX_STROKE_POINTS,
    PenStroke,
    SketchBudgetError,
    SketchInputError,
    rasterize_strokes,
    shape_strokes,
)

FAMILIES = ColorFamilies.from_mapping({"negro": [40, 40, 40], "rojo": [200, 40, 50], "celeste": [110, 170, 220]})
BOX = np.array([[0, 0], [100, 0], [100, 100], [0, 100]], dtype=float)


def test_lab_of_white_and_black():
    lab = srgb_to_lab(np.array([[255, 255, 255], [0, 0, 0]]))
    np.testing.assert_allclose(lab, [[100, 0, 0], [0, 0, 0]], atol=0.05)


@pytest.mark.parametrize("bad", [{}, {"rojo": [1, 2]}, {"rojo": [0, 0, 300]}, ["rojo"], {"rojo": "#ff0000"}])
def test_bad_colour_families_are_refused(bad):
    with pytest.raises(ColorFamilyError):
        ColorFamilies.from_mapping(bad)


def test_pixels_go_to_their_nearest_family():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(40, 30, 3)).astype(np.uint8)
    got = FAMILIES.of_pixels(pixels)
    assert got.shape == (40, 30)
    # the table works at 5 bits per channel: each pixel gets its 8-level cell centre's family
    centres = (pixels >> 3).astype(int) * 8 + 4
    want = np.array([FAMILIES.nearest(c) for c in centres.reshape(-1, 3)]).reshape(40, 30)
    assert np.array_equal(got, want)
    assert FAMILIES.of_pixels(np.array([[200, 40, 50], [40, 40, 40]], np.uint8)).tolist() == [1, 0]
    with pytest.raises(ValueError, match="uint8"):
        FAMILIES.of_pixels(np.zeros((4, 3), np.float32))


def test_drawn_colour_weighs_fill_area_over_a_thin_line():
    strokes = [BOX, PenStroke(BOX, color=(230, 60, 60), fill=True), PenStroke(BOX[:2], color=(100, 160, 230))]
    drawn = drawn_color(strokes, FAMILIES)
    assert drawn is not None and drawn.family == "rojo"
    assert drawn.weights[1] > 0.8 and drawn.weights[2] > 0 and drawn.weights.sum() == pytest.approx(1.0)
    assert drawn_color([BOX, PenStroke(BOX, color=(20, 20, 20))], FAMILIES) is None  # black ink only
    black_fill = drawn_color([PenStroke(BOX, color=(20, 20, 20), fill=True)], FAMILIES)
    assert black_fill is not None and black_fill.family == "negro"


def test_colour_stage_puts_the_drawn_colour_first_in_shape_order():
    drawn = drawn_color([PenStroke(BOX, color=(200, 40, 50), fill=True)], FAMILIES)
    families = np.array([0, 2, 1, 1, -1, 0])  # shape ranks 0..5; ranks 2 and 3 are red
    one_category = np.zeros(6, dtype=int)
    order = np.argsort(-color_scores(families, one_category, drawn), kind="stable")
    assert list(order) == [2, 3, 0, 1, 4, 5]
    # a weak colour weight only reorders near ties: rank 0 stays ahead of a red product at rank 3
    weak = np.argsort(-color_scores(families, one_category, drawn, strength=0.5), kind="stable")
    assert list(weak[:3]) == [0, 2, 1]
    # far down the shape ranking, colour no longer wins
    far = color_scores(np.r_[0, np.full(5000, 2), 1], np.zeros(5002, dtype=int), drawn)
    assert far[0] > far[-1]
    with pytest.raises(ValueError, match="must match"):
        color_scores(families, one_category[:5], drawn)


def test_category_vote_weighs_the_best_shapes_most():
    votes = category_votes(np.array([2, 2, 0, -1, 1]), n=4)
    weights = 1 / np.log2(np.arange(4) + 2)
    np.testing.assert_allclose(votes, [weights[2], 0.0, weights[0] + weights[1]] / weights[[0, 1, 2]].sum())
    assert category_votes(np.array([-1, -1])).sum() == 0.0


def test_category_vote_keeps_the_drawn_category_ahead_of_other_red_products():
    """Red products deep in the shape ranking are mostly other categories: with the vote, the
    voted category's red products come first, then its other colours, then other red products."""
    drawn = drawn_color([PenStroke(BOX, color=(200, 40, 50), fill=True)], FAMILIES)
    categories = np.r_[np.zeros(40, dtype=int), np.ones(200, dtype=int), [0]]
    families = np.r_[np.zeros(40, dtype=int), np.ones(200, dtype=int), [1]]  # ranks 40-240 are red
    order = np.argsort(-color_scores(families, categories, drawn), kind="stable")
    assert order[0] == 240  # the drawn category in the drawn colour, although 240th by shape
    assert set(order[1:41]) == set(range(40))  # then the drawn category in other colours
    no_vote = np.argsort(-color_scores(families, categories, drawn, category_strength=0.0), kind="stable")
    assert no_vote[0] == 40  # without it, the best red shape of another category leads


def test_shape_strokes_leave_colour_scribbles_out_of_the_shape():
    scribble = PenStroke(np.array([[20, 20], [80, 30], [20, 50], [80, 70]], float), color=(200, 40, 50))
    fill = PenStroke(BOX, color=(200, 40, 50), fill=True)
    ink = PenStroke(BOX[:3], color=(10, 10, 10))
    assert shape_strokes([BOX, scribble, fill, ink]) == [BOX, fill, ink]
    assert shape_strokes([scribble]) == [scribble]  # drawn in a colour pen: its lines are the shape
    assert shape_strokes([fill, scribble]) == [fill]  # a scribble inside a fill is colour too
    # a blue outline around a small black detail is shape: it reaches past the ink
    outline = PenStroke(BOX * 3.0, color=(40, 60, 200))
    detail = np.array([[140, 140], [160, 160]], dtype=float)
    assert shape_strokes([outline, detail]) == [outline, detail]
    # a colour line that leaves the outline (a strap drawn in red) is shape
    strap = PenStroke(np.array([[50, 50], [50, 180]], float), color=(200, 40, 50))
    assert shape_strokes([BOX, strap]) == [BOX, strap]
    black = [BOX, BOX[:2] + 5.0]
    assert shape_strokes(black) == black
    with pytest.raises(SketchInputError, match="finite"):
        shape_strokes([np.array([[0.0, np.nan], [1.0, 1.0]]), scribble])
    with pytest.raises(SketchBudgetError, match="points"):
        shape_strokes([np.zeros((MAX_STROKE_POINTS, 2)), scribble])
    # the shape raster of an outline with a scribble is the outline's own raster
    assert np.array_equal(rasterize_strokes(shape_strokes([BOX, scribble])), rasterize_strokes([BOX]))
    assert not np.array_equal(rasterize_strokes([BOX, scribble]), rasterize_strokes([BOX]))


def test_tiny_bundle_carries_its_colour_families(tiny_bundle):
    bundle = Bundle.open(tiny_bundle)
    colors = bundle.manifest["colors"]
    assert {item.color for item in bundle.items} <= set(colors)
    families = ColorFamilies.from_mapping(colors)
    red = families.rgb[families.names.index("rojo")]
    assert red[0] > red[1] + 60 and red[0] > red[2] + 60  # the red products' pixels are red


def test_colour_query_end_to_end_returns_the_drawn_colour_first(tiny_bundle):
    bundle = Bundle.open(tiny_bundle)
    families = ColorFamilies.from_mapping(bundle.manifest["colors"])
    with ProductSearch(bundle) as engine:
        for colour in ("rojo", "celeste", "verde"):
            rgb = tuple(int(v) for v in families.rgb[families.names.index(colour)])
            shares = []
            for _, strokes in bundle.eval_strokes()[:10]:
                longest = max(strokes, key=len)
                coloured = engine.by_strokes([*strokes, PenStroke(longest, color=rgb, fill=True)], k=10)
                black = engine.by_strokes(strokes, k=10)
                assert coloured.query_color == colour and black.query_color is None
                shares.append(
                    (
                        np.mean([m.color == colour for m in coloured.matches]),
                        np.mean([m.color == colour for m in black.matches]),
                    )
                )
            coloured_share, black_share = np.mean(shares, axis=0)
            assert coloured_share >= 0.6 and coloured_share > black_share + 0.3


def test_cli_colour_strokes_report_the_colour(tiny_bundle, tmp_path, capsys):
    from vitrina.runtime.cli import main

    bundle = Bundle.open(tiny_bundle)
    _, strokes = bundle.eval_strokes()[0]
    path = tmp_path / "red.json"
    objects = [s.tolist() for s in strokes] + [
        {"points": max(strokes, key=len).tolist(), "color": "#c53340", "fill": True}
    ]
    path.write_text(json.dumps({"strokes": objects}))
    assert main(["search", "--bundle", str(tiny_bundle), "--strokes", str(path), "--json", "-k", "5"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query_color"] == "rojo"
    black = tmp_path / "black.json"
    black.write_text(json.dumps({"strokes": [s.tolist() for s in strokes]}))
    assert main(["search", "--bundle", str(tiny_bundle), "--strokes", str(black), "--json", "-k", "5"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert "query_color" not in plain
    red = sum(r["color"] == "rojo" for r in out["results"])
    assert red >= 1 and red > sum(r["color"] == "rojo" for r in plain["results"])


def test_eval_task_color_reports_the_order(tiny_bundle, capsys):
    from vitrina.runtime.cli import main

    assert main(["eval", "--bundle", str(tiny_bundle), "--task", "color", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for precision in ("float", "int8"):
        figures = report[precision]
        assert figures["order_check"] >= 0.7
        # ~1.3 relevant products per query in the 160-product gallery: chance mAP is ~0.03
        assert figures["color"]["map"] > 0.3 and figures["color"]["p_at_10"] > 0.1
        assert figures["category"]["map"] >= figures["black_ink"]["map"] - 0.15
