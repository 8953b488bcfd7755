"""Property tests (hypothesis) of the sketch input path: whatever comes in, the
strokes parser, the rasteriser and the sketch-image reader give a (size, size)
uint8 image or one of our own errors (``SketchInputError`` and its subclasses),
never another exception. 200 examples per property (the CI profile, conftest.py)."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from vitrina.runtime.rasterize import (
    MAX_COORDINATE,
    MAX_STROKE_POINTS,
    EmptySketchError,
    RasterOptions,
    SketchInputError,
    as_strokes,
    load_sketch_image,
    load_strokes_json,
    rasterize_strokes,
    sketch_from_image,
)

SIZE = 16  # small rasters keep every property fast
OPTIONS = RasterOptions(size=SIZE)


def is_raster(out: np.ndarray, size: int = SIZE) -> bool:
    return isinstance(out, np.ndarray) and out.shape == (size, size) and out.dtype == np.uint8


# --- values -------------------------------------------------------------------------------------

numbers = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400),
    st.integers(min_value=-2000, max_value=2000),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-MAX_COORDINATE, max_value=MAX_COORDINATE),
    st.sampled_from([1e308, -1e308, 5e-324, MAX_COORDINATE, -MAX_COORDINATE, math.nextafter(MAX_COORDINATE, math.inf)]),
)
json_like = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=4),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=40,
)
pairs = st.lists(st.one_of(st.tuples(numbers, numbers).map(list), json_like), max_size=6)
stroke_lists = st.lists(st.one_of(pairs, json_like), max_size=5)


# (100,000-deep nesting is tests/test_input_budgets.py's: hypothesis cannot print such an example)
@given(st.one_of(stroke_lists, json_like))
@example([[[10**400, 0]]])
@example([[[1e308, 1e308], [-1e308, -1e308]]])
@example([[["1", "2"]]])
@example([[[True, False]]])
@example([[]] * (MAX_STROKE_POINTS + 1))
def test_as_strokes_gives_bounded_points_or_our_error(raw):
    try:
        strokes = as_strokes(raw)
    except SketchInputError:
        return
    assert strokes and sum(len(s) for s in strokes) <= MAX_STROKE_POINTS
    for s in strokes:
        assert s.dtype == np.float64 and s.ndim == 2 and s.shape[1] == 2
        assert np.isfinite(s).all() and np.abs(s).max() <= MAX_COORDINATE


# --- strokes files --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


@given(data=st.binary(max_size=300))
@example(data=b"[" * 100_000)
@example(data=b'{"strokes": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
@example(data=b'{"strokes": [[[' + b"9" * 400 + b", 0]]]}")
@example(data=b'{"strokes": [[[NaN, 0]]]}')
@example(data=b'{"strokes": [[[0, 0]]], "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
@example(data=b"\xef\xbb\xbf{}")
def test_load_strokes_json_on_any_bytes(scratch, data):
    path = scratch / "bytes.json"
    path.write_bytes(data)
    try:
        strokes = load_strokes_json(path)
    except SketchInputError as exc:
        assert str(path) in str(exc)
        return
    assert all(np.isfinite(s).all() and s.shape[1] == 2 for s in strokes)


@given(
    doc=st.one_of(
        st.fixed_dictionaries({"strokes": stroke_lists}), st.fixed_dictionaries({"strokes": json_like}), json_like
    )
)
def test_load_strokes_json_on_any_json_document(scratch, doc):
    path = scratch / "doc.json"
    path.write_text(json.dumps(doc))  # NaN and Infinity are written as such: not valid JSON
    try:
        strokes = load_strokes_json(path)
    except SketchInputError as exc:
        assert str(path) in str(exc)
        return
    out = rasterize_strokes(strokes, OPTIONS)
    assert is_raster(out) and out.min() < 255


# --- the rasteriser -------------------------------------------------------------------------------

point_arrays = hnp.arrays(
    dtype=st.sampled_from([np.float64, np.float32, np.float16, np.int64, np.int32, np.uint8]),
    shape=st.tuples(st.integers(0, 12), st.just(2)),
    elements=None,  # the dtype's whole range: nan, inf, extremes, subnormals
)
extreme = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, 5e-324, 1e-300, 1e300, 1e308])


@st.composite
def repeated_points(draw) -> np.ndarray:
    """One point (x, y) repeated 1-5 times: a dot."""
    x, y = draw(extreme), draw(extreme)
    return np.full((draw(st.integers(1, 5)), 2), (x, y))


@given(
    strokes=st.lists(st.one_of(point_arrays, repeated_points()), max_size=4),
    size=st.integers(8, 24),
)
@example(strokes=[np.array([[1e308, 1e308], [-1e308, -1e308]])], size=16)
@example(strokes=[np.array([[0.0, 0.0], [5e-324, 0.0]])], size=16)
@example(strokes=[np.array([[np.nan, 0.0]])], size=16)
def test_rasterize_gives_an_image_or_our_error(strokes, size):
    try:
        out = rasterize_strokes(strokes, RasterOptions(size=size))
    except SketchInputError:
        return
    assert is_raster(out, size) and out.min() < 255


@given(
    strokes=st.lists(
        st.lists(
            st.tuples(st.floats(-MAX_COORDINATE, MAX_COORDINATE), st.floats(-MAX_COORDINATE, MAX_COORDINATE)),
            min_size=1,
            max_size=8,
        ),
        min_size=1,
        max_size=4,
    )
)
@example(strokes=[[(0.0, 0.0), (5e-324, 0.0)]])
@example(strokes=[[(MAX_COORDINATE, -MAX_COORDINATE), (-MAX_COORDINATE, MAX_COORDINATE)]])
def test_points_within_the_budget_always_draw_ink(strokes):
    out = rasterize_strokes([np.array(s) for s in strokes], OPTIONS)
    assert is_raster(out) and out.min() < 255


# --- sketch images --------------------------------------------------------------------------------

MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "I", "I;16", "I;16B", "F", "CMYK", "YCbCr", "HSV", "LAB", "La"]


@st.composite
def images(draw) -> Image.Image:
    """A small image of a random mode: random pixels, or one uniform colour."""
    mode = draw(st.sampled_from(MODES))
    size = (draw(st.integers(0, 24)), draw(st.integers(0, 24)))
    n_bytes = len(Image.new(mode, size).tobytes())
    if draw(st.booleans()):  # uniform: one random pixel's value everywhere
        one = Image.frombytes(
            mode,
            (1, 1),
            draw(
                st.binary(
                    min_size=len(Image.new(mode, (1, 1)).tobytes()), max_size=len(Image.new(mode, (1, 1)).tobytes())
                )
            ),
        )
        image = Image.new(mode, size, one.getpixel((0, 0)))
    else:
        image = Image.frombytes(mode, size, draw(st.binary(min_size=n_bytes, max_size=n_bytes)))
    if mode == "P" and draw(st.booleans()):
        image.info["transparency"] = draw(st.integers(0, 255))
    return image


@given(image=images())
def test_sketch_from_image_gives_an_image_or_our_error(image):
    try:
        out = sketch_from_image(image, OPTIONS)
    except SketchInputError:
        return
    assert is_raster(out) and out.min() < 255


@given(image=images(), fmt=st.sampled_from(["PNG", "TIFF", "BMP", "GIF", "JPEG", "WEBP"]))
def test_load_sketch_image_on_saved_images(scratch, image, fmt):
    buffer = io.BytesIO()
    try:
        image.save(buffer, fmt)
    except Exception:  # PIL cannot write this mode or size in this format (the writer's limit, not ours)
        return
    path = scratch / f"image.{fmt.lower()}"
    path.write_bytes(buffer.getvalue())
    try:
        out = load_sketch_image(path, OPTIONS)
    except SketchInputError as exc:
        assert str(path) in str(exc)
        return
    assert is_raster(out) and out.min() < 255


HEADERS = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*", b"RIFF", b"P5\n"]


@given(head=st.sampled_from(HEADERS), data=st.binary(max_size=400))
def test_load_sketch_image_on_any_bytes(scratch, head, data):
    path = scratch / "bytes.img"
    path.write_bytes(head + data)
    try:
        out = load_sketch_image(path, OPTIONS)
    except SketchInputError as exc:
        assert str(path) in str(exc)
        return
    assert is_raster(out)


def test_empty_sketch_is_one_of_ours():
    assert issubclass(EmptySketchError, SketchInputError) and issubclass(SketchInputError, ValueError)
