"""``vitrina build``: catalog folder → trained, quantised, encoded, verified bundle.

Steps (each shows progress; the expensive ones are cached in the work folder,
so an interrupted build resumes instead of starting over):

1. load and validate the catalog (``data/catalog.py``);
2. render synthetic training sketches of the train split (``data/sketch_synthesis.py``, cached);
3. train the sketch and photo encoders (``training/encoders.py``, checkpointed; fixed steps from a fixed seed);
4. export both to TFLite float32 and full int8 (``quantize.py``);
5. with a detector in the profile: compose scenes, train (in the background, from
   step 1 on) and export the detector, and fine-tune the photo encoder on
   detector-like crops (``build_detector.py``); with a text-visual model: train it
   (in the background too when it can) and export it (``build_text_visual.py``);
6. main-product identification (``identify_products.py``): every catalog photo that
   is not a packshot (the product alone on white) is replaced by the crop of the
   product its title describes; only packshots train (steps 2-5);
7. encode every catalog image (or its identified crop) with the int8 photo encoder
   through LiteRT, and every product's title and image into text-visual codes;
8. render held-out sketch queries of the test split with a seed training never
   used, and measure float/int8 agreement on them;
9. reduce the catalog codes to the chosen code type (``codes/fit.py``:
   PCA, UMAP with a landmark reducer, or binary codes; optional int8 re-rank);
10. write the bundle (``vitrina.runtime.bundle``), atomically, with the text
   search's vocabulary (titles, categories, colours; less brands and numbers)
   and the catalog's synonyms (``aliases.json``) whose words it knows.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from vitrina.runtime.bundle import BundleContents, EvalSet, write_bundle
from vitrina.runtime.color_search import ColorFamilies
from vitrina.runtime.encoders import EncoderOptions, PhotoEncoder, SketchEncoder
from vitrina.runtime.identify import EQUAL_WEIGHTS
from vitrina.runtime.rasterize import RasterOptions
from vitrina.runtime.text import Vocabulary
from vitrina.runtime.text_visual import ROLE

from .build_detector import (
    VALIDATION_SCENE_SEED,
    DetectorStage,
    PendingDetector,
    finish_detector_stage,
    start_detector_stage,
)
from .build_text_visual import (
    ExportedTextVisual,
    PendingTextVisual,
    export_text_visual,
    finish_text_visual_stage,
    start_text_visual_stage,
    text_visual_codes,
)
from .codes.fit import CodeOptions, FittedCodes, TrainingEmbeddings, fit_codes
from .data.catalog import Catalog, load_catalog, load_catalog_image
from .data.colors import colour_families
from .data.scenes import compose_scenes
from .data.sketch_styles import HELD_OUT_STYLES, STYLES, check_styles, render_style
from .data.sketch_synthesis import render_sketches, synthesize_strokes
from .identify_products import Identification, WeightFit, fit_identify_weights, identify_main_products, packshot_mask
from .outfit_eval import outfit_eval_arrays
from .profiles import Profile, get_profile
from .quantize import QuantizationAgreement, agreement, to_tflite
from .training.encoders import TrainResult, train_encoders

TRAIN_SKETCH_SEED = 1
EVAL_SKETCH_SEED = 90_210  # never used for training sketches
STYLE_EVAL_SEED = 31_337  # per-style eval sketches; never used for training sketches
EVAL_STROKES = 200  # held-out stroke lists kept for benchmarks of the stroke → results path
_ENCODE_BATCH = 64


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """Attributes:
    profile: ``tiny`` or ``demo`` (see profiles.py).
    work_dir: cache and checkpoint folder; default ``<out>.work`` beside the bundle.
    skip_bad_rows: drop invalid catalog rows instead of failing.
    workers: processes for sketch rendering.
    steps: override the profile's training steps (None keeps it).
    progress: show progress bars.
    codes: catalog code type (float, pcaN, umapN, bitsN); None: the profile's.
    code_options: how compact codes are fitted (None: the profile's).
    train_styles: sketch styles of the training sketches (None: the profile's; see
        ``data/sketch_styles.py``).
    """

    profile: str = "demo"
    work_dir: Path | None = None
    skip_bad_rows: bool = False
    workers: int = 2
    steps: int | None = None
    progress: bool = True
    codes: str | None = None
    code_options: CodeOptions | None = None
    train_styles: tuple[str, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """Attributes: bundle path, items (products) and images written, training
    result, sketch_agreement (int8 vs float sketch encoder on the held-out
    queries; None without a test split), photo_cosine (mean cosine of float vs
    int8 photo embeddings), seconds of the whole build (wall clock)."""

    bundle: Path
    items: int
    images: int
    train: TrainResult
    sketch_agreement: QuantizationAgreement | None
    photo_cosine: float
    seconds: float


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    """(n, W, W, 3) uint8 → (n, size, size, 3) uint8 with area/bicubic resampling."""
    if images.shape[1] == size:
        return images
    method = Image.Resampling.BOX if images.shape[1] > size else Image.Resampling.BICUBIC
    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), method)) for im in images])


def _catalog_key(catalog: Catalog) -> str:
    """12 hex digits identifying the catalog's products, splits and pixels (names the caches)."""
    digest = hashlib.sha256()
    digest.update(repr([(i.id, i.category, i.split) for i in catalog.items]).encode())
    digest.update(catalog.images.tobytes())
    return digest.hexdigest()[:12]


def _styles_suffix(profile: Profile) -> str:
    """Cache-name suffix of the training styles ("" for the original silhouette style)."""
    if profile.train_styles == ("silhouette",):
        return ""
    return "-" + hashlib.sha256(",".join(profile.train_styles).encode()).hexdigest()[:8]


def _cached_sketches(
    work: Path,
    key: str,
    images: np.ndarray,
    *,
    variants: int,
    raster: RasterOptions,
    seed: int,
    opts: BuildOptions,
    profile: Profile,
    desc: str,
) -> np.ndarray:
    """(n, variants, S, S) uint8 sketches of ``images``, rendered once and cached in ``work``."""
    styles = None if profile.train_styles == ("silhouette",) else check_styles(profile.train_styles)
    path = work / f"sketches-{desc}-{key}-{raster.size}-{variants}-{seed}{_styles_suffix(profile)}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    sketches = render_sketches(
        images,
        variants,
        raster,
        seed=seed,
        opts=profile.synthesis,
        workers=opts.workers,
        progress=opts.progress,
        desc=f"{desc} sketches",
        styles=styles if desc == "train" else None,  # the eval set stays in the original style
    )
    # Streamed to disk rather than through write_atomic: the demo's array is a few hundred MB.
    tmp = path.with_suffix(".tmp.npy")
    with open(tmp, "wb") as f:
        np.save(f, sketches)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return sketches


