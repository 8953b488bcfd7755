"""``vitrina eval --task text``: text search quality on held-out products, and word repair compared.

**Queries** (:func:`text_queries`): one per (category, colour) pair of the
bundle's test-split products and per kind:

* ``spanish``: the category's main noun and the colour, agreeing (``"zapatilla roja"``);
* ``english``: English colour and noun (``"red sneaker"``);
* ``synonym``: another Spanish noun of the category (``"tenis rojo"``);
* ``misspelled``: the Spanish query with each word misspelt one way
  (dropped or swapped letters, lost accents, b/v, s/z, ll/y; :mod:`~vitrina.runtime.misspell`).

The words come from ``text_queries.json`` (the Fashion-MNIST demo catalog's
category nouns and colours, kept in step with the demo titles). A product is
relevant when it has the query's category and colour; the gallery is the
test-split products only. Metrics per kind: P@10 (missing places count as
misses) and mAP over the ranked products (a product the search does not return
is never found). Methods: ``keyword`` (:meth:`ProductSearch.by_text`'s ranking
after this runtime's word repair), ``keyword, study repair`` (the same
ranking after the study's repair, difflib >= 0.95) and, with the text-visual
model at each precision, ``text-visual`` (the model's text branch alone) and
``hybrid`` (keyword match first, then the model: the default ranking).

**Word repair** (:func:`compare_word_repair`): each scorer's share of
generated misspellings of vocabulary words repaired right, repaired wrong, the
share of unknown words (``unknown_words`` in the JSON) wrongly mapped to a
vocabulary word, and microseconds per word.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .bundle import Bundle
from .misspell import MISSPELLINGS, misspell
from .text import (
    DEFAULT_MIN_SIMILARITY,
    STUDY_MIN_SIMILARITY,
    Vocabulary,
    WordRepair,
    WordRepairOptions,
    fold,
    is_noise,
)

QUERY_KINDS = ("spanish", "english", "synonym", "misspelled")
QUERIES_FILE = Path(__file__).with_name("text_queries.json")
#: Seed of the query set (synonym picks and misspellings).
TEXT_EVAL_SEED = 13
_TIMING_RUNS = 5


@lru_cache(maxsize=1)
def query_lexicon() -> dict[str, Any]:
    """The query words of ``text_queries.json``: ``categories``, ``colours``, ``unknown_words``."""
    return json.loads(QUERIES_FILE.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class TextQuery:
    """One eval query: its text, kind, and the category and colour (masculine name) relevant products have."""

    text: str
    kind: str
    category: str
    colour: str


def text_queries(pairs: list[tuple[str, str]], seed: int = TEXT_EVAL_SEED) -> list[TextQuery]:
    """Queries of every kind for each (category, colour) pair the lexicon knows, in pair order.

    Raises:
        ValueError: no pair has a category and colour the lexicon knows.
    """
    lexicon = query_lexicon()
    cats, cols = lexicon["categories"], lexicon["colours"]
    rng = np.random.default_rng(seed)
    queries: list[TextQuery] = []
    kinds = list(MISSPELLINGS)
    for category, colour in pairs:
        if category not in cats or colour not in cols:
            continue
        words, c = cats[category], cols[colour]
        noun, gender = words["es"]
        spanish = f"{noun} {c['f'] if gender == 'f' else colour}"
        queries.append(TextQuery(spanish, "spanish", category, colour))
        queries.append(TextQuery(f"{c['en']} {words['en'][0]}", "english", category, colour))
        if words["synonyms"]:
            syn, syn_gender = words["synonyms"][int(rng.integers(len(words["synonyms"])))]
            queries.append(TextQuery(f"{syn} {c['f'] if syn_gender == 'f' else colour}", "synonym", category, colour))
        typed = []
        for word in spanish.split():
            for _ in range(len(kinds)):  # the first kind (from a random start) that applies to the word
                kind = kinds[int(rng.integers(len(kinds)))]
                wrong = misspell(word, kind, rng)
                if wrong is not None:
                    break
            typed.append(wrong if wrong is not None else word)
        queries.append(TextQuery(" ".join(typed), "misspelled", category, colour))
    if not queries:
        raise ValueError(
            "no held-out product has a category and colour the text query set knows "
            f"({QUERIES_FILE.name} covers the Fashion-MNIST demo catalog)"
        )
    return queries


@dataclass(frozen=True)
class KindMetrics:
    """Averages over one kind's queries: ``p_at_10`` and ``map`` in [0, 1]; ``empty``: queries with no known word left."""

    queries: int
    p_at_10: float
    map: float
    empty: int

    def to_json(self) -> dict[str, float | int]:
        return {
            "queries": self.queries,
            "p_at_10": round(self.p_at_10, 4),
            "map": round(self.map, 4),
            "empty": self.empty,
        }


