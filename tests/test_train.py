"""The training loop learns, is reproducible, checkpoints and resumes an interrupted run."""

import json
from dataclasses import replace

import numpy as np
import pytest

from vitrina.export.models import EncoderSpec
from vitrina.export.training import encoders
from vitrina.export.training.encoders import TrainOptions, train_encoders

SPEC_S = EncoderSpec(input_size=32, channels=1, alpha=0.35, depth=0.34, embedding_dims=16, strides=4, bn_momentum=0.8)
SPEC_P = EncoderSpec(input_size=32, channels=3, alpha=0.35, depth=0.34, embedding_dims=16, strides=4, bn_momentum=0.8)


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


def _train(opts, folder, data=None):
    sketches, photos, labels = data or toy_data()
    return train_encoders(
        sketches,
        photos,
        labels,
        sketch_spec=SPEC_S,
        photo_spec=SPEC_P,
        options=opts,
        checkpoint_dir=folder,
        progress=False,
    )


def _weights(model) -> list[np.ndarray]:
    return [w.numpy() for w in model.weights]


def test_interrupted_training_resumes_where_it_stopped(tmp_path, monkeypatch):
    """A run killed after its step-4 checkpoint resumes at step 4 with the sampler's state,
    and ends with the same weights as a run that was never interrupted."""
    opts = TrainOptions(steps=6, batch_size=16, warmup_steps=1, checkpoint_every=2)
    sketch_ref, photo_ref, reference = _train(opts, tmp_path / "straight")

    real_augment = encoders._augment
    calls = []

    def dies_at_step_5(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # the machine goes down during step 5
        return real_augment(*args)

    monkeypatch.setattr(encoders, "_augment", dies_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        _train(opts, tmp_path / "killed")
    monkeypatch.setattr(encoders, "_augment", real_augment)
    state = json.loads((tmp_path / "killed" / "state.json").read_text())
    assert state["step"] == 4
    assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == sorted(
        [*state["files"].values(), "state.json"]
    )  # step-2 files dropped

    sketch_model, photo_model, second = _train(opts, tmp_path / "killed")
    assert second.resumed_from == 4 and second.steps == 6 and second.steps_this_run == 2
    for a, b in zip(_weights(sketch_model) + _weights(photo_model), _weights(sketch_ref) + _weights(photo_ref)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    _, _, third = _train(opts, tmp_path / "killed")
    assert third.resumed_from == 6 and third.steps_this_run == 0
    # nothing left to train: the figures come from the checkpoint
    assert third.final_loss == second.final_loss and third.seconds_total == pytest.approx(second.seconds_total, abs=1.0)
    assert third.seconds_total > 0 and reference.steps == 6


def test_same_seed_same_weights(tmp_path):
    """Deterministic ops and a fixed step count: two runs give the same weights."""
    opts = TrainOptions(steps=3, batch_size=16, warmup_steps=1, checkpoint_every=3)
    a, _, ra = _train(opts, tmp_path / "a")
    b, _, rb = _train(opts, tmp_path / "b")
    for wa, wb in zip(_weights(a), _weights(b)):
        np.testing.assert_array_equal(wa, wb)
    assert ra.final_loss == rb.final_loss and ra.pairs_per_second > 0


def test_different_settings_do_not_resume(tmp_path):
    opts = TrainOptions(steps=2, batch_size=16, warmup_steps=1, checkpoint_every=1)
    _train(opts, tmp_path)
    _, _, result = _train(replace(opts, learning_rate=1e-4), tmp_path)
    assert result.resumed_from == 0
    # the checkpoint cadence does not change the result: another cadence still resumes
    _, _, again = _train(replace(opts, learning_rate=1e-4, checkpoint_every=2), tmp_path)
    assert again.resumed_from == 2


def test_training_separates_the_two_classes(tmp_path):
    sketches, photos, labels = toy_data(96)
    opts = TrainOptions(steps=40, batch_size=32, learning_rate=3e-3, warmup_steps=2, checkpoint_every=40)
    sketch_model, photo_model, result = _train(opts, tmp_path, (sketches, photos, labels))
    s = sketch_model(sketches[:, 0, :, :, None].astype(np.float32), training=False).numpy()
    p = photo_model(photos.astype(np.float32), training=False).numpy()
    s /= np.linalg.norm(s, axis=1, keepdims=True)
    p /= np.linalg.norm(p, axis=1, keepdims=True)
    nearest = (s @ p.T).argmax(axis=1)
    assert (labels[nearest] == labels).mean() > 0.8
    assert np.isfinite(result.final_loss)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"steps": 0}, "steps"),
        ({"batch_size": 4}, "batch_size"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"warmup_steps": -1}, "warmup_steps"),
        ({"checkpoint_every": 0}, "checkpoint_every"),
    ],
)
def test_bad_train_options(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainOptions(**kwargs)


def test_options_are_keyword_only_and_there_is_no_time_cap():
    with pytest.raises(TypeError):
        TrainOptions(10)  # type: ignore[misc]
    with pytest.raises(TypeError):
        TrainOptions(max_minutes=1.0)  # type: ignore[call-arg]
