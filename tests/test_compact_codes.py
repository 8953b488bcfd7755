"""Compact codes: reducer contracts, device reducers matching the export side,
Hamming search against brute force, and a bundle of each code type searched end to end."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from vitrina.export.codes.base import NotFittedError
from vitrina.export.codes.binary import ITQHasher
from vitrina.export.codes.fit import INT8_FROM_ROWS, CodeOptions, TrainingEmbeddings, fit_codes
from vitrina.export.codes.pca import PCAReducer
from vitrina.export.codes.umap import UMAPOptions, UMAPReducer
from vitrina.runtime.bundle import Bundle, BundleContents, write_bundle
from vitrina.runtime.codes import CodeType, LandmarkReducer, LinearReducer, SignHasher, fuzzy_weights, hamming_distances
from vitrina.runtime.codes.quantize import centre_of_range, int8_scale, quantize_int8
from vitrina.runtime.evaluate import evaluate_bundle
from vitrina.runtime.product_search import ProductSearch
from vitrina.runtime.rasterize import load_strokes_json
from vitrina.runtime.search import CatalogIndex, Searcher, SearchOptions


@pytest.fixture(scope="module")
def embeddings(tiny_bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    """Real catalog codes of the tiny bundle (int8 photo encoder) and their categories."""
    bundle = Bundle.open(tiny_bundle)
    return np.asarray(bundle.codes, dtype=np.float32), bundle.item_categories[bundle.code_items]


# --- contracts -------------------------------------------------------------------------


def test_pca_contract_and_device_twin(embeddings):
    x, _ = embeddings
    pca = PCAReducer(8)
    assert pca.fit(x) is pca
    assert pca.mean_.shape == (32,) and pca.components_.shape == (32, 8) and pca.n_features_in_ == 32
    y = pca.transform(x[:50])
    assert y.shape == (50, 8) and y.dtype == np.float32
    assert np.var(pca.transform(x)[:, 0]) >= np.var(pca.transform(x)[:, 7])  # components by variance
    np.testing.assert_allclose(LinearReducer(**pca.device_arrays())(x[:50]), y, atol=1e-5)
    with pytest.raises(ValueError, match=r"expected \(n, 32\)"):
        pca.transform(x[:, :5])


def test_itq_contract_and_device_twin(embeddings):
    x, labels = embeddings
    itq = ITQHasher(16)
    assert itq.fit(x) is itq
    assert itq.mean_.shape == (32,) and itq.projection_.shape == (32, 16) and itq.n_features_in_ == 32
    codes = itq.transform(x)
    assert codes.shape == (len(x), 2) and codes.dtype == np.uint8
    np.testing.assert_array_equal(SignHasher(**itq.device_arrays())(x), codes)  # bit-exact on the device
    # Hamming neighbours share the category far more often than chance
    d = hamming_distances(codes, codes)
    np.fill_diagonal(d, 10**6)
    nearest = d.argmin(axis=1)
    chance = np.sum((np.bincount(labels) / len(labels)) ** 2)
    assert np.mean(labels[nearest] == labels) > 2 * chance


# --- scikit-learn conventions: __init__ stores, fit checks, learned state ends in "_" ------------


def test_init_only_stores_parameters():
    """Bad values pass __init__ untouched (they are checked by fit), and nothing is learned yet."""
    assert vars(PCAReducer(0)) == {"dims": 0}
    assert vars(ITQHasher(12, iterations=-1, seed=3)) == {"bits": 12, "iterations": -1, "seed": 3}
    assert vars(UMAPReducer(0, n_neighbors=1)) == {
        "dims": 0,
        "n_neighbors": 1,
        "min_dist": 0.1,
        "fit_sample": None,
        "supervised": False,
        "seed": 0,
    }


@pytest.mark.parametrize(
    "unfitted, call",
    [
        (PCAReducer(4), lambda r, x: r.transform(x)),
        (PCAReducer(4), lambda r, x: r.device_arrays()),
        (ITQHasher(8), lambda r, x: r.transform(x)),
        (ITQHasher(8), lambda r, x: r.device_arrays()),
        (UMAPReducer(2), lambda r, x: r.transform(x)),
        (UMAPReducer(2), lambda r, x: r.landmarks(20)),
        (UMAPReducer(2), lambda r, x: r.model_bytes()),
    ],
    ids=[
        "pca-transform",
        "pca-device",
        "itq-transform",
        "itq-device",
        "umap-transform",
        "umap-landmarks",
        "umap-bytes",
    ],
)
def test_unfitted_use_raises_not_fitted(unfitted, call):
    x = np.zeros((3, 16), np.float32)
    with pytest.raises(NotFittedError, match="not fitted yet: call fit"):
        call(unfitted, x)
    assert not hasattr(unfitted, "n_features_in_")


def test_not_fitted_error_is_value_and_attribute_error():
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


_X = np.random.default_rng(0).normal(size=(60, 16)).astype(np.float32)


@pytest.mark.parametrize("dims", [0, -1, 2.5, True, "8"])
def test_pca_bad_dims(dims):
    with pytest.raises(ValueError, match="PCA dims must be an integer >= 1"):
        PCAReducer(dims).fit(_X)


def test_pca_more_dims_than_the_embedding():
    with pytest.raises(ValueError, match="more dims than the embedding has"):
        PCAReducer(17).fit(_X)


@pytest.mark.parametrize("bits", [0, 12, 4, 8.0, None])
def test_itq_bad_bits(bits):
    with pytest.raises(ValueError, match="bits must be a positive multiple of 8"):
        ITQHasher(bits).fit(_X)


@pytest.mark.parametrize("iterations", [-1, 2.5])
def test_itq_bad_iterations(iterations):
    with pytest.raises(ValueError, match="iterations must be an integer >= 0"):
        ITQHasher(8, iterations=iterations).fit(_X)


def test_itq_more_bits_than_dims():
    with pytest.raises(ValueError, match="at most one bit per embedding dim"):
        ITQHasher(24).fit(_X)


@pytest.mark.parametrize("dims", [0, -2, 1.5])
def test_umap_bad_dims(dims):
    with pytest.raises(ValueError, match="UMAP dims must be an integer >= 1"):
        UMAPReducer(dims).fit(_X)


@pytest.mark.parametrize("n_neighbors", [1, 0, 7.5])
def test_umap_bad_n_neighbors(n_neighbors):
    with pytest.raises(ValueError, match="UMAP n_neighbors must be an integer >= 2"):
        UMAPReducer(2, n_neighbors=n_neighbors).fit(_X)


@pytest.mark.parametrize("min_dist", [-0.1, 2.0, "0.1"])
def test_umap_bad_min_dist(min_dist):
    with pytest.raises(ValueError, match=r"UMAP min_dist must be in \[0, 1\]"):
        UMAPReducer(2, min_dist=min_dist).fit(_X)


@pytest.mark.parametrize("fit_sample", [1, 0, 10.5])
def test_umap_bad_fit_sample(fit_sample):
    with pytest.raises(ValueError, match="UMAP fit_sample"):
        UMAPReducer(2, fit_sample=fit_sample).fit(_X)


def test_umap_supervised_needs_labels():
    with pytest.raises(ValueError, match="one category label per embedding"):
        UMAPReducer(2, supervised=True).fit(_X)


@pytest.mark.parametrize(
    "fitter",
    [PCAReducer(2), ITQHasher(8), UMAPReducer(2)],
    ids=["pca", "itq", "umap"],
)
def test_fitters_refuse_bad_embeddings(fitter):
    with pytest.raises(ValueError, match="NaN"):
        fitter.fit(np.full((60, 16), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"must be a \(n, D\) array"):
        fitter.fit(np.zeros(16, np.float32))
    with pytest.raises(ValueError, match="needs at least"):
        fitter.fit(_X[:2])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dims": 0}, "dims"),
        ({"n_neighbors": 1}, "n_neighbors"),
        ({"min_dist": 2.0}, "min_dist"),
        ({"fit_sample": 1}, "fit-sample"),
    ],
)
def test_umap_options_are_checked_on_construction(kwargs, message):
    """The build's UMAP settings fail early (before any training), with the fitter's messages."""
    with pytest.raises(ValueError, match=message):
        UMAPOptions(**kwargs)


def test_umap_without_the_export_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # makes `import umap` raise ImportError
    with pytest.raises(ImportError, match=r"pip install 'vitrina\[export\]'"):
        UMAPReducer(2).fit(_X)


def test_code_type_names_are_checked():
    with pytest.raises(ValueError, match="needs a size"):
        CodeType.parse("umap")
    with pytest.raises(ValueError, match="multiple of 64"):
        CodeType.parse("bits48")


@pytest.fixture(scope="module")
def umap8(embeddings) -> UMAPReducer:
    x, _ = embeddings
    return UMAPReducer(8, fit_sample=500).fit(x)


def test_umap_contract(umap8, embeddings):
    x, _ = embeddings
    assert umap8.embedding_.shape == (500, 8) and umap8.embedding_.dtype == np.float32 and len(umap8.fit_rows_) == 500
    assert umap8.fit_data_.shape == (500, x.shape[1]) and umap8.n_features_in_ == x.shape[1]
    held_out = np.setdiff1d(np.arange(len(x)), umap8.fit_rows_)
    assert umap8.transform(x[held_out[:10]]).shape == (10, 8)
    with pytest.raises(ValueError, match="landmark count must be >= n_neighbors"):
        umap8.landmarks(3)


def test_landmark_reducer_reproduces_umap_transform_initialisation(umap8, embeddings):
    """With every fit row as a landmark, the device reducer must equal umap-learn's own
    transform initialisation (its fuzzy graph → weighted average), to 1e-3 of the layout's spread."""
    import scipy.sparse

    x, _ = embeddings
    held_out = x[np.setdiff1d(np.arange(len(x)), umap8.fit_rows_)]
    # float32 landmarks here: the bundle's float16 copy can swap a 15th neighbour (measured in the sweep instead)
    device = LandmarkReducer(umap8.fit_data_, umap8.embedding_, umap8.n_neighbors)
    model = umap8.model_
    model.transform_mode = "graph"
    graph = scipy.sparse.csr_matrix(model.transform(held_out))
    model.transform_mode = "embedding"
    weights = graph.multiply(1.0 / graph.sum(axis=1))
    reference = np.asarray(weights @ model.embedding_)
    spread = float(np.std(model.embedding_))
    np.testing.assert_allclose(device(held_out), reference, atol=1e-3 * spread)


