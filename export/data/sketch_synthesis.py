"""Sketch synthesis: product photos → sloppy, hand-drawn-looking strokes.

No registry ships human sketches of these products, so training sketches are
made from the product images: the silhouette contour and inner edges
(iso-contours of the product's ink density) become polylines, which are then
simplified, jittered, wobbled, broken, partly dropped and over-drawn, with
varying pen width. The result goes through the runtime rasteriser, so training
sees exactly what the device feeds the encoder.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from skimage.measure import find_contours

from vitrina.runtime.rasterize import RasterOptions, Stroke, rasterize_strokes


@dataclass(frozen=True, kw_only=True)
class SynthesisOptions:
    """Randomness of synthetic sketches (lengths in source-image pixels).

    Attributes:
        silhouette_level: range of the ink-density level traced as the outline.
        inner_levels: how many inner iso-contours to trace (inclusive range).
        inner_keep: probability of keeping each inner edge.
        min_length: shortest polyline kept, pixels.
        simplify: range of the Ramer-Douglas-Peucker tolerance, pixels.
        jitter: range of per-point Gaussian noise sigma, pixels.
        wobble: range of the smooth low-frequency drift sigma, pixels.
        break_prob: probability of breaking a stroke into pieces.
        drop_piece: probability of dropping each broken-off piece.
        overdraw_prob: probability of drawing a stroke twice, slightly offset.
        rotation: maximum rotation of the whole drawing, degrees.
        stretch: maximum relative change of aspect ratio.
        width: range of the per-stroke pen-width multiplier.
    """

    silhouette_level: tuple[float, float] = (0.06, 0.22)
    inner_levels: tuple[int, int] = (0, 2)
    inner_keep: float = 0.6
    min_length: float = 3.0
    simplify: tuple[float, float] = (0.25, 1.2)
    jitter: tuple[float, float] = (0.0, 0.35)
    wobble: tuple[float, float] = (0.0, 0.6)
    break_prob: float = 0.3
    drop_piece: float = 0.25
    overdraw_prob: float = 0.2
    rotation: float = 8.0
    stretch: float = 0.12
    width: tuple[float, float] = (0.7, 1.5)


def ink_density(image: np.ndarray) -> np.ndarray:
    """(h, w) float32 in [0, 1]: how far each pixel is from white paper,
    normalised so the darkest product pixel is 1. Works for any tint."""
    rgb = image.astype(np.float32)
    darkness = (255.0 - (rgb.min(axis=-1) if rgb.ndim == 3 else rgb)) / 255.0
    return darkness / max(float(darkness.max()), 1e-6)


def simplify_polyline(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Ramer-Douglas-Peucker: drop points closer than ``tolerance`` to the chord."""
    if len(points) < 3 or tolerance <= 0:
        return points
    keep = np.zeros(len(points), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(points) - 1)]
    while stack:
        lo, hi = stack.pop()
        if hi - lo < 2:
            continue
        a, b = points[lo], points[hi]
        seg = points[lo + 1 : hi] - a
        chord = b - a
        norm = math.hypot(*chord)
        if norm < 1e-9:
            dist = np.hypot(seg[:, 0], seg[:, 1])
        else:
            dist = np.abs(chord[0] * seg[:, 1] - chord[1] * seg[:, 0]) / norm
        i = int(np.argmax(dist))
        if dist[i] > tolerance:
            mid = lo + 1 + i
            keep[mid] = True
            stack += [(lo, mid), (mid, hi)]
    return points[keep]


def _length(points: np.ndarray) -> float:
    return float(np.hypot(*np.diff(points, axis=0).T).sum()) if len(points) > 1 else 0.0


def trace_edges(image: np.ndarray, rng: np.random.Generator, opts: SynthesisOptions) -> list[Stroke]:
    """Silhouette and inner-edge polylines of a product photo, (x, y) pixels."""
    density = np.pad(ink_density(image), 1)
    lines = list(find_contours(density, rng.uniform(*opts.silhouette_level)))
    for level in rng.uniform(0.35, 0.85, size=rng.integers(opts.inner_levels[0], opts.inner_levels[1] + 1)):
        lines += [c for c in find_contours(density, level) if rng.random() < opts.inner_keep]
    # find_contours gives (row, col); strokes are (x, y).
    return [c[:, ::-1].copy() for c in lines if _length(c) >= opts.min_length]