def _encode(
    model_path: Path, images: np.ndarray, *, progress: bool, desc: str, sketch: RasterOptions | None = None
) -> np.ndarray:
    """Encode uint8 images through LiteRT with the given TFLite model: (n, D) float32."""
    options = EncoderOptions(model_path=str(model_path), num_threads=2, batch_size=_ENCODE_BATCH)
    encoder = SketchEncoder(options, sketch) if sketch else PhotoEncoder(options)
    chunks = []
    step = _ENCODE_BATCH * 32
    with encoder, tqdm(total=len(images), desc=desc, unit="img", disable=not progress, mininterval=1.0) as bar:
        for start in range(0, len(images), step):
            chunks.append(encoder.embed(images[start : start + step]).embeddings)
            bar.update(min(step, len(images) - start))
    return np.concatenate(chunks) if chunks else np.empty((0, encoder.dims), np.float32)


def build_bundle(catalog_dir: str | Path, out: str | Path, options: BuildOptions = BuildOptions()) -> BuildResult:
    """Run the whole export pipeline and write a bundle at ``out``.

    Reproducible: the same catalog and options give the same encoders (fixed
    steps from a fixed seed, deterministic TensorFlow ops), whatever the machine's speed.
    """
    t0 = time.monotonic()
    profile = get_profile(options.profile)
    if options.train_styles is not None:
        profile = replace(profile, train_styles=check_styles(options.train_styles))
    out = Path(out)
    work = options.work_dir or out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    catalog = load_catalog(
        catalog_dir,
        image_size=max(profile.input_size, profile.thumbnail_size),
        skip_bad_rows=options.skip_bad_rows,
        progress=options.progress,
    )
    photos = _resize_all(catalog.images, profile.input_size)
    categories = list(dict.fromkeys(item.category for item in catalog.items))
    item_labels = np.array([categories.index(item.category) for item in catalog.items], dtype=np.int32)
    on_white = packshot_mask(catalog.images)
    usable = on_white[catalog.first_images()]
    if len(_train_rows(catalog, on_white)) == 0:
        raise ValueError(
            f"catalog {catalog_dir} has no train-split product photographed alone on white to train on "
            f"({int(np.sum(~on_white))} of its {len(on_white)} photos have a background)"
        )
    key = _catalog_key(catalog)
    # the text search's words: titles, categories and colours, less brands and numbers
    vocabulary = Vocabulary.from_texts(
        (f"{i.title} {i.category} {i.color}" for i in catalog.items), catalog.brands
    ).with_synonyms(catalog.synonyms)
    # 8a, 9a. The detector and the text-visual model train in their own processes beside steps 2-7.
    pending = Pending()
    try:
        if profile.detector is not None:
            pending.detector = start_detector_stage(
                catalog,
                categories,
                item_labels,
                usable=usable,
                profile=profile.detector,
                work=work,
                key=key,
                progress=options.progress,
            )
        if profile.text_visual is not None:
            pending.text_visual = start_text_visual_stage(
                catalog,
                vocabulary,
                photo_spec=profile.photo_spec(),
                photos=photos,
                usable=usable,
                scenes=pending.detector.catalog_scenes if pending.detector is not None else None,
                profile=profile.text_visual,
                work=work,
                key=key,
            )
        return _build_rest(
            catalog,
            catalog_dir=Path(catalog_dir),
            on_white=on_white,
            photos=photos,
            categories=categories,
            item_labels=item_labels,
            out=out,
            work=work,
            key=key,
            profile=profile,
            options=options,
            vocabulary=vocabulary,
            pending=pending,
            t0=t0,
        )
    finally:
        pending.cancel()


