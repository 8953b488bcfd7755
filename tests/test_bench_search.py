"""`vitrina bench search` at small sizes (tests never assert a time): every case is measured
side by side with faiss, the top-k agrees with faiss allowing for ties, the 1M-bundle figures
come from a bundle grown from a real one, and `bench compare` catches a slower case."""

import json

import numpy as np
import pytest

from vitrina.runtime.bench.compare import compare_reports
from vitrina.runtime.bench.search_bench import SearchBenchOptions, run_search_bench, write_search_report
from vitrina.runtime.bench.synthetic_catalog import scaled_bundle
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.cli import main

pytest.importorskip("faiss")  # dev dependency: installed in CI (vitrina[dev])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    options = SearchBenchOptions(
        sizes=(3000,), threads=(1, 2), batches=(1, 4), budget_s=0.01, work=tmp_path_factory.mktemp("bs")
    )
    return run_search_bench(options)


def test_every_case_is_measured_next_to_faiss_and_agrees(report):
    keys = set(report["cases"])
    for kind in ("hamming64", "hamming256", "l2_8", "l2_8f32", "l2_8i8", "l2_64", "twostage"):
        for suffix in ("t1_q1", "t2_q1", "t1_q4", "t2_q4"):
            assert f"{kind}_3000_{suffix}" in keys and f"{kind}_3000_{suffix}_filter10" in keys
    for key, row in report["cases"].items():
        assert 0 < row["median_ms"] <= row["p95_ms"] and row["faiss_median_ms"] > 0
        assert row["ratio"] == pytest.approx(row["median_ms"] / row["faiss_median_ms"], rel=0.05, abs=2e-3)
        if not key.startswith("twostage"):
            assert row["topk_agrees"] is True, key
    assert report["memory_bandwidth_gbs"] > 0 and report["targets"]["topk_agrees_with_reference"]["ok"]


def test_compare_catches_a_slower_case(report, tmp_path):
    json_path, html_path = write_search_report(report, tmp_path / "old")
    old = json.loads(json_path.read_text())
    assert "hamming64_3000_t1_q1" in html_path.read_text()
    slower = json.loads(json_path.read_text())
    slower["cases"]["l2_8_3000_t1_q1"]["median_ms"] = old["cases"]["l2_8_3000_t1_q1"]["median_ms"] * 2 + 1.0
    result = compare_reports(old, slower)
    assert [r.what for r in result.regressions] == ["search/l2_8_3000_t1_q1 p50 ms"]
    assert not compare_reports(old, old).regressions


def test_scaled_bundle_opens_lazily_and_searches(tiny_bundle, tmp_path):
    path = scaled_bundle(Bundle.open(tiny_bundle), 5000, tmp_path)
    bundle = Bundle.open(path, verify=False)
    assert "items" not in bundle.__dict__  # not parsed at open
    assert len(bundle.codes) == 5000 and bundle.code_spec == Bundle.open(tiny_bundle).code_spec
    assert len(bundle.items) == 5000 and bundle.items[4999].id == "SYN-0004999"
    assert Bundle.open(path, verify=True).verify_files() == len(bundle.manifest["files"])


def test_bench_search_cli_json(tmp_path, capsys):
    argv = ["bench", "search", "--sizes", "2000", "--kinds", "hamming64", "--threads", "1", "--batches", "1"]
    assert main([*argv, "--budget", "0.01", "--work", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["hamming64_2000_t1_q1"]) == {"median_ms", "p95_ms", "faiss_median_ms", "ratio"}
    assert main([*argv[:4], "--kinds", "hamming65"]) == 2
    assert "must be some of" in capsys.readouterr().err


def test_lazy_open_trusts_mapped_codes_and_verify_catches_them(tiny_bundle, tmp_path):
    import shutil

    from vitrina.runtime.bundle import BundleIntegrityError

    copy = shutil.copytree(tiny_bundle, tmp_path / "b")
    codes = copy / "codes/codes.npy"
    data = bytearray(codes.read_bytes())
    data[-3] ^= 0x01  # same size, a flipped bit in the last code
    codes.write_bytes(bytes(data))
    bundle = Bundle.open(copy, verify=False)  # mapped, not read: trusted from the install
    assert np.asarray(bundle.codes).shape[0] > 0
    with pytest.raises(BundleIntegrityError, match="codes.npy is corrupt"):
        bundle.verify_files()
    assert main(["info", "--bundle", str(copy), "--verify"]) == 2
