"""Outfit photos in the demo catalog: the sold product among 1-4 others, as a retailer uploads them.

Retail catalog photos often show a model wearing several garments, and only one
of them is for sale. The demo catalog (``vitrina demo-catalog --outfit-share``)
gives a share of its products such a photo: :class:`OutfitComposer` plugs into
:func:`~.demo_catalog.write_demo_catalog` and composes the product's tinted photo
with 1-4 other products of the same split (train and test products never meet in
one photo) on a synthetic background, laid out like the detector's scenes
(:mod:`.scenes`).

Export never sees which products are in an outfit photo nor where they stand: it
finds out itself (``export/identify_products.py``). The ground truth is written
beside the catalog for the measurements only, in ``outfits.json``:

.. code-block:: json

    {"images/tr00012.png": {"box": [x0, y0, x1, y1], "boxes": [[...], ...],
                            "categories": ["Trouser", ...], "packshot": "packshots/tr00012.png"}}

``box`` is the sold product's box in the catalog image's pixels (``boxes[0]``),
``boxes`` / ``categories`` every product in the photo, ``packshot`` the sold
product alone on white (what a shopper remembers and draws; not in catalog.csv).
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vitrina.runtime.files import resolve_inside

from .scenes import ROLES, SceneOptions, compose_scene

#: The ground truth's file name in the catalog folder.
TRUTH_NAME = "outfits.json"
#: Folder of the sold products' photos on white, beside the catalog's images.
PACKSHOT_DIR = "packshots"


@dataclass(frozen=True, kw_only=True)
class OutfitOptions:
    """How outfit photos are composed.

    Attributes:
        share: fraction of products whose catalog image is an outfit photo, in [0, 1].
        max_others: other products in an outfit photo: 1 to this (uniformly), at most 4.
        pool: recent products of each split the others are drawn from.
        scenes: the composition (size in pixels, product scales, backgrounds); products
            take 30-70 % of the photo's side so the sold one stays visible at the build's 64 px.
    """

    share: float = 0.3
    max_others: int = 4
    pool: int = 512
    scenes: SceneOptions = field(
        default_factory=lambda: SceneOptions(size=128, min_scale=0.3, max_scale=0.7, max_products=5, clutter=2)
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"outfit share must be in [0, 1], got {self.share}")
        if not 1 <= self.max_others <= 4:
            raise ValueError(f"max_others must be in [1, 4], got {self.max_others}")
        if self.pool < 1:
            raise ValueError(f"pool must be >= 1, got {self.pool}")


@dataclass(frozen=True)
class OutfitTruth:
    """Where the sold product is in its outfit photo.

    Attributes:
        boxes: (m, 4) float32 xyxy boxes in the photo's pixels, the sold product's first.
        categories: the m products' categories.
    """

    boxes: np.ndarray
    categories: tuple[str, ...]

    @property
    def box(self) -> np.ndarray:
        """(4,) float32 the sold product's box."""
        return self.boxes[0]


class OutfitComposer:
    """A :class:`~.demo_catalog.ImageComposer` that turns ``options.share`` of the products into outfit photos.

    Call it once per product in catalog order; :attr:`last` is the ground truth of the
    image it just returned (None: the product stands alone on white, unchanged).
    """

    def __init__(self, options: OutfitOptions = OutfitOptions()):
        self.options = options
        self.last: OutfitTruth | None = None
        self._pools: dict[str, deque[tuple[np.ndarray, str]]] = {}

    def __call__(self, product: np.ndarray, *, category: str, split: str, rng: np.random.Generator) -> np.ndarray:
        pool = self._pools.setdefault(split, deque(maxlen=self.options.pool))
        self.last = None
        outfit = rng.random() < self.options.share
        if outfit and pool:
            image, truth = self._compose(product, category, pool, rng)
            if truth is not None:
                self.last = truth
                pool.append((product, category))
                return image
        pool.append((product, category))
        return product

    def _compose(
        self, product: np.ndarray, category: str, pool: deque[tuple[np.ndarray, str]], rng: np.random.Generator
    ) -> tuple[np.ndarray, OutfitTruth | None]:
        """The outfit photo and its truth; None when the sold product found no place (it is placed first)."""
        n = min(int(rng.integers(1, self.options.max_others + 1)), len(pool))
        picks = rng.choice(len(pool), size=n, replace=False)
        others = [pool[int(p)] for p in picks]
        products = [product, *(o[0] for o in others)]
        categories = [category, *(o[1] for o in others)]
        roles = [ROLES.get(c, "other") for c in categories]
        image, boxes, placed = compose_scene(rng, products, roles, self.options.scenes)
        if len(placed) < 2 or placed[0] != 0:
            return image, None
        return image, OutfitTruth(boxes=boxes, categories=tuple(categories[int(j)] for j in placed))


def truth_entry(truth: OutfitTruth, packshot: str) -> dict[str, object]:
    """The JSON entry of one outfit photo (see the module docstring)."""
    boxes = [[round(float(v), 2) for v in b] for b in truth.boxes]
    return {"box": boxes[0], "boxes": boxes, "categories": list(truth.categories), "packshot": packshot}


@dataclass(frozen=True)
class OutfitRecord:
    """One outfit photo's ground truth, read back: the catalog image path, the sold product's
    box (4,) float32 in that image's pixels, the path of its photo on white, and how many
    products the photo shows."""

    image: str
    box: np.ndarray
    packshot: str
    products: int


def load_outfit_truth(folder: Path) -> dict[str, OutfitRecord]:
    """``folder/outfits.json`` by catalog image path ({} when the catalog has none).

    Raises:
        ValueError: the file is not the JSON this module writes, or names a path outside ``folder``.
    """
    path = Path(folder) / TRUTH_NAME
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        records = {
            str(rel): OutfitRecord(
                str(rel),
                np.asarray(entry["box"], np.float32).reshape(4),
                str(entry["packshot"]),
                len(entry["boxes"]),
            )
            for rel, entry in raw.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{path} is not an outfit ground truth file: {exc}") from None
    for record in records.values():
        resolve_inside(Path(folder), record.packshot)
    return records