@dataclass
class Pending:
    """The stages training in the background during a build (None: the profile has none)."""

    detector: PendingDetector | None = None
    text_visual: PendingTextVisual | None = None

    def cancel(self) -> None:
        """Stop whatever still runs (after a failure; a finished stage's process is gone already)."""
        for stage in (self.detector, self.text_visual):
            if stage is not None:
                stage.cancel()


def _train_rows(catalog: Catalog, on_white: np.ndarray) -> np.ndarray:
    """(n,) int64 catalog image rows training may use: train-split packshots."""
    is_train = np.array([item.split == "train" for item in catalog.items])
    return np.flatnonzero(is_train[catalog.image_items] & on_white)


def _identify(
    catalog: Catalog,
    catalog_dir: Path,
    on_white: np.ndarray,
    *,
    detector: DetectorStage | None,
    exported: ExportedTextVisual | None,
    pending: Pending,
    item_labels: np.ndarray,
    colors: dict[str, list[int]],
    crop_size: int,
    options: BuildOptions,
) -> tuple[Identification | None, WeightFit | None]:
    """Step 6: the identification weights fitted on scenes of the products held out of the
    text-visual training (None: no such products, equal weights), then the sold product's box in
    every catalog photo that is not a packshot, each photo loaded again at the detector's input
    side (None without a detector); ``item_labels``: (P,) int32 each product's category, in the
    detector's category order; ``colors``: the catalog's colour families (``{name: [r, g, b]}``,
    empty: none)."""
    if detector is None:
        return None, None
    rows = np.flatnonzero(~on_white)
    families = ColorFamilies.from_mapping(colors) if colors else None
    item_families = families.of_items([item.color for item in catalog.items]) if families else None
    titles, fit = None, None
    if exported is not None and pending.text_visual is not None:
        titles = pending.text_visual.titles[catalog.image_items[rows]]
        held = pending.text_visual.validation_items
        if len(held) and pending.detector is not None:
            scenes = compose_scenes(
                catalog.images[catalog.first_images()[held]],
                held.astype(np.int32),
                item_labels[held].astype(np.int32),
                pending.detector.categories,
                count=pending.text_visual.profile.validation_scenes,
                seed=VALIDATION_SCENE_SEED,
                options=pending.detector.profile.scenes,
            )
            fit = fit_identify_weights(
                scenes,
                title_ids=pending.text_visual.titles,
                item_categories=item_labels,
                families=families,
                item_families=item_families,
                detector_model=detector.models["detector_int8"],
                score_threshold=detector.score_threshold,
                text_visual_model=exported.models[f"{ROLE}_int8"],
            )
    identification = identify_main_products(
        catalog_loader(catalog, catalog_dir, int(detector.report["input_size"])),
        rows,
        detector_model=detector.models["detector_int8"],
        score_threshold=detector.score_threshold,
        text_visual_model=exported.models[f"{ROLE}_int8"] if exported is not None else None,
        title_ids=titles,
        title_categories=item_labels[catalog.image_items[rows]],
        families=families,
        title_families=item_families[catalog.image_items[rows]] if item_families is not None else None,
        weights=fit.weights if fit is not None else EQUAL_WEIGHTS,
        crop_size=crop_size,
        progress=options.progress,
    )
    return identification, fit


