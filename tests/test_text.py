"""Text normalisation and word repair (runtime/text.py), misspellings, and the demo stores' titles."""

import csv

import numpy as np
import pytest

from tests.conftest import TINY_TEST
from vitrina.export.data.demo_catalog import PALETTE, write_demo_catalog
from vitrina.export.data.titles import MAIN_STORE, SECOND_STORE, draw_title, get_store
from vitrina.runtime.misspell import misspell
from vitrina.runtime.text import (
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    Vocabulary,
    WordRepair,
    WordRepairOptions,
    fold,
    is_noise,
    sound_key,
    tokens,
)
from vitrina.runtime.text_eval import query_lexicon, ranking_metrics, repair_cases, text_queries

TITLES = [
    "Zapatilla Wake Urbana Lona Roja 2 Sneaker rojo",
    "Polerón Cuello Alto Lana Azul Marino Pullover azul marino",
    "Pantalón Wide Leg Gabardina Azul Andes Co 14 Trouser azul",
    "Botín Chelsea Cuero Negro Ankle boot negro",
    "Camisa Oxford Lino Amarilla Shirt amarillo",
    "Vestido Midi Viscosa Beige Dress beige",
]


@pytest.fixture(scope="module")
def vocab() -> Vocabulary:
    return Vocabulary.from_texts(TITLES, brands=["Wake", "Andes Co"])


def test_tokens_fold_accents_and_case():
    assert fold("Pantalón POLERÒN Básica") == "pantalon poleron basica"
    assert tokens("Polera Camiseta Básica, Manga-Larga Negro 1") == [
        "polera",
        "camiseta",
        "basica",
        "manga",
        "larga",
        "negro",
        "1",
    ]
    assert tokens("  ¡¿ !!  ") == []


def test_noise_is_numbers_and_single_letters():
    assert is_noise("1") and is_noise("2xl") and is_noise("t")
    assert not is_noise("top") and not is_noise("ab")


def test_sound_key_folds_spanish_letters_that_sound_alike():
    assert sound_key("zapatiya") == sound_key("zapatilla")
    assert sound_key("vestido") == sound_key("bestido")
    assert sound_key("asul") == sound_key("azul")
    assert sound_key("cielo") == sound_key("sielo") and sound_key("casa") != sound_key("sasa")


def test_vocabulary_leaves_out_brands_and_numbers(vocab):
    assert "zapatilla" in vocab and "poleron" in vocab and "gabardina" in vocab
    assert "wake" not in vocab and "andes" not in vocab and "co" not in vocab
    assert not any(is_noise(w) for w in vocab.words)
    assert vocab.brands == {"wake", "andes", "co"}
    assert vocab.counts[vocab.index["azul"]] == 2  # counted once per text, twice in the poleron's
    assert list(vocab.counts) == sorted(vocab.counts, reverse=True)


@pytest.mark.parametrize(
    "typed, word",
    [
        ("zapatiya", "zapatilla"),  # ll/y
        ("asul", "azul"),  # s/z
        ("bestido", "vestido"),  # b/v
        ("polerones", "poleron"),  # plural
        ("zapatillas", "zapatilla"),
        ("pantaln", "pantalon"),  # dropped letter
        ("gabradina", "gabardina"),  # swapped letters
        ("zpatilla", "zapatilla"),  # the second letter dropped: Jaro-Winkler 0.929, one edit
        ("lna", "lana"),  # three letters, one edit
        ("vestidoo", "vestido"),  # a letter added
    ],
)
def test_repair_maps_misspellings(vocab, typed, word):
    assert WordRepair(vocab).repair(typed) == word


@pytest.mark.parametrize("typed", ["mesa", "perro", "wake", "12", "x", "pan", "calcetines"])
def test_repair_drops_unknown_words(vocab, typed):
    assert WordRepair(vocab).repair(typed) is None


def test_normalize_reports_corrected_and_dropped(vocab):
    q = WordRepair(vocab).normalize("Zapatiya ROJA Wake 42 mesa zapatilla")
    assert q.words == ("zapatilla", "roja")
    assert q.corrected == {"zapatiya": "zapatilla"}
    assert q.dropped == ("wake", "42", "mesa")
    assert q.to_json() == {
        "query_words": ["zapatilla", "roja"],
        "corrected": {"zapatiya": "zapatilla"},
        "dropped": ["wake", "42", "mesa"],
        "synonyms": {},
    }
    empty = WordRepair(vocab).normalize("mesa 3")
    assert empty.empty and empty.words == () and empty.dropped == ("mesa", "3")


SYNONYMS = {
    "Ankle Boot": "Botín",
    "boot": "Zapatilla",
    "red": "Roja",
    "navy": "Azul Marino",
    "light blue": "Celeste",  # no product is celeste: left out
    "one two three four": "roja",  # longer than MAX_SYNONYM_WORDS: left out
    "wake2": "Wake 2",  # a brand and a number: nothing left, left out
}


