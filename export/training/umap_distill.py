"""Training loop of the distilled UMAP reducer: embeddings → fitted UMAP coordinates.

umap-learn cannot run on a kiosk (its ``transform`` needs the fit data, a
pynndescent index and numba). A small MLP learns the map instead:

* photo embeddings of the UMAP fit set → their fitted coordinates;
* synthetic sketch embeddings of train-split products → the fitted coordinates
  of the product they depict (so a sketch lands where its product is).

The head is appended to the encoders at build time (one TFLite model, two
outputs: embedding and code); the sweep runs it on the int8 encoders' embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm


@dataclass(frozen=True, kw_only=True)
class DistillOptions:
    """Attributes: hidden: units of the two hidden layers; epochs over the
    training pairs; batch_size; learning_rate (Adam, cosine decay); seed."""

    hidden: int = 256
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 2e-3
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("hidden", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"distill {name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True, kw_only=True)
class DistillResult:
    """Attributes: weights: [(W, b), ...] float32 per dense layer (ReLU between);
    final_loss: mean squared error of the last epoch, UMAP units²; pairs trained on."""

    weights: tuple[tuple[np.ndarray, np.ndarray], ...]
    final_loss: float
    pairs: int


def train_distilled_reducer(
    inputs: np.ndarray, targets: np.ndarray, *, options: DistillOptions = DistillOptions(), progress: bool = True
):
    """Fit the MLP (n, D) float32 unit-norm embeddings → (n, d) float32 UMAP coordinates.

    Returns ``(keras_model, DistillResult)``; the model maps (batch, D) → (batch, d).
    """
    import keras

    inputs = np.asarray(inputs, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.float32)
    if inputs.ndim != 2 or targets.ndim != 2 or len(inputs) != len(targets):
        raise ValueError(f"distill: inputs {inputs.shape} and targets {targets.shape} must be (n, D) and (n, d)")
    if len(inputs) < options.batch_size:
        raise ValueError(f"distill: needs at least one batch ({options.batch_size}) of pairs, got {len(inputs)}")
    keras.utils.set_random_seed(options.seed)
    model = distilled_head(inputs.shape[1], targets.shape[1], options.hidden)
    steps = options.epochs * (len(inputs) // options.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(options.learning_rate, steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    bar = tqdm(total=options.epochs, desc="distilling UMAP reducer", unit="epoch", disable=not progress)

    class _Bar(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            bar.update(1)
            bar.set_postfix(mse=f"{logs['loss']:.4f}")

    history = model.fit(
        inputs,
        targets,
        batch_size=options.batch_size,
        epochs=options.epochs,
        shuffle=True,
        verbose=0,
        callbacks=[_Bar()],
    )
    bar.close()
    weights = tuple((layer.get_weights()[0], layer.get_weights()[1]) for layer in model.layers if layer.get_weights())
    return model, DistillResult(
        weights=weights, final_loss=round(float(history.history["loss"][-1]), 5), pairs=len(inputs)
    )


def distilled_head(dims_in: int, dims_out: int, hidden: int):
    """Keras MLP: Dense(hidden, relu) → Dense(hidden, relu) → Dense(dims_out)."""
    import keras

    inp = keras.Input((dims_in,), name="embedding")
    x = keras.layers.Dense(hidden, activation="relu")(inp)
    x = keras.layers.Dense(hidden, activation="relu")(x)
    out = keras.layers.Dense(dims_out, name="code")(x)
    return keras.Model(inp, out, name="distilled_umap")


def apply_weights(weights: tuple[tuple[np.ndarray, np.ndarray], ...], x: np.ndarray) -> np.ndarray:
    """Run the trained MLP in numpy: (n, D) float32 → (n, d) float32."""
    h = np.asarray(x, dtype=np.float32)
    for i, (w, b) in enumerate(weights):
        h = h @ w + b
        if i < len(weights) - 1:
            h = np.maximum(h, 0.0)
    return h.astype(np.float32)


def distill_pairs(
    photo_embeddings: np.ndarray,
    fit_rows: np.ndarray,
    fit_coords: np.ndarray,
    *,
    sketch_embeddings: np.ndarray,
    sketch_rows: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Training pairs: every fitted photo, plus every sketch whose product photo was fitted.

    Args:
        photo_embeddings: (N, D) catalog photo embeddings.
        fit_rows: (n_fit,) rows of ``photo_embeddings`` UMAP was fitted on; fit_coords (n_fit, d) theirs.
        sketch_embeddings: (S, D) train-split sketch embeddings; sketch_rows (S,) the photo row each depicts.

    Returns:
        inputs (m, D) float32 and targets (m, d) float32.
    """
    coord_of_row = np.full(len(photo_embeddings), -1, dtype=np.int64)
    coord_of_row[fit_rows] = np.arange(len(fit_rows))
    keep = coord_of_row[sketch_rows] >= 0
    inputs = np.concatenate([photo_embeddings[fit_rows], sketch_embeddings[keep]])
    targets = np.concatenate([fit_coords, fit_coords[coord_of_row[sketch_rows[keep]]]])
    return inputs.astype(np.float32), targets.astype(np.float32)
