"""Colour strokes: the strokes JSON's object form, colour rasters and fills, and black-only parity."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from vitrina.runtime.rasterize import (
    PenStroke,
    RasterOptions,
    SketchInputError,
    as_strokes,
    has_color,
    load_strokes_json,
    parse_color,
    rasterize_color,
    rasterize_strokes,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "sketches"
SQUARE = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], dtype=float)
RED = (200, 30, 45)

# sha256 prefixes of today's rasters (before colour strokes existed) of the shipped asset sketches.
TODAY = {
    ("handbag.json", 48): "a0f1938f287e1a90",
    ("handbag.json", 96): "e10186458b641f5f",
    ("sneaker.json", 48): "7c30fc1f80a0ef29",
    ("tshirt.json", 96): "d3b96652a20d1943",
}


@pytest.mark.parametrize(("name", "size"), sorted(TODAY))
def test_black_only_sketch_gives_todays_raster_bit_for_bit(name, size):
    strokes = load_strokes_json(ASSETS / name)
    options = RasterOptions(size=size)
    grey = rasterize_strokes(strokes, options)
    assert hashlib.sha256(grey.tobytes()).hexdigest()[:16] == TODAY[(name, size)]
    # the same drawing as black pen objects, and in the colour raster, is the same pixels
    pens = [PenStroke(np.asarray(s)) for s in strokes]
    np.testing.assert_array_equal(rasterize_strokes(pens, options), grey)
    colour = rasterize_color(strokes, options)
    assert colour.shape == (size, size, 3) and colour.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(colour[..., channel], grey)
    assert not has_color(strokes) and not has_color(pens)


def test_colour_line_is_drawn_in_its_colour_and_as_ink_in_grey():
    pen = [PenStroke(SQUARE, color=RED)]
    colour = rasterize_color(pen, RasterOptions(size=48))
    grey = rasterize_strokes(pen, RasterOptions(size=48))
    ink = grey < 64
    assert ink.sum() > 50
    assert np.abs(colour[ink].astype(int) - RED).max() <= 40  # line pixels carry the pen's colour
    np.testing.assert_array_equal(grey, rasterize_strokes([SQUARE], RasterOptions(size=48)))  # shape as black ink
    assert has_color(pen)


def test_fill_paints_the_polygon_and_lines_stay_on_top():
    outline = [SQUARE, PenStroke(SQUARE[:4], color=RED, fill=True)]
    colour = rasterize_color(outline, RasterOptions(size=48))
    centre = colour[20:28, 20:28].reshape(-1, 3)
    assert (centre == RED).all()  # the inside is the fill colour
    border = rasterize_strokes([SQUARE], RasterOptions(size=48)) == 0
    assert (colour[border] == 0).all()  # the black outline is drawn over the fill
    # in grey, a fill is its closed outline: nothing inside
    grey = rasterize_strokes([PenStroke(SQUARE[:4], color=RED, fill=True)], RasterOptions(size=48))
    assert (grey[20:28, 20:28] == 255).all() and grey.min() == 0


def test_black_fill_counts_as_colour_but_black_line_does_not():
    assert has_color([PenStroke(SQUARE, color=(20, 20, 20), fill=True)])
    assert not has_color([PenStroke(SQUARE, color=(20, 20, 23))])


def test_pen_width_scales_the_line_within_bounds():
    def ink(width):
        return int((rasterize_strokes([PenStroke(SQUARE, width=width)], RasterOptions(size=64)) < 128).sum())

    assert ink(3.0) < ink(6.0) < ink(12.0)
    assert ink(6.0) == int((rasterize_strokes([SQUARE], RasterOptions(size=64)) < 128).sum())
    assert ink(500.0) == ink(15.0)  # clipped at PEN_SCALE_RANGE's 2.5


def test_strokes_json_with_colour_objects(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(
        json.dumps(
            {
                "strokes": [
                    SQUARE.tolist(),
                    {"points": SQUARE.tolist(), "color": "#c81e2d", "width": 6},
                    {"points": SQUARE[:4].tolist(), "color": list(RED), "fill": True},
                ],
                "canvas": [100, 100],
            }
        )
    )
    strokes = load_strokes_json(path)
    assert isinstance(strokes[0], np.ndarray)
    assert isinstance(strokes[1], PenStroke) and strokes[1].color == RED and strokes[1].width == 6.0
    assert strokes[2].fill and strokes[2].color == RED
    assert has_color(strokes)
    assert (rasterize_color(strokes, RasterOptions(size=32))[16, 16] == RED).all()


@pytest.mark.parametrize(
    ("stroke", "names"),
    [
        ({"points": [[0, 0], [1, 1]], "color": "#zzzzzz"}, ("color", "#zzzzzz", "#rrggbb")),
        ({"points": [[0, 0], [1, 1]], "color": "red"}, ("color", "red")),
        ({"points": [[0, 0], [1, 1]], "color": [300, 0, 0]}, ("color", "300", "0-255")),
        ({"points": [[0, 0], [1, 1]], "color": [1, 2]}, ("color", "[1, 2]")),
        ({"points": [[0, 0], [1, 1]], "color": [1.5, 2, 3]}, ("color",)),
        ({"points": [[0, 0], [1, 1]], "color": True}, ("color",)),
        ({"points": [[0, 0], [1, 1]], "width": -1}, ("width", "-1")),
        ({"points": [[0, 0], [1, 1]], "width": 1e9}, ("width",)),
        ({"points": [[0, 0], [1, 1]], "width": "thick"}, ("width",)),
        ({"points": [[0, 0], [1, 1]], "fill": 1}, ("fill",)),
        ({"points": [[0, 0], [1, 1]], "colour": "#ffffff"}, ("colour",)),
        ({"points": [[0, 0], ["a", 1]]}, ("points", "strokes[0]")),
        ({"color": "#ffffff"}, ("points",)),
    ],
)
def test_bad_stroke_objects_are_refused_naming_the_field(tmp_path, stroke, names):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"strokes": [stroke]}))
    with pytest.raises(SketchInputError) as info:
        load_strokes_json(path)
    for name in names:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("stroke", "name"),
    [
        ({"points": [[0, 0], [1, 1]], "color": "#12345"}, "color"),
        ({"points": [[0, 0], [1, 1]], "color": [0, 0, 256]}, "color"),
        ({"points": [[0, 0], [1, 1]], "width": float("nan")}, "width"),
        ({"points": [[0, 0], [1, 1]], "fill": "yes"}, "fill"),
        ({"points": [[0, 0], [1, 1]], "pressure": 1}, "pressure"),
        ({"points": [[0, float("inf")]]}, "finite"),
    ],
)
def test_bad_stroke_objects_in_python_lists(stroke, name):
    with pytest.raises(SketchInputError, match=name):
        as_strokes([stroke])


def test_parse_color_forms():
    assert parse_color("#C81E2D") == RED
    assert parse_color([200, 30, 45]) == RED
    with pytest.raises(SketchInputError, match="tint"):
        parse_color("#c81e2", "tint")


def test_cli_search_refuses_bad_colour_with_exit_2(tmp_path, capsys, tiny_bundle):
    from vitrina.runtime.cli import main

    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"strokes": [{"points": [[0, 0], [5, 5]], "color": "#nothex"}]}))
    assert main(["search", "--bundle", str(tiny_bundle), "--strokes", str(path)]) == 2
    err = capsys.readouterr().err
    assert "color" in err
