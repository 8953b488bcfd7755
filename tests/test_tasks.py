"""The device tasks share one API shape (MediaPipe Tasks): frozen Options and
Result dataclasses, create_from_bundle / create_from_options, close() and
``with``; ValueError for bad input or a wrong state, RuntimeError when LiteRT fails."""

import dataclasses
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

import vitrina.runtime as runtime
from vitrina.runtime import (
    EmbeddingResult,
    PhotoEncoder,
    PhotoEncoderOptions,
    ProductSearch,
    ProductSearchOptions,
    Searcher,
    SearcherOptions,
    SketchEncoder,
    SketchEncoderOptions,
)
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.encoders import dequantize, quantize_table
from vitrina.runtime.photo import prepare_photo
from vitrina.runtime.rasterize import RasterOptions, load_strokes_json
from vitrina.runtime.search import DEFAULT_K, CatalogIndex


def test_package_exports_exactly_the_tasks_their_options_results_and_errors():
    assert set(runtime.__all__) == {
        "Bundle",
        "SketchEncoder",
        "SketchEncoderOptions",
        "PhotoEncoder",
        "PhotoEncoderOptions",
        "EmbeddingResult",
        "Detector",
        "DetectorOptions",
        "DetectionResult",
        "TextVisualEncoder",
        "TextVisualOptions",
        "TextVisualResult",
        "Searcher",
        "SearcherOptions",
        "SearchResult",
        "ProductSearch",
        "ProductSearchOptions",
        "BundleError",
        "BundleNotFoundError",
        "BundleVersionError",
        "BundleIntegrityError",
        "BundleFormatError",
        "EmptySketchError",
    }
    assert all(hasattr(runtime, name) for name in runtime.__all__)


@pytest.mark.parametrize("cls", [SketchEncoderOptions, PhotoEncoderOptions, SearcherOptions, ProductSearchOptions])
def test_options_are_frozen_dataclasses(cls):
    options = cls()
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(options, name, getattr(options, name))


@pytest.mark.parametrize("cls", [SketchEncoderOptions, PhotoEncoderOptions, SearcherOptions])
def test_options_docstrings_state_the_tensor_contract(cls):
    assert "Tensor contract" in cls.__doc__ and "uint8" in cls.__doc__ and "float32" in cls.__doc__


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: SketchEncoderOptions(batch_size=0), "batch_size must be an integer >= 1"),
        (lambda: PhotoEncoderOptions(num_threads=0), "num_threads must be an integer >= 1"),
        (lambda: PhotoEncoderOptions(precision="fp16"), "precision must be one of"),
        (lambda: ProductSearchOptions(precision="fp16"), "precision must be one of"),
        (lambda: SearcherOptions(k=0), "k must be an integer >= 1"),
        (lambda: SearcherOptions(k=True), "k must be an integer >= 1"),
    ],
)
def test_bad_options_raise_value_error(make, words):
    with pytest.raises(ValueError, match=words):
        make()


def test_quantised_values_are_widened_before_arithmetic():
    # in int8, -128 - 127 wraps to 1; the dequantised value must be (-128 - 127) * scale
    np.testing.assert_array_equal(dequantize(np.array([[-128, 127]], np.int8), 0.5, 127), [[-127.5, 0.0]])
    assert dequantize(np.array([[-128]], np.int8), 0.5, 127).dtype == np.float32
    table = quantize_table(1.0, -128)
    assert table.dtype == np.int8 and table[0] == -128 and table[255] == 127
    np.testing.assert_array_equal(quantize_table(0.5, 0)[[0, 63, 64, 255]], [0, 126, 127, 127])  # clipped, not wrapped


def test_embedding_result_is_frozen_and_states_its_dtype():
    result = EmbeddingResult(np.eye(2, 3, dtype=np.float32))
    assert result.dtype == np.float32 and result.dims == 3 and len(result) == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.embeddings = np.zeros((1, 3))  # type: ignore[misc]
    with pytest.raises(ValueError, match=r"\(n, D\)"):
        EmbeddingResult(np.zeros(3, np.float32))


# --- with a real bundle -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return Bundle.open(tiny_bundle)


def test_sketch_encoder_factories_agree(bundle, strokes_file):
    strokes = load_strokes_json(strokes_file)
    with SketchEncoder.create_from_bundle(bundle) as from_bundle:
        a = from_bundle.embed_strokes(strokes)
        assert from_bundle.options.model_path == str(bundle.model_path("sketch", "int8"))
    assert isinstance(a, EmbeddingResult) and a.embeddings.shape == (1, a.dims) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a.embeddings, axis=1), 1.0, rtol=1e-5)
    options = SketchEncoderOptions(model_path=str(bundle.model_path("sketch", "int8")), raster=bundle.raster_options)
    with SketchEncoder.create_from_options(options) as from_options:
        np.testing.assert_array_equal(from_options.embed_strokes(strokes).embeddings, a.embeddings)


def test_batch_size_does_not_change_the_embeddings(bundle):
    size = bundle.raster_options.size
    pixels = np.full((4, size, size), 255, np.uint8)
    for i in range(4):
        pixels[i, 10 + i : 20 + 3 * i, 10:40] = 0
    with (
        SketchEncoder.create_from_bundle(bundle) as one,
        SketchEncoder.create_from_bundle(bundle, SketchEncoderOptions(batch_size=3)) as batched,
    ):
        expected = np.concatenate([one.embed(p[None]).embeddings for p in pixels])
        np.testing.assert_allclose(batched.embed(pixels).embeddings, expected, atol=1e-5)


def test_float_precision_comes_from_the_options(bundle):
    with SketchEncoder.create_from_bundle(bundle, SketchEncoderOptions(precision="float")) as encoder:
        assert encoder.options.model_path == str(bundle.model_path("sketch", "float")) and not encoder.quantized


