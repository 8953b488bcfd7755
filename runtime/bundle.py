"""The catalog bundle: the one module that owns its on-disk format.

A bundle is a directory written by the workstation (``vitrina build``) and
opened on the device. Format version 1::

    manifest.json            format name + version, vitrina version, creation
                             time, catalog name, item count, code type and
                             dims, model inputs, rasteriser settings, and the
                             sha256 and size of every other file
    items.json               product metadata, one entry per product
    models/<role>_<precision>.tflite
                             encoders, e.g. sketch_int8, photo_float
    codes/codes.npy          catalog codes, one row per catalog image
                             (memory-mapped); by code type (``codes.py``):
                             float (N, D) float32 L2-normalised, pcaN/umapN
                             (N, N) float16, bitsN (N, N/8) packed uint8
    codes/code_items.npy     (N,) int32 product index of each code row
    codes/rerank_int8.npy    optional (N, D) int8 full embeddings for the
                             two-stage search's re-rank (scale in the manifest)
    reducer/<name>.npy       arrays of the device's query reducer (PCA
                             components, UMAP landmarks, hash projection)
    thumbs/sheet_NNNN.png    RGB sprite sheets of thumbnails, 8×8 row-major tiles
    eval/sketches.npy        (Q, S, S) uint8 held-out sketch queries
    eval/query_items.npy     (Q,) int32 product drawn by each query
    eval/gallery_items.npy   (M,) int32 products that form the eval gallery
    eval/gallery_float.npy   (M, D) float32 gallery codes from the float encoder
    eval/strokes.json        stroke lists of some held-out queries (benchmarks
                             time the real stroke → results path with them)
    report.json              build report: training and quantisation figures

No pickles anywhere: arrays load with ``allow_pickle=False``. Everything the
writer produces is listed in the manifest with its hash and size, and
:meth:`Bundle.open` checks them before anything is used.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .codes import CodeType, QueryReducer, reducer_from_arrays
from .files import sha256_file
from .rasterize import RasterOptions
from .timeutil import utc_stamp

FORMAT_NAME = "vitrina-bundle"
FORMAT_VERSION = 1


def vitrina_version() -> str:
    """The installed distribution's version: pyproject.toml is its one source."""
    try:
        return metadata.version("vitrina")
    except metadata.PackageNotFoundError:
        return "0+unknown"


VITRINA_VERSION = vitrina_version()
MANIFEST = "manifest.json"
REDUCER_KINDS = ("none", "linear", "landmark", "sign")
PRECISIONS = ("int8", "float")
ROLES = ("sketch", "photo")
# Thumbnails per sheet side: 64 per sheet. Small sheets keep random access cheap
# (one 8×8 sheet decodes in well under a millisecond; a 32×32 one took ~10 ms,
# which a kiosk showing 20 random products paid 20 times).
_SHEET_GRID = 8


class BundleError(Exception):
    """Base class: the bundle at a path cannot be used."""


class BundleNotFoundError(BundleError):
    """No bundle (or no manifest) at the path."""


class BundleVersionError(BundleError):
    """The bundle's format is newer than this runtime reads, or not a vitrina bundle."""


class BundleIntegrityError(BundleError):
    """A file is missing, truncated, or its hash differs from the manifest."""


class BundleFormatError(BundleError):
    """A file is present and hashes right but its content is malformed."""


@dataclass(frozen=True)
class Item:
    """One product. ``price`` is in the store's currency units; ``split`` is
    ``"train"`` or ``"test"`` (which products the encoders were trained on)."""

    id: str
    title: str
    category: str
    color: str
    price: float
    split: str = "train"


@dataclass(frozen=True)
class EvalSet:
    """Held-out sketch queries and their relevance labels.

    Attributes:
        sketches: (Q, S, S) uint8 rasterised queries (255 paper, 0 ink).
        query_items: (Q,) int32 index of the product each query depicts.
        gallery_items: (M,) int32 product indices searched during evaluation.
        gallery_float: (M, D) float32 codes of the gallery from the float encoder.
    """

    sketches: np.ndarray
    query_items: np.ndarray
    gallery_items: np.ndarray
    gallery_float: np.ndarray


