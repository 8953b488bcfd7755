"""Input budgets of the sketch search (the "Hardening" issue): every hostile or broken
query is a clear error of ours (a ``ValueError`` subclass; ``vitrina search`` exits 2
naming the file and the limit) or a correct result, and no query costs more than
300 MiB of peak memory. Each test here failed (traceback, wrong result, or gigabytes)
before the budgets existed.

The peak-memory tests run ``vitrina search`` in a fresh process per case and print
their figures: ``pytest -s tests/test_input_budgets.py -k peak``.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vitrina.runtime.cli import main
from vitrina.runtime.photo import MAX_IMAGE_PIXELS
from vitrina.runtime.rasterize import (
    MAX_COORDINATE,
    MAX_STROKE_POINTS,
    MAX_STROKES_FILE_BYTES,
    EmptySketchError,
    RasterOptions,
    SketchBudgetError,
    SketchInputError,
    as_strokes,
    load_sketch_image,
    load_strokes_json,
    rasterize_strokes,
    sketch_from_image,
)
from vitrina.runtime.search import (
    CAPPED_BY_CATALOG,
    CAPPED_BY_SHORTLIST,
    MAX_K,
    CatalogIndex,
    NonFiniteQueryError,
    RerankSearcher,
    Searcher,
    SearcherOptions,
)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "sketches"
PEAK_RSS_BUDGET_KIB = 300 * 1024  # 300 MiB, ru_maxrss is in KiB on Linux
SQUARE = [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]


def chunk(tag: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, tag, data, CRC."""
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def write_png(
    path: Path, width: int, height: int, row: Callable[[int], bytes], *, color_type: int, bit_depth: int = 8
) -> Path:
    """A PNG written one row at a time (grey: color_type 0, RGBA: 6; rows big-endian at
    16 bits), so a 13000 × 13000 image costs neither memory nor time to make."""

    deflate = zlib.compressobj(6)
    with path.open("wb") as out:
        out.write(
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0))
        )
        for y in range(height):
            data = deflate.compress(b"\x00" + row(y))  # filter type 0 per row
            if data:
                out.write(chunk(b"IDAT", data))
        out.write(chunk(b"IDAT", deflate.flush()) + chunk(b"IEND", b""))
    return path


def write_strokes(path: Path, strokes: object) -> Path:
    path.write_text(json.dumps({"strokes": strokes}))
    return path