@dataclass(frozen=True)
class RepairMetrics:
    """One word-repair method on generated misspellings.

    Attributes: method (scorer, threshold, rules); right / wrong: shares of the
    misspellings repaired to their word / to another word; false_map: share of
    unknown words mapped to a vocabulary word; us_per_word: microseconds per word
    (wall clock, one run: compare methods as ratios); words, unknown: test sizes.
    """

    method: str
    right: float
    wrong: float
    false_map: float
    us_per_word: float
    words: int
    unknown: int

    def to_json(self) -> dict[str, float | int | str]:
        return {
            "method": self.method,
            "right": round(self.right, 4),
            "wrong": round(self.wrong, 4),
            "false_map": round(self.false_map, 4),
            "us_per_word": round(self.us_per_word, 1),
            "words": self.words,
            "unknown": self.unknown,
        }


@dataclass(frozen=True)
class TextEvalReport:
    """Attributes: gallery (held-out products), methods → kind → :class:`KindMetrics`, repair rows, examples."""

    gallery: int
    methods: dict[str, dict[str, KindMetrics]]
    repair: tuple[RepairMetrics, ...]
    examples: dict[str, str]

    def to_json(self) -> dict[str, object]:
        return {
            "gallery": self.gallery,
            "methods": {m: {k: v.to_json() for k, v in kinds.items()} for m, kinds in self.methods.items()},
            "word_repair": [r.to_json() for r in self.repair],
            "examples": self.examples,
        }


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray, k: int = 10) -> tuple[float, float]:
    """(P@k, AP) of one query: ``scores`` (M,) higher is better, only > 0 counts as returned;
    ``relevant`` (M,) bool. Ties keep gallery order (as the search does)."""
    order = np.argsort(-scores, kind="stable")
    order = order[scores[order] > 0]
    hits = relevant[order]
    p_at_k = float(hits[:k].sum()) / k
    total = int(relevant.sum())
    if total == 0 or not hits.any():
        return p_at_k, 0.0
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return p_at_k, float((precision * hits).sum() / total)


def evaluate_text(bundle: Bundle, *, seed: int = TEXT_EVAL_SEED, repair: bool = True) -> TextEvalReport:
    """Keyword text search on the held-out products, by query kind; plus the word-repair comparison."""
    from .product_search import ProductSearch

    test = np.array([i for i, item in enumerate(bundle.items) if item.split == "test"], dtype=np.int64)
    if len(test) == 0:
        raise ValueError(f"bundle {bundle.path} has no test-split products to evaluate text search on")
    cats = np.array([bundle.items[i].category for i in test])
    cols = np.array([bundle.items[i].color for i in test])
    pairs = list(dict.fromkeys(zip(cats.tolist(), cols.tolist())))
    queries = text_queries(pairs, seed)
    relevant = {(c, k): (cats == c) & (cols == k) for c, k in pairs}
    methods: dict[str, dict[str, KindMetrics]] = {}
    examples: dict[str, str] = {}
    engine = ProductSearch.create_from_bundle(bundle)
    keyword: list[np.ndarray] = []  # each query's keyword scores after the default repair, for hybrid
    try:
        for method, options in SEARCH_METHODS.items():
            repairer = WordRepair.create_from_vocabulary(bundle.vocabulary, options)
            per_kind: dict[str, list[tuple[float, float, bool]]] = {k: [] for k in QUERY_KINDS}
            for q in queries:
                words = repairer.normalize(q.text)
                scores = engine.keyword_scores(words.words)[test] if not words.empty else np.zeros(len(test))
                if method == "keyword":
                    keyword.append(scores)
                p10, ap = ranking_metrics(scores, relevant[q.category, q.colour])
                per_kind[q.kind].append((p10, ap, words.empty))
                examples.setdefault(q.kind, q.text)
            per_kind["all"] = [r for rows in per_kind.values() for r in rows]
            methods[method] = {kind: _average(rows) for kind, rows in per_kind.items() if rows}
    finally:
        engine.close()
    methods |= _text_visual_methods(bundle, queries, test, relevant, examples, keyword=keyword)
    comparison = compare_word_repair(bundle.vocabulary, seed=seed) if repair else ()
    return TextEvalReport(len(test), methods, comparison, examples)


