"""Stroke rasteriser: the one function that turns drawings into encoder input.

Training (synthetic sketches), the CLI (``--strokes file.json``) and the kiosk
canvas all go through :func:`rasterize_strokes`, so train and device see the
same pixels.

Strokes are sequences of ``(x, y)`` points in screen pixels, y pointing down,
in any coordinate range. The drawing is cropped to its bounding box, scaled to
keep its aspect ratio, centred on a square and drawn black (0) on white (255)
with a line width fixed relative to the output size.

A stroke may also be a :class:`PenStroke`: points with a colour, a pen width in
canvas pixels and a ``fill`` flag (the strokes JSON's object form,
``{"points": [...], "color": "#rrggbb" | [r, g, b], "width": 6, "fill": true}``).
:func:`rasterize_strokes` draws every stroke as black ink (a fill as its closed
outline), for the black-ink encoder; :func:`rasterize_color` draws the colours
and fills into an RGB raster with the same crop, aspect and line-width rules. A
sketch of black plain strokes gives both exactly today's raster.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
from PIL import Image, ImageDraw

from .photo import IMAGE_FORMATS, ImageBudgetError, has_alpha, load_image_bounded, on_white, reduce_in_strips, to_8bit

#: Stroke points: float array of shape (m, 2) holding (x, y) pixels, y down.
Stroke = np.ndarray

# Input budgets. A long kiosk drawing is ~50 strokes × 200 points = 10,000 points,
# about 200 KB of JSON; the budgets sit 10× above that, so no real drawing meets
# them, while a hostile or broken file is refused before it costs memory or time.
#: Largest strokes file, bytes (checked with stat before reading, and at most this
#: many bytes + 1 are read): 100,000 points at ~40 bytes each ("[1234.5678, 987.6543], ").
MAX_STROKES_FILE_BYTES = 4 * 1024 * 1024
#: Most points a drawing may have, all strokes together (10× a long drawing);
#: rasterising this many takes ~0.3 s.
MAX_STROKE_POINTS = 100_000
#: Largest |x| or |y| of a point, pixels: 130× an 8K screen side (7680 px), so any
#: canvas fits, and differences of coordinates never overflow float64.
MAX_COORDINATE = 1e6

_SUPERSAMPLE = 4
# Photos and scans larger than this (either side) are downscaled before ink detection;
# larger JPEGs decode at a reduced DCT scale, others are reduced by an integer factor first.
_MAX_SKETCH_IMAGE_SIDE = 1024
# A pixel counts as ink when it is this much darker than the paper (0-255 scale);
# an image whose pixels all lie within this range of each other is uniform: nothing drawn.
_INK_THRESHOLD = 64
# The paper's grey level: this percentile of the image's pixels (ink may cover up to
# 90% of the image; white paper, 255, gives the fixed threshold 255 - 64 = 191).
_PAPER_PERCENTILE = 0.90
#: Image formats a sketch file may be: those of any image input (``photo.IMAGE_FORMATS``).
SKETCH_IMAGE_FORMATS = IMAGE_FORMATS
_STROKES_SHAPE = (
    '{"strokes": [[[x, y], ...] | {"points": [[x, y], ...], "color": "#rrggbb" | [r, g, b], '
    '"width": px, "fill": true|false}, ...], "canvas": [w, h]}'
)
#: Pen width in canvas pixels drawn at exactly ``RasterOptions.line_width`` (the kiosk's
#: default brush); a stroke of width w is drawn w / 6 times as thick, within
#: :data:`PEN_SCALE_RANGE` (a huge or hair-thin pen would leave the range training saw).
REFERENCE_PEN_WIDTH = 6.0
#: Smallest and largest line-width multiplier a pen width gives.
PEN_SCALE_RANGE = (0.5, 2.5)
#: Largest pen width a stroke may ask for, canvas pixels.
MAX_PEN_WIDTH = 1000.0
#: A colour whose every channel is at most this (0-255) is black ink, not a colour.
INK_MAX_CHANNEL = 80
_HEX_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_COLOUR_SHAPE = 'a colour "#rrggbb" or [r, g, b] with integers 0-255'


class SketchInputError(ValueError):
    """A sketch (strokes or image) that cannot be searched: malformed, over a budget, or empty."""


class SketchBudgetError(SketchInputError):
    """A sketch over an input budget: :data:`MAX_STROKES_FILE_BYTES`, :data:`MAX_STROKE_POINTS`
    or :data:`MAX_COORDINATE`."""


class EmptySketchError(SketchInputError):
    """The sketch has nothing drawn: no strokes, no points, or a blank (uniform) image."""


class _PenStrokeSchema(msgspec.Struct, forbid_unknown_fields=True):
    """A stroke's object form in the strokes file (values checked by :func:`pen_stroke`)."""

    points: list[tuple[float, float]]
    color: str | list[int] | None = None
    width: float | None = None
    fill: bool = False


