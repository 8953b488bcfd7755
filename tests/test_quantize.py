"""Export round trip: a Keras encoder → TFLite float / int8 → LiteRT, compared with Keras."""

import numpy as np
import pytest

from vitrina.export.models import EncoderSpec, build_encoder
from vitrina.export.quantize import CalibrationError, agreement, to_tflite
from vitrina.runtime.encoders import EncoderOptions, PhotoEncoder

# bn_momentum 0: one training-mode pass sets BatchNorm statistics to the data's, so the
# untrained network has realistic activations (at init they vanish to ~1e-11).
SPEC = EncoderSpec(input_size=32, channels=3, alpha=0.35, depth=0.34, embedding_dims=32, strides=4, bn_momentum=0.0)


@pytest.fixture(scope="module")
def model_and_data():
    import keras

    keras.utils.set_random_seed(0)
    model = build_encoder(SPEC, "photo")
    rng = np.random.default_rng(0)
    # smooth random "photos": blurred blobs on white
    base = rng.integers(0, 255, size=(260, 8, 8, 3)).astype(np.uint8)
    images = base.repeat(4, axis=1).repeat(4, axis=2)
    model(images[:128].astype(np.float32), training=True)
    return model, images


def embed(tflite: bytes, images: np.ndarray, tmp_path, name: str) -> np.ndarray:
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(tflite)
    with PhotoEncoder(EncoderOptions(str(path), batch_size=8)) as encoder:
        assert encoder.input_shape == (32, 32, 3)
        return encoder.embed(images).embeddings


def test_float_and_int8_round_trip(model_and_data, tmp_path):
    model, images = model_and_data
    expected = model(images[:40].astype(np.float32), training=False).numpy()
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got_float = embed(to_tflite(model, "float"), images[:40], tmp_path, "f")
    assert got_float.shape == (40, 32) and got_float.dtype == np.float32
    np.testing.assert_allclose(got_float, expected, atol=1e-4)
    got_int8 = embed(to_tflite(model, "int8", images[:220]), images[:40], tmp_path, "q")
    cosine = np.sum(got_int8 * expected, axis=1)
    assert cosine.mean() > 0.97


def test_int8_refuses_too_few_calibration_samples(model_and_data):
    model, images = model_and_data
    with pytest.raises(CalibrationError, match="at least 200 representative samples, got 199"):
        to_tflite(model, "int8", images[:199])
    with pytest.raises(CalibrationError, match="needs representative data"):
        to_tflite(model, "int8", None)
    with pytest.raises(CalibrationError, match="the model takes"):
        to_tflite(model, "int8", np.zeros((300, 16, 16, 3), np.uint8))


def test_unknown_precision(model_and_data):
    with pytest.raises(ValueError, match="precision must be one of"):
        to_tflite(model_and_data[0], "fp16")


def test_agreement_figures():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(50, 8)).astype(np.float32)
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q = g[:20].copy()
    same = agreement(q, q, float_gallery=g, int8_gallery=g)
    assert same.mean_cosine == pytest.approx(1.0) and same.top10_unchanged == 1.0
    other = agreement(q, q, float_gallery=g, int8_gallery=g[::-1].copy())
    assert other.top10_unchanged < 1.0


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"input_size": 8}, "input_size"),
        ({"channels": 2}, "channels"),
        ({"alpha": 3.0}, "alpha"),
        ({"embedding_dims": 4}, "embedding_dims"),
        ({"strides": 7}, "strides"),
    ],
)
def test_bad_encoder_specs(kwargs, words):
    with pytest.raises(ValueError, match=words):
        EncoderSpec(**kwargs)
