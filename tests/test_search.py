import numpy as np
import pytest

from vitrina.runtime.bundle import Item
from vitrina.runtime.codes import SignHasher, pairwise_scores
from vitrina.runtime.search import (
    DEFAULT_K,
    CatalogIndex,
    Match,
    RerankSearcher,
    Searcher,
    SearcherOptions,
    SearchOptions,
    shortlist_rows,
    to_results,
)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def reference(queries, codes, code_items, n_items, k):
    """Plain per-query loop: best score per product, sort by (-score, id)."""
    out = []
    for q in queries:
        best = {}
        for row, item in enumerate(code_items):
            s = float(codes[row] @ q)
            best[item] = max(best.get(item, -np.inf), s)
        out.append(sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k])
    return out


def test_matches_brute_force_reference_allowing_for_ties():
    rng = np.random.default_rng(0)
    codes = unit(rng.normal(size=(300, 16)))
    codes[10] = codes[20]  # an exact tie between products 10 and 20
    queries = unit(rng.normal(size=(40, 16)))
    queries[0] = codes[10]
    searcher = Searcher(codes, np.arange(300), 300)
    scores, ids = searcher.search(queries, SearchOptions(k=7))
    assert scores.shape == ids.shape == (40, 7) and ids.dtype == np.int64
    for q, expected in enumerate(reference(queries, codes, np.arange(300), 300, 7)):
        np.testing.assert_allclose(scores[q], [s for _, s in expected], rtol=1e-5, atol=1e-6)
        # ids may differ only inside groups of equal score
        for i, (item, s) in zip(ids[q], expected):
            assert i == item or np.isclose(codes[i] @ queries[q], s, atol=1e-6)
    assert set(ids[0, :2]) == {10, 20}


def test_several_images_per_product_count_once_at_best_score():
    rng = np.random.default_rng(1)
    codes = unit(rng.normal(size=(60, 8)))
    code_items = np.repeat(np.arange(20), 3)
    queries = unit(rng.normal(size=(5, 8)))
    scores, ids = Searcher(codes, code_items, 20).search(queries, SearchOptions(k=20))
    for q, expected in enumerate(reference(queries, codes, code_items, 20, 20)):
        assert ids[q].tolist() == [i for i, _ in expected]
        assert len(set(ids[q].tolist())) == 20


def test_padding_when_fewer_products_than_k():
    codes = unit(np.eye(3, 4) + 0.01)
    code_items = np.array([0, 1, 3])  # product 2 has no image
    scores, ids = Searcher(codes, code_items, 4).search(codes[:1], SearchOptions(k=6))
    assert ids[0].tolist()[3:] == [-1, -1, -1]
    assert np.isneginf(scores[0, 3:]).all() and 2 not in ids[0]


@pytest.mark.parametrize("k", [0, -1, 2.5])
def test_bad_k(k):
    with pytest.raises(ValueError, match="k must be an integer >= 1"):
        SearchOptions(k=k)


def test_query_dims_checked():
    searcher = Searcher(unit(np.ones((2, 4))), np.arange(2), 2)
    with pytest.raises(ValueError, match="queries must be \\(n, 4\\)"):
        searcher.search(np.ones((1, 5), np.float32))


def test_results_carry_product_fields():
    items = (Item("A", "Polera roja", "T-shirt/top", "rojo", 9990.0), Item("B", "Bolso negro", "Bag", "negro", 19990.0))
    codes = unit(np.array([[1.0, 0.0], [0.6, 0.8]]))
    scores, ids = Searcher(codes, np.arange(2), 2).search(np.array([[0.0, 1.0]], np.float32), SearchOptions(k=5))
    (result,) = to_results(scores, ids, items)
    assert [m.id for m in result.matches] == ["B", "A"]
    assert result.matches[0].title == "Bolso negro" and result.matches[0].score == pytest.approx(0.8)


def test_results_are_built_by_keyword():
    items = (Item("A", "Polera roja", "T-shirt/top", "rojo", 9990.0),)
    (result,) = to_results(np.array([[0.5]], np.float32), np.array([[0]]), items)
    assert result.matches == (
        Match(item=0, id="A", title="Polera roja", category="T-shirt/top", color="rojo", price=9990.0, score=0.5),
    )


def test_one_default_k():
    assert SearcherOptions().k == DEFAULT_K and SearchOptions is SearcherOptions
    searcher = Searcher(unit(np.eye(DEFAULT_K + 5)), np.arange(DEFAULT_K + 5), DEFAULT_K + 5)
    assert searcher.search(np.eye(DEFAULT_K + 5, dtype=np.float32)[:1])[1].shape == (1, DEFAULT_K)
    assert Searcher(unit(np.eye(4)), np.arange(4), 4, options=SearcherOptions(k=2)).search(np.eye(4)[:1])[1].shape == (
        1,
        2,
    )


