"""QA benchmark on the tiny bundle: the report, and compare catching real regressions."""

import hashlib
import json
import shutil
import time

import numpy as np
import pytest

from vitrina.runtime.bench import benchmark
from vitrina.runtime.bench.benchmark import BenchOptions, latency_stats, run_benchmark, time_pipeline, write_report
from vitrina.runtime.bench.compare import compare_reports, parse_fraction
from vitrina.runtime.bench.soak import soak
from vitrina.runtime.cli import main

FAST = BenchOptions(queries=30, warmup=3, cold_runs=1)


@pytest.fixture(scope="module")
def base_report(tiny_bundle):
    return run_benchmark(tiny_bundle, FAST)


def test_report_has_every_part(base_report, tmp_path):
    latency = base_report["latency"]["1"]
    # the tiny bundle has a detector and colour families
    assert set(latency) == {"sketch", "photo", "similar", "photo_scene", "sketch_color"}
    assert latency["sketch_color"]["total"]["n"] == 30
    assert [k for k in latency["photo_scene"] if k in ("decode", "detect", "crop", "photo_encoder", "search")] == [
        "decode",
        "detect",
        "crop",
        "photo_encoder",
        "search",
    ]
    assert set(latency["sketch"]) >= {"rasterise", "sketch_encoder", "search", "total", "overhead"}
    for stats in (latency["sketch"]["total"], latency["photo"]["photo_encoder"]):
        assert stats["n"] == 30 and 0 < stats["p50"] <= stats["p95"] <= stats["p99"] <= stats["max"]
    assert base_report["cold_start"]["median_s"] > 0 and base_report["cold_start"]["runs"][0]["top"] >= 0
    assert base_report["memory"]["peak_rss_mb"] > 10
    assert set(base_report["memory"]["bundle_bytes"]) >= {"models", "codes", "thumbs", "metadata"}
    acc = base_report["accuracy"]
    assert 0 < acc["int8"]["map"] <= 1 and len(acc["pr_curve"]["recall"]) == 11
    assert acc["pr_curve"]["int8"][0] >= acc["pr_curve"]["int8"][-1]
    assert len(base_report["environment"]["manifest_sha256"]) == 64
    assert base_report["cross_checks"]["faiss"]["score_agreement"] == 1.0
    assert set(base_report["targets"]) == {"sketch_p95_ms", "overhead_ratio", "cold_start_s", "photo_scene_p95_ms"}
    json_path, html_path = write_report(base_report, tmp_path / "r")
    assert json.loads(json_path.read_text())["report_version"] == 1
    page = html_path.read_text()
    assert page.count("data:image/png;base64") >= 5 and "Cold start" in page


def test_total_matches_sum_of_stages():
    def slow(ms):
        return lambda x: (time.sleep(ms / 1000), x)[1]

    samples = time_pipeline([("a", slow(2)), ("b", slow(3))], list(range(10)), warmup=2)
    assert len(samples["total"]) == 10
    stage_sum = latency_stats(samples["a"])["p50"] + latency_stats(samples["b"])["p50"]
    assert latency_stats(samples["total"])["p50"] == pytest.approx(stage_sum, rel=0.1)


def test_compare_flags_a_deliberately_slowed_stage(base_report, tiny_bundle, monkeypatch, tmp_path):
    real = benchmark.rasterize_strokes

    def slowed(*args, **kwargs):
        time.sleep(0.004)
        return real(*args, **kwargs)

    monkeypatch.setattr(benchmark, "rasterize_strokes", slowed)
    slow = run_benchmark(tiny_bundle, BenchOptions(queries=30, warmup=3, cold_runs=0, accuracy=False))
    result = compare_reports(base_report, slow)
    flagged = {r.what for r in result.regressions}
    assert "sketch/rasterise (1 thr) p50 ms" in flagged and "sketch/total (1 thr) p50 ms" in flagged
    assert not any(w.startswith("similar/") for w in flagged)
    (tmp_path / "old.json").write_text(json.dumps(base_report))
    (tmp_path / "new.json").write_text(json.dumps(slow))
    assert main(["bench", "compare", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 1


def rehash(bundle_dir, rel):
    manifest = json.loads((bundle_dir / "manifest.json").read_text())
    data = (bundle_dir / rel).read_bytes()
    manifest["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    (bundle_dir / "manifest.json").write_text(json.dumps(manifest))


def test_compare_flags_a_degraded_model(base_report, tiny_bundle, tmp_path):
    degraded = tmp_path / "degraded"
    shutil.copytree(tiny_bundle, degraded)
    codes = np.load(degraded / "codes/codes.npy")
    np.save(degraded / "codes/codes.npy", codes[np.random.default_rng(0).permutation(len(codes))])
    rehash(degraded, "codes/codes.npy")
    worse = run_benchmark(degraded, BenchOptions(queries=10, warmup=1, cold_runs=0))
    result = compare_reports(base_report, worse, max_latency_regression=10.0)
    assert [r.what for r in result.regressions] == ["accuracy/int8 mAP"]


def test_compare_same_report_is_clean_and_rejects_unknown_versions(base_report):
    assert compare_reports(base_report, base_report).regressions == ()
    with pytest.raises(ValueError, match="report_version"):
        compare_reports(base_report, {**base_report, "report_version": 99})


@pytest.mark.parametrize("text, value", [("10%", 0.1), ("0.25", 0.25), ("0%", 0.0)])
def test_parse_fraction(text, value):
    assert parse_fraction(text) == pytest.approx(value)


def test_parse_fraction_rejects_nonsense():
    with pytest.raises(ValueError, match="fraction"):
        parse_fraction("ten")


def test_soak_runs_mixed_queries(tiny_bundle):
    result = soak(tiny_bundle, minutes=0.05)
    assert result.queries > 50 and result.qps > 10
    assert np.isfinite(result.drift) and result.rss_end_mb > 0
    with pytest.raises(ValueError, match="minutes must be > 0"):
        soak(tiny_bundle, minutes=0)


def test_bench_run_cli(tiny_bundle, tmp_path, capsys):
    code = main(
        [
            "bench",
            "run",
            "--bundle",
            str(tiny_bundle),
            "--queries",
            "10",
            "--cold-runs",
            "0",
            "--no-accuracy",
            "--threads",
            "1,2",
            "--out",
            str(tmp_path),
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["latency"]) == {"1", "2"}
    assert "sketch (1 thr): p50" in capsys.readouterr().out


def test_bench_bad_threads(tiny_bundle, tmp_path, capsys):
    assert main(["bench", "run", "--bundle", str(tiny_bundle), "--threads", "1,x", "--out", str(tmp_path)]) == 2
    assert "--threads" in capsys.readouterr().err
