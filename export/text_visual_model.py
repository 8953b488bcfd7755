"""The text-visual model: one 16-d space for product titles, product crops and their fusion.

As in the text-visual study, then shaped for full int8 TFLite:

* **text branch**: up to 9 word ids (0 = padding, words in query order,
  padding after them) → word embedding (10-d) → LSTM (8 units) read in reverse
  (``go_backwards``; the padding is read first, so the state ends on the first
  word) → dense 64, tanh. ``unroll=True``: int8 TFLite cannot convert a
  looped LSTM.
* **visual branch**: a crop padded to a square (aspect kept) at the photo
  encoder's input size → the photo encoder's MobileNetV2-style network (its
  architecture, and its trained weights when given) → dense 64, tanh.
* **fusion**: ``text * w_text + visual * w_visual`` with the branch weights
  given as an input (``(0.5, 0.5)`` for both, ``(1, 0)`` text only, ``(0, 1)``
  image only: the average of the present branches, a missing input counting as
  zeros) → dense 64, ReLU → the 16-d code (raw; L2-normalised after
  dequantisation on the device, like the encoders) and a plausibility logit
  (sigmoid on the device: does this title describe this crop?).

The exported model takes ``words`` (batch, 9) int32, ``pixels`` (batch, S, S, 3)
float pixels 0-255 (rescaled inside the graph) and ``weights`` (batch, 2)
float, and returns ``code`` (batch, 16) and ``plausibility`` (batch, 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from .models import EncoderSpec, build_encoder

#: Input and output names of the exported model (its TFLite signature).
INPUTS = ("words", "pixels", "weights")
OUTPUTS = ("code", "plausibility")


@dataclass(frozen=True, kw_only=True)
class TextVisualSpec:
    """Architecture of the text-visual model.

    Attributes:
        vocab_size: words the text branch knows; ids 1..vocab_size, 0 is padding.
        max_words: word ids per text (the study's 9).
        word_dims: word embedding width (10).
        lstm_units: the reversed LSTM's state width (8).
        branch_dims: width of each branch's tanh output (64).
        hidden: width of the fusion MLP's hidden layer.
        code_dims: width of the shared code (16).
        visual: the visual branch's MobileNet-style network (its ``input_size`` is the crop side).
    """

    vocab_size: int
    max_words: int = 9
    word_dims: int = 10
    lstm_units: int = 8
    branch_dims: int = 64
    hidden: int = 64
    code_dims: int = 16
    visual: EncoderSpec = EncoderSpec(input_size=48, channels=3, alpha=0.35, depth=0.34, embedding_dims=64)

    def __post_init__(self) -> None:
        if self.vocab_size < 1:
            raise ValueError(f"vocab_size must be >= 1, got {self.vocab_size}")
        if not 1 <= self.max_words <= 32:
            raise ValueError(f"max_words must be 1 to 32, got {self.max_words}")
        if self.visual.channels != 3:
            raise ValueError(f"the visual branch takes RGB crops (channels 3), got {self.visual.channels}")
        for name in ("word_dims", "lstm_units", "branch_dims", "hidden", "code_dims"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def image_size(self) -> int:
        """S, the side of the visual branch's square input, pixels."""
        return self.visual.input_size


@dataclass(frozen=True)
class TextVisualNet:
    """The model's parts: the two branches and the fusion head (trained separately
    batched, shared weights), and ``model``, the three combined for export."""

    text: keras.Model
    visual: keras.Model
    head: keras.Model
    model: keras.Model


def build_text_visual(spec: TextVisualSpec, *, visual_init: keras.Model | None = None) -> TextVisualNet:
    """The text-visual model of ``spec``.

    Args:
        visual_init: a trained photo encoder of the same architecture as ``spec.visual``;
            its weights start the visual branch (None: from scratch).

    Returns:
        :class:`TextVisualNet`; ``text``: (batch, W) int32 → (batch, 64); ``visual``:
        (batch, S, S, 3) float 0-255 → (batch, 64); ``head``: ``[text (batch, 64), visual
        (batch, 64), weights (batch, 2)]`` → ``{"code": (batch, 16), "plausibility": (batch, 1)}``.
    """
    words = keras.Input((spec.max_words,), dtype="int32", name="words")
    x = layers.Embedding(spec.vocab_size + 1, spec.word_dims, name="tv_word_embedding")(words)
    x = layers.LSTM(spec.lstm_units, go_backwards=True, unroll=True, name="tv_lstm")(x)
    t = layers.Dense(spec.branch_dims, activation="tanh", name="tv_text_dense")(x)
    text = keras.Model(words, t, name="tv_text")

    backbone = build_encoder(spec.visual, name="tv_visual_encoder")
    if visual_init is not None:
        backbone.set_weights(visual_init.get_weights())
    pixels = keras.Input((spec.image_size, spec.image_size, 3), name="pixels")
    # unit length first: the encoder's raw embedding is large and would saturate the tanh
    features = layers.UnitNormalization(name="tv_visual_unit")(backbone(pixels))
    v = layers.Dense(spec.branch_dims, activation="tanh", name="tv_visual_dense")(features)
    visual = keras.Model(pixels, v, name="tv_visual")

    t_in = keras.Input((spec.branch_dims,), name="text_vector")
    v_in = keras.Input((spec.branch_dims,), name="visual_vector")
    weights = keras.Input((2,), name="weights")
    fused = layers.Add(name="tv_fuse")(
        [
            layers.Multiply(name="tv_text_weight")([t_in, weights[:, :1]]),
            layers.Multiply(name="tv_visual_weight")([v_in, weights[:, 1:]]),
        ]
    )
    h = layers.Dense(spec.hidden, activation="relu", name="tv_hidden")(fused)
    code = layers.Dense(spec.code_dims, name="code")(h)
    plausibility = layers.Dense(1, name="plausibility")(h)
    head = keras.Model([t_in, v_in, weights], {"code": code, "plausibility": plausibility}, name="tv_head")

    words_in = keras.Input((spec.max_words,), dtype="int32", name="words")
    pixels_in = keras.Input((spec.image_size, spec.image_size, 3), name="pixels")
    w_in = keras.Input((2,), name="weights")
    out = head([text(words_in), visual(pixels_in), w_in])
    model = keras.Model(
        {"words": words_in, "pixels": pixels_in, "weights": w_in},
        {"code": out["code"], "plausibility": out["plausibility"]},
        name="text_visual",
    )
    return TextVisualNet(text=text, visual=visual, head=head, model=model)
