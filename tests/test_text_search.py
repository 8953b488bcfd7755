"""Text search over a real tiny bundle: the vocabulary it carries, word repair in by_text, the CLI paths."""

import json
import shutil

import numpy as np
import pytest

from vitrina.runtime.bundle import VOCABULARY_FILE, Bundle, BundleFormatError, BundleIntegrityError
from vitrina.runtime.cli import main
from vitrina.runtime.files import sha256_file
from vitrina.runtime.product_search import ProductSearch
from vitrina.runtime.sync.gate import GateError, check_bundle
from vitrina.runtime.text import Vocabulary, tokens


def _misspell_first_word(title: str) -> tuple[str, str]:
    """A title's first noun, folded, and a ll/y or b/v or dropped-letter misspelling of it."""
    word = tokens(title)[0]
    for a, b in (("ll", "y"), ("v", "b"), ("z", "s")):
        if a in word:
            return word, word.replace(a, b, 1)
    return word, word[:2] + word[3:]


def _write_manifest(bundle, manifest):
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def _rehash_vocabulary(bundle):
    """List the bundle's edited vocabulary file with its new hash and size (an unsigned edit)."""
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    path = bundle / VOCABULARY_FILE
    manifest["files"][VOCABULARY_FILE] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    _write_manifest(bundle, manifest)


def test_bundle_carries_the_catalog_vocabulary(tiny_bundle, demo_catalog):
    bundle = Bundle.open(tiny_bundle)
    assert bundle.manifest["vocabulary"] == VOCABULARY_FILE
    vocab = bundle.vocabulary
    assert "zapatilla" in vocab and "polera" in vocab and "negro" in vocab
    import csv

    with (demo_catalog / "catalog.csv").open(encoding="utf-8") as f:
        brands = {w for r in csv.DictReader(f) for w in tokens(r["brand"])}
    assert brands and brands == vocab.brands and not brands & set(vocab.words)
    assert not any(w.isdigit() for w in vocab.words)


