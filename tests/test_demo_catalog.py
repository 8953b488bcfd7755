import csv
import json

import numpy as np
from PIL import Image

from tests.conftest import TINY_TEST, TINY_TRAIN
from vitrina.export.data.catalog import load_catalog
from vitrina.export.data.demo_catalog import PALETTE
from vitrina.export.data.fashion_mnist import CLASS_NAMES, load_split
from vitrina.export.data.titles import MAIN_STORE


def test_fashion_mnist_splits_are_the_datasets_own():
    test = load_split("test")
    assert test.images.shape == (10000, 28, 28) and test.labels.max() == 9


def test_demo_catalog_rows(demo_catalog):
    with (demo_catalog / "catalog.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == TINY_TRAIN + TINY_TEST
    assert [r["split"] for r in rows].count("test") == TINY_TEST
    assert {r["category"] for r in rows} == set(CLASS_NAMES)
    colours = {c.masculine for c in PALETTE}
    for row in rows[:50]:
        nouns = {n.text: n.gender for n in MAIN_STORE.categories[row["category"]].nouns}
        first = next(noun for noun in nouns if row["title"].startswith(noun + " "))
        assert row["color"] in colours
        colour = next(c for c in PALETTE if c.masculine == row["color"])
        expected = colour.feminine if nouns[first] == "f" else colour.masculine
        assert f" {expected.title()}" in row["title"]
        assert not row["brand"] or row["brand"] in row["title"]
        assert float(row["price"]) > 0
    assert sum(bool(r["brand"]) for r in rows) > len(rows) // 4  # brand words the tokenizer must drop


def test_demo_images_are_tinted_products_on_white(demo_catalog):
    with (demo_catalog / "catalog.csv").open(encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    image = np.asarray(Image.open(demo_catalog / row["image"]))
    assert image.shape == (28, 28, 3)
    assert tuple(image[0, 0]) == (255, 255, 255)
    colour = next(c for c in PALETTE if c.masculine == row["color"])
    darkest = image.reshape(-1, 3)[image.reshape(-1, 3).sum(axis=1).argmin()].astype(int)
    # the darkest pixel leans towards the tint: its channel order matches the palette colour's
    assert np.argsort(darkest).tolist() == np.argsort(
        np.array(colour.rgb) + [0.1, 0.2, 0.3]
    ).tolist() or colour.english in ("grey", "black")


def test_aliases_and_loader_accept_demo_catalog(demo_catalog):
    aliases = json.loads((demo_catalog / "aliases.json").read_text(encoding="utf-8"))
    assert "trousers" in aliases["categories"]["Trouser"]["en"]
    assert aliases["colors"]["azul marino"]["en"] == ["navy"]
    catalog = load_catalog(demo_catalog, image_size=28, progress=False)
    assert len(catalog.items) == TINY_TRAIN + TINY_TEST and not catalog.skipped
