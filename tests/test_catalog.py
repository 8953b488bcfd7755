import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitrina.export.data.catalog import CatalogError, load_catalog

HEADER = ["id", "title", "category", "color", "price", "image"]


def make_catalog(folder: Path, rows: list[list[object]], header: list[str] = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        image = dict(zip(header, row)).get("image", "")
        if image and image.startswith("ok"):
            Image.new("RGB", (20, 10), (200, 0, 0)).save(folder / image)
    with (folder / "catalog.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return folder


def test_valid_catalog_with_several_images_per_product(tmp_path):
    folder = make_catalog(
        tmp_path / "c",
        [
            ["A1", "Polera roja", "T-shirt/top", "rojo", "9990", "ok1.png"],
            ["A1", "Polera roja", "T-shirt/top", "rojo", "9990", "ok2.png"],
            ["B2", "Bolso negro", "Bag", "negro", "19.5", "ok3.png"],
        ],
    )
    catalog = load_catalog(folder, image_size=16, progress=False)
    assert [i.id for i in catalog.items] == ["A1", "B2"]
    assert catalog.images.shape == (3, 16, 16, 3) and catalog.images.dtype == np.uint8
    assert catalog.image_items.tolist() == [0, 0, 1]
    assert catalog.items[1].price == 19.5
    # the 20x10 image is padded with white to a square, product kept in the middle
    assert tuple(catalog.images[0, 0, 8]) == (255, 255, 255) and catalog.images[0, 8, 8, 1] < 50


def test_every_bad_row_gets_its_own_message(tmp_path):
    folder = make_catalog(
        tmp_path / "c",
        [
            ["A1", "Polera", "T-shirt/top", "rojo", "9990", "ok1.png"],
            ["A2", "Polera", "T-shirt/top", "rojo", "9990", "missing.png"],
            ["A3", "Polera", "T-shirt/top", "rojo", "9990", "broken.png"],
            ["A1", "Otra cosa", "T-shirt/top", "rojo", "9990", "ok4.png"],
            ["A5", "  ", "T-shirt/top", "rojo", "9990", "ok5.png"],
            ["A6", "Polera", "T-shirt/top", "rojo", "gratis", "ok6.png"],
            ["A7", "Polera", "T-shirt/top", "rojo", "-3", "ok7.png"],
        ],
    )
    (folder / "broken.png").write_bytes(b"\x89PNG but not really")
    with pytest.raises(CatalogError) as info:
        load_catalog(folder, progress=False)
    errors = info.value.errors
    assert [e.line for e in errors] == [3, 4, 5, 6, 7, 8]
    messages = [e.message for e in errors]
    assert "missing image 'missing.png'" in messages[0]
    assert "cannot be decoded" in messages[1]
    assert "conflicting title" in messages[2] and "Polera" in messages[2]
    assert messages[3] == "empty title"
    assert "bad price 'gratis'" in messages[4]
    assert "bad price '-3'" in messages[5]
    assert "catalog.csv line 3 (id 'A2')" in str(info.value)


def test_skip_bad_rows_reports_and_goes_on(tmp_path):
    folder = make_catalog(
        tmp_path / "c",
        [
            ["A1", "Polera", "T-shirt/top", "rojo", "9990", "ok1.png"],
            ["A2", "Polera", "T-shirt/top", "rojo", "9990", "missing.png"],
        ],
    )
    catalog = load_catalog(folder, skip_bad_rows=True, progress=False)
    assert [i.id for i in catalog.items] == ["A1"]
    assert len(catalog.skipped) == 1 and catalog.skipped[0].line == 3


def test_missing_columns_named(tmp_path):
    folder = make_catalog(tmp_path / "c", [["A1", "Polera", "9990"]], header=["id", "title", "price"])
    with pytest.raises(CatalogError, match="missing column\\(s\\) category, color, image"):
        load_catalog(folder, progress=False)


def test_no_catalog_csv(tmp_path):
    with pytest.raises(CatalogError, match="catalog.csv is missing"):
        load_catalog(tmp_path, progress=False)


def test_split_column_validated_and_hash_split_when_absent(tmp_path):
    header = HEADER + ["split"]
    bad = make_catalog(
        tmp_path / "bad", [["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png", "validation"]], header
    )
    with pytest.raises(CatalogError, match="bad split 'validation'"):
        load_catalog(bad, progress=False)
    rows = [[f"P{i}", "Polera", "T-shirt/top", "rojo", "1", f"ok{i}.png"] for i in range(60)]
    catalog = load_catalog(make_catalog(tmp_path / "nosplit", rows), image_size=8, progress=False)
    splits = [item.split for item in catalog.items]
    assert 0 < splits.count("test") < 25
    again = load_catalog(tmp_path / "nosplit", image_size=8, progress=False)
    assert [item.split for item in again.items] == splits


def test_extra_fields_in_a_row(tmp_path):
    folder = make_catalog(tmp_path / "c", [["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png", "surplus"]])
    with pytest.raises(CatalogError, match="more field"):
        load_catalog(folder, progress=False)
