"""Property: whatever a catalog folder holds, ``load_catalog`` returns a Catalog whose
every image came from a file inside the folder, or raises CatalogError — never
another exception, and it never opens a file outside the folder."""

from __future__ import annotations

import csv
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from hypothesis import event, given
from hypothesis import strategies as st
from PIL import Image

from tests.test_catalog import recorded_opens
from vitrina.export.data.catalog import REQUIRED_COLUMNS, Catalog, CatalogError, load_catalog
from vitrina.runtime.photo import load_image_bounded, prepare_photo

IMAGE_SIZE = 8
INSIDE_RGB = (0, 200, 0)
TINY_RGB = (0, 0, 255)
OUTSIDE_RGB = (255, 0, 255)


def _png(size: tuple[int, int], rgb: tuple[int, int, int], fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, rgb).save(out, fmt)
    return out.getvalue()


VALID_PNG = _png((6, 4), INSIDE_RGB)
TINY_PNG = _png((1, 1), TINY_RGB)
OUTSIDE_PNG = _png((6, 4), OUTSIDE_RGB)
# Small images in every format Pillow writes that a catalog might hold, or try: mutated, they feed the decoders.
SEED_IMAGES = [_png((6, 4), INSIDE_RGB, fmt) for fmt in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "DDS", "TGA")]

# What an image cell names, by kind; "{outside}" becomes the absolute path of the outside image.
IMAGE_PATHS = {
    "valid": "valid.png",
    "tiny": "tiny.png",
    "dotdot": "../outside/evil.png",
    "absolute": "{outside}",
    "link_inside": "link-in.png",
    "link_outside": "link-out.png",
    "link_folder": "linked/evil.png",
    "missing": "missing.png",
    "folder": "folder.png",
    "fifo": "fifo.png",
    "noise": "noise.png",
    "empty": "",
}
ODD_CSV_KINDS = ("link_inside", "link_outside", "folder", "fifo", "missing")


@dataclass(frozen=True)
class Folder:
    """A drawn catalog folder: catalog.csv's bytes and kind, the noise file's bytes."""

    csv_bytes: bytes
    csv_kind: str
    noise: bytes


