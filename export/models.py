"""MobileNetV2-style encoders (inverted residual blocks, depthwise-separable convs).

Trained from scratch: no pretrained weights exist here. The stride plan adapts
to the input size so the last feature map is about 3-4 pixels wide: 96 px
inputs downsample 5 times like MobileNetV2, 32 px inputs 3 times.

Models take raw pixels (0-255, float) and rescale inside the graph, so a full
int8 TFLite model can take ``pixel - 128`` as its int8 input. They output the
raw (un-normalised) embedding; L2 normalisation happens in the loss and, on the
device, after dequantisation (more precise than normalising in int8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
from keras import layers

# MobileNetV2's block table: (expansion t, output channels c, repeats n, stride s).
_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


@dataclass(frozen=True, kw_only=True)
class EncoderSpec:
    """Architecture of one encoder.

    Attributes:
        input_size: side of the square input, pixels.
        channels: 1 for sketches (grayscale), 3 for photos (RGB).
        alpha: width multiplier (MobileNetV2 alpha), 0.35-1.0.
        depth: fraction of each stage's repeats kept (>= 1 block per stage).
        embedding_dims: output embedding size (64-256).
        head_channels: channels of the last 1×1 conv before pooling.
        strides: stride-2 layers (2-5); None picks enough to bring the input
            to about 3-4 pixels.
        bn_momentum: BatchNorm moving-average momentum; short runs need a
            lower one or the inference statistics never leave their init.
    """

    input_size: int = 96
    channels: int = 3
    alpha: float = 0.35
    depth: float = 1.0
    embedding_dims: int = 128
    head_channels: int = 512
    strides: int | None = None
    bn_momentum: float = 0.99

    def __post_init__(self) -> None:
        if self.input_size < 16:
            raise ValueError(f"input_size must be >= 16 pixels, got {self.input_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if not 0.1 <= self.alpha <= 1.4:
            raise ValueError(f"alpha must be in [0.1, 1.4], got {self.alpha}")
        if not 0.0 < self.depth <= 1.0:
            raise ValueError(f"depth must be in (0, 1], got {self.depth}")
        if not 16 <= self.embedding_dims <= 1024:
            raise ValueError(f"embedding_dims must be in [16, 1024], got {self.embedding_dims}")
        if self.strides is not None and not 2 <= self.strides <= 5:
            raise ValueError(f"strides must be in [2, 5], got {self.strides}")

    @property
    def downsamplings(self) -> int:
        """Stride-2 layers: :attr:`strides`, or enough to bring the input to ~3-4 px."""
        if self.strides is not None:
            return self.strides
        return int(min(5, max(2, round(math.log2(self.input_size / 3.5)))))


def _width(channels: float, alpha: float) -> int:
    """MobileNet channel rounding: multiple of 8, never below 90% of the target."""
    target = channels * alpha
    rounded = max(8, int(target + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * target else rounded


def _bn(spec: EncoderSpec, name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(momentum=spec.bn_momentum, name=name)


def _inverted_residual(spec: EncoderSpec, x, expansion: int, out_channels: int, stride: int, name: str):
    in_channels = x.shape[-1]
    h = x
    if expansion != 1:
        h = layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=f"{name}_expand")(h)
        h = _bn(spec, name=f"{name}_expand_bn")(h)
        h = layers.ReLU(6.0, name=f"{name}_expand_relu")(h)
    h = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(h)
    h = _bn(spec, name=f"{name}_dw_bn")(h)
    h = layers.ReLU(6.0, name=f"{name}_dw_relu")(h)
    h = layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_project")(h)
    h = _bn(spec, name=f"{name}_project_bn")(h)
    if stride == 1 and in_channels == out_channels:
        h = layers.Add(name=f"{name}_add")([x, h])
    return h


def build_encoder(spec: EncoderSpec, name: str) -> keras.Model:
    """Build an encoder: (batch, S, S, C) float pixels 0-255 → (batch, D) float embedding."""
    inputs = keras.Input((spec.input_size, spec.input_size, spec.channels), name=f"{name}_pixels")
    # Stride-2 slots: stem, then the first block of stages 2, 3, 4 and 6; the
    # earliest ones become stride 1 when the input is small.
    slots = [True] * spec.downsamplings
    slots = [False] * (5 - len(slots)) + slots
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{name}_rescale")(inputs)
    x = layers.Conv2D(
        _width(32, spec.alpha), 3, strides=2 if slots[0] else 1, padding="same", use_bias=False, name=f"{name}_stem"
    )(x)
    x = _bn(spec, name=f"{name}_stem_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_stem_relu")(x)
    slot = 1
    for stage, (t, c, n, s) in enumerate(_BLOCKS):
        stride = s
        if s == 2:
            stride = 2 if slots[slot] else 1
            slot += 1
        repeats = max(1, round(n * spec.depth))
        for r in range(repeats):
            x = _inverted_residual(spec, x, t, _width(c, spec.alpha), stride if r == 0 else 1, f"{name}_b{stage}_{r}")
    x = layers.Conv2D(spec.head_channels, 1, use_bias=False, name=f"{name}_head")(x)
    x = _bn(spec, name=f"{name}_head_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_head_relu")(x)
    x = layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
    outputs = layers.Dense(spec.embedding_dims, name=f"{name}_embedding")(x)
    return keras.Model(inputs, outputs, name=name)


# The building blocks under public names: the detector's backbone (detector_model.py) is made of them.
inverted_residual = _inverted_residual
channel_width = _width
batch_norm = _bn