# --- dtype policy (faiss's): floats are converted, binary codes are never cast ---------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int8])
def test_hamming_index_refuses_queries_that_are_not_packed_uint8(dtype):
    codes = np.random.default_rng(0).integers(0, 256, size=(20, 8), dtype=np.uint8)
    searcher = Searcher(codes, np.arange(20), 20, "hamming")
    with pytest.raises(ValueError, match=f"packed uint8 queries.*got {np.dtype(dtype).name}"):
        searcher.search(codes[:2].astype(dtype))
    scores, ids = searcher.search(codes[:2])  # packed uint8 is fine
    assert ids[:, 0].tolist() == [0, 1] and (scores[:, 0] == 0).all()


def test_hamming_index_refuses_float_codes_and_float_index_converts_floats():
    with pytest.raises(ValueError, match="packed uint8 codes, got float32"):
        Searcher(np.zeros((3, 8), np.float32), np.arange(3), 3, "hamming")
    codes = unit(np.random.default_rng(1).normal(size=(30, 8)))
    searcher = Searcher(codes, np.arange(30), 30)
    s64, i64 = searcher.search(codes[:3].astype(np.float64))
    s32, i32 = searcher.search(codes[:3])
    np.testing.assert_array_equal(i64, i32)
    np.testing.assert_array_equal(s64, s32)
    assert s64.dtype == np.float32


def test_pairwise_hamming_scores_refuse_floats():
    codes = np.zeros((3, 8), np.uint8)
    with pytest.raises(ValueError, match="packed uint8 bits, got float32 queries and uint8 codes"):
        pairwise_scores(np.zeros((1, 8), np.float32), codes, "hamming")
    assert pairwise_scores(np.full((1, 8), 255, np.uint8), codes, "hamming").tolist() == [[-64.0] * 3]


# --- widening: quantised ints never meet arithmetic in their own dtype ------------------------------


def test_int8_rerank_codes_are_widened_before_the_product():
    # 127 · 127 · 32 overflows int8 and int16; the re-rank must score in float32
    rerank = np.full((4, 32), 127, np.int8)
    rerank[1] = -128
    compact = Searcher(unit(np.eye(4, 4) + 0.1), np.arange(4), 4)
    query = np.full((1, 32), 1 / np.sqrt(32), np.float32)
    scores, ids = RerankSearcher(compact, rerank, scale=1 / (127 * np.sqrt(32)), shortlist=4).search(
        compact.codes[:1], query, SearchOptions(k=4)
    )
    assert (
        ids[0, -1] == 1
        and scores[0, 0] == pytest.approx(1.0, abs=1e-6)
        and scores[0, -1] == pytest.approx(-128 / 127, abs=1e-6)
    )


def test_float16_codes_are_widened_for_l2():
    codes = np.array([[300.0, 300.0], [0.0, 0.0]], np.float16)  # 300² · 2 overflows float16 (max 65504)
    scores, ids = Searcher(codes, np.arange(2), 2, "l2").search(
        np.array([[-300.0, -300.0]], np.float32), SearchOptions(k=2)
    )
    assert ids[0].tolist() == [1, 0] and np.isfinite(scores).all() and scores[0, 1] == pytest.approx(-720000.0)


# --- the re-rank, vectorised over the batch, ranks exactly as the per-query loop did ------------------


def rerank_reference(rerank: RerankSearcher, codes: np.ndarray, embeddings: np.ndarray, k: int):
    """The per-query loop RerankSearcher.search ran before it was vectorised (kept verbatim)."""
    codes = rerank.compact.check_queries(codes)
    embeddings = np.asarray(embeddings, dtype=np.float32).reshape(len(codes), -1)
    scores = np.full((len(codes), k), -np.inf, dtype=np.float32)
    ids = np.full((len(codes), k), -1, dtype=np.int64)
    for q in range(len(codes)):
        rows = np.sort(shortlist_rows(rerank.compact.row_scores(codes[q : q + 1])[0], rerank.shortlist))
        cosine = (np.asarray(rerank.rerank_codes[rows], dtype=np.float32) @ embeddings[q]) * rerank.scale
        best: dict[int, float] = {}
        for item, score in zip(rerank.compact.code_items[rows].tolist(), cosine.tolist()):
            if score > best.get(item, -np.inf):
                best[item] = score
        ranked = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
        for j, (item, score) in enumerate(ranked):
            ids[q, j], scores[q, j] = item, score
    return scores, ids


