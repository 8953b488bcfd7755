"""The product detector: scene composition, NMS, crops, the tiny-profile detector through
LiteRT, photo search through it, and the CLI's photo commands."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitrina.export.build_detector import DetectorProfile
from vitrina.export.data.scenes import (
    BACKGROUNDS,
    OTHER_BACKGROUNDS,
    PATTERN_BACKGROUNDS,
    SceneOptions,
    compose_scene,
    compose_scenes,
    cut_out,
)
from vitrina.export.profiles import PROFILES
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.cli import main
from vitrina.runtime.detector import (
    DetectionResult,
    Detector,
    DetectorOptions,
    crop_box,
    iou_matrix,
    letterbox,
    nms,
    unletterbox,
)
from vitrina.runtime.photo import prepare_photo
from vitrina.runtime.photo_search import NO_DETECTION, NO_DETECTOR, WHOLE_IMAGE
from vitrina.runtime.product_search import ProductSearch


def product(h: int, w: int, rgb=(200, 30, 45)) -> np.ndarray:
    """A (h, w) product photo on white: an ellipse of ``rgb`` with a margin."""
    yy, xx = np.mgrid[0:h, 0:w]
    inside = ((yy - h / 2) / (h * 0.4)) ** 2 + ((xx - w / 2) / (w * 0.4)) ** 2 <= 1
    out = np.full((h, w, 3), 255, np.uint8)
    out[inside] = rgb
    return out


# --- scenes ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_scene_boxes_match_the_product_pixels(seed):
    rng = np.random.default_rng(seed)
    options = SceneOptions(size=96, clutter=0, backgrounds=("flat",), non_square=0.0, max_occlusion=0.0)
    image, boxes, placed = compose_scene(
        rng, [product(28, 20), product(20, 28, (30, 60, 200))], ["top", "bottom"], options
    )
    background = image[0, 0]
    changed = np.any(image != background, axis=2)
    assert len(boxes) == len(placed) >= 1
    inside = np.zeros_like(changed)
    for x0, y0, x1, y1 in boxes.astype(int):
        inside[y0:y1, x0:x1] = True
        # every edge row and column of a box holds product pixels: the box is tight
        assert changed[y0, x0:x1].any() and changed[y1 - 1, x0:x1].any()
        assert changed[y0:y1, x0].any() and changed[y0:y1, x1 - 1].any()
    assert not changed[~inside].any()  # nothing outside the boxes but background


@pytest.mark.parametrize("kind", PATTERN_BACKGROUNDS + OTHER_BACKGROUNDS)
def test_patterned_backgrounds_are_patterns_around_the_products(kind):
    rng = np.random.default_rng(11)
    options = SceneOptions(size=96, clutter=0, backgrounds=(kind,), non_square=0.0)
    image, boxes, _ = compose_scene(rng, [product(28, 20)], ["top"], options)
    outside = np.ones(image.shape[:2], bool)
    for x0, y0, x1, y1 in boxes.astype(int):
        outside[y0:y1, x0:x1] = False
    pixels = image[outside].astype(np.float64)
    assert image.dtype == np.uint8 and image.shape == (96, 96, 3)
    # a pattern, not a flat wall: the background varies beyond its grain, across rows and columns
    assert pixels.std(axis=0).max() > 12
    assert np.abs(np.diff(image.astype(np.float64), axis=0)).mean() > 1
    assert np.abs(np.diff(image.astype(np.float64), axis=1)).mean() > 1


def test_the_detector_never_trains_on_the_second_stores_backgrounds():
    assert not set(PATTERN_BACKGROUNDS) & set(BACKGROUNDS + OTHER_BACKGROUNDS)
    for name, profile in PROFILES.items():
        if profile.detector is not None:
            kinds = set(profile.detector.train_backgrounds)
            assert set(BACKGROUNDS) <= kinds and not kinds & set(OTHER_BACKGROUNDS), name
    with pytest.raises(ValueError, match="never trained on"):
        DetectorProfile(train_backgrounds=BACKGROUNDS + OTHER_BACKGROUNDS)
    with pytest.raises(ValueError, match="non-empty"):
        DetectorProfile(train_backgrounds=())


def test_scene_set_follows_the_pool_split_and_seed():
    pool = np.stack([product(28, 28, (i * 20, 40, 90)) for i in range(12)])
    items = np.arange(100, 112, dtype=np.int32)
    labels = np.arange(12, dtype=np.int32) % 3
    a = compose_scenes(
        pool, items, labels, ["Trouser", "Bag", "Sneaker"], count=30, seed=5, options=SceneOptions(size=64)
    )
    b = compose_scenes(
        pool, items, labels, ["Trouser", "Bag", "Sneaker"], count=30, seed=5, options=SceneOptions(size=64)
    )
    c = compose_scenes(
        pool, items, labels, ["Trouser", "Bag", "Sneaker"], count=30, seed=6, options=SceneOptions(size=64)
    )
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert set(a.box_items.tolist()) <= set(items.tolist())
    assert np.array_equal(a.box_labels, labels[a.box_items - 100])
    per_scene = a.products_per_scene()
    assert per_scene.min() >= 1 and per_scene.max() <= 5 and len(set(per_scene.tolist())) >= 3
    sides = np.maximum(a.boxes[:, 2] - a.boxes[:, 0], a.boxes[:, 3] - a.boxes[:, 1]) / 64
    assert sides.min() >= 0.1 and sides.max() <= 0.75


def test_cut_out_is_opaque_inside_the_silhouette():
    crop, alpha = cut_out(product(28, 20))
    assert crop.shape[:2] == alpha.shape and alpha.shape[0] < 28
    assert alpha[alpha.shape[0] // 2, alpha.shape[1] // 2] == 1.0


# --- boxes, NMS, letterbox, crops ------------------------------------------------------
def brute_force_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, max_boxes: int) -> list[int]:
    """Reference: visit boxes best first; keep one unless a kept box overlaps it by more than ``iou``."""

    def pair_iou(a, b) -> float:
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0

    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda j: (-scores[j], j)):
        if all(pair_iou(boxes[i], boxes[j]) <= iou for j in kept):
            kept.append(i)
    return kept[:max_boxes]


@pytest.mark.parametrize("seed", range(20))
def test_nms_matches_a_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 60))
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(2, 40, (n, 2))
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    scores = rng.choice([0.1, 0.5, 0.9], n) if seed % 2 else rng.uniform(0, 1, n)  # ties too
    iou, max_boxes = float(rng.uniform(0.2, 0.8)), int(rng.integers(1, 30))
    assert nms(boxes, scores, iou, max_boxes).tolist() == brute_force_nms(boxes, scores, iou, max_boxes)


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert np.allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_letterbox_keeps_the_aspect_and_unletterbox_undoes_it():
    image = np.zeros((50, 100, 3), np.uint8)
    square, scale, offset = letterbox(image, 64)
    assert square.shape == (64, 64, 3) and scale == pytest.approx(0.64) and offset == (0, 16)
    assert (square[:16] == 114).all() and (square[16:48] == 0).all()
    box = np.array([[10, 20, 30, 40]], np.float32)
    in_square = box * scale + np.array([0, 16, 0, 16])
    assert np.allclose(unletterbox(in_square, scale, offset, (100, 50)), box, atol=1e-4)


def test_crop_pads_to_a_square_and_never_stretches():
    scene = Image.new("RGB", (200, 200), (0, 120, 0))
    crop = crop_box(scene, (50.4, 20.0, 90.2, 180.0))  # tall: 40 × 160 (rounded outwards)
    assert crop.size == (41, 160)
    pixels = prepare_photo(crop, 48)
    green = np.all(pixels == (0, 120, 0), axis=2) | (np.abs(pixels.astype(int) - (0, 120, 0)).sum(axis=2) < 30)
    cols = np.flatnonzero(green.any(axis=0))
    assert green[:, 0].sum() == 0 and green[:, -1].sum() == 0  # white padding at the sides
    assert 10 <= cols.max() - cols.min() + 1 <= 14  # 41/160 of 48 px wide: aspect kept
    assert crop_box(scene, (-5, -5, 0.2, 0.1)).size == (1, 1)  # clipped, at least one pixel


def test_options_are_checked():
    for bad in ({"score_threshold": 0.0}, {"iou_threshold": 1.5}, {"max_boxes": 0}, {"precision": "fp16"}):
        with pytest.raises(ValueError):
            DetectorOptions(**bad)


# --- the tiny detector through LiteRT -------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tiny_bundle: Path) -> Bundle:
    return Bundle.open(tiny_bundle)


def test_bundle_carries_the_detector_in_both_precisions(bundle, tiny_bundle, capsys):
    assert set(bundle.manifest["models"]["detector"]) == {"int8", "float"}
    assert main(["info", "--bundle", str(tiny_bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"]["detector"] == ["float", "int8"]
    with Detector.create_from_bundle(bundle) as detector:
        assert detector.quantized and detector.input_size == bundle.eval_scenes().images.shape[1]


def test_detection_on_held_out_composed_scenes(bundle):
    scenes = bundle.eval_scenes()
    found = {}
    for precision in ("float", "int8"):
        with Detector.create_from_bundle(bundle, DetectorOptions(precision=precision)) as detector:
            best = []
            for i, image in enumerate(scenes.images):
                result = detector.detect(image)
                assert result.boxes.dtype == np.float32 and result.boxes.shape == (len(result), 4)
                assert np.all(np.diff(result.scores) <= 0) and len(result) <= detector.options.max_boxes
                probs = result.category_probs
                assert probs is not None and probs.shape == (len(result), len(detector.category_names))
                np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
                assert np.array_equal(probs.argmax(axis=1), result.categories)
                rows = scenes.rows(i)
                best.extend(
                    iou_matrix(scenes.boxes[rows], result.boxes).max(axis=1) if len(result) else [0.0] * len(rows)
                )
            found[precision] = np.array(best)
    # a tiny model trained for seconds: it must find most products, not all of them
    assert (found["float"] >= 0.3).mean() >= 0.6
    assert abs((found["float"] >= 0.3).mean() - (found["int8"] >= 0.3).mean()) <= 0.15


def test_detect_maps_boxes_to_the_input_image(bundle):
    scenes = bundle.eval_scenes()
    with Detector.create_from_bundle(bundle, DetectorOptions(precision="float")) as detector:
        small = detector.detect(scenes.images[0])
        big = detector.detect(
            Image.fromarray(scenes.images[0]).resize((scenes.images.shape[2] * 3, scenes.images.shape[1] * 2))
        )
    assert big.image_size == (scenes.images.shape[2] * 3, scenes.images.shape[1] * 2)
    assert len(small) and len(big)
    # the stretched copy's best box, mapped back, lies where the original's does
    mapped = big.boxes[:1] / np.array([3, 2, 3, 2], np.float32)
    assert iou_matrix(mapped, small.boxes).max() > 0.3


# --- photo search through the detector ------------------------------------------------
def test_by_photo_searches_the_chosen_box(bundle):
    scene = Image.fromarray(bundle.eval_scenes().images[0])
    w, h = scene.size
    boxes = np.array([[0, 0, w / 2, h / 2], [w / 4, h / 4, w, h]], np.float32)  # box 1 is the largest
    detections = DetectionResult(
        boxes, np.array([0.9, 0.8], np.float32), np.zeros(2, np.int32), bundle.categories, (w, h)
    )
    with ProductSearch(bundle) as engine:
        chosen = engine.by_photo(scene, 5, 0, detections=detections)
        default = engine.by_photo(scene, 5, detections=detections)
        crop = engine.by_photo(
            crop_box(scene, boxes[0]),
            5,
            detections=DetectionResult(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int32)),
        )
        with pytest.raises(ValueError, match="box 2 is out of range"):
            engine.by_photo(scene, 5, 2, detections=detections)
        detected = engine.by_photo(scene, 5)
    assert chosen.searched_box == 0 and chosen.fallback is None and chosen.detections is detections
    assert default.searched_box == 1
    assert [m.item for m in chosen.matches] == [m.item for m in crop.matches]  # the crop, not the whole photo
    assert [m.item for m in default.matches] != [m.item for m in chosen.matches] or chosen.matches == default.matches
    assert detected.detections is not None and len(detected.matches) == 5


def test_by_photo_without_a_detection_searches_the_whole_photo(bundle):
    scene = Image.fromarray(bundle.eval_scenes().images[1])
    none = DetectionResult(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int32))
    with ProductSearch(bundle) as engine:
        result = engine.by_photo(scene, 5, detections=none)
        whole = engine._search(engine._photo.embed_photos([scene]), 5)
    assert result.searched_box is None and result.fallback == WHOLE_IMAGE and result.fallback_reason == NO_DETECTION
    assert [m.item for m in result.matches] == [m.item for m in whole.matches]


@pytest.fixture(scope="module")
def bundle_without_detector(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("no-detector") / "bundle"
    shutil.copytree(tiny_bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    for rel in manifest["models"].pop("detector").values():
        (out / rel).unlink()
        del manifest["files"][rel]
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def test_a_bundle_without_a_detector_searches_whole_photos(bundle_without_detector, tmp_path, capsys):
    bundle = Bundle.open(bundle_without_detector)
    assert not bundle.has_detector
    scene = Image.fromarray(bundle.eval_scenes().images[0])
    with ProductSearch(bundle) as engine:
        result = engine.by_photo(scene, 5)
        with pytest.raises(ValueError, match="no detector"):
            engine.by_photo(scene, 5, 0)
    assert result.fallback == WHOLE_IMAGE and result.fallback_reason == NO_DETECTOR and len(result.matches) == 5
    scene.save(tmp_path / "scene.png")
    assert (
        main(["search", "--bundle", str(bundle_without_detector), "--photo", str(tmp_path / "scene.png"), "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["fallback"] == "whole image" and out["searched_box"] is None and out["boxes"] == []
    assert main(["detect", "--bundle", str(bundle_without_detector), "--photo", str(tmp_path / "scene.png")]) == 2
    assert "has no detector" in capsys.readouterr().err


# --- CLI -------------------------------------------------------------------------------
def test_cli_detect_and_search_a_photo(tiny_bundle, bundle, tmp_path, capsys):
    scene = Image.fromarray(bundle.eval_scenes().images[2]).resize((900, 600))  # boxes come back in these pixels
    scene.save(tmp_path / "scene.jpg", quality=92)
    assert main(["detect", "--bundle", str(tiny_bundle), "--photo", str(tmp_path / "scene.jpg"), "--json"]) == 0
    detected = json.loads(capsys.readouterr().out)
    assert detected["image_size"] == [900, 600] and detected["boxes"]
    for b in detected["boxes"]:
        x0, y0, x1, y1 = b["box"]
        assert 0 <= x0 < x1 <= 900 and 0 <= y0 < y1 <= 600 and 0 < b["score"] < 1 and b["category"] in bundle.categories
    n = len(detected["boxes"])
    assert (
        main(
            [
                "search",
                "--bundle",
                str(tiny_bundle),
                "--photo",
                str(tmp_path / "scene.jpg"),
                "--box",
                str(n - 1),
                "-k",
                "4",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["searched_box"] == n - 1 and out["fallback"] is None and len(out["results"]) == 4
    assert [b["box"] for b in out["boxes"]] == [b["box"] for b in detected["boxes"]]
    assert main(["search", "--bundle", str(tiny_bundle), "--photo", str(tmp_path / "scene.jpg")]) == 0
    assert "searched box" in capsys.readouterr().out


def bomb(path: Path) -> Path:
    header = struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0)
    chunk = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    end = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk + end)
    return path


BAD_FILES = [
    (lambda p: p.write_bytes(b"not an image at all"), [], "not a"),
    (lambda p: p.write_bytes(b""), [], "is empty"),
    (lambda p: None, [], "does not exist"),
    (bomb, [], "over the 32 MP"),
]
BAD_BOX = (
    lambda p: Image.new("RGB", (64, 64), "white").save(p, format="PNG"),
    ["--box", "99"],
    "box 99 is out of range",
)


@pytest.mark.parametrize(
    ("command", "make", "args", "words"),
    [(c, *case) for c in ("detect", "search") for case in BAD_FILES] + [("search", *BAD_BOX)],
)
def test_cli_photo_errors_exit_2(tiny_bundle, tmp_path, capsys, command, make, args, words):
    path = tmp_path / "photo.png"
    make(path)
    assert main([command, "--bundle", str(tiny_bundle), "--photo", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_cli_box_needs_a_photo(tiny_bundle, strokes_file, capsys):
    assert main(["search", "--bundle", str(tiny_bundle), "--strokes", str(strokes_file), "--box", "0"]) == 2
    assert "needs --photo" in capsys.readouterr().err


def test_a_huge_photo_is_downscaled_not_refused(tiny_bundle, bundle, tmp_path, capsys):
    Image.fromarray(bundle.eval_scenes().images[3]).resize((6000, 4000)).save(tmp_path / "huge.jpg", quality=80)
    assert main(["detect", "--bundle", str(tiny_bundle), "--photo", str(tmp_path / "huge.jpg"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["image_size"] == [6000, 4000]
    assert all(b["box"][2] <= 6000 and b["box"][3] <= 4000 for b in out["boxes"])


def test_eval_tasks_print_tables(tiny_bundle, capsys):
    assert main(["eval", "--bundle", str(tiny_bundle), "--task", "detect", "--json"]) == 0
    detect = json.loads(capsys.readouterr().out)
    for p in ("float", "int8"):
        assert 0 <= detect[p]["recall50"] <= 1 and detect[p]["ap50"] is not None and 0 <= detect[p]["ap50"] <= 1
        assert set(detect[p]["recall50_by_products"]) <= {"1", "2", "3", "4", "5"}
    assert main(["eval", "--bundle", str(tiny_bundle), "--task", "photo", "--json"]) == 0
    photo = json.loads(capsys.readouterr().out)
    assert set(photo["multi_product"]) == {"gt_box", "detector_box", "whole_image"}
    assert 0 <= photo["multi_product"]["gt_box"]["int8"]["p_at_10"] <= 1
    assert main(["eval", "--bundle", str(tiny_bundle), "--task", "detect"]) == 0
    assert "recall at IoU >= 0.5 by products per scene" in capsys.readouterr().out