@pytest.mark.parametrize(
    "options, words",
    [
        (SketchEncoderOptions(model_path="elsewhere.tflite"), "options.model_path must be None"),
        (SketchEncoderOptions(raster=RasterOptions(size=40)), "differs from bundle"),
    ],
)
def test_create_from_bundle_refuses_options_that_contradict_the_bundle(bundle, options, words):
    with pytest.raises(ValueError, match=words):
        SketchEncoder.create_from_bundle(bundle, options)


def test_create_from_options_needs_a_model_and_a_raster(bundle, tmp_path):
    with pytest.raises(ValueError, match="needs options.model_path"):
        PhotoEncoder.create_from_options(PhotoEncoderOptions())
    with pytest.raises(ValueError, match="does not exist"):
        PhotoEncoder.create_from_options(PhotoEncoderOptions(model_path=str(tmp_path / "absent.tflite")))
    with pytest.raises(ValueError, match="needs the raster options"):
        SketchEncoder.create_from_options(SketchEncoderOptions(model_path=str(bundle.model_path("sketch"))))
    with pytest.raises(ValueError, match="does not match raster size"):
        SketchEncoder.create_from_options(
            SketchEncoderOptions(model_path=str(bundle.model_path("sketch")), raster=RasterOptions(size=40))
        )
    with pytest.raises(ValueError, match="two raster settings"):
        SketchEncoder(
            SketchEncoderOptions(model_path=str(bundle.model_path("sketch")), raster=bundle.raster_options),
            RasterOptions(size=40),
        )


def test_engine_failures_are_runtime_errors(bundle, tmp_path):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"not a flatbuffer" * 10)
    with pytest.raises(RuntimeError, match="LiteRT could not load"):
        PhotoEncoder.create_from_options(PhotoEncoderOptions(model_path=str(broken)))
    encoder = PhotoEncoder.create_from_bundle(bundle)

    def fail() -> None:
        raise RuntimeError("Node number 3 (CONV_2D) failed to invoke.")

    encoder._interpreter.invoke = fail
    with pytest.raises(RuntimeError, match=r"LiteRT failed to run .*photo_int8.tflite on a batch of 1: Node number 3"):
        encoder.embed(np.zeros((1, *encoder.input_shape), np.uint8))


def test_bad_input_and_closed_encoders_are_value_errors(bundle):
    encoder = PhotoEncoder.create_from_bundle(bundle)
    with pytest.raises(ValueError, match="images must be uint8 pixels, got float32"):
        encoder.embed(np.zeros((1, *encoder.input_shape), np.float32))
    with pytest.raises(ValueError, match="images must have shape"):
        encoder.embed(np.zeros((1, 5, 5, 3), np.uint8))
    with encoder:
        pass
    assert encoder.closed
    with pytest.raises(ValueError, match=r"PhotoEncoder for .*photo_int8.tflite is closed"):
        encoder.embed(np.zeros((1, *encoder.input_shape), np.uint8))
    encoder.close()  # twice is harmless


def test_photo_encoder_prepares_photos(bundle):
    photo = Image.fromarray(bundle.thumbnail(0)).convert("RGBA").resize((50, 30))
    with PhotoEncoder.create_from_bundle(bundle, PhotoEncoderOptions(batch_size=2)) as encoder:
        prepared = prepare_photo(photo, encoder.input_shape[0])[None]
        np.testing.assert_array_equal(encoder.embed_photos([photo]).embeddings, encoder.embed(prepared).embeddings)


def test_searcher_factories_agree(bundle, tiny_bundle):
    query = np.asarray(bundle.codes[:3], dtype=np.float32)
    with (
        Searcher.create_from_bundle(bundle, SearcherOptions(k=4)) as a,
        Searcher.create_from_options(SearcherOptions(k=4, bundle_path=str(tiny_bundle))) as b,
    ):
        for x, y in zip(a.search(query), b.search(query)):
            np.testing.assert_array_equal(x, y)
        assert a.search(query)[1].shape == (3, 4)
    with pytest.raises(ValueError, match="needs options.bundle_path"):
        Searcher.create_from_options(SearcherOptions())
    with pytest.raises(ValueError, match="is not the bundle given"):
        Searcher.create_from_bundle(bundle, SearcherOptions(bundle_path="/elsewhere"))


def test_product_search_shape(bundle, tiny_bundle, strokes_file):
    strokes = load_strokes_json(strokes_file)
    with ProductSearch.create_from_bundle(bundle) as engine:
        default = engine.by_strokes(strokes)
        assert len(default.matches) == DEFAULT_K
        index = CatalogIndex.create_from_bundle(bundle)
        with SketchEncoder.create_from_bundle(bundle) as encoder:
            _, ids = index.search(encoder.embed_strokes(strokes).embeddings, SearcherOptions(k=DEFAULT_K))
        assert [m.item for m in default.matches] == ids[0].tolist()
    with pytest.raises(ValueError, match="ProductSearch over bundle .* is closed"):
        engine.by_strokes(strokes)
    with ProductSearch.create_from_options(ProductSearchOptions(bundle_path=str(tiny_bundle))) as engine:
        assert engine.by_strokes(strokes, k=3).matches == default.matches[:3]
        assert len(engine.similar(0).matches) == DEFAULT_K
        with pytest.raises(ValueError, match="k must be an integer >= 1"):
            engine.by_strokes(strokes, k=0)
    with pytest.raises(ValueError, match="needs options.bundle_path"):
        ProductSearch.create_from_options(ProductSearchOptions())
    with pytest.raises(ValueError, match="options.bundle_path must be None"):
        ProductSearch.create_from_bundle(bundle, replace(ProductSearchOptions(), bundle_path=str(tiny_bundle)))
