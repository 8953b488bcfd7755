"""Pure geometry for the kiosk: no widgets, testable without a window.

Kivy's y axis points up; strokes for the search point down (screen pixels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vitrina.runtime.rasterize import INK_MAX_CHANNEL, PenStroke


def interpolate(x0: float, y0: float, x1: float, y1: float, spacing: float) -> list[tuple[float, float]]:
    """Points from (x0, y0) (exclusive) to (x1, y1) (inclusive), at most ``spacing`` apart
    (touchtracer's trick: fast finger moves still give an even stroke)."""
    distance = math.hypot(x1 - x0, y1 - y0)
    steps = max(1, int(math.ceil(distance / max(spacing, 1e-6))))
    return [(x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps) for i in range(1, steps + 1)]


def to_search_strokes(strokes: Sequence[Sequence[float]], height: float) -> list[np.ndarray]:
    """Kivy flat point lists ``[x0, y0, x1, y1, ...]`` (y up, widget-local) →
    (m, 2) arrays with y pointing down, as the rasteriser expects."""
    out = []
    for flat in strokes:
        pts = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
        if len(pts):
            out.append(np.stack([pts[:, 0], height - pts[:, 1]], axis=1))
    return out


def pen_strokes(
    strokes: Sequence[tuple[Sequence[float], Sequence[float], bool]], height: float
) -> list[np.ndarray | PenStroke]:
    """Kivy strokes ``(flat points (y up, widget-local), RGB 0-1, filled)`` → search strokes, y down:
    a black (all channels <= ``INK_MAX_CHANNEL``) unfilled stroke as an (m, 2) array, exactly
    as black ink always was; a colour or filled one as a :class:`PenStroke` with RGB 0-255."""
    arrays = to_search_strokes([flat for flat, _, _ in strokes], height)
    kept = [(rgb, fill) for flat, rgb, fill in strokes if len(flat) >= 2]
    out: list[np.ndarray | PenStroke] = []
    for points, (rgb, fill) in zip(arrays, kept):
        color = tuple(int(round(min(max(float(c), 0.0), 1.0) * 255)) for c in rgb[:3])
        if not fill and max(color) <= INK_MAX_CHANNEL:
            out.append(points)
        else:
            out.append(PenStroke(points, color=(color[0], color[1], color[2]), fill=fill))
    return out


def stroke_hit(flat: Sequence[float], x: float, y: float, radius: float) -> bool:
    """True when any segment of the flat point list passes within ``radius`` of (x, y)."""
    pts = np.asarray(flat, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        return False
    if len(pts) == 1:
        return math.hypot(pts[0, 0] - x, pts[0, 1] - y) <= radius
    a, b = pts[:-1], pts[1:]
    ab = b - a
    t = np.clip(((x - a[:, 0]) * ab[:, 0] + (y - a[:, 1]) * ab[:, 1]) / np.maximum((ab**2).sum(axis=1), 1e-12), 0, 1)
    closest = a + ab * t[:, None]
    return bool((np.hypot(closest[:, 0] - x, closest[:, 1] - y) <= radius).any())


@dataclass(frozen=True)
class Layout:
    """How the main screen arranges itself for a window size.

    Attributes: portrait (canvas above results), tile (side of a result
    thumbnail, px; result grids fit as many columns as their width allows).
    """

    portrait: bool
    tile: int


def layout_for(width: float, height: float) -> Layout:
    """Landscape: canvas left, results right. Portrait (phones): canvas on top."""
    portrait = height > width
    results_width = width if portrait else width * 0.42
    tile = int(max(96, min(180, results_width / 4)))
    return Layout(portrait, tile)


def rects_overlap(
    a: tuple[float, float, float, float], b: tuple[float, float, float, float], tolerance: float = 0.5
) -> bool:
    """Do two (x, y, w, h) rectangles overlap by more than ``tolerance`` px on both axes?"""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return min(ax + aw, bx + bw) - max(ax, bx) > tolerance and min(ay + ah, by + bh) - max(ay, by) > tolerance


def clip_text(text: str, width_px: float, font_px: float) -> str:
    """Cut ``text`` to what fits in ``width_px`` at ``font_px`` (average glyph ≈ 0.55 em), with an ellipsis."""
    fits = max(4, int(width_px / (0.55 * font_px)))
    return text if len(text) <= fits else text[: fits - 1].rstrip() + "…"


def fit_strokes(
    strokes: Sequence[np.ndarray], width: float, height: float, center: tuple[float, float], fill: float = 0.7
) -> list[np.ndarray]:
    """Scale y-down strokes (any range) into a ``width`` × ``height`` box around
    ``center`` in Kivy coordinates (y up), the drawing's long side at ``fill`` of
    the box's short side. Used to replay drawings as touches."""
    pts = np.concatenate([np.asarray(s, dtype=np.float64).reshape(-1, 2) for s in strokes])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    scale = fill * min(width, height) / max(1e-6, float((hi - lo).max()))
    out = []
    for line in strokes:
        xy = (np.asarray(line, dtype=np.float64) - (lo + hi) / 2) * scale
        xy[:, 1] = -xy[:, 1]
        out.append(xy + np.asarray(center, dtype=np.float64))
    return out


def fit_box(
    content: tuple[float, float] | None, box: tuple[float, float, float, float], upscale: bool = True
) -> tuple[float, float, float, float]:
    """Where content of ``content`` (width, height) px goes in ``box`` (x, y, width, height) px:
    scaled to fit with its aspect ratio kept (never above 1 without ``upscale``) and centred,
    as (x, y, width, height) px. Nothing (zero size, at the box's centre) for no or empty content."""
    x, y, width, height = box
    if content is None or content[0] <= 0 or content[1] <= 0:
        return x + width / 2.0, y + height / 2.0, 0.0, 0.0
    scale = max(0.0, min(width / content[0], height / content[1]))
    if not upscale:
        scale = min(scale, 1.0)
    w, h = content[0] * scale, content[1] * scale
    return x + (width - w) / 2.0, y + (height - h) / 2.0, w, h
