"""``vitrina eval --task identify|similar --store-catalog DIR``: a bundle's models on another store.

The text-visual study measured its model on a store it never trained on, with
another title vocabulary and other backgrounds. The demo's second store
(``vitrina demo-catalog --store second``: test-split products only, its own
title words, misspellings and outfit photos) is that store. A device cannot
encode another catalog, so this runs on the workstation, through LiteRT with the
bundle's own int8 and float models, and the other store's titles go through the
bundle's word repair (its vocabulary, its thresholds), as a shopper's words would:

* ``identify``: held-out scenes composed of the other store's packshots on
  backgrounds no build trains on (:data:`~.data.scenes.OTHER_BACKGROUNDS`), at the
  detector's input size; the table of ``vitrina eval --task identify``;
* ``similar``: the other store's products (relevant = same category and colour),
  visual (the bundle's float photo encoder) and text-visual codes, each with the
  whole catalog photo and with one representative crop (its outfit photos'
  sold product identified as the build does, ``identify_products.py``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vitrina.runtime.bundle import Bundle, SceneSet
from vitrina.runtime.detector import Detector, DetectorOptions
from vitrina.runtime.encoders import PhotoEncoder, PhotoEncoderOptions
from vitrina.runtime.evaluate_identify import IdentifyReport, evaluate_identify
from vitrina.runtime.evaluate_similar import SimilarMetrics, SimilarReport, neighbour_metrics
from vitrina.runtime.text import WordRepair
from vitrina.runtime.text_visual import TextVisualEncoder, TextVisualOptions, has_text_visual

from .data.catalog import Catalog, load_catalog, load_catalog_image
from .data.scenes import OTHER_BACKGROUNDS, SceneOptions, compose_scenes
from .identify_products import identify_main_products, packshot_mask

#: Seed of the other store's scenes.
STORE_SCENE_SEED = 4_242


def _check(bundle: Bundle) -> None:
    if not has_text_visual(bundle):
        raise ValueError(f"bundle {bundle.path} has no text-visual model: another store's figures need one")
    if "detector" not in bundle.manifest.get("models", {}):
        raise ValueError(f"bundle {bundle.path} has no detector: another store's figures need one")


def _load(bundle: Bundle, catalog_dir: Path) -> Catalog:
    """The other store's catalog at the bundle's photo side."""
    with PhotoEncoder.create_from_bundle(bundle, PhotoEncoderOptions(precision="float")) as encoder:
        size = int(encoder.input_shape[0])
    return load_catalog(catalog_dir, image_size=size, progress=False)


def store_scenes(bundle: Bundle, catalog: Catalog, *, count: int) -> SceneSet:
    """``count`` scenes of ``catalog``'s packshot products, at the bundle detector's input size,
    on :data:`~.data.scenes.OTHER_BACKGROUNDS`."""
    categories = list(bundle.categories)
    first = catalog.first_images()
    on_white = packshot_mask(catalog.images)[first]
    items = np.array([i for i, item in enumerate(catalog.items) if on_white[i] and item.category in categories])
    if len(items) < 2:
        raise ValueError(f"catalog {catalog.name} has fewer than two packshot products of the bundle's categories")
    with Detector.create_from_bundle(bundle, DetectorOptions()) as detector:
        size = int(detector.input_size)
    labels = np.array([categories.index(catalog.items[i].category) for i in items], np.int32)
    options = SceneOptions(size=size, backgrounds=OTHER_BACKGROUNDS)
    return compose_scenes(
        catalog.images[first[items]],
        items.astype(np.int32),
        labels,
        categories,
        count=count,
        seed=STORE_SCENE_SEED,
        options=options,
    )


def evaluate_store_identify(
    bundle: Bundle, catalog_dir: Path, *, scenes: int = 400, num_threads: int = 2
) -> IdentifyReport:
    """The identification table on ``scenes`` scenes of the other store (see the module docstring)."""
    _check(bundle)
    catalog = _load(bundle, catalog_dir)
    return evaluate_identify(
        bundle, num_threads=num_threads, scenes=store_scenes(bundle, catalog, count=scenes), items=catalog.items
    )


def evaluate_store_similar(bundle: Bundle, catalog_dir: Path, *, num_threads: int = 2) -> SimilarReport:
    """The similar-products table on the other store's products (see the module docstring)."""
    _check(bundle)
    catalog = _load(bundle, catalog_dir)
    first = catalog.first_images()
    whole = catalog.images[first]
    repair = WordRepair.create_from_vocabulary(bundle.vocabulary)  # foreign titles: a shopper's words
    with TextVisualEncoder.create_from_bundle(bundle, TextVisualOptions(precision="int8")) as encoder:
        titles = np.stack([encoder.ids(repair.normalize(item.title).words) for item in catalog.items])
    crops = whole.copy()
    rows = np.flatnonzero(~packshot_mask(whole))
    threshold = float(bundle.manifest.get("detector", {}).get("score_threshold", 0.2))
    with Detector.create_from_bundle(bundle, DetectorOptions()) as detector:
        side = int(detector.input_size)
    picked = identify_main_products(
        lambda row: load_catalog_image(catalog_dir, catalog.image_paths[int(first[row])], side),
        rows,
        detector_model=bundle.model_path("detector", "int8").read_bytes(),
        score_threshold=threshold,
        text_visual_model=bundle.model_path("textvisual", "int8").read_bytes(),
        title_ids=titles[rows],
        crop_size=whole.shape[1],
        progress=False,
    )
    crops[rows] = picked.crops
    _, labels = np.unique([f"{i.category}\t{i.color}" for i in catalog.items], return_inverse=True)
    methods: dict[str, SimilarMetrics] = {}
    with PhotoEncoder.create_from_bundle(
        bundle, PhotoEncoderOptions(precision="float", num_threads=num_threads, batch_size=64)
    ) as photo:
        for name, images in (("(whole image)", whole), (", one crop", crops)):
            methods[f"visual float {name}".replace(" ,", ",")] = neighbour_metrics(
                photo.embed(images).embeddings, labels
            )
    for precision in ("int8", "float"):
        options = TextVisualOptions(precision=precision, num_threads=num_threads, batch_size=64)
        with TextVisualEncoder.create_from_bundle(bundle, options) as encoder:
            for name, images in (("(whole image)", whole), (", one crop", crops)):
                codes = encoder.encode(words=titles, images=images).codes
                methods[f"text-visual {precision} {name}".replace(" ,", ",")] = neighbour_metrics(codes, labels)
    notes = (
        f"another store ({catalog.name}): {len(catalog.items)} products, {len(rows)} photos not packshots "
        f"({int(np.sum(picked.found >= 2))} with several products found), titles through this bundle's word repair",
        "visual: the bundle's float photo encoder on every product's image (the own store's row uses the build's)",
    )
    return SimilarReport(gallery=len(catalog.items), methods=methods, store=catalog.name, notes=notes)
