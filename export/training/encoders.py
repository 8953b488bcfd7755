"""Training loop of the sketch and photo encoders (siamese, heterogeneous weights).

Loss, per batch of B distinct products (sketch i depicts photo i):

* InfoNCE between each sketch and its own photo (both directions), which
  carries instance-level matching ("find this exact product");
* cross-modal batch-all triplet on categories (sketch anchor, same-category
  photo positive, other-category photo negative, margin ``m``) as in the
  multi-stage siamese/triplet SBIR work;
* auxiliary category cross-entropy through one cosine classifier shared by
  both modalities, which pulls both into the same class layout.

Reproducible: a run trains exactly ``steps`` steps from ``seed`` (no
wall-clock cap, so a slower machine ships the same model, only later), with
TensorFlow's deterministic ops turned on (``deterministic``).

Checkpoints (weights, optimizer state, step, and the batch sampler's state) are
written every ``checkpoint_every`` steps; a run with the same settings resumes
from the last and continues with the very batches an uninterrupted run would have
drawn.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from vitrina.export.models import EncoderSpec, build_encoder
from vitrina.export.training.checkpoints import fingerprint as run_fingerprint
from vitrina.export.training.checkpoints import restore_checkpoint, save_checkpoint

_CLASSIFIER_SCALE = 10.0


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """Attributes:
    steps: optimisation steps (batches).
    batch_size: products per batch (distinct; >= 8).
    learning_rate: peak Adam learning rate, after linear warm-up, cosine-decayed to 0.
    warmup_steps: steps of linear warm-up.
    temperature: InfoNCE softmax temperature.
    margin: triplet margin on squared L2 distance of unit vectors.
    nce_weight, triplet_weight, ce_weight: loss weights.
    checkpoint_every: steps between checkpoints.
    seed: random seed of sampling, augmentation and initialisation.
    deterministic: turn on TensorFlow's deterministic ops
        (``tf.config.experimental.enable_op_determinism``) so two runs with the
        same seed give the same weights. Process-wide, and TensorFlow offers no
        public way to turn it off again.
    """

    steps: int = 3000
    batch_size: int = 128
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    temperature: float = 0.07
    margin: float = 0.2
    nce_weight: float = 1.0
    triplet_weight: float = 1.0
    ce_weight: float = 0.5
    checkpoint_every: int = 250
    seed: int = 0
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 8:
            raise ValueError(f"batch_size must be >= 8, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    """Attributes: steps done in total (always ``TrainOptions.steps``),
    steps_this_run, seconds of this run (wall clock), pairs_per_second of this
    run (sketch/photo pairs, i.e. steps × batch_size per second), final_loss
    (mean of the last 50 steps, or as saved with the checkpoint when nothing was
    left to train), seconds_total (all runs of this checkpoint), resumed_from
    (step the run started at)."""

    steps: int
    steps_this_run: int
    seconds: float
    pairs_per_second: float
    final_loss: float
    seconds_total: float
    resumed_from: int


class _Trainer:
    """Holds the two encoders, the shared classifier and the optimizer."""

    def __init__(self, sketch_spec: EncoderSpec, photo_spec: EncoderSpec, n_classes: int, opts: TrainOptions):
        keras.utils.set_random_seed(opts.seed)
        self.opts = opts
        self.sketch = build_encoder(sketch_spec, "sketch")
        self.photo = build_encoder(photo_spec, "photo")
        self.classifier = tf.Variable(
            tf.random.normal((sketch_spec.embedding_dims, n_classes), stddev=0.1, seed=opts.seed), name="classifier"
        )
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0,
            max(1, opts.steps - opts.warmup_steps),
            warmup_target=opts.learning_rate,
            warmup_steps=opts.warmup_steps,
        )
        self.optimizer = keras.optimizers.Adam(schedule)
        self.variables = [*self.sketch.trainable_variables, *self.photo.trainable_variables, self.classifier]
        self.optimizer.build(self.variables)
        self.step_fn = tf.function(self._step, reduce_retracing=True)

    def _losses(self, sketches: tf.Tensor, photos: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        o = self.opts
        s = tf.math.l2_normalize(self.sketch(sketches, training=True), axis=1)
        p = tf.math.l2_normalize(self.photo(photos, training=True), axis=1)
        sim = tf.matmul(s, p, transpose_b=True)
        own = tf.range(tf.shape(s)[0])
        nce = 0.5 * (
            tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(own, sim / o.temperature, from_logits=True))
            + tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(own, tf.transpose(sim) / o.temperature, from_logits=True)
            )
        )
        dist = 2.0 - 2.0 * sim
        same = tf.equal(labels[:, None], labels[None, :])
        valid = tf.logical_and(same[:, :, None], tf.logical_not(same)[:, None, :])
        raw = tf.nn.relu(dist[:, :, None] - dist[:, None, :] + o.margin) * tf.cast(valid, tf.float32)
        triplet = tf.reduce_sum(raw) / (tf.reduce_sum(tf.cast(raw > 1e-12, tf.float32)) + 1e-12)
        w = tf.math.l2_normalize(self.classifier, axis=0)
        ce = 0.5 * (
            tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, _CLASSIFIER_SCALE * s @ w, from_logits=True)
            )
            + tf.reduce_mean(
                keras.losses.sparse_categorical_crossentropy(labels, _CLASSIFIER_SCALE * p @ w, from_logits=True)
            )
        )
        return o.nce_weight * nce + o.triplet_weight * triplet + o.ce_weight * ce

    def _step(self, sketches: tf.Tensor, photos: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = self._losses(sketches, photos, labels)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables))
        return loss

    # --- checkpoints (``checkpoints.py``) ---------------------------------------
    def save(self, directory: Path, step: int, fingerprint: str, sampler: dict, summary: dict | None = None) -> None:
        """Write a checkpoint of ``step`` into ``directory`` and drop the previous one's files.

        ``sampler`` is the batch sampler's state (JSON-serialisable, see :func:`train_encoders`).
        """
        arrays = {"classifier": self.classifier.numpy()}
        arrays |= {f"opt_{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)}
        models = {"sketch": self.sketch, "photo": self.photo}
        save_checkpoint(
            directory, step, run=fingerprint, models=models, arrays=arrays, sampler=sampler, summary=summary
        )

    def restore(self, directory: Path, fingerprint: str) -> tuple[int, dict, dict]:
        """Load the checkpoint in ``directory`` if it was made with the same settings.

        Returns its step, the batch sampler's state (``{}`` when there is none)
        and the training summary saved with it (seconds and loss so far), or
        (0, {}, {}) when there is nothing to resume.
        """
        saved = restore_checkpoint(directory, run=fingerprint, models={"sketch": self.sketch, "photo": self.photo})
        if saved is None:
            return 0, {}, {}
        self.classifier.assign(saved.arrays["classifier"])
        for i, v in enumerate(self.optimizer.variables):
            v.assign(saved.arrays[f"opt_{i}"])
        return saved.step, saved.sampler, saved.summary


def _augment(sketches: np.ndarray, photos: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Flip pairs together (keeps them matching); shuffle photo colour channels
    and sometimes drop colour, since black-ink sketches carry no colour."""
    flip = rng.random(len(sketches)) < 0.5
    sketches, photos = sketches.copy(), photos.copy()
    sketches[flip] = sketches[flip, :, ::-1]
    photos[flip] = photos[flip, :, ::-1]
    perms = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
    photos = np.take_along_axis(photos, perms[rng.integers(len(perms), size=len(photos))][:, None, None, :], axis=3)
    gray = rng.random(len(photos)) < 0.2
    photos[gray] = photos[gray].mean(axis=3, keepdims=True).astype(np.uint8)
    return sketches, photos


