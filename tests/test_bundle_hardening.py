"""A hostile or broken bundle gives one of our errors naming the file and the field, and nothing
outside the bundle (or unlisted in its manifest) is ever read.

Each case rewrites a copy of the tiny bundle and, where a real attacker would,
keeps the manifest's hashes consistent, so only the new checks can catch it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vitrina.runtime.bundle import (
    Bundle,
    BundleError,
    BundleFormatError,
    BundleIntegrityError,
)
from vitrina.runtime.product_search import ProductSearch

ASSETS = Path(__file__).resolve().parent.parent / "assets"


@pytest.fixture()
def copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def manifest_of(bundle: Path) -> dict[str, Any]:
    return json.loads((bundle / "manifest.json").read_text())


def write_manifest(bundle: Path, manifest: Any) -> None:
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def rehash(bundle: Path, rel: str) -> None:
    """Make the manifest agree with the file's new content, as a careless (or hostile) publisher would."""
    m = manifest_of(bundle)
    data = (bundle / rel).read_bytes()
    m["files"][rel] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    write_manifest(bundle, m)


def vitrina(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vitrina.runtime.cli", *args], capture_output=True, text=True, timeout=120, check=False
    )


def huge_header(path: Path, shape: tuple[int, ...], dtype: str) -> None:
    """Rewrite an .npy header to claim ``shape`` while keeping the file's (small) data."""
    data = np.load(path, allow_pickle=False)
    header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(data.tobytes())


# --- wrong types in the manifest become BundleFormatError naming the field -------------------


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("codes",), "x", "$.codes"),
        (("files",), ["items.json"], "$.files"),
        (("files", "items.json", "size"), "12", "$.files['items.json'].size"),
        (("catalog", "items"), -3, "$.catalog.items"),
        (("inputs", "sketch", "size"), 10**9, "$.inputs.sketch.size"),
        (("thumbnails", "grid"), 0, "$.thumbnails.grid"),
        (("codes", "reducer", "kind"), "pickle", "$.codes.reducer.kind"),
        (("models", "sketch"), "models/sketch_int8.tflite", "$.models"),
    ],
)
def test_manifest_field_of_wrong_type_is_named(copy, path, value, field):
    m = manifest_of(copy)
    target = m
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    write_manifest(copy, m)
    with pytest.raises(BundleFormatError, match=r"manifest\.json") as err:
        Bundle.open(copy)
    assert field.split("[")[0] in str(err.value)
    done = vitrina("info", "--bundle", str(copy))
    assert done.returncode == 2 and "manifest.json" in done.stderr and "Traceback" not in done.stderr


def test_deeply_nested_manifest_is_a_format_error(copy):
    (copy / "manifest.json").write_text('{"format": "vitrina-bundle", "x": ' + "[" * 100_000 + "]" * 100_000 + "}")
    done = vitrina("info", "--bundle", str(copy))
    assert done.returncode == 2 and "manifest.json" in done.stderr and "Traceback" not in done.stderr


def test_item_entry_that_is_a_string(copy):
    items = json.loads((copy / "items.json").read_text())
    items["items"][3] = "not a product"
    (copy / "items.json").write_text(json.dumps(items))
    rehash(copy, "items.json")
    with pytest.raises(BundleFormatError, match=r"items\.json.*\$\.items\[3\]"):
        Bundle.open(copy)


# --- reads stay inside the bundle and inside the manifest's list -------------------------------


def test_symlink_leading_outside_is_refused(copy, tmp_path):
    outside = tmp_path / "outside.png"
    shutil.copy(copy / "thumbs/sheet_0000.png", outside)
    (copy / "thumbs/sheet_0000.png").unlink()
    os.symlink(outside, copy / "thumbs/sheet_0000.png")  # same bytes, same hash: only the link check catches it
    with pytest.raises(BundleIntegrityError, match="symbolic link"):
        Bundle.open(copy)
    with pytest.raises(BundleIntegrityError, match="symbolic link"):
        Bundle.open(copy, verify=False)


def test_fifo_listed_in_manifest_is_refused_without_blocking(copy):
    os.unlink(copy / "report.json")
    os.mkfifo(copy / "report.json")
    with pytest.raises(BundleIntegrityError, match="not a regular file"):
        Bundle.open(copy)


def test_codes_removed_from_files_list_and_zeroed_is_refused(copy):
    m = manifest_of(copy)
    del m["files"]["codes/codes.npy"]
    write_manifest(copy, m)
    codes = np.load(copy / "codes/codes.npy")
    np.save(copy / "codes/codes.npy", np.zeros_like(codes))
    with pytest.raises(BundleFormatError, match=r"codes/codes\.npy.*files list"):
        Bundle.open(copy)


