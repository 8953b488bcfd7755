"""The quadruplet loss of colour sketch retrieval (after Sketch-QNet): colour order in one embedding space.

For an anchor colour sketch and the batch's photos:

* positive: the same product, or the same category in the same colour;
* semi-positive: the same category in another colour;
* negative: another category.

Two hinge terms keep the order ``d(positive) + m1 < d(semi-positive)`` and
``d(semi-positive) + m2 < d(negative)``, distances being squared L2 of unit
vectors (``2 - 2 cos``). Batch-all: every valid (anchor, positive, semi) and
(anchor, semi, negative) triple of the batch counts, averaged over the triples
that still violate their margin (as the triplet term of ``encoders.py``). It is
meant to sit on top of the InfoNCE, triplet and classifier terms, not replace them.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True, kw_only=True)
class QuadrupletOptions:
    """Attributes: semi_margin (m1, between positives and semi-positives) and
    negative_margin (m2, between semi-positives and negatives), squared-L2 units (0-4)."""

    semi_margin: float = 0.1
    negative_margin: float = 0.2

    def __post_init__(self) -> None:
        if not 0 <= self.semi_margin < 4 or not 0 <= self.negative_margin < 4:
            raise ValueError(f"margins must be in [0, 4), got {self.semi_margin}, {self.negative_margin}")


def quadruplet_loss(
    sketches: tf.Tensor,
    photos: tf.Tensor,
    categories: tf.Tensor,
    colours: tf.Tensor,
    options: QuadrupletOptions = QuadrupletOptions(),
) -> tf.Tensor:
    """The quadruplet loss of a batch, a scalar float32 tensor (0 when the order holds with its margins).

    Args:
        sketches: (B, D) float32 unit embeddings of colour sketches; sketch i depicts photo i.
        photos: (B, D) float32 unit embeddings of the photos.
        categories: (B,) int category of each product.
        colours: (B,) int colour family of each product.
        options: the two margins.
    """
    dist = 2.0 - 2.0 * tf.matmul(sketches, photos, transpose_b=True)  # (B, B): anchor i to photo j
    same_cat = tf.equal(categories[:, None], categories[None, :])
    same_col = tf.equal(colours[:, None], colours[None, :])
    own = tf.cast(tf.eye(tf.shape(dist)[0]), tf.bool)
    positive = tf.logical_or(own, tf.logical_and(same_cat, same_col))
    semi = tf.logical_and(same_cat, tf.logical_not(same_col))
    negative = tf.logical_not(same_cat)
    first = _hinge(dist, positive, semi, options.semi_margin)
    second = _hinge(dist, semi, negative, options.negative_margin)
    return first + second


def _hinge(dist: tf.Tensor, closer: tf.Tensor, farther: tf.Tensor, margin: float) -> tf.Tensor:
    """Mean of ``relu(d[i, j] - d[i, k] + margin)`` over the violating (i, j in closer, k in farther) triples."""
    valid = tf.logical_and(closer[:, :, None], farther[:, None, :])
    raw = tf.nn.relu(dist[:, :, None] - dist[:, None, :] + margin) * tf.cast(valid, tf.float32)
    return tf.reduce_sum(raw) / (tf.reduce_sum(tf.cast(raw > 1e-12, tf.float32)) + 1e-12)