class _StrokesFile(msgspec.Struct):
    """The strokes file's schema; decoding stops at the first value that does not fit
    (so deep nesting is refused at depth 4, not parsed)."""

    strokes: list[list[tuple[float, float]] | _PenStrokeSchema]
    canvas: tuple[float, float] | None = None


@dataclass(frozen=True, eq=False)
class PenStroke:
    """A stroke with a pen: colour, width and fill.

    Attributes:
        points: (m, 2) float64 (x, y) pixels, y down.
        color: RGB 0-255; black ink by default.
        width: pen width in canvas pixels (see :data:`REFERENCE_PEN_WIDTH`), or None
            for the raster's own line width.
        fill: fill the closed polygon of the points (a colour area, not a line).
    """

    points: np.ndarray
    color: tuple[int, int, int] = (0, 0, 0)
    width: float | None = None
    fill: bool = False

    @property
    def is_ink(self) -> bool:
        """True for a black (or near-black, :data:`INK_MAX_CHANNEL`) line: what the black-ink encoder draws."""
        return not self.fill and max(self.color) <= INK_MAX_CHANNEL


def parse_color(value: object, where: str = "color") -> tuple[int, int, int]:
    """``"#rrggbb"`` or ``[r, g, b]`` (integers 0-255) → an RGB tuple.

    Raises:
        SketchInputError: anything else, naming ``where`` and the value.
    """
    if isinstance(value, str):
        if _HEX_COLOUR.fullmatch(value):
            return int(value[1:3], 16), int(value[3:5], 16), int(value[5:7], 16)
        raise SketchInputError(f"{where} {value[:40]!r} is not {_COLOUR_SHAPE}")
    if (
        isinstance(value, (list, tuple))
        and len(value) == 3
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)
    ):
        return int(value[0]), int(value[1]), int(value[2])
    raise SketchInputError(f"{where} {repr(value)[:60]} is not {_COLOUR_SHAPE}")


def pen_stroke(raw: object, i: int) -> PenStroke:
    """Stroke ``i`` in its object form (a mapping or the decoded schema) → a :class:`PenStroke`.

    Raises:
        SketchInputError: an unknown key, or bad points, colour, width or fill, naming the field.
        SketchBudgetError: a coordinate out of range.
    """
    if isinstance(raw, _PenStrokeSchema):
        fields: dict[str, object] = {f: getattr(raw, f) for f in raw.__struct_fields__}
    elif isinstance(raw, dict):
        fields = dict(raw)
        unknown = sorted(set(map(str, fields)) - {"points", "color", "width", "fill"})
        if unknown:
            raise SketchInputError(f"stroke {i} has unknown field(s) {unknown}; a stroke object has {_STROKES_SHAPE}")
        if "points" not in fields:
            raise SketchInputError(f'stroke {i} has no "points": a stroke object needs {{"points": [[x, y], ...]}}')
    else:
        raise SketchInputError(f"stroke {i} is not a list of points or a stroke object, got {type(raw).__name__}")
    points = _number_pairs(fields["points"], i)
    color = (0, 0, 0) if fields.get("color") is None else parse_color(fields["color"], f"stroke {i}: color")
    width = fields.get("width")
    if width is not None:
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not np.isfinite(width):
            raise SketchInputError(f"stroke {i}: width {width!r} is not a number of canvas pixels")
        if not 0 < width <= MAX_PEN_WIDTH:
            raise SketchInputError(f"stroke {i}: width {width!r} must be > 0 and <= {MAX_PEN_WIDTH:g} canvas pixels")
        width = float(width)
    fill = fields.get("fill", False)
    if not isinstance(fill, bool):
        raise SketchInputError(f"stroke {i}: fill {fill!r} must be true or false")
    return PenStroke(points.reshape(-1, 2) if points.size else np.zeros((0, 2)), color, width, fill)


