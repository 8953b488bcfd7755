"""Pure geometry of the photo screen's outlines: no widgets, testable without a window.

A photo of (w, h) pixels is shown fitted inside a widget (aspect kept, centred);
detector boxes (x0, y0, x1, y1) in photo pixels, y down, become widget rectangles
(x, y, width, height) with Kivy's y up, and a touch picks the smallest box under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Fit:
    """Where a photo sits in a widget: bottom-left corner (x, y) and scale (widget px per photo px)."""

    x: float
    y: float
    scale: float


def fit_photo(photo_size: tuple[int, int], pos: tuple[float, float], size: tuple[float, float]) -> Fit:
    """The largest placement of a (w, h) photo inside a widget at ``pos`` of ``size``, centred."""
    w, h = photo_size
    if w <= 0 or h <= 0:
        return Fit(pos[0], pos[1], 0.0)
    scale = min(size[0] / w, size[1] / h)
    return Fit(pos[0] + (size[0] - w * scale) / 2, pos[1] + (size[1] - h * scale) / 2, scale)


def box_rect(box: Sequence[float], photo_height: int, fit: Fit) -> tuple[float, float, float, float]:
    """A photo box (x0, y0, x1, y1), y down → the widget rectangle (x, y, width, height), y up."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return (
        fit.x + x0 * fit.scale,
        fit.y + (photo_height - y1) * fit.scale,
        (x1 - x0) * fit.scale,
        (y1 - y0) * fit.scale,
    )


def box_at(rects: Sequence[tuple[float, float, float, float]], x: float, y: float) -> int | None:
    """Index of the smallest rectangle containing (x, y) (nested outlines: the inner one), or None."""
    best, best_area = None, float("inf")
    for i, (rx, ry, rw, rh) in enumerate(rects):
        if rx <= x <= rx + rw and ry <= y <= ry + rh and rw * rh < best_area:
            best, best_area = i, rw * rh
    return best
