"""Product photo preparation shared by training and the device.

Photos are composited on white, padded to a square with white and resized to
the photo encoder's input side, so catalog encoding at export and a shopper's
photo on the device get the same treatment.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def prepare_photo(image: Image.Image, size: int) -> np.ndarray:
    """Return a (size, size, 3) uint8 RGB array for the photo encoder.

    Transparent pixels become white; the image is padded to a square (white)
    around its centre, then resized with area averaging.
    """
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    rgb = image.convert("RGB")
    w, h = rgb.size
    side = max(w, h)
    if w != h:
        square = Image.new("RGB", (side, side), (255, 255, 255))
        square.paste(rgb, ((side - w) // 2, (side - h) // 2))
        rgb = square
    if side != size:
        rgb = rgb.resize((size, size), Image.Resampling.BOX if side > size else Image.Resampling.BICUBIC)
    return np.asarray(rgb, dtype=np.uint8)
