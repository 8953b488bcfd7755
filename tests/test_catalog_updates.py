"""Live catalog updates on a real tiny bundle: stock and prices, products added with photos
encoded on the device, removals, compaction; the update log's durability (a writer killed
mid-write leaves nothing half-applied); bad feed rows; restarts, re-syncs and newer versions."""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.catalog_cli import EXIT_BAD_INPUT
from vitrina.runtime.cli import main
from vitrina.runtime.detector import DetectionResult
from vitrina.runtime.filters import SearchFilter
from vitrina.runtime.live_catalog import LiveCatalog, StockRow
from vitrina.runtime.product_search import ProductSearch
from vitrina.runtime.rasterize import load_strokes_json
from vitrina.runtime.update_log import UpdateLog, frame, parse_records

#: "the detector found nothing": the photo is searched whole
NO_BOXES = DetectionResult(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int32))


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path):
    return shutil.copytree(tiny_bundle, tmp_path / "bundles" / "b")


def live(path) -> LiveCatalog:
    return LiveCatalog.open(Bundle.open(path, verify=False))


def write_feed(path, header, rows):
    path.write_text("\n".join([",".join(header), *(",".join(map(str, r)) for r in rows)]) + "\n", encoding="utf-8")
    return path


def test_stock_and_price_feed_with_bad_rows(bundle_copy, tmp_path, capsys):
    ids = [i.id for i in live(bundle_copy).items[:3]]
    feed = write_feed(
        tmp_path / "stock.csv",
        ["id", "price", "in_stock"],
        [[ids[0], 1234.5, 0], ["NOPE", 1, 1], [ids[1], "abc", 1], [ids[2], "", "no"], [ids[0], 1, 1]],
    )
    hashes = {p: p.read_bytes() for p in bundle_copy.rglob("*") if p.is_file()}
    assert main(["catalog", "update", "--bundle", str(bundle_copy), "--from", str(feed)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    for line, words in (
        (3, "no product with id 'NOPE'"),
        (4, "price 'abc' is not a number"),
        (6, f"id '{ids[0]}' appears again"),
    ):
        assert f"line {line}: {words}" in err
    assert "nothing was applied" in err and live(bundle_copy).n_updates == 0
    assert (
        main(["catalog", "update", "--bundle", str(bundle_copy), "--from", str(feed), "--skip-bad-rows", "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["updated"] == 2
    catalog = live(bundle_copy)
    assert catalog.items[0].price == 1234.5 and not catalog.in_stock(0) and not catalog.in_stock(2)
    assert catalog.in_stock(1) and catalog.items[1].price == Bundle.open(bundle_copy).items[1].price
    # the signed bundle files are untouched; the log lives beside the bundle
    assert {p: p.read_bytes() for p in bundle_copy.rglob("*") if p.is_file()} == hashes
    assert catalog.log.folder.parent.parent == bundle_copy.parent


def _photos(folder, n):
    folder.mkdir(exist_ok=True)
    for i in range(n):
        image = Image.new("RGB", (96, 120), "white")
        ImageDraw.Draw(image).rectangle([20 + 5 * i, 10, 70, 110], fill=(200, 30 * i % 255, 40))
        image.save(folder / f"p{i}.png")
    (folder / "broken.png").write_bytes(b"not a png")


def test_add_remove_update_and_compact(bundle_copy, tmp_path, capsys, strokes_file):
    _photos(tmp_path / "new", 3)
    existing = live(bundle_copy).items[0].id
    feed = write_feed(
        tmp_path / "new" / "new.csv",
        ["id", "title", "category", "color", "price", "photo"],
        [
            ["NEW-0", "Pantalón nuevo rojo", "Trouser", "rojo", 9990, "p0.png"],
            ["NEW-1", "Bolso nuevo azul", "Bag", "azul", 19990, "p1.png"],
            ["NEW-2", "Roto", "Bag", "azul", 10, "broken.png"],
            [existing, "Ya existe", "Bag", "azul", 10, "p2.png"],
            ["NEW-3", "Sin foto", "Bag", "azul", 10, "missing.png"],
        ],
    )
    assert main(["catalog", "add", "--bundle", str(bundle_copy), "--from", str(feed)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"line 5: a product with id '{existing}' exists already" in err and "line 6: photo 'missing.png'" in err
    assert main(["catalog", "add", "--bundle", str(bundle_copy), "--from", str(feed), "--skip-bad-rows"]) == 0
    assert "line 4: photo broken.png cannot be used" in capsys.readouterr().err
    base = len(Bundle.open(bundle_copy).items)
    with ProductSearch(Bundle.open(bundle_copy, verify=False)) as engine:
        assert len(engine.catalog.items) == base + 2
        # findable today: its own product shot, searched whole as the device encoded it (not a
        # detector crop), finds it first, and its thumbnail is the device's
        shot = Image.open(tmp_path / "new" / "p1.png")
        found = engine.by_photo(shot, k=3, detections=NO_BOXES)
        assert found.fallback is not None
        assert found.matches[0].id == "NEW-1" and found.matches[0].price == 19990
        assert engine.catalog.thumbnail(base + 1).shape == engine.bundle.thumbnail(0).shape
        assert engine.by_text("nuevo").matches[0].id in {"NEW-0", "NEW-1"}
        assert {m.id for m in engine.similar(base, k=5).matches}.isdisjoint({"NEW-0"})
        # a removal in another process is picked up at the next query: tombstones are never returned
        assert main(["catalog", "remove", "--bundle", str(bundle_copy), "--id", "NEW-1", "--id", existing]) == 0
        again = engine.by_photo(shot, k=20, detections=NO_BOXES)
        assert {"NEW-1", existing}.isdisjoint(m.id for m in again.matches)
        engine.set_in_stock("NEW-0", False)
        assert engine.by_text("nuevo", filters=SearchFilter(in_stock=True)).matches == ()
        before = [(m.id, m.score) for m in engine.by_strokes(load_strokes_json(strokes_file), k=15).matches]
    catalog = live(bundle_copy)
    records = len(catalog.log.read().records)
    state = (catalog.n_added, catalog.n_removed, catalog.n_updates, [catalog.items[i] for i in (0, base, base + 1)])
    assert main(["catalog", "compact", "--bundle", str(bundle_copy)]) == 0
    capsys.readouterr()
    compacted = live(bundle_copy)
    assert records == 3 and compacted.log.read().records == () and compacted.status()["segment"] == "segment-1.bin"
    assert (
        compacted.n_added,
        compacted.n_removed,
        compacted.n_updates,
        [compacted.items[i] for i in (0, base, base + 1)],
    ) == state
    with ProductSearch(Bundle.open(bundle_copy, verify=False)) as engine:
        after = [(m.id, m.score) for m in engine.by_strokes(load_strokes_json(strokes_file), k=15).matches]
    assert after == before
    # updates after a compaction append to the new log; a second compaction replaces the segment
    compacted.update_stock([StockRow("NEW-0", 5.0, True)])
    assert compacted.compact() == "segment-2.bin" and not (compacted.log.folder / "segment-1.bin").exists()
    assert live(bundle_copy).items[base].price == 5.0


def test_records_are_whole_or_absent_at_every_cut():
    records = [
        {"kind": "header"},
        {"kind": "update", "rows": [["a", 1.0, None]] * 50},
        {"kind": "remove", "ids": ["b"]},
    ]
    blob = b"".join(frame(r) for r in records)
    ends = np.cumsum([len(frame(r)) for r in records])
    for cut in range(len(blob) + 1):
        parsed, valid = parse_records(blob[:cut])
        whole = int(np.searchsorted(ends, cut, side="right"))
        assert parsed == records[:whole] and valid == (ends[whole - 1] if whole else 0)
    damaged = bytearray(blob)
    damaged[ends[1] - 3] ^= 0xFF  # a flipped bit in the second record's payload: it and what follows are ignored
    assert parse_records(bytes(damaged))[0] == records[:1]
    bad_length = blob[: ends[0]] + struct.pack("<4sII", b"VUPD", 1 << 30, 0)
    assert parse_records(bad_length)[0] == records[:1]


_CHILD = r"""
import os, signal, sys
from vitrina.runtime.bundle import Bundle
from vitrina.runtime.live_catalog import LiveCatalog, StockRow
catalog = LiveCatalog.open(Bundle.open(sys.argv[1], verify=False))
ids = catalog.columns.ids[:200]
if sys.argv[2] == "torn":
    catalog.update_stock([StockRow(i, 1.0, True) for i in ids])
    real_write = os.write
    def write_half_then_die(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        os.kill(os.getpid(), signal.SIGKILL)
    os.write = write_half_then_die
    catalog.update_stock([StockRow(i, 777.0, False) for i in ids])
else:
    n = 0
    while True:
        n += 1
        catalog.update_stock([StockRow(i, float(n), n % 2 == 0) for i in ids])
        print(n, flush=True)
"""


def _child(bundle, mode):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(bundle), mode], stdout=subprocess.PIPE, text=True, env=env
    )


def test_writer_killed_mid_write_leaves_nothing_half_applied(bundle_copy):
    proc = _child(bundle_copy, "torn")
    assert proc.wait(timeout=120) == -signal.SIGKILL
    catalog = live(bundle_copy)
    prices = {catalog.items[i].price for i in range(200)}
    assert prices == {1.0} and all(catalog.in_stock(i) for i in range(200))  # the torn update: not at all
    assert catalog.log.read().torn_bytes > 0 and "interrupted while written" in catalog.notes[0]
    catalog.update_stock([StockRow(catalog.items[0].id, 2.0, None)])  # the next writer cuts the torn tail
    contents = catalog.log.read()
    assert contents.torn_bytes == 0 and len(contents.records) == 2 and live(bundle_copy).items[0].price == 2.0


def test_writer_killed_at_random_moments(bundle_copy):
    rng = np.random.default_rng(0)
    for attempt in range(4):
        proc = _child(bundle_copy, "loop")
        first = proc.stdout.readline()  # one update is durable
        assert first.strip()
        time.sleep(float(rng.uniform(0.0, 0.4)))
        proc.send_signal(signal.SIGKILL)
        printed = [int(x) for x in [first, *proc.stdout.read().split()] if str(x).strip()]
        proc.wait(timeout=60)
        catalog = live(bundle_copy)
        prices = {catalog.items[i].price for i in range(200)}
        stock = {catalog.in_stock(i) for i in range(200)}
        assert len(prices) == 1 and len(stock) == 1, f"attempt {attempt}: a half-applied update"
        n = int(prices.pop())
        assert n in (max(printed), max(printed) + 1) and stock == {n % 2 == 0}


def test_updates_survive_restart_and_resync_but_not_a_newer_version(bundle_copy, tiny_bundle):
    first_id = live(bundle_copy).items[0].id
    live(bundle_copy).update_stock([StockRow(first_id, 42.0, False)])
    # a re-sync of the same version: the folder is replaced by an identical copy
    shutil.rmtree(bundle_copy)
    shutil.copytree(tiny_bundle, bundle_copy)
    again = live(bundle_copy)
    assert again.items[0].price == 42.0 and not again.in_stock(0) and again.notes == ()
    # a newer version beside it (as sync installs bundles/<catalog>-v<N>): the old log does not apply, and it says so
    newer = bundle_copy.parent / "b-v2"
    shutil.copytree(bundle_copy, newer)
    manifest = json.loads((newer / "manifest.json").read_text())
    manifest["release"] = {"version": 2}
    (newer / "manifest.json").write_text(json.dumps(manifest))
    fresh = live(newer)
    assert fresh.items[0].price != 42.0 and fresh.in_stock(0)
    assert (
        len(fresh.notes) == 1 and "superseded by this bundle (v2)" in fresh.notes[0] and "not applied" in fresh.notes[0]
    )
    assert live(bundle_copy).items[0].price == 42.0  # the old log is kept, never deleted
    fresh.update_stock([StockRow(first_id, 7.0, None)])
    assert "belong to the newer bundle v2" in live(bundle_copy).notes[0]  # a rollback does not apply v2's updates


def test_updates_to_unknown_products_are_refused(bundle_copy):
    catalog = live(bundle_copy)
    with pytest.raises(ValueError, match="no product with id 'NOPE'"):
        catalog.update_stock([StockRow("NOPE", 1.0, None)])
    with pytest.raises(ValueError, match="no product with id"):
        catalog.remove_products(["NOPE"])
    assert not UpdateLog(catalog.log.folder).path.exists() or catalog.log.read().records == ()


def test_added_products_get_text_visual_codes_on_the_device(bundle_copy, tmp_path):
    base = Bundle.open(bundle_copy)
    donor = next(i for i in base.items if i.split == "test")
    _photos(tmp_path / "photos", 2)
    feed = write_feed(
        tmp_path / "new.csv",
        ["id", "title", "category", "color", "price", "photo"],
        [
            ["NEW-1", donor.title, donor.category, donor.color, 9990, "photos/p0.png"],
            ["NEW-2", "Zapatilla urbana roja", "Sneaker", "rojo", 19990, "photos/p1.png"],
        ],
    )
    assert main(["catalog", "add", "--bundle", str(bundle_copy), "--from", str(feed)]) == 0
    catalog = live(bundle_copy)
    codes = catalog.added_text_visual
    assert codes is not None and codes.shape == (2, 16) and codes.dtype == np.float32
    assert np.allclose(np.linalg.norm(codes, axis=1), 1.0, atol=1e-3)
    with ProductSearch(Bundle.open(bundle_copy, verify=False)) as engine:
        new = catalog.n_base
        # "more like this" of an added product ranks by its text-visual code, and added products are neighbours
        similar = engine.similar_products(new, k=5)
        assert similar.matches and all(m.id != "NEW-1" for m in similar.matches)
        direct = engine.similar_by_text_visual(new, k=5)
        assert [m.id for m in direct.matches] == [m.id for m in similar.matches]
        twin = engine.similar_by_text_visual(new + 1, k=len(engine.catalog.items) - 1)
        assert "NEW-1" in [m.id for m in twin.matches]
    # the codes come back from the log after a restart
    assert np.array_equal(live(bundle_copy).added_text_visual, codes)


def test_products_added_without_text_visual_codes_fall_back_to_photo_codes(bundle_copy, tmp_path):
    from vitrina.runtime.catalog_feed import encode_new_products, read_product_feed
    from vitrina.runtime.live_catalog import EncodedProducts

    _photos(tmp_path / "photos", 1)
    feed = write_feed(
        tmp_path / "new.csv",
        ["id", "title", "category", "color", "price", "photo"],
        [["OLD-1", "Bolso tote negro", "Bag", "negro", 9990, "photos/p0.png"]],
    )
    catalog = live(bundle_copy)
    products, encoded, _ = encode_new_products(catalog.bundle, read_product_feed(feed))
    # as an update log written before the device coded them
    catalog.add_products(products, EncodedProducts(encoded.codes, encoded.rerank, encoded.thumbnails))
    catalog = live(bundle_copy)
    assert not np.any(catalog.added_text_visual)
    with ProductSearch(Bundle.open(bundle_copy, verify=False)) as engine:
        item = engine.catalog.n_base
        assert engine.similar_products(item, k=3).matches == engine.similar(item, k=3).matches
        with pytest.raises(ValueError, match="no text-visual code"):
            engine.similar_by_text_visual(item, k=3)
        bad = EncodedProducts(encoded.codes, encoded.rerank, encoded.thumbnails, np.zeros((1, 3), np.float32))
        with pytest.raises(ValueError, match="text-visual codes must be"):
            engine.catalog.add_products([products[0]], bad)