def _text_visual_methods(
    bundle: Bundle,
    queries: list[TextQuery],
    test: np.ndarray,
    relevant: dict[tuple[str, str], np.ndarray],
    examples: dict[str, str],
    *,
    keyword: list[np.ndarray],
) -> dict[str, dict[str, KindMetrics]]:
    """``text-visual <precision>`` and ``hybrid <precision>`` rows (empty without the model): the
    query's words (this runtime's repair) through the text branch, ranked by cosine with the
    held-out products' text-visual codes (every product ranked; a query with no word the model
    knows finds none), or by :func:`~vitrina.runtime.text_visual_search.hybrid_scores` with
    ``keyword`` ((T,) scores of each query, in query order) as ``ProductSearch.by_text`` does
    (keyword alone when the model knows no word)."""
    from .text_visual import TextVisualOptions
    from .text_visual_search import TextVisualSearch, hybrid_scores

    if not TextVisualSearch.available(bundle):
        return {}
    repairer = WordRepair.create_from_vocabulary(bundle.vocabulary)
    methods: dict[str, dict[str, KindMetrics]] = {}
    for precision in ("int8", "float"):
        with TextVisualSearch.create_from_bundle(bundle, TextVisualOptions(precision=precision)) as tv:
            rows: dict[str, dict[str, list[tuple[float, float, bool]]]] = {
                m: {k: [] for k in QUERY_KINDS} for m in ("text-visual", "hybrid")
            }
            for q, kw in zip(queries, keyword, strict=True):
                words = repairer.normalize(q.text).words
                empty = not tv.known(words)
                cosine = None if empty else tv.text_scores(words)[test]
                # cosines shifted into (0, 2]: ranking_metrics counts only scores > 0 as returned
                alone = np.zeros(len(test)) if cosine is None else cosine + 1.0 + 1e-6
                hybrid = kw if cosine is None else hybrid_scores(kw, cosine)
                for method, scores, none in (("text-visual", alone, empty), ("hybrid", hybrid, empty and not kw.any())):
                    p10, ap = ranking_metrics(scores, relevant[q.category, q.colour])
                    rows[method][q.kind].append((p10, ap, none))
                examples.setdefault(q.kind, q.text)
            for method, per_kind in rows.items():
                per_kind["all"] = [r for kind_rows in per_kind.values() for r in kind_rows]
                methods[f"{method} {precision}"] = {kind: _average(r) for kind, r in per_kind.items() if r}
    return methods


def _average(rows: list[tuple[float, float, bool]]) -> KindMetrics:
    """Mean P@10 and AP of (p10, ap, empty) rows, and how many queries had no word left."""
    return KindMetrics(
        len(rows), float(np.mean([r[0] for r in rows])), float(np.mean([r[1] for r in rows])), sum(r[2] for r in rows)
    )


#: Text search methods measured: keyword ranking with this runtime's word repair, and with the study's.
SEARCH_METHODS = {"keyword": WordRepairOptions(), "keyword, study repair": WordRepairOptions.study()}