def test_fuzzy_weights_of_one_query_match_the_batch_bisection():
    """The kiosk's one-query path (Python floats) gives the batch path's weights."""
    rng = np.random.default_rng(3)
    dists = np.sort(rng.random((200, 15)) * rng.uniform(0.01, 10, size=(200, 1)), axis=1)
    dists[::7, :3] = 0.0  # duplicates of a landmark: zero distances
    batch = fuzzy_weights(dists)
    one = np.stack([fuzzy_weights(row[None])[0] for row in dists])
    np.testing.assert_allclose(one, batch, rtol=0, atol=1e-12)
    assert np.allclose(one.sum(axis=1), 1.0)


def test_fuzzy_weights_match_umap_smooth_knn_dist():
    from umap.umap_ import smooth_knn_dist

    rng = np.random.default_rng(0)
    dists = np.sort(rng.uniform(0.1, 2.0, size=(20, 15)), axis=1)
    sigmas, rhos = smooth_knn_dist(dists.astype(np.float32), 15.0, local_connectivity=0.0)
    expected = np.exp(-(dists - rhos[:, None]) / sigmas[:, None])
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(fuzzy_weights(dists), expected, rtol=1e-3)


# --- search ----------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [64, 128, 256, 24])
def test_hamming_search_matches_brute_force(bits):
    rng = np.random.default_rng(bits)
    codes = rng.integers(0, 256, size=(500, bits // 8), dtype=np.uint8)
    queries = rng.integers(0, 256, size=(7, bits // 8), dtype=np.uint8)
    brute = np.unpackbits(queries[:, None, :] ^ codes[None, :, :], axis=2).sum(axis=2)
    np.testing.assert_array_equal(hamming_distances(queries, codes), brute)
    scores, ids = Searcher(codes, np.arange(500), 500, "hamming").search(queries, SearchOptions(k=10))
    for q in range(7):
        order = np.lexsort((np.arange(500), brute[q]))[:10]
        np.testing.assert_array_equal(ids[q], order)
        np.testing.assert_array_equal(-scores[q], brute[q][order])
    assert (
        hamming_distances(np.full((1, 32), 255, np.uint8), np.zeros((1, 32), np.uint8))[0, 0] == 256
    )  # no uint8 overflow


def test_l2_search_matches_brute_force():
    rng = np.random.default_rng(1)
    codes = rng.normal(size=(300, 8)).astype(np.float16)
    q = rng.normal(size=(4, 8)).astype(np.float32)
    scores, ids = Searcher(codes, np.arange(300), 300, "l2").search(q, SearchOptions(k=5))
    d = ((q[:, None, :] - codes.astype(np.float32)[None]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(ids, np.argsort(d, axis=1)[:, :5])
    np.testing.assert_allclose(-scores, np.sort(d, axis=1)[:, :5], rtol=1e-4, atol=1e-4)


# --- bundles of every code type ------------------------------------------------------------


def _compact_bundle(tiny: Path, out: Path, code_type: str, options: CodeOptions) -> Path:
    """Rewrite the tiny bundle with ``code_type`` codes fitted on its own catalog codes."""
    b = Bundle.open(tiny)
    photos = np.asarray(b.codes, dtype=np.float32)
    labels = b.item_categories[b.code_items]
    rows = np.arange(len(photos))
    # hash heads: photo/photo pairs suffice here
    data = TrainingEmbeddings(
        photos=photos, photo_labels=labels, sketches=photos + 0.01, sketch_rows=rows, sketch_labels=labels
    )
    fitted = fit_codes(code_type, data, options)
    models = {
        f"{role}_{p}": Path(b.model_path(role, p)).read_bytes()
        for role in ("sketch", "photo")
        for p in ("int8", "float")
    }
    thumbs = np.stack([b.thumbnail(i) for i in range(len(b.items))])
    contents = BundleContents(
        catalog_name=b.name,
        items=b.items,
        models=models,
        codes=fitted.codes,
        code_items=b.code_items,
        thumbnails=thumbs,
        raster=b.raster_options,
        photo_size=b.photo_size,
        eval_set=b.eval_set(),
        code_type=fitted.code_type,
        reducer=fitted.reducer,
        rerank=fitted.rerank,
        code_scale=fitted.code_scale,
        extra={"categories": list(b.categories)},
    )
    return write_bundle(out, contents)


@pytest.mark.parametrize(
    "code_type, options",
    [
        ("pca8", CodeOptions(progress=False)),
        (
            "umap8",
            CodeOptions(umap=UMAPOptions(supervised=True), landmarks=300, rerank=True, shortlist=50, progress=False),
        ),
        ("bits64", CodeOptions(hash_head="cbs", hash_steps=30, progress=False)),
        ("bits64", CodeOptions(hash_head="dsh", hash_steps=30, progress=False)),
        ("pca8", CodeOptions(code_dtype="int8", progress=False)),
        (
            "umap8",
            CodeOptions(landmarks=300, rerank=True, shortlist=50, code_dtype="int8", progress=False),
        ),
    ],
    ids=["pca8", "umap8-rerank", "bits64-cbs", "bits64-dsh", "pca8-int8", "umap8-int8-rerank"],
)
def test_bundle_of_each_code_type_searches_end_to_end(tiny_bundle, tmp_path, strokes_file, code_type, options):
    path = _compact_bundle(tiny_bundle, tmp_path / code_type, code_type, options)
    bundle = Bundle.open(path)
    spec = bundle.code_spec
    assert (
        spec.name == code_type
        and bundle.manifest["codes"]["bytes_per_item"] == bundle.codes.shape[1] * bundle.codes.dtype.itemsize
    )
    assert bundle.has_rerank == options.rerank
    engine = ProductSearch(bundle)
    try:
        result = engine.by_strokes(load_strokes_json(strokes_file), k=10)
        assert len(result.matches) == 10
        similar = engine.similar(3, k=5)
        assert len(similar.matches) == 5 and all(m.item != 3 for m in similar.matches)
    finally:
        engine.close()
    # the device path ranks like the export-side reduction of the same query
    index = CatalogIndex.create_from_bundle(bundle)
    probe = np.asarray(Bundle.open(tiny_bundle).codes[:4], dtype=np.float32)
    if not options.rerank:
        reduced = index.reducer(probe)
        if spec.metric == "hamming":
            expected = np.packbits(
                ((probe - index.reducer.mean) @ index.reducer.projection + index.reducer.bias) > 0, axis=1
            )
            np.testing.assert_array_equal(reduced, expected)
        np.testing.assert_array_equal(index.search(probe)[1][:, 0] >= 0, True)
    report = evaluate_bundle(bundle, precisions=("int8",))
    assert 0.0 < report.metrics["int8"].map <= 1.0


def test_umap_rerank_recovers_own_products(tiny_bundle, tmp_path):
    """Two-stage search: the same UMAP-8 codes with an int8 re-rank find more own products."""
    one = _compact_bundle(tiny_bundle, tmp_path / "one", "umap8", CodeOptions(landmarks=300, progress=False))
    two = _compact_bundle(
        tiny_bundle, tmp_path / "two", "umap8", CodeOptions(landmarks=300, rerank=True, shortlist=50, progress=False)
    )
    acc_one = evaluate_bundle(Bundle.open(one), precisions=("int8",)).metrics["int8"].acc_at_10
    acc_two = evaluate_bundle(Bundle.open(two), precisions=("int8",)).metrics["int8"].acc_at_10
    assert acc_two > acc_one


# --- int8 codes with a per-dimension scale (large catalogs) -------------------------------


def test_int8_quantisation_rounds_saturates_and_refuses_bad_input():
    values = np.array([[0.5, -2.0, 0.0], [1.0, 2.0, 0.0], [-0.25, 1.0, 0.0]], np.float32)
    scale = int8_scale(values)
    np.testing.assert_allclose(scale, [1 / 127, 2 / 127, 1.0], rtol=1e-6)  # an all-zero dim gets 1
    codes = quantize_int8(values, scale)
    assert codes.dtype == np.int8 and codes.min() >= -127
    assert np.abs(codes * scale - values).max() <= scale.max() / 2 + 1e-6
    # beyond the catalog's range (a product added later) saturates instead of wrapping
    np.testing.assert_array_equal(quantize_int8(np.array([[9.0, -9.0, 0.0]]), scale), [[127, -127, 0]])
    with pytest.raises(ValueError, match="finite and positive"):
        quantize_int8(values, np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="NaN or infinity"):
        quantize_int8(np.array([[np.nan, 0, 0]]), scale)
    with pytest.raises(ValueError, match=r"\(N, d\) and \(d,\)"):
        quantize_int8(values, scale[:2])
    np.testing.assert_allclose(centre_of_range(np.array([[1.0, -3.0], [5.0, 1.0]])), [3.0, -1.0])


def test_code_dtype_auto_keeps_float16_below_the_threshold_and_refuses_unknown_names(embeddings):
    photos, labels = embeddings
    data = TrainingEmbeddings(
        photos=photos, photo_labels=labels, sketches=photos[:0], sketch_rows=np.arange(0), sketch_labels=labels[:0]
    )
    assert len(photos) < INT8_FROM_ROWS
    assert fit_codes("pca8", data, CodeOptions(progress=False)).codes.dtype == np.float16
    fitted = fit_codes("pca8", data, CodeOptions(code_dtype="int8", progress=False))
    assert fitted.codes.dtype == np.int8 and fitted.code_scale.shape == (8,)
    assert fitted.report["int8_max_error"] <= float(fitted.code_scale.max()) / 2 + 1e-6
    with pytest.raises(ValueError, match="code_dtype must be one of"):
        CodeOptions(code_dtype="float8")


def test_int8_umap_codes_search_like_float16(tiny_bundle, tmp_path):
    """The same UMAP-8 fit stored as int8 (centred, per-dimension scale) ranks like float16."""
    opts = CodeOptions(landmarks=300, progress=False)
    f16 = Bundle.open(_compact_bundle(tiny_bundle, tmp_path / "f16", "umap8", opts))
    i8 = Bundle.open(_compact_bundle(tiny_bundle, tmp_path / "i8", "umap8", replace(opts, code_dtype="int8")))
    assert f16.codes.dtype == np.float16 and i8.codes.dtype == np.int8
    assert i8.manifest["codes"]["bytes_per_item"] == 8 and len(i8.manifest["codes"]["scale"]) == 8
    # int8 rows times the scale are the centred float16 codes, to within half a step (+ float16 rounding)
    centred = np.asarray(f16.codes, np.float32) - centre_of_range(np.asarray(f16.codes, np.float32))
    step = float(i8.code_scale.max())
    assert np.abs(i8.code_values(np.arange(len(i8.codes))) - centred).max() <= step / 2 + 0.02
    probe = np.asarray(Bundle.open(tiny_bundle).codes[:20], dtype=np.float32)
    ids16 = CatalogIndex.create_from_bundle(f16).search(probe, SearchOptions(k=10))[1]
    ids8 = CatalogIndex.create_from_bundle(i8).search(probe, SearchOptions(k=10))[1]
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids16, ids8, strict=True)])
    assert overlap >= 0.8
    map16 = evaluate_bundle(f16, precisions=("int8",)).metrics["int8"].map
    map8 = evaluate_bundle(i8, precisions=("int8",)).metrics["int8"].map
    assert abs(map16 - map8) <= 0.02


def test_int8_codes_without_their_scale_are_refused_at_open(tiny_bundle, tmp_path):
    from vitrina.runtime.bundle import BundleFormatError

    path = _compact_bundle(tiny_bundle, tmp_path / "i8", "pca8", CodeOptions(code_dtype="int8", progress=False))
    manifest = json.loads((path / "manifest.json").read_text())
    for scale, message in ((None, "need a per-dimension scale"), ([1.0] * 7, r"must be \(8,\) finite and positive")):
        broken = Path(shutil.copytree(path, tmp_path / f"broken-{message[:4]}"))
        codes = dict(manifest["codes"])
        if scale is None:
            codes.pop("scale")
        else:
            codes["scale"] = scale
        (broken / "manifest.json").write_text(json.dumps({**manifest, "codes": codes}))
        with pytest.raises(BundleFormatError, match=message):
            Bundle.open(broken, verify=False)


def test_rows_added_to_an_int8_bundle_use_its_scale(tiny_bundle, tmp_path):
    bundle = Bundle.open(
        _compact_bundle(tiny_bundle, tmp_path / "i8", "pca8", CodeOptions(code_dtype="int8", progress=False))
    )
    values = bundle.reducer()(np.asarray(Bundle.open(tiny_bundle).codes[:3], dtype=np.float32))
    added = bundle.codes_from_values(values)
    np.testing.assert_array_equal(added, quantize_int8(values, bundle.code_scale))
    n = len(bundle.items)
    searcher = Searcher(
        [bundle.codes, added],
        np.concatenate([bundle.code_items.astype(np.int64), n + np.arange(3)]),
        n + 3,
        "l2",
        code_scale=bundle.code_scale,
    )
    ids = searcher.search(searcher.row_codes(np.arange(n, n + 3)), SearchOptions(k=1))[1][:, 0]
    # each added row's nearest is itself, or a catalog row with the very same int8 code
    codes = np.concatenate([np.asarray(bundle.codes), added])
    np.testing.assert_array_equal(codes[ids], added)


def test_a_grown_catalog_ships_int8_codes_that_search(tiny_bundle, tmp_path, strokes_file):
    from vitrina.runtime.bench.synthetic_catalog import scaled_bundle

    base = Bundle.open(
        _compact_bundle(tiny_bundle, tmp_path / "umap", "umap8", CodeOptions(landmarks=300, progress=False))
    )
    grown = Bundle.open(scaled_bundle(base, 3000, tmp_path / "work", code_dtype="int8"), verify=True)
    same = Bundle.open(scaled_bundle(base, 3000, tmp_path / "work", code_dtype="base"), verify=True)
    assert grown.codes.dtype == np.int8 and grown.code_scale.shape == (8,) and len(grown.codes) == 3000
    assert same.codes.dtype == np.float16 and same.code_scale is None
    # the same rows (same seed) as float16: the int8 copy, centred through the reducer's
    # shifted positions, finds the same neighbours for the same sketches' embeddings
    probe = np.asarray(Bundle.open(tiny_bundle).codes[:20], dtype=np.float32)
    ids8 = CatalogIndex.create_from_bundle(grown).search(probe, SearchOptions(k=10))[1]
    ids16 = CatalogIndex.create_from_bundle(same).search(probe, SearchOptions(k=10))[1]
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids8, ids16, strict=True)]) >= 0.7
    engine = ProductSearch(grown)
    try:
        assert len(engine.by_strokes(load_strokes_json(strokes_file), k=10).matches) == 10
    finally:
        engine.close()


