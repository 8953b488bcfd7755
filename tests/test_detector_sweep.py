"""``vitrina detector-sweep``: its variant names, and its measurement against ``vitrina eval --task detect``."""

from __future__ import annotations

import math

import pytest

from vitrina.export.detector_sweep import VARIANTS, measure, parse_variants, table
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.cli import main
from vitrina.runtime.evaluate_detect import evaluate_detector


def test_variants_parse_in_the_given_order_and_unknown_names_are_refused():
    assert [v.name for v in parse_variants("192-clip,128")] == ["192-clip", "128"]
    assert parse_variants(None) == list(VARIANTS.values())
    with pytest.raises(ValueError, match="choose from 128, 128-s4"):
        parse_variants("128,256")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--variants", "nope"], "unknown detector variant"),
        (["--iou", "0"], "--iou must be in (0, 1]"),
    ],
)
def test_cli_refuses_bad_settings_with_exit_2(tmp_path, capsys, args, words):
    code = main(["detector-sweep", "--catalog", str(tmp_path), "--out", str(tmp_path / "o"), *args])
    assert code == 2
    assert words in capsys.readouterr().err


def test_measure_agrees_with_eval_on_the_same_detector(tiny_bundle):
    bundle = Bundle.open(tiny_bundle)
    report = evaluate_detector(bundle, precisions=("int8",))
    assert report["thresholds"]["score"] == 0.05  # the tiny profile ships the sweep's score threshold
    figures = measure(bundle.model_path("detector", "int8"), bundle.eval_scenes(), iou=report["thresholds"]["iou"])
    want = report["int8"]
    assert figures["ap50"] == want["ap50"] and figures["ap"] == want["ap"]
    assert figures["recall50"] == want["recall50"]
    five = want["recall50_by_products"].get("5")
    if five is None:  # the tiny profile composes at most 3 products a scene
        assert math.isnan(figures["recall50_5_products"])
    else:
        assert figures["recall50_5_products"] == five
    assert figures["boxes_per_scene"] == pytest.approx(want["boxes_per_scene"], abs=0.01)
    row = {"name": "x", "size": 64, "stride": 8, "clip_norm": None, "steps": 1, "float": figures, "int8": figures}
    assert f"| x | 64 | 8 | none | 1 | {figures['ap50']:.3f} |" in table([row])