@dataclass(frozen=True)
class ReducerArrays:
    """How the device turns an encoder embedding into a catalog code.

    Attributes:
        kind: none (float codes), linear (PCA), landmark (UMAP) or sign (bits).
        arrays: name → array, saved as ``reducer/<name>.npy`` (see ``codes.reducer_from_arrays``).
        params: JSON-serialisable settings (e.g. ``n_neighbors``).
        about: one line for ``vitrina info``: what was fitted, on what.
    """

    kind: str = "none"
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    about: str = "encoder embedding, no reduction"


@dataclass(frozen=True)
class Rerank:
    """Full embeddings for the two-stage search.

    Attributes: codes (N, D) int8, one row per code row; scale: float value of
    one int8 step; shortlist: rows the first stage keeps.
    """

    codes: np.ndarray
    scale: float
    shortlist: int = 200


@dataclass(frozen=True)
class BundleContents:
    """Everything :func:`write_bundle` needs; the export side fills it in.

    Attributes:
        catalog_name: human-readable catalog name.
        items: one :class:`Item` per product.
        models: ``{"sketch_int8": bytes, "photo_float": bytes, ...}`` TFLite flatbuffers.
        codes: (N, D) float32 L2-normalised codes, one row per catalog image.
        code_items: (N,) int32 product index of each code row.
        thumbnails: (P, T, T, 3) uint8, one per product, in item order.
        raster: rasteriser settings the sketch encoder was trained with.
        photo_size: side of the photo encoder's square input, pixels.
        eval_set: held-out queries, or None.
        report: JSON-serialisable build report.
        eval_strokes: stroke lists of held-out queries, each a list of (m, 2)
            float arrays, paired with ``eval_stroke_items`` (their products).
        extra: more JSON-serialisable manifest entries (e.g. category names).
        code_type: ``float`` or a compact type (pca8, umap8, bits64, ...) matching ``codes``.
        reducer: the device's query reducer for a compact code type.
        rerank: int8 full embeddings for a two-stage search, or None.
    """

    catalog_name: str
    items: Sequence[Item]
    models: Mapping[str, bytes]
    codes: np.ndarray
    code_items: np.ndarray
    thumbnails: np.ndarray
    raster: RasterOptions
    photo_size: int
    eval_set: EvalSet | None = None
    report: Mapping[str, Any] = field(default_factory=dict)
    eval_strokes: Sequence[Sequence[np.ndarray]] = ()
    eval_stroke_items: Sequence[int] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    code_type: str = "float"
    reducer: ReducerArrays = ReducerArrays()
    rerank: Rerank | None = None


def expected_code_layout(code_type: CodeType, dims: int) -> tuple[tuple[type, ...], int]:
    """(allowed dtypes, row width) of codes/codes.npy for a code type; ``dims`` is
    the encoder's embedding width (used by ``float``)."""
    if code_type.family == "float":
        return (np.float32,), dims
    if code_type.family == "bits":
        return (np.uint8,), code_type.size // 8
    return (np.float16, np.float32), code_type.size


def _check_contents(c: BundleContents) -> None:
    n_items = len(c.items)
    code_type = CodeType.parse(c.code_type)
    dtypes, width = expected_code_layout(code_type, c.codes.shape[1] if c.codes.ndim == 2 else -1)
    if c.codes.ndim != 2 or c.codes.dtype not in dtypes or c.codes.shape[1] != width:
        want = "/".join(np.dtype(d).name for d in dtypes)
        raise ValueError(
            f"{code_type.name} codes must be a (N, {width}) {want} array, got {c.codes.dtype} {c.codes.shape}"
        )
    if (code_type.family == "float") != (c.reducer.kind == "none"):
        raise ValueError(f"code type {code_type.name} cannot use the {c.reducer.kind!r} reducer")
    if c.reducer.kind not in REDUCER_KINDS:
        raise ValueError(f"reducer kind {c.reducer.kind!r} is not one of {REDUCER_KINDS}")
    if c.rerank is not None and (
        c.rerank.codes.dtype != np.int8 or c.rerank.codes.ndim != 2 or len(c.rerank.codes) != len(c.codes)
    ):
        raise ValueError(
            f"rerank codes must be ({len(c.codes)}, D) int8, got {c.rerank.codes.dtype} {c.rerank.codes.shape}"
        )
    if c.code_items.shape != (c.codes.shape[0],):
        raise ValueError(f"code_items must have shape ({c.codes.shape[0]},), got {c.code_items.shape}")
    if c.code_items.size and (c.code_items.min() < 0 or c.code_items.max() >= n_items):
        raise ValueError(f"code_items must index the {n_items} items")
    if c.thumbnails.ndim != 4 or c.thumbnails.shape[0] != n_items or c.thumbnails.shape[3] != 3:
        raise ValueError(f"thumbnails must be ({n_items}, T, T, 3) uint8, got {c.thumbnails.shape}")
    for name in c.models:
        role, _, precision = name.partition("_")
        if role not in ROLES or precision not in PRECISIONS:
            raise ValueError(
                f"model name {name!r} must be <role>_<precision> with role in {ROLES} and precision in {PRECISIONS}"
            )


