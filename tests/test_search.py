import numpy as np
import pytest

from vitrina.runtime.bundle import Item
from vitrina.runtime.search import Searcher, SearchOptions, to_results


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
