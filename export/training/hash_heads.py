"""Training loop of the binary hash heads, on frozen encoder embeddings.

Two heads, each one linear layer ``u = x @ W + b`` over (n, D) unit-norm
embeddings; the device keeps ``sign(u)`` (``vitrina.runtime.codes.SignHasher``):

* ``cbs`` (compact binary codes through a sigmoid layer): ``c = 2·sigmoid(u) - 1``;
  the sigmoid saturates towards ±1 on its own, no extra penalty.
* ``dsh`` (deep supervised hashing): ``c = u`` relaxed real codes, with the
  binarisation penalty ``alpha · mean(| |c| - 1 |)`` pulling them to ±1.

Both train on the same batches of B train-split products (sketch i depicts
photo i) with the distance ``d = |c_a - c_b|² / (4·bits)`` (the relaxed Hamming
distance as a share of the bits):

* the triplet loss over categories, batch-all, cross-modal (sketch anchor,
  photo positive and negative) and photo-photo, margin ``m`` (DTSH-style);
* InfoNCE between each sketch and its own photo (instance matching).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

HEADS = ("cbs", "dsh")


@dataclass(frozen=True, kw_only=True)
class HashTrainOptions:
    """Attributes: head (cbs/dsh); bits (multiple of 8); steps and batch_size
    (distinct products per batch); learning_rate (Adam); margin of the triplet
    loss in relaxed-Hamming share; temperature of InfoNCE; nce_weight; alpha:
    binarisation penalty (dsh only); seed."""

    head: str = "dsh"
    bits: int = 64
    steps: int = 2000
    batch_size: int = 128
    learning_rate: float = 3e-3
    margin: float = 0.15
    temperature: float = 0.05
    nce_weight: float = 0.5
    alpha: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"hash head must be one of {HEADS}, got {self.head!r}")
        if self.bits < 8 or self.bits % 8:
            raise ValueError(f"bits must be a positive multiple of 8, got {self.bits}")
        if self.steps < 1 or self.batch_size < 8:
            raise ValueError(f"need steps >= 1 and batch_size >= 8, got {self.steps} and {self.batch_size}")


@dataclass(frozen=True, kw_only=True)
class HashHead:
    """A trained head: head name (cbs/dsh), projection (D, bits) float32, bias
    (bits,) float32; final_loss: mean loss over the last 100 steps."""

    head: str
    projection: np.ndarray
    bias: np.ndarray
    final_loss: float

    def device_arrays(self) -> dict[str, np.ndarray]:
        """What the device's ``SignHasher`` takes: ``mean`` (D,) zeros, ``projection`` (D, bits), ``bias`` (bits,); float32."""
        return {
            "mean": np.zeros(self.projection.shape[0], np.float32),
            "projection": self.projection,
            "bias": self.bias,
        }

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(n, D) → packed (n, bits/8) uint8."""
        return np.packbits(np.asarray(x, np.float32) @ self.projection + self.bias > 0, axis=1)


def train_hash_head(
    sketches: np.ndarray,
    photos: np.ndarray,
    labels: np.ndarray,
    *,
    options: HashTrainOptions = HashTrainOptions(),
    progress: bool = True,
) -> HashHead:
    """Train one head.

    Args:
        sketches: (n, D) float32 sketch embeddings; photos: (n, D) the photo
            embedding of the product each sketch depicts; labels: (n,) int category.
        options: head, bits, steps and the rest; progress: show a progress bar.
    """
    import tensorflow as tf

    sketches, photos = np.asarray(sketches, np.float32), np.asarray(photos, np.float32)
    labels = np.asarray(labels, np.int32)
    if sketches.shape != photos.shape or sketches.ndim != 2 or labels.shape != (len(sketches),):
        raise ValueError(
            f"hash training: sketches {sketches.shape}, photos {photos.shape}, labels {labels.shape} must be (n, D), (n, D), (n,)"
        )
    if len(sketches) < options.batch_size:
        raise ValueError(f"hash training: needs at least {options.batch_size} pairs, got {len(sketches)}")
    o = options
    tf.random.set_seed(o.seed)
    rng = np.random.default_rng(o.seed)
    dims = sketches.shape[1]
    w = tf.Variable(tf.random.normal((dims, o.bits), stddev=1.0 / np.sqrt(dims), seed=o.seed))
    b = tf.Variable(tf.zeros((o.bits,)))
    optimizer = tf.keras.optimizers.Adam(tf.keras.optimizers.schedules.CosineDecay(o.learning_rate, o.steps))

    def relax(x):
        u = tf.matmul(x, w) + b
        return 2.0 * tf.sigmoid(u) - 1.0 if o.head == "cbs" else u

    def dist(a, c):
        sq = (
            tf.reduce_sum(a * a, 1)[:, None]
            - 2.0 * tf.matmul(a, c, transpose_b=True)
            + tf.reduce_sum(c * c, 1)[None, :]
        )
        return sq / (4.0 * o.bits)

    def triplet(d, same):
        pos = tf.where(same, d, 0.0)[:, :, None]
        neg = tf.where(same, 0.0, d)[:, None, :]
        mask = tf.logical_and(same[:, :, None], tf.logical_not(same)[:, None, :])
        losses = tf.nn.relu(pos - neg + o.margin) * tf.cast(mask, tf.float32)
        return tf.reduce_sum(losses) / tf.maximum(tf.reduce_sum(tf.cast(losses > 0, tf.float32)), 1.0)

    @tf.function
    def step(xs, xp, y):
        with tf.GradientTape() as tape:
            cs, cp = relax(xs), relax(xp)
            same = tf.equal(y[:, None], y[None, :])
            d_sp, d_pp = dist(cs, cp), dist(cp, cp)
            loss = triplet(d_sp, same) + triplet(d_pp, same)
            logits = -d_sp / o.temperature
            target = tf.range(tf.shape(y)[0])
            nce = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(target, logits, from_logits=True))
            loss += o.nce_weight * nce
            if o.head == "dsh":
                loss += o.alpha * (tf.reduce_mean(tf.abs(tf.abs(cs) - 1.0)) + tf.reduce_mean(tf.abs(tf.abs(cp) - 1.0)))
        grads = tape.gradient(loss, [w, b])
        optimizer.apply_gradients(zip(grads, [w, b]))
        return loss

    recent: list[float] = []
    for _ in tqdm(
        range(o.steps), desc=f"training {o.head} {o.bits}-bit head", unit="step", disable=not progress, mininterval=1.0
    ):
        pick = rng.choice(len(sketches), size=o.batch_size, replace=False)
        loss = float(step(sketches[pick], photos[pick], labels[pick]))
        recent = (recent + [loss])[-100:]
    return HashHead(
        head=o.head,
        projection=w.numpy().astype(np.float32),
        bias=b.numpy().astype(np.float32),
        final_loss=round(float(np.mean(recent)), 5),
    )
