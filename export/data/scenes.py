"""Composed scene photos: real catalog product images laid out on synthetic backgrounds.

The detector (and the photo encoder's crop fine-tuning, and later the
text-visual model's "outfit photos") need photos with several products in
them and their ground-truth boxes. None exist for the demo catalog, so they
are composed: the products are the catalog's real images (cut out of their
white background), the composition is synthetic.

A scene holds 1-5 products laid out like

* an *outfit*: tops above bottoms, shoes below, a bag at the side;
* a *shelf* or *table*: products in a row or a loose grid;

each product 15-70 % of the scene's side (:attr:`SceneOptions.min_scale` /
:attr:`~SceneOptions.max_scale`), at a random position, overlapping earlier
ones by at most ~30 % of their area (:attr:`~SceneOptions.max_occlusion`).
Backgrounds are flat, gradient, noise or stripe textures, with non-product
clutter shapes (ellipses, boxes, polygons, lines) as distractors. The
detector's training scenes also draw plaid, dot and wood-grain patterns
(:data:`PATTERN_BACKGROUNDS`, domain randomisation); the second store's tiles
(:data:`OTHER_BACKGROUNDS`) stay out of every build. A
one-product scene shows a small product off-centre, like a phone photo of one
item. Some scenes are not square: they are letterboxed to the square canvas
with :func:`vitrina.runtime.detector.letterbox`, the function the device uses.

Ground truth per product: its box (x0, y0, x1, y1) in scene pixels, the tight
extent of its cut-out (occluded parts included), its category and its catalog
product index. Training scenes use train-split products, held-out scenes
test-split products with another seed (the caller picks both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import binary_fill_holes
from tqdm import tqdm

from vitrina.runtime.bundle import SceneSet
from vitrina.runtime.detector import letterbox

__all__ = [
    "BACKGROUNDS",
    "OTHER_BACKGROUNDS",
    "PATTERN_BACKGROUNDS",
    "ROLES",
    "SceneOptions",
    "SceneSet",
    "compose_scene",
    "compose_scenes",
    "cut_out",
]

#: Category name → layout role. Other categories are laid out freely.
ROLES = {
    "T-shirt/top": "top",
    "Pullover": "top",
    "Shirt": "top",
    "Coat": "top",
    "Dress": "full",
    "Trouser": "bottom",
    "Sandal": "shoes",
    "Sneaker": "shoes",
    "Ankle boot": "shoes",
    "Bag": "bag",
}
#: Role → (x, y) centre of its slot in an outfit layout, as fractions of the scene's width and height.
_OUTFIT_SLOTS = {
    "top": (0.5, 0.27),
    "full": (0.5, 0.4),
    "bottom": (0.5, 0.62),
    "shoes": (0.5, 0.87),
    "bag": (0.16, 0.6),
    "other": (0.84, 0.35),
}
BACKGROUNDS = ("flat", "gradient", "noise", "stripes")
#: Patterned backgrounds only the detector's training scenes add to :data:`BACKGROUNDS`
#: (the catalog's outfit photos and the held-out scenes keep :data:`BACKGROUNDS`).
PATTERN_BACKGROUNDS = ("plaid", "dots", "wood")
#: Backgrounds no build trains on: the second store's scenes (``second_store.py``) use them.
OTHER_BACKGROUNDS = ("tiles",)
# alpha of a product pixel: its darkest channel's distance from white over this many levels (clipped to 1)
_ALPHA_LEVELS = 60.0


@dataclass(frozen=True, kw_only=True)
class SceneOptions:
    """How scenes are composed.

    Attributes:
        size: side of the square scene, pixels.
        min_scale, max_scale: a product's longer side as a fraction of the scene's side.
        max_products: products per scene, 1 to this (uniformly).
        max_occlusion: largest share of a product's area later products may cover.
        clutter: most non-product distractor shapes per scene.
        backgrounds: kinds of background to draw from (:data:`BACKGROUNDS`,
            :data:`PATTERN_BACKGROUNDS`, or :data:`OTHER_BACKGROUNDS`, which no build trains on).
        non_square: share of scenes composed at another aspect ratio (3:4 to 4:3) and letterboxed.
        single_max_scale: largest scale of the product in a one-product scene (small, off-centre).
    """

    size: int = 128
    min_scale: float = 0.15
    max_scale: float = 0.70
    max_products: int = 5
    max_occlusion: float = 0.3
    clutter: int = 4
    backgrounds: tuple[str, ...] = BACKGROUNDS
    non_square: float = 0.25
    single_max_scale: float = 0.45

    def __post_init__(self) -> None:
        if self.size < 32:
            raise ValueError(f"size must be >= 32 pixels, got {self.size}")
        if not 0.05 <= self.min_scale <= self.max_scale <= 1.0:
            raise ValueError(f"need 0.05 <= min_scale <= max_scale <= 1, got {self.min_scale}, {self.max_scale}")
        if not 1 <= self.max_products <= 8:
            raise ValueError(f"max_products must be in [1, 8], got {self.max_products}")
        if not 0.0 <= self.max_occlusion < 1.0:
            raise ValueError(f"max_occlusion must be in [0, 1), got {self.max_occlusion}")
        known = BACKGROUNDS + PATTERN_BACKGROUNDS + OTHER_BACKGROUNDS
        if not self.backgrounds or set(self.backgrounds) - set(known):
            raise ValueError(f"backgrounds must be a non-empty subset of {known}, got {self.backgrounds}")


def cut_out(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A product photo on white → (its tight crop (h, w, 3) uint8, alpha (h, w) float32 in [0, 1]).

    The product is opaque: alpha is 1 inside its silhouette (pixels whose
    darkest channel is 12+ levels from white, holes filled) and fades with the
    distance from white outside it. A photo with no product pixel is returned
    whole with zero alpha.
    """
    alpha = np.clip((255.0 - image.min(axis=2).astype(np.float32)) / _ALPHA_LEVELS, 0.0, 1.0)
    alpha[binary_fill_holes(alpha > 0.2)] = 1.0
    ys, xs = np.nonzero(alpha > 0.25)
    if len(ys) == 0:
        return image, alpha
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return image[y0:y1, x0:x1], alpha[y0:y1, x0:x1]


