"""Training loop of the text-visual model (``text_visual_model.py``).

Loss, as in the study: ``triplet(image, text+image) + triplet(text, text+image)
+ BCE(plausibility)``, plus one term of ours (``label_weight``, below). For a
product ``a`` and a mined negative product ``n``:

* image anchor: ``a``'s image-only code; positive: ``a``'s fused code (title +
  image); negative: ``n``'s fused code;
* text anchor: ``a``'s text-only code (its full title, or half the time a short
  query-like subset of its title, category and colour words, so two-word
  queries land near their products); same positive and negative;
* plausibility: ``(title a, image a)`` is 1, the mismatched ``(title a, image n)`` is 0.

**Photo views.** A product's image is its packshot (alone on white) or, for a share
of the triplets (:attr:`TextVisualTrainOptions.crop_share`), one of its crops out of
composed scenes (:attr:`TextVisualData.crops`: background and neighbours in the
frame, cut like a detector box): identification and photo queries show the model
such crops, never packshots.

Distances are squared Euclidean between L2-normalised codes, with a margin.

**Label loss (ours).** A linear softmax classifier on each branch's 64-d output names
the anchor's label (its category and colour, the catalog's own fields); its
cross-entropy, times ``label_weight``, joins the loss. The classifiers are training
only: the exported model has no trace of them. Why: with the study's loss alone,
runs of one code and data came out far apart (same-label P@10 of the fused codes
on 3,000 training products 0.25-0.84 in six runs: seeds 0-2 and three setting
changes); the text branch was the part that failed (text-only 0.25-0.97). With
``label_weight=0.3``, seeds 0-2 gave 0.987-0.990 (text-only 1.000), and the
image-only codes rose from 0.06-0.33 to 0.71-0.73.

**Offline triplet mining with a curriculum.** Every ``mine_every`` steps a pool of
training products is encoded with the current weights, the triplet loss of every
(anchor, candidate negative) pair in the pool is computed, and each anchor draws
one negative whose loss lies in the current *band* (quantiles of the pool's
positive losses). The bands move from easy to hard over training
(:attr:`TextVisualTrainOptions.bands`). Never a triplet whose anchor, positive
and negative share one title (:func:`allowed_negatives`): the anchor and the
positive are one product, so the negative's normalised title must differ from
the anchor's; nor (by default) a negative of the anchor's category and colour,
which every shopper query would count as relevant.

A fixed number of steps from a fixed seed, whatever the machine's speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from ..text_visual_model import TextVisualNet
from .background import write_progress


@dataclass(frozen=True, kw_only=True)
class TextVisualTrainOptions:
    """Attributes:
    steps: optimiser steps (fixed; no wall-clock cap).
    batch_size: triplets per step.
    learning_rate: Adam's (cosine decay after ``warmup_steps``).
    margin: triplet margin on squared distances of unit codes (0-4).
    bce_weight: weight of the plausibility loss.
    mine_every: steps between mining rounds.
    pool: products encoded per mining round.
    bands: loss-quantile bands of the curriculum, easy to hard; training moves through
        them in equal parts.
    query_share: share of text anchors that are short query-like word subsets.
    exclude_same_label: also never take a negative of the anchor's category and colour.
    batch_negatives: besides its mined negative, each anchor also meets the batch's other
        products as negatives (those the exclusion rule allows; their mean triplet loss is added).
    crop_share: share of images (anchors' and negatives') shown as one of the product's scene
        crops instead of its packshot, where it has crops.
    label_weight: weight of the auxiliary label loss: a linear softmax classifier (training only,
        not exported) names each anchor's label (category and colour) from its text branch and
        from its visual branch; 0 turns it off.
    seed: the batch sampler's and mining's seed.
    """

    steps: int = 1500
    batch_size: int = 128
    learning_rate: float = 5e-3
    warmup_steps: int = 50
    margin: float = 0.4
    bce_weight: float = 0.5
    mine_every: int = 100
    pool: int = 2048
    # Measured on 3000 products, 300 steps: these bands (the easy half, then ever harder ones
    # added) reached text mAP 0.278; sliding bands (0-.5, .25-.75, .5-1) 0.172; uniform 0.248.
    bands: tuple[tuple[float, float], ...] = ((0.0, 0.5), (0.0, 0.75), (0.0, 1.0))
    query_share: float = 0.5
    exclude_same_label: bool = True
    batch_negatives: bool = True
    crop_share: float = 0.0
    label_weight: float = 0.3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "mine_every", "pool"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.bands or any(not 0.0 <= lo < hi <= 1.0 for lo, hi in self.bands):
            raise ValueError(f"bands must be (lo, hi) quantiles with 0 <= lo < hi <= 1, got {self.bands}")
        if not 0.0 <= self.query_share <= 1.0:
            raise ValueError(f"query_share must be in [0, 1], got {self.query_share}")
        if not 0.0 <= self.crop_share <= 1.0:
            raise ValueError(f"crop_share must be in [0, 1], got {self.crop_share}")
        if self.label_weight < 0.0:
            raise ValueError(f"label_weight must be >= 0, got {self.label_weight}")
        if not 0.0 < self.margin <= 4.0:
            raise ValueError(f"margin must be in (0, 4], got {self.margin}")


@dataclass(frozen=True)
class TextVisualData:
    """Training products.

    Attributes:
        titles: (n, W) int32 word ids of each product's title (0 = padding after the words).
        extra_words: (n, E) int32 ids of words a shopper may type for it that its title may
            lack (category and colour words; 0 = none).
        images: (n, S, S, 3) uint8 square product images.
        title_keys: (n,) int: products with the same normalised title share a key.
        labels: (n,) int: products with the same category and colour share a label.
        crops: (m, S, S, 3) uint8 crops of products out of composed scenes (m may be 0).
        crop_rows: (m,) int64 the product (row of this data) each crop shows.
    """

    titles: np.ndarray
    extra_words: np.ndarray
    images: np.ndarray
    title_keys: np.ndarray
    labels: np.ndarray
    crops: np.ndarray = field(default_factory=lambda: np.zeros((0, 1, 1, 3), np.uint8))
    crop_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __post_init__(self) -> None:
        n = len(self.titles)
        for name in ("extra_words", "images", "title_keys", "labels"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, titles {n}")
        if len(self.crops) != len(self.crop_rows):
            raise ValueError(f"crops has {len(self.crops)} rows, crop_rows {len(self.crop_rows)}")
        if len(self.crop_rows) and (self.crop_rows.min() < 0 or self.crop_rows.max() >= n):
            raise ValueError(
                f"crop_rows must be product rows in [0, {n}), got {self.crop_rows.min()} to {self.crop_rows.max()}"
            )

    def __len__(self) -> int:
        return len(self.titles)


@dataclass(frozen=True)
class TextVisualTrainResult:
    """Attributes: steps, seconds (wall clock), final_loss (mean of the last 50 steps),
    rounds (mining rounds), band_losses (mean mined triplet loss per round), triplets_per_second."""

    steps: int
    seconds: float
    final_loss: float
    rounds: int
    band_losses: list[float] = field(default_factory=list)
    triplets_per_second: float = 0.0


def allowed_negatives(
    anchors: np.ndarray, candidates: np.ndarray, title_keys: np.ndarray, labels: np.ndarray | None = None
) -> np.ndarray:
    """(len(anchors), len(candidates)) bool: may ``candidates[j]`` be the negative of ``anchors[i]``?

    Never the anchor's own product, never a product sharing the anchor's title (the triplet
    would then have anchor, positive and negative of one title), and, given ``labels``, never
    one of the anchor's label (category and colour).

    Args:
        anchors, candidates: product indices; title_keys, labels: (n,) per product.
    """
    a, c = np.asarray(anchors), np.asarray(candidates)
    ok = (a[:, None] != c[None, :]) & (title_keys[a][:, None] != title_keys[c][None, :])
    if labels is not None:
        ok &= labels[a][:, None] != labels[c][None, :]
    return ok


def band_of_round(round_no: int, rounds: int, bands: tuple[tuple[float, float], ...]) -> tuple[float, float]:
    """The curriculum's band for mining round ``round_no`` of ``rounds``: the bands in equal parts, easy first."""
    return bands[min(len(bands) - 1, round_no * len(bands) // max(1, rounds))]


def pick_negatives(
    losses: np.ndarray, allowed: np.ndarray, band: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """One negative column per anchor row, drawn from the ``band`` of loss quantiles.

    Args:
        losses: (A, C) float triplet losses; allowed: (A, C) bool (:func:`allowed_negatives`).
        band: (lo, hi) quantiles of the allowed positive losses.

    Returns:
        (A,) int64 columns; -1 where an anchor has no allowed candidate at all. Within the
        band when the anchor has a candidate there, else any allowed positive-loss
        candidate, else any allowed one.
    """
    live = allowed & (losses > 0)
    values = losses[live]
    lo, hi = np.quantile(values, band) if len(values) else (0.0, 0.0)
    in_band = live & (losses >= lo) & (losses <= hi)
    out = np.full(len(losses), -1, np.int64)
    for i in range(len(losses)):
        for mask in (in_band[i], live[i], allowed[i]):
            cols = np.flatnonzero(mask)
            if len(cols):
                out[i] = int(cols[rng.integers(len(cols))])
                break
    return out


def query_like(titles: np.ndarray, extra: np.ndarray, rng: np.random.Generator, share: float) -> np.ndarray:
    """(b, W) int32 text anchors: each row its title, or with probability ``share`` 1-3 words
    drawn from its title and extra words (in title order, then the extras), padding after."""
    out = titles.copy()
    for i in range(len(titles)):
        if rng.random() >= share:
            continue
        words = [int(w) for w in titles[i] if w] + [int(w) for w in extra[i] if w]
        words = list(dict.fromkeys(words))
        if not words:
            continue
        k = int(rng.integers(1, min(3, len(words)) + 1))
        keep = sorted(rng.choice(len(words), size=k, replace=False))
        out[i] = 0
        out[i, :k] = [words[j] for j in keep]
    return out


class _Trainer:
    def __init__(self, net: TextVisualNet, options: TextVisualTrainOptions, *, num_labels: int):
        self.net = net
        self.options = options
        # training-only label classifiers on the text and the visual branch's output (none when
        # label_weight is 0)
        self.label_heads: tuple[keras.layers.Dense, keras.layers.Dense] | None = None
        if options.label_weight > 0:
            width = int(net.text.output.shape[-1])
            heads = (
                keras.layers.Dense(num_labels, name="tv_text_labels"),
                keras.layers.Dense(num_labels, name="tv_visual_labels"),
            )
            for head in heads:
                head.build((None, width))
            self.label_heads = heads
        schedule = keras.optimizers.schedules.CosineDecay(
            0.0,
            decay_steps=max(1, options.steps - options.warmup_steps),
            warmup_target=options.learning_rate,
            warmup_steps=options.warmup_steps,
        )
        self.variables = net.text.trainable_variables + net.visual.trainable_variables + net.head.trainable_variables
        if self.label_heads is not None:
            self.variables += [v for head in self.label_heads for v in head.trainable_variables]
        self.optimizer = keras.optimizers.Adam(schedule)
        self.optimizer.build(self.variables)
        self.step_fn = tf.function(self._step, reduce_retracing=True)

    def _codes(self, t: tf.Tensor, v: tf.Tensor, wt: float, wv: float, training: bool) -> dict[str, tf.Tensor]:
        w = tf.tile(tf.constant([[wt, wv]], tf.float32), [tf.shape(t)[0], 1])
        out = self.net.head([t, v, w], training=training)
        return {"code": tf.math.l2_normalize(out["code"], axis=1), "logit": out["plausibility"][:, 0]}

    def _losses(self, a_full, a_query, a_img, n_full, n_img, valid, a_labels) -> tf.Tensor:
        o = self.options
        t_full = self.net.text(a_full, training=True)
        t_query = self.net.text(a_query, training=True)
        v_a = self.net.visual(a_img, training=True)
        t_n = self.net.text(n_full, training=True)
        v_n = self.net.visual(n_img, training=True)
        pos = self._codes(t_full, v_a, 0.5, 0.5, True)
        neg = self._codes(t_n, v_n, 0.5, 0.5, True)
        img = self._codes(t_full, v_a, 0.0, 1.0, True)["code"]
        txt = self._codes(t_query, v_a, 1.0, 0.0, True)["code"]
        wrong = self._codes(t_full, v_n, 0.5, 0.5, True)["logit"]

        def triplet(anchor: tf.Tensor) -> tf.Tensor:
            d_pos = tf.reduce_sum(tf.square(anchor - pos["code"]), axis=1)
            d_neg = tf.reduce_sum(tf.square(anchor - neg["code"]), axis=1)
            loss = tf.reduce_mean(tf.nn.relu(o.margin + d_pos - d_neg))
            if o.batch_negatives:
                # every other product of the batch the exclusion rule allows (valid: (B, B) 0/1)
                d_all = 2.0 - 2.0 * tf.matmul(anchor, pos["code"], transpose_b=True)
                terms = tf.nn.relu(o.margin + d_pos[:, None] - d_all) * valid
                loss += tf.reduce_sum(terms) / tf.maximum(tf.reduce_sum(valid), 1.0)
            return loss

        logits = tf.concat([pos["logit"], wrong], axis=0)
        targets = tf.concat([tf.ones_like(pos["logit"]), tf.zeros_like(wrong)], axis=0)
        bce = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits))
        loss = triplet(img) + triplet(txt) + o.bce_weight * bce
        if self.label_heads is not None:
            ce = keras.losses.sparse_categorical_crossentropy
            text_head, visual_head = self.label_heads
            named = ce(a_labels, text_head(t_full), from_logits=True)
            named += ce(a_labels, visual_head(v_a), from_logits=True)
            loss += o.label_weight * tf.reduce_mean(named)
        return loss

    def _step(self, a_full, a_query, a_img, n_full, n_img, valid, a_labels) -> tf.Tensor:
        with tf.GradientTape() as tape:
            loss = self._losses(a_full, a_query, a_img, n_full, n_img, valid, a_labels)
        self.optimizer.apply_gradients(zip(tape.gradient(loss, self.variables), self.variables))
        return loss

    def pool_losses(self, data: TextVisualData, pool: np.ndarray) -> np.ndarray:
        """(P, P) triplet losses (image anchor + text anchor) of every (anchor, negative) pair of ``pool``."""
        t, v = [], []
        for start in range(0, len(pool), 256):
            rows = pool[start : start + 256]
            t.append(self.net.text(tf.constant(data.titles[rows]), training=False))
            v.append(self.net.visual(tf.constant(data.images[rows], tf.float32), training=False))
        tt, vv = tf.concat(t, 0), tf.concat(v, 0)
        fused = self._codes(tt, vv, 0.5, 0.5, False)["code"].numpy()
        img = self._codes(tt, vv, 0.0, 1.0, False)["code"].numpy()
        txt = self._codes(tt, vv, 1.0, 0.0, False)["code"].numpy()
        m = self.options.margin
        losses = np.zeros((len(pool), len(pool)), np.float32)
        for anchor in (img, txt):
            d_pos = np.sum((anchor - fused) ** 2, axis=1)
            d_neg = 2.0 - 2.0 * anchor @ fused.T  # unit rows: squared distance
            losses += np.maximum(0.0, m + d_pos[:, None] - d_neg)
        return losses


class PhotoViews:
    """Each product's image or, for ``share`` of the draws, one of its scene crops (see the module docstring)."""

    def __init__(self, data: TextVisualData, share: float):
        self.data, self.share = data, share
        self._order = np.argsort(data.crop_rows, kind="stable")
        rows = data.crop_rows[self._order]
        self._start = np.searchsorted(rows, np.arange(len(data)), side="left")
        self._count = np.searchsorted(rows, np.arange(len(data)), side="right") - self._start

    def images(self, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(len(rows), S, S, 3) uint8 images of the products at ``rows``."""
        out = self.data.images[rows].copy()
        if self.share <= 0 or not len(self.data.crop_rows):
            return out
        counts = self._count[rows]
        swap = (counts > 0) & (rng.random(len(rows)) < self.share)
        for k in np.flatnonzero(swap):
            pick = self._start[rows[k]] + int(rng.integers(counts[k]))
            out[k] = self.data.crops[self._order[pick]]
        return out


def _flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flip = rng.random(len(images)) < 0.5
    images = images.copy()
    images[flip] = images[flip, :, ::-1]
    return images


def train_text_visual(
    net: TextVisualNet,
    data: TextVisualData,
    *,
    options: TextVisualTrainOptions,
    progress: bool = True,
    progress_file: Path | None = None,
) -> TextVisualTrainResult:
    """Train ``net`` in place for exactly ``options.steps`` steps on ``data`` (see the module docstring).
    ``progress_file``: where the step reached is written every few steps (for a parent process).

    Raises:
        ValueError: fewer products than two distinct titles, or than a batch.
        RuntimeError: the loss diverged.
    """
    o = options
    n = len(data)
    if n < 2 or len(np.unique(data.title_keys)) < 2:
        raise ValueError(f"text-visual training needs products of at least two titles, got {n} products")
    rng = np.random.default_rng([o.seed, 13])
    tf.random.set_seed(o.seed)
    trainer = _Trainer(net, o, num_labels=int(data.labels.max()) + 1)
    views = PhotoViews(data, o.crop_share)
    rounds = -(-o.steps // o.mine_every)
    labels = data.labels if o.exclude_same_label else None
    triplets = np.empty((0, 2), np.int64)
    band_losses: list[float] = []
    losses: list[float] = []
    t0 = time.monotonic()
    bar = tqdm(total=o.steps, desc="text-visual training", unit="step", disable=not progress, mininterval=1.0)
    for step in range(o.steps):
        if step % o.mine_every == 0:
            r = step // o.mine_every
            pool = np.sort(rng.choice(n, size=min(o.pool, n), replace=False))
            pair_losses = trainer.pool_losses(data, pool)
            allowed = allowed_negatives(pool, pool, data.title_keys, labels)
            if not allowed.any():  # every pool product shares a label: fall back to the title rule alone
                allowed = allowed_negatives(pool, pool, data.title_keys)
            neg = pick_negatives(pair_losses, allowed, band_of_round(r, rounds, o.bands), rng)
            keep = neg >= 0
            triplets = np.stack([pool[keep], pool[neg[keep]]], axis=1)
            band_losses.append(round(float(pair_losses[np.flatnonzero(keep), neg[keep]].mean()), 4))
        pick = triplets[rng.integers(len(triplets), size=o.batch_size)]
        a, neg_rows = pick[:, 0], pick[:, 1]
        loss = float(
            trainer.step_fn(
                tf.constant(data.titles[a]),
                tf.constant(query_like(data.titles[a], data.extra_words[a], rng, o.query_share)),
                tf.constant(_flip(views.images(a, rng), rng), tf.float32),
                tf.constant(data.titles[neg_rows]),
                tf.constant(_flip(views.images(neg_rows, rng), rng), tf.float32),
                tf.constant(allowed_negatives(a, a, data.title_keys, labels), tf.float32),
                tf.constant(data.labels[a]),
            )
        )
        if not np.isfinite(loss):
            raise RuntimeError(
                f"text-visual training diverged at step {step + 1} (loss {loss}); lower the learning rate"
            )
        losses.append(loss)
        bar.update(1)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
            write_progress(progress_file, step)
    bar.close()
    seconds = time.monotonic() - t0
    return TextVisualTrainResult(
        steps=o.steps,
        seconds=round(seconds, 1),
        final_loss=round(float(np.mean(losses[-50:])), 4),
        rounds=rounds,
        band_losses=band_losses,
        triplets_per_second=round(o.steps * o.batch_size / seconds, 1) if seconds > 0 else 0.0,
    )


def summary(result: TextVisualTrainResult) -> dict[str, Any]:
    """The report's JSON form of a training result."""
    from dataclasses import asdict

    return asdict(result)
