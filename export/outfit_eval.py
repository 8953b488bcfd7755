"""The outfit-photo eval set: how main-product identification changes sketch search.

For test products whose catalog image is an outfit photo (the demo catalog's
``outfits.json`` ground truth, :mod:`.data.outfit_photos`), the build writes what
``vitrina eval --task outfit`` needs to index each such product three ways (the
whole photo, the crop the build identified, the ground-truth crop) and search
it by a sketch of the product alone:

======================================  =================================================
``eval/outfits/items.npy``              (n,) int32 product index of each outfit photo
``eval/outfits/sketches.npy``           (n, S, S) uint8 held-out sketches of the sold
                                        product alone (drawn from its photo on white, own seed)
``eval/outfits/whole_{int8,float}.npy`` (n, D) float32 the whole photo's photo-encoder
                                        embedding (the build's encoders, as the catalog codes)
``eval/outfits/truth_{int8,float}.npy`` (n, D) float32 the ground-truth crop's embedding
``eval/outfits/tv_whole_{int8,float}``  (n, 16) float32 the text-visual code of the title and
                                        the whole photo (``vitrina eval --task similar``'s
                                        rows without one representative crop)
``eval/outfits/identified_box.npy``     (n, 4) float32 xyxy box picked, in pixels of the photo
                                        as identification loaded it (NaN: none found, whole photo)
``eval/outfits/truth_box.npy``          (n, 4) float32 the sold product's true box, same pixels
``eval/outfits/found.npy``              (n,) int32 boxes the detector found
``eval/outfits/products.npy``           (n,) int32 products in the photo
======================================  =================================================

The identified crop's embeddings are the bundle's own (its catalog codes and the
eval gallery were made from it).

The ground truth is read here only, after the bundle's codes are made; nothing
trained or indexed depends on it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from vitrina.runtime.files import resolve_inside
from vitrina.runtime.photo import prepare_photo
from vitrina.runtime.rasterize import RasterOptions
from vitrina.runtime.text_visual import square_crop

from .data.catalog import Catalog
from .data.outfit_photos import load_outfit_truth
from .data.sketch_synthesis import SynthesisOptions, render_sketches
from .identify_products import Identification

#: Seed of the outfit products' query sketches (never used for training sketches).
OUTFIT_SKETCH_SEED = 90_212
#: Most outfit photos in the eval set.
MAX_OUTFIT_QUERIES = 5000
PREFIX = "eval/outfits/"


def prepared_box(box: np.ndarray, image_size: tuple[int, int], side: int) -> np.ndarray:
    """(4,) float32: a box in an image's pixels (w, h) → pixels of its prepared square photo
    (:func:`~vitrina.runtime.photo.prepare_photo`: padded square around the centre, resized to ``side``)."""
    w, h = image_size
    big = max(w, h)
    offset = np.array([(big - w) // 2, (big - h) // 2] * 2, np.float32)
    return ((np.asarray(box, np.float32) + offset) * (side / big)).astype(np.float32)


def outfit_eval_arrays(
    catalog: Catalog,
    catalog_dir: Path,
    *,
    identification: Identification | None,
    whole_photos: np.ndarray,
    photos: np.ndarray,
    load: Callable[[int], np.ndarray],
    encode: Callable[[str, np.ndarray], np.ndarray],
    encode_text_visual: Callable[[str, np.ndarray, np.ndarray], np.ndarray] | None,
    title_ids: np.ndarray | None,
    raster: RasterOptions,
    synthesis: SynthesisOptions,
    queries: int | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """The arrays of the module docstring and the manifest's ``eval_outfits`` entry ({} and {}
    without ground truth, identification or an outfit photo among the test products).

    Args:
        whole_photos: (N, s, s, 3) uint8 catalog images at the photo encoder's side, as loaded.
        photos: the same after identification (outfit rows replaced by their identified crop).
        load: catalog image row → the photo as identification loaded it (the true crop is cut from it).
        encode: (precision, (n, s, s, 3) uint8 photos) → (n, D) float32 embeddings with the
            build's photo encoder of that precision (``int8`` / ``float``).
        encode_text_visual: (precision, (n, W) int32 title ids, (n, s, s, 3) uint8 images) →
            (n, 16) float32 text-visual codes; None without a text-visual model.
        title_ids: (P, W) int32 word ids of every product's title (with ``encode_text_visual``).
        queries: most outfit photos to keep (None: :data:`MAX_OUTFIT_QUERIES`).
    """
    truth = load_outfit_truth(catalog_dir)
    if not truth or identification is None or not catalog.image_paths:
        return {}, {}
    picked = {int(r): k for k, r in enumerate(identification.rows)}
    first = catalog.first_images()
    rows = [
        int(first[i])
        for i in catalog.split_items("test")
        if int(first[i]) in picked and catalog.image_paths[int(first[i])] in truth
    ][: min(queries or MAX_OUTFIT_QUERIES, MAX_OUTFIT_QUERIES)]
    if not rows:
        return {}, {}
    side, size = identification.side, photos.shape[1]
    packshots, truth_boxes, products = [], [], []
    for row in rows:
        record = truth[catalog.image_paths[row]]
        with Image.open(resolve_inside(catalog_dir, catalog.image_paths[row])) as image:
            image_size = image.size
        truth_boxes.append(prepared_box(record.box, image_size, side))
        products.append(record.products)
        with Image.open(resolve_inside(catalog_dir, record.packshot)) as packshot:
            packshots.append(prepare_photo(packshot, side))
    sketches = render_sketches(
        np.stack(packshots), 1, raster, seed=OUTFIT_SKETCH_SEED, opts=synthesis, workers=1, progress=False
    )[:, 0]
    boxes = np.stack(truth_boxes)
    k = np.array([picked[r] for r in rows])
    truth_crops = np.stack([square_crop(load(r), size, b) for r, b in zip(rows, boxes)])
    arrays = {
        PREFIX + "items.npy": catalog.image_items[rows].astype(np.int32),
        PREFIX + "sketches.npy": sketches,
        PREFIX + "identified_box.npy": identification.boxes[k].astype(np.float32),
        PREFIX + "truth_box.npy": boxes.astype(np.float32),
        PREFIX + "found.npy": identification.found[k].astype(np.int32),
        PREFIX + "products.npy": np.asarray(products, np.int32),
    }
    for precision in ("int8", "float"):
        arrays[PREFIX + f"whole_{precision}.npy"] = encode(precision, whole_photos[rows]).astype(np.float32)
        arrays[PREFIX + f"truth_{precision}.npy"] = encode(precision, truth_crops).astype(np.float32)
        if encode_text_visual is not None and title_ids is not None:
            words = title_ids[catalog.image_items[rows]]
            arrays[PREFIX + f"tv_whole_{precision}.npy"] = encode_text_visual(precision, words, whole_photos[rows])
    meta: dict[str, object] = {
        "eval_outfits": {"queries": len(rows), "catalog_outfit_photos": len(truth), "method": identification.method}
    }
    return arrays, meta
