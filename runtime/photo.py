"""Product photo preparation shared by training and the device.

Photos are composited on white, padded to a square with white and resized to
the photo encoder's input side, so catalog encoding at export and a shopper's
photo on the device get the same treatment. :func:`on_white` is also how the
sketch path (``rasterize.sketch_from_image``) treats transparent sketches.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

_WHITE = (255, 255, 255)


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
