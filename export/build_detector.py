"""Build stage: the product detector and the photo encoder's crop fine-tuning.

Runs inside ``vitrina build`` (``build.py``) in two halves: :func:`start_detector_stage`
before the encoders train, :func:`finish_detector_stage` after:

1. compose training scenes from train-split products (``data/scenes.py``);
2. train the detector on them in its own process, beside the encoders' training
   (``training/detector.py``, checkpointed in the work folder);
3. export it to TFLite float32 and full int8, calibrated on training scenes;
4. fine-tune a copy of the photo encoder on detector-like crops of the same
   scenes (``training/photo_crops.py``); the copy ships as the bundle's photo
   model, while the catalog codes stay those of the trained encoder (the
   sketch encoder's space);
5. compose held-out scenes from test-split products with another seed, for
   ``vitrina eval --task detect`` / ``--task photo`` and the benchmark.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vitrina.runtime.bundle import SceneSet

from .data.catalog import Catalog
from .data.scenes import BACKGROUNDS, OTHER_BACKGROUNDS, PATTERN_BACKGROUNDS, SceneOptions, compose_scenes
from .detector_model import DetectorSpec
from .quantize import to_tflite
from .training.detector import DetectorTraining, DetectorTrainOptions, start_detector_training
from .training.photo_crops import CropTuneOptions, detector_like_crop, tune_photo_on_crops

TRAIN_SCENE_SEED = 3
TUNE_SCENE_SEED = 5  # validation scenes of train-split products for the score threshold
EVAL_SCENE_SEED = 77_003  # never used for training scenes
VALIDATION_SCENE_SEED = 7  # scenes of the products held out of the text-visual training
#: Score thresholds tried, and how much recall the shipped one may give up against the lowest.
THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
RECALL_SLACK = 0.005


@dataclass(frozen=True, kw_only=True)
class DetectorProfile:
    """How a profile builds its detector.

    Attributes:
        scenes: scene composition (its ``size`` is the detector's input side).
        train_backgrounds: the training scenes' background kinds, in place of ``scenes.backgrounds``
            (which the held-out and threshold-tuning scenes keep): the catalog's own kinds plus
            patterns (domain randomisation; before them, the second store's tiled backgrounds gave
            10.6 boxes a scene against 4.7 and recall 0.90 against 0.97).
        train_scenes: scenes composed for training; eval_scenes: held-out scenes kept in the bundle.
        alpha, depth, fpn_channels, stride: detector architecture (see DetectorSpec).
        train: detector training options.
        crops: the photo encoder's crop fine-tuning (``steps=0``: none).
        calibration_samples: scenes for int8 calibration (>= 200).
        score_threshold: the detector's shipped score threshold (the device's default, written
            into the manifest); None tunes it (:func:`tune_threshold`).
        tune_scenes: validation scenes (train-split products, their own seed) the tuning uses.
    """

    scenes: SceneOptions = SceneOptions()
    train_backgrounds: tuple[str, ...] = BACKGROUNDS + PATTERN_BACKGROUNDS
    train_scenes: int = 4000
    eval_scenes: int = 500
    alpha: float = 0.35
    depth: float = 0.5
    fpn_channels: int = 48
    stride: int = 8
    train: DetectorTrainOptions = DetectorTrainOptions()
    crops: CropTuneOptions = CropTuneOptions()
    calibration_samples: int = 300
    score_threshold: float | None = None
    tune_scenes: int = 300

    def __post_init__(self) -> None:
        kinds = BACKGROUNDS + PATTERN_BACKGROUNDS
        if not self.train_backgrounds or set(self.train_backgrounds) - set(kinds):
            raise ValueError(
                f"train_backgrounds must be a non-empty subset of {kinds} (the second store's "
                f"{OTHER_BACKGROUNDS} measure generalisation and are never trained on), got {self.train_backgrounds}"
            )

    def spec(self, n_classes: int) -> DetectorSpec:
        """The detector architecture this profile trains, for ``n_classes`` categories."""
        return DetectorSpec(
            input_size=self.scenes.size,
            n_classes=n_classes,
            alpha=self.alpha,
            depth=self.depth,
            fpn_channels=self.fpn_channels,
            stride=self.stride,
        )


@dataclass(frozen=True)
class DetectorStage:
    """What the stage adds to the bundle: ``models`` (detector_float/int8 and the fine-tuned
    photo_float/int8), the held-out ``eval_scenes``, a JSON ``report`` and the shipped ``score_threshold``."""

    models: dict[str, bytes]
    eval_scenes: SceneSet
    report: dict[str, Any] = field(default_factory=dict)
    score_threshold: float = 0.2


def product_pool(
    catalog: Catalog, labels: np.ndarray, split: str, usable: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photos, product indices, category indices) of the products of ``split``, first image each;
    with ``usable`` ((P,) bool), only those products (the packshots: scenes are composed of
    products cut out of their white background)."""
    items = catalog.split_items(split)
    if usable is not None:
        items = items[usable[items]]
    rows = catalog.first_images()[items]
    return catalog.images[rows], items.astype(np.int32), labels[items].astype(np.int32)