def has_color(strokes: Sequence[object]) -> bool:
    """True when any stroke is a :class:`PenStroke` with a colour (not black ink) or a fill."""
    return any(isinstance(s, PenStroke) and not s.is_ink for s in strokes)


#: How far past the ink's bounding box (a fraction of its size) a colour line may reach
#: and still be a scribble inside the outline (see :func:`shape_strokes`).
SCRIBBLE_MARGIN = 0.05


def shape_strokes(strokes: Sequence[Stroke | PenStroke]) -> list[Stroke | PenStroke]:
    """The strokes that draw a drawing's shape, in order.

    Ink lines and fills (a fill's outline is the shape) always; a colour line unless it
    lies inside the bounding box of the ink lines and fills (grown by
    :data:`SCRIBBLE_MARGIN` of its size on each side): there it is a scribble of colour
    inside the outline, which drawn as ink would read as hatching to the black-ink
    encoder. A drawing done in colour pens alone, or one whose colour outline reaches
    past a small ink detail, keeps its colour lines. Black ink alone is returned whole.

    Raises:
        SketchInputError: a stroke that is not (x, y) points, or a coordinate that is not finite.
        SketchBudgetError: more than :data:`MAX_STROKE_POINTS` points, or a coordinate out of range.
    """
    is_frame = [not isinstance(s, PenStroke) or s.is_ink or s.fill for s in strokes]
    if all(is_frame) or not any(is_frame):
        return list(strokes)
    arrays = [_point_array(s.points if isinstance(s, PenStroke) else s, i) for i, s in enumerate(strokes)]
    total = sum(len(a) for a in arrays)
    if total > MAX_STROKE_POINTS:
        raise SketchBudgetError(f"the sketch has {total:,} points, over the {MAX_STROKE_POINTS:,} it may have")
    frame = [a for a, f in zip(arrays, is_frame) if f and len(a)]
    if not frame:
        return list(strokes)
    points = np.concatenate(frame)
    _check_coordinates(points, "the sketch")
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = SCRIBBLE_MARGIN * (hi - lo)
    lo, hi = lo - pad, hi + pad

    def inside(a: np.ndarray) -> bool:
        return bool(len(a)) and bool(((a >= lo) & (a <= hi)).all())

    return [s for s, a, f in zip(strokes, arrays, is_frame) if f or not inside(a)]


@dataclass(frozen=True)
class RasterOptions:
    """How strokes become pixels.

    Attributes:
        size: side of the square output image, pixels.
        line_width: stroke width as a fraction of ``size`` (1/24 gives 4 px at 96).
        margin: empty border on each side as a fraction of ``size``.
    """

    size: int = 96
    line_width: float = 1.0 / 24.0
    margin: float = 0.08

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"RasterOptions.size must be >= 8 pixels, got {self.size}")
        if not 0.0 < self.line_width < 0.5:
            raise ValueError(f"RasterOptions.line_width must be in (0, 0.5), got {self.line_width}")
        if not 0.0 <= self.margin < 0.4:
            raise ValueError(f"RasterOptions.margin must be in [0, 0.4), got {self.margin}")


