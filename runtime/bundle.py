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
                             (N, N) float16, or int8 with the manifest's
                             per-dimension ``codes.scale`` (large catalogs),
                             bitsN (N, N/8) packed uint8
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
    text/vocabulary.json     optional: the text search's vocabulary (folded
                             words with product counts, brand words, and
                             synonyms: folded phrase → vocabulary words); named by
                             the manifest's ``vocabulary`` entry. Without it
                             (older bundles) the vocabulary is built from items.json
    eval/scenes.npy          optional (N, S, S, 3) uint8 held-out scene photos
                             composed from test-split products (detector and
                             photo-search eval), with eval/scene_boxes.npy
                             (M, 4) float32 xyxy boxes, eval/scene_box_scene.npy,
                             eval/scene_box_items.npy, eval/scene_box_labels.npy
                             (M,) int32 scene, product and category of each box
    report.json              build report: training and quantisation figures

No pickles anywhere: arrays load with ``allow_pickle=False``. Everything the
writer produces is listed in the manifest with its hash and size.

Reading is defensive, because a bundle may be signed and still broken:

- the manifest and items.json are checked against typed schemas (msgspec), so
  a wrong type or range is a :class:`BundleFormatError` naming the field
  (``at $.codes.dims``);
- only files the manifest lists are read, each through
  ``files.resolve_inside`` (relative, inside the bundle, no symlinks, regular
  files only), and each is hashed before its first use: all at open with
  ``verify=True`` (the default), or file by file on first use with
  ``verify=False`` (sizes are still checked for every file at open);
- an ``.npy`` header must describe exactly the bytes its file holds, with a
  plain numeric dtype, before numpy allocates or maps anything.

What it takes for a bundle to be *usable*, not just well-formed (models load,
codes are finite, queries answer), is the activation gate's job
(``sync/gate.py``), run before a device switches to a bundle.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
from PIL import Image

from .codes import CodeType, QueryReducer, reducer_from_arrays
from .codes.quantize import quantize_int8
from .files import UnsafePathError, resolve_inside, sha256_file
from .rasterize import RasterOptions
from .text import Vocabulary
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
ROLES = ("sketch", "photo", "detector", "textvisual")
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


@dataclass(frozen=True, eq=False)
class SceneSet:
    """Composed scene photos and their ground truth (``export/data/scenes.py`` makes them).

    Attributes:
        images: (N, S, S, 3) uint8 RGB scenes.
        boxes: (M, 4) float32 product boxes (x0, y0, x1, y1), scene pixels, x1/y1 exclusive.
        box_scene: (M,) int32 scene of each box (ascending).
        box_items: (M,) int32 product index of each box.
        box_labels: (M,) int32 category index of each box.
    """

    images: np.ndarray
    boxes: np.ndarray
    box_scene: np.ndarray
    box_items: np.ndarray
    box_labels: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def rows(self, scene: int) -> np.ndarray:
        """(m,) int64 rows of :attr:`boxes` that belong to ``scene``."""
        start, stop = np.searchsorted(self.box_scene, [scene, scene + 1])
        return np.arange(start, stop)

    def products_per_scene(self) -> np.ndarray:
        """(N,) int64 number of products in each scene."""
        return np.bincount(self.box_scene, minlength=len(self.images))


_SCENE_ARRAYS = ("boxes", "box_scene", "box_items", "box_labels")


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
    one int8 step; shortlist: rows the first stage keeps; blend: weight of the
    first-stage (compact) score in the re-rank, in standard deviations of the
    shortlist's compact scores added to the cosine (0: cosine alone);
    instance_depth, instance_top: the instance check (0, 0: off): the
    ``instance_top`` rows of best cosine among the compact codes' ``instance_depth``
    best join the shortlist (:class:`~vitrina.runtime.search.RerankSearcher`).
    """

    codes: np.ndarray
    scale: float
    shortlist: int = 200
    blend: float = 0.0
    instance_depth: int = 0
    instance_top: int = 0


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
        vocabulary: the text search's vocabulary (from the catalog's titles), or None.
        arrays: more ``.npy`` files, bundle-relative path → numeric array (e.g. the
            per-style eval sketches under ``eval/styles/``), listed and hashed like the rest.
        eval_scenes: held-out scene photos with ground-truth boxes (detector and photo eval), or None.
        code_scale: (d,) float32 per-dimension scale of int8 PCA / UMAP codes (a row's
            values are ``code * code_scale``, ``vitrina.runtime.codes.quantize``), else None.
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
    vocabulary: Vocabulary | None = None
    arrays: Mapping[str, np.ndarray] = field(default_factory=dict)
    eval_scenes: SceneSet | None = None
    code_scale: np.ndarray | None = None


VOCABULARY_FILE = "text/vocabulary.json"
VOCABULARY_FORMAT = "vitrina-vocabulary"


def expected_code_layout(code_type: CodeType, dims: int) -> tuple[tuple[type, ...], int]:
    """(allowed dtypes, row width) of codes/codes.npy for a code type; ``dims`` is
    the encoder's embedding width (used by ``float``)."""
    if code_type.family == "float":
        return (np.float32,), dims
    if code_type.family == "bits":
        return (np.uint8,), code_type.size // 8
    return (np.float16, np.float32, np.int8), code_type.size


