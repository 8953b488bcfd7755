"""Main-product identification at export: which product of a catalog photo is the one sold?

Retail catalog photos often show a model wearing several garments, and only one
is for sale. Indexing the whole photo, or the wrong garment, makes a sketch of
trousers return the sweater the model wears. So the build looks at every
catalog photo:

* a **packshot** (the product alone on white: at least :data:`BORDER_SHARE` of
  the photo's border is white, as a background never is) is encoded whole, and only packshots train the
  encoders, the detector and the text-visual model;
* **any other photo** goes through the detector; each box is cropped (aspect kept,
  :func:`~vitrina.runtime.text_visual.square_crop`, as the device crops) and
  embedded with the product's title by the text-visual model, and the crop with
  the highest plausibility for the title (the best method of ``vitrina eval
  --task identify``) is what the sketch and photo codes encode. With one box, that
  box; with none, the whole photo. Without a text-visual model, the largest box.

Everything runs through LiteRT with the int8 models the bundle ships, as the
device would. The catalog's ground truth (``outfits.json`` of the demo catalog)
is never read here.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vitrina.runtime.detector import Detector, DetectorOptions
from vitrina.runtime.text_visual import TextVisualEncoder, TextVisualOptions, square_crop

#: A border pixel is white when all its channels are at least this (0-255).
WHITE_LEVEL = 245
#: A photo is a packshot when at least this share of its border pixels are white. Products
#: photographed on white often touch the frame (a pullover's sleeves, a dress's hem): on 500
#: demo packshots the white share of the border was 0.48 at least (0.86 median), on 133
#: outfit photos 0.014 at most.
BORDER_SHARE = 0.3
#: Border width examined, pixels.
BORDER = 2
#: How the crop is picked (``vitrina eval --task identify`` names).
PLAUSIBILITY, LARGEST, WHOLE = "plausibility", "largest", "whole photo"


def packshot_mask(images: np.ndarray) -> np.ndarray:
    """(N,) bool: which of (N, H, W, 3) uint8 photos show their product alone on white.

    A packshot's border is white (at least :data:`BORDER_SHARE` of the pixels in a
    :data:`BORDER`-pixel frame have every channel >= :data:`WHITE_LEVEL`); an outfit
    or lifestyle photo's border is background.
    """
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be (N, H, W, 3) uint8, got {images.dtype} {images.shape}")
    white = images.min(axis=3) >= WHITE_LEVEL
    frame = np.ones(images.shape[1:3], bool)
    frame[BORDER:-BORDER, BORDER:-BORDER] = False
    return white[:, frame].mean(axis=1) >= BORDER_SHARE


@dataclass(frozen=True, kw_only=True)
class Identification:
    """The crop each non-packshot catalog photo is encoded by.

    Attributes:
        rows: (n,) int64 catalog image rows that are not packshots.
        boxes: (n, 4) float32 xyxy box picked in each photo's pixels; NaN where none was
            found (the whole photo is encoded).
        found: (n,) int32 boxes the detector found in each photo.
        method: how the box was picked (:data:`PLAUSIBILITY` or :data:`LARGEST`).
        seconds: wall-clock seconds of the identification.
    """

    rows: np.ndarray
    boxes: np.ndarray
    found: np.ndarray
    method: str
    seconds: float

    def crops(self, images: np.ndarray, size: int) -> np.ndarray:
        """(n, size, size, 3) uint8: each row's picked crop of ``images`` (N, H, W, 3), padded square
        (the whole photo where no box was found)."""
        out = np.empty((len(self.rows), size, size, 3), np.uint8)
        for k, (row, box) in enumerate(zip(self.rows, self.boxes)):
            out[k] = square_crop(images[row], size, None if np.isnan(box).any() else box)
        return out

    def report(self, photos: int) -> dict[str, object]:
        """The build report's entry: how many of ``photos`` catalog photos were packshots, and of
        the others how many showed several products, one, or none the detector found."""
        return {
            "photos": photos,
            "packshots": photos - len(self.rows),
            "other_photos": len(self.rows),
            "several_products": int(np.sum(self.found >= 2)),
            "one_product": int(np.sum(self.found == 1)),
            "no_product_found": int(np.sum(self.found == 0)),
            "method": self.method,
            "seconds": round(self.seconds, 1),
        }


def identify_main_products(
    images: np.ndarray,
    rows: np.ndarray,
    *,
    detector_model: bytes,
    score_threshold: float,
    text_visual_model: bytes | None,
    title_ids: np.ndarray | None,
    progress: bool = True,
) -> Identification:
    """Pick the sold product's box in each of ``images[rows]`` (see the module docstring).

    Args:
        images: (N, H, W, 3) uint8 catalog photos (the build's prepared images).
        rows: (n,) rows of ``images`` to look at (the photos that are not packshots).
        detector_model: the int8 detector TFLite; score_threshold: its shipped threshold.
        text_visual_model: the int8 text-visual TFLite, or None (the largest box is picked).
        title_ids: (n, W) int32 word ids of each photo's product title (with ``text_visual_model``).
    """
    t0 = time.monotonic()
    rows = np.asarray(rows, np.int64)
    if text_visual_model is not None and (title_ids is None or len(title_ids) != len(rows)):
        raise ValueError("identification with a text-visual model needs one title (word ids) per photo")
    boxes = np.full((len(rows), 4), np.nan, np.float32)
    found = np.zeros(len(rows), np.int32)
    if len(rows) == 0:
        return Identification(rows=rows, boxes=boxes, found=found, method=PLAUSIBILITY, seconds=0.0)
    with tempfile.TemporaryDirectory(prefix="vitrina-identify-") as tmp:
        det_path = Path(tmp) / "detector.tflite"
        det_path.write_bytes(detector_model)
        options = DetectorOptions(model_path=str(det_path), num_threads=2, score_threshold=score_threshold)
        candidates: list[np.ndarray] = []
        with Detector.create_from_options(options) as detector:
            for row in tqdm(
                rows, desc="identifying sold products", unit="photo", disable=not progress, mininterval=1.0
            ):
                candidates.append(detector.detect(images[row]).boxes)
        found[:] = [len(c) for c in candidates]
        if text_visual_model is None or title_ids is None:
            for k, c in enumerate(candidates):
                if len(c):
                    boxes[k] = c[int(np.argmax((c[:, 2] - c[:, 0]) * (c[:, 3] - c[:, 1])))]
            return Identification(rows=rows, boxes=boxes, found=found, method=LARGEST, seconds=time.monotonic() - t0)
        tv_path = Path(tmp) / "text_visual.tflite"
        tv_path.write_bytes(text_visual_model)
        tv_options = TextVisualOptions(model_path=str(tv_path), num_threads=2, batch_size=64)
        with TextVisualEncoder.create_from_options(tv_options) as encoder:
            plausibility = _plausibilities(encoder, images, rows, candidates, title_ids)
    start = 0
    for k, c in enumerate(candidates):
        if len(c):
            boxes[k] = c[int(np.argmax(plausibility[start : start + len(c)]))]
        start += len(c)
    return Identification(rows=rows, boxes=boxes, found=found, method=PLAUSIBILITY, seconds=time.monotonic() - t0)


def _plausibilities(
    encoder: TextVisualEncoder,
    images: np.ndarray,
    rows: np.ndarray,
    candidates: list[np.ndarray],
    title_ids: np.ndarray,
) -> np.ndarray:
    """(sum of boxes,) float32: the plausibility of every (title, crop) pair, photo after photo."""
    pairs = [(k, box) for k, c in enumerate(candidates) for box in c]
    out = np.empty(len(pairs), np.float32)
    chunk = 4096
    for start in range(0, len(pairs), chunk):
        part = pairs[start : start + chunk]
        crops = np.stack([square_crop(images[rows[k]], encoder.image_size, box) for k, box in part])
        words = np.stack([title_ids[k] for k, _ in part]).astype(np.int32)
        out[start : start + len(part)] = encoder.encode(words=words, images=crops).plausibility
    return out
