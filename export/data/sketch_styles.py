"""A zoo of synthetic drawing styles: one product photo → sketches as different people draw.

Training sketches from one synthesis style teach the encoder that style; a
shopper draws a trapezoid bag with an arched handle, a pair of sneakers side by
side, or a hatched pattern. Each style here is a named generator
``(image, rng) → Drawing`` built on the tracing and roughening of
:mod:`.sketch_synthesis`; all go through the runtime rasteriser.

:data:`HELD_OUT_STYLES` are never trained on: ``vitrina eval`` reports them
next to the trained styles, an honest figure of generalisation to a style the
model never saw. A style cannot invent a view the photo lacks: top-down views
(flip-flops from above) are not synthesisable from side-view photos;
``foreshortened`` (strong perspective and squash) is the nearest.
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from skimage.measure import find_contours

from vitrina.runtime.rasterize import PenStroke, RasterOptions, Stroke, rasterize_strokes

from .sketch_synthesis import SynthesisOptions, ink_density, simplify_polyline, synthesize_strokes


@dataclass(frozen=True)
class Drawing:
    """One synthetic sketch: strokes (arrays or colour :class:`PenStroke`) and a pen-width
    multiplier per stroke (None: the rasteriser's and the pens' own widths)."""

    strokes: list[Stroke | PenStroke]
    widths: list[float] | None = None


Style = Callable[[np.ndarray, np.random.Generator], Drawing]


def _synth(opts: SynthesisOptions) -> Style:
    def style(image: np.ndarray, rng: np.random.Generator) -> Drawing:
        strokes, widths = synthesize_strokes(image, rng, opts)
        return Drawing(list(strokes), list(widths))

    return style


def _outline(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The product's largest silhouette contour, (m, 2) (x, y) pixels (the image box when blank)."""
    density = np.pad(ink_density(image), 1)
    contours = find_contours(density, rng.uniform(0.08, 0.2))
    if not contours:
        h, w = image.shape[:2]
        return np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1], [0, 0]], dtype=np.float64)
    return max(contours, key=len)[:, ::-1].copy()


def _mask(image: np.ndarray) -> np.ndarray:
    """(h, w) bool: product pixels."""
    return ink_density(image) > 0.15


def _product_colour(image: np.ndarray) -> tuple[int, int, int]:
    """Median RGB of the darkest product pixels (the tint), 0-255."""
    rgb = image if image.ndim == 3 else np.repeat(image[..., None], 3, axis=2)
    pixels = rgb[ink_density(image) > 0.8]
    if not len(pixels):
        return (0, 0, 0)
    return tuple(int(v) for v in np.median(pixels.reshape(-1, 3), axis=0))  # type: ignore[return-value]