def _check_code_scale(scale: np.ndarray | None, codes: np.ndarray) -> str | None:
    """Why ``scale`` does not fit ``codes`` (int8 codes need a (d,) finite positive scale,
    other codes take none), or None when it fits."""
    if (codes.dtype == np.int8) != (scale is not None):
        return f"int8 codes need a per-dimension scale and other codes take none (codes are {codes.dtype})"
    if scale is not None:
        s = np.asarray(scale, dtype=np.float64)
        if s.shape != (codes.shape[1],) or not np.isfinite(s).all() or (s <= 0).any():
            return f"the int8 code scale must be ({codes.shape[1]},) finite and positive, got shape {s.shape}"
    return None


def _check_contents(c: BundleContents) -> None:
    n_items = len(c.items)
    code_type = CodeType.parse(c.code_type)
    dtypes, width = expected_code_layout(code_type, c.codes.shape[1] if c.codes.ndim == 2 else -1)
    if c.codes.ndim != 2 or c.codes.dtype not in dtypes or c.codes.shape[1] != width:
        want = "/".join(np.dtype(d).name for d in dtypes)
        raise ValueError(
            f"{code_type.name} codes must be a (N, {width}) {want} array, got {c.codes.dtype} {c.codes.shape}"
        )
    problem = _check_code_scale(c.code_scale, c.codes)
    if problem:
        raise ValueError(problem)
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
    for rel, array in sorted(c.arrays.items()):
        parts = rel.split("/")
        if not rel.endswith(".npy") or parts[0] in ("", "codes", "models") or any(p in ("", ".", "..") for p in parts):
            raise ValueError(f"extra bundle array {rel!r} must be a relative .npy path outside codes/ and models/")
        path = stage.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.ascontiguousarray(array))
    if c.eval_scenes is not None:
        (stage / "eval").mkdir(exist_ok=True)
        np.save(stage / "eval/scenes.npy", np.ascontiguousarray(c.eval_scenes.images, dtype=np.uint8))
        np.save(stage / "eval/scene_boxes.npy", np.ascontiguousarray(c.eval_scenes.boxes, dtype=np.float32))
        for key in _SCENE_ARRAYS[1:]:
            np.save(stage / f"eval/scene_{key}.npy", np.ascontiguousarray(getattr(c.eval_scenes, key), dtype=np.int32))
    (stage / "report.json").write_text(json.dumps(c.report, indent=2, ensure_ascii=False), encoding="utf-8")
    text_entries = {}
    if c.vocabulary is not None:
        (stage / "text").mkdir()
        doc = {
            "format": VOCABULARY_FORMAT,
            "version": 1,
            "words": [[w, n] for w, n in zip(c.vocabulary.words, c.vocabulary.counts)],
            "brands": sorted(c.vocabulary.brands),
            "synonyms": {phrase: list(meant) for phrase, meant in sorted(c.vocabulary.synonyms.items())},
        }
        (stage / VOCABULARY_FILE).write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
        text_entries["vocabulary"] = VOCABULARY_FILE
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
        **text_entries,
        "eval_scenes": 0 if c.eval_scenes is None else len(c.eval_scenes),
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
            **({"blend": float(c.rerank.blend)} if c.rerank.blend else {}),
            **(
                {"instance": {"depth": int(c.rerank.instance_depth), "top": int(c.rerank.instance_top)}}
                if c.rerank.instance_top
                else {}
            ),
        }
    return {
        "type": code_type.name,
        "dims": code_type.size or int(c.codes.shape[1]),
        "dtype": c.codes.dtype.name,
        "metric": code_type.metric,
        "bytes_per_item": int(c.codes.shape[1] * c.codes.dtype.itemsize),
        **({"scale": [float(v) for v in np.asarray(c.code_scale, np.float32)]} if c.code_scale is not None else {}),
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


#: Largest manifest.json / items.json the reader parses before checking anything else.
MAX_MANIFEST_BYTES = 64 << 20
#: Largest .npy header (bytes) the reader parses; numpy's own default.
_MAX_NPY_HEADER = 10_000
_ARRAY_KINDS = "biuf"  # bool, signed and unsigned ints, floats: no objects, strings or records

_Count = Annotated[int, msgspec.Meta(ge=0)]
_Positive = Annotated[int, msgspec.Meta(ge=1)]
_Side = Annotated[int, msgspec.Meta(ge=8, le=4096)]


class _FileEntry(msgspec.Struct):
    sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    size: _Count


class _CatalogEntry(msgspec.Struct):
    name: str
    items: _Count
    images: _Count


class _ReducerEntry(msgspec.Struct):
    kind: Literal["none", "linear", "landmark", "sign"] = "none"
    arrays: dict[str, str] = {}
    params: dict[str, Any] = {}
    about: str = ""


class _InstanceEntry(msgspec.Struct):
    depth: _Positive
    top: Annotated[int, msgspec.Meta(ge=1, le=100)]


class _RerankEntry(msgspec.Struct):
    file: str
    dims: _Positive
    scale: Annotated[float, msgspec.Meta(gt=0.0)]
    shortlist: _Positive
    blend: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)] = 0.0
    instance: _InstanceEntry | None = None


