"""The catalog-scale scan (runtime/scan.py) and the Searcher on it, against a brute-force
reference: random and adversarial data (all-equal codes, duplicates, k > n, k = n, an empty
catalog, everything filtered out), every metric and dtype, filters, threads, parts."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vitrina.runtime.scan import BLOCK_ROWS, FLOAT_BLOCK_BYTES, CodeScan, RowFilter
from vitrina.runtime.search import Searcher, SearcherOptions


def brute_force(codes: np.ndarray, queries: np.ndarray, metric: str, k: int, mask=None):
    """float64 distances of every row, sorted by (distance, row); (inf, -1) padding."""
    if metric == "hamming":
        d = np.unpackbits(codes[None] ^ queries[:, None], axis=2).sum(axis=2).astype(np.float64)
    elif metric == "l2":
        diff = codes.astype(np.float64)[None] - queries.astype(np.float64)[:, None]
        d = (diff**2).sum(axis=2)
    else:
        d = -(queries.astype(np.float64) @ codes.astype(np.float64).T)
    d = d.reshape(len(queries), len(codes))
    if mask is not None:
        d[:, ~mask] = np.inf
    order = np.lexsort((np.broadcast_to(np.arange(len(codes)), d.shape), d), axis=1)[:, :k]
    dist = np.take_along_axis(d, order, axis=1)
    order[~np.isfinite(dist)] = -1
    pad = k - dist.shape[1]
    return np.pad(dist, ((0, 0), (0, pad)), constant_values=np.inf), np.pad(
        order, ((0, 0), (0, pad)), constant_values=-1
    )


def assert_same_knn(dist, ids, ref_dist, ref_ids, exact_ids: bool, tol: float = 1e-3):
    """Tie-aware (faiss contrib.evaluation style): distances equal rank by rank; ids equal, or,
    for float codes, differing only among (near-)equal distances."""
    np.testing.assert_allclose(dist, ref_dist, rtol=tol, atol=tol)
    assert ((ids == -1) == (ref_ids == -1)).all()
    if exact_ids:
        np.testing.assert_array_equal(ids, ref_ids)
        return
    for q in range(len(ids)):
        finite = np.isfinite(ref_dist[q])
        if not finite.any():
            continue
        last = ref_dist[q][finite].max()
        # every row clearly better than the last one kept must be in both lists
        clear = set(ref_ids[q][finite & (ref_dist[q] < last - tol)].tolist())
        assert clear <= set(ids[q].tolist())


def make(metric: str, dtype, n: int, width: int, rng, kind: str):
    if metric == "hamming":
        codes = rng.integers(0, 256, (n, width), dtype=np.uint8)
        queries = rng.integers(0, 256, (3, width), dtype=np.uint8)
    else:
        codes = rng.normal(size=(n, width)).astype(dtype)
        queries = rng.normal(size=(3, width)).astype(np.float32)
    if kind == "all-equal" and n:
        codes[:] = codes[0]
    elif kind == "duplicates" and n > 3:
        codes[1::3] = codes[0]
        queries[0] = codes[0]
    return codes, queries


CASES = [
    ("hamming", np.uint8, 8),
    ("hamming", np.uint8, 32),
    ("hamming", np.uint8, 3),
    ("l2", np.float16, 8),
    ("l2", np.float32, 4),
    ("l2", np.float16, 64),
    ("ip", np.float32, 16),
    ("ip", np.float16, 8),
    ("hamming", np.uint8, 16),
    ("hamming", np.uint8, 33),  # 264 bits: byte words, uint16 distances
]


@pytest.mark.parametrize("metric, dtype, width", CASES)
@pytest.mark.parametrize("kind", ["random", "all-equal", "duplicates"])
@pytest.mark.parametrize("n, k", [(0, 3), (1, 1), (5, 9), (40, 40), (3000, 7), (3000, 1)])
def test_scan_matches_brute_force(metric, dtype, width, kind, n, k):
    rng = np.random.default_rng(n * 7 + k + width)
    codes, queries = make(metric, dtype, n, width, rng, kind)
    scan = CodeScan([codes[: n // 3], codes[n // 3 :]], metric, block_rows=512)  # two parts, small blocks
    ref = brute_force(codes, queries, metric, k)
    for threads in (1, 2):
        dist, ids = scan.search(queries, k, threads=threads)
        assert dist.shape == ids.shape == (3, k) and ids.dtype == np.int64 and dist.dtype == np.float32
        assert_same_knn(dist, ids, *ref, exact_ids=metric == "hamming")


@pytest.mark.parametrize("metric, dtype, width", CASES[:5])
@pytest.mark.parametrize("share", [0.0, 0.02, 0.3, 0.9, 1.0])
def test_filters_apply_during_the_scan(metric, dtype, width, share):
    rng = np.random.default_rng(int(share * 100) + width)
    codes, queries = make(metric, dtype, 5000, width, rng, "random")
    mask = rng.random(5000) < share
    keep = RowFilter.from_mask(mask)
    scan = CodeScan([codes], metric, block_rows=1024)
    dist, ids = scan.search(queries, 25, rows=keep)
    assert_same_knn(dist, ids, *brute_force(codes, queries, metric, 25, mask), exact_ids=metric == "hamming")
    assert mask[ids[ids >= 0]].all()  # never a row the filter drops
    if share == 0.0:
        assert (ids == -1).all() and np.isinf(dist).all()  # everything filtered out: empty, not an error
    again = scan.search(queries, 25, rows=keep)  # the gathered rows are cached on the filter
    np.testing.assert_array_equal(again[1], ids)


@given(
    n=st.integers(0, 300),
    k=st.integers(1, 40),
    bits=st.sampled_from([64, 128, 256]),
    dup=st.integers(0, 5),
    seed=st.integers(0, 2**16),
    share=st.floats(0, 1),
)
def test_hamming_property(n, k, bits, dup, seed, share):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, (n, bits // 8), dtype=np.uint8)
    if n:
        codes[rng.integers(0, n, size=dup * n // 5)] = codes[0]  # many exact ties
        codes[:, : rng.integers(0, bits // 8)] = 0  # distances concentrated on few values
    queries = codes[:2].copy() if n >= 2 else rng.integers(0, 256, (2, bits // 8), dtype=np.uint8)
    mask = rng.random(n) < share
    scan = CodeScan([codes], "hamming", block_rows=64)
    dist, ids = scan.search(queries, k, rows=RowFilter.from_mask(mask))
    ref_dist, ref_ids = brute_force(codes, queries, "hamming", k, mask)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(dist, ref_dist)


@given(n=st.integers(1, 200), k=st.integers(1, 30), seed=st.integers(0, 2**16), levels=st.integers(1, 4))
def test_float16_l2_property(n, k, seed, levels):
    """Coarse values (few levels) make many exact ties: ids must follow the row order."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(-levels, levels + 1, size=(n, 8)).astype(np.float16) / np.float16(2)
    queries = rng.integers(-levels, levels + 1, size=(2, 8)).astype(np.float32) / 2
    dist, ids = CodeScan([codes], "l2", block_rows=32).search(queries, k)
    ref_dist, ref_ids = brute_force(codes, queries, "l2", k)
    np.testing.assert_array_equal(ids, ref_ids)  # halves: exact in float32, so ties are exact too
    np.testing.assert_allclose(dist, ref_dist, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("width", [8, 64])
def test_float_blocks_are_cache_sized_and_block_size_does_not_change_results(dtype, width):
    """Float scans size blocks by their widened bytes (the -2 of the L2 expansion folded into
    the query); any block size gives the same distances, bit for bit, and the same ids."""
    rng = np.random.default_rng(width)
    codes = rng.integers(-6, 7, size=(9000, width)).astype(dtype) / dtype(4)  # many exact ties
    queries = rng.integers(-6, 7, size=(3, width)).astype(np.float32) / 4
    default = CodeScan([codes], "l2")
    assert default.block_rows * width * 4 == FLOAT_BLOCK_BYTES
    assert CodeScan([codes.view(np.uint8)], "hamming").block_rows == BLOCK_ROWS
    dist, ids = default.search(queries, 25)
    for block_rows in (7, 1000, 1 << 16):
        d, i = CodeScan([codes], "l2", block_rows=block_rows).search(queries, 25)
        np.testing.assert_array_equal(d, dist)
        np.testing.assert_array_equal(i, ids)
    ref_dist, ref_ids = brute_force(codes, queries, "l2", 25)
    np.testing.assert_array_equal(ids, ref_ids)  # quarters: exact in float32, ties by row order
    np.testing.assert_allclose(dist, ref_dist, atol=1e-3)


def test_float16_subnormals_and_extremes_widen_exactly():
    values = np.array([0.0, -0.0, 6e-8, -6e-8, 6.1e-5, 65504.0, -65504.0, 1.0, -2.5], np.float16)
    codes = values[:, None].repeat(2, axis=1)  # one value per row
    dist, ids = CodeScan([codes], "ip").search(np.array([[1.0, 0.0]], np.float32), len(values))
    # minus the inner product with (1, 0) is minus the value itself: exact for every half
    np.testing.assert_array_equal(-dist[0], values.astype(np.float32)[ids[0]])
    assert sorted(ids[0].tolist()) == list(range(len(values)))


def test_searcher_batches_and_single_queries_agree_with_faiss_shape():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 256, (20000, 8), dtype=np.uint8)
    searcher = Searcher(codes, np.arange(20000), 20000, "hamming")
    queries = codes[:64] ^ np.uint8(1)
    scores, ids = searcher.search(queries, SearcherOptions(k=10, num_threads=2))
    assert scores.shape == ids.shape == (64, 10)
    for q in (0, 17, 63):
        one_scores, one_ids = searcher.search(queries[q], SearcherOptions(k=10))
        np.testing.assert_array_equal(one_ids[0], ids[q])
        np.testing.assert_array_equal(one_scores[0], scores[q])
    ref_dist, ref_ids = brute_force(codes, queries, "hamming", 10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_array_equal(-scores, ref_dist)


def test_searcher_row_filter_and_several_rows_per_product():
    rng = np.random.default_rng(4)
    codes = rng.normal(size=(90, 6)).astype(np.float16)
    code_items = np.repeat(np.arange(30), 3)
    searcher = Searcher(codes, code_items, 30, "l2")
    keep = np.zeros(30, bool)
    keep[[2, 5, 29]] = True
    scores, ids = searcher.search(codes[:2].astype(np.float32), SearcherOptions(k=5), within=searcher.row_filter(keep))
    assert set(ids[0][:3]) == {2, 5, 29} and (ids[:, 3:] == -1).all()
    nothing = searcher.search(
        codes[:2].astype(np.float32), SearcherOptions(k=5), within=searcher.row_filter(np.zeros(30, bool))
    )
    assert (nothing[1] == -1).all()


def test_scan_refuses_what_it_cannot_scan():
    with pytest.raises(ValueError, match="unknown scan metric"):
        CodeScan([np.zeros((2, 8), np.uint8)], "cosine")
    with pytest.raises(ValueError, match="hamming scans packed uint8"):
        CodeScan([np.zeros((2, 8), np.float32)], "hamming")
    with pytest.raises(ValueError, match="code parts must all be"):
        CodeScan([np.zeros((2, 8), np.uint8), np.zeros((2, 4), np.uint8)], "hamming")
    scan = CodeScan([np.zeros((2, 8), np.uint8)], "hamming")
    with pytest.raises(ValueError, match="packed uint8"):
        scan.search(np.zeros((1, 8), np.float32), 1)
    with pytest.raises(ValueError, match="covers 3 rows"):
        scan.search(np.zeros((1, 8), np.uint8), 1, rows=RowFilter.from_mask(np.ones(3, bool)))


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_int8_codes_with_a_scale_scan_like_their_dequantised_floats(metric):
    """int8 codes × a per-dimension scale: the same k-NN as a brute force over the dequantised
    rows; power-of-two scales keep every value exact, so ties follow the row order exactly."""
    rng = np.random.default_rng(8)
    codes = rng.integers(-127, 128, size=(7000, 8), dtype=np.int8)
    codes[100:110] = codes[5]  # duplicates: ties
    scale = np.float32(2.0) ** rng.integers(-6, -2, size=8).astype(np.float32)
    queries = (codes[[5, 900, 3000]].astype(np.float32) + rng.integers(-3, 4, size=(3, 8))) * scale
    dense = codes.astype(np.float32) * scale
    mask = rng.random(7000) < 0.3
    for rows, ref_mask in ((None, None), (RowFilter.from_mask(mask), mask)):
        for block_rows in (1000, 1 << 16):
            scan = CodeScan([codes[:4000], codes[4000:]], metric, block_rows=block_rows, scale=scale)
            dist, ids = scan.search(queries, 20, rows=rows)
            ref_dist, ref_ids = brute_force(dense, queries, metric, 20, ref_mask)
            np.testing.assert_array_equal(ids, ref_ids)
            np.testing.assert_allclose(dist, ref_dist, rtol=1e-6)


def test_int8_codes_need_a_valid_scale():
    codes = np.zeros((10, 4), np.int8)
    with pytest.raises(ValueError, match="need a per-dimension scale"):
        CodeScan([codes], "l2")
    with pytest.raises(ValueError, match="need a per-dimension scale"):
        CodeScan([codes.astype(np.float32)], "l2", scale=np.ones(4))
    with pytest.raises(ValueError, match="finite and positive"):
        CodeScan([codes], "l2", scale=np.array([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"\(4,\)"):
        CodeScan([codes], "l2", scale=np.ones(3))


def test_searcher_over_int8_codes_ranks_like_the_dequantised_floats():
    rng = np.random.default_rng(11)
    codes = rng.integers(-127, 128, size=(3000, 8), dtype=np.int8)
    scale = np.float32(2.0) ** rng.integers(-7, -3, size=8).astype(np.float32)
    dense = codes.astype(np.float32) * scale
    queries = dense[[3, 1500]] + np.float32(0.01)
    small = Searcher(codes, np.arange(3000), 3000, "l2", code_scale=scale)
    ref = Searcher(dense, np.arange(3000), 3000, "l2")
    s, i = small.search(queries, SearcherOptions(k=7))
    rs, ri = ref.search(queries, SearcherOptions(k=7))
    np.testing.assert_array_equal(i, ri)
    np.testing.assert_allclose(s, rs, rtol=1e-5)
    assert i[0, 0] == 3 and i[1, 0] == 1500
    # several rows per product: the per-row path dequantises too
    multi = Searcher(codes, np.arange(3000) // 2, 1500, "l2", code_scale=scale)
    ms, mi = multi.search(queries, SearcherOptions(k=3))
    assert mi[0, 0] == 1 and mi[1, 0] == 750
