"""The text-visual model's CLI paths: search --text, similar, eval --task text|similar|identify,
and bundles without the model (keyword search and visual "similar" stay)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.cli import main
from vitrina.runtime.product_search import ProductSearch, ProductSearchOptions
from vitrina.runtime.text_visual import catalog_codes


@pytest.fixture(scope="module")
def bundle_without_text_visual(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle as an older build wrote it: no text-visual model, entry or codes."""
    out = tmp_path_factory.mktemp("no-text-visual") / "bundle"
    shutil.copytree(tiny_bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    gone = list(manifest["models"].pop("textvisual").values()) + list(manifest.pop("text_visual")["codes"].values())
    for rel in gone:
        (out / rel).unlink()
        del manifest["files"][rel]
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def run_json(capsys, *argv: str) -> dict:
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_text_search_ranks_keyword_matches_first_then_by_the_model(tiny_bundle, capsys):
    argv = ("search", "--bundle", str(tiny_bundle), "--text", "Zapatiya roja 42", "--json", "-k", "1000")
    out = run_json(capsys, *argv)
    assert out["method"] == "hybrid"  # auto, on a bundle with the model
    assert run_json(capsys, *argv, "--text-method", "hybrid") == out
    bundle = Bundle.open(tiny_bundle)
    with ProductSearch(bundle, ProductSearchOptions(text_method="keyword")) as engine:
        keyword = engine.keyword_scores(["zapatilla", "roja"])
    with ProductSearch(bundle, ProductSearchOptions(text_method="text-visual")) as engine:
        cosine = engine._text_visual.text_scores(["zapatilla", "roja"])
    # recomputed here: the keyword share decides, the model's cosine orders products of one share
    order = sorted(range(len(keyword)), key=lambda i: (-keyword[i], -cosine[i]))[:1000]
    assert [r["id"] for r in out["results"]] == [bundle.items[i].id for i in order]
    shares = [float(keyword[i]) for i in order]
    assert shares[0] == 1.0 and 0.0 in shares  # matches of both words first; products matching none too
    scores = [r["score"] for r in out["results"]]
    assert np.allclose(scores, [keyword[i] + 0.1 * (cosine[i] + 1) / 2 for i in order], atol=1e-5)


def test_text_search_goes_through_the_text_branch(tiny_bundle, capsys):
    argv = ("search", "--bundle", str(tiny_bundle), "--text", "Zapatiya roja 42", "--json", "-k", "7")
    out = run_json(capsys, *argv, "--text-method", "text-visual")
    assert out["method"] == "text-visual"
    assert set(out) >= {"results", "query_words", "corrected", "dropped"}
    assert out["corrected"] == {"zapatiya": "zapatilla"} and out["dropped"] == ["42"]
    assert out["query_words"] == ["zapatilla", "roja"]
    assert len(out["results"]) == 7
    scores = [r["score"] for r in out["results"]]
    assert scores == sorted(scores, reverse=True) and all(-1.0 <= s <= 1.0 for s in scores)
    # the ranking is the cosine of the text-only code with the bundle's int8 codes
    bundle = Bundle.open(tiny_bundle)
    with ProductSearch(bundle, ProductSearchOptions(text_method="text-visual")) as engine:
        want = engine._text_visual.text_scores(["zapatilla", "roja"])
    ids = [item.id for item in bundle.items]
    best = [ids[i] for i in np.argsort(-want, kind="stable")[:7]]
    assert [r["id"] for r in out["results"]] == best
    assert np.allclose(np.sort(want)[::-1][:7], scores, atol=1e-5)


def test_hybrid_scores_never_let_the_model_outrank_a_better_keyword_match():
    from vitrina.runtime.text import MAX_QUERY_WORDS
    from vitrina.runtime.text_visual_search import hybrid_scores

    steps = np.arange(MAX_QUERY_WORDS + 1) / MAX_QUERY_WORDS  # every keyword share of a 9-word query
    best_model = hybrid_scores(steps[:-1], np.ones(MAX_QUERY_WORDS))
    worst_model = hybrid_scores(steps[1:], -np.ones(MAX_QUERY_WORDS))
    assert (worst_model > best_model).all()
    # within one share the cosine orders; a product without a code keeps its keyword share alone
    scores = hybrid_scores(np.full(3, 0.5), np.array([0.2, 0.9, 0.9]), coded=np.array([True, True, False]))
    assert scores[1] > scores[0] > scores[2] == np.float32(0.5)


def test_text_search_with_no_known_word_is_empty_and_says_so(tiny_bundle, capsys):
    out = run_json(capsys, "search", "--bundle", str(tiny_bundle), "--text", "xyzzy 42", "--json")
    assert out["results"] == [] and out["query_words"] == [] and out["dropped"] == ["xyzzy", "42"]
    assert "no known word" in out["note"]
    assert main(["search", "--bundle", str(tiny_bundle), "--text", "xyzzy"]) == 0
    assert "no known word" in capsys.readouterr().err


def test_text_search_filters_and_keyword_baseline(tiny_bundle, capsys):
    out = run_json(
        capsys,
        *("search", "--bundle", str(tiny_bundle), "--text", "polera", "--category", "Trouser", "--json"),
        *("--text-method", "text-visual"),
    )
    assert out["method"] == "text-visual" and out["results"]
    assert {r["category"] for r in out["results"]} == {"Trouser"}
    keyword = run_json(
        capsys, "search", "--bundle", str(tiny_bundle), "--text", "polera", "--text-method", "keyword", "--json"
    )
    assert keyword["method"] == "keyword" and all("polera" in r["title"].lower() for r in keyword["results"])


def test_a_bundle_without_the_model_keeps_keyword_search(bundle_without_text_visual, capsys):
    path = str(bundle_without_text_visual)
    out = run_json(capsys, "search", "--bundle", path, "--text", "zapatilla", "--json")
    assert out["method"] == "keyword" and out["results"]
    assert all(r["score"] > 0 for r in out["results"])
    for method in ("text-visual", "hybrid"):
        assert main(["search", "--bundle", path, "--text", "zapatilla", "--text-method", method]) == 2
        assert "no text-visual model" in capsys.readouterr().err
    first = Bundle.open(path).items[0].id
    out = run_json(capsys, "similar", "--bundle", path, "--id", first, "--json")
    assert out["method"] == "visual" and "no text-visual model" in out["note"] and len(out["results"]) == 10
    assert main(["eval", "--bundle", path, "--task", "similar"]) == 2


def test_similar_returns_text_visual_neighbours(tiny_bundle, capsys):
    bundle = Bundle.open(tiny_bundle)
    item = 5
    pid = bundle.items[item].id
    out = run_json(capsys, "similar", "--bundle", str(tiny_bundle), "--id", pid, "-k", "4", "--json")
    assert out["method"] == "text-visual" and out["id"] == pid
    codes = catalog_codes(bundle, "int8")
    sims = codes @ codes[item]
    sims[item] = -np.inf
    assert [r["id"] for r in out["results"]] == [bundle.items[i].id for i in np.argsort(-sims, kind="stable")[:4]]
    visual = run_json(capsys, "similar", "--bundle", str(tiny_bundle), "--id", pid, "--method", "visual", "--json")
    assert visual["method"] == "visual" and pid not in [r["id"] for r in visual["results"]]
    colour = bundle.items[item].color
    filtered = run_json(capsys, "similar", "--bundle", str(tiny_bundle), "--id", pid, "--color", colour, "--json")
    assert filtered["results"] and {r["color"] for r in filtered["results"]} == {colour}
    assert main(["similar", "--bundle", str(tiny_bundle), "--id", pid, "-k", "3"]) == 0
    assert len(capsys.readouterr().out.strip().splitlines()) == 3


def test_similar_bad_input_exits_2(tiny_bundle, capsys):
    assert main(["similar", "--bundle", str(tiny_bundle), "--id", "NO-SUCH-ID"]) == 2
    assert "no product with id 'NO-SUCH-ID'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["similar", "--bundle", str(tiny_bundle), "--id", "x", "-k", "0"])
    assert exc.value.code == 2


def test_product_search_text_method_option_is_checked(tiny_bundle):
    with pytest.raises(ValueError, match="text_method"):
        ProductSearchOptions(text_method="fuzzy")
    with ProductSearch(Bundle.open(tiny_bundle), ProductSearchOptions(text_method="keyword")) as engine:
        assert engine.by_text("zapatilla").method == "keyword"
        assert engine.similar_by_text_visual(0).matches  # loads the model for "similar" ...
        assert engine.by_text("zapatilla").method == "keyword"  # ... and text search stays keyword


def test_eval_tasks_compare_the_model_with_its_baselines(tiny_bundle, capsys):
    text = run_json(capsys, "eval", "--bundle", str(tiny_bundle), "--task", "text", "--json")
    assert {"keyword", "text-visual int8", "text-visual float", "hybrid int8", "hybrid float"} <= set(text["methods"])
    for kind in ("spanish", "english", "synonym", "misspelled", "all"):
        assert 0.0 <= text["methods"]["text-visual int8"][kind]["map"] <= 1.0
        assert 0.0 <= text["methods"]["hybrid int8"][kind]["p_at_10"] <= 1.0
    similar = run_json(capsys, "eval", "--bundle", str(tiny_bundle), "--task", "similar", "--json")
    assert {"visual float", "text-visual int8", "text-visual float"} <= set(similar["methods"])
    m = similar["methods"]["text-visual int8"]
    assert 0.0 <= m["r_at_5"] <= m["r_at_10"] <= m["r_at_20"] <= 1.0 and 0.0 <= m["p_at_10"] <= 1.0
    identify = run_json(capsys, "eval", "--bundle", str(tiny_bundle), "--task", "identify", "--json")
    assert set(identify["accuracy"]) == {"int8", "float"}
    for task in ("similar", "identify"):
        assert main(["eval", "--bundle", str(tiny_bundle), "--task", task]) == 0
        assert "int8" in capsys.readouterr().out