def catalog_loader(catalog: Catalog, catalog_dir: Path, side: int) -> Callable[[int], np.ndarray]:
    """Catalog image row → its photo loaded again at ``side`` pixels ((side, side, 3) uint8, the
    loader's rules), or the loaded image for a catalog that kept no paths."""
    if not catalog.image_paths:
        return lambda row: catalog.images[row]
    return lambda row: load_catalog_image(catalog_dir, catalog.image_paths[row], side)


def _build_rest(
    catalog: Catalog,
    *,
    catalog_dir: Path,
    on_white: np.ndarray,
    photos: np.ndarray,
    categories: list[str],
    item_labels: np.ndarray,
    out: Path,
    work: Path,
    key: str,
    profile: Profile,
    options: BuildOptions,
    vocabulary: Vocabulary,
    pending: Pending,
    t0: float,
) -> BuildResult:
    """Steps 2-10 of :func:`build_bundle`, the background trainings already started (``pending``).

    Args:
        catalog_dir: the catalog folder (its demo ground truth, if any, feeds the eval arrays only).
        on_white: (N,) bool which catalog images are packshots.
        photos: (N, S, S, 3) uint8 catalog images at the encoders' input side.
        categories: category names; item_labels: (P,) int32 category index of each product.
    """
    size = profile.input_size
    raster = RasterOptions(size=size)
    train_rows = _train_rows(catalog, on_white)
    whole_photos = photos

    # 2-3. Sketches and training.
    train_sketches = _cached_sketches(
        work,
        key,
        catalog.images[train_rows],
        variants=profile.sketch_variants,
        raster=raster,
        seed=TRAIN_SKETCH_SEED,
        opts=options,
        profile=profile,
        desc="train",
    )
    train_opts = profile.train if options.steps is None else replace(profile.train, steps=options.steps)
    sketch_model, photo_model, train_result = train_encoders(
        train_sketches,
        photos[train_rows],
        item_labels[catalog.image_items[train_rows]],
        sketch_spec=profile.sketch_spec(),
        photo_spec=profile.photo_spec(),
        options=train_opts,
        checkpoint_dir=work / f"ckpt-{profile.name}-{key}{_styles_suffix(profile)}",
        progress=options.progress,
    )

    # 4. TFLite float + int8, calibrated on catalog samples.
    rng = np.random.default_rng(0)
    calib = rng.choice(len(train_rows), size=min(profile.calibration_samples, len(train_rows)), replace=False)
    models = {
        "sketch_float": to_tflite(sketch_model, "float"),
        "sketch_int8": to_tflite(sketch_model, "int8", train_sketches[calib, 0]),
        "photo_float": to_tflite(photo_model, "float"),
        "photo_int8": to_tflite(photo_model, "int8", photos[train_rows[calib]]),
    }
    # 5. The detector and the text-visual model (trained in the background), exported.
    detector = None
    if pending.detector is not None:
        detector = finish_detector_stage(
            pending.detector,
            catalog,
            item_labels,
            photo_model=photo_model,
            photos=photos,
            work=work,
            key=key,
            progress=options.progress,
        )
    exported = None
    if pending.text_visual is not None:
        exported = export_text_visual(pending.text_visual, photo_model=photo_model, progress=options.progress)
    # 6. Main-product identification: photos that are not packshots are encoded by the sold product's crop.
    colors = colour_families(catalog, on_white=on_white)
    identification, identify_fit = _identify(
        catalog,
        catalog_dir,
        on_white,
        detector=detector,
        exported=exported,
        pending=pending,
        item_labels=item_labels,
        colors=colors,
        crop_size=size,
        options=options,
    )
    if identification is not None and len(identification.rows):
        photos = photos.copy()
        photos[identification.rows] = identification.crops
    # 7b. Text-visual codes of every product (title + image or identified crop).
    text_visual = None
    if pending.text_visual is not None and exported is not None:
        text_visual = finish_text_visual_stage(
            pending.text_visual, exported, images=photos[catalog.first_images()], identify=identify_fit
        )
    with tempfile.TemporaryDirectory(prefix="vitrina-models-") as tmp:
        paths = {name: Path(tmp) / f"{name}.tflite" for name in models}
        for name, blob in models.items():
            paths[name].write_bytes(blob)
        # 7. Catalog codes with the int8 photo encoder, as the device would compute them.
        codes = _encode(paths["photo_int8"], photos, progress=options.progress, desc="encoding catalog")
        # 8. Held-out queries and agreement.
        eval_set, sketch_agreement, photo_cosine = _eval_set(
            catalog,
            photos,
            codes,
            raster=raster,
            paths=paths,
            profile=profile,
            options=options,
            work=work,
            key=key,
            usable=on_white[catalog.first_images()],
        )
        outfit_arrays, outfit_meta = outfit_eval_arrays(
            catalog,
            catalog_dir,
            identification=identification,
            whole_photos=whole_photos,
            photos=photos,
            load=catalog_loader(catalog, catalog_dir, identification.side if identification else 0),
            encode=lambda precision, images: _encode(paths[f"photo_{precision}"], images, progress=False, desc=""),
            encode_text_visual=(
                (lambda precision, words, images: text_visual_codes(exported, precision, words=words, images=images))
                if exported is not None
                else None
            ),
            title_ids=pending.text_visual.titles if pending.text_visual is not None else None,
            raster=raster,
            synthesis=profile.synthesis,
            queries=profile.max_eval_queries,
        )
    # 9. Compact codes (the float codes stay the eval set's reference).
    code_type = options.codes or profile.codes
    code_opts = options.code_options or profile.code_options
    fitted = _compact_codes(
        code_type,
        code_opts,
        codes,
        labels=item_labels[catalog.image_items],
        train_sketches=train_sketches,
        train_rows=train_rows,
        sketch_model=models["sketch_int8"],
        options=options,
    )
    # The detector's models (with the crop-tuned photo encoder: catalog codes above stay the
    # trained encoder's) and the text-visual models join the bundle.
    if detector is not None:
        models.update(detector.models)
    if text_visual is not None:
        models.update(text_visual.models)
    stroke_items, strokes = _eval_strokes(catalog, eval_set, profile)
    style_arrays, style_meta = _style_eval(catalog, eval_set, raster, profile, options)
    thumbs = _resize_all(catalog.images[catalog.first_images()], profile.thumbnail_size)
    report = {
        "profile": profile.name,
        "encoder": asdict(profile.sketch_spec()) | {"channels": "1 (sketch) / 3 (photo)"},
        "training": asdict(train_result),
        "training_options": asdict(train_opts),
        "quantization": {
            "sketch": asdict(sketch_agreement) if sketch_agreement else None,
            "photo_mean_cosine": photo_cosine,
        },
        "catalog": {
            "items": len(catalog.items),
            "images": len(catalog.images),
            "skipped_rows": [str(e) for e in catalog.skipped],
            "synonyms": {"given": len(catalog.synonyms), "kept": len(vocabulary.synonyms)},
        },
        "model_bytes": {name: len(blob) for name, blob in models.items()},
        "detector": detector.report if detector else None,
        "text_visual": text_visual.report if text_visual else None,
        "identification": (
            identification.report(len(catalog.images))
            if identification is not None
            else {"photos": len(catalog.images), "packshots": int(on_white.sum()), "method": None}
        ),
        "codes": {
            "type": fitted.code_type,
            "reducer": fitted.reducer.about,
            "rerank": fitted.rerank is not None,
            **fitted.report,
        },
    }
    contents = BundleContents(
        catalog_name=catalog.name,
        items=catalog.items,
        models=models,
        codes=fitted.codes,
        code_items=catalog.image_items,
        thumbnails=thumbs,
        raster=raster,
        photo_size=size,
        eval_set=eval_set,
        report=report,
        eval_strokes=strokes,
        eval_stroke_items=stroke_items,
        extra={
            "categories": categories,
            "colors": colors,
            **style_meta,
            **outfit_meta,
        }
        | ({"detector": {"score_threshold": detector.score_threshold}} if detector else {})
        | (text_visual.manifest if text_visual else {}),
        arrays=style_arrays | outfit_arrays | (text_visual.arrays if text_visual else {}),
        code_type=fitted.code_type,
        reducer=fitted.reducer,
        rerank=fitted.rerank,
        code_scale=fitted.code_scale,
        eval_scenes=detector.eval_scenes if detector else None,
        vocabulary=vocabulary,
    )
    write_bundle(out, contents)
    return BuildResult(
        bundle=out,
        items=len(catalog.items),
        images=len(catalog.images),
        train=train_result,
        sketch_agreement=sketch_agreement,
        photo_cosine=photo_cosine,
        seconds=round(time.monotonic() - t0, 1),
    )


