"""Readers for the two standard Quick, Draw! formats.

* ``.npy`` bitmaps: (N, 784) uint8, 28×28 drawings, ink 255 on background 0.
* ``.ndjson`` drawings: one JSON object per line with ``word``, ``key_id``,
  ``recognized`` and ``drawing``: a list of strokes, each ``[xs, ys]``
  (simplified files) or ``[xs, ys, ts]`` (raw files, times in ms).

No registry ships this data; retailers and researchers who have it can feed
human sketches through the same rasteriser and encoders.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vitrina.runtime.rasterize import Stroke


@dataclass(frozen=True)
class QuickDrawSketch:
    """One drawing. ``strokes``: (m, 2) float arrays of (x, y), y down."""

    word: str
    key_id: str
    recognized: bool
    strokes: tuple[Stroke, ...]


def read_bitmaps(path: str | Path) -> np.ndarray:
    """Read a bitmap ``.npy`` file as (N, 28, 28) uint8 in vitrina's convention:
    255 paper, 0 ink (the file stores ink as 255 on 0)."""
    path = Path(path)
    try:
        raw = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path} is not a Quick, Draw! bitmap .npy file: {exc}") from None
    if raw.dtype != np.uint8 or raw.ndim != 2 or raw.shape[1] != 784:
        raise ValueError(f"{path}: expected a (N, 784) uint8 array, got {raw.dtype} {raw.shape}")
    return 255 - raw.reshape(-1, 28, 28)


def iter_ndjson(path: str | Path) -> Iterator[QuickDrawSketch]:
    """Yield the drawings of a simplified or raw ``.ndjson`` file, line by line.

    Raises:
        ValueError: a line is not JSON or not a drawing; the message names the line.
    """
    path = Path(path)
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield _parse_drawing(json.loads(line))
            except (json.JSONDecodeError, ValueError, TypeError, KeyError) as exc:
                raise ValueError(f"{path} line {line_no}: not a Quick, Draw! drawing ({exc})") from None


def _parse_drawing(obj: dict) -> QuickDrawSketch:
    strokes = []
    for i, stroke in enumerate(obj["drawing"]):
        if not isinstance(stroke, list) or len(stroke) not in (2, 3):
            raise ValueError(f"stroke {i} must be [xs, ys] or [xs, ys, ts]")
        xs, ys = np.asarray(stroke[0], dtype=np.float64), np.asarray(stroke[1], dtype=np.float64)
        if xs.ndim != 1 or xs.shape != ys.shape:
            raise ValueError(f"stroke {i} has {xs.size} x and {ys.size} y values")
        strokes.append(np.stack([xs, ys], axis=1))
    return QuickDrawSketch(
        word=str(obj.get("word", "")),
        key_id=str(obj.get("key_id", "")),
        recognized=bool(obj.get("recognized", True)),
        strokes=tuple(strokes),
    )