def _background(rng: np.random.Generator, w: int, h: int, kind: str) -> np.ndarray:
    """(h, w, 3) float32 background of ``kind`` (0-255)."""
    c0 = rng.uniform(0, 255, 3)
    if rng.random() < 0.35:  # often light, like a wall, a table or a shop floor
        c0 = rng.uniform(170, 255, 3)
    if kind == "flat":
        return np.broadcast_to(c0, (h, w, 3)).astype(np.float32)
    c1 = rng.uniform(0, 255, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, math.pi)
    proj = xx * math.cos(angle) + yy * math.sin(angle)
    if kind == "gradient":
        t = (proj - proj.min()) / max(float(np.ptp(proj)), 1.0)
        return c0 * (1 - t[..., None]) + c1 * t[..., None]
    if kind == "tiles":  # a tiled floor or wall: a checkerboard of two colours, with grain
        cell = rng.uniform(6, max(7.0, min(w, h) / 4))
        t = (((xx // cell) + (yy // cell)) % 2).astype(np.float32)
        out = c0 * (1 - t[..., None]) + c1 * t[..., None] + rng.normal(0, 4, (h, w, 1))
        return np.clip(out, 0, 255).astype(np.float32)
    if kind in PATTERN_BACKGROUNDS:
        return _pattern(rng, c0, c1, xx, yy, kind)
    if kind == "stripes":
        period = rng.uniform(4, max(5.0, w / 3))
        t = (np.sin(2 * math.pi * proj / period) > 0).astype(np.float32) if rng.random() < 0.5 else None
        if t is None:
            t = 0.5 + 0.5 * np.sin(2 * math.pi * proj / period)
        return c0 * (1 - t[..., None]) + c1 * t[..., None]
    # noise: smooth blobs (upsampled coarse noise) plus fine grain
    cells = int(rng.integers(2, 9))
    coarse = rng.uniform(0, 1, (cells, cells)).astype(np.float32)
    t = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC))
    out = c0 * (1 - t[..., None]) + c1 * t[..., None] + rng.normal(0, rng.uniform(2, 18), (h, w, 1))
    return np.clip(out, 0, 255).astype(np.float32)


def _pattern(
    rng: np.random.Generator, c0: np.ndarray, c1: np.ndarray, xx: np.ndarray, yy: np.ndarray, kind: str
) -> np.ndarray:
    """(h, w, 3) float32 patterned background (0-255) on the pixel grid ``xx``, ``yy``:

    * plaid: two crossing sets of bands, in two colours and a third laid over half-transparent;
    * dots: a lattice of discs, rows sometimes offset;
    * wood: grain, noise stretched along a random direction, with fine streaks.
    """
    h, w = xx.shape
    angle = rng.uniform(0, math.pi)
    u = xx * math.cos(angle) + yy * math.sin(angle)
    v = -xx * math.sin(angle) + yy * math.cos(angle)
    if kind == "plaid":
        period = rng.uniform(8, max(9.0, min(w, h) / 3), 2)
        duty = rng.uniform(0.2, 0.5, 2)
        a = ((u / period[0]) % 1.0 < duty[0]).astype(np.float32)
        b = ((v / period[1]) % 1.0 < duty[1]).astype(np.float32)
        c2 = rng.uniform(0, 255, 3)
        out = c0 * (1 - a[..., None]) + c1 * a[..., None]
        out = out * (1 - 0.5 * b[..., None]) + c2 * 0.5 * b[..., None]
    elif kind == "dots":
        step = rng.uniform(6, max(7.0, min(w, h) / 5))
        radius = step * rng.uniform(0.15, 0.4)
        row = np.floor(v / step)
        shift = 0.5 * step * (row % 2) if rng.random() < 0.5 else 0.0
        du = (u + shift) % step - step / 2
        dv = v % step - step / 2
        t = (du**2 + dv**2 <= radius**2).astype(np.float32)
        out = c0 * (1 - t[..., None]) + c1 * t[..., None]
    else:  # wood
        lines = int(rng.integers(12, 40))
        across = (v - v.min()) / max(float(np.ptp(v)), 1.0) * (lines - 1)
        grain = np.interp(across, np.arange(lines), rng.uniform(0, 1, lines)).astype(np.float32)
        t = np.clip(grain + 0.15 * np.sin(u / rng.uniform(6, 30)), 0, 1)
        out = c0 * (1 - t[..., None]) + c1 * t[..., None]
    out = out + rng.normal(0, rng.uniform(1, 6), (h, w, 1))
    return np.clip(out, 0, 255).astype(np.float32)


def _clutter(rng: np.random.Generator, canvas: Image.Image, count: int) -> None:
    """Draw ``count`` non-product shapes (ellipses, boxes, polygons, lines) on ``canvas`` in place."""
    draw = ImageDraw.Draw(canvas)
    w, h = canvas.size
    side = min(w, h)
    for _ in range(count):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        s = rng.uniform(0.05, 0.3) * side
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        box = [cx - s / 2, cy - s * rng.uniform(0.2, 0.6), cx + s / 2, cy + s * rng.uniform(0.2, 0.6)]
        kind = int(rng.integers(4))
        if kind == 0:
            draw.ellipse(box, fill=colour)
        elif kind == 1:
            draw.rectangle(box, fill=colour)
        elif kind == 2:
            pts = [(cx + s / 2 * math.cos(a), cy + s / 2 * math.sin(a)) for a in np.sort(rng.uniform(0, 6.283, 5))]
            draw.polygon(pts, fill=colour)
        else:
            draw.line([(box[0], box[1]), (box[2], box[3])], fill=colour, width=int(rng.integers(1, 4)))


def _layout(rng: np.random.Generator, roles: Sequence[str], w: int, h: int) -> list[tuple[float, float]]:
    """Centre (x, y) in pixels for each product: an outfit column, a shelf row, or a loose grid."""
    n = len(roles)
    if n == 1:  # one product, off-centre (a phone photo of one item)
        return [(rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h)]
    kind = rng.random()
    if kind < 0.5:  # outfit
        x_shift = rng.uniform(-0.15, 0.15)
        out = []
        seen: dict[str, int] = {}
        for role in roles:
            sx, sy = _OUTFIT_SLOTS.get(role, _OUTFIT_SLOTS["other"])
            nth = seen.get(role, 0)
            seen[role] = nth + 1
            sx = (sx + x_shift + 0.22 * nth * (1 if sx <= 0.5 else -1)) % 1.0  # a second shoe/top beside the first
            out.append(((sx + rng.uniform(-0.06, 0.06)) * w, (sy + rng.uniform(-0.06, 0.06)) * h))
        return out
    if kind < 0.8:  # shelf or table: one row
        y = rng.uniform(0.3, 0.7) * h
        xs = (np.arange(n) + 0.5) / n + rng.uniform(-0.05, 0.05, n)
        return [(float(x) * w, y + rng.uniform(-0.08, 0.08) * h) for x in xs]
    cols = math.ceil(math.sqrt(n))  # loose grid
    rows = math.ceil(n / cols)
    cells = rng.permutation(rows * cols)[:n]
    return [
        (
            ((c % cols) + 0.5 + rng.uniform(-0.2, 0.2)) / cols * w,
            ((c // cols) + 0.5 + rng.uniform(-0.2, 0.2)) / rows * h,
        )
        for c in cells
    ]


def compose_scene(
    rng: np.random.Generator,
    products: Sequence[np.ndarray],
    roles: Sequence[str],
    options: SceneOptions = SceneOptions(),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compose one scene of ``products`` (each (h, w, 3) uint8 on white).

    Returns:
        the (S, S, 3) uint8 scene, (m, 4) float32 boxes (x0, y0, x1, y1) of the
        m <= len(products) products placed, and their (m,) int64 indices into
        ``products`` (a product that found no place within the occlusion limit is left out).
    """
    s = options.size
    w = h = s
    if rng.random() < options.non_square:
        short = int(round(s * rng.uniform(0.75, 0.95)))
        w, h = (s, short) if rng.random() < 0.5 else (short, s)
    kind = options.backgrounds[int(rng.integers(len(options.backgrounds)))]
    canvas = Image.fromarray(np.clip(_background(rng, w, h, kind), 0, 255).astype(np.uint8))
    _clutter(rng, canvas, int(rng.integers(0, options.clutter + 1)))
    scene = np.asarray(canvas, dtype=np.float32).copy()
    owner = np.full((h, w), -1, np.int64)
    areas: list[int] = []
    boxes: list[list[float]] = []
    placed: list[int] = []
    n = len(products)
    top_scale = options.single_max_scale if n == 1 else min(options.max_scale, options.max_scale * 1.4 / math.sqrt(n))
    top_scale = max(top_scale, options.min_scale)
    side = min(w, h)
    for j, (centre, product) in enumerate(zip(_layout(rng, roles, w, h), products)):
        crop, alpha = cut_out(product)
        for attempt in range(8):
            scale = rng.uniform(options.min_scale, top_scale) * (0.85**attempt)
            scale = max(scale, options.min_scale)
            f = scale * side / max(crop.shape[:2])
            pw, ph = max(2, int(round(crop.shape[1] * f))), max(2, int(round(crop.shape[0] * f)))
            if pw > w or ph > h:
                continue
            jitter = 0.1 * side * attempt / 8
            x0 = int(np.clip(round(centre[0] - pw / 2 + rng.uniform(-jitter, jitter)), 0, w - pw))
            y0 = int(np.clip(round(centre[1] - ph / 2 + rng.uniform(-jitter, jitter)), 0, h - ph))
            a = np.asarray(Image.fromarray(alpha, mode="F").resize((pw, ph), Image.Resampling.BILINEAR))
            solid = a > 0.5
            if not solid.any():
                break
            region = owner[y0 : y0 + ph, x0 : x0 + pw]
            covered = np.bincount(region[solid & (region >= 0)], minlength=len(areas))
            visible = np.array([np.count_nonzero(owner == i) for i in range(len(areas))]) - covered
            if len(areas) and np.any(visible < (1.0 - options.max_occlusion) * np.asarray(areas)):
                continue
            pix = np.asarray(Image.fromarray(crop).resize((pw, ph), Image.Resampling.BICUBIC), dtype=np.float32)
            view = scene[y0 : y0 + ph, x0 : x0 + pw]
            view[:] = view * (1 - a[..., None]) + pix * a[..., None]
            region[solid] = len(areas)
            areas.append(int(solid.sum()))
            ys, xs = np.nonzero(solid)
            boxes.append([x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1])
            placed.append(j)
            break
    image = np.clip(np.round(scene), 0, 255).astype(np.uint8)
    box_array = np.array(boxes, np.float32).reshape(-1, 4)
    if (w, h) != (s, s):
        image, scale, (px, py) = letterbox(image, s)
        box_array = box_array * scale + np.array([px, py, px, py], np.float32)
    return image, box_array, np.array(placed, np.int64)


def compose_scenes(
    images: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    categories: Sequence[str],
    *,
    count: int,
    seed: int,
    options: SceneOptions = SceneOptions(),
    progress: bool = False,
    desc: str = "scenes",
) -> SceneSet:
    """Compose ``count`` scenes from a pool of products.

    Args:
        images: (P, W, W, 3) uint8 product photos on white, one per product of the pool.
        items: (P,) catalog product index of each photo.
        labels: (P,) category index of each (into ``categories``).
        categories: category names (their layout roles come from :data:`ROLES`).
        count: scenes to compose; the number of products in each is uniform in
            1..``options.max_products``.
        seed: random seed (training and held-out scenes use different seeds and pools).

    Returns:
        a :class:`SceneSet`.
    """
    if len(images) == 0:
        raise ValueError("no products to compose scenes from")
    if not (len(images) == len(items) == len(labels)):
        raise ValueError(f"images ({len(images)}), items ({len(items)}) and labels ({len(labels)}) disagree")
    rng = np.random.default_rng([seed, 1])
    s = options.size
    out = np.empty((count, s, s, 3), np.uint8)
    boxes, box_scene, box_items, box_labels = [], [], [], []
    for i in tqdm(range(count), desc=desc, unit="scene", disable=not progress, mininterval=1.0):
        n = int(rng.integers(1, options.max_products + 1))
        pick = rng.choice(len(images), size=min(n, len(images)), replace=False)
        roles = [ROLES.get(categories[int(labels[p])], "other") for p in pick]
        out[i], b, placed = compose_scene(rng, [images[p] for p in pick], roles, options)
        boxes.append(b)
        box_scene += [i] * len(b)
        box_items += [int(items[pick[j]]) for j in placed]
        box_labels += [int(labels[pick[j]]) for j in placed]
    return SceneSet(
        images=out,
        boxes=np.concatenate(boxes).astype(np.float32) if boxes else np.empty((0, 4), np.float32),
        box_scene=np.array(box_scene, np.int32),
        box_items=np.array(box_items, np.int32),
        box_labels=np.array(box_labels, np.int32),
    )
