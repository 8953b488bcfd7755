"""The product detector's network: a MobileNetV2-style backbone (the encoders' blocks,
``models.py``) with a light FPN and a CenterNet/FCOS-style head on one grid of stride 8 or 4.

Per grid cell the head predicts an objectness logit (class-agnostic: "a product's
centre is here"), four log-distances from the cell's centre to the box's left,
top, right and bottom sides (in units of the stride), and category logits. The
outputs stay linear (no sigmoid or exp in the graph), so full int8 quantisation
keeps them on three separate scales; the device decodes them in numpy
(``vitrina.runtime.detector.decode``) and runs NMS.

Takes raw pixels 0-255 (float) and rescales inside the graph, like the encoders.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from keras import layers

from .models import EncoderSpec, batch_norm, channel_width, inverted_residual

#: Input pixels per output cell (the default; ``DetectorSpec.stride`` picks 8 or 4).
STRIDE = 8
# Backbone stages (expansion, channels, repeats, stride), MobileNetV2's first six.
_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2))
# Prior probability of "a product centre" at initialisation (focal-loss practice).
_PRIOR = 0.01


@dataclass(frozen=True, kw_only=True)
class DetectorSpec:
    """Architecture of the detector.

    Attributes:
        input_size: side of the square input, pixels (a multiple of 32).
        n_classes: category logits per cell (>= 1).
        alpha: width multiplier of the backbone.
        depth: fraction of each stage's repeats kept (>= 1 block per stage).
        fpn_channels: channels of the feature pyramid and the head.
        bn_momentum: BatchNorm momentum.
        stride: input pixels per output cell, 8 or 4 (4 adds the stride-4 level to the
            pyramid: a finer grid for small products).
    """

    input_size: int = 128
    n_classes: int = 10
    alpha: float = 0.35
    depth: float = 0.5
    fpn_channels: int = 48
    bn_momentum: float = 0.99
    stride: int = STRIDE

    def __post_init__(self) -> None:
        if self.input_size < 32 or self.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, >= 32, got {self.input_size}")
        if self.n_classes < 1:
            raise ValueError(f"n_classes must be >= 1, got {self.n_classes}")
        if not 0.1 <= self.alpha <= 1.4:
            raise ValueError(f"alpha must be in [0.1, 1.4], got {self.alpha}")
        if not 0.0 < self.depth <= 1.0:
            raise ValueError(f"depth must be in (0, 1], got {self.depth}")
        if self.stride not in (4, 8):
            raise ValueError(f"stride must be 8 or 4, got {self.stride}")

    @property
    def grid(self) -> int:
        """G, the side of the output grid."""
        return self.input_size // self.stride


def _convbatch_norm(x, spec: EncoderSpec, channels: int, kernel: int, name: str, depthwise: bool = False):
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, padding="same", use_bias=False, name=f"{name}_dw")(x)
    else:
        x = layers.Conv2D(channels, kernel, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = batch_norm(spec, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu")(x)


def build_detector(spec: DetectorSpec, name: str = "detector") -> keras.Model:
    """(batch, S, S, 3) float pixels 0-255 → ``{"objectness": (batch, G, G, 1), "boxes": (batch, G, G, 4),
    "classes": (batch, G, G, C)}`` float, G = S / ``spec.stride``."""
    bn_spec = EncoderSpec(alpha=spec.alpha, bn_momentum=spec.bn_momentum)
    inputs = keras.Input((spec.input_size, spec.input_size, 3), name=f"{name}_pixels")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name=f"{name}_rescale")(inputs)
    x = layers.Conv2D(channel_width(32, spec.alpha), 3, strides=2, padding="same", use_bias=False, name=f"{name}_stem")(
        x
    )
    x = batch_norm(bn_spec, name=f"{name}_stem_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_stem_relu")(x)
    taps = {}
    for stage, (t, c, n, s) in enumerate(_STAGES):
        for r in range(max(1, round(n * spec.depth))):
            x = inverted_residual(
                bn_spec, x, t, channel_width(c, spec.alpha), s if r == 0 else 1, f"{name}_b{stage}_{r}"
            )
        taps[stage] = x  # stage 1: stride 4, stage 2: stride 8, stage 4: stride 16, stage 5: stride 32
    f = spec.fpn_channels
    p5 = _convbatch_norm(taps[5], bn_spec, f, 1, f"{name}_lat5")
    p4 = layers.Add(name=f"{name}_td4")(
        [_convbatch_norm(taps[4], bn_spec, f, 1, f"{name}_lat4"), layers.UpSampling2D(2)(p5)]
    )
    p4 = _convbatch_norm(p4, bn_spec, f, 3, f"{name}_smooth4", depthwise=True)
    p3 = layers.Add(name=f"{name}_td3")(
        [_convbatch_norm(taps[2], bn_spec, f, 1, f"{name}_lat3"), layers.UpSampling2D(2)(p4)]
    )
    if spec.stride == 4:
        p3 = _convbatch_norm(p3, bn_spec, f, 3, f"{name}_smooth3", depthwise=True)
        p3 = layers.Add(name=f"{name}_td2")(
            [_convbatch_norm(taps[1], bn_spec, f, 1, f"{name}_lat2"), layers.UpSampling2D(2)(p3)]
        )
    h = _convbatch_norm(p3, bn_spec, f, 3, f"{name}_head_dw", depthwise=True)
    h = _convbatch_norm(h, bn_spec, f, 1, f"{name}_head_pw")
    h = _convbatch_norm(h, bn_spec, f, 3, f"{name}_head_dw2", depthwise=True)
    prior = float(-keras.ops.log((1 - _PRIOR) / _PRIOR))
    objectness = layers.Conv2D(
        1, 1, bias_initializer=keras.initializers.Constant(prior), name="objectness", dtype="float32"
    )(h)
    boxes = layers.Conv2D(4, 1, bias_initializer=keras.initializers.Constant(0.5), name="boxes")(h)
    classes = layers.Conv2D(spec.n_classes, 1, name="classes")(h)
    return keras.Model(inputs, {"objectness": objectness, "boxes": boxes, "classes": classes}, name=name)
