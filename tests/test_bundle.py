import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import TINY_TEST, TINY_TRAIN
from vitrina.runtime.bundle import (
    FORMAT_VERSION,
    Bundle,
    BundleContents,
    BundleFormatError,
    BundleIntegrityError,
    BundleNotFoundError,
    BundleVersionError,
    Item,
    write_bundle,
)
from vitrina.runtime.files import sha256_file
from vitrina.runtime.rasterize import RasterOptions


@pytest.fixture()
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(tiny_bundle, target)
    return target


def test_round_trip(tiny_bundle):
    bundle = Bundle.open(tiny_bundle)
    m = bundle.manifest
    assert m["format_version"] == FORMAT_VERSION and m["catalog"]["items"] == TINY_TRAIN + TINY_TEST
    assert len(bundle.items) == TINY_TRAIN + TINY_TEST
    assert isinstance(bundle.codes, np.memmap) and bundle.codes.dtype == np.float32
    assert bundle.codes.shape == (TINY_TRAIN + TINY_TEST, m["codes"]["dims"])
    np.testing.assert_allclose(np.linalg.norm(bundle.codes, axis=1), 1.0, atol=1e-4)
    assert set(m["files"]) >= {
        "items.json",
        "codes/codes.npy",
        "models/sketch_int8.tflite",
        "models/photo_float.tflite",
        "eval/sketches.npy",
    }
    thumb = bundle.thumbnail(5)
    assert thumb.shape == (28, 28, 3) and thumb.dtype == np.uint8
    eval_set = bundle.eval_set()
    assert len(eval_set.gallery_items) == TINY_TEST
    assert all(bundle.items[i].split == "test" for i in eval_set.query_items)
    assert bundle.report()["quantization"]["sketch"]["queries"] == len(eval_set.sketches)
    assert bundle.raster_options.size == eval_set.sketches.shape[1]
    strokes = bundle.eval_strokes()
    assert len(strokes) == min(200, len(eval_set.query_items))
    item, lines = strokes[0]
    assert bundle.items[item].split == "test" and lines[0].ndim == 2 and lines[0].shape[1] == 2


def test_thumbnail_matches_catalog_image(tiny_bundle, demo_catalog):
    from PIL import Image

    bundle = Bundle.open(tiny_bundle)
    item = bundle.items[7]
    index = int(item.id.split("-")[-1])
    source = np.asarray(Image.open(demo_catalog / f"images/tr{index:05d}.png").convert("RGB")).astype(int)
    assert np.abs(bundle.thumbnail(7).astype(int) - source).mean() < 12


def test_missing_bundle(tmp_path):
    with pytest.raises(BundleNotFoundError, match="not a directory"):
        Bundle.open(tmp_path / "nothing")
    with pytest.raises(BundleNotFoundError, match="manifest.json is missing"):
        Bundle.open(tmp_path)


def edit_manifest(path: Path, **changes) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.update(changes)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_newer_format_version(bundle_copy):
    edit_manifest(bundle_copy, format_version=FORMAT_VERSION + 1)
    with pytest.raises(BundleVersionError, match="newer than this runtime"):
        Bundle.open(bundle_copy)


def test_not_a_vitrina_manifest(bundle_copy):
    edit_manifest(bundle_copy, format="something-else")
    with pytest.raises(BundleVersionError, match="not a vitrina-bundle manifest"):
        Bundle.open(bundle_copy)


def test_manifest_not_json(bundle_copy):
    (bundle_copy / "manifest.json").write_text("{broken")
    with pytest.raises(BundleFormatError, match="not valid JSON"):
        Bundle.open(bundle_copy)


def test_missing_file(bundle_copy):
    (bundle_copy / "models/sketch_int8.tflite").unlink()
    with pytest.raises(BundleIntegrityError, match="sketch_int8.tflite is missing"):
        Bundle.open(bundle_copy)


def test_truncated_array(bundle_copy):
    path = bundle_copy / "codes/codes.npy"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(BundleIntegrityError, match="codes.npy is truncated"):
        Bundle.open(bundle_copy)
    # sizes are checked even when hashing is lazy
    with pytest.raises(BundleIntegrityError, match="codes.npy is truncated"):
        Bundle.open(bundle_copy, verify=False)
    # a truncated array the manifest agrees with: its header no longer matches its size
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["files"]["codes/codes.npy"] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleFormatError, match="codes.npy is not a readable array: the header says"):
        Bundle.open(bundle_copy)


def test_tampered_file(bundle_copy):
    path = bundle_copy / "models/photo_int8.tflite"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleIntegrityError, match="photo_int8.tflite is corrupt"):
        Bundle.open(bundle_copy)


def test_unsafe_path_in_manifest(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["files"]["../outside"] = {"sha256": "0" * 64, "size": 1}
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleIntegrityError, match="unsafe path"):
        Bundle.open(bundle_copy)


def test_no_pickles_in_arrays(tiny_bundle):
    for path in Path(tiny_bundle).rglob("*.npy"):
        np.load(path, allow_pickle=False)  # raises if an array needed pickle


def small_contents(n: int = 3, dims: int = 4) -> BundleContents:
    codes = np.eye(n, dims, dtype=np.float32)
    return BundleContents(
        catalog_name="mini",
        items=[Item(f"P{i}", f"Producto {i}", "Bag", "rojo", 10.0 + i) for i in range(n)],
        models={},
        codes=codes,
        code_items=np.arange(n, dtype=np.int32),
        thumbnails=np.full((n, 8, 8, 3), 200, np.uint8),
        raster=RasterOptions(size=32),
        photo_size=32,
    )


def test_rewrite_is_atomic_and_failed_write_keeps_old(tmp_path):
    out = tmp_path / "b"
    write_bundle(out, small_contents(3))
    assert len(Bundle.open(out).items) == 3
    write_bundle(out, small_contents(5))
    assert len(Bundle.open(out).items) == 5
    bad = small_contents(2)
    bad = BundleContents(**{**bad.__dict__, "code_items": np.array([0, 7], np.int32)})
    with pytest.raises(ValueError, match="code_items must index"):
        write_bundle(out, bad)
    assert len(Bundle.open(out).items) == 5
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no staging leftovers


def test_thumbnails_span_several_sheets(tmp_path):
    n = 150
    contents = small_contents(n, dims=4)
    thumbs = np.zeros((n, 4, 4, 3), np.uint8)
    thumbs[:, :, :, 0] = (np.arange(n) % 251)[:, None, None]
    contents = BundleContents(**{**contents.__dict__, "codes": np.ones((n, 4), np.float32) / 2, "thumbnails": thumbs})
    bundle = Bundle.open(write_bundle(tmp_path / "b", contents))
    assert len(bundle.manifest["thumbnails"]["sheets"]) == 3
    assert bundle.thumbnail(140)[0, 0, 0] == 140 % 251 and bundle.thumbnail(63)[0, 0, 0] == 63


def test_refuses_to_overwrite_a_folder_that_is_not_a_bundle(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds other files"):
        write_bundle(out, small_contents(2))
    assert (out / "notes.txt").read_text() == "keep me"