def test_bundle_carries_the_catalog_synonyms_and_english_queries_find_products(tiny_bundle, demo_catalog, capsys):
    vocab = Bundle.open(tiny_bundle).vocabulary
    aliases = json.loads((demo_catalog / "aliases.json").read_text(encoding="utf-8"))
    assert aliases["colors"]["rojo"]["en"] == ["red"] and vocab.synonyms["red"] == ("rojo",)
    assert vocab.synonyms["sneakers"] == ("zapatilla",) and "rojo" in vocab and "zapatilla" in vocab
    argv = ["search", "--bundle", str(tiny_bundle), "--text", "red sneakers", "-k", "3", "--json"]
    assert main([*argv, "--text-method", "keyword"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["query_words"] == ["rojo", "zapatilla"] and out["synonyms"] == {"red": "rojo", "sneakers": "zapatilla"}
    assert out["corrected"] == {} and out["dropped"] == []
    # keyword search: products holding both words ("zapatilla" in the title, "rojo" its colour) first
    items = Bundle.open(tiny_bundle).items
    both = [
        i.id
        for i in items
        if all(any(t.startswith(w) for t in tokens(f"{i.title} {i.color}")) for w in ("zapatilla", "rojo"))
    ]
    assert both and [r["id"] for r in out["results"] if r["score"] == 1.0] == both[:3]
    assert (out["results"][0]["category"], out["results"][0]["color"]) == ("Sneaker", "rojo")
    assert main(argv[:-1] + ["--text-method", "keyword"]) == 0
    assert "read as: red → rojo, sneakers → zapatilla" in capsys.readouterr().err
    with ProductSearch.create_from_bundle(Bundle.open(tiny_bundle)) as engine:  # the kiosk's suggestion row
        assert engine.suggest("red lig") == ["light blue"] and engine.suggest("ora") == ["orange"]
        assert engine.suggest("zapatiya") == ["zapatilla"]


def test_malformed_synonyms_in_a_bundle_are_refused(tiny_bundle, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    doc = json.loads((bad / VOCABULARY_FILE).read_text(encoding="utf-8"))
    doc["synonyms"] = {"red": ["no-such-word"]}
    (bad / VOCABULARY_FILE).write_text(json.dumps(doc), encoding="utf-8")
    _rehash_vocabulary(bad)
    with pytest.raises(BundleFormatError, match="synonym 'red' stands for"):
        _ = Bundle.open(bad).vocabulary
    with pytest.raises(GateError, match="synonym 'red' stands for"):  # a device never activates it
        check_bundle(bad)


def test_older_bundle_without_vocabulary_builds_it_from_items(tiny_bundle, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(tiny_bundle, old)
    manifest = json.loads((old / "manifest.json").read_text(encoding="utf-8"))
    del manifest["vocabulary"], manifest["files"][VOCABULARY_FILE]
    (old / VOCABULARY_FILE).unlink()
    _write_manifest(old, manifest)
    bundle = Bundle.open(old)
    expected = Vocabulary.from_texts(f"{i.title} {i.category} {i.color}" for i in bundle.items)
    assert bundle.vocabulary == expected and "zapatilla" in bundle.vocabulary
    with ProductSearch.create_from_bundle(bundle) as engine:
        assert engine.by_text("zapatiya", 5).query.corrected == {"zapatiya": "zapatilla"}


def test_damaged_vocabulary_is_refused(tiny_bundle, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_bundle, bad)
    (bad / VOCABULARY_FILE).write_text('{"format": "vitrina-vocabulary", "version": 1, "words": [["a", -1]]}')
    with pytest.raises(BundleIntegrityError, match="vocabulary.json"):
        Bundle.open(bad, verify=False)  # sizes are checked at open
    _rehash_vocabulary(bad)
    with pytest.raises(BundleFormatError, match="malformed vocabulary"):
        _ = Bundle.open(bad).vocabulary


def test_by_text_repairs_words_and_finds_the_same_products(tiny_bundle):
    with ProductSearch.create_from_bundle_path(tiny_bundle) as engine:
        title = next(i.title for i in engine.bundle.items if i.category == "Sneaker")
        word, typo = _misspell_first_word(title)
        clean = engine.by_text(f"{word} negro", 20)
        typed = engine.by_text(f"{typo} negro 38", 20)
        assert typed.query.corrected == {typo: word} and typed.query.dropped == ("38",)
        assert [m.item for m in typed.matches] == [m.item for m in clean.matches] and clean.matches
        none = engine.by_text("mesa perro 3", 5)
        assert none.matches == () and none.query.empty and "no known word" in none.cap_note()


def test_keyword_scores_match_a_scan_of_every_title(tiny_bundle):
    with ProductSearch.create_from_bundle_path(tiny_bundle) as engine:
        items = engine.bundle.items
        texts = [set(tokens(f"{i.title} {i.category} {i.color}")) for i in items]
        vocabulary = sorted({w for t in texts for w in t})
        queries = [[w] for w in vocabulary[::7]] + [[w[:3]] for w in vocabulary[::11]]  # words and prefixes
        queries += [["zapatilla", "roja"], ["negro", "no-such-word"], ["zz"], [vocabulary[-1] + "z"]]
        for query in queries:
            want = np.array([sum(any(w.startswith(q) for w in t) for q in query) for t in texts]) / len(query)
            assert np.allclose(engine.keyword_scores(query), want), query


@pytest.mark.parametrize("seed", range(5))
def test_best_k_is_a_stable_sort_without_the_sort(seed):
    from vitrina.runtime.search import shortlist_rows as best_k  # what text search and top_k select with

    rng = np.random.default_rng(seed)
    for _ in range(100):
        n, k = int(rng.integers(0, 80)), int(rng.integers(1, 25))
        scores = rng.integers(-2, 4, n).astype(np.float32) / 3  # many ties
        assert best_k(scores, k).tolist() == np.argsort(-scores, kind="stable")[:k].tolist()


def test_cli_search_text_json(tiny_bundle, capsys):
    # keyword ranking (the tiny bundle's text-visual model trains seconds; tests/test_text_visual_cli.py covers it)
    argv = ["search", "--bundle", str(tiny_bundle), "--text", "Zapatiya ROJA", "-k", "4", "--json"]
    assert main([*argv, "--text-method", "keyword"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "keyword"
    assert out["query_words"] == ["zapatilla", "roja"] and out["corrected"] == {"zapatiya": "zapatilla"}
    assert out["dropped"] == [] and out["note"] is None
    assert 0 < len(out["results"]) <= 4 and all(r["category"] == "Sneaker" for r in out["results"][:1])


def test_cli_search_text_with_no_known_word_is_empty_not_an_error(tiny_bundle, capsys):
    assert main(["search", "--bundle", str(tiny_bundle), "--text", "mesa 42", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["results"] == [] and out["query_words"] == [] and out["dropped"] == ["mesa", "42"]
    assert "no known word" in out["note"]
    assert main(["search", "--bundle", str(tiny_bundle), "--text", "mesa"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "no known word" in captured.err


def test_cli_search_text_plain_says_did_you_mean(tiny_bundle, capsys):
    argv = ["search", "--bundle", str(tiny_bundle), "--text", "pantalon asul", "-k", "3", "--text-method", "keyword"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "did you mean: pantalon azul" in captured.err
    lines = captured.out.strip().splitlines()
    assert len(lines) == 3 and "Trouser" in lines[0]


def test_cli_eval_text(tiny_bundle, capsys):
    assert main(["eval", "--bundle", str(tiny_bundle), "--task", "text", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    keyword = report["methods"]["keyword"]
    assert set(keyword) == {"spanish", "english", "synonym", "misspelled", "all"}
    for kind in keyword.values():
        assert 0 <= kind["p_at_10"] <= 1 and 0 <= kind["map"] <= 1 and kind["queries"] > 0
    # the study's repair, with no synonyms, finds Spanish queries far better than English ones;
    # the catalog's synonyms (aliases.json) make English queries Spanish ones
    study_repair = report["methods"]["keyword, study repair"]
    assert study_repair["spanish"]["map"] > study_repair["english"]["map"] + 0.2
    assert keyword["english"]["map"] > study_repair["english"]["map"] + 0.2
    methods = {r["method"]: r for r in report["word_repair"]}
    default = next(r for name, r in methods.items() if "default" in name)
    study = methods["difflib >= 0.95 (study)"]
    assert default["right"] > study["right"] and default["false_map"] <= 0.1
    assert main(["eval", "--bundle", str(tiny_bundle), "--task", "text"]) == 0
    assert "P@10" in capsys.readouterr().out


def test_text_search_and_eval_run_without_the_export_stack(tiny_bundle):
    from tests.test_runtime_imports import run

    proc = run(
        f"""
        import json
        from vitrina.runtime.cli import main
        assert main(["search", "--bundle", {str(tiny_bundle)!r}, "--text", "zapatiya", "--json"]) == 0
        assert main(["eval", "--bundle", {str(tiny_bundle)!r}, "--task", "text", "--json"]) == 0
        """
    )
    assert proc.returncode == 0, proc.stderr
    first = json.loads(proc.stdout.splitlines()[0])
    assert first["corrected"] == {"zapatiya": "zapatilla"} and first["results"]
