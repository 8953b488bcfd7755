"""Product photo preparation shared by training and the device.

Photos are composited on white, padded to a square with white and resized to
the photo encoder's input side, so catalog encoding at export and a shopper's
photo on the device get the same treatment. :func:`on_white` is also how the
sketch path (``rasterize.sketch_from_image``) treats transparent sketches.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

_WHITE = (255, 255, 255)

#: Largest image a query or a catalog row may be, in pixels (width × height), read
#: from the file's header before anything is decoded: 32 MP, e.g. 8000 × 4000.
#: At 4 bytes a pixel (RGBA, 32-bit grey) that is 128 MB decoded; every later
#: step (8-bit conversion, reduction, compositing) works on ~1 MP strips, so a
#: search stays under its 300 MB peak-memory budget.
MAX_IMAGE_PIXELS = 32_000_000
#: Image formats a query photo, a sketch file or a catalog image may be (Pillow
#: names). Others are refused before decoding: EPS would run Ghostscript, and
#: rarely used decoders (DDS, ...) fail on bad files with exceptions of their own.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
# Pixels per strip when a large image is converted or reduced (4 MB at 4 bytes a pixel).
_STRIP_PIXELS = 1 << 20
# Image.reduce averages pixel values: palette indices and single bits must become
# grey or colour first ("P" with a transparency entry becomes "RGBA").
_REDUCE_AS = {"1": "L", "P": "RGB", "PA": "RGBA"}
#: What Pillow's format plugins raise on malformed files besides OSError and ValueError
#: (struct.error from truncated headers, NotImplementedError from rare decoders, ...),
#: and Pillow's own DecompressionBombError: every image reader catches these.
DECODER_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    NotImplementedError,
    Image.DecompressionBombError,
)


class ImageBudgetError(ValueError):
    """An image is larger than :data:`MAX_IMAGE_PIXELS` or not decodable."""


def load_image_bounded(
    path: str | Path,
    *,
    min_side: int,
    max_pixels: int = MAX_IMAGE_PIXELS,
    formats: tuple[str, ...] | None = None,
) -> Image.Image:
    """Open an image file within the pixel budget, decoded in reduced form.

    The size is read from the header first, and an image over ``max_pixels``
    is refused before decoding. JPEGs are decoded at the smallest DCT scale
    (1/2, 1/4 or 1/8, ``Image.draft``) that keeps both sides >= ``min_side``;
    other formats are decoded, then reduced by an integer factor
    (``Image.reduce``, strip by strip, so the full-size decode is the only
    full-size copy) to the same bound. 16-bit and 32-bit grey images are
    scaled to 8 bits (mode ``"L"``), not clipped; 1-bit images become ``"L"``
    and palette images ``"RGB"`` (``"RGBA"`` when they have transparency).

    Args:
        min_side: the smallest side, in pixels, the caller will still downscale from.
        max_pixels: the pixel budget, width × height.
        formats: Pillow format names to accept (e.g. ``("PNG", "JPEG")``); None accepts
            any format Pillow opens.

    Returns:
        A loaded PIL image whose sides are >= ``min_side`` where the original's were.

    Raises:
        ImageBudgetError: missing or undecodable file, a format outside ``formats``,
            or too many pixels; the message names the file and the limit.
    """
    path = Path(path)
    try:
        with Image.open(path, formats=formats) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise ImageBudgetError(
                    f"{path} is {width}×{height} = {width * height / 1e6:.1f} MP, over the "
                    f"{max_pixels / 1e6:.0f} MP an image may have: downscale it first"
                )
            if image.format == "JPEG":
                image.draft(image.mode, (min_side, min_side))
            image.load()
            loaded = to_8bit(image)
            factor = max(1, min(loaded.size) // max(min_side, 1))
            mode = reducible_mode(loaded)
            # a new image, so closing the opened one (file and full-size decode) leaves it intact
            loaded = reduce_in_strips(loaded, factor, lambda part: part.convert(mode), mode)
    except ImageBudgetError:
        raise
    except FileNotFoundError:
        raise ImageBudgetError(f"{path} does not exist") from None
    except Image.DecompressionBombError as exc:  # Pillow's own limit (~179 MP), met in Image.open
        raise ImageBudgetError(
            f"{path} is over the {max_pixels / 1e6:.0f} MP an image may have: downscale it first ({exc})"
        ) from None
    except Image.UnidentifiedImageError as exc:
        accepted = f"a {', '.join(formats)} image" if formats else "an image Pillow can read"
        raise ImageBudgetError(f"{path} is not {accepted}: {exc}") from None
    except DECODER_ERRORS as exc:
        raise ImageBudgetError(f"{path} is not a decodable image: {exc}") from None
    return loaded


def reducible_mode(image: Image.Image) -> str:
    """The mode ``image`` takes before ``Image.reduce``: its own, except 1-bit → ``"L"``,
    palette → ``"RGB"`` (``"RGBA"`` with a transparency entry) and ``"PA"`` → ``"RGBA"``."""
    if image.mode == "P" and "transparency" in image.info:
        return "RGBA"
    return _REDUCE_AS.get(image.mode, image.mode)


def reduce_in_strips(
    image: Image.Image, factor: int, convert: Callable[[Image.Image], Image.Image], mode: str
) -> Image.Image:
    """A new image of ``mode``: ``convert`` applied to horizontal strips of ``image``
    (~1 MP each), each reduced by the integer ``factor`` (>= 1; block means,
    ``Image.reduce``, sides rounded up) and pasted in place.

    Peak memory is the output plus one strip, where a whole-image ``convert`` or
    ``reduce`` copies all of it (``reduce`` of an RGBA image converts it to
    premultiplied RGBa first). ``convert`` must return an image of ``mode``
    with the strip's size.
    """
    width, height = image.size
    out = Image.new(mode, (-(-width // factor), -(-height // factor)))
    if width == 0 or height == 0:
        return out
    rows = max(1, _STRIP_PIXELS // width) * factor  # a multiple of factor: strips reduce like the whole
    for top in range(0, height, rows):
        part = convert(image.crop((0, top, width, min(height, top + rows))))
        out.paste(part.reduce(factor) if factor > 1 else part, (0, top // factor))
    return out


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit or 32-bit grey image (modes I;16*, I, F) scaled to mode ``"L"``:
    16-bit values 0-65535 map to 0-255 (a 32-bit one is read as 16-bit when its
    maximum is over 255, else as 8-bit; NaN reads 0, infinities 0 and 65535);
    other modes are returned unchanged. Works on ~1 MP strips: the only
    full-size array is the (h, w) uint8 result."""
    if image.mode not in _WIDE_MODES:
        return image
    width, height = image.size
    out = np.zeros((height, width), np.uint8)
    if width == 0 or height == 0:
        return Image.fromarray(out)
    rows = max(1, _STRIP_PIXELS // width)
    tops = range(0, height, rows)
    if image.mode.startswith("I;16"):
        for top in tops:
            wide = np.asarray(image.crop((0, top, width, min(height, top + rows))))
            np.floor_divide(wide, 257, out=out[top : top + len(wide)], casting="unsafe")
        return Image.fromarray(out)
    strips = [(top, min(height, top + rows)) for top in tops]
    peak = max(float(_clipped_rows(image, top, bottom).max()) for top, bottom in strips)
    divisor = 257.0 if peak > 255.0 else 1.0
    for top, bottom in strips:
        out[top:bottom] = np.round(_clipped_rows(image, top, bottom) / divisor)
    return Image.fromarray(out)


def _clipped_rows(image: Image.Image, top: int, bottom: int) -> np.ndarray:
    """Rows [top, bottom) of a 32-bit grey image as a writable (rows, w) float32 array,
    NaN → 0, +inf → 65535, -inf → 0, clipped to [0, 65535]."""
    values = np.array(image.crop((0, top, image.size[0], bottom)), dtype=np.float32)
    np.nan_to_num(values, copy=False, nan=0.0, posinf=65535.0, neginf=0.0)
    return np.clip(values, 0.0, 65535.0, out=values)


def has_alpha(image: Image.Image) -> bool:
    """True when ``image`` has transparency: an alpha band (RGBA, LA, PA) or a
    palette image with a ``transparency`` entry."""
    return image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)


def on_white(image: Image.Image) -> Image.Image:
    """The image as opaque RGB (mode ``"RGB"``, same size in pixels), transparent
    pixels composited over white (255, 255, 255); an opaque image is only converted."""
    if has_alpha(image):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (*_WHITE, 255)), rgba)
    return image.convert("RGB")


def prepare_photo(image: Image.Image, size: int) -> np.ndarray:
    """Return a (size, size, 3) uint8 RGB array (0-255) for the photo encoder.

    Transparent pixels become white (:func:`on_white`); the image is padded to
    a square (white) around its centre, then resized to ``size`` pixels a side
    with area averaging (bicubic when enlarging).
    """
    rgb = on_white(image)
    w, h = rgb.size
    side = max(w, h)
    if w != h:
        square = Image.new("RGB", (side, side), _WHITE)
        square.paste(rgb, ((side - w) // 2, (side - h) // 2))
        rgb = square
    if side != size:
        rgb = rgb.resize((size, size), Image.Resampling.BOX if side > size else Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)
