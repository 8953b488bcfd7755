import contextlib
import csv
import json
import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vitrina.export.data.catalog import (
    MAX_ALIASES_BYTES,
    MAX_IMAGE_FILE_BYTES,
    MAX_ROW_CHARS,
    CatalogError,
    load_catalog,
    load_synonyms,
)

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


# --- Hostile catalogs (the "Hardening" issue): every way in is a CatalogError or a row error. ---

OUTSIDE_RGB = (255, 0, 255)


@contextlib.contextmanager
def recorded_opens() -> Iterator[list[str]]:
    """Record the resolved path of every file the process opens (audit event ``open``) inside the block."""
    opened: list[str] = []
    _RECORDERS.append(opened)
    try:
        yield opened
    finally:
        _RECORDERS.remove(opened)


_RECORDERS: list[list[str]] = []


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _RECORDERS and isinstance(args[0], str | bytes | os.PathLike):
        path = os.path.realpath(os.fsdecode(args[0]))
        for opened in _RECORDERS:
            opened.append(path)


sys.addaudithook(_audit)


def outside(opened: list[str], folder: Path) -> list[str]:
    """The opened paths that are not inside ``folder`` and not Python's own files (lazy imports)."""
    inside = str(folder.resolve())
    return [p for p in opened if not p.startswith(inside + os.sep) and not p.endswith((".py", ".pyc", ".so"))]


def demo_folder(tmp_path: Path, extra_rows: list[list[object]]) -> Path:
    """A small real catalog (Fashion-MNIST photos, 4 train + 2 test) with ``extra_rows`` appended."""
    from vitrina.export.data.demo_catalog import write_demo_catalog

    folder = tmp_path / "cat"
    write_demo_catalog(folder, limit_train=4, limit_test=2)
    with (folder / "catalog.csv").open("a", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(extra_rows)
    return folder


def hostile(product_id: str, image: str) -> list[object]:
    return [product_id, "Polera", "T-shirt/top", "rojo", "9990", image, "train"]


def test_image_paths_leaving_the_folder_are_refused_and_nothing_outside_is_read(tmp_path):
    evil = tmp_path / "outside" / "evil.png"
    evil.parent.mkdir()
    Image.new("RGB", (28, 28), OUTSIDE_RGB).save(evil)
    folder = demo_folder(
        tmp_path,
        [
            hostile("DOTDOT", "../outside/evil.png"),
            hostile("ABS", str(evil)),
            hostile("PASSWD", "/etc/passwd"),
            hostile("LINKOUT", "link-out.png"),
            hostile("LINKIN", "link-in.png"),
            hostile("DIRLINK", "dirlink/evil.png"),
            hostile("INNER", "images/../../outside/evil.png"),
        ],
    )
    os.symlink(evil, folder / "link-out.png")
    os.symlink(folder / "images" / "tr00000.png", folder / "link-in.png")
    os.symlink(evil.parent, folder / "dirlink")
    with recorded_opens() as opened:
        catalog = load_catalog(folder, image_size=16, skip_bad_rows=True, progress=False)
    assert outside(opened, folder) == []
    assert len(catalog.items) == 6 and not any(item.id in {"DOTDOT", "ABS", "LINKOUT"} for item in catalog.items)
    assert not (catalog.images == np.array(OUTSIDE_RGB, dtype=np.uint8)).all(axis=-1).any()
    messages = {e.id: e.message for e in catalog.skipped}
    assert set(messages) == {"DOTDOT", "ABS", "PASSWD", "LINKOUT", "LINKIN", "DIRLINK", "INNER"}
    assert "image '../outside/evil.png' refused" in messages["DOTDOT"] and "'..'" in messages["DOTDOT"]
    assert "not a relative path" in messages["ABS"] and "not a relative path" in messages["PASSWD"]
    assert "symbolic link" in messages["LINKOUT"] and "symbolic link" in messages["LINKIN"]
    assert "symbolic link" in messages["DIRLINK"]
    with pytest.raises(CatalogError, match="7 bad row"):
        load_catalog(folder, image_size=16, progress=False)


def test_catalog_folder_given_through_a_link_still_loads(tmp_path):
    folder = make_catalog(tmp_path / "c", [["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"]])
    os.symlink(folder, tmp_path / "link")
    assert [i.id for i in load_catalog(tmp_path / "link", image_size=8, progress=False).items] == ["A1"]


def test_catalog_csv_that_is_a_link_is_refused(tmp_path):
    elsewhere = make_catalog(tmp_path / "elsewhere", [["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"]])
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "ok1.png").write_bytes((elsewhere / "ok1.png").read_bytes())
    os.symlink(elsewhere / "catalog.csv", folder / "catalog.csv")
    with recorded_opens() as opened, pytest.raises(CatalogError, match="symbolic link"):
        load_catalog(folder, progress=False)
    assert str((elsewhere / "catalog.csv").resolve()) not in opened


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_catalog_csv_that_is_not_a_regular_file_is_refused_without_blocking(tmp_path, kind):
    folder = tmp_path / "c"
    folder.mkdir()
    if kind == "fifo":
        os.mkfifo(folder / "catalog.csv")
    else:
        (folder / "catalog.csv").mkdir()
    with pytest.raises(CatalogError, match="not a regular file"):
        load_catalog(folder, progress=False)


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_image_that_is_not_a_regular_file_is_a_row_error(tmp_path, kind):
    folder = make_catalog(
        tmp_path / "c",
        [["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"], ["A2", "Polera", "T-shirt/top", "rojo", "1", "odd"]],
    )
    if kind == "fifo":
        os.mkfifo(folder / "odd")
    else:
        (folder / "odd").mkdir()
    catalog = load_catalog(folder, skip_bad_rows=True, progress=False)
    assert [i.id for i in catalog.items] == ["A1"]
    (error,) = catalog.skipped
    assert error.line == 3 and "image 'odd' refused" in error.message and "not a regular file" in error.message


