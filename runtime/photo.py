"""Product photo preparation shared by training and the device.

Photos are composited on white, padded to a square with white and resized to
the photo encoder's input side, so catalog encoding at export and a shopper's
photo on the device get the same treatment. :func:`on_white` is also how the
sketch path (``rasterize.sketch_from_image``) treats transparent sketches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

_WHITE = (255, 255, 255)

#: Largest image a query or a catalog row may be, in pixels (width × height), read
#: from the file's header before anything is decoded: 32 MP, e.g. 8000 × 4000.
#: At 4 bytes a pixel (RGBA, 16-bit grey) that is 128 MB decoded, which keeps a
#: search under its 300 MB peak-memory budget.
MAX_IMAGE_PIXELS = 32_000_000
_WIDE_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


class ImageBudgetError(ValueError):
    """An image is larger than :data:`MAX_IMAGE_PIXELS` or not decodable."""


def load_image_bounded(path: str | Path, *, min_side: int, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Open an image file within the pixel budget, decoded in reduced form.

    The size is read from the header first, and an image over ``max_pixels``
    is refused before decoding. JPEGs are decoded at the smallest DCT scale
    (1/2, 1/4 or 1/8, ``Image.draft``) that keeps both sides >= ``min_side``;
    other formats are decoded, then reduced by an integer factor
    (``Image.reduce``) to the same bound. 16-bit and 32-bit grey images are
    scaled to 8 bits (mode ``"L"``), not clipped.

    Args:
        min_side: the smallest side, in pixels, the caller will still downscale from.

    Returns:
        A loaded PIL image whose sides are >= ``min_side`` where the original's were.

    Raises:
        ImageBudgetError: missing or undecodable file, or too many pixels; the
            message names the file and the limit.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
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
            factor = min(loaded.size) // max(min_side, 1)
            loaded = loaded.reduce(factor) if factor >= 2 else loaded.copy()
    except ImageBudgetError:
        raise
    except FileNotFoundError:
        raise ImageBudgetError(f"{path} does not exist") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageBudgetError(f"{path} is not a decodable image: {exc}") from None
    return loaded


def to_8bit(image: Image.Image) -> Image.Image:
    """A 16-bit or 32-bit grey image (modes I;16*, I, F) scaled to mode ``"L"``:
    16-bit values 0-65535 map to 0-255 (a 32-bit one is read as 16-bit when its
    maximum is over 255, else as 8-bit); other modes are returned unchanged."""
    if image.mode not in _WIDE_MODES:
        return image
    if image.mode.startswith("I;16"):
        wide = np.asarray(image).astype(np.uint16, copy=False)
        return Image.fromarray((wide // 257).astype(np.uint8))
    values = np.asarray(image, dtype=np.float32)  # 4 bytes a pixel, like the decoded image
    np.nan_to_num(values, copy=False, nan=0.0, posinf=65535.0, neginf=0.0)
    np.clip(values, 0.0, 65535.0, out=values)
    if values.max(initial=0.0) > 255.0:
        values /= 257.0
    return Image.fromarray(np.round(values).astype(np.uint8))


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