def as_strokes(raw: object) -> list[Stroke | PenStroke]:
    """Validate a JSON-like stroke list ``[[[x, y], ...], ...]`` into (m, 2) float64 arrays.

    A stroke in object form (``{"points": ..., "color": ..., "width": ..., "fill": ...}``,
    see :func:`pen_stroke`) becomes a :class:`PenStroke`; plain point lists stay arrays.

    Coordinates must be numbers (not strings or booleans), finite and within
    ±:data:`MAX_COORDINATE` pixels; all strokes together may hold at most
    :data:`MAX_STROKE_POINTS` points (counted before anything is converted).

    Raises:
        EmptySketchError: no stroke holds a point.
        SketchBudgetError: too many points, or a coordinate out of range.
        SketchInputError: the structure is not a list of strokes of ``[x, y]``
            pairs, or a coordinate is not a finite number.
    """
    if not isinstance(raw, (list, tuple)):
        raise SketchInputError(f"strokes must be a list of strokes, got {type(raw).__name__}")
    if len(raw) > MAX_STROKE_POINTS:
        raise SketchBudgetError(f"{len(raw):,} strokes: more than the {MAX_STROKE_POINTS:,} points a sketch may have")
    strokes: list[Stroke | PenStroke] = []
    total = 0
    for i, stroke in enumerate(raw):
        if isinstance(stroke, (dict, _PenStrokeSchema, PenStroke)):
            pen = stroke if isinstance(stroke, PenStroke) else pen_stroke(stroke, i)
            total += len(pen.points)
            if total > MAX_STROKE_POINTS:
                raise SketchBudgetError(
                    f"strokes 0-{i} hold over {MAX_STROKE_POINTS:,} points, the most a sketch may have"
                )
            if len(pen.points):
                _check_coordinates(pen.points, f"stroke {i}")
                strokes.append(pen)
            continue
        if not isinstance(stroke, (list, tuple, np.ndarray)) or (isinstance(stroke, np.ndarray) and stroke.ndim == 0):
            raise SketchInputError(f"stroke {i} is not a list of [x, y] number pairs, got {type(stroke).__name__}")
        total += len(stroke)
        if total > MAX_STROKE_POINTS:
            raise SketchBudgetError(f"strokes 0-{i} hold over {MAX_STROKE_POINTS:,} points, the most a sketch may have")
        points = _number_pairs(stroke, i)
        if points.size == 0:
            continue
        _check_coordinates(points, f"stroke {i}")
        strokes.append(points)
    if not strokes:
        raise EmptySketchError("the sketch is empty: no stroke has any point")
    return strokes


def _number_pairs(stroke: object, i: int) -> np.ndarray:
    """Stroke ``i`` (a list of [x, y] pairs) as an (m, 2) float64 array, or (0,) when empty.

    Raises:
        SketchInputError: not pairs of numbers (strings, booleans, ragged or nested lists).
    """
    try:
        points = np.asarray(stroke)
        if points.dtype == object:  # huge ints or mixed types: numbers only, no strings
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in points.flat):
                raise TypeError("a coordinate is not a number")
            points = points.astype(np.float64)
    except OverflowError:
        raise SketchBudgetError(
            f"stroke {i} has a coordinate too large for a float, beyond the ±{MAX_COORDINATE:g} pixels a point may have"
        ) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise SketchInputError(f"stroke {i} is not a list of [x, y] number pairs: {exc}") from None
    if points.size == 0:
        return np.zeros((0,), np.float64)
    if points.dtype.kind not in "iuf":
        raise SketchInputError(f"stroke {i} is not a list of [x, y] number pairs: its values are {points.dtype}")
    if points.ndim != 2 or points.shape[1] != 2:
        raise SketchInputError(f"stroke {i} must be a list of [x, y] pairs, got array of shape {points.shape}")
    return points.astype(np.float64)


