"""Training loop of the product detector (``detector_model.py``) on composed scenes.

Targets per grid cell (:func:`grid_targets`), CenterNet-style:

* objectness: a Gaussian bump at every product's centre (sigma a sixth of
  its width and height), exactly 1 at the centre cell; penalty-reduced focal
  loss (CenterNet), normalised by the number of products;
* boxes: at the cells of each product's central region (the smallest product
  wins a shared cell), GIoU loss of the decoded box plus L1 on the log distances;
* categories: cross-entropy at the same cells.

Scenes come from a pool composed once (``data/scenes.py``), flipped
left-right at random and their colour channels shuffled (a product's
silhouette, not its tint, says "product").

Reproducible and resumable like the encoders (``training/encoders.py``):
exactly ``steps`` steps from ``seed`` with deterministic ops, checkpoints
(weights, optimizer, step, sampler state) every ``checkpoint_every`` steps,
``state.json`` written last.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from vitrina.export.detector_model import STRIDE, DetectorSpec, build_detector
from vitrina.export.training.background import BackgroundJob, load_arrays, save_arrays, start_job, write_progress
from vitrina.export.training.checkpoints import fingerprint as run_fingerprint
from vitrina.export.training.checkpoints import restore_checkpoint, save_checkpoint
from vitrina.runtime.bundle import SceneSet

_BOX_WEIGHT = 2.0
_CLASS_WEIGHT = 0.5
#: A run whose last-50-step loss is above this share of its first steps' loss learnt nothing.
_STUCK_RATIO = 0.8
_FIRST_STEPS = 20
#: Runs shorter than this are not judged (tests train a handful of steps).
_MIN_STEPS_TO_JUDGE = 300
#: Steps between the child's writes of its progress file (``start_detector_training``).
_PROGRESS_EVERY = 10


@dataclass(frozen=True, kw_only=True)
class DetectorTrainOptions:
    """Attributes:
    steps: optimisation steps; batch_size: scenes per step.
    learning_rate: peak Adam learning rate after ``warmup_steps`` of linear warm-up, cosine-decayed to 0.
    clip_norm: gradients are scaled down to this global norm when above it (None: no clipping).
    checkpoint_every: steps between checkpoints.
    seed: random seed of sampling, augmentation and initialisation.
    deterministic: TensorFlow's deterministic ops (process-wide).
    """

    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 100
    clip_norm: float | None = None
    checkpoint_every: int = 250
    seed: int = 0
    deterministic: bool = True

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.clip_norm is not None and self.clip_norm <= 0:
            raise ValueError(f"clip_norm must be > 0 or None, got {self.clip_norm}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")


@dataclass(frozen=True, kw_only=True)
class DetectorTrainResult:
    """Attributes: steps (always ``options.steps``), steps_this_run, seconds of this run,
    scenes_per_second of this run, final_loss (mean of the last 50 steps), seconds_total
    (all runs of this checkpoint), resumed_from (step the run started at)."""

    steps: int
    steps_this_run: int
    seconds: float
    scenes_per_second: float
    final_loss: float
    seconds_total: float
    resumed_from: int


def grid_targets(
    boxes: np.ndarray, labels: np.ndarray, grid: int, stride: int = STRIDE
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Training targets of one scene.

    Args:
        boxes: (m, 4) float32 xyxy boxes in input pixels; labels: (m,) category indices.
        grid: G, the output grid's side; stride: input pixels per cell.

    Returns:
        heat (G, G) float32 in [0, 1] (1 at each box's centre cell), box_targets
        (G, G, 4) float32 xyxy of the box a cell regresses, class_targets (G, G)
        int32, weights (G, G) float32 (0 where a cell regresses nothing).
    """
    heat = np.zeros((grid, grid), np.float32)
    box_t = np.zeros((grid, grid, 4), np.float32)
    cls_t = np.zeros((grid, grid), np.int32)
    weight = np.zeros((grid, grid), np.float32)
    owner_area = np.full((grid, grid), np.inf, np.float32)
    centres = (np.arange(grid, dtype=np.float32) + 0.5) * stride
    cx_grid, cy_grid = centres[None, :], centres[:, None]
    for box, label in zip(np.asarray(boxes, np.float32).reshape(-1, 4), labels):
        x0, y0, x1, y1 = box
        w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx, sy = max(w / 6, stride / 2), max(h / 6, stride / 2)
        bump = np.exp(-((cx_grid - cx) ** 2) / (2 * sx**2) - ((cy_grid - cy) ** 2) / (2 * sy**2))
        gx, gy = min(int(cx // stride), grid - 1), min(int(cy // stride), grid - 1)
        bump[gy, gx] = 1.0
        heat = np.maximum(heat, bump)
        # central region: within a quarter of the size (at least one cell) of the centre, inside the box
        region = (np.abs(cx_grid - cx) <= max(w / 4, stride)) & (np.abs(cy_grid - cy) <= max(h / 4, stride))
        region &= (cx_grid > x0) & (cx_grid < x1) & (cy_grid > y0) & (cy_grid < y1)
        region[gy, gx] = True
        take = region & (w * h < owner_area)
        owner_area[take] = w * h
        box_t[take] = box
        cls_t[take] = int(label)
        weight[take] = bump[take]
    return heat, box_t, cls_t, weight


def _batch_targets(scenes: SceneSet, rows: np.ndarray, flips: np.ndarray, *, grid: int, size: int, stride: int):
    out: list[list[np.ndarray]] = [[], [], [], []]
    for row, flip in zip(rows, flips):
        idx = scenes.rows(int(row))
        boxes = scenes.boxes[idx].copy()
        if flip:
            boxes[:, [0, 2]] = size - boxes[:, [2, 0]]
        for acc, t in zip(out, grid_targets(boxes, scenes.box_labels[idx], grid, stride)):
            acc.append(t)
    return [np.stack(a) for a in out]


class _DetectorTrainer:
    def __init__(self, spec: DetectorSpec, opts: DetectorTrainOptions):
        keras.utils.set_random_seed(opts.seed)
        self.spec = spec
        self.model = build_detector(spec)
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0,
            max(1, opts.steps - opts.warmup_steps),
            warmup_target=opts.learning_rate,
            warmup_steps=opts.warmup_steps,
        )
        self.optimizer = keras.optimizers.Adam(schedule, global_clipnorm=opts.clip_norm)
        self.optimizer.build(self.model.trainable_variables)
        self.step_fn = tf.function(self._step, reduce_retracing=True)
        self.stride = float(spec.stride)
        centres = (tf.range(spec.grid, dtype=tf.float32) + 0.5) * self.stride
        self.cx = centres[None, None, :]
        self.cy = centres[None, :, None]

    def _losses(self, images, heat, box_t, cls_t, weight):
        out = self.model(images, training=True)
        p = tf.clip_by_value(tf.sigmoid(out["objectness"][..., 0]), 1e-4, 1 - 1e-4)
        peak = tf.cast(heat >= 1.0, tf.float32)
        focal = -(peak * (1 - p) ** 2 * tf.math.log(p) + (1 - peak) * (1 - heat) ** 4 * p**2 * tf.math.log(1 - p))
        n_obj = tf.maximum(tf.reduce_sum(peak), 1.0)
        obj_loss = tf.reduce_sum(focal) / n_obj
        d = tf.exp(tf.clip_by_value(out["boxes"], -4.0, 6.0)) * self.stride
        px0, py0 = self.cx - d[..., 0], self.cy - d[..., 1]
        px1, py1 = self.cx + d[..., 2], self.cy + d[..., 3]
        gx0, gy0, gx1, gy1 = box_t[..., 0], box_t[..., 1], box_t[..., 2], box_t[..., 3]
        inter = tf.nn.relu(tf.minimum(px1, gx1) - tf.maximum(px0, gx0)) * tf.nn.relu(
            tf.minimum(py1, gy1) - tf.maximum(py0, gy0)
        )
        union = (px1 - px0) * (py1 - py0) + (gx1 - gx0) * (gy1 - gy0) - inter
        hull = (tf.maximum(px1, gx1) - tf.minimum(px0, gx0)) * (tf.maximum(py1, gy1) - tf.minimum(py0, gy0))
        giou = inter / (union + 1e-6) - (hull - union) / (hull + 1e-6)
        # every cell of a central region counts (not only the bump's peak): many positives learn boxes fast
        pos = tf.cast(weight > 0, tf.float32)
        w_sum = tf.maximum(tf.reduce_sum(pos), 1.0)
        target_d = tf.stack([self.cx - gx0, self.cy - gy0, gx1 - self.cx, gy1 - self.cy], axis=-1)
        log_target = tf.math.log(tf.maximum(target_d, 1.0) / self.stride)
        l1 = tf.reduce_sum(tf.abs(out["boxes"] - log_target), axis=-1)
        box_loss = tf.reduce_sum(pos * (1.0 - giou + 0.5 * l1)) / w_sum
        weight = pos
        ce = keras.losses.sparse_categorical_crossentropy(cls_t, out["classes"], from_logits=True)
        cls_loss = tf.reduce_sum(weight * ce) / w_sum
        return obj_loss + _BOX_WEIGHT * box_loss + _CLASS_WEIGHT * cls_loss

    def _step(self, images, heat, box_t, cls_t, weight):
        with tf.GradientTape() as tape:
            loss = self._losses(images, heat, box_t, cls_t, weight)
        variables = self.model.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    def save(self, directory: Path, step: int, fingerprint: str, sampler: dict, summary: dict) -> None:
        """Write a checkpoint of ``step`` (``checkpoints.py``) and drop the previous one's files."""
        arrays = {f"opt_{i}": v.numpy() for i, v in enumerate(self.optimizer.variables)}
        save_checkpoint(
            directory,
            step,
            run=fingerprint,
            models={"detector": self.model},
            arrays=arrays,
            prefix="dstate",
            sampler=sampler,
            summary=summary,
        )

    def restore(self, directory: Path, fingerprint: str) -> tuple[int, dict, dict]:
        """The step, sampler state and summary of the checkpoint in ``directory`` made with the
        same settings, loaded into the model and optimizer; (0, {}, {}) when there is none."""
        saved = restore_checkpoint(directory, run=fingerprint, models={"detector": self.model})
        if saved is None:
            return 0, {}, {}
        for i, v in enumerate(self.optimizer.variables):
            v.assign(saved.arrays[f"opt_{i}"])
        return saved.step, saved.sampler, saved.summary


def train_detector(
    scenes: SceneSet,
    *,
    spec: DetectorSpec,
    options: DetectorTrainOptions,
    checkpoint_dir: Path,
    progress: bool = True,
    progress_file: Path | None = None,
) -> tuple[keras.Model, DetectorTrainResult]:
    """Train the detector for exactly ``options.steps`` steps on ``scenes`` (N, S, S, 3),
    resuming from ``checkpoint_dir`` when it holds a checkpoint of the same data and settings.
    ``progress_file``: where the step reached is written every few steps (for a parent process).

    Returns:
        the Keras model (outputs as :func:`~vitrina.export.detector_model.build_detector`)
        and a :class:`DetectorTrainResult`.
    """
    n, size = len(scenes), spec.input_size
    if n == 0 or scenes.images.shape[1:] != (size, size, 3):
        raise ValueError(f"need (N, {size}, {size}, 3) scenes, got {scenes.images.shape}")
    if options.deterministic:
        tf.config.experimental.enable_op_determinism()
    trainer = _DetectorTrainer(spec, options)
    result_options = {k: v for k, v in asdict(options).items() if k != "checkpoint_every"}
    fingerprint = run_fingerprint(spec, result_options, n, float(scenes.boxes.sum()), int(scenes.box_labels.sum()))
    checkpoint_dir = Path(checkpoint_dir)
    start, sampler, earlier = trainer.restore(checkpoint_dir, fingerprint)
    rng = np.random.default_rng([options.seed, 2])
    if sampler:
        rng.bit_generator.state = sampler["rng"]
    perms = np.array([[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]])
    b = min(options.batch_size, n)
    losses: list[float] = []
    t0 = time.monotonic()
    bar = tqdm(total=options.steps, initial=start, desc="detector", unit="step", disable=not progress, mininterval=1.0)
    for step in range(start + 1, options.steps + 1):
        rows = rng.choice(n, size=b, replace=False)
        flips = rng.random(b) < 0.5
        images = scenes.images[rows].copy()
        images[flips] = images[flips, :, ::-1]
        images = np.take_along_axis(images, perms[rng.integers(len(perms), size=b)][:, None, None, :], axis=3)
        heat, box_t, cls_t, weight = _batch_targets(scenes, rows, flips, grid=spec.grid, size=size, stride=spec.stride)
        loss = float(
            trainer.step_fn(
                tf.constant(images, tf.float32),
                tf.constant(heat),
                tf.constant(box_t),
                tf.constant(cls_t),
                tf.constant(weight),
            )
        )
        if not np.isfinite(loss):
            raise RuntimeError(f"detector training diverged at step {step} (loss {loss}); lower the learning rate")
        losses.append(loss)
        bar.update(1)
        if step % _PROGRESS_EVERY == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            write_progress(progress_file, step)
        if step % options.checkpoint_every == 0 or step == options.steps:
            summary = {
                "seconds_total": earlier.get("seconds_total", 0.0) + time.monotonic() - t0,
                "final_loss": float(np.mean(losses[-50:])),
                "first_loss": earlier.get("first_loss") if start else float(np.mean(losses[:_FIRST_STEPS])),
            }
            trainer.save(checkpoint_dir, step, fingerprint, {"rng": rng.bit_generator.state}, summary)
    bar.close()
    seconds = time.monotonic() - t0
    done = options.steps - start
    # the loss of the run's first steps (None: resumed from a checkpoint that did not record it)
    first = earlier.get("first_loss") if start else float(np.mean(losses[:_FIRST_STEPS]))
    last = float(np.mean(losses[-50:])) if losses else earlier.get("final_loss", float("nan"))
    if options.steps >= _MIN_STEPS_TO_JUDGE and first is not None and last > _STUCK_RATIO * first:
        raise RuntimeError(
            f"detector training did not learn: loss {last:.3f} after {options.steps} steps against {first:.3f} "
            f"at the start (a stuck run; the model is not shipped). Delete {checkpoint_dir} and build again, "
            "or lower the learning rate"
        )
    result = DetectorTrainResult(
        steps=options.steps,
        steps_this_run=done,
        seconds=round(seconds, 1),
        scenes_per_second=round(done * b / seconds, 1) if seconds > 0 and done else 0.0,
        final_loss=round(last, 4),
        seconds_total=round(earlier.get("seconds_total", 0.0) + seconds, 1),
        resumed_from=start,
    )
    return trainer.model, result


def _train_child(
    scenes_path: str, spec: DetectorSpec, options: DetectorTrainOptions, checkpoint_dir: str, out: str, progress: bool
) -> None:
    """Child-process body of :func:`start_detector_training`: train, write weights and the result."""
    scenes = load_arrays(scenes_path, SceneSet)
    model, result = train_detector(
        scenes,
        spec=spec,
        options=options,
        checkpoint_dir=Path(checkpoint_dir),
        progress=progress,
        progress_file=Path(out + ".progress"),
    )
    model.save_weights(out + ".weights.h5")
    Path(out + ".json").write_text(json.dumps(asdict(result)))


@dataclass
class DetectorTraining:
    """A detector training running in its own process (:func:`start_detector_training`).

    :meth:`result` waits for it; :meth:`cancel` stops it (its last checkpoint stays, so
    the next build resumes from there).
    """

    job: BackgroundJob
    spec: DetectorSpec
    out: str

    def result(self, progress: bool = True) -> tuple[keras.Model, DetectorTrainResult]:
        """Wait for the training to end (a progress bar while it runs) and load its model.

        Raises:
            RuntimeError: the training process failed.
        """
        self.job.wait(progress)
        model = build_detector(self.spec)
        model.load_weights(self.out + ".weights.h5")
        return model, DetectorTrainResult(**json.loads(Path(self.out + ".json").read_text()))

    def cancel(self) -> None:
        """Stop the training process if it still runs (idempotent)."""
        self.job.cancel()


def start_detector_training(
    scenes: SceneSet,
    *,
    spec: DetectorSpec,
    options: DetectorTrainOptions,
    checkpoint_dir: Path,
    progress: bool = True,
) -> DetectorTraining:
    """Start :func:`train_detector` in a fresh (spawned) process and return at once
    (``training/background.py``: ``vitrina build`` starts it before the encoders train).
    ``progress``: the child draws its own bar (only when nothing else draws one).

    A fresh process also trains the detector as standalone runs do: trained inside
    the build process after the encoders, quantisation, LiteRT encoding and the UMAP
    fit, its loss stayed at its initial value (11.7 against 6.9 after 100 steps in a
    fresh process, same data and settings), for a cause not yet found. Costs a
    TensorFlow import (~10 s) and one write of the scenes to ``checkpoint_dir``.
    """
    checkpoint_dir = Path(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    scenes_path = checkpoint_dir / "scenes.npz"
    save_arrays(scenes_path, scenes)
    out = str(checkpoint_dir / "trained")
    job = start_job(
        _train_child,
        (str(scenes_path), spec, options, str(checkpoint_dir), out, progress),
        name="detector",
        total=options.steps,
        progress_file=Path(out + ".progress"),
        cleanup=[scenes_path],
    )
    return DetectorTraining(job=job, spec=spec, out=out)