@dataclass
class PendingDetector:
    """The detector stage between :func:`start_detector_stage` and :func:`finish_detector_stage`:
    the composed scenes, and the detector training running in its own process.

    ``train_scenes`` (on ``profile.train_backgrounds``) train the detector and the photo
    encoder's crop tuning; ``catalog_scenes``, the same products and seed on the catalog's
    own backgrounds (``profile.scenes.backgrounds``), give the text-visual model its scene
    crops, so its training data stay what they were before the patterns. (One run on the
    patterned crops gave similar-products P@10 0.31, as poor as the worst of three runs on
    these; the text-visual model varies that much between runs, so that comparison is open.)"""

    profile: DetectorProfile
    categories: list[str]
    train_scenes: SceneSet
    catalog_scenes: SceneSet
    eval_scenes: SceneSet
    spec: DetectorSpec
    training: DetectorTraining
    compose_seconds: float
    usable: np.ndarray

    def cancel(self) -> None:
        """Stop the training process (its checkpoints stay for the next build)."""
        self.training.cancel()


def start_detector_stage(
    catalog: Catalog,
    categories: list[str],
    item_labels: np.ndarray,
    *,
    usable: np.ndarray,
    profile: DetectorProfile,
    work: Path,
    key: str,
    progress: bool = True,
) -> PendingDetector:
    """Compose the scenes and start the detector training in the background (steps 1-2 of
    the module docstring; ``build.py`` starts it before the encoders train).

    Args:
        catalog: the loaded catalog; categories: category names (index order of ``item_labels``).
        item_labels: (P,) category index of each product.
        usable: (P,) bool products whose main image is a packshot (the scenes' products).
        work: the build's cache folder; key: the catalog's cache key.
    """
    t0 = time.monotonic()
    opts = profile.scenes
    train_photos, train_items, train_labels = product_pool(catalog, item_labels, "train", usable)
    test_photos, test_items, test_labels = product_pool(catalog, item_labels, "test", usable)
    if len(test_items) == 0:
        raise ValueError("the detector's held-out scenes need test-split products; the catalog has none")

    def train_pool_scenes(options: SceneOptions, desc: str) -> SceneSet:
        return compose_scenes(
            train_photos,
            train_items,
            train_labels,
            categories,
            count=profile.train_scenes,
            seed=TRAIN_SCENE_SEED,
            options=options,
            progress=progress,
            desc=desc,
        )

    train_scenes = train_pool_scenes(replace(opts, backgrounds=profile.train_backgrounds), "train scenes")
    catalog_scenes = (
        train_scenes if profile.train_backgrounds == opts.backgrounds else train_pool_scenes(opts, "text-visual scenes")
    )
    eval_scenes = compose_scenes(
        test_photos,
        test_items,
        test_labels,
        categories,
        count=profile.eval_scenes,
        seed=EVAL_SCENE_SEED,
        options=opts,
        progress=progress,
        desc="held-out scenes",
    )
    compose_seconds = time.monotonic() - t0
    spec = profile.spec(len(categories))
    training = start_detector_training(
        train_scenes,
        spec=spec,
        options=profile.train,
        checkpoint_dir=work / f"ckpt-detector-{key}",
        progress=False,  # the encoders' bar is on screen meanwhile
    )
    return PendingDetector(
        profile=profile,
        categories=categories,
        train_scenes=train_scenes,
        catalog_scenes=catalog_scenes,
        eval_scenes=eval_scenes,
        spec=spec,
        training=training,
        compose_seconds=compose_seconds,
        usable=usable,
    )