class _CodesEntry(msgspec.Struct):
    type: str
    dims: _Positive
    scale: list[float] | None = None  # int8 codes' per-dimension scale
    reducer: _ReducerEntry | None = None
    rerank: _RerankEntry | None = None


class _SketchInput(msgspec.Struct):
    size: _Side
    line_width: float
    margin: float


class _PhotoInput(msgspec.Struct):
    size: _Side


class _Inputs(msgspec.Struct):
    sketch: _SketchInput
    photo: _PhotoInput


class _ThumbnailsEntry(msgspec.Struct):
    tile: Annotated[int, msgspec.Meta(ge=1, le=1024)]
    grid: Annotated[int, msgspec.Meta(ge=1, le=256)]
    sheets: list[str]


class _ManifestSchema(msgspec.Struct):
    """The manifest fields the reader uses, with their types and ranges; other fields are kept, unchecked."""

    format: str
    format_version: int
    catalog: _CatalogEntry
    codes: _CodesEntry
    models: dict[str, dict[str, str]]
    inputs: _Inputs
    thumbnails: _ThumbnailsEntry
    files: dict[str, _FileEntry]
    eval: bool = False
    eval_strokes: _Count = 0
    eval_scenes: _Count = 0
    release: dict[str, Any] | None = None
    vocabulary: str | None = None


class _ItemEntry(msgspec.Struct):
    id: str
    title: str
    category: str
    color: str
    price: Annotated[float, msgspec.Meta(ge=0.0)]
    split: Literal["train", "test"] = "train"


class _ItemsDoc(msgspec.Struct):
    items: list[_ItemEntry]


class _VocabularyDoc(msgspec.Struct):
    format: Literal["vitrina-vocabulary"]
    version: Annotated[int, msgspec.Meta(ge=1, le=1)]
    words: list[tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=64)], _Count]]
    brands: list[str] = []
    synonyms: dict[
        Annotated[str, msgspec.Meta(min_length=1, max_length=200)],
        Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]], msgspec.Meta(max_length=32)],
    ] = {}


