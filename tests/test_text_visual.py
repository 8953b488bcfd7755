"""The text-visual model: word ids, aspect-preserving crops, the curriculum's exclusion rule,
a trained model through the real LiteRT interpreter (int8 and float), and identification."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.identify import FactorWeights
from vitrina.runtime.text import Vocabulary, WordRepair
from vitrina.runtime.text_visual import (
    PAD,
    TextVisualEncoder,
    TextVisualOptions,
    branch_weights,
    catalog_codes,
    has_text_visual,
    identify_weights,
    square_crop,
    word_ids,
)

# --- word ids ---------------------------------------------------------------------------------


def test_word_ids_follow_the_vocabulary_and_pad_after_the_words():
    vocab = Vocabulary.from_texts(["Polera Roja", "Polera Azul", "Zapatilla Roja Nike 2"], brands=["Nike"])
    words = WordRepair(vocab).normalize("Zapatiya Nike roja 42 polera").words
    assert words == ("zapatilla", "roja", "polera")  # repaired, brand and number dropped
    ids = word_ids(words, vocab.index, vocab_size=len(vocab), max_words=9)
    assert ids.dtype == np.int32 and ids.shape == (9,)
    assert ids[:3].tolist() == [vocab.index["zapatilla"] + 1, vocab.index["roja"] + 1, vocab.index["polera"] + 1]
    assert (ids[3:] == PAD).all() and PAD == 0


def test_word_ids_skip_words_the_model_never_saw_and_keep_at_most_max_words():
    vocab = Vocabulary(("polera", "roja", "azul", "nuevo"), (3, 2, 1, 1))
    # "nuevo" (position 3) is past the model's vocab_size of 3: a word added on the device
    ids = word_ids(["nuevo", "azul", "desconocida", "polera"], vocab.index, vocab_size=3, max_words=9)
    assert ids[:2].tolist() == [3, 1] and (ids[2:] == 0).all()
    long = word_ids(["polera", "roja", "azul"] * 5, vocab.index, vocab_size=3, max_words=4)
    assert long.tolist() == [1, 2, 3, 1]


def test_branch_weights_average_the_present_branches():
    assert branch_weights(has_text=True, has_image=True).tolist() == [0.5, 0.5]
    assert branch_weights(has_text=True, has_image=False).tolist() == [1.0, 0.0]
    assert branch_weights(has_text=False, has_image=True).tolist() == [0.0, 1.0]
    with pytest.raises(ValueError, match="text, an image or both"):
        branch_weights(has_text=False, has_image=False)


# --- aspect-preserving resize -------------------------------------------------------------------


def test_square_crop_pads_a_wide_crop_and_never_stretches_it():
    image = np.full((40, 100, 3), 255, np.uint8)
    image[10:30, 20:80] = (200, 0, 0)  # a 60 x 20 red product, 3:1
    out = square_crop(image, 30, box=(20, 10, 80, 30))
    assert out.shape == (30, 30, 3) and out.dtype == np.uint8
    red = (out[..., 0] > 150) & (out[..., 1] < 80)
    rows, cols = np.flatnonzero(red.any(axis=1)), np.flatnonzero(red.any(axis=0))
    assert len(cols) == 30  # the long side fills the square
    assert 9 <= len(rows) <= 11  # the short side keeps the 3:1 ratio: 10 rows, not 30
    assert (out[:8] == 255).all() and (out[-8:] == 255).all()  # white padding above and below, centred


def test_square_crop_of_a_whole_tall_image():
    image = Image.new("RGB", (20, 60), (0, 0, 200))
    out = square_crop(image, 48)
    blue = (out[..., 2] > 150) & (out[..., 0] < 100)
    assert blue.any(axis=0).sum() in (15, 16, 17) and blue.any(axis=1).sum() == 48


# --- the triplet curriculum's exclusion rule ----------------------------------------------------


@given(
    keys=st.lists(st.integers(0, 4), min_size=3, max_size=30),
    labels_seed=st.integers(0, 1000),
    band=st.sampled_from([(0.0, 0.5), (0.25, 0.75), (0.5, 1.0), (0.0, 1.0)]),
)
def test_mined_negatives_never_share_the_anchors_title(keys, labels_seed, band):
    from vitrina.export.training.text_visual import allowed_negatives, pick_negatives

    rng = np.random.default_rng(labels_seed)
    title_keys = np.array(keys)
    labels = rng.integers(0, 3, len(keys))
    pool = np.arange(len(keys))
    allowed = allowed_negatives(pool, pool, title_keys, labels)
    losses = rng.random((len(keys), len(keys))).astype(np.float32) - 0.2
    neg = pick_negatives(losses, allowed, band, rng)
    for a, n in enumerate(neg):
        if n < 0:
            assert not allowed[a].any()  # only when nothing at all is allowed
            continue
        assert n != a and title_keys[n] != title_keys[a] and labels[n] != labels[a]
    assert not allowed[np.arange(len(keys)), np.arange(len(keys))].any()


def test_exclusion_rule_on_a_hand_made_pool():
    from vitrina.export.training.text_visual import allowed_negatives

    keys = np.array([0, 0, 1, 2])  # products 0 and 1 share one title
    allowed = allowed_negatives(np.array([0, 2]), np.arange(4), keys)
    assert allowed.tolist() == [[False, False, True, True], [True, True, False, True]]
    labels = np.array([5, 6, 5, 6])
    assert allowed_negatives(np.array([0]), np.arange(4), keys, labels).tolist() == [[False, False, False, True]]


def test_curriculum_moves_from_easy_to_hard_bands():
    from vitrina.export.training.text_visual import band_of_round, pick_negatives

    bands = ((0.0, 0.5), (0.5, 1.0))
    assert [band_of_round(r, 4, bands) for r in range(4)] == [bands[0], bands[0], bands[1], bands[1]]
    losses = np.tile(np.linspace(0.1, 1.0, 10, dtype=np.float32), (50, 1))
    allowed = np.ones_like(losses, bool)
    rng = np.random.default_rng(0)
    easy, hard = pick_negatives(losses, allowed, bands[0], rng), pick_negatives(losses, allowed, bands[1], rng)
    assert losses[0, easy].max() <= np.quantile(losses, 0.5) <= losses[0, hard].min()


def test_train_options_are_checked():
    from vitrina.export.training.text_visual import TextVisualTrainOptions

    with pytest.raises(ValueError, match="bands"):
        TextVisualTrainOptions(bands=((0.5, 0.2),))
    with pytest.raises(ValueError, match="steps"):
        TextVisualTrainOptions(steps=0)
    with pytest.raises(ValueError, match="label_weight"):
        TextVisualTrainOptions(label_weight=-0.1)


# --- export round trip: a model trained a few steps, through the real LiteRT interpreter -----------


def _tiny_data_and_spec(n: int, *, seed: int):
    """``n`` random 32 px products with 3-word titles over 20 words (pairs share a title,
    8 labels), and a small model for them."""
    from vitrina.export.models import EncoderSpec
    from vitrina.export.text_visual_model import TextVisualSpec
    from vitrina.export.training.text_visual import TextVisualData

    rng = np.random.default_rng(seed)
    size = 32
    titles = np.zeros((n, 9), np.int32)
    titles[:, :3] = rng.integers(1, 21, (n, 3))
    data = TextVisualData(
        titles=titles,
        extra_words=rng.integers(0, 21, (n, 4)).astype(np.int32),
        images=rng.integers(0, 256, (n, size, size, 3)).astype(np.uint8),
        title_keys=np.arange(n) // 2,
        labels=np.arange(n) % 8,
    )
    spec = TextVisualSpec(
        vocab_size=20, visual=EncoderSpec(input_size=size, alpha=0.35, depth=0.34, embedding_dims=16, strides=3)
    )
    return data, spec


def test_a_trained_model_exports_and_agrees_with_keras(tmp_path):
    from vitrina.export.build_text_visual import calibration_samples, to_tflite_inputs
    from vitrina.export.text_visual_model import build_text_visual
    from vitrina.export.training.text_visual import TextVisualTrainOptions, train_text_visual

    data, spec = _tiny_data_and_spec(64, seed=0)
    titles = data.titles
    net = build_text_visual(spec)
    result = train_text_visual(
        net, data, options=TextVisualTrainOptions(steps=3, batch_size=8, mine_every=2, pool=32), progress=False
    )
    assert result.steps == 3 and result.rounds == 2 and np.isfinite(result.final_loss)
    words, pixels = titles[:5], data.images[:5]
    weights = np.tile(branch_weights(has_text=True, has_image=True), (5, 1))
    want = net.model({"words": words, "pixels": pixels.astype(np.float32), "weights": weights})["code"].numpy()
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    codes = {}
    for precision in ("float", "int8"):
        path = tmp_path / f"{precision}.tflite"
        calib = calibration_samples(data, 200, seed=0) if precision == "int8" else None
        path.write_bytes(to_tflite_inputs(net.model, precision, calib))
        options = TextVisualOptions(model_path=str(path), batch_size=4, precision=precision)
        with TextVisualEncoder.create_from_options(options, vocab_size=20) as encoder:
            assert encoder.quantized == (precision == "int8") and encoder.dims == 16
            out = encoder.encode(words=words, images=pixels)
            codes[precision] = out.codes
            assert out.codes.shape == (5, 16) and out.codes.dtype == np.float32
            np.testing.assert_allclose(np.linalg.norm(out.codes, axis=1), 1.0, atol=1e-5)
            assert ((out.plausibility > 0) & (out.plausibility < 1)).all()
            text_only = encoder.encode(words=words)
            image_only = encoder.encode(images=pixels)
            assert not np.allclose(text_only.codes, image_only.codes)
            with pytest.raises(ValueError, match="word ids must be in"):
                encoder.encode(words=np.full((1, 9), 21, np.int32))
            with pytest.raises(ValueError, match="pairs need one of each"):
                encoder.encode(words=words, images=pixels[:2])
        assert encoder.closed
        with pytest.raises(ValueError, match="closed"):
            encoder.encode(words=words)
    np.testing.assert_allclose(codes["float"], want, atol=1e-4)  # float: the Keras model's codes
    assert np.mean(np.sum(codes["int8"] * codes["float"], axis=1)) > 0.9  # int8 near float


def test_the_label_loss_trains_classifiers_that_are_not_exported():
    import keras

    from vitrina.export.text_visual_model import build_text_visual
    from vitrina.export.training.text_visual import TextVisualTrainOptions, train_text_visual

    data, spec = _tiny_data_and_spec(48, seed=2)
    final, counts = {}, {}
    for weight in (0.0, 1.0):
        keras.utils.set_random_seed(0)
        net = build_text_visual(spec)
        options = TextVisualTrainOptions(steps=4, batch_size=8, mine_every=2, pool=32, label_weight=weight)
        final[weight] = train_text_visual(net, data, options=options, progress=False).final_loss
        counts[weight] = len(net.model.get_weights())
    assert counts[1.0] == counts[0.0]  # the classifiers stay out of the exported model
    # two branches naming one of 8 labels add about 2 ln 8 = 4.2 to the loss at the start
    assert final[1.0] > final[0.0] + 2.0


def test_training_in_the_background_gives_the_weights_of_training_in_process(tmp_path):
    import keras
    import tensorflow as tf

    from vitrina.export.build_text_visual import TextVisualProfile, _start_training
    from vitrina.export.text_visual_model import build_text_visual
    from vitrina.export.training.text_visual import TextVisualTrainOptions, train_text_visual

    data, spec = _tiny_data_and_spec(48, seed=1)
    profile = TextVisualProfile(
        train=TextVisualTrainOptions(steps=12, batch_size=8, mine_every=4, pool=32), init_from_photo=False
    )
    weights = tmp_path / "tv.weights.h5"
    job = _start_training(data, spec=spec, profile=profile, weights=weights)
    job.wait(progress=False)
    assert weights.is_file() and not job.cleanup[0].exists()  # the input arrays are removed

    tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(profile.train.seed)
    here = build_text_visual(spec)
    train_text_visual(here, data, options=profile.train, progress=False)
    there = build_text_visual(spec)
    there.model.load_weights(weights)
    for a, b in zip(here.model.get_weights(), there.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


# --- the tiny bundle -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tiny_bundle) -> Bundle:
    return Bundle.open(tiny_bundle)


def test_bundle_carries_the_model_its_vocabulary_and_codes(bundle):
    assert has_text_visual(bundle)
    assert set(bundle.manifest["models"]["textvisual"]) == {"int8", "float"}
    entry = bundle.manifest["text_visual"]
    assert entry["vocab_size"] == len(bundle.vocabulary) and entry["code_dims"] == 16
    for precision in ("int8", "float"):
        codes = catalog_codes(bundle, precision)
        assert codes.shape == (len(bundle.items), 16)
        np.testing.assert_allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-5)
    assert bundle.report()["text_visual"]["int8_float_code_cosine"] > 0.8


def test_encoder_from_the_bundle_maps_words_and_refuses_a_model_path(bundle):
    repair = WordRepair(bundle.vocabulary)
    words = repair.normalize(bundle.items[3].title).words
    with TextVisualEncoder.create_from_bundle(bundle, TextVisualOptions(precision="float")) as encoder:
        ids = encoder.ids(words)
        assert ids[: len(words)].tolist() == [bundle.vocabulary.index[w] + 1 for w in words]
        codes = encoder.encode_texts([words, words[:1]]).codes
        assert codes.shape == (2, 16) and not np.allclose(codes[0], codes[1])
    with pytest.raises(ValueError, match="model_path must be None"):
        TextVisualEncoder.create_from_bundle(bundle, TextVisualOptions(model_path="x.tflite"))


def test_the_build_fits_identification_weights_on_products_it_held_out(bundle, tiny_bundle, tmp_path):
    import shutil

    from vitrina.runtime.bundle import BundleFormatError

    report = bundle.report()["text_visual"]
    fit = report["identify_weights"]
    assert report["validation_products"] == 48 and fit["queries"] > 0
    # the grid holds equal weights, so the fitted ones are never worse on the scenes they fit
    assert fit["accuracy"] >= fit["equal_weights_accuracy"]
    assert identify_weights(bundle).to_json() == fit["weights"] == bundle.manifest["text_visual"]["identify_weights"]

    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["text_visual"]["identify_weights"]["objectness"] = -2
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match="identify_weights: identification weight objectness must be"):
        identify_weights(Bundle.open(copy))
    del manifest["text_visual"]["identify_weights"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert identify_weights(Bundle.open(copy)) == FactorWeights()  # a bundle from before the fit


def test_identification_on_the_tiny_composed_scenes(bundle):
    from vitrina.runtime.evaluate_identify import evaluate_identify, pick_nearest

    assert pick_nearest(np.array([1.0, 0.0]), np.array([[0.0, 1.0], [0.8, 0.6], [0.6, 0.8]])) == 1
    report = evaluate_identify(bundle, num_threads=1)
    scenes = bundle.eval_scenes()
    counts = scenes.products_per_scene()
    multi = counts[counts >= 2]
    assert report.scenes == len(multi) and report.queries["all"] == int(multi.sum())
    for precision in ("int8", "float"):
        gt = report.accuracy[precision]["gt"]
        # a random pick among n ground-truth boxes is right 1/n of the time, whatever the model
        assert gt["random"]["all"] == pytest.approx(len(multi) / multi.sum())
        for method in ("text-visual", "plausibility", "combined", "equal weights", "category"):
            assert 0.0 <= gt[method]["all"] <= 1.0
    assert report.weights == identify_weights(bundle)
    json_form = report.to_json()
    assert set(json_form["accuracy"]["int8"]) == {"gt", "detector"}