def _rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in ``one_in`` draws: on a middle value, as Hypothesis favours the bounds."""
    return draw(st.integers(0, one_in - 1)) == one_in // 2


@st.composite
def _cell(draw: st.DrawFn, plain: st.SearchStrategy[str]) -> str:
    """A cell: mostly a plain value, else random text or a CSV-special string."""
    roll = draw(st.integers(0, 19))
    if roll < 17:
        return draw(plain)
    if roll < 19:
        return draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
    return draw(st.sampled_from(['"', '""', ",", "\n", "\r", "\x00", " ", '"a,b"']))


HOSTILE_PRICES = st.one_of(
    st.sampled_from(["1e400", "nan", "inf", "-1", "", "gratis", "0x10", "1_000", "1" * 400, "٣"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@st.composite
def _price(draw: st.DrawFn) -> str:
    """A price cell: mostly a good price, else a hostile one."""
    return draw(HOSTILE_PRICES) if _rarely(draw, 5) else draw(st.sampled_from(["1", "19.99", "12990"]))


CELLS = {
    "id": _cell(st.sampled_from(["A", "B", "C"])),
    "title": _cell(st.sampled_from(["Polera", "Bolso"])),
    "category": _cell(st.just("T-shirt/top")),
    "color": _cell(st.just("rojo")),
    "price": _cell(_price()),
    "split": _cell(st.sampled_from(["train", "test"])),
}


@st.composite
def catalog_text(draw: st.DrawFn) -> str:
    """catalog.csv text: random columns and rows, written by csv or joined raw (odd quoting)."""
    extra = draw(st.lists(st.text(max_size=6), max_size=2))
    wanted = [c for c in REQUIRED_COLUMNS if not _rarely(draw, 30)]
    wanted += ["split"] if draw(st.booleans()) else []
    columns = draw(st.permutations([*wanted, *extra]))
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row = []
        for column in columns:
            if column == "image":
                kind = draw(st.sampled_from(sorted(IMAGE_PATHS))) if draw(st.booleans()) else "valid"
                row.append(draw(st.one_of(st.just(IMAGE_PATHS[kind]), _cell(st.just(IMAGE_PATHS[kind])))))
            else:
                row.append(draw(CELLS.get(column, _cell(st.just("x")))))
        length = max(0, len(row) + draw(st.integers(-2, 2))) if _rarely(draw, 10) else len(row)
        rows.append((row + ["surplus"] * 2)[:length])
    style = {9: "text", 8: "raw", 7: "all"}.get(draw(st.integers(0, 9)), "minimal")
    if style == "text":
        return draw(st.text(max_size=200))
    if style == "raw":
        return "".join(",".join(r) + draw(st.sampled_from(["\n", "\r\n", "\r"])) for r in [list(columns), *rows])
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL if style == "all" else csv.QUOTE_MINIMAL)
    writer.writerows([list(columns), *rows])
    return out.getvalue()


@st.composite
def mutated_images(draw: st.DrawFn) -> bytes:
    """A small image of some format with a few bytes changed, or cut short."""
    data = bytearray(draw(st.sampled_from(SEED_IMAGES)))
    for _ in range(draw(st.integers(0, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(1, len(data)))])


@st.composite
def folders(draw: st.DrawFn) -> Folder:
    """A catalog folder: its catalog.csv (text in some encoding, or raw bytes) and noise bytes."""
    if _rarely(draw, 20):
        csv_bytes = draw(st.binary(max_size=300))
    else:
        odd_encoding = _rarely(draw, 10)
        encoding = draw(st.sampled_from(["utf-8-sig", "utf-16", "latin-1"])) if odd_encoding else "utf-8"
        csv_bytes = draw(catalog_text()).encode(encoding, errors="replace")
    csv_kind = draw(st.sampled_from(ODD_CSV_KINDS)) if _rarely(draw, 10) else "file"
    return Folder(csv_bytes, csv_kind, draw(st.one_of(st.binary(max_size=64), mutated_images())))


def _write(root: Path, drawn: Folder) -> Path:
    """Lay out ``root/outside`` (an image and a CSV) and the catalog folder ``root/cat``."""
    outside = root / "outside"
    outside.mkdir()
    (outside / "evil.png").write_bytes(OUTSIDE_PNG)
    csv_bytes = drawn.csv_bytes.replace(b"{outside}", str(outside / "evil.png").encode())
    (outside / "catalog.csv").write_bytes(csv_bytes)
    folder = root / "cat"
    folder.mkdir()
    (folder / "valid.png").write_bytes(VALID_PNG)
    (folder / "tiny.png").write_bytes(TINY_PNG)
    (folder / "noise.png").write_bytes(drawn.noise)
    (folder / "folder.png").mkdir()
    os.mkfifo(folder / "fifo.png")
    os.symlink(folder / "valid.png", folder / "link-in.png")
    os.symlink(outside / "evil.png", folder / "link-out.png")
    os.symlink(outside, folder / "linked")
    target = folder / "catalog.csv"
    if drawn.csv_kind == "file":
        target.write_bytes(csv_bytes)
    elif drawn.csv_kind == "link_inside":
        (folder / "real.csv").write_bytes(csv_bytes)
        os.symlink(folder / "real.csv", target)
    elif drawn.csv_kind == "link_outside":
        os.symlink(outside / "catalog.csv", target)
    elif drawn.csv_kind == "folder":
        target.mkdir()
    elif drawn.csv_kind == "fifo":
        os.mkfifo(target)
    return folder


def _prepared(path: Path) -> np.ndarray | None:
    """The prepared photo of an image file, decoded as the loader decodes it, or None if it cannot be."""
    try:
        return prepare_photo(load_image_bounded(path, min_side=IMAGE_SIZE), IMAGE_SIZE)
    except Exception:
        return None


@given(drawn=folders(), skip_bad_rows=st.booleans())
def test_a_hostile_folder_gives_a_catalog_from_inside_or_a_catalog_error(drawn: Folder, skip_bad_rows: bool):
    with tempfile.TemporaryDirectory(prefix="vitrina-catalog-") as tmp:
        root = Path(tmp).resolve()
        folder = _write(root, drawn)
        with recorded_opens() as opened:
            try:
                catalog = load_catalog(folder, image_size=IMAGE_SIZE, skip_bad_rows=skip_bad_rows, progress=False)
            except CatalogError:
                catalog = None
        event("CatalogError" if catalog is None else "a catalog" + (" with skipped rows" if catalog.skipped else ""))
        read_outside = [p for p in opened if p.startswith(str(root)) and not p.startswith(f"{folder}{os.sep}")]
        assert read_outside == []
        if catalog is None:
            return
        assert isinstance(catalog, Catalog)
        assert skip_bad_rows or catalog.skipped == ()
        inside = [_prepared(folder / name) for name in ("valid.png", "tiny.png", "noise.png")]
        allowed = [photo for photo in inside if photo is not None]
        assert len(catalog.images) == len(catalog.image_items) >= len(catalog.items) >= 1
        for image in catalog.images:
            assert any(np.array_equal(image, photo) for photo in allowed), "a product image came from outside"