# --- 1. sketch images are read within the pixel budget -------------------------------------------------


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The large inputs, made once: (a) 13000² grey PNG (169 MP), (b) an RGB JPEG and
    (c) an RGBA PNG just under MAX_IMAGE_PIXELS with a drawn bar, (c') the same in
    16-bit grey, (d) a 50 MB strokes file, (e) a strokes file of exactly
    MAX_STROKE_POINTS points."""
    root = tmp_path_factory.mktemp("big-inputs")
    white = b"\xff" * 13_000
    files = {"png_13000": write_png(root / "huge.png", 13_000, 13_000, lambda y: white, color_type=0)}

    width, height = 8_000, MAX_IMAGE_PIXELS // 8_000 - 1  # 8000 × 3999: 31,992,000 pixels
    image = Image.new("RGB", (width, height), "white")
    ImageDraw.Draw(image).rectangle([2_000, 800, 6_000, 3_200], outline="black", width=60)
    image.save(root / "under-budget.jpg", quality=85)
    files["jpeg_under"] = root / "under-budget.jpg"
    del image

    clear = bytes(4 * width)
    ink = bytes(4 * 1_000) + b"\x00\x00\x00\xff" * 6_000 + bytes(4 * 1_000)  # opaque black in x 1000-6999
    files["rgba_png_under"] = write_png(
        root / "under-budget-rgba.png",
        width,
        height,
        lambda y: ink if 1_800 <= y < 2_200 else clear,
        color_type=6,
    )

    paper16, ink16 = (
        struct.pack(">H", 60_000) * width,
        struct.pack(">H", 60_000) * 1_000 + struct.pack(">H", 20_000) * 6_000 + struct.pack(">H", 60_000) * 1_000,
    )
    files["png16_under"] = write_png(
        root / "under-budget-16bit.png",
        width,
        height,
        lambda y: ink16 if 1_800 <= y < 2_200 else paper16,
        color_type=0,
        bit_depth=16,
    )

    fifty_mb = root / "fifty-mb.json"
    with fifty_mb.open("w") as out:
        out.write('{"strokes": [[')
        block = "[123.5, 456.25], " * 10_000
        while out.tell() < 50_000_000:
            out.write(block)
        out.write("[0, 0]]]}")
    files["strokes_50mb"] = fifty_mb

    rng = np.random.default_rng(0)
    per_stroke = 200
    points = np.round(rng.uniform(0, 1920, size=(MAX_STROKE_POINTS // per_stroke, per_stroke, 2)), 2)
    files["strokes_at_budget"] = write_strokes(root / "at-point-budget.json", points.tolist())
    assert files["strokes_at_budget"].stat().st_size < MAX_STROKES_FILE_BYTES
    return files


def test_over_budget_png_is_refused_from_its_header(big_files):
    path = big_files["png_13000"]
    with pytest.raises(SketchInputError, match=r"13000×13000 = 169\.0 MP, over the 32 MP") as info:
        load_sketch_image(path)
    assert str(path) in str(info.value)


def test_image_over_pillows_own_limit_is_refused_in_our_terms(tmp_path):
    # a header claiming 20000 × 20000 (400 MP): Pillow refuses it in Image.open, before our check
    path = tmp_path / "bomb.png"
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 20_000, 20_000, 8, 0, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IEND", b""))
    with pytest.raises(SketchInputError, match="over the 32 MP an image may have") as info:
        load_sketch_image(path)
    assert str(path) in str(info.value)


def test_image_just_under_the_budget_is_read(big_files):
    out = load_sketch_image(big_files["rgba_png_under"], RasterOptions(size=48))
    assert out.shape == (48, 48) and out.min() < 64 and out[0, 0] == 255


# --- 2. strokes files: bytes, points, coordinates ----------------------------------------------------


def test_strokes_file_over_the_byte_budget_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (MAX_STROKES_FILE_BYTES + 1))

    def no_read(*args, **kwargs):
        raise AssertionError("the file was opened")

    with (
        monkeypatch.context() as patch,
        pytest.raises(SketchBudgetError, match=f"{MAX_STROKES_FILE_BYTES + 1:,} bytes, over the") as info,
    ):
        for name in ("open", "read_text", "read_bytes"):
            patch.setattr(Path, name, no_read)
        load_strokes_json(path)
    assert str(path) in str(info.value)


def test_strokes_file_that_grows_past_its_stat_size_is_cut(tmp_path, monkeypatch):
    path = tmp_path / "growing.json"
    path.write_bytes(b" " * (MAX_STROKES_FILE_BYTES + 10))
    real_stat = Path.stat

    def small_at_first(self: Path, **kwargs):  # the size stat saw before the file grew
        return type("Stat", (), {"st_size": 10})() if self == path else real_stat(self, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(SketchBudgetError, match="holds more than"):
        patch.setattr(Path, "stat", small_at_first)
        load_strokes_json(path)


def test_point_budget():
    at_budget = [[[float(i % 97), float(i % 89)] for i in range(MAX_STROKE_POINTS)]]
    assert sum(len(s) for s in as_strokes(at_budget)) == MAX_STROKE_POINTS
    with pytest.raises(SketchBudgetError, match=f"over {MAX_STROKE_POINTS:,} points"):
        as_strokes(at_budget + [[[0.0, 0.0]]])
    with pytest.raises(SketchBudgetError, match=f"over the {MAX_STROKE_POINTS:,}"):
        rasterize_strokes([np.zeros((MAX_STROKE_POINTS + 1, 2))])


@pytest.mark.parametrize("bad", [MAX_COORDINATE * 1.0001, -MAX_COORDINATE * 1.0001, 1e308, -1e308])
def test_coordinate_range_budget(bad):
    assert len(as_strokes([[[MAX_COORDINATE, -MAX_COORDINATE], [0, 0]]])) == 1
    with pytest.raises(SketchBudgetError, match=r"beyond the ±1e\+06"):
        as_strokes([[[0, 0], [bad, 0]]])
    with pytest.raises(SketchBudgetError, match=r"beyond the ±1e\+06"):
        rasterize_strokes([np.array([[0.0, 0.0], [0.0, bad]])])


@pytest.mark.parametrize("raw", [[[["1", "2"]]], [[[True, False]]], [[[1, None]]], [[[1, [2]]]]])
def test_coordinates_must_be_numbers(raw):
    with pytest.raises(SketchInputError, match="number pairs"):
        as_strokes(raw)


# --- 3. deep nesting and huge numbers are our errors -----------------------------------------------


def deep(depth: int) -> list:
    """A list nested ``depth`` levels deep, built without recursion."""
    root: list = []
    inner = root
    for _ in range(depth - 1):
        inner.append([])
        inner = inner[0]
    return root


def test_deep_nesting_is_our_error(tmp_path):
    with pytest.raises(SketchInputError):
        as_strokes(deep(100_000))
    for name, text in [
        ("list.json", "[" * 100_000 + "]" * 100_000),
        ("strokes.json", '{"strokes": ' + "[" * 100_000 + "]" * 100_000 + "}"),
        ("extra.json", '{"strokes": [[[0, 0]]], "note": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(SketchInputError) as info:
            load_strokes_json(path)
        assert str(path) in str(info.value)


def test_400_digit_coordinate_is_our_error(tmp_path):
    with pytest.raises(SketchBudgetError, match="too large for a float"):
        as_strokes([[[10**400, 0], [0, 0]]])
    path = tmp_path / "digits.json"
    path.write_text('{"strokes": [[[' + "9" * 400 + ", 0], [0, 0]]]}")
    with pytest.raises(SketchInputError, match=r"out of range.*\$\.strokes\[0\]\[0\]\[0\]") as info:
        load_strokes_json(path)
    assert str(path) in str(info.value)


# --- 4. extreme coordinates: refused, normalised without overflow, never a blank raster -------------


def test_strokes_spanning_1e308_are_refused(tmp_path):
    path = write_strokes(tmp_path / "span.json", [[[-1e308, -1e308], [1e308, 1e308]]])
    with pytest.raises(SketchBudgetError, match="1e\\+308 pixels"):
        load_strokes_json(path)


def test_normalisation_subtracts_the_minimum_first():
    # the far corners of the range, and a subnormal extent: both draw a centred line / dot
    corners = rasterize_strokes([np.array([[-MAX_COORDINATE] * 2, [MAX_COORDINATE] * 2])], RasterOptions(size=32))
    assert corners[0, 0] == 255 and corners[16, 16] < 128
    tiny = rasterize_strokes([np.array([[0.0, 0.0], [5e-324, 0.0]])], RasterOptions(size=32))
    assert tiny.min() < 128 and tiny[0, 0] == 255


def test_blank_raster_is_an_empty_sketch(monkeypatch):
    import vitrina.runtime.rasterize as rasterize

    monkeypatch.setattr(rasterize, "_draw_polyline", lambda draw, xy, width: None)
    with pytest.raises(EmptySketchError, match="drew no ink"):
        rasterize_strokes([np.array(SQUARE, float)])


# --- 5. uniform images are refused; grey paper still works ------------------------------------------


@pytest.mark.parametrize("colour", [0, 40, 128, 200, 255])
def test_uniform_image_is_refused(colour, tmp_path):
    with pytest.raises(EmptySketchError, match="uniform"):
        sketch_from_image(Image.new("L", (120, 80), colour))
    Image.new("RGB", (120, 80), (colour,) * 3).save(tmp_path / "u.png")
    with pytest.raises(EmptySketchError, match="uniform") as info:
        load_sketch_image(tmp_path / "u.png")
    assert str(tmp_path / "u.png") in str(info.value)


@pytest.mark.parametrize("paper", [255, 225, 190, 160])
def test_ink_on_grey_paper_is_found_like_on_white(paper):
    def drawing(background: int) -> Image.Image:
        image = Image.new("L", (300, 200), background)
        ImageDraw.Draw(image).rectangle([100, 50, 220, 150], outline=20, width=6)
        return image

    white = sketch_from_image(drawing(255), RasterOptions(size=48))
    grey = sketch_from_image(drawing(paper), RasterOptions(size=48))
    # the same box is cropped and centred, on white: the images agree within the ink's own shade
    assert grey.max() == 255 and np.abs(grey.astype(int) - white.astype(int)).max() <= 20


# --- 6. 16-bit images are scaled, not clipped ----------------------------------------------------------


def test_16_bit_png_with_grey_ink_is_read(tmp_path):
    pixels = np.full((100, 160), 60_000, np.uint16)  # light paper
    pixels[30:70, 40:120] = 20_000  # grey ink: 77 of 255 once scaled (clipped, it was 255: "blank")
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    out = load_sketch_image(path, RasterOptions(size=32))
    assert out.shape == (32, 32) and out.min() < 100 and out[0, 0] == 255
    direct = sketch_from_image(Image.fromarray(pixels), RasterOptions(size=32))
    np.testing.assert_array_equal(direct, out)


@pytest.mark.parametrize("mode", ["F", "I"])
def test_32_bit_grey_with_ink_is_read(mode):
    values = np.full((60, 90), 50_000.0 if mode == "I" else 250.0, np.float32)
    values[20:40, 10:80] = 3_000.0 if mode == "I" else 30.0
    values[0, 0] = np.nan if mode == "F" else values[0, 0]  # NaN reads as 0 (ink), not as an error
    image = Image.fromarray(values if mode == "F" else values.astype(np.int32), mode)
    out = sketch_from_image(image, RasterOptions(size=32))
    assert out.min() < 100 and out.max() == 255


@pytest.mark.parametrize("mode, suffix", [("1", ".tif"), ("1", ".png"), ("P", ".png"), ("P", ".gif")])
def test_large_bilevel_and_palette_sketches_are_reduced_not_refused(mode, suffix, tmp_path):
    # an A4 page at 300 dpi: reduced by 2, which Image.reduce refuses for 1-bit and palette images
    image = Image.new("L", (2480, 3508), 255)
    ImageDraw.Draw(image).rectangle([600, 900, 1900, 2600], outline=0, width=40)
    path = tmp_path / f"page{suffix}"
    image.convert(mode).save(path)
    out = load_sketch_image(path, RasterOptions(size=32))
    assert out.min() < 64 and out[0, 0] == 255


# --- 7-9. k and query bounds in the searchers ----------------------------------------------------------


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def small_index(shortlist: int | None) -> CatalogIndex:
    """30 products of 2 images each; re-ranked with a ``shortlist`` of rows when given."""
    rng = np.random.default_rng(0)
    codes = unit(rng.normal(size=(60, 8)))
    searcher = Searcher(codes, np.repeat(np.arange(30), 2), 30)
    rerank = None
    if shortlist is not None:
        rerank = RerankSearcher(searcher, np.round(codes * 127).astype(np.int8), 1 / 127, shortlist)
    return CatalogIndex(lambda x: x, searcher, rerank)


def test_k_above_max_k_is_refused():
    assert SearcherOptions(k=MAX_K).k == MAX_K
    for k in (MAX_K + 1, 10**18):
        with pytest.raises(ValueError, match=f"at most MAX_K = {MAX_K}"):
            SearcherOptions(k=k)
    index = small_index(shortlist=10)
    query = index.searcher.codes[:1]
    for search in (
        lambda k: index.searcher.search(query, SearcherOptions(k=k)),
        lambda k: index.rerank.search(query, query, SearcherOptions(k=k)),
    ):
        with pytest.raises(ValueError, match="MAX_K"):
            search(10**18)


def test_catalog_index_says_what_caps_the_results():
    assert small_index(shortlist=10).cap() == (CAPPED_BY_SHORTLIST, 10)
    assert small_index(shortlist=500).cap() == (CAPPED_BY_CATALOG, 30)
    assert small_index(shortlist=None).cap() == (CAPPED_BY_CATALOG, 30)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_queries_are_refused(bad):
    index = small_index(shortlist=10)
    query = index.searcher.codes[:2].copy()
    query[1, 3] = bad
    with pytest.raises(NonFiniteQueryError, match="query 1 of 2 has 1 NaN or infinite"):
        index.searcher.search(query)
    with pytest.raises(NonFiniteQueryError):
        index.rerank.search(index.searcher.codes[:2], query)
    with pytest.raises(NonFiniteQueryError):
        index.search(query)
    # a binary index: NaN embeddings would pack into valid-looking bits; refused before the reducer
    bits = Searcher(np.packbits(index.searcher.codes > 0, axis=1), index.searcher.code_items, 30, "hamming")
    binary = CatalogIndex(lambda x: np.packbits(x > 0, axis=1), bits)
    with pytest.raises(NonFiniteQueryError):
        binary.search(query)


# --- on the tiny bundle: ProductSearch and the CLI -----------------------------------------------------


def test_product_search_bounds(tiny_bundle, strokes_file):
    from vitrina.runtime.product_search import ProductSearch

    strokes = load_strokes_json(strokes_file)
    with ProductSearch.create_from_bundle_path(tiny_bundle) as engine:
        for query in (lambda k: engine.by_strokes(strokes, k), lambda k: engine.similar(0, k)):
            with pytest.raises(ValueError, match="MAX_K"):
                query(MAX_K + 1)
        n = len(engine.bundle.items)
        full = engine.by_strokes(strokes, k=n + 5)  # more than the catalog holds
        assert len(full.matches) == n and (full.capped_by, full.cap) == (CAPPED_BY_CATALOG, n)
        assert "the catalog has" in full.cap_note()
        assert engine.by_strokes(strokes, k=5).capped_by is None
        # a re-rank shortlist of 7 rows caps a k of 20
        index = engine._index
        codes = np.asarray(index.searcher.codes, np.float32)
        engine._index = CatalogIndex(
            index.reducer,
            index.searcher,
            RerankSearcher(index.searcher, np.round(codes * 127).astype(np.int8), 1 / 127, 7),
        )
        short = engine.by_strokes(strokes, k=20)
        assert len(short.matches) <= 7 and (short.capped_by, short.cap) == (CAPPED_BY_SHORTLIST, 7)
        assert "shortlist of its 7 best" in short.cap_note()


def test_cli_k_over_max_k_exits_2(tiny_bundle, strokes_file, capsys):
    for k in ("1000000000000000000", str(MAX_K + 1)):
        with pytest.raises(SystemExit) as info:
            main(["search", "--bundle", str(tiny_bundle), "--strokes", str(strokes_file), "-k", k])
        assert info.value.code == 2
        assert f"must be <= {MAX_K}" in capsys.readouterr().err


def test_cli_says_when_results_are_capped(tiny_bundle, strokes_file, capsys):
    args = ["search", "--bundle", str(tiny_bundle), "--strokes", str(strokes_file), "-k", str(MAX_K)]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["capped_by"] == CAPPED_BY_CATALOG and len(out["results"]) == out["cap"] < MAX_K
    assert main(args) == 0
    captured = capsys.readouterr()
    assert f"not the {MAX_K} asked for: the catalog has {out['cap']} products" in captured.err
    assert len(captured.out.strip().splitlines()) == out["cap"]
    assert main([*args[:-1], "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["capped_by"] is None


@pytest.mark.parametrize("name", sorted(p.name for p in ASSETS.glob("*.json")))
def test_asset_sketches_still_search_as_strokes_and_as_images_on_grey_paper(tiny_bundle, tmp_path, capsys, name):
    assert main(["search", "--bundle", str(tiny_bundle), "--strokes", str(ASSETS / name), "-k", "3", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    # the same drawing as a scan: dark ink on grey paper
    pixels = rasterize_strokes(load_strokes_json(ASSETS / name), RasterOptions(size=400))
    scan = np.where(pixels < 128, 30, 185).astype(np.uint8)
    Image.fromarray(scan).convert("RGB").save(tmp_path / "scan.jpg", quality=90)
    assert (
        main(["search", "--bundle", str(tiny_bundle), "--sketch", str(tmp_path / "scan.jpg"), "-k", "3", "--json"]) == 0
    )
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda p: Image.new("L", (64, 64), 0).save(p / "in.png"), "uniform"),
        (lambda p: (p / "in.json").write_text('{"strokes": [[[-1e308, 0], [1e308, 0]]]}'), "±1e+06"),
        (lambda p: (p / "in.json").write_text("[" * 100_000), "in.json"),
        (lambda p: (p / "in.json").write_text('{"strokes": [[[' + "1" * 400 + ", 0]]]}"), "out of range"),
    ],
)
def test_cli_bad_inputs_exit_2_naming_the_file(tiny_bundle, tmp_path, capsys, make, words):
    make(tmp_path)
    (source,) = tmp_path.glob("in.*")
    flag = "--sketch" if source.suffix == ".png" else "--strokes"
    assert main(["search", "--bundle", str(tiny_bundle), flag, str(source)]) == 2
    err = capsys.readouterr().err
    assert words in err and str(source) in err


# --- peak memory of `vitrina search`, each case in a fresh process --------------------------------------

# Runs the command given in argv as its child and reports the child's peak RSS:
# RUSAGE_CHILDREN is the maximum over this (fresh) wrapper's waited-for children.
_MEASURE = """
import json, resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": proc.returncode, "out": proc.stdout, "err": proc.stderr, "peak_kib": peak}))
"""


@dataclass(frozen=True)
class Measured:
    """One ``vitrina search`` run: exit code, output, and peak RSS in KiB."""

    rc: int
    out: str
    err: str
    peak_kib: int


def measure_search(bundle: Path, *args: str) -> Measured:
    cli = [sys.executable, "-m", "vitrina.runtime.cli", "search", "--bundle", str(bundle), *args]
    wrapper = subprocess.run([sys.executable, "-c", _MEASURE, *cli], capture_output=True, text=True, check=True)
    return Measured(**json.loads(wrapper.stdout))


@pytest.mark.parametrize(
    "case, flag, refused, words",
    [
        ("baseline", "--strokes", False, ""),
        ("png_13000", "--sketch", True, "over the 32 MP"),
        ("jpeg_under", "--sketch", False, ""),
        ("rgba_png_under", "--sketch", False, ""),
        ("png16_under", "--sketch", False, ""),
        ("strokes_50mb", "--strokes", True, f"over the {MAX_STROKES_FILE_BYTES:,} bytes"),
        ("strokes_at_budget", "--strokes", False, ""),
    ],
)
def test_peak_memory_of_search(tiny_bundle, big_files, strokes_file, case, flag, refused, words):
    path = strokes_file if case == "baseline" else big_files[case]
    run = measure_search(tiny_bundle, flag, str(path), "-k", "3", "--json")
    print(f"\npeak RSS {run.peak_kib / 1024:7.1f} MiB  exit {run.rc}  {case} ({path.stat().st_size:,} bytes)")
    assert run.peak_kib <= PEAK_RSS_BUDGET_KIB, f"{case}: {run.peak_kib / 1024:.0f} MiB"
    if refused:
        assert run.rc == 2 and str(path) in run.err and words in run.err, run.err
    else:
        assert run.rc == 0, run.err
        assert len(json.loads(run.out)["results"]) == 3
