"""Photo encoder fine-tuning on detector-like crops of composed scenes.

The photo encoder (``training/encoders.py``) learns from clean catalog photos
on white. A shopper's photo goes through the detector first, and its crop is
nothing like that: a loose box, the scene's background and clutter around
the product, a neighbour's edge, another scale. This stage teaches a copy of
the encoder (the *student*) to map such crops where the trained encoder (the
*teacher*, frozen) puts the clean catalog photo of the same product:

* InfoNCE between each crop's student embedding and the teacher embeddings
  of the batch's clean products (instance matching: the crop's own product
  is the positive);
* cosine distance between the student and the teacher on clean photos, so
  the student stays in the teacher's space (catalog codes, the sketch
  encoder and the compact-code reducer all live there and are not retrained).

Crops (:func:`detector_like_crop`) are made the way the device makes them: a
jittered box around the product (loose, shifted, sometimes tight), cut with
``runtime.detector.crop_box`` and padded to a square on white by
``runtime.photo.prepare_photo`` (aspect kept, never stretched).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from PIL import Image
from tqdm import tqdm

from vitrina.runtime.bundle import SceneSet
from vitrina.runtime.detector import crop_box
from vitrina.runtime.photo import prepare_photo


@dataclass(frozen=True, kw_only=True)
class CropTuneOptions:
    """Attributes:
    steps: optimisation steps (0: no fine-tuning); batch_size: crops per step (distinct products).
    learning_rate: Adam learning rate (cosine-decayed to 0).
    temperature: InfoNCE temperature; clean_weight: weight of the clean-photo cosine term.
    loose: largest growth of a box side, as a fraction of the box size (loose boxes).
    seed: random seed of sampling and crops.
    """

    steps: int = 300
    batch_size: int = 64
    learning_rate: float = 3e-4
    temperature: float = 0.07
    clean_weight: float = 1.0
    loose: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 0:
            raise ValueError(f"steps must be >= 0, got {self.steps}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2, got {self.batch_size}")


@dataclass(frozen=True, kw_only=True)
class CropTuneResult:
    """Attributes: steps, seconds (wall clock), crops_per_second, final_loss (mean of the last 50 steps)."""

    steps: int
    seconds: float
    crops_per_second: float
    final_loss: float


def detector_like_crop(
    scene: np.ndarray, box: np.ndarray, rng: np.random.Generator, *, size: int, loose: float = 0.3
) -> np.ndarray:
    """A (size, size, 3) uint8 photo-encoder input cut from ``scene`` (S, S, 3) around ``box`` (xyxy):
    each side moved outwards by up to ``loose`` of the box size (inwards by up to 5 %), then cut and
    padded to a square on white, as ``ProductSearch.by_photo`` does with a detector box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = x1 - x0, y1 - y0
    grow = rng.uniform(-0.05, loose, 4) * np.array([w, h, w, h])
    jittered = [x0 - grow[0], y0 - grow[1], x1 + grow[2], y1 + grow[3]]
    return prepare_photo(crop_box(Image.fromarray(scene), jittered), size)


def tune_photo_on_crops(
    teacher: keras.Model,
    clean: np.ndarray,
    scenes: SceneSet,
    clean_row: np.ndarray,
    *,
    options: CropTuneOptions,
    progress: bool = True,
) -> tuple[keras.Model, CropTuneResult]:
    """Fine-tune a copy of ``teacher`` on crops of ``scenes``.

    Args:
        teacher: the trained photo encoder, (n, S, S, 3) pixels → (n, D); left unchanged.
        clean: (P, S, S, 3) uint8 clean catalog photos at the encoder's input side.
        scenes: training scenes (train-split products only).
        clean_row: (n_items,) int64 row of :attr:`clean` holding each product's photo (-1: none).
        options: steps, batch, learning rate, crop looseness.

    Returns:
        the student model (same architecture, fine-tuned weights) and a :class:`CropTuneResult`.
    """
    student = keras.models.clone_model(teacher)
    student.set_weights(teacher.get_weights())
    size = int(teacher.inputs[0].shape[1])
    usable = np.flatnonzero(clean_row[scenes.box_items] >= 0)
    if options.steps == 0 or len(usable) < options.batch_size:
        return student, CropTuneResult(steps=0, seconds=0.0, crops_per_second=0.0, final_loss=float("nan"))
    rng = np.random.default_rng([options.seed, 3])
    schedule = keras.optimizers.schedules.CosineDecay(options.learning_rate, options.steps)
    optimizer = keras.optimizers.Adam(schedule)
    variables = student.trainable_variables
    optimizer.build(variables)
    temperature, clean_weight = options.temperature, options.clean_weight

    @tf.function(reduce_retracing=True)
    def step(crops: tf.Tensor, photos: tf.Tensor) -> tf.Tensor:
        target = tf.math.l2_normalize(teacher(photos, training=False), axis=1)
        with tf.GradientTape() as tape:
            s_crop = tf.math.l2_normalize(student(crops, training=True), axis=1)
            s_clean = tf.math.l2_normalize(student(photos, training=True), axis=1)
            logits = tf.matmul(s_crop, target, transpose_b=True) / temperature
            own = tf.range(tf.shape(logits)[0])
            nce = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(own, logits, from_logits=True))
            stay = tf.reduce_mean(1.0 - tf.reduce_sum(s_clean * target, axis=1))
            loss = nce + clean_weight * stay
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    losses: list[float] = []
    t0 = time.monotonic()
    b = options.batch_size
    for _ in tqdm(range(options.steps), desc="photo crops", unit="step", disable=not progress, mininterval=1.0):
        rows = rng.choice(usable, size=4 * b, replace=False)
        _, first = np.unique(scenes.box_items[rows], return_index=True)  # distinct products: InfoNCE positives
        rows = rows[np.sort(first)][:b]
        crops = np.stack(
            [
                detector_like_crop(
                    scenes.images[scenes.box_scene[r]], scenes.boxes[r], rng, size=size, loose=options.loose
                )
                for r in rows
            ]
        )
        photos = clean[clean_row[scenes.box_items[rows]]]
        losses.append(float(step(tf.constant(crops, tf.float32), tf.constant(photos, tf.float32))))
    seconds = time.monotonic() - t0
    return student, CropTuneResult(
        steps=options.steps,
        seconds=round(seconds, 1),
        crops_per_second=round(options.steps * b / seconds, 1) if seconds > 0 else 0.0,
        final_loss=round(float(np.mean(losses[-50:])), 4),
    )