def test_unknown_code_type_is_refused_at_open(tiny_bundle, tmp_path):
    copy = Path(shutil.copytree(tiny_bundle, tmp_path / "b"))
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["codes"]["type"] = "lsh9"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    from vitrina.runtime.bundle import BundleFormatError

    with pytest.raises(BundleFormatError, match="'lsh9' is not one of float, pcaN, umapN, bitsN"):
        Bundle.open(copy)


def test_eval_sweep_writes_tables_and_plots(tiny_bundle, demo_catalog, tmp_path, capsys):
    from vitrina.runtime.cli import main

    out = tmp_path / "sweep"
    code = main(
        [
            "eval",
            "--sweep",
            "--bundle",
            str(tiny_bundle),
            "--catalog",
            str(demo_catalog),
            "--out",
            str(out),
            "--pca-dims",
            "4,8",
            "--umap-dims",
            "8",
            "--bits",
            "64",
            "--train-sketches",
            "300",
            "--hash-steps",
            "20",
            "--cold-runs",
            "1",
        ]
    )
    assert code == 0
    report = json.loads((out / "sweep.json").read_text())
    methods = {(r["method"], r["code"]) for r in report["rows"]}
    assert {
        ("float", "float"),
        ("pca", "pca4"),
        ("pca", "pca8"),
        ("umap-exact", "umap8"),
        ("umap-landmark", "umap8"),
        ("umap-distilled", "umap8"),
        ("umap-sup-landmark", "umap8"),
        ("cbs", "bits64"),
        ("dsh", "bits64"),
    } <= methods
    assert any(m.startswith("two-stage") for m, _ in methods)
    for row in report["rows"]:
        assert 0.0 < row["metrics"]["map"] <= 1.0 and len(row["pr"]) == 11 and row["search_ms"] > 0
    landmark = next(r for r in report["rows"] if r["method"] == "umap-landmark")
    assert (
        landmark["reduce_ms"] > 0
        and landmark["cold_ms"] > 0
        and landmark["reducer_bytes"] < report["facts"]["umap8_pickled_bytes"]
    )
    table = (out / "sweep.md").read_text()
    assert table.startswith("| method | code |") and "umap-landmark" in table
    assert (out / "map_vs_dims.png").stat().st_size > 1000 and (out / "pr_curves.png").stat().st_size > 1000
    assert "wrote" in capsys.readouterr().out


def test_eval_sweep_needs_a_catalog_and_a_float_bundle(tiny_bundle, tmp_path, capsys):
    from vitrina.runtime.cli import main

    assert main(["eval", "--sweep", "--bundle", str(tiny_bundle)]) == 2
    assert "--sweep needs --catalog" in capsys.readouterr().err
    assert main(["eval", "--sweep", "--bundle", str(tiny_bundle), "--catalog", str(tmp_path), "--bits", "48"]) == 2
    assert "multiples of 64" in capsys.readouterr().err