def _roughen(stroke: Stroke, rng: np.random.Generator, opts: SynthesisOptions) -> list[Stroke]:
    """Simplify, wobble and jitter one stroke; maybe break it and drop pieces."""
    pts = simplify_polyline(stroke, rng.uniform(*opts.simplify))
    # Resample so wobble has points to bend, then drift smoothly along the stroke.
    n = max(2, int(_length(pts) / 1.5))
    t = np.linspace(0.0, 1.0, n)
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    cum /= max(cum[-1], 1e-9)
    pts = np.stack([np.interp(t, cum, pts[:, 0]), np.interp(t, cum, pts[:, 1])], axis=1)
    drift = np.cumsum(rng.normal(0.0, 1.0, size=(n, 2)), axis=0)
    drift -= np.linspace(drift[0], drift[-1], n)
    drift *= rng.uniform(*opts.wobble) / max(float(np.abs(drift).max()), 1e-9)
    pts = pts + drift + rng.normal(0.0, rng.uniform(*opts.jitter), size=pts.shape)
    if n >= 6 and rng.random() < opts.break_prob:
        cuts = np.sort(rng.choice(np.arange(2, n - 2), size=min(int(rng.integers(1, 4)), n - 4), replace=False))
        pieces = np.split(pts, cuts)
        kept = [p for p in pieces if rng.random() >= opts.drop_piece] or [max(pieces, key=len)]
        return [p for p in kept if len(p) >= 2]
    return [pts]


def synthesize_strokes(
    image: np.ndarray, rng: np.random.Generator, opts: SynthesisOptions = SynthesisOptions()
) -> tuple[list[Stroke], list[float]]:
    """Make one sketch of a product photo.

    Args:
        image: (h, w, 3) or (h, w) uint8 product photo on white.

    Returns:
        strokes as (m, 2) float arrays (x, y, y down) and a pen-width multiplier per stroke.
        Falls back to the image's bounding box outline when the photo is blank.
    """
    traced = trace_edges(image, rng, opts)
    if not traced:
        h, w = image.shape[:2]
        traced = [np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1], [0, 0]], dtype=np.float64)]
    strokes: list[Stroke] = []
    for line in traced:
        pieces = _roughen(line, rng, opts)
        strokes += pieces
        if pieces and rng.random() < opts.overdraw_prob:
            strokes.append(pieces[0] + rng.normal(0.0, 0.6, size=2))
    if not strokes:  # every piece was dropped: keep the clean outline rather than nothing
        strokes = traced
    angle = math.radians(rng.uniform(-opts.rotation, opts.rotation))
    stretch = 1.0 + rng.uniform(-opts.stretch, opts.stretch)
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    transform = rot @ np.diag([stretch, 1.0 / stretch])
    strokes = [s @ transform.T for s in strokes]
    widths = list(rng.uniform(*opts.width, size=len(strokes)))
    return strokes, widths


def render_sketch(
    image: np.ndarray, rng: np.random.Generator, raster: RasterOptions, opts: SynthesisOptions = SynthesisOptions()
) -> np.ndarray:
    """One synthetic sketch of ``image`` as encoder input: (S, S) uint8, 255 paper."""
    strokes, widths = synthesize_strokes(image, rng, opts)
    return rasterize_strokes(strokes, raster, widths)


def _render_chunk(
    args: tuple[np.ndarray, int, RasterOptions, SynthesisOptions, int, tuple[str, ...] | None],
) -> np.ndarray:
    images, variants, raster, opts, seed, styles = args
    rng = np.random.default_rng(seed)
    out = np.empty((len(images), variants, raster.size, raster.size), dtype=np.uint8)
    if styles is not None:
        from .sketch_styles import render_style  # the zoo builds on this module

    for i, image in enumerate(images):
        for v in range(variants):
            if styles is None:
                out[i, v] = render_sketch(image, rng, raster, opts)
            else:
                out[i, v] = render_style(styles[int(rng.integers(len(styles)))], image, rng, raster)
    return out


def render_sketches(
    images: np.ndarray,
    variants: int,
    raster: RasterOptions,
    *,
    seed: int,
    opts: SynthesisOptions = SynthesisOptions(),
    workers: int = 2,
    progress: bool = True,
    desc: str = "sketches",
    styles: tuple[str, ...] | None = None,
) -> np.ndarray:
    """Render ``variants`` different sketches of every image, in parallel.

    Deterministic for a given ``seed`` whatever ``workers`` is. ``styles``: draw
    each sketch in a style picked at random from these (``sketch_styles.STYLES``);
    None draws every sketch with ``opts`` (the original single style).

    Returns:
        (n, variants, S, S) uint8 sketches.
    """
    chunk = 256
    jobs = [
        (images[s : s + chunk], variants, raster, opts, seed * 1_000_003 + s, styles)
        for s in range(0, len(images), chunk)
    ]
    results: list[np.ndarray] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(images), desc=desc, unit="img", mininterval=1.0)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for job, res in zip(jobs, pool.map(_render_chunk, jobs)):
                results.append(res)
                if bar:
                    bar.update(len(job[0]))
    else:
        for job in jobs:
            results.append(_render_chunk(job))
            if bar:
                bar.update(len(job[0]))
    if bar:
        bar.close()
    if not results:
        return np.empty((0, variants, raster.size, raster.size), dtype=np.uint8)
    return np.concatenate(results)