def _jitter_colour(rgb: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    """A coarse shopper's palette version of ``rgb``: hue, saturation and lightness jitter."""
    h, light, s = colorsys.rgb_to_hls(*(v / 255.0 for v in rgb))
    h = (h + rng.uniform(-0.04, 0.04)) % 1.0
    s = float(np.clip(s * rng.uniform(0.75, 1.3), 0, 1))
    light = float(np.clip(light * rng.uniform(0.8, 1.2), 0, 1))
    return tuple(int(round(v * 255)) for v in colorsys.hls_to_rgb(h, light, s))  # type: ignore[return-value]


def _inside_lines(mask: np.ndarray, rng: np.random.Generator, *, spacing: float, angle: float) -> list[Stroke]:
    """Parallel lines at ``angle`` (radians), ``spacing`` pixels apart, clipped to ``mask``: (m, 2) segments."""
    h, w = mask.shape
    direction = np.array([math.cos(angle), math.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    centre = np.array([w / 2, h / 2])
    reach = math.hypot(w, h) / 2
    lines: list[Stroke] = []
    for offset in np.arange(-reach, reach, spacing) + rng.uniform(0, spacing):
        t = np.linspace(-reach, reach, int(2 * reach))
        pts = centre + offset * normal + t[:, None] * direction
        xi, yi = np.round(pts[:, 0]).astype(int), np.round(pts[:, 1]).astype(int)
        ok = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        inside = np.zeros(len(t), dtype=bool)
        inside[ok] = mask[yi[ok], xi[ok]]
        edges = np.flatnonzero(np.diff(np.concatenate([[0], inside.astype(int), [0]])))
        for a, b in zip(edges[::2], edges[1::2]):
            if b - a >= 3:
                lines.append(pts[a:b][[0, -1]] + rng.normal(0, 0.3, (2, 2)))
    return lines


def _zigzag(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A zig-zag scribble across the product's middle: (m, 2) points inside its bounding box."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if not len(rows):
        h, w = mask.shape
        rows, cols = np.array([0, h - 1]), np.array([0, w - 1])
    lo = np.array([cols[0], rows[0]], dtype=float)
    hi = np.array([cols[-1], rows[-1]], dtype=float)
    centre, half = (lo + hi) / 2, (hi - lo) * rng.uniform(0.25, 0.38)
    turns = int(rng.integers(5, 11))
    ys = np.linspace(-1, 1, turns)
    xs = np.where(np.arange(turns) % 2 == 0, -1.0, 1.0) + rng.normal(0, 0.12, turns)
    return centre + np.stack([xs, ys], axis=1) * half


def _silhouette(image: np.ndarray, rng: np.random.Generator) -> list[Stroke]:
    strokes, _ = synthesize_strokes(image, rng, SynthesisOptions(inner_levels=(0, 1)))
    return list(strokes)


def doodle(image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """Minimal doodle: one or two strokes, heavily simplified, near-convex, boxy corners."""
    outline = _outline(image, rng)
    span = float(np.ptp(outline, axis=0).max()) or 1.0
    simple = simplify_polyline(outline, span * rng.uniform(0.06, 0.14))
    hull = _convex_hull(outline)
    blend = rng.uniform(0.0, 0.7)  # how near-convex
    if len(simple) >= 3 and len(hull) >= 3:
        closest = hull[np.argmin(((simple[:, None] - hull[None]) ** 2).sum(-1), axis=1)]
        simple = (1 - blend) * simple + blend * closest
    strokes: list[Stroke] = [simple + rng.normal(0, span * 0.01, simple.shape)]
    if rng.random() < 0.5:  # an arc or a boxy handle over the top
        top = outline[:, 1].min()
        left, right = np.percentile(outline[:, 0], [30, 70])
        height = span * rng.uniform(0.15, 0.35)
        t = np.linspace(0, math.pi, 12)
        arc = np.stack([left + (right - left) * (1 - np.cos(t)) / 2, top - height * np.sin(t)], axis=1)
        strokes.append(arc if rng.random() < 0.6 else arc[[0, 3, 8, 11]])
    return Drawing(strokes, list(rng.uniform(0.9, 1.6, len(strokes))))


def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Andrew's monotone chain: the hull of (m, 2) points, counter-clockwise, (k, 2)."""
    pts = np.unique(points, axis=0)
    if len(pts) < 3:
        return pts

    def half(seq: np.ndarray) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for p in seq:
            while len(out) >= 2 and np.cross(out[-1] - out[-2], p - out[-2]) <= 0:
                out.pop()
            out.append(p)
        return out

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def pair(image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """Two of a kind side by side (a pair of shoes): the drawing twice, the second shifted, a little turned."""
    strokes = _silhouette(image, rng)
    pts = np.concatenate(strokes)
    width = float(np.ptp(pts[:, 0])) or 1.0
    angle = math.radians(rng.uniform(-8, 8))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = pts.mean(axis=0)
    shift = np.array([width * rng.uniform(0.55, 1.15), rng.uniform(-0.1, 0.1) * width])
    second = [(s - centre) @ rot.T * rng.uniform(0.9, 1.05) + centre + shift for s in strokes]
    both = strokes + second
    return Drawing(both, list(rng.uniform(0.8, 1.4, len(both))))


def partial(image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """A partial drawing: only a contiguous 55-85% of the outline's length, plus some inner lines."""
    strokes = _silhouette(image, rng)
    outline = max(strokes, key=len)
    keep = rng.uniform(0.55, 0.85)
    start = int(rng.integers(len(outline)))
    n = max(2, int(len(outline) * keep))
    idx = (start + np.arange(n)) % len(outline)
    cut = [outline[idx]] + [s for s in strokes if s is not outline and rng.random() < 0.5]
    return Drawing(cut, list(rng.uniform(0.8, 1.4, len(cut))))


def dashed(image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """Sparse strokes: the outline drawn as short dashes with gaps."""
    strokes = _silhouette(image, rng)
    dashes: list[Stroke] = []
    for s in strokes:
        dash, gap = int(rng.integers(3, 7)), int(rng.integers(2, 5))
        for a in range(0, len(s) - 1, dash + gap):
            if len(s[a : a + dash + 1]) >= 2:
                dashes.append(s[a : a + dash + 1])
    dashes = dashes or strokes
    return Drawing(dashes, list(rng.uniform(0.8, 1.3, len(dashes))))


def hatched(image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """Dense, patterned: the outline plus parallel hatching (sometimes cross-hatching) inside."""
    strokes = _silhouette(image, rng)
    mask = _mask(image)
    angle = rng.uniform(0, math.pi)
    inside = _inside_lines(mask, rng, spacing=rng.uniform(2.5, 4.5), angle=angle)
    if rng.random() < 0.35:
        inside += _inside_lines(mask, rng, spacing=rng.uniform(3.0, 5.0), angle=angle + math.pi / 2)
    both = strokes + inside
    return Drawing(both, [float(rng.uniform(0.9, 1.3))] * len(strokes) + [float(rng.uniform(0.4, 0.7))] * len(inside))


def scribbled(image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """The outline plus a black zig-zag scribble inside (shading)."""
    strokes = _silhouette(image, rng) + [_zigzag(_mask(image), rng)]
    return Drawing(strokes, list(rng.uniform(0.8, 1.4, len(strokes))))


def foreshortened(image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """Rotation and strong perspective: the drawing squashed along a random axis and tapered."""
    strokes = _silhouette(image, rng)
    pts = np.concatenate(strokes)
    centre, span = pts.mean(axis=0), float(np.ptp(pts, axis=0).max()) or 1.0
    angle = math.radians(rng.uniform(-30, 30))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    squash = np.diag([1.0, rng.uniform(0.5, 0.8)] if rng.random() < 0.5 else [rng.uniform(0.5, 0.8), 1.0])
    taper = rng.uniform(-0.35, 0.35)

    def warp(s: np.ndarray) -> np.ndarray:
        p = (s - centre) @ (rot @ squash).T
        p[:, 0] *= 1.0 + taper * p[:, 1] / span  # a trapezoid: one end wider than the other
        return p + centre

    out = [warp(s) for s in strokes]
    return Drawing(out, list(rng.uniform(0.8, 1.4, len(out))))


def color_fill(image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """The outline and a fill in the product's colour (jittered like a coarse palette)."""
    strokes = _silhouette(image, rng)
    fill = PenStroke(_outline(image, rng), color=_jitter_colour(_product_colour(image), rng), fill=True)
    return Drawing([*strokes, fill], None)


def color_scribble(image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """The outline and a scribble of the product's colour inside it."""
    strokes = _silhouette(image, rng)
    width = float(rng.uniform(6, 16))
    scribble = PenStroke(_zigzag(_mask(image), rng), color=_jitter_colour(_product_colour(image), rng), width=width)
    return Drawing([*strokes, scribble], None)


#: Every style by name, in report order. ``silhouette`` is the original single style.
STYLES: dict[str, Style] = {
    "silhouette": _synth(SynthesisOptions()),
    "clipart": _synth(
        SynthesisOptions(
            inner_levels=(2, 4),
            inner_keep=0.95,
            jitter=(0.0, 0.1),
            wobble=(0.0, 0.2),
            break_prob=0.05,
            overdraw_prob=0.0,
            width=(0.9, 1.1),
        )
    ),
    "doodle": doodle,
    "broken_overtraced": _synth(SynthesisOptions(break_prob=0.9, drop_piece=0.3, overdraw_prob=0.8)),
    "marker": _synth(SynthesisOptions(width=(2.0, 2.6), simplify=(1.0, 2.0), inner_levels=(0, 1))),
    "thin_pen": _synth(SynthesisOptions(width=(0.45, 0.65), jitter=(0.2, 0.5))),
    "wobbly": _synth(SynthesisOptions(wobble=(1.0, 2.2), jitter=(0.3, 0.6))),
    "rotated": _synth(SynthesisOptions(rotation=30.0, stretch=0.25)),
    "foreshortened": foreshortened,
    "pair": pair,
    "partial": partial,
    "dashed": dashed,
    "hatched": hatched,
    "scribbled": scribbled,
    "color_fill": color_fill,
    "color_scribble": color_scribble,
}
#: Styles never trained on: the honest measure of a style nobody trained for.
HELD_OUT_STYLES = ("pair", "hatched")
#: Styles a zoo-trained profile trains on (every style but the held-out ones).
TRAIN_STYLES = tuple(name for name in STYLES if name not in HELD_OUT_STYLES)
#: ``vitrina build --train-styles zoo``: every trained style, the original silhouette six times
#: (about a third of the sketches), the others once each.
ZOO_MIX = ("silhouette",) * 6 + tuple(name for name in TRAIN_STYLES if name != "silhouette")


def parse_styles(text: str) -> tuple[str, ...]:
    """``zoo`` (:data:`ZOO_MIX`) or comma-separated style names (repeats weigh a style more);
    ValueError naming the unknown ones and the choices."""
    if text.strip() == "zoo":
        return ZOO_MIX
    return check_styles(tuple(n.strip() for n in text.split(",") if n.strip()))


def check_styles(names: tuple[str, ...]) -> tuple[str, ...]:
    """``names`` if every one is a style; ValueError naming the unknown ones and the choices."""
    unknown = [n for n in names if n not in STYLES]
    if unknown or not names:
        raise ValueError(f"unknown sketch style(s) {unknown or names}; choose from {', '.join(STYLES)}")
    return names


def draw_style(name: str, image: np.ndarray, rng: np.random.Generator) -> Drawing:
    """One sketch of ``image`` ((h, w, 3) or (h, w) uint8 product photo on white) in style ``name``."""
    return STYLES[check_styles((name,))[0]](image, rng)


def render_style(name: str, image: np.ndarray, rng: np.random.Generator, raster: RasterOptions) -> np.ndarray:
    """One sketch in style ``name`` as the black-ink encoder's input: (S, S) uint8, 255 paper.
    Colour strokes are drawn as ink (a fill as its outline), as the device does."""
    drawing = draw_style(name, image, rng)
    return rasterize_strokes(drawing.strokes, raster, drawing.widths)