def test_unlisted_file_is_never_read(copy):
    bundle = Bundle.open(copy)
    with pytest.raises(BundleIntegrityError, match="not in the manifest's files list"):
        bundle.file("signature.json")
    with pytest.raises(BundleIntegrityError, match="not in the manifest's files list"):
        bundle.array("../../etc/passwd")


def test_lazy_open_hashes_each_file_before_first_use(copy):
    sheet = copy / "thumbs/sheet_0000.png"
    data = bytearray(sheet.read_bytes())
    data[-20] ^= 0xFF  # same size: only the hash can tell
    sheet.write_bytes(bytes(data))
    bundle = Bundle.open(copy, verify=False)  # opens: the sheet is not used yet
    with pytest.raises(BundleIntegrityError, match="sha256"):
        bundle.thumbnail(0)


# --- arrays: headers against file sizes, before any allocation ------------------------------


def test_npy_header_claiming_466_tib_is_refused_before_allocation(copy):
    huge_header(copy / "codes/code_items.npy", (1 << 47,), "<i4")  # not memory-mapped: np.load would allocate
    rehash(copy, "codes/code_items.npy")
    done = vitrina("info", "--bundle", str(copy))
    assert done.returncode == 2 and "code_items.npy" in done.stderr and "bytes" in done.stderr
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr


def test_npy_of_strings_is_refused(copy):
    np.save(copy / "eval/query_items.npy", np.array(["a", "b"]))
    rehash(copy, "eval/query_items.npy")
    with pytest.raises(BundleFormatError, match="not a plain numeric type"):
        Bundle.open(copy).eval_set()


# --- models ----------------------------------------------------------------------------------


def test_corrupt_model_with_updated_hash_exits_2_naming_the_model(copy):
    model = copy / "models/sketch_int8.tflite"
    data = bytearray(model.read_bytes())
    data[8:4096] = bytes(4088)
    model.write_bytes(bytes(data))
    rehash(copy, "models/sketch_int8.tflite")
    with pytest.raises(BundleFormatError, match="sketch_int8"):
        ProductSearch(Bundle.open(copy))
    done = vitrina("search", "--bundle", str(copy), "--strokes", str(ASSETS / "sketches/trousers.json"))
    assert done.returncode == 2 and "sketch_int8.tflite" in done.stderr and "Traceback" not in done.stderr


# --- property: any manifest gives a bundle or one of our errors ------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value[:3]):
            out += _paths(child, (*prefix, i))
    return out


@pytest.fixture(scope="module")
def property_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path_factory.mktemp("manifest-property") / "bundle"))


@pytest.fixture(scope="module")
def original_manifest(tiny_bundle: Path) -> dict[str, Any]:
    return manifest_of(tiny_bundle)


@given(data=st.data())
def test_property_any_manifest_opens_or_raises_our_error(property_bundle, original_manifest, data):
    m = json.loads(json.dumps(original_manifest))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(m)))
        if not path:
            m = data.draw(_json)
            break
        parent = m
        for key in path[:-1]:
            parent = parent[key]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(_json)
    write_manifest(property_bundle, m)  # every example writes the whole manifest: no state carries over
    try:
        opened = Bundle.open(property_bundle, verify=False)
        opened.thumbnail(0)
        opened.raster_options  # noqa: B018 - the property reads every manifest-derived value
        opened.reducer()
        opened.eval_strokes()
    except BundleError:
        pass


def test_info_into_a_closed_pipe_has_no_traceback(tiny_bundle):
    """`vitrina info | head`: the reader leaves before vitrina writes."""
    command = [sys.executable, "-m", "vitrina.runtime.cli", "info", "--bundle", str(tiny_bundle)]
    reader = subprocess.Popen(["true"], stdin=subprocess.PIPE)
    reader.wait()
    done = subprocess.run(command, stdout=reader.stdin, stderr=subprocess.PIPE, text=True, timeout=120, check=False)
    reader.stdin.close()
    assert done.returncode == 1 and "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


def test_nan_catalog_codes_are_refused_not_searched(copy):
    """NaN rows used to drop silently out of the ranking while the search still answered."""
    codes = np.load(copy / "codes/codes.npy")
    codes[5::3] = np.nan
    np.save(copy / "codes/codes.npy", codes)
    rehash(copy, "codes/codes.npy")
    done = vitrina("search", "--bundle", str(copy), "--strokes", str(ASSETS / "sketches/trousers.json"))
    assert done.returncode == 2 and "codes.npy: row 5 holds NaN" in done.stderr and not done.stdout