class Bundle:
    """An opened bundle. Create with :meth:`Bundle.open`.

    Only files listed in the manifest are read, each through
    :func:`~vitrina.runtime.files.resolve_inside` (relative, inside the
    bundle, no symlinks, regular files) and each hashed before its first use:
    all of them at open with ``verify=True``, or one by one on first use with
    ``verify=False`` (see :meth:`open`).

    Attributes:
        path: the bundle directory.
        manifest: the parsed manifest, schema-checked.
        items: products, in index order.
        codes: (N, d) memory-mapped catalog codes (dtype by :attr:`code_spec`).
        code_items: (N,) int32 product index of each code row.
    """

    def __init__(self, path: Path, manifest: dict[str, Any], *, verified: set[str], lazy: bool = False):
        """Use :meth:`open`. ``verified`` holds the listed files already hashed; ``lazy``: items
        are parsed on first use and memory-mapped arrays are trusted from the install (see :meth:`open`)."""
        self.path = path
        self.manifest = manifest
        self._files: dict[str, dict[str, Any]] = manifest["files"]
        self._verified = verified
        self._lazy = lazy
        if not lazy:
            _ = self.items  # a full open parses and checks everything now
        self.codes = self.array("codes/codes.npy", mmap=True)
        self.code_items = self.array("codes/code_items.npy", mmap=True)
        _check_codes(self)

    @cached_property
    def items(self) -> tuple[Item, ...]:
        """Products, in index order (parsed from items.json on first use when opened with ``verify=False``).

        Raises:
            BundleFormatError, BundleIntegrityError: items.json is malformed or damaged.
        """
        return _read_items(self, self.file("items.json"))

    @classmethod
    def open(cls, path: str | Path, verify: bool = True) -> Bundle:
        """Open the bundle at ``path``.

        Every file the manifest lists must be a safe relative path to a
        regular file inside the bundle, with the listed size; that is checked
        at open either way.

        Args:
            verify: hash every listed file against the manifest now, and parse
                items.json (the default: tools, publishing, the activation gate).
                False is the device's open, which must stay fast at a million
                products (<= 100 ms): sizes, safe paths and the manifest schema
                are checked now; each file is hashed on its first use (a kiosk
                showing 20 thumbnails does not hash 15,000 sheets); items.json
                is parsed on first use; and the memory-mapped arrays (catalog
                codes, re-rank rows, code_items) are not hashed at all: they are
                mapped, not read, and were hashed at install (sync verifies every
                file against the signed manifest before activation, the gate
                re-hashes the stage, the install is an atomic rename, and nothing
                on the device writes into an installed bundle). Their headers are
                still checked against their sizes. :meth:`verify_files` (and
                ``vitrina info --verify``) re-hashes everything on demand.

        Raises:
            BundleNotFoundError, BundleVersionError, BundleIntegrityError,
            BundleFormatError: each names the file and what was wrong.
        """
        path = Path(path)
        manifest = _read_manifest(path)
        for rel, entry in manifest["files"].items():
            _check_size(path, rel, entry)
        verified: set[str] = set()
        if verify:
            for rel, entry in manifest["files"].items():
                _check_hash(path, rel, entry)
                verified.add(rel)
        return cls(path, manifest, verified=verified, lazy=not verify)

    def verify_files(self) -> int:
        """Hash every listed file against the manifest now (what ``verify=True`` does at open);
        returns the number of files hashed.

        Raises:
            BundleIntegrityError: a file is missing, unsafe, or its size or sha256 differs.
        """
        for rel, entry in self._files.items():
            _check_size(self.path, rel, entry)
            _check_hash(self.path, rel, entry)
            self._verified.add(rel)
        return len(self._files)

    def file(self, rel: str) -> Path:
        """Path of the listed file ``rel`` (e.g. ``"models/sketch_int8.tflite"``), hashed before its first use.

        Raises:
            BundleIntegrityError: ``rel`` is not in the manifest's file list, is
                unsafe (outside the bundle, a symlink, not a regular file), or
                its size or sha256 differs from the manifest.
        """
        entry = self._files.get(rel)
        if entry is None:
            raise BundleIntegrityError(
                f"bundle {self.path}: {rel!r} is not in the manifest's files list; unlisted files are never read"
            )
        if rel not in self._verified:
            _check_size(self.path, rel, entry)
            _check_hash(self.path, rel, entry)
            self._verified.add(rel)
        return self.path / rel

    def array(self, rel: str, mmap: bool = False) -> np.ndarray:
        """The listed ``.npy`` file ``rel`` (memory-mapped when ``mmap``), after checking that its
        header's dtype is numeric and its shape matches the file size.

        Raises:
            BundleIntegrityError: see :meth:`file`.
            BundleFormatError: not an ``.npy`` array, a non-numeric dtype, or a
                header whose shape does not match the file's size.
        """
        if mmap and self._lazy and rel not in self._verified:
            # mapped, not read: trusted from the install (see :meth:`open`); size and path still checked
            entry = self._files.get(rel)
            if entry is None:
                self.file(rel)  # raises: not listed
            _check_size(self.path, rel, entry)  # type: ignore[arg-type]
            return _load_array(self.path / rel, mmap=True)
        return _load_array(self.file(rel), mmap=mmap)

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
        arrays = {name: self.array(rel) for name, rel in entry.get("arrays", {}).items()}
        for name, array in arrays.items():
            check_finite(array, where=f"{self.path}/{entry['arrays'][name]}")
        try:
            return reducer_from_arrays(entry.get("kind", "none"), arrays, entry.get("params", {}))
        except (ValueError, TypeError, KeyError) as exc:
            raise BundleFormatError(
                f"bundle {self.path}: the {entry.get('kind', 'none')} reducer is malformed: {exc}"
            ) from None

    @property
    def has_rerank(self) -> bool:
        return bool(self.manifest["codes"].get("rerank"))

    def rerank(self) -> tuple[np.ndarray, float, int]:
        """(N, D) int8 memory-mapped full embeddings, their scale, and the shortlist size."""
        entry = self.manifest["codes"].get("rerank")
        if not entry:
            raise BundleFormatError(f"bundle {self.path} has no re-rank embeddings")
        codes = self.array(entry["file"], mmap=True)
        if codes.dtype != np.int8 or codes.shape != (len(self.codes), entry["dims"]):
            raise BundleFormatError(
                f"{self.path}/{entry['file']}: expected ({len(self.codes)}, {entry['dims']}) int8, got {codes.dtype} {codes.shape}"
            )
        return codes, float(entry["scale"]), int(entry["shortlist"])

    @property
    def rerank_blend(self) -> float:
        """Weight of the compact score in the re-rank (:attr:`Rerank.blend`); 0 without one."""
        return float((self.manifest["codes"].get("rerank") or {}).get("blend", 0.0))

    @property
    def rerank_instance(self) -> tuple[int, int]:
        """The re-rank's instance check ``(depth, top)`` (:attr:`Rerank.instance_depth`,
        :attr:`Rerank.instance_top`); ``(0, 0)`` without one."""
        entry = (self.manifest["codes"].get("rerank") or {}).get("instance") or {}
        return int(entry.get("depth", 0)), int(entry.get("top", 0))

    @cached_property
    def code_scale(self) -> np.ndarray | None:
        """(d,) float32 per-dimension scale of int8 catalog codes (row values ``code * scale``), else None."""
        scale = self.manifest["codes"].get("scale")
        return None if scale is None else np.asarray(scale, dtype=np.float32)

    def codes_from_values(self, values: np.ndarray) -> np.ndarray:
        """(n, d) reducer output → rows in the catalog codes' dtype: a cast, or int8
        quantisation with :attr:`code_scale` (saturating beyond the catalog's range)."""
        if self.code_scale is not None:
            return quantize_int8(values, self.code_scale)
        return np.asarray(values).astype(self.codes.dtype)

    def code_values(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows),) catalog code rows in the reducer's space: float32 values (int8 rows
        times :attr:`code_scale`; float16 widened), packed uint8 bits as they are."""
        codes = np.asarray(self.codes[np.asarray(rows, dtype=np.int64)])
        if self.code_scale is not None:
            return codes.astype(np.float32) * self.code_scale
        return codes if codes.dtype == np.uint8 else codes.astype(np.float32)

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
        try:
            return RasterOptions(size=int(s["size"]), line_width=float(s["line_width"]), margin=float(s["margin"]))
        except ValueError as exc:
            raise BundleFormatError(f"{self.path}/{MANIFEST}: inputs.sketch: {exc}") from None

    @property
    def photo_size(self) -> int:
        return int(self.manifest["inputs"]["photo"]["size"])

    def model_path(self, role: str, precision: str = "int8") -> Path:
        """Path of the ``role`` (sketch/photo) encoder at ``precision`` (int8/float), hashed before first use."""
        try:
            rel = self.manifest["models"][role][precision]
        except KeyError:
            have = {r: sorted(p) for r, p in self.manifest.get("models", {}).items()}
            raise BundleFormatError(f"bundle {self.path} has no {precision} {role} model (has {have})") from None
        return self.file(rel)

    def thumbnail(self, item: int) -> np.ndarray:
        """(T, T, 3) uint8 thumbnail of product ``item``."""
        if not 0 <= item < len(self.items):
            raise IndexError(f"item {item} out of range for {len(self.items)} items")
        t = self.manifest["thumbnails"]
        grid, tile = int(t["grid"]), int(t["tile"])
        sheet_no, j = divmod(item, grid * grid)
        rows = -(-min(grid * grid, len(self.items) - sheet_no * grid * grid) // grid)
        sheet = _load_sheet(self.file(t["sheets"][sheet_no]), (grid * tile, rows * tile))
        r, c = divmod(j, grid)
        return sheet[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile].copy()

    @cached_property
    def vocabulary(self) -> Vocabulary:
        """The text search's vocabulary: ``text/vocabulary.json``, or for a bundle
        without one, the words of its items' titles, categories and colours.

        Raises:
            BundleIntegrityError, BundleFormatError: the listed file is damaged or malformed.
        """
        rel = self.manifest.get("vocabulary")
        if not rel:
            return Vocabulary.from_texts(f"{i.title} {i.category} {i.color}" for i in self.items)
        path = self.file(rel)
        try:
            doc = msgspec.json.decode(path.read_bytes(), type=_VocabularyDoc)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise BundleFormatError(f"{path}: malformed vocabulary ({exc})") from None
        try:
            return Vocabulary(
                tuple(w for w, _ in doc.words),
                tuple(n for _, n in doc.words),
                frozenset(doc.brands),
                {phrase: tuple(meant) for phrase, meant in doc.synonyms.items()},
            )
        except ValueError as exc:
            raise BundleFormatError(f"{path}: {exc}") from None

    def eval_set(self) -> EvalSet:
        """The held-out queries. Raises BundleFormatError if the bundle has none or they are inconsistent."""
        if not self.manifest.get("eval"):
            raise BundleFormatError(f"bundle {self.path} has no eval set (it was built without one)")
        arrays = {
            key: self.array(f"eval/{key}.npy") for key in ("sketches", "query_items", "gallery_items", "gallery_float")
        }
        eval_set = EvalSet(**arrays)
        _check_eval_set(self, eval_set)
        return eval_set

    def eval_strokes(self) -> list[tuple[int, list[np.ndarray]]]:
        """Held-out stroke queries as ``(product index, strokes)``; empty if the bundle has none."""
        if not self.manifest.get("eval_strokes"):
            return []
        data = _load_json(self.file("eval/strokes.json"))
        try:
            return [
                (int(q["item"]), [np.asarray(st, dtype=np.float64).reshape(-1, 2) for st in q["strokes"]])
                for q in data["queries"]
            ]
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise BundleFormatError(f"{self.path}/eval/strokes.json: malformed query ({exc})") from None

    @property
    def has_detector(self) -> bool:
        """True when the bundle carries a product detector (models role ``detector``)."""
        return bool(self.manifest["models"].get("detector"))

    def eval_scenes(self) -> SceneSet:
        """The held-out scene photos and their boxes. Raises BundleFormatError if the bundle has none
        or they are inconsistent."""
        if not self.manifest.get("eval_scenes"):
            raise BundleFormatError(f"bundle {self.path} has no held-out scenes (built without a detector)")
        arrays = {"images": self.array("eval/scenes.npy"), "boxes": self.array("eval/scene_boxes.npy")}
        arrays |= {key: self.array(f"eval/scene_{key}.npy") for key in _SCENE_ARRAYS[1:]}
        scenes = SceneSet(**arrays)
        _check_scenes(self, scenes)
        return scenes

    def report(self) -> dict[str, Any]:
        """The build report (training and quantisation figures)."""
        report = _load_json(self.file("report.json"))
        if not isinstance(report, dict):
            raise BundleFormatError(f"{self.path}/report.json: expected a JSON object, got {type(report).__name__}")
        return report

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
def _load_sheet(path: Path, max_size: tuple[int, int]) -> np.ndarray:
    """A thumbnail sheet, refused from its header when larger than ``max_size`` (width, height) pixels."""
    try:
        with Image.open(path) as im:
            if im.size[0] > max_size[0] or im.size[1] > max_size[1]:
                raise BundleFormatError(f"{path} is {im.size[0]}×{im.size[1]} pixels, a sheet is at most {max_size}")
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, BundleFormatError):
            raise
        raise BundleFormatError(f"{path} is not a decodable thumbnail sheet: {exc}") from None


def _load_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        raise BundleIntegrityError(f"{path} is missing") from None
    if len(data) > MAX_MANIFEST_BYTES:
        raise BundleFormatError(f"{path} is larger than the {MAX_MANIFEST_BYTES >> 20} MiB a bundle's JSON may be")
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleFormatError(f"{path} is not valid JSON: {exc}") from None
    except RecursionError:
        raise BundleFormatError(f"{path} nests too deeply to be a bundle file") from None


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_dir():
        raise BundleNotFoundError(f"no bundle at {path}: not a directory")
    try:
        resolve_inside(path, MANIFEST)
    except FileNotFoundError:
        raise BundleNotFoundError(f"no bundle at {path}: {MANIFEST} is missing") from None
    except UnsafePathError as exc:
        raise BundleIntegrityError(f"bundle {path}: {exc}") from None
    manifest = _load_json(path / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise BundleVersionError(f"{path}/{MANIFEST} is not a {FORMAT_NAME} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleVersionError(f"{path}/{MANIFEST} has no integer format_version")
    if version > FORMAT_VERSION:
        raise BundleVersionError(
            f"bundle {path} has format version {version}, newer than this runtime reads ({FORMAT_VERSION}): update vitrina"
        )
    if version < 1:
        raise BundleVersionError(f"bundle {path} has unknown format version {version}")
    check_manifest_schema(manifest, where=f"{path}/{MANIFEST}")
    return manifest


def check_manifest_schema(manifest: Any, *, where: str) -> None:
    """Check a parsed manifest's types and ranges (the fields the reader uses).

    Raises:
        BundleFormatError: names ``where`` and the field, e.g. ``at $.codes.dims``.
    """
    try:
        schema = msgspec.convert(manifest, type=_ManifestSchema, strict=True)
    except msgspec.ValidationError as exc:
        raise BundleFormatError(f"{where}: {exc}") from None
    try:
        CodeType.parse(schema.codes.type)
    except ValueError as exc:
        raise BundleFormatError(f"{where}: {exc}; this runtime reads float, pcaN, umapN and bitsN") from None
    if schema.codes.rerank is not None and not np.isfinite(schema.codes.rerank.scale):
        raise BundleFormatError(f"{where}: codes.rerank.scale must be a finite number > 0")
    for role, precisions in schema.models.items():
        unknown = sorted(set(precisions) - set(PRECISIONS))
        if unknown:
            raise BundleFormatError(f"{where}: models.{role} has unknown precision(s) {unknown}; expected {PRECISIONS}")
    named = [rel for p in schema.models.values() for rel in p.values()]
    named += list(schema.thumbnails.sheets) + ["items.json", "codes/codes.npy", "codes/code_items.npy"]
    named += list(schema.codes.reducer.arrays.values()) if schema.codes.reducer else []
    named += [schema.codes.rerank.file] if schema.codes.rerank else []
    named += [schema.vocabulary] if schema.vocabulary else []
    missing = [rel for rel in named if rel not in schema.files]
    if missing:
        raise BundleFormatError(f"{where}: names file(s) {missing[:5]} that its files list does not hash")
    grid = schema.thumbnails.grid
    if len(schema.thumbnails.sheets) != -(-schema.catalog.items // (grid * grid)):
        raise BundleFormatError(
            f"{where}: {len(schema.thumbnails.sheets)} thumbnail sheets for {schema.catalog.items} items of {grid}×{grid} a sheet"
        )


def _check_size(root: Path, rel: str, entry: dict[str, Any]) -> None:
    try:
        target = resolve_inside(root, rel)
    except FileNotFoundError:
        raise BundleIntegrityError(f"{root / rel} is missing (listed in the manifest)") from None
    except UnsafePathError as exc:
        raise BundleIntegrityError(f"bundle {root}: the manifest lists an unsafe path: {exc}") from None
    size = target.stat().st_size
    if size < entry["size"]:
        raise BundleIntegrityError(f"{target} is truncated: {size} bytes, manifest says {entry['size']}")
    if size != entry["size"]:
        raise BundleIntegrityError(f"{target} has {size} bytes, manifest says {entry['size']}")


def _check_hash(root: Path, rel: str, entry: dict[str, Any]) -> None:
    if sha256_file(root / rel) != entry["sha256"]:
        raise BundleIntegrityError(f"{root / rel} is corrupt: its sha256 differs from the manifest")


def _read_items(bundle: Bundle, path: Path) -> tuple[Item, ...]:
    try:
        doc = msgspec.json.decode(path.read_bytes(), type=_ItemsDoc)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BundleFormatError(f"{path}: malformed items ({exc})") from None
    items = tuple(Item(e.id, e.title, e.category, e.color, e.price, e.split) for e in doc.items)
    if len(items) != bundle.manifest["catalog"]["items"]:
        raise BundleFormatError(f"{path} has {len(items)} items, manifest says {bundle.manifest['catalog']['items']}")
    if any(not np.isfinite(item.price) for item in items):
        raise BundleFormatError(f"{path}: a price is not a finite number")
    return items


def _check_codes(bundle: Bundle) -> None:
    """Codes and code_items agree with the manifest and the items."""
    codes, code_items, path = bundle.codes, bundle.code_items, bundle.path
    code_type = bundle.code_spec
    dtypes, width = expected_code_layout(code_type, int(bundle.manifest["codes"]["dims"]))
    if codes.ndim != 2 or codes.shape[1] != width or codes.dtype not in dtypes:
        raise BundleFormatError(
            f"{path}/codes/codes.npy: expected (N, {width}) {np.dtype(dtypes[0]).name} {code_type.name} codes, got {codes.dtype} {codes.shape}"
        )
    problem = _check_code_scale(bundle.code_scale, codes)
    if problem:
        raise BundleFormatError(f"{path}/codes/codes.npy: {problem}")
    check_finite(codes, where=f"{path}/codes/codes.npy")
    if len(codes) != bundle.manifest["catalog"]["images"]:
        raise BundleFormatError(
            f"{path}/codes/codes.npy has {len(codes)} rows, the manifest says {bundle.manifest['catalog']['images']} images"
        )
    n_items = int(bundle.manifest["catalog"]["items"])  # items.json agrees with it when parsed
    if (
        code_items.dtype.kind not in "iu"
        or code_items.shape != (codes.shape[0],)
        or (code_items.size and not 0 <= code_items.min() <= code_items.max() < n_items)
    ):
        raise BundleFormatError(
            f"{path}/codes/code_items.npy: expected ({codes.shape[0]},) integer indices into {n_items} items, "
            f"got {code_items.dtype} {code_items.shape}"
        )


#: Rows checked per step by :func:`check_finite`: bounded memory on a million-row file.
_FINITE_ROWS = 1 << 16


def check_finite(array: np.ndarray, *, where: str) -> None:
    """Refuse a float array holding NaN or infinity (checked in row chunks; other dtypes pass).

    Raises:
        BundleFormatError: names ``where`` and the first bad row.
    """
    if array.dtype.kind != "f":
        return
    rows = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
    # NaN and infinity are the values whose exponent bits are all ones: an integer test on the
    # bits is several times faster than np.isfinite (float16 has no SIMD isfinite at all)
    bits: dict[int, tuple[type[np.unsignedinteger], int]] = {
        2: (np.uint16, 0x7C00),
        4: (np.uint32, 0x7F800000),
        8: (np.uint64, 0x7FF0000000000000),
    }
    view = bits.get(array.dtype.itemsize) if array.dtype.byteorder in "=|" else None
    for start in range(0, len(rows), _FINITE_ROWS):
        chunk = np.ascontiguousarray(rows[start : start + _FINITE_ROWS])
        if view is not None:
            utype, exponent = view
            flags = np.bitwise_and(chunk.view(utype), utype(exponent)) == exponent
            if not flags.any():  # the usual case: one flat pass, no per-row reduction
                continue
            bad = flags.any(axis=1)
        else:
            bad = ~np.isfinite(chunk).all(axis=1)
        if bad.any():
            raise BundleFormatError(f"{where}: row {start + int(np.argmax(bad))} holds NaN or infinite values")


def _check_eval_set(bundle: Bundle, e: EvalSet) -> None:
    size = bundle.raster_options.size
    n_items = len(bundle.items)
    problems = []
    if e.sketches.dtype != np.uint8 or e.sketches.ndim != 3 or e.sketches.shape[1:] != (size, size):
        problems.append(f"sketches must be (Q, {size}, {size}) uint8, got {e.sketches.dtype} {e.sketches.shape}")
    for name in ("query_items", "gallery_items"):
        a = getattr(e, name)
        if a.dtype.kind not in "iu" or a.ndim != 1 or (a.size and not 0 <= a.min() <= a.max() < n_items):
            problems.append(f"{name} must be integer indices into {n_items} items, got {a.dtype} {a.shape}")
    if e.query_items.shape[:1] != e.sketches.shape[:1]:
        problems.append(f"{len(e.query_items)} query_items for {len(e.sketches)} sketches")
    g = e.gallery_float
    if g.dtype != np.float32 or g.ndim != 2 or len(g) != len(e.gallery_items):
        problems.append(f"gallery_float must be ({len(e.gallery_items)}, D) float32, got {g.dtype} {g.shape}")
    if problems:
        raise BundleFormatError(f"bundle {bundle.path}: eval set: {'; '.join(problems)}")


def _check_scenes(bundle: Bundle, s: SceneSet) -> None:
    n_items, n_cat = len(bundle.items), len(bundle.categories)
    problems = []
    if s.images.dtype != np.uint8 or s.images.ndim != 4 or s.images.shape[3] != 3:
        problems.append(f"scenes must be (N, S, S, 3) uint8, got {s.images.dtype} {s.images.shape}")
    m = len(s.boxes)
    if s.boxes.dtype != np.float32 or s.boxes.shape != (m, 4):
        problems.append(f"scene_boxes must be (M, 4) float32, got {s.boxes.dtype} {s.boxes.shape}")
    else:
        check_finite(s.boxes, where=f"{bundle.path}/eval/scene_boxes.npy")
    for key, high in (("box_scene", len(s.images)), ("box_items", n_items), ("box_labels", n_cat)):
        a = getattr(s, key)
        if a.dtype.kind not in "iu" or a.shape != (m,) or (a.size and not 0 <= a.min() <= a.max() < high):
            problems.append(f"scene_{key} must be ({m},) integers in [0, {high}), got {a.dtype} {a.shape}")
    if not problems and m and np.any(np.diff(s.box_scene) < 0):
        problems.append("scene_box_scene must be ascending")
    if problems:
        raise BundleFormatError(f"bundle {bundle.path}: held-out scenes: {'; '.join(problems)}")


def _load_array(path: Path, mmap: bool = False) -> np.ndarray:
    """Load an .npy file after checking its header: numeric dtype, and a shape that accounts for
    exactly the file's bytes (so a header claiming terabytes is refused before any allocation)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=_MAX_NPY_HEADER)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=_MAX_NPY_HEADER)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
        if dtype.kind not in _ARRAY_KINDS or dtype.hasobject or dtype.fields is not None:
            raise ValueError(f"dtype {dtype} is not a plain numeric type")
        expected = offset + math.prod(shape) * dtype.itemsize
        actual = path.stat().st_size
        if expected != actual:
            raise ValueError(f"the header says {shape} {dtype} ({expected} bytes) but the file has {actual} bytes")
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise BundleIntegrityError(f"{path} is missing") from None
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise BundleFormatError(f"{path} is not a readable array: {exc}") from None


def release_version(manifest: dict) -> int:
    """The signed release version of a manifest (0 for an unsigned bundle)."""
    release = manifest.get("release") or {}
    version = release.get("version", 0)
    return version if isinstance(version, int) and version >= 0 else 0