def test_with_synonyms_keeps_folded_phrases_of_known_words(vocab):
    v = vocab.with_synonyms(SYNONYMS)
    assert v.synonyms == {
        "ankle boot": ("botin",),
        "boot": ("zapatilla",),
        "red": ("roja",),
        "navy": ("azul", "marino"),
    }
    assert v.words == vocab.words and v.counts == vocab.counts and v.brands == vocab.brands
    assert v.with_texts(["Mesa Roja"]).synonyms == v.synonyms


def test_normalize_replaces_the_longest_synonym_first(vocab):
    repair = WordRepair(vocab.with_synonyms(SYNONYMS))
    q = repair.normalize("Red ankle boot, zapatiya navy boot")
    assert q.words == ("roja", "botin", "zapatilla", "azul", "marino")
    assert q.synonyms == {"red": "roja", "ankle boot": "botin", "navy": "azul marino", "boot": "zapatilla"}
    assert q.corrected == {"zapatiya": "zapatilla"} and q.dropped == ()
    assert q.to_json()["synonyms"] == q.synonyms
    # titles keep the catalog's own words; the study's repair knows no synonyms
    assert WordRepair.for_titles(repair.vocabulary).normalize("Botín Ankle boot red").words == (
        "botin",
        "ankle",
        "boot",
    )
    assert WordRepair(repair.vocabulary, WordRepairOptions.study()).normalize("red").empty


def test_a_synonym_past_max_words_is_dropped_whole(vocab):
    repair = WordRepair(vocab.with_synonyms(SYNONYMS), WordRepairOptions(max_words=1))
    q = repair.normalize("zapatilla navy red")
    assert q.words == ("zapatilla",) and q.dropped == ("navy", "red") and q.synonyms == {}


@pytest.mark.parametrize(
    "synonyms, message",
    [
        ({"Red": ("roja",)}, "not a folded phrase"),
        ({"red  shoe": ("roja",)}, "not a folded phrase"),
        ({"a b c d": ("roja",)}, "not a folded phrase"),
        ({"red": ("mesa",)}, "expected 1\\+ words of the vocabulary"),
        ({"red": ()}, "expected 1\\+ words of the vocabulary"),
    ],
)
def test_vocabulary_refuses_bad_synonyms(vocab, synonyms, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary(vocab.words, vocab.counts, vocab.brands, synonyms)


def test_normalize_keeps_at_most_max_words(vocab):
    text = " ".join(vocab.words[:12])
    q = WordRepair(vocab).normalize(text)
    assert len(q.words) == MAX_QUERY_WORDS and q.dropped == tuple(vocab.words[MAX_QUERY_WORDS:12])
    assert WordRepair(vocab, WordRepairOptions(max_words=2)).normalize(text).words == vocab.words[:2]


def test_only_the_first_query_characters_are_read(vocab):
    q = WordRepair(vocab).normalize("zapatilla " + "mesa " * 100_000 + "roja")
    assert q.words == ("zapatilla",) and len(q.dropped) < MAX_QUERY_CHARS // 4


@pytest.mark.parametrize("texts, word", [(["gris", "gris", "gras"], "gris"), (["gris", "gras", "gras"], "gras")])
def test_one_edit_picks_the_more_frequent_of_two_words(texts, word):
    assert WordRepair(Vocabulary.from_texts(texts)).repair("grs") == word  # one letter from either


def test_one_edit_is_one_edit_only(vocab):
    repair = WordRepair(vocab)
    assert repair.repair("azlu") == "azul"  # neighbours swapped
    assert repair.repair("gabrdna") is None  # two letters dropped
    assert repair.repair("li") is None  # too short to repair
    assert repair.repair("mini") is None  # one changed letter from "midi": another word, not a typo


def test_study_setting_repairs_only_near_identical_words(vocab):
    study = WordRepair(vocab, WordRepairOptions.study())
    assert study.repair("zapatiya") is None and study.repair("pantaln") is None
    assert WordRepair(vocab, WordRepairOptions(scorer="difflib", min_similarity=0.85)).repair("pantaln") == "pantalon"


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"min_similarity": 0.0}, "min_similarity"),
        ({"min_similarity": 1.5}, "min_similarity"),
        ({"max_words": 0}, "max_words"),
        ({"max_words": MAX_QUERY_WORDS + 1}, "max_words"),
        ({"scorer": "levenshtein"}, "scorer"),
    ],
)
def test_bad_repair_options_are_refused(kwargs, words):
    with pytest.raises(ValueError, match=words):
        WordRepairOptions(**kwargs)


