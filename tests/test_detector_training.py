"""The detector's training side: grid targets at both strides, the stride-4 network, and
training in the background (cancelled, then resumed to the same weights)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from vitrina.export.data.scenes import SceneOptions, compose_scenes
from vitrina.export.detector_model import DetectorSpec, build_detector
from vitrina.export.training.detector import (
    DetectorTrainOptions,
    grid_targets,
    start_detector_training,
)


@pytest.mark.parametrize("stride", [8, 4])
def test_grid_targets_peak_at_the_centre_cell_and_regress_the_box(stride):
    size = 64
    grid = size // stride
    box = np.array([[10.0, 20.0, 34.0, 52.0]], np.float32)
    heat, box_t, cls_t, weight = grid_targets(box, np.array([3]), grid, stride)
    gx, gy = int(22 // stride), int(36 // stride)
    assert heat.shape == (grid, grid)
    assert heat[gy, gx] == 1.0 and (heat == 1.0).sum() == 1
    assert weight[gy, gx] > 0 and cls_t[gy, gx] == 3
    np.testing.assert_array_equal(box_t[gy, gx], box[0])
    # every regressing cell's centre lies inside the box
    ys, xs = np.nonzero(weight)
    centres_x, centres_y = (xs + 0.5) * stride, (ys + 0.5) * stride
    assert ((centres_x > 10) & (centres_x < 34) & (centres_y > 20) & (centres_y < 52)).all()
    # a finer grid puts more cells on the same product
    if stride == 4:
        coarse = grid_targets(box, np.array([3]), size // 8, 8)[3]
        assert (weight > 0).sum() > (coarse > 0).sum()


@pytest.mark.parametrize("stride", [8, 4])
def test_the_network_outputs_one_cell_per_stride(stride):
    spec = DetectorSpec(input_size=64, n_classes=5, alpha=0.35, depth=0.34, fpn_channels=16, stride=stride)
    out = build_detector(spec)(np.zeros((2, 64, 64, 3), np.float32))
    assert spec.grid == 64 // stride
    assert out["objectness"].shape == (2, spec.grid, spec.grid, 1)
    assert out["boxes"].shape == (2, spec.grid, spec.grid, 4)
    assert out["classes"].shape == (2, spec.grid, spec.grid, 5)


@pytest.mark.parametrize("field, value", [("stride", 16), ("stride", 2)])
def test_spec_refuses_other_strides(field, value):
    with pytest.raises(ValueError, match="stride must be 8 or 4"):
        DetectorSpec(**{field: value})


def test_train_options_refuse_a_non_positive_clip_norm():
    with pytest.raises(ValueError, match="clip_norm"):
        DetectorTrainOptions(clip_norm=0.0)


def _scenes():
    rng = np.random.default_rng(0)
    pool = np.full((40, 32, 32, 3), 255, np.uint8)
    pool[:, 6:26, 8:24] = rng.integers(0, 120, size=(40, 20, 16, 3), dtype=np.uint8)
    return compose_scenes(
        pool,
        np.arange(40, dtype=np.int32),
        (np.arange(40) % 4).astype(np.int32),
        ["a", "b", "c", "d"],
        count=48,
        seed=1,
        options=SceneOptions(size=32, max_products=2, min_scale=0.3),
    )


def test_background_training_cancelled_then_resumed_ends_with_the_same_weights(tmp_path):
    scenes = _scenes()
    spec = DetectorSpec(input_size=32, n_classes=4, alpha=0.35, depth=0.34, fpn_channels=8)
    options = DetectorTrainOptions(steps=250, batch_size=8, warmup_steps=2, checkpoint_every=10)
    straight, result = start_detector_training(
        scenes, spec=spec, options=options, checkpoint_dir=tmp_path / "straight", progress=False
    ).result(progress=False)
    assert result.resumed_from == 0 and result.steps_this_run == 250

    training = start_detector_training(
        scenes, spec=spec, options=options, checkpoint_dir=tmp_path / "cut", progress=False
    )
    deadline = time.monotonic() + 120
    while training.job.step() < 20 and training.job.process.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    training.cancel()
    assert not training.job.process.is_alive()
    resumed, again = start_detector_training(
        scenes, spec=spec, options=options, checkpoint_dir=tmp_path / "cut", progress=False
    ).result(progress=False)
    assert 10 <= again.resumed_from < 250, again  # killed after its first checkpoint, before the end
    assert again.steps_this_run == 250 - again.resumed_from
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_run_whose_loss_never_falls_is_refused(tmp_path):
    from vitrina.export.training.detector import train_detector

    spec = DetectorSpec(input_size=32, n_classes=4, alpha=0.35, depth=0.34, fpn_channels=8)
    frozen = DetectorTrainOptions(steps=300, batch_size=8, learning_rate=1e-9, warmup_steps=2, checkpoint_every=300)
    with pytest.raises(RuntimeError, match="did not learn"):
        train_detector(_scenes(), spec=spec, options=frozen, checkpoint_dir=tmp_path, progress=False)


def test_cli_rebuild_from_the_work_folder_trains_nothing_again_and_reports_each_model(
    demo_catalog, tiny_bundle, tmp_path, capsys
):
    from vitrina.runtime.bundle import Bundle
    from vitrina.runtime.cli import main

    work = tiny_bundle.with_name(tiny_bundle.name + ".work")
    out = tmp_path / "again"
    args = ["build", "--catalog", str(demo_catalog), "--out", str(out), "--profile", "tiny", "--quiet"]
    assert main([*args, "--work", str(work), "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert "training: 60 steps (0 this run" in printed  # the encoders' checkpoint
    assert "detector: 400 steps (0 this run" in printed  # the detector's, resumed in its own process
    assert "text-visual: 40 steps (cached)" in printed
    from vitrina.runtime.detector import Detector, DetectorOptions

    first, again = Bundle.open(tiny_bundle), Bundle.open(out)
    scenes = first.eval_scenes().images[:8]
    for precision in ("float", "int8"):  # the same detector: the same raw outputs on every scene
        options = DetectorOptions(precision=precision, num_threads=1)
        with Detector.create_from_bundle(first, options) as a, Detector.create_from_bundle(again, options) as b:
            for scene in scenes:
                for x, y in zip(a.raw(scene), b.raw(scene)):
                    np.testing.assert_array_equal(x, y)
