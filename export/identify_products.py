"""Main-product identification at export: which product of a catalog photo is the one sold?

Retail catalog photos often show a model wearing several garments, and only one
is for sale. Indexing the whole photo, or the wrong garment, makes a sketch of
trousers return the sweater the model wears. So the build looks at every
catalog photo:

* a **packshot** (the product alone on white: at least :data:`BORDER_SHARE` of
  the photo's border is white, as a background never is) is encoded whole, and only packshots train the
  encoders, the detector and the text-visual model;
* **any other photo** is loaded again at the detector's input side (at the
  encoders' 48 px an outfit photo's products are 15-20 px), goes through the
  detector; each box is cropped (aspect kept,
  :func:`~vitrina.runtime.text_visual.square_crop`, as the device crops) and
  embedded with the product's title by the text-visual model. The box picked is the
  best by :func:`~vitrina.runtime.identify.sold_box_scores`: the title's
  plausibility for the crop × the detector's objectness × the detector's
  probability of the title's category × the share of the box's middle in the
  product's colour family (the best method of ``vitrina eval --task identify``). Its crop is what the sketch and photo codes encode. With one box,
  that box; with none, the whole photo. Without a text-visual model, the largest box.

Everything runs through LiteRT with the int8 models the bundle ships, as the
device would. The catalog's ground truth (``outfits.json`` of the demo catalog)
is never read here.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from vitrina.runtime.color_search import ColorFamilies
from vitrina.runtime.detector import DetectionResult, Detector, DetectorOptions, box_areas
from vitrina.runtime.identify import COMBINED, colour_shares, pick_sold_box
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
LARGEST, WHOLE = "largest", "whole photo"


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
        side: side of the square photos the boxes refer to, pixels (they were loaded at it).
        boxes: (n, 4) float32 xyxy box picked in each photo, pixels of a ``side``-pixel photo;
            NaN where none was found (the whole photo is encoded).
        found: (n,) int32 boxes the detector found in each photo.
        crops: (n, S, S, 3) uint8 the picked crop (or the whole photo) at the encoders' side.
        method: how the box was picked (:data:`~vitrina.runtime.identify.COMBINED` or :data:`LARGEST`).
        seconds: wall-clock seconds of the identification.
    """

    rows: np.ndarray
    side: int
    boxes: np.ndarray
    found: np.ndarray
    crops: np.ndarray
    method: str
    seconds: float

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
            "side": self.side,
            "seconds": round(self.seconds, 1),
        }


