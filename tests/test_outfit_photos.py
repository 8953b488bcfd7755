"""Outfit photos in the demo catalog, main-product identification at export, and
``vitrina eval --task outfit``: a real Fashion-MNIST catalog with outfit photos, a
real tiny build (real TFLite detector and text-visual model through LiteRT)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitrina.export.data.catalog import load_catalog
from vitrina.export.data.demo_catalog import write_demo_catalog
from vitrina.export.data.outfit_photos import OutfitComposer, OutfitOptions, load_outfit_truth
from vitrina.export.identify_products import identify_main_products, packshot_mask
from vitrina.export.outfit_eval import prepared_box
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.cli import main
from vitrina.runtime.color_search import ColorFamilies
from vitrina.runtime.identify import colour_shares
from vitrina.runtime.text import WordRepair
from vitrina.runtime.text_visual import TextVisualEncoder, TextVisualOptions, square_crop

OUTFIT_TRAIN, OUTFIT_TEST = 340, 80  # >= 200 train packshots for int8 calibration


@pytest.fixture(scope="module")
def outfit_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("outfit-catalog")
    write_demo_catalog(out, limit_train=OUTFIT_TRAIN, limit_test=OUTFIT_TEST, outfits=OutfitOptions(share=0.3))
    return out


@pytest.fixture(scope="module")
def outfit_bundle(outfit_catalog: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vitrina.export.build import BuildOptions, build_bundle

    out = tmp_path_factory.mktemp("outfit-bundles") / "tiny"
    build_bundle(outfit_catalog, out, BuildOptions(profile="tiny", workers=1, progress=False))
    return out


def test_a_share_of_products_get_outfit_photos_and_the_rest_stay_on_white(outfit_catalog: Path) -> None:
    truth = load_outfit_truth(outfit_catalog)
    catalog = load_catalog(outfit_catalog, image_size=64, progress=False)
    share = len(truth) / len(catalog.items)
    assert 0.2 < share < 0.4
    is_outfit = np.array([p in truth for p in catalog.image_paths])
    # the border test tells them apart, knowing nothing of the ground truth
    assert np.array_equal(packshot_mask(catalog.images), ~is_outfit)
    # the sold product is where the truth says: its true crop looks like its photo on white
    # (on the product's own pixels) more than the other products' crops do
    wins = 0
    for rel in list(truth)[:30]:
        record = truth[rel]
        row = catalog.image_paths.index(rel)
        alone = np.asarray(Image.open(outfit_catalog / record.packshot).convert("RGB").resize((32, 32)), np.float32)
        product = alone.min(axis=2) < 230
        boxes = json.loads((outfit_catalog / "outfits.json").read_text())[rel]["boxes"]
        assert record.products == len(boxes) >= 2
        errors = [
            np.abs(square_crop(catalog.images[row], 32, prepared_box(b, (128, 128), 64)).astype(np.float32) - alone)[
                product
            ].mean()
            for b in boxes
        ]
        wins += int(np.argmin(errors) == 0)
    assert wins >= 0.9 * min(30, len(truth))


def test_outfit_photos_never_mix_train_and_test_products() -> None:
    composer = OutfitComposer(OutfitOptions(share=1.0))
    rng = np.random.default_rng(0)
    red, blue = np.full((28, 28, 3), 255, np.uint8), np.full((28, 28, 3), 255, np.uint8)
    red[6:22, 6:22] = (220, 0, 0)
    blue[6:22, 6:22] = (0, 0, 220)
    for _ in range(20):
        composer(red, category="Bag", split="train", rng=rng)
    photos = []
    for _ in range(20):
        photo = composer(blue, category="Bag", split="test", rng=rng)
        if composer.last is not None:
            photos.append(photo)
    assert photos, "no test outfit photo was composed"
    for photo in photos:
        reds = (photo[..., 0] > 180) & (photo[..., 1] < 40) & (photo[..., 2] < 40)
        assert not reds.any()


def test_bad_outfit_options_are_refused() -> None:
    with pytest.raises(ValueError, match="share"):
        OutfitOptions(share=1.5)
    with pytest.raises(ValueError, match="max_others"):
        OutfitOptions(max_others=0)


def test_packshot_mask_refuses_what_is_not_rgb_photos() -> None:
    with pytest.raises(ValueError, match="uint8"):
        packshot_mask(np.zeros((2, 8, 8), np.uint8))


def test_the_build_identifies_outfit_photos_and_trains_on_packshots_only(
    outfit_bundle: Path, outfit_catalog: Path
) -> None:
    bundle = Bundle.open(outfit_bundle)
    report = bundle.report()
    truth = load_outfit_truth(outfit_catalog)
    ident = report["identification"]
    assert ident["other_photos"] == len(truth)
    assert ident["packshots"] == ident["photos"] - len(truth)
    assert ident["several_products"] + ident["one_product"] + ident["no_product_found"] == len(truth)
    assert ident["method"] == "combined"
    catalog = load_catalog(outfit_catalog, image_size=32, progress=False)
    train_packshots = sum(
        1 for i, item in enumerate(catalog.items) if item.split == "train" and catalog.image_paths[i] not in truth
    )
    # the text-visual model trains on the packshots but the ones held out to fit identification
    held = report["text_visual"]["validation_products"]
    assert 0 < held <= train_packshots // 10
    assert report["text_visual"]["train_products"] == train_packshots - held
    # eval queries are sketches of packshot products only; the gallery is every test product
    eval_set = bundle.eval_set()
    outfit_items = {catalog.image_paths.index(rel) for rel in truth}
    assert not set(eval_set.query_items.tolist()) & outfit_items
    assert outfit_items & set(eval_set.gallery_items.tolist())


def test_identification_picks_the_crop_with_the_best_combined_evidence(
    outfit_bundle: Path, outfit_catalog: Path
) -> None:
    bundle = Bundle.open(outfit_bundle)
    catalog = load_catalog(outfit_catalog, image_size=32, progress=False)
    rows = np.flatnonzero(~packshot_mask(catalog.images))[:12]
    categories = np.array([bundle.categories.index(catalog.items[catalog.image_items[r]].category) for r in rows])
    families = ColorFamilies.from_mapping(bundle.manifest["colors"])
    colours = families.of_items([catalog.items[catalog.image_items[r]].color for r in rows])
    assert (colours >= 0).all()
    with TextVisualEncoder.create_from_bundle(bundle, TextVisualOptions(batch_size=8)) as encoder:
        repair = WordRepair.create_from_vocabulary(bundle.vocabulary)
        ids = np.stack([encoder.ids(repair.normalize(catalog.items[r].title).words) for r in rows])
        result = identify_main_products(
            lambda row: catalog.images[row],
            rows,
            detector_model=bundle.model_path("detector", "int8").read_bytes(),
            score_threshold=float(bundle.manifest["detector"]["score_threshold"]),
            text_visual_model=bundle.model_path("textvisual", "int8").read_bytes(),
            title_ids=ids,
            title_categories=categories,
            families=families,
            title_families=colours,
            crop_size=24,
            progress=False,
        )
        from vitrina.runtime.detector import Detector, DetectorOptions

        options = DetectorOptions(score_threshold=float(bundle.manifest["detector"]["score_threshold"]))
        with Detector.create_from_bundle(bundle, options) as detector:
            for k, row in enumerate(rows):
                found = detector.detect(catalog.images[row])
                assert result.found[k] == len(found)
                if not len(found):
                    assert np.isnan(result.boxes[k]).all()
                    continue
                crops = np.stack([square_crop(catalog.images[row], encoder.image_size, b) for b in found.boxes])
                plaus = encoder.encode(words=np.repeat(ids[k][None], len(found), 0), images=crops).plausibility
                assert found.category_probs is not None
                # the product of the four factors, computed here apart from runtime/identify.py's sum of logs
                shares = colour_shares(families.of_pixels(catalog.images[row]), found.boxes, int(colours[k]))
                evidence = plaus * found.scores * found.category_probs[:, categories[k]] * (shares + 0.01)
                best = found.boxes[int(np.argmax(evidence))]
                assert np.allclose(result.boxes[k], best)
                assert np.array_equal(result.crops[k], square_crop(catalog.images[row], 24, best))
    assert result.side == catalog.images.shape[1]
    assert result.crops.shape == (len(rows), 24, 24, 3) and result.crops.dtype == np.uint8
    with pytest.raises(ValueError, match="one category per photo"):
        identify_main_products(
            lambda row: catalog.images[row],
            rows,
            detector_model=b"",
            score_threshold=0.2,
            text_visual_model=None,
            title_ids=None,
            title_categories=categories[:1],
            crop_size=24,
            progress=False,
        )


def test_identification_without_a_text_visual_model_picks_the_largest_box(outfit_bundle: Path) -> None:
    bundle = Bundle.open(outfit_bundle)
    scenes = bundle.eval_scenes()
    result = identify_main_products(
        lambda row: scenes.images[row],
        np.arange(6),
        detector_model=bundle.model_path("detector", "int8").read_bytes(),
        score_threshold=float(bundle.manifest["detector"]["score_threshold"]),
        text_visual_model=None,
        title_ids=None,
        crop_size=16,
        progress=False,
    )
    assert result.method == "largest"
    found = ~np.isnan(result.boxes).any(axis=1)
    assert np.array_equal(found, result.found > 0)


def test_identification_needs_one_title_per_photo() -> None:
    with pytest.raises(ValueError, match="one title"):
        identify_main_products(
            lambda row: np.zeros((16, 16, 3), np.uint8),
            np.arange(2),
            detector_model=b"",
            score_threshold=0.1,
            text_visual_model=b"model",
            title_ids=np.zeros((1, 9), np.int32),
            crop_size=16,
        )


def test_eval_outfit_prints_the_three_indexings(outfit_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--bundle", str(outfit_bundle), "--task", "outfit", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["metrics"]) == {"int8", "float"}
    for by in report["metrics"].values():
        assert set(by) == {"whole", "identified", "truth"}
        for m in by.values():
            assert 0.0 <= m["map"] <= 1.0 and 0.0 <= m["acc_at_10"] <= 1.0
    assert report["photos"]["all"] > 0 and 0.0 <= report["identified"]["all"] <= 1.0
    assert main(["eval", "--bundle", str(outfit_bundle), "--task", "outfit"]) == 0
    table = capsys.readouterr().out
    assert "identified" in table and "truth" in table and "IoU >= 0.5" in table


def test_eval_outfit_on_a_bundle_without_outfit_photos_says_so(
    tiny_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--bundle", str(tiny_bundle), "--task", "outfit"]) == 2
    assert "no outfit eval set" in capsys.readouterr().err


def test_eval_similar_compares_whole_images_with_one_representative_crop(
    outfit_bundle: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--bundle", str(outfit_bundle), "--task", "similar", "--json"]) == 0
    methods = json.loads(capsys.readouterr().out)["methods"]
    for p in ("int8", "float"):
        assert {f"text-visual {p} (whole image)", f"text-visual {p}, one crop"} <= set(methods)
    assert {"visual float (whole image)", "visual float, one crop"} <= set(methods)
    # the two differ only in the outfit products' codes: same queries, other neighbours
    whole, crop = methods["text-visual int8 (whole image)"], methods["text-visual int8, one crop"]
    assert whole["queries"] == crop["queries"]
    assert whole != crop


def test_eval_similar_without_outfit_photos_notes_it(tiny_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", "--bundle", str(tiny_bundle), "--task", "similar", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "text-visual int8" in report["methods"]
    assert any("one representative crop" in n for n in report["notes"])


@pytest.fixture(scope="module")
def second_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("second-store")
    write_demo_catalog(out, limit_test=60, store="second", outfits=OutfitOptions(share=0.3))
    return out


def test_eval_identify_on_another_store(
    outfit_bundle: Path, second_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "--bundle", str(outfit_bundle), "--task", "identify", "--store-catalog", str(second_store)]
    assert main([*args, "--store-scenes", "30", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0 < report["scenes"] <= 30
    gt = report["accuracy"]["int8"]["gt"]
    assert set(gt) == {"text-visual", "plausibility", "combined", "equal weights", "category", "random"}
    assert set(report["weights"]) == {"plausibility", "objectness", "category", "colour"}
    assert 0.0 <= gt["plausibility"]["all"] <= 1.0
    assert main([*args, "--store-scenes", "30"]) == 0
    assert f"of {second_store.name}" in capsys.readouterr().out


def test_eval_similar_on_another_store(
    outfit_bundle: Path, second_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["eval", "--bundle", str(outfit_bundle), "--task", "similar", "--store-catalog", str(second_store)]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["gallery"] == 60 and report["store"] == second_store.name
    for p in ("int8", "float"):
        assert {f"text-visual {p} (whole image)", f"text-visual {p}, one crop"} <= set(report["methods"])
    assert {"visual float (whole image)", "visual float, one crop"} <= set(report["methods"])


def test_store_catalog_goes_with_identify_or_similar_only(
    outfit_bundle: Path, second_store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["eval", "--bundle", str(outfit_bundle), "--task", "text", "--store-catalog", str(second_store)]) == 2
    assert "--store-catalog goes with --task identify or similar" in capsys.readouterr().err
