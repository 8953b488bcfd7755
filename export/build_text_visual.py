"""Build stage: the text-visual model and the catalog's text-visual codes.

Runs inside ``vitrina build`` (``build.py``) in two halves: :func:`start_text_visual_stage`
before the encoders train (the training starts there, in its own process, unless the
visual branch starts from the trained photo encoder), :func:`export_text_visual` and
:func:`finish_text_visual_stage` after (main-product identification uses the exported
model in between, and the codes encode the crops it picked):

1. every product's title → words (the device's :class:`~vitrina.runtime.text.WordRepair`
   against the bundle's vocabulary: folded, brands and numbers dropped) → word ids;
2. train the model on train-split packshots (``training/text_visual.py``), its visual
   branch started from the trained photo encoder (``init_from_photo``) or from the
   seed; the trained weights are cached in the work folder under a fingerprint of the
   settings and data;
3. export it to TFLite float32 and full int8 (int8 calibrated on training products in
   all three modes: text only, image only, both);
4. encode every product (title + main image, or the crop identification picked) with
   both models through LiteRT, as the device would: the bundle's ``text_visual/codes_int8.npy`` and ``codes_float.npy``.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from vitrina.runtime.text import MAX_QUERY_WORDS, Vocabulary, WordRepair
from vitrina.runtime.text_visual import (
    MANIFEST_ENTRY,
    ROLE,
    TextVisualEncoder,
    TextVisualOptions,
    branch_weights,
    codes_file,
    word_ids,
)

from .data.catalog import Catalog
from .data.scenes import SceneSet
from .identify_products import WeightFit
from .models import EncoderSpec
from .quantize import MIN_CALIBRATION_SAMPLES, CalibrationError, set_full_int8
from .text_visual_model import TextVisualSpec, build_text_visual
from .training.background import BackgroundJob, load_arrays, save_arrays, start_job
from .training.checkpoints import fingerprint, save_weights_durably
from .training.photo_crops import detector_like_crop
from .training.text_visual import TextVisualData, TextVisualTrainOptions, query_like, train_text_visual

#: Extra words (category and colour) a product's query-like training texts may use.
EXTRA_WORDS = 4


@dataclass(frozen=True, kw_only=True)
class TextVisualProfile:
    """How a profile builds its text-visual model.

    Attributes:
        train: training options.
        calibration_samples: int8 calibration samples (>= 200), a third in each mode.
        init_from_photo: start the visual branch from the trained photo encoder.
        validation_products: train-split products held out of the training (drawn with the
            training seed); scenes of them fit the identification weights
            (``identify_products.fit_identify_weights``). 0: none, equal weights.
        validation_scenes: scenes composed of them for the fit.
    """

    train: TextVisualTrainOptions = TextVisualTrainOptions()
    calibration_samples: int = 300
    init_from_photo: bool = True
    validation_products: int = 0
    validation_scenes: int = 300

    def __post_init__(self) -> None:
        if self.validation_products < 0 or self.validation_scenes < 1:
            raise ValueError(
                f"validation_products must be >= 0 and validation_scenes >= 1, got "
                f"{self.validation_products} and {self.validation_scenes}"
            )


@dataclass(frozen=True)
class ExportedTextVisual:
    """The trained model exported: ``models`` (textvisual_float / _int8 TFLite bytes), how it was
    trained (``trained``: the training result, or ``cached``), seconds the stage took so far."""

    models: dict[str, bytes]
    trained: dict[str, Any]
    seconds: float


@dataclass(frozen=True)
class TextVisualStage:
    """What the stage adds to the bundle: ``models`` (textvisual_float / _int8), ``arrays``
    (the catalog codes), the manifest's ``text_visual`` entry and a JSON ``report``."""

    models: dict[str, bytes]
    arrays: dict[str, np.ndarray]
    manifest: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)


