"""The blended re-rank: cosine + blend × standardised compact score, on the device and in eval alike."""

import numpy as np
import pytest

from vitrina.runtime.codes import pairwise_scores
from vitrina.runtime.evaluate import two_stage_scores
from vitrina.runtime.search import RerankSearcher, SearchOptions, blend_scores

from .test_search import _rerank_case


@pytest.mark.parametrize("blend, instance", [(0.0, (0, 0)), (0.05, (0, 0)), (0.3, (0, 0)), (0.0, (150, 3))])
def test_device_rerank_and_eval_rank_alike(blend, instance):
    searcher, rerank_codes, queries, reduce = _rerank_case("l2", 200, 1, False, seed=11)
    two = RerankSearcher(
        searcher,
        rerank_codes,
        scale=0.01,
        shortlist=40,
        blend=blend,
        instance_depth=instance[0],
        instance_top=instance[1],
    )
    codes = reduce(queries)
    _, ids = two.search(codes, queries, SearchOptions(k=10))
    # the eval's two-stage scores over every row (one row per product here) rank the same products first
    compact = pairwise_scores(codes, searcher.codes, "l2")
    gallery = rerank_codes.astype(np.float32) * 0.01
    scores = two_stage_scores(compact, queries, gallery, 40, blend, instance=instance)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(searcher.code_items[order], ids)


def test_instance_check_adds_the_best_cosines_past_the_shortlist_and_nothing_else():
    searcher, rerank_codes, queries, reduce = _rerank_case("l2", 300, 1, False, seed=3)
    codes = reduce(queries)
    plain = RerankSearcher(searcher, rerank_codes, 0.01, 20)
    checked = RerankSearcher(searcher, rerank_codes, 0.01, 20, instance_depth=300, instance_top=2)
    wide = RerankSearcher(searcher, rerank_codes, 0.01, 300)  # every row by cosine
    k = 22
    _, plain_ids = plain.search(codes, queries, SearchOptions(k=k))
    _, checked_ids = checked.search(codes, queries, SearchOptions(k=k))
    _, wide_ids = wide.search(codes, queries, SearchOptions(k=k))
    # the two best cosines of all rows come first, then the shortlist's products in cosine order
    np.testing.assert_array_equal(checked_ids[:, :2], wide_ids[:, :2])
    for q in range(len(queries)):
        rest = [i for i in checked_ids[q] if i not in wide_ids[q, :2]]
        assert rest == [i for i in plain_ids[q] if i not in wide_ids[q, :2]][: len(rest)]
    assert (checked_ids != plain_ids).any()  # it found products the shortlist missed


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"instance_depth": 100, "instance_top": 0}, "both 0"),
        ({"instance_depth": 0, "instance_top": 3}, "both 0"),
        ({"instance_depth": 100, "instance_top": 3, "blend": 0.1}, "blend must be 0"),
    ],
)
def test_bad_instance_check_is_refused(kwargs, message):
    searcher, rerank_codes, _, _ = _rerank_case("l2", 50, 1, False, seed=1)
    with pytest.raises(ValueError, match=message):
        RerankSearcher(searcher, rerank_codes, 0.01, 10, **kwargs)


def test_blend_zero_is_the_cosine_and_a_large_blend_follows_the_compact_order():
    cosine = np.array([[0.9, 0.8, 0.7]], np.float32)
    compact = np.array([[-3.0, -2.0, -1.0]])
    np.testing.assert_array_equal(blend_scores(cosine, compact, 0.0), cosine)
    assert list(np.argsort(-blend_scores(cosine, compact, 10.0)[0])) == [2, 1, 0]


def test_bad_blend_is_refused():
    searcher, rerank_codes, _, _ = _rerank_case("l2", 50, 1, False, seed=1)
    with pytest.raises(ValueError, match="blend"):
        RerankSearcher(searcher, rerank_codes, 0.01, 10, blend=-1.0)


def test_bundle_with_a_blend_searches_and_evaluates_with_it(tiny_bundle, tmp_path, strokes_file):
    from vitrina.export.codes.fit import CodeOptions
    from vitrina.runtime.bundle import Bundle
    from vitrina.runtime.evaluate import encode_eval_set
    from vitrina.runtime.product_search import ProductSearch
    from vitrina.runtime.rasterize import load_strokes_json

    from .test_compact_codes import _compact_bundle

    options = CodeOptions(landmarks=300, rerank=True, shortlist=50, blend=0.1, progress=False)
    bundle = Bundle.open(_compact_bundle(tiny_bundle, tmp_path / "blend", "pca8", options))
    assert bundle.manifest["codes"]["rerank"]["blend"] == pytest.approx(0.1)
    assert bundle.rerank_blend == pytest.approx(0.1)
    inputs = encode_eval_set(bundle, "int8")
    assert inputs.blend == pytest.approx(0.1) and inputs.shortlist == 50
    with ProductSearch(bundle) as engine:
        assert engine._index.rerank.blend == pytest.approx(0.1)
        assert len(engine.by_strokes(load_strokes_json(strokes_file), k=5).matches) == 5


def test_bundle_with_an_instance_check_searches_and_evaluates_with_it(tiny_bundle, tmp_path, strokes_file):
    import json
    import shutil

    from vitrina.export.codes.fit import CodeOptions
    from vitrina.runtime.bundle import Bundle, BundleFormatError
    from vitrina.runtime.evaluate import encode_eval_set
    from vitrina.runtime.product_search import ProductSearch
    from vitrina.runtime.rasterize import load_strokes_json

    from .test_compact_codes import _compact_bundle

    options = CodeOptions(landmarks=300, rerank=True, shortlist=20, instance_depth=200, instance_top=3, progress=False)
    path = _compact_bundle(tiny_bundle, tmp_path / "instance", "pca8", options)
    bundle = Bundle.open(path)
    assert bundle.manifest["codes"]["rerank"]["instance"] == {"depth": 200, "top": 3}
    assert bundle.rerank_instance == (200, 3)
    inputs = encode_eval_set(bundle, "int8")
    assert (inputs.instance_depth, inputs.instance_top) == (200, 3)
    with ProductSearch(bundle) as engine:
        assert (engine._index.rerank.instance_depth, engine._index.rerank.instance_top) == (200, 3)
        assert len(engine.by_strokes(load_strokes_json(strokes_file), k=5).matches) == 5
    # a manifest whose instance check keeps no row is refused at open
    bad = tmp_path / "bad"
    shutil.copytree(path, bad)
    manifest = json.loads((bad / "manifest.json").read_text(encoding="utf-8"))
    manifest["codes"]["rerank"]["instance"] = {"depth": 100, "top": 0}
    (bad / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(BundleFormatError, match="instance"):
        Bundle.open(bad, verify=False)


def test_similar_products_skip_the_instance_check():
    searcher, rerank_codes, queries, reduce = _rerank_case("l2", 300, 1, False, seed=4)
    plain = RerankSearcher(searcher, rerank_codes, 0.01, 20)
    checked = RerankSearcher(searcher, rerank_codes, 0.01, 20, instance_depth=300, instance_top=3)
    codes = reduce(queries)
    options = SearchOptions(k=15)
    np.testing.assert_array_equal(
        checked.search(codes, queries, options, instances=False)[1], plain.search(codes, queries, options)[1]
    )
    assert (checked.search(codes, queries, options)[1] != plain.search(codes, queries, options)[1]).any()