def _check_coordinates(points: np.ndarray, where: str) -> None:
    """(m, 2) float64 points must be finite and within ±:data:`MAX_COORDINATE` pixels.

    Raises:
        SketchInputError: a NaN or infinite coordinate.
        SketchBudgetError: a coordinate out of range.
    """
    if not np.isfinite(points).all():
        raise SketchInputError(f"{where} has a coordinate that is not a finite number")
    largest = float(np.abs(points).max(initial=0.0))
    if largest > MAX_COORDINATE:
        raise SketchBudgetError(
            f"{where} has a coordinate of {largest:.6g} pixels, beyond the ±{MAX_COORDINATE:g} a point may have"
        )


def load_strokes_json(path: str | Path) -> list[Stroke | PenStroke]:
    """Read a strokes file: ``{"strokes": [[[x, y], ...], ...], "canvas": [w, h]}``.

    A stroke may be an object ``{"points": [[x, y], ...], "color": "#rrggbb" | [r, g, b],
    "width": px, "fill": bool}`` (a :class:`PenStroke`); plain point lists stay (m, 2) arrays.

    ``canvas`` is optional and only informative: the drawing is cropped to its
    bounding box anyway. The file may be at most :data:`MAX_STROKES_FILE_BYTES`
    (checked before reading); the points obey :func:`as_strokes`'s budgets.

    Raises:
        SketchBudgetError: the file, the number of points or a coordinate is over budget.
        SketchInputError: unreadable file, invalid JSON or a malformed stroke list.
        EmptySketchError: no points.
    """
    path = Path(path)
    data = _read_bounded(path)
    try:
        document = msgspec.json.decode(data, type=_StrokesFile)
    except msgspec.ValidationError as exc:
        raise SketchInputError(
            f'strokes file {path} must be a JSON object with a "strokes" list, {_STROKES_SHAPE}, '
            f"numbers within ±{MAX_COORDINATE:g}: {exc}"
        ) from None
    except msgspec.DecodeError as exc:
        raise SketchInputError(f"strokes file {path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise SketchInputError(f"strokes file {path} nests JSON too deeply for {_STROKES_SHAPE}") from None
    try:
        return as_strokes(document.strokes)
    except EmptySketchError:
        raise EmptySketchError(f"strokes file {path} has no points: the sketch is empty") from None
    except SketchInputError as exc:
        raise type(exc)(f"strokes file {path}: {exc}") from None


def _read_bounded(path: Path) -> bytes:
    """The bytes of ``path``, refused from its size before reading when over :data:`MAX_STROKES_FILE_BYTES`.

    Raises:
        SketchBudgetError: the file is larger than the budget (also when it grows while read).
        SketchInputError: the file cannot be read.
    """
    too_big = f"over the {MAX_STROKES_FILE_BYTES:,} bytes a strokes file may have (a long drawing takes ~200 KB)"
    try:
        size = path.stat().st_size
        if size > MAX_STROKES_FILE_BYTES:
            raise SketchBudgetError(f"strokes file {path} is {size:,} bytes, {too_big}")
        with path.open("rb") as file:
            data = file.read(MAX_STROKES_FILE_BYTES + 1)
    except OSError as exc:
        raise SketchInputError(f"cannot read strokes file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_STROKES_FILE_BYTES:
        raise SketchBudgetError(f"strokes file {path} holds more than {MAX_STROKES_FILE_BYTES:,} bytes, {too_big}")
    return data


def rasterize_strokes(
    strokes: Sequence[Stroke | PenStroke],
    options: RasterOptions = RasterOptions(),
    width_scales: Sequence[float] | None = None,
) -> np.ndarray:
    """Draw strokes as a square black-on-white image (the black-ink encoder's input).

    The points are normalised in float64: the minimum is subtracted before the
    extent is taken, so no difference overflows. A :class:`PenStroke` is drawn
    as black ink whatever its colour, with its pen width; a fill as its closed
    outline (the shape, which is what a black-ink encoder reads).

    Args:
        strokes: point arrays, each of shape (m, 2) (or (2m,)), (x, y) pixels
            within ±:data:`MAX_COORDINATE`, at most :data:`MAX_STROKE_POINTS` in all;
            or :class:`PenStroke` objects.
        options: output size, line width and margin.
        width_scales: optional per-stroke multiplier of the line width (pen
            pressure), finite and > 0; synthetic training sketches use it, the device does not.
            Replaces the pen widths of :class:`PenStroke` objects.

    Returns:
        uint8 array of shape (size, size): 255 is paper, 0 is ink.

    Raises:
        EmptySketchError: no points to draw, or nothing drawn.
        SketchBudgetError: too many points, or a coordinate out of range.
        SketchInputError: a stroke is not (x, y) points, or a coordinate is not finite.
        ValueError: ``width_scales`` does not fit the strokes.
    """
    plan = _plan(strokes, options, width_scales)
    image = Image.new("L", (plan.big, plan.big), 255)
    draw = ImageDraw.Draw(image)
    for xy, width, pen in plan.lines:
        if pen is not None and pen.fill:
            xy = np.concatenate([xy, xy[:1]])  # the fill's outline, closed
        _draw_polyline(draw, xy, width)
    return _finish(image, options, plan.n_points)


def rasterize_color(
    strokes: Sequence[Stroke | PenStroke],
    options: RasterOptions = RasterOptions(),
    width_scales: Sequence[float] | None = None,
) -> np.ndarray:
    """Draw strokes in colour: fills first (in order), then every line in order on top.

    Same crop, aspect, margin and line-width rules as :func:`rasterize_strokes`
    (arguments and errors as there); plain point arrays are black ink. A sketch
    of black lines gives :func:`rasterize_strokes`' raster in each channel.

    Returns:
        uint8 array of shape (size, size, 3): RGB, white (255, 255, 255) paper.
    """
    plan = _plan(strokes, options, width_scales)
    image = Image.new("RGB", (plan.big, plan.big), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for xy, _, pen in plan.lines:
        if pen is not None and pen.fill and len(xy) >= 3:
            draw.polygon([tuple(p) for p in xy.tolist()], fill=pen.color)
    for xy, width, pen in plan.lines:
        if pen is None or not pen.fill or len(xy) < 3:
            _draw_polyline(draw, xy, width, (0, 0, 0) if pen is None else pen.color)
    return _finish(image, options, plan.n_points)


@dataclass(frozen=True)
class _Plan:
    """Strokes mapped onto the supersampled square: ``lines`` are (xy, width px, pen or None)."""

    big: int
    lines: list[tuple[np.ndarray, float, PenStroke | None]]
    n_points: int


def _plan(strokes: Sequence[Stroke | PenStroke], options: RasterOptions, width_scales: Sequence[float] | None) -> _Plan:
    """Validate the strokes and map them onto the ``size * 4`` supersampled square."""
    pens = [s if isinstance(s, PenStroke) else None for s in strokes]
    arrays = [_point_array(s.points if isinstance(s, PenStroke) else s, i) for i, s in enumerate(strokes)]
    kept = [i for i, s in enumerate(arrays) if len(s)]
    arrays, pens = [arrays[i] for i in kept], [pens[i] for i in kept]
    if not arrays:
        raise EmptySketchError("the sketch is empty: no stroke has any point")
    if width_scales is not None and len(width_scales) != len(arrays):
        raise ValueError(f"width_scales has {len(width_scales)} entries for {len(arrays)} non-empty strokes")
    if width_scales is not None and not all(np.isfinite(w) and w > 0 for w in width_scales):
        raise ValueError(f"width_scales must be finite and > 0, got {list(width_scales)}")
    points = np.concatenate(arrays)
    if len(points) > MAX_STROKE_POINTS:
        raise SketchBudgetError(f"the sketch has {len(points):,} points, over the {MAX_STROKE_POINTS:,} it may have")
    _check_coordinates(points, "the sketch")
    lo = points.min(axis=0)
    span = points.max(axis=0) - lo  # finite: both ends within ±MAX_COORDINATE
    extent = float(span.max())
    big = options.size * _SUPERSAMPLE
    usable = big * (1.0 - 2.0 * options.margin)
    # divide by the extent before scaling up: usable / extent overflows for a subnormal extent
    extent = extent if extent > 0 else 1.0  # one point (or all equal): a dot in the centre
    centre_offset = (big - span / extent * usable) / 2.0
    base_width = options.line_width * big
    lines = []
    for i, (stroke, pen) in enumerate(zip(arrays, pens)):
        xy = (stroke - lo) / extent * usable + centre_offset
        if width_scales is not None:
            scale = float(width_scales[i])
        elif pen is not None and pen.width is not None:
            scale = min(max(pen.width / REFERENCE_PEN_WIDTH, PEN_SCALE_RANGE[0]), PEN_SCALE_RANGE[1])
        else:
            scale = 1.0
        lines.append((xy, max(1.0, base_width * scale), pen))
    return _Plan(big, lines, len(points))


def _finish(image: Image.Image, options: RasterOptions, n_points: int) -> np.ndarray:
    """Downscale the supersampled drawing (area average) to (size, size[, 3]) uint8; refuse a blank one."""
    pixels = np.asarray(image.resize((options.size, options.size), Image.Resampling.BOX), dtype=np.uint8)
    if pixels.min() == 255:
        raise EmptySketchError(f"the sketch drew no ink: {n_points} points left a blank {options.size}-pixel image")
    return pixels


def _point_array(stroke: object, i: int) -> np.ndarray:
    """Stroke ``i`` as an (m, 2) float64 array (an (m, 2) or (2m,) array of numbers).

    Raises:
        SketchBudgetError: a coordinate too large for float64.
        SketchInputError: not numbers, or an odd number of values.
    """
    try:
        return np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
    except OverflowError:
        raise SketchBudgetError(
            f"stroke {i} has a coordinate too large for a float, beyond the ±{MAX_COORDINATE:g} pixels a point may have"
        ) from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise SketchInputError(f"stroke {i} is not an (m, 2) array of (x, y) points: {exc}") from None


def _draw_polyline(
    draw: ImageDraw.ImageDraw, xy: np.ndarray, width: float, color: int | tuple[int, int, int] = 0
) -> None:
    """Draw a polyline with round joints and caps (PIL's own joints leave gaps), in ``color``
    (0 black in an ``L`` image, or RGB 0-255)."""
    radius = width / 2.0
    points = [tuple(p) for p in xy.tolist()]
    if len(points) > 1:
        draw.line(points, fill=color, width=max(1, int(round(width))))
    for x, y in points:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=color)


def sketch_from_image(image: Image.Image, options: RasterOptions = RasterOptions()) -> np.ndarray:
    """Turn a drawn sketch image (PNG, scan, photo of paper) into encoder input.

    Any PIL mode that converts to grey: transparent pixels count as paper,
    16- and 32-bit grey is scaled to 8 bits (not clipped). Images larger than
    1024 pixels a side are downscaled. Ink is what is at least 64 grey levels
    darker than the paper (the image's 90th-percentile level, so grey paper
    works too); the paper is brought to white, and the ink is cropped to its
    bounding box and centred like strokes.

    Returns:
        uint8 array of shape (size, size), 255 paper, 0 ink.

    Raises:
        EmptySketchError: the image is uniform (blank: white, black or any one
            grey) or has no ink darker than its paper.
        SketchInputError: a PIL mode that has no grey conversion (e.g. ``"LAB"``).
    """
    pixels = _grey_pixels(image)
    if pixels.size == 0:
        raise EmptySketchError(f"the sketch image is blank: it has no pixels ({image.size[0]}×{image.size[1]})")
    lo, hi = int(pixels.min()), int(pixels.max())
    if hi - lo < _INK_THRESHOLD:
        raise EmptySketchError(
            f"the sketch image is blank: it is uniform (grey levels {lo}-{hi} of 255), "
            f"no ink {_INK_THRESHOLD} levels darker than the paper"
        )
    paper = _paper_level(pixels)
    ink = pixels < paper - _INK_THRESHOLD
    if not ink.any():
        raise EmptySketchError(
            f"the sketch image is blank: no dark pixels (ink) {_INK_THRESHOLD} levels darker than the paper "
            f"(grey level {paper}); draw dark ink on light paper"
        )
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = _paper_to_white(pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], paper)
    h, w = crop.shape
    usable = max(1, int(round(options.size * (1.0 - 2.0 * options.margin))))
    scale = usable / max(h, w)
    new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    resized = Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.BOX)
    canvas = Image.new("L", (options.size, options.size), 255)
    canvas.paste(resized, ((options.size - new_w) // 2, (options.size - new_h) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def _grey_pixels(image: Image.Image) -> np.ndarray:
    """The image as (h, w) uint8 grey on white, at most :data:`_MAX_SKETCH_IMAGE_SIDE` a side.

    A large image is converted and reduced strip by strip (``photo.reduce_in_strips``),
    so no full-size copy is made, then downscaled with area averaging.

    Raises:
        SketchInputError: the mode has no conversion to grey.
    """
    try:
        image = to_8bit(image)
        factor = max(1, max(image.size) // _MAX_SKETCH_IMAGE_SIDE)
        gray = reduce_in_strips(image, factor, _grey_on_white, "L")
    except ValueError as exc:
        raise SketchInputError(f"the sketch image's mode {image.mode} has no grey conversion: {exc}") from None
    if max(gray.size) > _MAX_SKETCH_IMAGE_SIDE:
        gray.thumbnail((_MAX_SKETCH_IMAGE_SIDE, _MAX_SKETCH_IMAGE_SIDE), Image.Resampling.BOX)
    return np.asarray(gray, dtype=np.uint8)


def _grey_on_white(image: Image.Image) -> Image.Image:
    """``image`` in mode ``"L"``, transparent pixels as white paper."""
    # Only transparent images go through RGB: an opaque one converts to gray directly
    # (YCbCr → L reads the Y band, which differs from the luma of its RGB).
    return (on_white(image) if has_alpha(image) else image).convert("L")


def _paper_level(pixels: np.ndarray) -> int:
    """The paper's grey level (0-255) of (h, w) uint8 pixels: their :data:`_PAPER_PERCENTILE` level."""
    cumulative = np.cumsum(np.bincount(pixels.ravel(), minlength=256))
    return int(np.searchsorted(cumulative, _PAPER_PERCENTILE * cumulative[-1]))


def _paper_to_white(pixels: np.ndarray, paper: int) -> np.ndarray:
    """(h, w) uint8 pixels with grey levels stretched so ``paper`` (0-255) becomes white
    (255), as the encoder saw paper in training; unchanged when the paper is already white."""
    if paper >= 255:
        return pixels
    stretched = np.minimum(pixels.astype(np.float32) * (255.0 / paper), 255.0)
    return np.round(stretched).astype(np.uint8)


def load_sketch_image(path: str | Path, options: RasterOptions = RasterOptions()) -> np.ndarray:
    """Read a sketch image file and return encoder input, see :func:`sketch_from_image`.

    The file goes through :func:`~vitrina.runtime.photo.load_image_bounded`: a
    format outside :data:`SKETCH_IMAGE_FORMATS` or an image over
    :data:`~vitrina.runtime.photo.MAX_IMAGE_PIXELS` is refused from its header
    before anything is decoded, a large JPEG decodes at a reduced scale, and
    16-bit grey is scaled to 8 bits.

    Raises:
        SketchInputError: the file is missing, not a decodable image, or over the pixel budget.
        EmptySketchError: the image is blank.
    """
    path = Path(path)
    try:
        image = load_image_bounded(path, min_side=_MAX_SKETCH_IMAGE_SIDE, formats=SKETCH_IMAGE_FORMATS)
    except ImageBudgetError as exc:
        raise SketchInputError(f"cannot read sketch image: {exc}") from None
    try:
        return sketch_from_image(image, options)
    except SketchInputError as exc:
        raise type(exc)(f"sketch image {path}: {exc}") from None
    finally:
        image.close()
