"""Photo search through the detector: detect → pick a box → crop → photo encoder → search.

:func:`photo_query` does the first three steps for ``ProductSearch.by_photo``:
the box searched is the caller's index, or else the largest; the crop keeps
its aspect ratio (``detector.crop_box``; the photo encoder pads it to a square
on white, never stretches it: stretched trousers look like shorts). Without a
detection, or without a detector in the bundle, the whole photo is searched and
the result says so (:data:`WHOLE_IMAGE`, with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PIL import Image

from .detector import DetectionResult, Detector, crop_box
from .photo import on_white
from .search import SearchResult

#: Shortest side a query photo file is decoded at (the detector's input is 128 px;
#: the crop of a small product needs more).
PHOTO_MIN_SIDE = 512
#: ``PhotoSearchResult.fallback`` when the whole photo was searched.
WHOLE_IMAGE = "whole image"
NO_DETECTION = "no product was detected in the photo"
NO_DETECTOR = "the bundle has no detector"


@dataclass(frozen=True)
class PhotoSearchResult(SearchResult):
    """A photo search's matches (as :class:`SearchResult`) plus what the detector saw.

    Attributes:
        detections: every box found in the photo (None when the bundle has no detector).
        searched_box: index into ``detections`` of the box searched; None when the whole photo was.
        fallback: :data:`WHOLE_IMAGE` when the whole photo was searched, else None.
        fallback_reason: why (:data:`NO_DETECTION` or :data:`NO_DETECTOR`), else None.
    """

    detections: DetectionResult | None = None
    searched_box: int | None = None
    fallback: str | None = None
    fallback_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"results": [...], "boxes": [...], "searched_box": N or None, "fallback": None or "whole image",
        "fallback_reason": ..., "image_size": [w, h] or None, "capped_by": ..., "cap": ...}``."""
        boxes = self.detections.to_json() if self.detections is not None else {"boxes": [], "image_size": None}
        return {
            "results": [m.to_json() for m in self.matches],
            "boxes": boxes["boxes"],
            "searched_box": self.searched_box,
            "fallback": self.fallback,
            "fallback_reason": self.fallback_reason,
            "image_size": boxes["image_size"],
            "capped_by": self.capped_by,
            "cap": self.cap,
        }


@dataclass(frozen=True)
class PhotoQuery:
    """The image the photo encoder gets and how it was chosen (fields as :class:`PhotoSearchResult`)."""

    image: Image.Image
    detections: DetectionResult | None
    searched_box: int | None
    fallback_reason: str | None


def pick_box(detections: DetectionResult, box: int | None) -> int | None:
    """The box to search: ``box`` when given (checked), else the largest; None without boxes.

    Raises:
        ValueError: ``box`` is not an index of ``detections``.
    """
    if box is None:
        return detections.largest()
    n = len(detections)
    if isinstance(box, bool) or not isinstance(box, int) or not 0 <= box < n:
        have = f"boxes 0 to {n - 1}" if n else "no boxes"
        raise ValueError(f"box {box!r} is out of range: the photo has {n} detected product(s) ({have})")
    return box


def photo_query(
    image: Image.Image,
    detector: Detector | None,
    box: int | None = None,
    detections: DetectionResult | None = None,
) -> PhotoQuery:
    """Detect (unless ``detections`` of this image are given), pick the box and crop it.

    Raises:
        ValueError: ``box`` given without a detector, or out of range.
    """
    rgb = on_white(image)
    if detector is None and detections is None:
        if box is not None:
            raise ValueError(f"cannot search box {box}: {NO_DETECTOR} (search the whole photo without a box)")
        return PhotoQuery(rgb, None, None, NO_DETECTOR)
    if detections is None:
        assert detector is not None  # for mypy: checked above
        detections = detector.detect(rgb)
    index = pick_box(detections, box)
    if index is None:
        return PhotoQuery(rgb, detections, None, NO_DETECTION)
    return PhotoQuery(crop_box(rgb, detections.boxes[index]), detections, index, None)
