"""The zoo of synthetic drawing styles: every style draws something, held-out styles stay out of training."""

import numpy as np
import pytest

from vitrina.export.data.demo_catalog import PALETTE, tint
from vitrina.export.data.fashion_mnist import load_split
from vitrina.export.data.sketch_styles import (
    HELD_OUT_STYLES,
    STYLES,
    TRAIN_STYLES,
    check_styles,
    draw_style,
    render_style,
)
from vitrina.export.data.sketch_synthesis import render_sketches
from vitrina.runtime.rasterize import PenStroke, RasterOptions, has_color


@pytest.fixture(scope="module")
def photos():
    data = load_split("test")
    return [tint(data.images[i], PALETTE[i % len(PALETTE)].rgb) for i in range(12)]


@pytest.mark.parametrize("name", list(STYLES))
def test_each_style_produces_a_non_empty_sketch(name, photos):
    rng = np.random.default_rng(5)
    for photo in photos:
        drawing = draw_style(name, photo, rng)
        assert drawing.strokes and sum(len(np.asarray(getattr(s, "points", s))) for s in drawing.strokes) >= 3
        pixels = render_style(name, photo, rng, RasterOptions(size=48))
        assert pixels.shape == (48, 48) and pixels.dtype == np.uint8
        assert (pixels < 128).sum() >= 20  # ink
        assert (pixels > 200).sum() >= 48 * 48 // 4  # and paper


def test_styles_differ_from_each_other(photos):
    renders = {n: render_style(n, photos[0], np.random.default_rng(1), RasterOptions(size=48)) for n in STYLES}
    distinct = {r.tobytes() for r in renders.values()}
    assert len(distinct) == len(STYLES)


def test_colour_styles_draw_the_products_colour(photos):
    red = next(i for i, p in enumerate(PALETTE) if p.english == "red")
    drawing = draw_style("color_fill", photos[red], np.random.default_rng(2))
    assert has_color(drawing.strokes)
    pen = next(s for s in drawing.strokes if isinstance(s, PenStroke))
    assert pen.fill and pen.color[0] > pen.color[1] + 40  # reddish, jittered


def test_held_out_styles_are_never_trained_on():
    assert len(HELD_OUT_STYLES) >= 2
    assert not set(HELD_OUT_STYLES) & set(TRAIN_STYLES)
    assert set(HELD_OUT_STYLES) | set(TRAIN_STYLES) == set(STYLES)
    with pytest.raises(ValueError, match="unknown sketch style"):
        check_styles(("silhouette", "cubist"))


def test_render_sketches_with_styles_is_deterministic(photos):
    images = np.stack(photos[:6])
    a = render_sketches(images, 2, RasterOptions(size=32), seed=3, styles=TRAIN_STYLES, workers=1, progress=False)
    b = render_sketches(images, 2, RasterOptions(size=32), seed=3, styles=TRAIN_STYLES, workers=1, progress=False)
    plain = render_sketches(images, 2, RasterOptions(size=32), seed=3, workers=1, progress=False)
    assert a.shape == (6, 2, 32, 32)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, plain)


def test_eval_json_reports_every_style_in_and_out_of_training(tiny_bundle, capsys):
    import json

    from vitrina.runtime.cli import main

    assert main(["eval", "--bundle", str(tiny_bundle), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    styles = report["styles"]
    assert set(styles["per_style"]) == set(STYLES)
    assert styles["per_style"]["silhouette"]["group"] == "trained"  # the tiny profile trains the original style
    for name in HELD_OUT_STYLES:
        assert styles["per_style"][name]["group"] == "held_out"
    for precision in ("float", "int8"):
        summary = styles["summary"][precision]
        assert 0 < summary["held_out_map"] <= 1 and 0 < summary["trained_map"] <= 1
        assert summary["held_out_gap"] == pytest.approx(summary["trained_map"] - summary["held_out_map"], abs=2e-4)
        for figures in styles["per_style"].values():
            assert 0 <= figures[precision]["map"] <= 1
    # the main figures are unchanged by the extension
    assert set(report) >= {"queries", "gallery", "float", "int8", "styles"}


def test_train_styles_parse_the_zoo_and_named_lists() -> None:
    from vitrina.export.data.sketch_styles import HELD_OUT_STYLES, ZOO_MIX, parse_styles

    zoo = parse_styles("zoo")
    assert zoo == ZOO_MIX and not set(zoo) & set(HELD_OUT_STYLES)
    assert zoo.count("silhouette") / len(zoo) > 0.25
    assert parse_styles("silhouette, doodle,doodle") == ("silhouette", "doodle", "doodle")
    with pytest.raises(ValueError, match="no_such_style"):
        parse_styles("silhouette,no_such_style")
