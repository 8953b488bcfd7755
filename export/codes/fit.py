"""Fit a compact code type on a catalog's embeddings: the one place that turns
``"pca8"`` / ``"umap8"`` / ``"bits64"`` into catalog codes plus the device reducer.

Used by ``vitrina build --codes`` (what ships) and ``vitrina eval --sweep``
(what is compared). Inputs are float32 unit embeddings from the int8 encoders:

* photos: (N, D) every catalog image (the catalog codes before reduction);
* sketches: (S, D) synthetic sketches of train-split products, with the photo
  row each depicts and its category (the hash heads and the distilled UMAP
  reducer learn from them; held-out eval sketches are never used).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from vitrina.export.training.hash_heads import HashTrainOptions, train_hash_head
from vitrina.runtime.bundle import ReducerArrays, Rerank
from vitrina.runtime.codes import CodeType
from vitrina.runtime.codes.quantize import INT8_FROM_ROWS, centre_of_range, int8_scale, quantize_int8

from .binary import ITQHasher
from .pca import PCAReducer
from .umap import UMAPOptions, UMAPReducer

DEFAULT_LANDMARKS = 5000
DEFAULT_SHORTLIST = 200
#: ``code_dtype`` values; ``auto`` ships int8 from ``INT8_FROM_ROWS`` catalog images on.
CODE_DTYPES = ("auto", "float16", "int8")


@dataclass(frozen=True, kw_only=True)
class TrainingEmbeddings:
    """Attributes: photos (N, D) float32 catalog embeddings; photo_labels (N,)
    their categories; sketches (S, D) float32 train-split sketch embeddings;
    sketch_rows (S,) photo row each depicts; sketch_labels (S,) its category."""

    photos: np.ndarray
    photo_labels: np.ndarray
    sketches: np.ndarray
    sketch_rows: np.ndarray
    sketch_labels: np.ndarray


@dataclass(frozen=True, kw_only=True)
class CodeOptions:
    """Attributes:
    umap: UMAP settings (dims come from the code type).
    landmarks: landmarks kept for the device's UMAP reducer.
    hash_head: ``itq``, ``cbs`` or ``dsh`` for bits codes.
    hash_steps: training steps of a cbs/dsh head.
    rerank: ship int8 full embeddings for a two-stage search.
    shortlist: first-stage rows the two-stage search keeps.
    blend: weight of the compact score in the re-rank (``Rerank.blend``; 0: cosine alone).
    instance_depth, instance_top: the re-rank's instance check (``Rerank.instance_depth``,
        ``Rerank.instance_top``; 0, 0: off): the ``instance_top`` rows of best cosine among
        the compact codes' ``instance_depth`` best join the shortlist.
    code_dtype: PCA / UMAP code storage: ``float16``, ``int8`` (a per-dimension scale,
        ``vitrina.runtime.codes.quantize``) or ``auto`` (int8 from :data:`INT8_FROM_ROWS` rows).
    progress: show progress bars.
    """

    umap: UMAPOptions = UMAPOptions()
    landmarks: int = DEFAULT_LANDMARKS
    hash_head: str = "dsh"
    hash_steps: int = 2000
    rerank: bool = False
    shortlist: int = DEFAULT_SHORTLIST
    blend: float = 0.0
    instance_depth: int = 0
    instance_top: int = 0
    code_dtype: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.code_dtype not in CODE_DTYPES:
            raise ValueError(f"code_dtype must be one of {CODE_DTYPES}, got {self.code_dtype!r}")
        if (self.instance_depth > 0) != (self.instance_top > 0) or min(self.instance_depth, self.instance_top) < 0:
            raise ValueError(
                "instance_depth and instance_top must be both 0 (off) or both >= 1, "
                f"got {self.instance_depth}, {self.instance_top}"
            )


@dataclass(frozen=True, kw_only=True)
class FittedCodes:
    """Attributes: code_type name; codes (N, d) float16 or int8 (with ``code_scale``),
    packed uint8 for bits, float32 for float; reducer for the device; rerank or None;
    code_scale: (d,) float32 per-dimension scale of int8 codes, else None;
    report: JSON-serialisable facts about the fit."""

    code_type: str
    codes: np.ndarray
    reducer: ReducerArrays
    rerank: Rerank | None
    code_scale: np.ndarray | None = None
    report: dict = field(default_factory=dict)


def quantize_rerank(
    embeddings: np.ndarray,
    shortlist: int = DEFAULT_SHORTLIST,
    blend: float = 0.0,
    *,
    instance: tuple[int, int] = (0, 0),
) -> Rerank:
    """(N, D) float32 unit embeddings → int8 with one global scale (max |x| → 127); ``instance``:
    the instance check's (depth, top)."""
    scale = float(np.max(np.abs(embeddings))) / 127.0 or 1.0
    codes = np.clip(np.round(embeddings / scale), -127, 127).astype(np.int8)
    return Rerank(codes, scale, shortlist, blend, instance_depth=instance[0], instance_top=instance[1])