def finish_detector_stage(
    pending: PendingDetector,
    catalog: Catalog,
    item_labels: np.ndarray,
    *,
    photo_model: keras.Model,
    photos: np.ndarray,
    work: Path,
    key: str,
    progress: bool = True,
) -> DetectorStage:
    """Wait for the detector training, then export it and crop-tune the photo encoder
    (steps 3-4 of the module docstring).

    Args:
        pending: from :func:`start_detector_stage` on the same ``catalog`` and ``item_labels``.
        photo_model: the trained photo encoder (the teacher; left unchanged).
        photos: (N, s, s, 3) uint8 catalog photos at the photo encoder's input side, one per catalog image.
        work: the build's cache folder; key: the catalog's cache key.
    """
    t0 = time.monotonic()
    model, trained = pending.training.result(progress=progress)
    waited = time.monotonic() - t0
    profile, categories, spec = pending.profile, pending.categories, pending.spec
    train_scenes, eval_scenes = pending.train_scenes, pending.eval_scenes
    opts = profile.scenes
    train_photos, train_items, train_labels = product_pool(catalog, item_labels, "train", pending.usable)
    calib = train_scenes.images[: max(profile.calibration_samples, 200)]
    models = {"detector_float": to_tflite(model, "float"), "detector_int8": to_tflite(model, "int8", calib)}

    # photo encoder on detector-like crops
    first = catalog.first_images()
    clean_row = np.full(len(catalog.items), -1, np.int64)
    clean_row[train_items] = first[train_items]
    student, tuned = _cached_student(
        photo_model, photos, train_scenes, clean_row, profile.crops, work=work, key=key, progress=progress
    )
    size = photos.shape[1]
    rng = np.random.default_rng(0)
    crop_rows = rng.choice(len(train_scenes.boxes), size=min(250, len(train_scenes.boxes)), replace=False)
    crop_calib = [
        detector_like_crop(train_scenes.images[train_scenes.box_scene[r]], train_scenes.boxes[r], rng, size=size)
        for r in crop_rows
    ]
    photo_calib = np.concatenate([photos[rng.choice(len(photos), size=250, replace=False)], np.stack(crop_calib)])
    if tuned is not None:
        models["photo_float"] = to_tflite(student, "float")
        models["photo_int8"] = to_tflite(student, "int8", photo_calib)
    threshold, tuning = profile.score_threshold, None
    if threshold is None:
        tune = compose_scenes(
            train_photos,
            train_items,
            train_labels,
            categories,
            count=profile.tune_scenes,
            seed=TUNE_SCENE_SEED,
            options=opts,
        )
        threshold, tuning = tune_threshold(models["detector_int8"], tune)
    report = {
        "input_size": spec.input_size,
        "score_threshold": threshold,
        "threshold_tuning": tuning,
        "architecture": asdict(spec),
        "scenes": {
            "options": asdict(opts),
            "train_backgrounds": list(profile.train_backgrounds),
            "train": len(train_scenes),
            "train_boxes": len(train_scenes.boxes),
            "eval": len(eval_scenes),
            "eval_boxes": len(eval_scenes.boxes),
            "seconds": round(pending.compose_seconds, 1),
            "note": "synthetic composition of real catalog product images",
        },
        "training": asdict(trained),
        "waited_for_training_seconds": round(waited, 1),
        "training_options": asdict(profile.train),
        "photo_crop_tuning": None if tuned is None else tuned | {"options": asdict(profile.crops)},
        # the build process's own time on the stage: composing, waiting for the training, the rest
        "seconds": round(pending.compose_seconds + time.monotonic() - t0, 1),
    }
    return DetectorStage(models=models, eval_scenes=eval_scenes, report=report, score_threshold=threshold)


def tune_threshold(model: bytes, scenes: SceneSet) -> tuple[float, dict[str, dict[str, float]]]:
    """The highest of :data:`THRESHOLDS` whose recall at IoU >= 0.5 on ``scenes`` is within
    :data:`RECALL_SLACK` of the lowest threshold's (recall first: a redundant box costs a shopper
    nothing, a missed product the wrong search), run through LiteRT as on the device.

    Returns:
        the threshold and ``{threshold: {"recall50": r, "boxes_per_scene": b}}``.
    """
    from vitrina.runtime.detector import Detector, DetectorOptions
    from vitrina.runtime.evaluate_detect import covered, detect_scenes

    with tempfile.TemporaryDirectory(prefix="vitrina-detector-") as tmp:
        path = Path(tmp) / "detector.tflite"
        path.write_bytes(model)
        with Detector.create_from_options(DetectorOptions(model_path=str(path), num_threads=2)) as detector:
            dets = detect_scenes(detector, scenes)
            options = detector.options
    table = {}
    for t in THRESHOLDS:
        shipped = dets.shipped(replace(options, score_threshold=t))
        table[str(t)] = {
            "recall50": round(float(covered(scenes, shipped).mean()), 4),
            "boxes_per_scene": round(float(np.mean([len(b) for b in shipped.boxes])), 2),
        }
    best = table[str(THRESHOLDS[0])]["recall50"]
    chosen = max(t for t in THRESHOLDS if table[str(t)]["recall50"] >= best - RECALL_SLACK)
    return chosen, table


def _cached_student(
    teacher: keras.Model,
    photos: np.ndarray,
    scenes: SceneSet,
    clean_row: np.ndarray,
    options: CropTuneOptions,
    *,
    work: Path,
    key: str,
    progress: bool,
) -> tuple[keras.Model, dict[str, Any] | None]:
    """The crop-tuned photo encoder, from the work folder when this teacher and these
    settings were tuned before; None as the report when ``options.steps`` is 0."""
    if options.steps == 0:
        return teacher, None
    digest = hashlib.sha256(repr((asdict(options), key, len(scenes))).encode())
    digest.update(np.ascontiguousarray(scenes.boxes).tobytes())  # other scenes (e.g. backgrounds) tune anew
    for w in teacher.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    path = work / f"photo-crops-{digest.hexdigest()[:16]}.weights.h5"
    if path.is_file():
        student = keras.models.clone_model(teacher)
        student.load_weights(path)
        return student, {"cached": True, "steps": options.steps}
    student, result = tune_photo_on_crops(teacher, photos, scenes, clean_row, options=options, progress=progress)
    tmp = path.with_name(f".{path.name[: -len('.weights.h5')]}.tmp-{os.getpid()}.weights.h5")
    student.save_weights(tmp)
    os.replace(tmp, path)
    return student, asdict(result)
