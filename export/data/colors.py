"""Colour families of a catalog: each colour name's typical RGB, read from its product photos.

The bundle carries them (manifest ``colors``): the kiosk's palette offers them,
and the device ranks colour sketches by the family a product belongs to
(``vitrina.runtime.color_search``).
"""

from __future__ import annotations

import numpy as np

from .catalog import Catalog
from .sketch_synthesis import ink_density

#: Product pixels: at least this ink density (darkness relative to the image's darkest pixel).
PRODUCT_DENSITY = 0.85
#: Photos sampled per colour name.
SAMPLES_PER_COLOR = 300


def colour_families(catalog: Catalog, *, seed: int = 0, on_white: np.ndarray | None = None) -> dict[str, list[int]]:
    """``{colour name: [r, g, b]}`` (0-255): the median product pixel of up to
    :data:`SAMPLES_PER_COLOR` photos of each colour name, names in first-seen order.
    Names whose photos have no product pixels are left out. ``on_white``: (N,) bool, only
    these photos (the packshots: an outfit photo's background and other products are not
    the product's colour)."""
    rng = np.random.default_rng(seed)
    names = list(dict.fromkeys(item.color for item in catalog.items if item.color))
    item_colour = np.array([item.color for item in catalog.items], dtype=object)
    image_colour = item_colour[catalog.image_items]
    out: dict[str, list[int]] = {}
    for name in names:
        rows = np.flatnonzero((image_colour == name) & (True if on_white is None else on_white))
        rows = rng.choice(rows, size=min(SAMPLES_PER_COLOR, len(rows)), replace=False)
        pixels = [catalog.images[r][ink_density(catalog.images[r]) >= PRODUCT_DENSITY] for r in rows]
        stacked = np.concatenate(pixels) if pixels else np.empty((0, 3))
        if len(stacked):
            out[name] = [int(v) for v in np.median(stacked.reshape(-1, 3), axis=0).round()]
    return out