#: Methods :func:`compare_word_repair` measures: the study's, the study's scorer with our rules, ours.
REPAIR_METHODS = {
    "difflib >= 0.95 (study)": WordRepairOptions.study(),
    "difflib >= 0.95 + rules": WordRepairOptions(scorer="difflib", min_similarity=STUDY_MIN_SIMILARITY),
    "difflib >= 0.85 + rules": WordRepairOptions(scorer="difflib", min_similarity=0.85),
    "jaro-winkler >= 0.95": WordRepairOptions(min_similarity=0.95, rules=False),
    f"jaro-winkler >= {DEFAULT_MIN_SIMILARITY} + rules (default)": WordRepairOptions(),
}


def repair_cases(vocabulary: Vocabulary, seed: int = TEXT_EVAL_SEED) -> list[tuple[str, str]]:
    """(misspelt word, vocabulary word) for every vocabulary word of 4+ letters and each misspelling
    that applies to it and gives a word the vocabulary does not hold."""
    rng = np.random.default_rng(seed + 1)
    cases = []
    for word in vocabulary.words:
        if len(word) < 4 or is_noise(word):
            continue
        for kind in MISSPELLINGS:
            wrong = misspell(word, kind, rng)
            if wrong is not None and fold(wrong) not in vocabulary:
                cases.append((fold(wrong), word))
    return cases


def compare_word_repair(vocabulary: Vocabulary, *, seed: int = TEXT_EVAL_SEED) -> tuple[RepairMetrics, ...]:
    """Each of :data:`REPAIR_METHODS` on :func:`repair_cases` and on the lexicon's unknown words."""
    cases = repair_cases(vocabulary, seed)
    unknown = [w for w in query_lexicon()["unknown_words"] if fold(w) not in vocabulary]
    rows = []
    for name, options in REPAIR_METHODS.items():
        WordRepair.create_from_vocabulary(vocabulary, options).repair("warmup")  # imports, lazy tables
        seconds = float("inf")
        for _ in range(_TIMING_RUNS):  # the fastest of a few runs: the machine is shared and noisy
            repair = WordRepair.create_from_vocabulary(vocabulary, options)  # a fresh word cache each run
            t0 = time.perf_counter()
            got = [repair.repair(typed) for typed, _ in cases]
            mapped = [repair.repair(fold(w)) for w in unknown]
            seconds = min(seconds, time.perf_counter() - t0)
        n = max(1, len(cases))
        rows.append(
            RepairMetrics(
                method=name,
                right=sum(g == want for g, (_, want) in zip(got, cases)) / n,
                wrong=sum(g is not None and g != want for g, (_, want) in zip(got, cases)) / n,
                false_map=sum(m is not None for m in mapped) / max(1, len(unknown)),
                us_per_word=seconds / max(1, len(cases) + len(unknown)) * 1e6,
                words=len(cases),
                unknown=len(unknown),
            )
        )
    return tuple(rows)


def format_report(report: TextEvalReport) -> str:
    """The two tables as plain text."""
    lines = [f"text search on {report.gallery} held-out products (relevant = same category and colour)"]
    kinds = [k for k in (*QUERY_KINDS, "all") if k in next(iter(report.methods.values()))]
    lines.append(f"{'method':22} {'kind':11} {'queries':>7} {'P@10':>7} {'mAP':>7} {'no word':>8}  example")
    for method, per_kind in report.methods.items():
        for kind in kinds:
            m = per_kind[kind]
            example = report.examples.get(kind, "")
            lines.append(f"{method:22} {kind:11} {m.queries:7d} {m.p_at_10:7.4f} {m.map:7.4f} {m.empty:8d}  {example}")
    if report.repair:
        r0 = report.repair[0]
        lines.append("")
        lines.append(f"word repair on {r0.words} generated misspellings and {r0.unknown} unknown words")
        lines.append(f"{'method':44} {'right':>7} {'wrong':>7} {'false map':>9} {'us/word':>8}")
        for r in report.repair:
            lines.append(f"{r.method:44} {r.right:7.4f} {r.wrong:7.4f} {r.false_map:9.4f} {r.us_per_word:8.1f}")
    return "\n".join(lines)