def _rerank_case(metric: str, n_rows: int, per_item: int, ties: bool, seed: int):
    rng = np.random.default_rng(seed)
    full = rng.normal(size=(n_rows, 24)).astype(np.float32)
    if ties:  # duplicated rows: equal scores across products and within one product
        full[1::7] = full[0]
    rerank_codes = np.clip(np.round(full / np.abs(full).max() * 127), -127, 127).astype(np.int8)
    if metric == "hamming":
        hasher = SignHasher(
            np.zeros(24, np.float32), rng.normal(size=(24, 64)).astype(np.float32), np.zeros(64, np.float32)
        )
        compact_codes, reduce = hasher(full), hasher
    else:
        proj = rng.normal(size=(24, 6)).astype(np.float32)
        compact_codes, reduce = (full @ proj).astype(np.float16), (lambda x: x @ proj)
    code_items = rng.permutation(np.repeat(np.arange(n_rows // per_item + 1), per_item)[:n_rows])
    searcher = Searcher(compact_codes, code_items, int(code_items.max()) + 2, metric)  # the last product has no row
    queries = unit(full[rng.choice(n_rows, 37)] + rng.normal(scale=0.3, size=(37, 24)).astype(np.float32))
    return searcher, rerank_codes, queries, reduce


@pytest.mark.parametrize("metric", ["hamming", "l2"])
@pytest.mark.parametrize("shortlist, k", [(40, 10), (40, 60), (1000, 25), (1, 3)])
@pytest.mark.parametrize("per_item, ties", [(1, False), (3, True)])
def test_vectorised_rerank_equals_the_per_query_loop(metric, shortlist, k, per_item, ties):
    searcher, rerank_codes, queries, reduce = _rerank_case(metric, 300, per_item, ties, seed=shortlist + k + per_item)
    two = RerankSearcher(searcher, rerank_codes, scale=0.01, shortlist=shortlist)
    codes = reduce(queries)
    scores, ids = two.search(codes, queries, SearchOptions(k=k))
    ref_scores, ref_ids = rerank_reference(two, codes, queries, k)
    np.testing.assert_array_equal(ids, ref_ids)  # exact, ties broken by product index
    np.testing.assert_array_equal(scores, ref_scores)
    # one query at a time gives the same rows (what the CLI and the kiosk do)
    for q in range(0, len(queries), 9):
        one_scores, one_ids = two.search(codes[q : q + 1], queries[q : q + 1], SearchOptions(k=k))
        np.testing.assert_array_equal(one_ids[0], ids[q])
        np.testing.assert_array_equal(one_scores[0], scores[q])


def test_catalog_index_reranks_through_the_reducer():
    searcher, rerank_codes, queries, reduce = _rerank_case("hamming", 120, 2, True, seed=5)
    index = CatalogIndex(reduce, searcher, RerankSearcher(searcher, rerank_codes, 0.01, 30))
    scores, ids = index.search(queries, SearchOptions(k=8))
    ref_scores, ref_ids = rerank_reference(index.rerank, reduce(queries), queries, 8)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(scores, ref_scores)


def test_closed_searcher_says_so():
    with Searcher(unit(np.ones((2, 4))), np.arange(2), 2) as searcher:
        searcher.search(np.ones((1, 4), np.float32))
    assert searcher.closed
    with pytest.raises(ValueError, match="cosine Searcher over 2 code rows is closed"):
        searcher.search(np.ones((1, 4), np.float32))
    searcher.close()  # twice is harmless


@pytest.mark.parametrize("metric", ["hamming", "l2"])
@pytest.mark.parametrize("rerank, ties", [(True, False), (True, True), (False, False)])
def test_search_deep_ranks_as_search_and_lists_the_shortlist_from_one_scan(metric, rerank, ties):
    searcher, rerank_codes, queries, reduce = _rerank_case(metric, 300, 3 if ties else 1, ties, seed=5)
    two = RerankSearcher(searcher, rerank_codes, scale=0.01, shortlist=40) if rerank else None
    index = CatalogIndex(reduce, searcher, two)
    kept_items = np.arange(searcher.n_items) % 3 != 0
    keep = searcher.row_filter(kept_items)
    scans = []
    original = searcher.shortlist

    def counted(*args, **kwargs):
        scans.append(args[1])
        return original(*args, **kwargs)

    searcher.shortlist = counted  # type: ignore[method-assign]
    for within in (None, keep):
        for query in queries[:6]:
            scans.clear()
            scores, ids, rows = index.search_deep(query, k=12, n=120, within=within)
            assert len(scans) == 1  # the re-rank reads its shortlist from the same scan's rows
            want_scores, want_ids = index.search(query, SearchOptions(k=12), within=within)
            np.testing.assert_array_equal(ids, want_ids[0])
            np.testing.assert_array_equal(scores, want_scores[0])
            codes = searcher.check_queries(reduce(query[None]))
            np.testing.assert_array_equal(rows, original(codes, 120, within=within)[0])
            assert within is None or kept_items[searcher.code_items[rows[rows >= 0]]].all()
    with pytest.raises(ValueError, match="n must be >= 1"):
        index.search_deep(queries[0], k=5, n=0)