def train_encoders(
    sketches: np.ndarray,
    photos: np.ndarray,
    labels: np.ndarray,
    *,
    sketch_spec: EncoderSpec,
    photo_spec: EncoderSpec,
    options: TrainOptions,
    checkpoint_dir: Path,
    progress: bool = True,
) -> tuple[keras.Model, keras.Model, TrainResult]:
    """Train both encoders for exactly ``options.steps`` steps, resuming from
    ``checkpoint_dir`` when it holds a checkpoint of the same data and settings.

    Args:
        sketches: (n, V, S, S) uint8, V synthetic sketches per product.
        photos: (n, S, S, 3) uint8 product photos.
        labels: (n,) int category index of each product.
        sketch_spec, photo_spec: the two encoders' architectures.
        options: training settings (steps, seed, determinism, ...).
        checkpoint_dir: folder of the checkpoints (created when missing).
        progress: show a progress bar.

    Returns:
        the sketch model, the photo model and a :class:`TrainResult`.
    """
    n = len(photos)
    if sketches.shape[0] != n or labels.shape != (n,):
        raise ValueError(
            f"sketches {sketches.shape}, photos {photos.shape} and labels {labels.shape} disagree on the product count"
        )
    if n < options.batch_size:
        raise ValueError(f"need at least batch_size={options.batch_size} training products, got {n}")
    if options.deterministic:
        # Same seed → same weights (on the same TensorFlow build and CPU); process-wide.
        tf.config.experimental.enable_op_determinism()
    n_classes = int(labels.max()) + 1
    trainer = _Trainer(sketch_spec, photo_spec, n_classes, options)
    # The checkpoint cadence does not change the result: it stays out of the
    # fingerprint, so a rerun with another cadence still resumes.
    result_options = {k: v for k, v in asdict(options).items() if k != "checkpoint_every"}
    fingerprint = run_fingerprint(sketch_spec, photo_spec, result_options, n, int(labels.sum()))
    checkpoint_dir = Path(checkpoint_dir)
    start, sampler, earlier = trainer.restore(checkpoint_dir, fingerprint)
    b = options.batch_size
    # The batch sampler (product order, sketch variants, augmentation) is one
    # generator; its state is checkpointed, so a resumed run draws the batches
    # an uninterrupted one would have.
    rng = np.random.default_rng([options.seed, 0])
    if sampler:
        rng.bit_generator.state = sampler["rng"]
        order, cursor = np.asarray(sampler["order"], dtype=np.int64), int(sampler["cursor"])
    else:
        order, cursor = rng.permutation(n), 0
    losses: list[float] = []
    t0 = time.monotonic()
    bar = tqdm(total=options.steps, initial=start, desc="training", unit="step", disable=not progress, mininterval=1.0)
    for step in range(start + 1, options.steps + 1):
        if cursor + b > n:
            order, cursor = rng.permutation(n), 0
        batch = order[cursor : cursor + b]
        cursor += b
        variant = rng.integers(sketches.shape[1], size=b)
        sk, ph = _augment(sketches[batch, variant], photos[batch], rng)
        loss = float(
            trainer.step_fn(
                tf.constant(sk[..., None], tf.float32),
                tf.constant(ph, tf.float32),
                tf.constant(labels[batch], tf.int32),
            )
        )
        if not np.isfinite(loss):
            raise RuntimeError(f"training diverged at step {step} (loss {loss}); lower the learning rate")
        losses.append(loss)
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if step % options.checkpoint_every == 0 or step == options.steps:
            summary = {
                "seconds_total": earlier.get("seconds_total", 0.0) + time.monotonic() - t0,
                "final_loss": float(np.mean(losses[-50:])),
            }
            state = {"rng": rng.bit_generator.state, "order": order.tolist(), "cursor": cursor}
            trainer.save(checkpoint_dir, step, fingerprint, state, summary)
    bar.close()
    seconds = time.monotonic() - t0
    done = options.steps - start
    result = TrainResult(
        steps=options.steps,
        steps_this_run=done,
        seconds=round(seconds, 1),
        pairs_per_second=round(done * b / seconds, 1) if seconds > 0 and done else 0.0,
        final_loss=round(float(np.mean(losses[-50:])) if losses else earlier.get("final_loss", float("nan")), 4),
        seconds_total=round(earlier.get("seconds_total", 0.0) + seconds, 1),
        resumed_from=start,
    )
    return trainer.sketch, trainer.photo, result
