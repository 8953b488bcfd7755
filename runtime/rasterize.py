"""Stroke rasteriser: the one function that turns drawings into encoder input.

Training (synthetic sketches), the CLI (``--strokes file.json``) and the kiosk
canvas all go through :func:`rasterize_strokes`, so train and device see the
same pixels.

Strokes are sequences of ``(x, y)`` points in screen pixels, y pointing down,
in any coordinate range. The drawing is cropped to its bounding box, scaled to
keep its aspect ratio, centred on a square and drawn black (0) on white (255)
with a line width fixed relative to the output size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .photo import has_alpha, on_white

#: Stroke points: float array of shape (m, 2) holding (x, y) pixels, y down.
Stroke = np.ndarray

_SUPERSAMPLE = 4
# Photos and scans larger than this (either side) are downscaled before ink detection.
_MAX_SKETCH_IMAGE_SIDE = 1024
# A pixel counts as ink when it is this much darker than white (0-255 scale).
_INK_THRESHOLD = 64


class EmptySketchError(ValueError):
    """The sketch has nothing drawn: no strokes, no points, or a blank image."""


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


def as_strokes(raw: object) -> list[Stroke]:
    """Validate a JSON-like stroke list ``[[[x, y], ...], ...]`` into float arrays.

    Raises:
        EmptySketchError: no stroke holds a point.
        ValueError: the structure is not a list of strokes of ``[x, y]`` pairs,
            or a coordinate is not a finite number.
    """
    if not isinstance(raw, (list, tuple)):
        raise ValueError(f"strokes must be a list of strokes, got {type(raw).__name__}")
    strokes: list[Stroke] = []
    for i, stroke in enumerate(raw):
        try:
            points = np.asarray(stroke, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"stroke {i} is not a list of [x, y] number pairs: {exc}") from None
        if points.size == 0:
            continue
        if points.ndim != 2 or points.shape[1] != 2:
            raise ValueError(f"stroke {i} must be a list of [x, y] pairs, got array of shape {points.shape}")
        if not np.all(np.isfinite(points)):
            raise ValueError(f"stroke {i} has a coordinate that is not a finite number")
        strokes.append(points)
    if not strokes:
        raise EmptySketchError("the sketch is empty: no stroke has any point")
    return strokes


def load_strokes_json(path: str | Path) -> list[Stroke]:
    """Read a strokes file: ``{"strokes": [[[x, y], ...], ...], "canvas": [w, h]}``.

    ``canvas`` is optional and only informative: the drawing is cropped to its
    bounding box anyway.

    Raises:
        ValueError: unreadable file, invalid JSON or a malformed stroke list.
        EmptySketchError: no points.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"cannot read strokes file {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"strokes file {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or "strokes" not in data:
        raise ValueError(f'strokes file {path} must be a JSON object with a "strokes" list')
    canvas = data.get("canvas")
    if canvas is not None and (
        not isinstance(canvas, list) or len(canvas) != 2 or not all(isinstance(v, (int, float)) for v in canvas)
    ):
        raise ValueError(f'strokes file {path}: "canvas" must be [width, height], got {canvas!r}')
    try:
        return as_strokes(data["strokes"])
    except EmptySketchError:
        raise EmptySketchError(f"strokes file {path} has no points: the sketch is empty") from None
    except ValueError as exc:
        raise ValueError(f"strokes file {path}: {exc}") from None


def rasterize_strokes(
    strokes: Sequence[Stroke],
    options: RasterOptions = RasterOptions(),
    width_scales: Sequence[float] | None = None,
) -> np.ndarray:
    """Draw strokes as a square black-on-white image.

    Args:
        strokes: point arrays, each of shape (m, 2), (x, y) in any pixel range.
        options: output size, line width and margin.
        width_scales: optional per-stroke multiplier of the line width (pen
            pressure); synthetic training sketches use it, the device does not.

    Returns:
        uint8 array of shape (size, size): 255 is paper, 0 is ink.

    Raises:
        EmptySketchError: no points to draw.
    """
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes]
    strokes = [s for s in strokes if len(s)]
    if not strokes:
        raise EmptySketchError("the sketch is empty: no stroke has any point")
    if width_scales is not None and len(width_scales) != len(strokes):
        raise ValueError(f"width_scales has {len(width_scales)} entries for {len(strokes)} non-empty strokes")
    points = np.concatenate(strokes)
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = float(max(hi[0] - lo[0], hi[1] - lo[1]))
    big = options.size * _SUPERSAMPLE
    usable = big * (1.0 - 2.0 * options.margin)
    scale = usable / extent if extent > 0 else 0.0
    centre_offset = (big - (hi - lo) * scale) / 2.0
    base_width = options.line_width * big
    image = Image.new("L", (big, big), 255)
    draw = ImageDraw.Draw(image)
    for i, stroke in enumerate(strokes):
        xy = (stroke - lo) * scale + centre_offset
        width = base_width * (1.0 if width_scales is None else float(width_scales[i]))
        _draw_polyline(draw, xy, max(1.0, width))
    image = image.resize((options.size, options.size), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.uint8)


def _draw_polyline(draw: ImageDraw.ImageDraw, xy: np.ndarray, width: float) -> None:
    """Draw a polyline with round joints and caps (PIL's own joints leave gaps)."""
    radius = width / 2.0
    points = [tuple(p) for p in xy.tolist()]
    if len(points) > 1:
        draw.line(points, fill=0, width=max(1, int(round(width))))
    for x, y in points:
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)


def sketch_from_image(image: Image.Image, options: RasterOptions = RasterOptions()) -> np.ndarray:
    """Turn a drawn sketch image (PNG, scan, photo of paper) into encoder input.

    Transparent pixels count as paper. Very large images are downscaled, not
    rejected. The ink is cropped to its bounding box and centred like strokes.

    Returns:
        uint8 array of shape (size, size), 255 paper, 0 ink.

    Raises:
        EmptySketchError: the image has no ink (blank or nearly uniform).
    """
    # Only transparent images go through RGB: an opaque one converts to gray directly
    # (YCbCr → L reads the Y band, which differs from the luma of its RGB).
    gray = (on_white(image) if has_alpha(image) else image).convert("L")
    if max(gray.size) > _MAX_SKETCH_IMAGE_SIDE:
        gray.thumbnail((_MAX_SKETCH_IMAGE_SIDE, _MAX_SKETCH_IMAGE_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(gray, dtype=np.uint8)
    ink = pixels < (255 - _INK_THRESHOLD)
    if not ink.any():
        raise EmptySketchError("the sketch image is blank: no dark pixels (ink) found")
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    crop = pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    usable = max(1, int(round(options.size * (1.0 - 2.0 * options.margin))))
    scale = usable / max(h, w)
    new_w, new_h = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    resized = Image.fromarray(crop).resize((new_w, new_h), Image.Resampling.BOX)
    canvas = Image.new("L", (options.size, options.size), 255)
    canvas.paste(resized, ((options.size - new_w) // 2, (options.size - new_h) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def load_sketch_image(path: str | Path, options: RasterOptions = RasterOptions()) -> np.ndarray:
    """Read a sketch image file and return encoder input, see :func:`sketch_from_image`.

    Raises:
        ValueError: the file is missing or not a decodable image.
        EmptySketchError: the image is blank.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return sketch_from_image(image, options)
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"cannot read sketch image {path}: {exc}") from None