def test_misspellings():
    rng = np.random.default_rng(0)
    dropped = misspell("zapatilla", "drop", rng)
    assert len(dropped) == 8 and dropped[0] == "z"
    swapped = misspell("polera", "swap", rng)
    assert sorted(swapped) == sorted("polera") and swapped != "polera" and swapped[0] == "p"
    assert misspell("pantalón", "accent", rng) == "pantalon" and misspell("polera", "accent", rng) is None
    assert misspell("zapatilla", "ll/y", rng) == "zapatiya"
    assert misspell("vestido", "b/v", rng) == "bestido" and misspell("azul", "s/z", rng) == "asul"
    assert misspell("top", "drop", rng) is None
    with pytest.raises(ValueError, match="unknown misspelling"):
        misspell("polera", "typo", rng)


def test_repair_cases_are_misspelt_vocabulary_words(vocab):
    cases = repair_cases(vocab)
    assert cases and all(typed not in vocab and word in vocab for typed, word in cases)


def test_ranking_metrics():
    relevant = np.array([True, False, True, False])
    assert ranking_metrics(np.array([0.9, 0.8, 0.7, 0.0]), relevant, k=2) == (0.5, pytest.approx((1 + 2 / 3) / 2))
    assert ranking_metrics(np.zeros(4), relevant, k=2) == (0.0, 0.0)  # nothing returned, nothing found


def test_query_lexicon_matches_the_demo_titles_and_palette():
    lexicon = query_lexicon()
    assert set(lexicon["colours"]) == {c.masculine for c in PALETTE}
    for colour in PALETTE:
        assert lexicon["colours"][colour.masculine] == {"f": colour.feminine, "en": colour.english}
    for category, words in lexicon["categories"].items():
        nouns = [[n.text.lower(), n.gender] for n in MAIN_STORE.categories[category].nouns]
        assert [words["es"], *words["synonyms"]] == nouns
    main_words = {fold(w) for cw in MAIN_STORE.categories.values() for n in cw.nouns for w in n.text.split()}
    assert not main_words & {fold(w) for w in lexicon["unknown_words"]}


def test_text_queries_cover_every_kind():
    queries = text_queries([("Sneaker", "rojo"), ("Trouser", "azul marino"), ("Unknown", "rojo")])
    assert {q.kind for q in queries} == {"spanish", "english", "synonym", "misspelled"}
    assert {(q.category, q.colour) for q in queries} == {("Sneaker", "rojo"), ("Trouser", "azul marino")}
    spanish = [q.text for q in queries if q.kind == "spanish"]
    assert spanish == ["zapatilla roja", "pantalón azul marino"]
    misspelt = [q.text for q in queries if q.kind == "misspelled"]
    assert all(m != s for m, s in zip(misspelt, spanish))
    assert text_queries([("Sneaker", "rojo")]) == text_queries([("Sneaker", "rojo")])  # deterministic
    with pytest.raises(ValueError, match="no held-out product"):
        text_queries([("Unknown", "rojo")])


def test_titles_are_deterministic_and_name_the_colour():
    colour = PALETTE[4]  # rojo / roja
    for store in (MAIN_STORE, SECOND_STORE):
        first = [
            draw_title(
                np.random.default_rng(3),
                store,
                "Sneaker",
                colour_masculine=colour.masculine,
                colour_feminine=colour.feminine,
                colour_english=colour.english,
            )
            for _ in range(2)
        ]
        assert first[0] == first[1]
    rng = np.random.default_rng(5)
    for _ in range(200):
        title = draw_title(
            rng, MAIN_STORE, "Trouser", colour_masculine="rojo", colour_feminine="roja", colour_english="red"
        )
        words = title.text.split()
        assert words[0] in {n.text for n in MAIN_STORE.categories["Trouser"].nouns}
        assert "Rojo" in words or "Roja" in words
        assert not title.brand or title.brand in title.text
    with pytest.raises(ValueError, match="unknown store"):
        get_store("third")


def test_second_store_is_test_products_with_its_own_words(tmp_path):
    main_csv = write_demo_catalog(tmp_path / "main", limit_train=40, limit_test=TINY_TEST)
    second_csv = write_demo_catalog(tmp_path / "second", limit_train=40, limit_test=TINY_TEST, store="second")
    with main_csv.open(encoding="utf-8") as f:
        main = list(csv.DictReader(f))
    with second_csv.open(encoding="utf-8") as f:
        second = list(csv.DictReader(f))
    assert len(second) == TINY_TEST and {r["split"] for r in second} == {"test"}
    assert all(r["id"].startswith("S2-TE-") for r in second)
    main_vocab = Vocabulary.from_texts((r["title"] for r in main), (r["brand"] for r in main))
    second_vocab = Vocabulary.from_texts((r["title"] for r in second), (r["brand"] for r in second))
    only_second = set(second_vocab.words) - set(main_vocab.words)
    assert len(only_second) > 20  # its own synonyms, English words and misspellings
    assert {r["brand"] for r in main if r["brand"]}.isdisjoint({r["brand"] for r in second if r["brand"]})
    colours = {c.masculine for c in PALETTE}
    assert {r["color"] for r in second} <= colours