def _compact_codes(
    code_type: str,
    code_opts: CodeOptions,
    codes: np.ndarray,
    *,
    labels: np.ndarray,
    train_sketches: np.ndarray,
    train_rows: np.ndarray,
    sketch_model: bytes,
    options: BuildOptions,
) -> FittedCodes:
    """Fit ``code_type`` on the int8 catalog codes; hash heads also see train-split sketch embeddings."""
    sketch_emb = np.empty((0, codes.shape[1]), np.float32)
    sketch_rows = np.empty(0, np.int64)
    if code_type.startswith("bits") and code_opts.hash_head != "itq":
        rng = np.random.default_rng(TRAIN_SKETCH_SEED)
        pick = np.sort(rng.choice(len(train_rows), size=min(20000, len(train_rows)), replace=False))
        with tempfile.TemporaryDirectory(prefix="vitrina-models-") as tmp:
            path = Path(tmp) / "sketch_int8.tflite"
            path.write_bytes(sketch_model)
            size = train_sketches.shape[-1]
            sketch_emb = _encode(
                path,
                train_sketches[pick, 0],
                progress=options.progress,
                desc="encoding train sketches",
                sketch=RasterOptions(size=size),
            )
        sketch_rows = train_rows[pick].astype(np.int64)
    data = TrainingEmbeddings(
        photos=codes.astype(np.float32),
        photo_labels=labels,
        sketches=sketch_emb,
        sketch_rows=sketch_rows,
        sketch_labels=labels[sketch_rows],
    )
    return fit_codes(code_type, data, replace(code_opts, progress=options.progress))


