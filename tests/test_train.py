"""The training loop learns, checkpoints and resumes an interrupted run."""

import numpy as np
import pytest

from vitrina.export.models import EncoderSpec
from vitrina.export.training.encoders import TrainOptions, train_encoders

SPEC_S = EncoderSpec(32, 1, 0.35, 0.34, 16, strides=4, bn_momentum=0.8)
SPEC_P = EncoderSpec(32, 3, 0.35, 0.34, 16, strides=4, bn_momentum=0.8)


def toy_data(n: int = 64):
    """Two classes: sketches and photos of vertical vs horizontal bars."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    sketches = np.full((n, 2, 32, 32), 255, np.uint8)
    photos = np.full((n, 32, 32, 3), 255, np.uint8)
    for i, label in enumerate(labels):
        a, b = sorted(rng.integers(4, 28, size=2))
        b = max(b, a + 4)
        if label:
            sketches[i, :, a:b, 14:18] = 0
            photos[i, a:b, 12:20] = rng.integers(0, 200, size=3)
        else:
            sketches[i, :, 14:18, a:b] = 0
            photos[i, 12:20, a:b] = rng.integers(0, 200, size=3)
    return sketches, photos, labels


def test_interrupted_training_resumes_from_checkpoint(tmp_path):
    sketches, photos, labels = toy_data()
    opts = TrainOptions(steps=6, batch_size=16, warmup_steps=1, checkpoint_every=2, max_minutes=0.0)
    _, _, first = train_encoders(sketches, photos, labels, SPEC_S, SPEC_P, opts, tmp_path, progress=False)
    assert first.stopped_early and first.steps == 1
    resumed = TrainOptions(**{**opts.__dict__, "max_minutes": None})
    _, _, second = train_encoders(sketches, photos, labels, SPEC_S, SPEC_P, resumed, tmp_path, progress=False)
    assert second.resumed_from == 1 and second.steps == 6 and second.steps_this_run == 5
    _, _, third = train_encoders(sketches, photos, labels, SPEC_S, SPEC_P, resumed, tmp_path, progress=False)
    assert third.resumed_from == 6 and third.steps_this_run == 0
    # nothing left to train: the figures come from the checkpoint
    assert third.final_loss == second.final_loss and third.seconds_total == pytest.approx(second.seconds_total, abs=1.0)
    assert third.seconds_total > 0


def test_different_settings_do_not_resume(tmp_path):
    sketches, photos, labels = toy_data()
    opts = TrainOptions(steps=2, batch_size=16, warmup_steps=1, checkpoint_every=1)
    train_encoders(sketches, photos, labels, SPEC_S, SPEC_P, opts, tmp_path, progress=False)
    other = TrainOptions(**{**opts.__dict__, "learning_rate": 1e-4})
    _, _, result = train_encoders(sketches, photos, labels, SPEC_S, SPEC_P, other, tmp_path, progress=False)
    assert result.resumed_from == 0


def test_training_separates_the_two_classes(tmp_path):
    sketches, photos, labels = toy_data(96)
    opts = TrainOptions(steps=40, batch_size=32, learning_rate=3e-3, warmup_steps=2, checkpoint_every=40)
    sketch_model, photo_model, result = train_encoders(sketches, photos, labels, SPEC_S, SPEC_P, opts, tmp_path, progress=False)
    s = sketch_model(sketches[:, 0, :, :, None].astype(np.float32), training=False).numpy()
    p = photo_model(photos.astype(np.float32), training=False).numpy()
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    nearest = (s @ p.T).argmax(axis=1)
    assert (labels[nearest] == labels).mean() > 0.8
    assert np.isfinite(result.final_loss)


@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"batch_size": 4}, {"learning_rate": 0.0}])
def test_bad_train_options(kwargs):
    with pytest.raises(ValueError):
        TrainOptions(**kwargs)