def test_huge_field_names_the_line(tmp_path):
    folder = make_catalog(tmp_path / "c", [["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"]])
    with (folder / "catalog.csv").open("a", encoding="utf-8") as f:
        f.write("A2," + "x" * 200_000 + ",T-shirt/top,rojo,1,ok1.png\n")
    with pytest.raises(CatalogError, match=r"catalog.csv line 3 is not valid CSV: field larger than field limit"):
        load_catalog(folder, progress=False)


@pytest.mark.parametrize(
    "tail",
    [
        ",".join(["x"] * (MAX_ROW_CHARS // 2 + 10)) + "\n",  # many small fields on one line
        '"x\n",' * (MAX_ROW_CHARS // 5 + 10) + "x\n",  # many small quoted fields, one a line
    ],
    ids=["one-line", "many-lines"],
)
def test_row_over_the_row_budget_is_refused_naming_line_and_limit(tmp_path, tail):
    folder = make_catalog(tmp_path / "c", [["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"]])
    with (folder / "catalog.csv").open("a", encoding="utf-8") as f:
        f.write(tail)
    with pytest.raises(CatalogError, match=f"line 3: the row is longer than {MAX_ROW_CHARS:,} characters"):
        load_catalog(folder, progress=False)


def test_rows_keep_their_line_numbers_across_blank_lines_and_quoted_newlines(tmp_path):
    folder = make_catalog(tmp_path / "c", [["A1", "Polera\nroja", "T-shirt/top", "rojo", "1", "ok1.png"]])
    with (folder / "catalog.csv").open("a", encoding="utf-8") as f:
        f.write("\n\nA2,Polera,T-shirt/top,rojo,gratis,ok1.png\n")
    with pytest.raises(CatalogError) as info:
        load_catalog(folder, progress=False)
    assert [e.line for e in info.value.errors] == [6]


def test_nul_characters_in_text_fields_are_row_errors(tmp_path):
    folder = make_catalog(
        tmp_path / "c",
        [
            ["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"],
            ["A2\x00", "Polera", "T-shirt/top", "rojo", "1", "ok2.png"],
            ["A3", "Pol\x00era", "T-shirt/top", "rojo", "1", "ok3.png"],
            ["A4", "Polera", "T-shirt/top", "rojo", "1", "photo\x00.png"],
        ],
    )
    catalog = load_catalog(folder, skip_bad_rows=True, progress=False)
    assert [i.id for i in catalog.items] == ["A1"]
    messages = [e.message for e in catalog.skipped]
    assert "id 'A2\\x00' contains a NUL character" in messages[0]
    assert "title 'Pol\\x00era' contains a NUL character" in messages[1]
    assert "refused" in messages[2]


def test_non_utf8_catalog_names_the_byte(tmp_path):
    folder = make_catalog(tmp_path / "c", [["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"]])
    with (folder / "catalog.csv").open("ab") as f:
        f.write("A2,Camiseta de algodón,T-shirt/top,rojo,1,ok1.png\n".encode("latin-1"))
    with pytest.raises(CatalogError, match="not UTF-8 text: byte 0xf3"):
        load_catalog(folder, progress=False)


@pytest.mark.parametrize("price", ["1e400", "nan", "inf", "-Infinity", "0x10", "1" * 5000])
def test_prices_that_are_not_finite_numbers_are_row_errors(tmp_path, price):
    folder = make_catalog(tmp_path / "c", [["A1", "Polera", "T-shirt/top", "rojo", price, "ok1.png"]])
    with pytest.raises(CatalogError) as info:
        load_catalog(folder, progress=False)
    (error,) = info.value.errors
    assert error.message.startswith("bad price") and len(error.message) < 200


def _dds_with_unknown_pixel_format(path: Path) -> None:
    """A DDS file whose pixel format flags are 0: Pillow's DDS plugin raises NotImplementedError on it."""
    Image.new("RGB", (4, 4), (0, 200, 0)).save(path, "DDS")
    data = bytearray(path.read_bytes())
    data[80:84] = b"\0\0\0\0"  # DDS_PIXELFORMAT.dwFlags
    path.write_bytes(bytes(data))


def test_images_that_fail_to_decode_are_row_errors(tmp_path):
    folder = make_catalog(
        tmp_path / "c",
        [["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"]]
        + [[f"B{i}", "Polera", "T-shirt/top", "rojo", "1", name] for i, name in enumerate(BROKEN_IMAGES)],
    )
    Image.new("RGB", (300, 300), (0, 200, 0)).save(folder / "whole.png")
    whole = (folder / "whole.png").read_bytes()
    (folder / "truncated.png").write_bytes(whole[: len(whole) // 2])
    _dds_with_unknown_pixel_format(folder / "unknown.dds")
    (folder / "ghostscript.eps").write_text("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    (folder / "noise.jpg").write_bytes(bytes(range(256)) * 4)
    (folder / "empty.png").write_bytes(b"")
    catalog = load_catalog(folder, image_size=16, skip_bad_rows=True, progress=False)
    assert [i.id for i in catalog.items] == ["A1"]
    messages = dict(zip(BROKEN_IMAGES, (e.message for e in catalog.skipped)))
    assert all("cannot be decoded" in m for m in messages.values()), messages
    assert "truncated" in messages["truncated.png"]
    assert "not a JPEG, PNG, WEBP, GIF, BMP, TIFF image" in messages["unknown.dds"]
    assert "Ghostscript" not in messages["ghostscript.eps"]


BROKEN_IMAGES = ("truncated.png", "unknown.dds", "ghostscript.eps", "noise.jpg", "empty.png")


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG that only declares its size (IHDR, one empty IDAT): enough for a header check."""
    Image.new("RGB", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_images_over_the_pixel_budget_are_row_errors_naming_count_and_limit(tmp_path):
    folder = make_catalog(
        tmp_path / "c",
        [
            ["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"],
            ["A2", "Polera", "T-shirt/top", "rojo", "1", "big.png"],
            ["A3", "Polera", "T-shirt/top", "rojo", "1", "bomb.png"],
        ],
    )
    _png_header(folder / "big.png", 13_000, 13_000)
    _png_header(folder / "bomb.png", 20_000, 20_000)
    catalog = load_catalog(folder, skip_bad_rows=True, progress=False)
    assert [i.id for i in catalog.items] == ["A1"]
    big, bomb = (e.message for e in catalog.skipped)
    assert "13000×13000 = 169,000,000 pixels, over the limit of 32,000,000" in big
    assert "more than 32,000,000 pixels" in bomb and "400000000 pixels" in bomb


def _sparse_png_with_a_huge_chunk(path: Path, chunk_bytes: int) -> None:
    """A valid 4×4 PNG with one unknown ancillary chunk of ``chunk_bytes`` (a hole on disk):
    Pillow reads such a chunk whole into memory."""
    Image.new("RGB", (4, 4), (0, 200, 0)).save(path)
    data = path.read_bytes()
    with path.open("wb") as f:
        f.write(data[:33])  # signature and IHDR
        f.write(struct.pack(">I", chunk_bytes) + b"zzZz")
        f.seek(chunk_bytes, os.SEEK_CUR)
        f.write(b"\0\0\0\0" + data[33:])  # the chunk's CRC, then IDAT and IEND


def test_image_files_over_the_byte_budget_are_refused_unread(tmp_path):
    folder = make_catalog(
        tmp_path / "c",
        [
            ["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"],
            ["A2", "Polera", "T-shirt/top", "rojo", "1", "fat.png"],
        ],
    )
    _sparse_png_with_a_huge_chunk(folder / "fat.png", MAX_IMAGE_FILE_BYTES)
    with recorded_opens() as opened:
        catalog = load_catalog(folder, skip_bad_rows=True, progress=False)
    assert str((folder / "fat.png").resolve()) not in opened
    (error,) = catalog.skipped
    assert f"over the {MAX_IMAGE_FILE_BYTES:,} bytes an image file may have" in error.message


# Peak memory of loading a catalog with a 13000×13000 photo and a PNG with a huge
# chunk, measured in a fresh child process. Linux carries the forking parent's peak
# (pytest's, over 1 GB once TensorFlow is loaded) into a child's ru_maxrss across
# exec, so the child reports its own peak, VmHWM, where /proc has it.
PEAK_RSS_BUDGET_MB = 300
_CHILD = """
import resource, sys, warnings
warnings.simplefilter("ignore")
from vitrina.export.data.catalog import load_catalog
catalog = load_catalog(sys.argv[1], image_size=64, skip_bad_rows=True, progress=False)
assert [item.id for item in catalog.items] == ["A1"], catalog
assert len(catalog.skipped) == 2, catalog.skipped
try:
    with open("/proc/self/status") as status:
        print(next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) // 1024)
except OSError:
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _write_big_png(path: Path, width: int, height: int) -> None:
    """A valid white RGB PNG of ``width`` × ``height``, compressed row by row (never whole in memory)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + b"\xff" * (width * 3)
    packer = zlib.compressobj(1)
    idat = b"".join([*(packer.compress(row) for _ in range(height)), packer.flush()])
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_peak_memory_of_a_catalog_with_huge_images_stays_in_budget(tmp_path):
    folder = make_catalog(
        tmp_path / "c",
        [
            ["A1", "Polera", "T-shirt/top", "rojo", "1", "ok1.png"],
            ["A2", "Polera", "T-shirt/top", "rojo", "1", "huge.png"],
            ["A3", "Polera", "T-shirt/top", "rojo", "1", "fat.png"],
        ],
    )
    _write_big_png(folder / "huge.png", 13_000, 13_000)
    _sparse_png_with_a_huge_chunk(folder / "fat.png", MAX_IMAGE_FILE_BYTES * 3)
    child = subprocess.run([sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    peak_mb = int(child.stdout.split()[-1])
    print(f"peak RSS loading a catalog with a 13000×13000 image: {peak_mb} MB (budget {PEAK_RSS_BUDGET_MB} MB)")
    assert peak_mb <= PEAK_RSS_BUDGET_MB


ALIASES = {
    "categories": {
        "Ankle boot": {"es": "Botín", "en": ["ankle boot", "boots"]},
        "Bag": {"es": "Bolso", "en": "handbag", "fr": ["sac"]},
    },
    "colors": {"rojo": {"es": ["roja", "rojo"], "en": ["red"]}},
}


def _catalog_with_aliases(tmp_path: Path, aliases: object | bytes) -> Path:
    folder = make_catalog(tmp_path / "c", [["A1", "Bolso rojo", "Bag", "rojo", "9990", "ok1.png"]])
    data = aliases if isinstance(aliases, bytes) else json.dumps(aliases).encode("utf-8")
    (folder / "aliases.json").write_bytes(data)
    return folder


def test_aliases_give_synonyms_of_other_languages_only(tmp_path):
    catalog = load_catalog(_catalog_with_aliases(tmp_path, ALIASES), image_size=16, progress=False)
    assert catalog.synonyms == {
        "ankle boot": "Botín",
        "boots": "Botín",
        "handbag": "Bolso",
        "sac": "Bolso",
        "red": "rojo",
    }  # "roja" and "rojo" are title words, not synonyms
    assert load_synonyms(make_catalog(tmp_path / "plain", [["A1", "Bolso", "Bag", "rojo", "1", "ok1.png"]])) == {}
    english = {**ALIASES, "language": "en"}
    assert load_synonyms(_catalog_with_aliases(tmp_path / "en", english))["Botín"] == "ankle boot"


@pytest.mark.parametrize(
    "aliases, message",
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe{}", "is not UTF-8"),
        ([1, 2], "expected an object with categories and colors"),
        ({"categories": ["Bag"]}, "categories must be an object"),
        ({"colors": {"rojo": "red"}}, r"colors\['rojo'\] must be an object of language"),
        ({"categories": {"Bag": {"es": 3, "en": ["bag"]}}}, r"must name the word titles use"),
        ({"categories": {"Bag": {"es": "Bolso", "en": [1]}}}, "must be a phrase or a list of phrases"),
        ({"language": "", "colors": {}}, "language must be a language code"),
    ],
)
def test_bad_aliases_are_refused_naming_the_file_and_what_was_expected(tmp_path, aliases, message):
    folder = _catalog_with_aliases(tmp_path, aliases)
    with pytest.raises(CatalogError, match=message) as err:
        load_catalog(folder, image_size=16, progress=False)
    assert "aliases.json" in str(err.value)


def test_aliases_that_are_a_link_or_too_big_are_refused(tmp_path):
    folder = _catalog_with_aliases(tmp_path, ALIASES)
    (folder / "aliases.json").unlink()
    (tmp_path / "outside.json").write_text(json.dumps(ALIASES), encoding="utf-8")
    (folder / "aliases.json").symlink_to(tmp_path / "outside.json")
    with pytest.raises(CatalogError, match="aliases.json"):
        load_synonyms(folder)
    (folder / "aliases.json").unlink()
    (folder / "aliases.json").write_text(" " * (MAX_ALIASES_BYTES + 1) + "{}", encoding="utf-8")
    with pytest.raises(CatalogError, match="over 1,048,576 characters"):
        load_synonyms(folder)