def _eval_set(
    catalog: Catalog,
    photos: np.ndarray,
    codes: np.ndarray,
    *,
    raster: RasterOptions,
    paths: dict[str, Path],
    profile: Profile,
    options: BuildOptions,
    work: Path,
    key: str,
    usable: np.ndarray,
) -> tuple[EvalSet | None, QuantizationAgreement | None, float]:
    """Held-out sketch queries of test products, plus float/int8 agreement on them.

    The gallery is every test product (encoded by its identified crop where its photo is not a
    packshot); queries are sketches of the test products whose photo is a packshot (``usable``,
    (P,) bool: a sketch is drawn from the product alone; ``outfit_eval.py`` measures the others).
    """
    test_items = catalog.split_items("test")
    if len(test_items) == 0:
        return None, None, float("nan")
    first = catalog.first_images()
    gallery_rows = first[test_items]
    query_pool = test_items[usable[test_items]]
    query_items = query_pool if profile.max_eval_queries is None else query_pool[: profile.max_eval_queries]
    sketches = _cached_sketches(
        work,
        key,
        catalog.images[first[query_items]],
        variants=1,
        raster=raster,
        seed=EVAL_SKETCH_SEED,
        opts=options,
        profile=profile,
        desc="eval",
    )[:, 0]
    gallery_float = _encode(
        paths["photo_float"], photos[gallery_rows], progress=options.progress, desc="encoding eval gallery (float)"
    )
    q_float = _encode(
        paths["sketch_float"], sketches, progress=options.progress, desc="encoding eval queries (float)", sketch=raster
    )
    q_int8 = _encode(
        paths["sketch_int8"], sketches, progress=options.progress, desc="encoding eval queries (int8)", sketch=raster
    )
    sketch_agreement = agreement(q_float, q_int8, float_gallery=gallery_float, int8_gallery=codes[gallery_rows])
    photo_cosine = round(float(np.mean(np.sum(gallery_float * codes[gallery_rows], axis=1))), 4)
    eval_set = EvalSet(
        sketches=sketches,
        query_items=query_items.astype(np.int32),
        gallery_items=test_items.astype(np.int32),
        gallery_float=gallery_float.astype(np.float32),
    )
    return eval_set, sketch_agreement, photo_cosine