def product_texts(catalog: Catalog, vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(titles (P, 9) int32 ids, extra (P, 4) int32 ids, title keys (P,), labels (P,)) of every product."""
    repair = WordRepair.for_titles(vocabulary)
    index, size = vocabulary.index, len(vocabulary)
    words = [repair.normalize(item.title).words for item in catalog.items]
    titles = np.stack([word_ids(w, index, vocab_size=size, max_words=MAX_QUERY_WORDS) for w in words])
    extra = np.stack(
        [
            word_ids(repair.normalize(f"{i.category} {i.color}").words, index, vocab_size=size, max_words=EXTRA_WORDS)
            for i in catalog.items
        ]
    )
    _, keys = np.unique([" ".join(w) for w in words], return_inverse=True)
    _, labels = np.unique([f"{i.category}\t{i.color}" for i in catalog.items], return_inverse=True)
    return titles, extra, keys.astype(np.int64), labels.astype(np.int64)


@dataclass
class PendingTextVisual:
    """The stage between :func:`start_text_visual_stage` and :func:`finish_text_visual_stage`:
    the training data, and the training running in the background when it could start early."""

    profile: TextVisualProfile
    spec: TextVisualSpec
    data: TextVisualData
    titles: np.ndarray
    images: np.ndarray
    distinct_titles: int
    key: str
    work: Path
    job: BackgroundJob | None
    prepare_seconds: float
    validation_items: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def cancel(self) -> None:
        """Stop the background training, if any (nothing is cached from a cut run)."""
        if self.job is not None:
            self.job.cancel()


def _weights_path(
    work: Path, spec: TextVisualSpec, profile: TextVisualProfile, key: str, photo: list[float], crops: np.ndarray
) -> Path:
    """The cached trained weights' file, named by the settings, the catalog, the scene crops
    it trains on ((m, s, s, 3) uint8) and (when the visual branch starts from it) the photo
    encoder's weights."""
    scenes = hashlib.sha256(np.ascontiguousarray(crops).tobytes()).hexdigest()
    digest = fingerprint(asdict(spec), asdict(profile), key, spec.vocab_size, photo, scenes)
    return work / f"text-visual-{digest}.weights.h5"


def start_text_visual_stage(
    catalog: Catalog,
    vocabulary: Vocabulary,
    *,
    photo_spec: EncoderSpec,
    photos: np.ndarray,
    usable: np.ndarray,
    scenes: SceneSet | None = None,
    profile: TextVisualProfile,
    work: Path,
    key: str,
) -> PendingTextVisual:
    """Prepare the training data and, unless the visual branch starts from the trained photo
    encoder (``profile.init_from_photo``), start the training in its own process now
    (``training/background.py``); otherwise it trains in :func:`finish_text_visual_stage`.

    Args:
        vocabulary: the bundle's text vocabulary (word ids are positions in it plus one).
        photo_spec: the photo encoder's architecture (the visual branch's).
        photos: (N, S, S, 3) uint8 catalog images at the photo encoder's input side.
        usable: (P,) bool products whose main image may train (packshots).
        scenes: composed scenes of train products (the detector's); their boxes, cut like a
            detector's, are the training's scene crops (``TextVisualTrainOptions.crop_share``).
        work: the build's cache folder; key: the catalog's cache key.
    """
    t0 = time.monotonic()
    titles, extra, keys, labels = product_texts(catalog, vocabulary)
    images = photos[catalog.first_images()]
    train = catalog.split_items("train")
    train = train[usable[train]]
    held = validation_items(train, profile.validation_products, seed=profile.train.seed)
    train = train[~np.isin(train, held)]
    crops, crop_rows = scene_crops(scenes, train, size=images.shape[1], seed=profile.train.seed)
    data = TextVisualData(
        titles[train], extra[train], images[train], keys[train], labels[train], crops=crops, crop_rows=crop_rows
    )
    spec = TextVisualSpec(vocab_size=len(vocabulary), visual=photo_spec)
    job = None
    if not profile.init_from_photo:
        cached = _weights_path(work, spec, profile, key, [], data.crops)
        if not cached.is_file():
            job = _start_training(data, spec=spec, profile=profile, weights=cached)
    return PendingTextVisual(
        profile=profile,
        spec=spec,
        data=data,
        titles=titles,
        images=images,
        distinct_titles=int(len(np.unique(keys))),
        key=key,
        work=work,
        job=job,
        prepare_seconds=time.monotonic() - t0,
        validation_items=held,
    )


def validation_items(train: np.ndarray, count: int, *, seed: int) -> np.ndarray:
    """(k,) int64 sorted products drawn from ``train`` (product indices) to hold out of the
    training: ``count``, but never more than a tenth of them."""
    k = min(count, len(train) // 10)
    if k <= 0:
        return np.zeros(0, np.int64)
    rng = np.random.default_rng([seed, 29])
    return np.sort(rng.choice(np.asarray(train, np.int64), size=k, replace=False))


def scene_crops(
    scenes: SceneSet | None, products: np.ndarray, *, size: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """((m, size, size, 3) uint8 crops, (m,) int64 rows into ``products``) of every scene box that
    shows one of ``products`` (catalog product indices), cut like a detector box
    (:func:`~.training.photo_crops.detector_like_crop`); empty without scenes."""
    if scenes is None or len(scenes.boxes) == 0:
        return np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int64)
    position = {int(p): row for row, p in enumerate(products)}
    picked = [b for b in range(len(scenes.boxes)) if int(scenes.box_items[b]) in position]
    rng = np.random.default_rng([seed, 17])
    crops = np.empty((len(picked), size, size, 3), np.uint8)
    for k, b in enumerate(picked):
        crops[k] = detector_like_crop(scenes.images[scenes.box_scene[b]], scenes.boxes[b], rng, size=size)
    rows = np.array([position[int(scenes.box_items[b])] for b in picked], np.int64)
    return crops, rows


def _start_training(
    data: TextVisualData, *, spec: TextVisualSpec, profile: TextVisualProfile, weights: Path
) -> BackgroundJob:
    arrays = weights.with_name(weights.name[: -len(".weights.h5")] + ".data.npz")
    save_arrays(arrays, data)
    return start_job(
        _train_child,
        (str(arrays), spec, profile.train, str(weights)),
        name="text-visual training",
        total=profile.train.steps,
        progress_file=weights.with_name(weights.name + ".progress"),
        cleanup=[arrays],
    )


def _train_child(arrays: str, spec: TextVisualSpec, options: TextVisualTrainOptions, weights: str) -> None:
    """Child-process body of the background training: train from the seed's initial weights,
    cache the weights and the result (``weights`` + ``.json``)."""
    data = load_arrays(arrays, TextVisualData)
    tf.config.experimental.enable_op_determinism()  # as in the build process (the encoders' training sets it)
    keras.utils.set_random_seed(options.seed)
    net = build_text_visual(spec)
    progress_file = Path(weights + ".progress")
    result = train_text_visual(net, data, options=options, progress=False, progress_file=progress_file)
    Path(weights + ".json").write_text(json.dumps(asdict(result)))
    save_weights_durably(net.model, Path(weights))


def export_text_visual(
    pending: PendingTextVisual, *, photo_model: keras.Model, progress: bool = True
) -> ExportedTextVisual:
    """Wait for (or run) the training, then export to TFLite (steps 2-3 of the module docstring).

    Args:
        pending: from :func:`start_text_visual_stage`.
        photo_model: the trained photo encoder (the visual branch's start when ``init_from_photo``).
    """
    t0 = time.monotonic()
    profile, spec, data = pending.profile, pending.spec, pending.data
    # the initial weights from the training seed, whatever the process built before
    keras.utils.set_random_seed(profile.train.seed)
    net = build_text_visual(spec, visual_init=photo_model if profile.init_from_photo else None)
    photo = [float(np.sum(w)) for w in photo_model.get_weights()] if profile.init_from_photo else []
    cached = _weights_path(pending.work, spec, profile, pending.key, photo, pending.data.crops)
    trained: dict[str, Any]
    if pending.job is not None:
        pending.job.wait(progress)
        net.model.load_weights(cached)
        trained = json.loads(Path(str(cached) + ".json").read_text()) | {"background": True}
    elif cached.is_file():
        net.model.load_weights(cached)
        trained = {"cached": True, "steps": profile.train.steps}
    else:
        result = train_text_visual(net, data, options=profile.train, progress=progress)
        save_weights_durably(net.model, cached)
        trained = asdict(result)
    calib = calibration_samples(data, profile.calibration_samples, seed=profile.train.seed)
    models = {
        f"{ROLE}_float": to_tflite_inputs(net.model, "float"),
        f"{ROLE}_int8": to_tflite_inputs(net.model, "int8", calib),
    }
    return ExportedTextVisual(models=models, trained=trained, seconds=time.monotonic() - t0)


def text_visual_codes(
    exported: ExportedTextVisual, precision: str, *, words: np.ndarray, images: np.ndarray
) -> np.ndarray:
    """(n, 16) float32 fused codes of n (title, image) pairs through LiteRT with the exported
    ``precision`` model: ``words`` (n, W) int32 ids, ``images`` (n, S, S, 3) uint8."""
    with tempfile.TemporaryDirectory(prefix="vitrina-text-visual-") as tmp:
        path = Path(tmp) / f"{precision}.tflite"
        path.write_bytes(exported.models[f"{ROLE}_{precision}"])
        options = TextVisualOptions(model_path=str(path), num_threads=2, batch_size=64)
        with TextVisualEncoder.create_from_options(options) as encoder:
            return encoder.encode(words=words, images=images).codes


def finish_text_visual_stage(
    pending: PendingTextVisual,
    exported: ExportedTextVisual,
    *,
    images: np.ndarray | None = None,
    identify: WeightFit | None = None,
) -> TextVisualStage:
    """Encode every product with both exported models (step 4 of the module docstring).

    Args:
        pending: from :func:`start_text_visual_stage`; exported: from :func:`export_text_visual`.
        images: (P, S, S, 3) uint8 each product's image to encode (the crop identification
            picked); None: each product's main image as the stage started with.
        identify: the identification weights fitted on the validation products (into the
            manifest's entry and the report), or None (equal weights).
    """
    t0 = time.monotonic()
    profile, spec, data, models = pending.profile, pending.spec, pending.data, exported.models
    titles = pending.titles
    images = pending.images if images is None else images
    arrays = {codes_file(p): text_visual_codes(exported, p, words=titles, images=images) for p in ("int8", "float")}
    cosine = float(np.mean(np.sum(arrays[codes_file("int8")] * arrays[codes_file("float")], axis=1)))
    manifest = {
        MANIFEST_ENTRY: {
            "vocab_size": spec.vocab_size,
            "max_words": spec.max_words,
            "code_dims": spec.code_dims,
            "image_size": spec.image_size,
            "codes": {p: codes_file(p) for p in ("int8", "float")},
        }
        | ({"identify_weights": identify.weights.to_json()} if identify is not None else {})
    }
    report = {
        "architecture": asdict(spec),
        "training": exported.trained,
        "training_options": asdict(profile.train),
        "train_products": len(data),
        "validation_products": len(pending.validation_items),
        "identify_weights": identify.report() if identify is not None else None,
        "distinct_titles": pending.distinct_titles,
        "int8_float_code_cosine": round(cosine, 4),
        # the build process's own time on the stage (waiting for a background training included)
        "seconds": round(pending.prepare_seconds + exported.seconds + time.monotonic() - t0, 1),
    }
    return TextVisualStage(models=models, arrays=arrays, manifest=manifest, report=report)


def calibration_samples(data: TextVisualData, count: int, *, seed: int) -> dict[str, np.ndarray]:
    """``count`` (>= 200) int8 calibration inputs from training products, cycling through
    both / text only / image only, texts half titles half query-like subsets."""
    count = max(count, MIN_CALIBRATION_SAMPLES)
    if len(data) == 0:
        raise CalibrationError("text-visual int8 calibration needs training products; the catalog has none")
    rng = np.random.default_rng([seed, 21])
    rows = rng.integers(len(data), size=count)
    words = query_like(data.titles[rows], data.extra_words[rows], rng, 0.5)
    modes = [branch_weights(has_text=t, has_image=i) for t, i in ((True, True), (True, False), (False, True))]
    weights = np.stack([modes[i % 3] for i in range(count)])
    return {"words": words.astype(np.int32), "pixels": data.images[rows], "weights": weights}


def _representative(samples: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
    n = len(samples["words"])
    for i in range(n):
        yield {
            "words": samples["words"][i : i + 1].astype(np.int32),
            "pixels": samples["pixels"][i : i + 1].astype(np.float32),
            "weights": samples["weights"][i : i + 1].astype(np.float32),
        }


def to_tflite_inputs(model: keras.Model, precision: str, calibration: dict[str, np.ndarray] | None = None) -> bytes:
    """The text-visual model (named inputs ``words``, ``pixels``, ``weights``) as a TFLite flatbuffer.

    ``quantize.to_tflite`` takes one image input; this model takes three, so its
    representative dataset yields a dict per sample. int8: int8 weights, activations,
    float inputs and outputs; the word ids stay int32 (an embedding lookup's indices).
    """
    if precision not in ("float", "int8"):
        raise ValueError(f"precision must be 'float' or 'int8', got {precision!r}")
    with tempfile.TemporaryDirectory(prefix="vitrina-savedmodel-") as saved:
        # Keras 3 workaround (as quantize.to_tflite): a SavedModel export freezes the variables.
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        if precision == "int8":
            if calibration is None or len(calibration["words"]) < MIN_CALIBRATION_SAMPLES:
                raise CalibrationError(
                    f"int8 text-visual export needs at least {MIN_CALIBRATION_SAMPLES} calibration samples"
                )
            set_full_int8(converter, lambda: _representative(calibration))
        return converter.convert()
