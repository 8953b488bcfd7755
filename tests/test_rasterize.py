import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vitrina.runtime.rasterize import (
    EmptySketchError,
    RasterOptions,
    as_strokes,
    load_sketch_image,
    load_strokes_json,
    rasterize_strokes,
    sketch_from_image,
)

SQUARE = [np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], dtype=float)]


def ink_box(image: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero((image < 128).any(axis=1))
    cols = np.flatnonzero((image < 128).any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


def test_output_is_black_on_white_square_uint8():
    image = rasterize_strokes(SQUARE, RasterOptions(size=48))
    assert image.shape == (48, 48) and image.dtype == np.uint8
    assert image[0, 0] == 255 and image.min() == 0


def test_coordinate_range_and_offset_do_not_matter():
    base = rasterize_strokes(SQUARE, RasterOptions(size=40))
    moved = rasterize_strokes([s * 137.0 + [5000.0, -300.0] for s in SQUARE], RasterOptions(size=40))
    np.testing.assert_array_equal(base, moved)


def test_aspect_ratio_kept_and_drawing_centred():
    wide = [np.array([[0, 0], [300, 0], [300, 100], [0, 100], [0, 0]], dtype=float)]
    image = rasterize_strokes(wide, RasterOptions(size=64))
    top, bottom, left, right = ink_box(image)
    width, height = right - left + 1, bottom - top + 1
    assert 2.4 < width / height < 3.6
    assert abs((top + bottom) / 2 - 31.5) <= 1.5 and abs((left + right) / 2 - 31.5) <= 1.5


def test_line_width_scales_with_output_size():
    small = (rasterize_strokes(SQUARE, RasterOptions(size=32)) < 128).mean()
    large = (rasterize_strokes(SQUARE, RasterOptions(size=128)) < 128).mean()
    assert small == pytest.approx(large, rel=0.35)


def test_single_point_draws_a_dot():
    image = rasterize_strokes([np.array([[3.0, 4.0]])], RasterOptions(size=32))
    assert image.min() < 200 and (image < 255).sum() <= 9  # a small dot in the middle
    assert image[15:17, 15:17].min() < 200


def test_width_scales_make_strokes_thicker():
    thin = (rasterize_strokes(SQUARE, RasterOptions(size=64), [0.5]) < 200).sum()
    thick = (rasterize_strokes(SQUARE, RasterOptions(size=64), [2.0]) < 200).sum()
    assert thick > 1.5 * thin


@pytest.mark.parametrize("raw", [[], [[]], [[], []]])
def test_empty_strokes_rejected(raw):
    with pytest.raises(EmptySketchError):
        as_strokes(raw)


@pytest.mark.parametrize(
    "raw, words",
    [
        ("nope", "list of strokes"),
        ([[[1, 2, 3]]], "[x, y] pairs"),
        ([[[1, "a"]]], "number pairs"),
        ([[[1, float("nan")]]], "finite"),
    ],
)
def test_malformed_strokes_name_the_problem(raw, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        as_strokes(raw)


def test_strokes_json_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"strokes": [[[0, 0], [5, 5]]], "canvas": [100, 80]}))
    strokes = load_strokes_json(path)
    assert len(strokes) == 1 and strokes[0].shape == (2, 2)


@pytest.mark.parametrize(
    "content, words",
    [
        ("{not json", "not valid JSON"),
        ('{"lines": []}', '"strokes" list'),
        ('{"strokes": [[[0,0]]], "canvas": [1]}', "canvas"),
    ],
)
def test_bad_strokes_files(tmp_path, content, words):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=words):
        load_strokes_json(path)


def test_missing_strokes_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="cannot read strokes file"):
        load_strokes_json(tmp_path / "absent.json")


def test_blank_image_is_empty_sketch():
    with pytest.raises(EmptySketchError, match="blank"):
        sketch_from_image(Image.new("RGB", (200, 100), "white"))


def test_transparent_png_counts_as_paper():
    image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(10, 50), (90, 50)], fill=(0, 0, 0, 255), width=4)
    out = sketch_from_image(image, RasterOptions(size=32))
    assert out[0, 0] == 255 and out.min() < 64


def test_huge_image_is_downscaled_not_rejected(tmp_path):
    image = Image.new("L", (6000, 4000), 255)
    ImageDraw.Draw(image).rectangle([1000, 1000, 5000, 3000], outline=0, width=40)
    path = tmp_path / "huge.png"
    image.save(path)
    out = load_sketch_image(path, RasterOptions(size=48))
    assert out.shape == (48, 48)
    top, bottom, left, right = ink_box(out)
    assert (right - left) > (bottom - top)


def test_undecodable_sketch_image(tmp_path):
    path = tmp_path / "fake.png"
    path.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot read sketch image"):
        load_sketch_image(path)


@pytest.mark.parametrize("kwargs", [{"size": 4}, {"line_width": 0.0}, {"margin": 0.5}])
def test_bad_raster_options(kwargs):
    with pytest.raises(ValueError):
        RasterOptions(**kwargs)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "PA"])
def test_sketch_and_photo_composite_on_white_the_same_way(mode):
    from vitrina.runtime.photo import on_white, prepare_photo

    rgba = Image.new("RGBA", (60, 40), (0, 0, 0, 0))
    ImageDraw.Draw(rgba).line([(5, 20), (55, 20)], fill=(0, 0, 0, 255), width=5)
    ImageDraw.Draw(rgba).line([(30, 2), (30, 38)], fill=(40, 40, 40, 128), width=5)  # half-transparent ink
    image = rgba.convert(mode)
    white = on_white(image)
    assert white.mode == "RGB" and white.size == image.size and white.getpixel((0, 0)) == (255, 255, 255)
    np.testing.assert_array_equal(
        sketch_from_image(image, RasterOptions(size=32)), sketch_from_image(white, RasterOptions(size=32))
    )
    np.testing.assert_array_equal(prepare_photo(image, 32), prepare_photo(white, 32))