def fit_codes(code_type: str, data: TrainingEmbeddings, options: CodeOptions = CodeOptions()) -> FittedCodes:
    """Fit ``code_type`` on ``data`` and encode the whole catalog with it."""
    ct = CodeType.parse(code_type)
    photos = np.asarray(data.photos, dtype=np.float32)
    rerank = (
        quantize_rerank(
            photos, options.shortlist, options.blend, instance=(options.instance_depth, options.instance_top)
        )
        if options.rerank and ct.family != "float"
        else None
    )
    if ct.family == "float":
        return FittedCodes(code_type=ct.name, codes=photos, reducer=ReducerArrays(), rerank=None)
    if ct.family == "pca":
        pca = PCAReducer(ct.size).fit(photos)
        about = f"PCA to {ct.size} dims, fitted on {len(photos)} catalog photo embeddings"
        reducer = ReducerArrays("linear", pca.device_arrays(), {}, about)
        return _stored(
            ct.name, pca.transform(photos), reducer=reducer, rerank=rerank, report={}, code_dtype=options.code_dtype
        )
    if ct.family == "umap":
        reducer = UMAPReducer(**{**asdict(options.umap), "dims": ct.size}).fit(photos, data.photo_labels)
        codes = np.empty((len(photos), ct.size), dtype=np.float32)
        codes[reducer.fit_rows_] = reducer.embedding_
        rest = np.setdiff1d(np.arange(len(photos)), reducer.fit_rows_)
        if len(rest):
            codes[rest] = reducer.transform(photos[rest])
        arrays = reducer.landmarks(options.landmarks)
        about = (
            f"{'supervised ' if reducer.supervised else ''}umap-learn (n_neighbors {reducer.n_neighbors}, min_dist {reducer.min_dist}) fitted on {len(reducer.fit_rows_)} "
            f"catalog photo embeddings; device: landmark interpolation over {len(arrays['landmarks'])} landmarks"
        )
        report = {"umap_pickled_bytes": reducer.model_bytes(), "fit_rows": int(len(reducer.fit_rows_))}
        if _int8(options.code_dtype, len(codes)):
            # centre the code space so the symmetric int8 range covers it (L2 distances do not change)
            centre = centre_of_range(codes)
            codes = codes - centre
            arrays = {**arrays, "positions": (arrays["positions"] - centre).astype(np.float32)}
        device = ReducerArrays("landmark", arrays, {"n_neighbors": reducer.n_neighbors}, about)
        return _stored(ct.name, codes, reducer=device, rerank=rerank, report=report, code_dtype=options.code_dtype)
    # bits
    if options.hash_head == "itq":
        itq = ITQHasher(ct.size).fit(photos)
        arrays, codes = itq.device_arrays(), itq.transform(photos)
        about = f"ITQ {ct.size}-bit codes fitted on {len(photos)} catalog photo embeddings"
        report = {}
    else:
        head = train_hash_head(
            data.sketches,
            photos[data.sketch_rows],
            data.sketch_labels,
            options=HashTrainOptions(head=options.hash_head, bits=ct.size, steps=options.hash_steps),
            progress=options.progress,
        )
        arrays, codes = head.device_arrays(), head.transform(photos)
        about = f"{options.hash_head.upper()} {ct.size}-bit hash head trained on {len(data.sketches)} train-split sketch/photo pairs"
        report = {"hash_final_loss": head.final_loss}
    return FittedCodes(
        code_type=ct.name, codes=codes, reducer=ReducerArrays("sign", arrays, {}, about), rerank=rerank, report=report
    )


def _int8(code_dtype: str, rows: int) -> bool:
    """Whether ``code_dtype`` stores ``rows`` PCA / UMAP codes as int8."""
    return code_dtype == "int8" or (code_dtype == "auto" and rows >= INT8_FROM_ROWS)


def _stored(
    code_type: str,
    values: np.ndarray,
    *,
    reducer: ReducerArrays,
    rerank: Rerank | None,
    report: dict,
    code_dtype: str,
) -> FittedCodes:
    """(N, d) float PCA / UMAP codes as shipped: float16, or int8 with a per-dimension scale."""
    if not _int8(code_dtype, len(values)):
        return FittedCodes(
            code_type=code_type, codes=values.astype(np.float16), reducer=reducer, rerank=rerank, report=report
        )
    scale = int8_scale(values)
    codes = quantize_int8(values, scale)
    error = float(np.abs(codes * scale - values).max()) if len(values) else 0.0
    report = {**report, "code_dtype": "int8", "int8_max_error": round(error, 5)}
    return FittedCodes(
        code_type=code_type, codes=codes, reducer=reducer, rerank=rerank, code_scale=scale, report=report
    )