def identify_main_products(
    load: Callable[[int], np.ndarray],
    rows: np.ndarray,
    *,
    detector_model: bytes,
    score_threshold: float,
    text_visual_model: bytes | None,
    title_ids: np.ndarray | None,
    title_categories: np.ndarray | None = None,
    families: ColorFamilies | None = None,
    title_families: np.ndarray | None = None,
    crop_size: int,
    progress: bool = True,
) -> Identification:
    """Pick the sold product's box in each catalog photo ``load(row)`` of ``rows`` (see the module docstring).

    Args:
        load: catalog image row → (side, side, 3) uint8 photo, every photo at one side (the build
            loads them again at the detector's input side: at the encoders' 48 px a product of an
            outfit photo is 15-20 px, too few for the detector and the encoders).
        rows: (n,) catalog image rows to look at (the photos that are not packshots).
        detector_model: the int8 detector TFLite; score_threshold: its shipped threshold.
        text_visual_model: the int8 text-visual TFLite, or None (the largest box is picked).
        title_ids: (n, W) int32 word ids of each photo's product title (with ``text_visual_model``).
        title_categories: (n,) int index of each photo's product category among the detector's
            categories (-1: one it does not know); None leaves the category out of the pick.
        families: the catalog's colour families; title_families: (n,) int index of each photo's
            product colour among them (-1: none); either None leaves the colour out of the pick.
        crop_size: side of the returned crops (the encoders' input), pixels.
    """
    t0 = time.monotonic()
    rows = np.asarray(rows, np.int64)
    if text_visual_model is not None and (title_ids is None or len(title_ids) != len(rows)):
        raise ValueError("identification with a text-visual model needs one title (word ids) per photo")
    if title_families is not None and len(title_families) != len(rows):
        raise ValueError(f"title_families must have one family per photo ({len(rows)}), got {len(title_families)}")
    if title_categories is not None and len(title_categories) != len(rows):
        raise ValueError(
            f"title_categories must have one category per photo ({len(rows)}), got {len(title_categories)}"
        )
    boxes = np.full((len(rows), 4), np.nan, np.float32)
    found = np.zeros(len(rows), np.int32)
    crops = np.empty((len(rows), crop_size, crop_size, 3), np.uint8)
    method = LARGEST if text_visual_model is None else COMBINED
    if len(rows) == 0:
        return Identification(rows=rows, side=0, boxes=boxes, found=found, crops=crops, method=method, seconds=0.0)
    with tempfile.TemporaryDirectory(prefix="vitrina-identify-") as tmp:
        det_path = Path(tmp) / "detector.tflite"
        det_path.write_bytes(detector_model)
        tv_path = Path(tmp) / "text_visual.tflite"
        if text_visual_model is not None:
            tv_path.write_bytes(text_visual_model)
        options = DetectorOptions(model_path=str(det_path), num_threads=2, score_threshold=score_threshold)
        tv_options = TextVisualOptions(model_path=str(tv_path), num_threads=2, batch_size=64)
        with (
            Detector.create_from_options(options) as detector,
            TextVisualEncoder.create_from_options(tv_options)
            if text_visual_model is not None
            else nullcontext() as encoder,
        ):
            side = 0
            bar = tqdm(
                total=len(rows), desc="identifying sold products", unit="photo", disable=not progress, mininterval=1.0
            )
            for start in range(0, len(rows), _CHUNK):
                part = np.arange(start, min(start + _CHUNK, len(rows)))
                images = [load(int(rows[k])) for k in part]
                side = images[0].shape[0]
                detections = [detector.detect(image) for image in images]
                picks = _pick(
                    detections,
                    images,
                    title_ids[part] if title_ids is not None else None,
                    title_categories[part] if title_categories is not None else None,
                    (families, title_families[part]) if families is not None and title_families is not None else None,
                    encoder,
                )
                for j, k in enumerate(part):
                    found[k] = len(detections[j])
                    box = None if picks[j] is None else detections[j].boxes[picks[j]]
                    if box is not None:
                        boxes[k] = box
                    crops[k] = square_crop(images[j], crop_size, box)
                bar.update(len(part))
            bar.close()
    return Identification(
        rows=rows, side=side, boxes=boxes, found=found, crops=crops, method=method, seconds=time.monotonic() - t0
    )


#: Photos loaded, detected and scored at a time.
_CHUNK = 512


def _pick(
    detections: list[DetectionResult],
    images: list[np.ndarray],
    title_ids: np.ndarray | None,
    title_categories: np.ndarray | None,
    colours: tuple[ColorFamilies, np.ndarray] | None,
    encoder: TextVisualEncoder | None,
) -> list[int | None]:
    """Index of the picked box of each photo (None: no box): the best by
    :func:`~vitrina.runtime.identify.pick_sold_box` with a text-visual encoder, else the largest box."""
    if encoder is None or title_ids is None:
        return [None if not len(d) else int(np.argmax(box_areas(d.boxes))) for d in detections]
    pairs = [(j, box) for j, d in enumerate(detections) for box in d.boxes]
    if not pairs:
        return [None] * len(detections)
    crops = np.stack([square_crop(images[j], encoder.image_size, box) for j, box in pairs])
    words = np.stack([title_ids[j] for j, _ in pairs]).astype(np.int32)
    plausibility = encoder.encode(words=words, images=crops).plausibility
    out: list[int | None] = []
    start = 0
    for j, d in enumerate(detections):
        out.append(
            pick_sold_box(
                plausibility[start : start + len(d)],
                objectness=d.scores,
                category_probs=d.category_probs,
                category=int(title_categories[j]) if title_categories is not None else -1,
                colour_share=_colour_share(colours, images[j], d.boxes, j),
            )
        )
        start += len(d)
    return out


def _colour_share(
    colours: tuple[ColorFamilies, np.ndarray] | None, image: np.ndarray, boxes: np.ndarray, j: int
) -> np.ndarray | None:
    """Photo ``j``'s boxes' share of its product's colour family, None when it has none (or no families)."""
    if colours is None or not len(boxes) or colours[1][j] < 0:
        return None
    families, title_families = colours
    return colour_shares(families.of_pixels(image), boxes, int(title_families[j]))
