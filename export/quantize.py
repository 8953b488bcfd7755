"""TFLite export of the encoders: float32 and full int8.

Full int8 means int8 weights, activations, input and output. The models take
raw pixels 0-255; with the representative data covering that range the
converter picks an input scale near 1 and zero point near -128. The runtime
quantises and dequantises with whatever parameters the model carries.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from vitrina.runtime.bundle import PRECISIONS  # the precisions a bundle may carry; membership only, order unused here

MIN_CALIBRATION_SAMPLES = 200


class CalibrationError(ValueError):
    """Too few or malformed representative samples for int8 calibration."""


@dataclass(frozen=True)
class QuantizationAgreement:
    """How close int8 is to float on the same queries.

    Attributes:
        mean_cosine: mean cosine between float and int8 embeddings of the same input.
        top10_unchanged: share of queries whose top-10 products (as a set) are
            the same with float encoders + float codes and int8 encoders + int8 codes.
        queries: how many queries were compared.
    """

    mean_cosine: float
    top10_unchanged: float
    queries: int


def to_tflite(model: keras.Model, precision: str, calibration: np.ndarray | None = None) -> bytes:
    """Convert ``model`` to a TFLite flatbuffer.

    Args:
        model: a Keras model taking (batch, S, S, C) float32 pixels 0-255.
        precision: ``"float"`` (float32 in and out) or ``"int8"`` (full integer:
            int8 weights, activations, input and output); one of ``PRECISIONS``.
        calibration: (n, S, S, C) or, for C = 1, (n, S, S) uint8 representative
            inputs, n >= 200; required for int8, ignored for float.

    Returns:
        the TFLite flatbuffer, bytes.

    Raises:
        CalibrationError: int8 without at least 200 samples of the model's input shape.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    shape = tuple(model.inputs[0].shape[1:])
    with tempfile.TemporaryDirectory(prefix="vitrina-savedmodel-") as saved:
        # Keras 3 workaround: converting a concrete function directly leaves
        # READ_VARIABLE ops that int8 calibration cannot run; a SavedModel
        # export freezes the variables.
        model.export(saved, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        return _convert(converter, precision, shape, calibration)


def _convert(
    converter: tf.lite.TFLiteConverter, precision: str, shape: tuple[int, ...], calibration: np.ndarray | None
) -> bytes:
    """Set the converter up for ``precision`` (int8: calibrated on ``calibration``) and convert."""
    if precision == "int8":
        samples = _check_calibration(calibration, shape)
        set_full_int8(converter, lambda: _representative(samples))
    return converter.convert()


def set_full_int8(converter: tf.lite.TFLiteConverter, representative: Callable[[], Iterator[Any]]) -> None:
    """Full-integer conversion settings: int8 weights, activations, float inputs and outputs
    (integer inputs such as word ids stay as they are), calibrated on ``representative``
    (a generator function of input lists or name → array dicts, as
    ``TFLiteConverter.representative_dataset`` takes)."""
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8


def _check_calibration(calibration: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """The samples as (n, *shape), n >= MIN_CALIBRATION_SAMPLES; CalibrationError otherwise."""
    if calibration is None:
        raise CalibrationError(
            f"int8 export needs representative data: at least {MIN_CALIBRATION_SAMPLES} catalog samples"
        )
    samples = np.asarray(calibration)
    if samples.ndim == len(shape) and shape[-1] == 1:
        samples = samples[..., None]
    if samples.shape[1:] != shape:
        raise CalibrationError(f"calibration samples have shape {samples.shape[1:]}, the model takes {shape}")
    if len(samples) < MIN_CALIBRATION_SAMPLES:
        raise CalibrationError(
            f"int8 calibration needs at least {MIN_CALIBRATION_SAMPLES} representative samples, got {len(samples)}: "
            "add products to the catalog or export float only"
        )
    return samples


def _representative(samples: np.ndarray) -> Iterator[list[np.ndarray]]:
    """One (1, *shape) float32 sample at a time, as the converter's representative dataset."""
    for sample in samples:
        yield [sample[None].astype(np.float32)]


def agreement(
    float_queries: np.ndarray, int8_queries: np.ndarray, *, float_gallery: np.ndarray, int8_gallery: np.ndarray
) -> QuantizationAgreement:
    """Compare float and int8 retrieval on the same queries and gallery.

    All inputs are L2-normalised float32: queries (Q, D), galleries (M, D);
    row i of each query array is the same query, row j of each gallery the same product.
    """
    cosine = float(np.mean(np.sum(float_queries * int8_queries, axis=1)))
    k = min(10, len(float_gallery))
    top_f = np.argpartition(-(float_queries @ float_gallery.T), k - 1, axis=1)[:, :k]
    top_q = np.argpartition(-(int8_queries @ int8_gallery.T), k - 1, axis=1)[:, :k]
    unchanged = np.mean([set(a) == set(b) for a, b in zip(top_f.tolist(), top_q.tolist())])
    return QuantizationAgreement(
        mean_cosine=round(cosine, 4), top10_unchanged=round(float(unchanged), 4), queries=len(float_queries)
    )