def write_bundle(out: str | Path, contents: BundleContents) -> Path:
    """Write a bundle directory at ``out``, atomically.

    The bundle is staged in a sibling temporary directory and renamed into
    place, so ``out`` always holds either the previous complete bundle or the
    new one. Returns ``out`` as a Path.
    """
    _check_contents(contents)
    out = Path(out)
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    try:
        manifest = _write_files(stage, contents)
        files = {}
        for path in sorted(p for p in stage.rglob("*") if p.is_file()):
            rel = path.relative_to(stage).as_posix()
            files[rel] = {"sha256": sha256_file(path), "size": path.stat().st_size}
        manifest["files"] = files
        (stage / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        _replace_dir(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return out


def _check_replaceable(out: Path) -> None:
    """Refuse to overwrite anything but an earlier bundle or an empty folder."""
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"cannot write a bundle at {out}: it exists and is not a directory")
    if any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise ValueError(
            f"cannot write a bundle at {out}: the folder holds other files (no {MANIFEST}); choose an empty or new folder"
        )


def _replace_dir(stage: Path, out: Path) -> None:
    """Swap ``stage`` into ``out``; the old bundle is removed only after the swap."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_files(stage: Path, c: BundleContents) -> dict[str, Any]:
    (stage / "models").mkdir()
    model_entries: dict[str, dict[str, str]] = {}
    for name, blob in sorted(c.models.items()):
        rel = f"models/{name}.tflite"
        (stage / rel).write_bytes(blob)
        role, _, precision = name.partition("_")
        model_entries.setdefault(role, {})[precision] = rel
    (stage / "codes").mkdir()
    np.save(stage / "codes/codes.npy", np.ascontiguousarray(c.codes))
    np.save(stage / "codes/code_items.npy", np.ascontiguousarray(c.code_items, dtype=np.int32))
    codes_entry = _write_code_files(stage, c)
    items = [asdict(item) for item in c.items]
    (stage / "items.json").write_text(json.dumps({"items": items}, ensure_ascii=False), encoding="utf-8")
    sheets = _write_thumbnails(stage, c.thumbnails)
    if c.eval_set is not None:
        (stage / "eval").mkdir()
        for key in ("sketches", "query_items", "gallery_items", "gallery_float"):
            np.save(stage / f"eval/{key}.npy", np.ascontiguousarray(getattr(c.eval_set, key)))
    if c.eval_strokes:
        (stage / "eval").mkdir(exist_ok=True)
        queries = [
            {"item": int(item), "strokes": [np.round(np.asarray(st, dtype=np.float64), 2).tolist() for st in strokes]}
            for item, strokes in zip(c.eval_stroke_items, c.eval_strokes)
        ]
        (stage / "eval/strokes.json").write_text(json.dumps({"queries": queries}), encoding="utf-8")
    (stage / "report.json").write_text(json.dumps(c.report, indent=2, ensure_ascii=False), encoding="utf-8")
    created = utc_stamp()
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "vitrina_version": VITRINA_VERSION,
        "created": created,
        "catalog": {"name": c.catalog_name, "items": len(c.items), "images": int(c.codes.shape[0])},
        "codes": codes_entry,
        "models": model_entries,
        "inputs": {
            "sketch": {"size": c.raster.size, "line_width": c.raster.line_width, "margin": c.raster.margin},
            "photo": {"size": c.photo_size},
        },
        "thumbnails": {"tile": int(c.thumbnails.shape[1]), "grid": _SHEET_GRID, "sheets": sheets},
        "eval": c.eval_set is not None,
        "eval_strokes": len(c.eval_strokes),
        **dict(c.extra),
    }


def _write_code_files(stage: Path, c: BundleContents) -> dict[str, Any]:
    """Reducer arrays and re-rank codes; returns the manifest's ``codes`` entry."""
    code_type = CodeType.parse(c.code_type)
    arrays = {}
    if c.reducer.arrays:
        (stage / "reducer").mkdir()
        for name, array in sorted(c.reducer.arrays.items()):
            rel = f"reducer/{name}.npy"
            np.save(stage / rel, np.ascontiguousarray(array))
            arrays[name] = rel
    rerank = None
    if c.rerank is not None:
        np.save(stage / "codes/rerank_int8.npy", np.ascontiguousarray(c.rerank.codes))
        rerank = {
            "file": "codes/rerank_int8.npy",
            "dims": int(c.rerank.codes.shape[1]),
            "scale": float(c.rerank.scale),
            "shortlist": int(c.rerank.shortlist),
        }
    return {
        "type": code_type.name,
        "dims": code_type.size or int(c.codes.shape[1]),
        "dtype": c.codes.dtype.name,
        "metric": code_type.metric,
        "bytes_per_item": int(c.codes.shape[1] * c.codes.dtype.itemsize),
        "reducer": {
            "kind": c.reducer.kind,
            "arrays": arrays,
            "params": dict(c.reducer.params),
            "about": c.reducer.about,
        },
        "rerank": rerank,
    }


def _write_thumbnails(stage: Path, thumbs: np.ndarray) -> list[str]:
    (stage / "thumbs").mkdir()
    tile, per_sheet = thumbs.shape[1], _SHEET_GRID * _SHEET_GRID
    sheets = []
    for s, start in enumerate(range(0, len(thumbs), per_sheet)):
        block = thumbs[start : start + per_sheet]
        rows = -(-len(block) // _SHEET_GRID)
        sheet = np.full((rows * tile, _SHEET_GRID * tile, 3), 255, dtype=np.uint8)
        for j, thumb in enumerate(block):
            r, col = divmod(j, _SHEET_GRID)
            sheet[r * tile : (r + 1) * tile, col * tile : (col + 1) * tile] = thumb
        rel = f"thumbs/sheet_{s:04d}.png"
        Image.fromarray(sheet).save(stage / rel, optimize=False, compress_level=6)
        sheets.append(rel)
    return sheets


class Bundle:
    """An opened, verified bundle. Create with :meth:`Bundle.open`.

    Attributes:
        path: the bundle directory.
        manifest: the parsed manifest.
        items: products, in index order.
        codes: (N, d) memory-mapped catalog codes (dtype by :attr:`code_spec`).
        code_items: (N,) int32 product index of each code row.
    """

    def __init__(
        self, path: Path, manifest: dict[str, Any], items: tuple[Item, ...], codes: np.ndarray, code_items: np.ndarray
    ):
        self.path = path
        self.manifest = manifest
        self.items = items
        self.codes = codes
        self.code_items = code_items

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> Bundle:
        """Open the bundle at ``path``.

        Args:
            verify: check every file's size and sha256 against the manifest
                (the default; turn off only for a bundle verified moments ago).

        Raises:
            BundleNotFoundError, BundleVersionError, BundleIntegrityError,
            BundleFormatError: each names the file and what was wrong.
        """
        path = Path(path)
        manifest = _read_manifest(path)
        if verify:
            _verify_files(path, manifest)
        items = _read_items(path, manifest)
        codes = _load_array(path, "codes/codes.npy", mmap=True)
        code_items = _load_array(path, "codes/code_items.npy")
        code_type = CodeType.parse(manifest["codes"]["type"])
        dtypes, width = expected_code_layout(code_type, int(manifest["codes"]["dims"]))
        if codes.ndim != 2 or codes.shape[1] != width or codes.dtype not in dtypes:
            raise BundleFormatError(
                f"{path}/codes/codes.npy: expected (N, {width}) {np.dtype(dtypes[0]).name} {code_type.name} codes, got {codes.dtype} {codes.shape}"
            )
        if code_items.shape != (codes.shape[0],) or (
            code_items.size and not 0 <= code_items.min() <= code_items.max() < len(items)
        ):
            raise BundleFormatError(
                f"{path}/codes/code_items.npy: expected ({codes.shape[0]},) indices into {len(items)} items"
            )
        return cls(path, manifest, items, codes, code_items)

    @property
    def name(self) -> str:
        return str(self.manifest["catalog"]["name"])

    @property
    def code_spec(self) -> CodeType:
        """The catalog codes' type (float, pca8, umap8, bits64, ...); ``.metric`` says how to compare them."""
        return CodeType.parse(self.manifest["codes"]["type"])

    def reducer(self) -> QueryReducer:
        """The device's query reducer: encoder embedding (n, D) → (n, d) codes."""
        entry = self.manifest["codes"].get("reducer") or {"kind": "none"}
        arrays = {name: _load_array(self.path, rel) for name, rel in entry.get("arrays", {}).items()}
        try:
            return reducer_from_arrays(entry["kind"], arrays, entry.get("params", {}))
        except ValueError as exc:
            raise BundleFormatError(f"bundle {self.path}: {exc}") from None

    @property
    def has_rerank(self) -> bool:
        return bool(self.manifest["codes"].get("rerank"))

    def rerank(self) -> tuple[np.ndarray, float, int]:
        """(N, D) int8 memory-mapped full embeddings, their scale, and the shortlist size."""
        entry = self.manifest["codes"].get("rerank")
        if not entry:
            raise BundleFormatError(f"bundle {self.path} has no re-rank embeddings")
        codes = _load_array(self.path, entry["file"], mmap=True)
        if codes.dtype != np.int8 or codes.ndim != 2 or len(codes) != len(self.codes):
            raise BundleFormatError(
                f"{self.path}/{entry['file']}: expected ({len(self.codes)}, D) int8, got {codes.dtype} {codes.shape}"
            )
        return codes, float(entry["scale"]), int(entry["shortlist"])

    @cached_property
    def categories(self) -> tuple[str, ...]:
        """Category names in first-seen order."""
        return tuple(dict.fromkeys(item.category for item in self.items))

    @cached_property
    def item_categories(self) -> np.ndarray:
        """(P,) int32 index into :attr:`categories` of each product."""
        lookup = {name: i for i, name in enumerate(self.categories)}
        return np.array([lookup[item.category] for item in self.items], dtype=np.int32)

    @cached_property
    def first_code_rows(self) -> np.ndarray:
        """(P,) int64 row in :attr:`codes` of each product's first image; -1 for none."""
        return first_rows(self.code_items, len(self.items))

    @property
    def raster_options(self) -> RasterOptions:
        """Rasteriser settings the sketch encoder was trained with."""
        s = self.manifest["inputs"]["sketch"]
        return RasterOptions(size=int(s["size"]), line_width=float(s["line_width"]), margin=float(s["margin"]))

    @property
    def photo_size(self) -> int:
        return int(self.manifest["inputs"]["photo"]["size"])

    def model_path(self, role: str, precision: str = "int8") -> Path:
        """Path of the ``role`` (sketch/photo) encoder at ``precision`` (int8/float)."""
        try:
            rel = self.manifest["models"][role][precision]
        except KeyError:
            have = {r: sorted(p) for r, p in self.manifest.get("models", {}).items()}
            raise BundleFormatError(f"bundle {self.path} has no {precision} {role} model (has {have})") from None
        return self.path / rel

    def thumbnail(self, item: int) -> np.ndarray:
        """(T, T, 3) uint8 thumbnail of product ``item``."""
        if not 0 <= item < len(self.items):
            raise IndexError(f"item {item} out of range for {len(self.items)} items")
        t = self.manifest["thumbnails"]
        grid, tile = int(t["grid"]), int(t["tile"])
        sheet_no, j = divmod(item, grid * grid)
        sheet = _load_sheet(self.path / t["sheets"][sheet_no])
        r, c = divmod(j, grid)
        return sheet[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile].copy()

    def eval_set(self) -> EvalSet:
        """The held-out queries. Raises BundleFormatError if the bundle has none."""
        if not self.manifest.get("eval"):
            raise BundleFormatError(f"bundle {self.path} has no eval set (it was built without one)")
        arrays = {
            key: _load_array(self.path, f"eval/{key}.npy")
            for key in ("sketches", "query_items", "gallery_items", "gallery_float")
        }
        return EvalSet(**arrays)

    def eval_strokes(self) -> list[tuple[int, list[np.ndarray]]]:
        """Held-out stroke queries as ``(product index, strokes)``; empty if the bundle has none."""
        if not self.manifest.get("eval_strokes"):
            return []
        data = _load_json(self.path, "eval/strokes.json")
        try:
            return [
                (int(q["item"]), [np.asarray(st, dtype=np.float64).reshape(-1, 2) for st in q["strokes"]])
                for q in data["queries"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleFormatError(f"{self.path}/eval/strokes.json: malformed query ({exc})") from None

    def report(self) -> dict[str, Any]:
        """The build report (training and quantisation figures)."""
        return _load_json(self.path, "report.json")

    def size_by_part(self) -> dict[str, int]:
        """Bytes on disk by top-level part: models, codes, thumbs, eval, metadata."""
        sizes: dict[str, int] = {}
        for rel, entry in self.manifest["files"].items():
            part = rel.split("/", 1)[0] if "/" in rel else "metadata"
            sizes[part] = sizes.get(part, 0) + int(entry["size"])
        return sizes


def first_rows(owners: np.ndarray, n_owners: int) -> np.ndarray:
    """(n_owners,) int64: the first row whose owner is each index, -1 where none.

    ``owners`` is (N,) ints in [0, n_owners), e.g. the product of each code row.
    """
    first = np.full(n_owners, -1, dtype=np.int64)
    rows = np.arange(len(owners))
    first[np.asarray(owners)[::-1]] = rows[::-1]  # reversed: the earliest row is written last and wins
    return first


@lru_cache(maxsize=128)
def _load_sheet(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def _load_json(root: Path, rel: str) -> Any:
    try:
        return json.loads((root / rel).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleIntegrityError(f"{root}/{rel} is missing") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(f"{root}/{rel} is not valid JSON: {exc}") from None


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise BundleNotFoundError(f"no bundle at {path}: not a directory")
    if not (path / MANIFEST).is_file():
        raise BundleNotFoundError(f"no bundle at {path}: {MANIFEST} is missing")
    manifest = _load_json(path, MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise BundleVersionError(f"{path}/{MANIFEST} is not a {FORMAT_NAME} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise BundleVersionError(f"{path}/{MANIFEST} has no integer format_version")
    if version > FORMAT_VERSION:
        raise BundleVersionError(
            f"bundle {path} has format version {version}, newer than this runtime reads ({FORMAT_VERSION}): update vitrina"
        )
    if version < 1:
        raise BundleVersionError(f"bundle {path} has unknown format version {version}")
    for key in ("catalog", "codes", "models", "inputs", "thumbnails", "files"):
        if key not in manifest:
            raise BundleFormatError(f"{path}/{MANIFEST} lacks the {key!r} entry")
    try:
        CodeType.parse(manifest["codes"].get("type"))
    except ValueError as exc:
        raise BundleFormatError(f"{path}: {exc}; this runtime reads float, pcaN, umapN and bitsN") from None
    return manifest


def _verify_files(path: Path, manifest: dict[str, Any]) -> None:
    for rel, entry in manifest["files"].items():
        target = path / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise BundleIntegrityError(f"{path}/{MANIFEST} lists an unsafe path {rel!r}")
        if not target.is_file():
            raise BundleIntegrityError(f"{target} is missing (listed in the manifest)")
        size = target.stat().st_size
        if size < entry["size"]:
            raise BundleIntegrityError(f"{target} is truncated: {size} bytes, manifest says {entry['size']}")
        if size != entry["size"]:
            raise BundleIntegrityError(f"{target} has {size} bytes, manifest says {entry['size']}")
        if sha256_file(target) != entry["sha256"]:
            raise BundleIntegrityError(f"{target} is corrupt: its sha256 differs from the manifest")


def _read_items(path: Path, manifest: dict[str, Any]) -> tuple[Item, ...]:
    data = _load_json(path, "items.json")
    try:
        items = tuple(Item(**entry) for entry in data["items"])
    except (KeyError, TypeError) as exc:
        raise BundleFormatError(f"{path}/items.json: malformed item entry ({exc})") from None
    if len(items) != manifest["catalog"]["items"]:
        raise BundleFormatError(
            f"{path}/items.json has {len(items)} items, manifest says {manifest['catalog']['items']}"
        )
    return items


def _load_array(root: Path, rel: str, mmap: bool = False) -> np.ndarray:
    try:
        return np.load(root / rel, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise BundleIntegrityError(f"{root}/{rel} is missing") from None
    except (ValueError, OSError, EOFError) as exc:
        raise BundleFormatError(f"{root}/{rel} is not a readable array (truncated or not .npy): {exc}") from None


def release_version(manifest: dict) -> int:
    """The signed release version of a manifest (0 for an unsigned bundle)."""
    release = manifest.get("release") or {}
    version = release.get("version", 0)
    return version if isinstance(version, int) and version >= 0 else 0