def _eval_strokes(
    catalog: Catalog, eval_set: EvalSet | None, profile: Profile
) -> tuple[list[int], list[list[np.ndarray]]]:
    """Stroke lists of the first held-out queries' products (own seed, never trained on)."""
    if eval_set is None:
        return [], []
    rng = np.random.default_rng(EVAL_SKETCH_SEED + 1)
    first = catalog.first_images()
    items = [int(i) for i in eval_set.query_items[:EVAL_STROKES]]
    strokes = [synthesize_strokes(catalog.images[first[i]], rng, profile.synthesis)[0] for i in items]
    return items, strokes


def _style_eval(
    catalog: Catalog, eval_set: EvalSet | None, raster: RasterOptions, profile: Profile, options: BuildOptions
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Held-out sketches of the first ``profile.style_eval_queries`` eval products in every style
    (``sketch_styles.STYLES``, own seed): the bundle arrays under ``eval/styles/`` and the
    manifest's ``eval_styles`` entry (style names, which were trained on, which held out)."""
    if eval_set is None or profile.style_eval_queries < 1:
        return {}, {}
    rng = np.random.default_rng(STYLE_EVAL_SEED)
    first = catalog.first_images()
    items = [int(i) for i in eval_set.query_items[: profile.style_eval_queries]]
    names = list(STYLES)
    total = len(names) * len(items)
    sketches = np.empty((total, raster.size, raster.size), np.uint8)
    with tqdm(
        total=total, desc="style eval sketches", unit="img", disable=not options.progress, mininterval=1.0
    ) as bar:
        for s, name in enumerate(names):
            for q, item in enumerate(items):
                sketches[s * len(items) + q] = render_style(name, catalog.images[first[item]], rng, raster)
                bar.update(1)
    trained = ["silhouette"] if profile.train_styles == ("silhouette",) else list(profile.train_styles)
    arrays = {
        "eval/styles/sketches.npy": sketches,
        "eval/styles/items.npy": np.tile(np.asarray(items, np.int32), len(names)),
        "eval/styles/style.npy": np.repeat(np.arange(len(names), dtype=np.int32), len(items)),
    }
    meta: dict[str, object] = {"eval_styles": {"names": names, "trained": trained, "held_out": list(HELD_OUT_STYLES)}}
    return arrays, meta
