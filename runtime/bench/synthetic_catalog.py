"""Synthetic catalogs for ``vitrina bench search``: code arrays and a million-product bundle.

* :func:`synthetic_codes`: random codes of a case's kind (packed bits, float16 / float32),
  saved as ``.npy`` so the benchmark memory-maps them as a bundle's codes are.
* :func:`scaled_bundle`: a format-valid bundle of ``n`` products grown from a real one
  (its models, reducer, inputs and held-out strokes): its codes resampled with a little
  noise, its re-rank rows likewise, products named after the real ones (same categories,
  colours and prices, so filters select realistic shares), every thumbnail sheet entry
  naming one sheet file. It is what a 1M-item catalog looks like to the device: how
  fast it opens and how fast a sketch finds products in it. Its PCA / UMAP codes are
  stored as the export would ship them at that size (``code_dtype="auto"``: int8 with a
  per-dimension scale from ``INT8_FROM_ROWS`` rows, the code space centred by shifting
  the UMAP reducer's positions), or as the base's float codes with ``code_dtype="base"``.

Both are cached in a work folder (keyed by the base manifest's hash, the size and the dtype).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from vitrina.runtime.bundle import MANIFEST, Bundle
from vitrina.runtime.codes.quantize import INT8_FROM_ROWS, centre_of_range, int8_scale, quantize_int8
from vitrina.runtime.files import sha256_file

KINDS = {
    # kind: (metric, dtype, width in bytes for bits / dims for floats)
    "hamming64": ("hamming", np.uint8, 8),
    "hamming256": ("hamming", np.uint8, 32),
    "l2_8": ("l2", np.float16, 8),
    # the same 8-d codes kept as float32 (faiss's own dtype): the scan without the float16 widening
    "l2_8f32": ("l2", np.float32, 8),
    # the same 8-d codes as int8 with a per-dimension scale (half the bytes of float16)
    "l2_8i8": ("l2", np.int8, 8),
    "l2_64": ("l2", np.float16, 64),
}
#: Categories of the synthetic code catalogs: ten of equal size, so one is a 10% filter.
N_CATEGORIES = 10


def synthetic_codes(kind: str, n: int, work: Path, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(codes memory-mapped from ``work``, (n,) int categories) for a synthetic catalog of ``kind``.

    Float codes are clustered (64 centres plus noise), like reduced embeddings; bits are uniform.
    """
    metric, dtype, width = KINDS[kind]
    path = Path(work) / f"codes-{kind}-{n}-{seed}.npy"
    if not path.exists():
        rng = np.random.default_rng(seed)
        if metric == "hamming":
            codes = rng.integers(0, 256, size=(n, width), dtype=np.uint8)
        else:
            centres = rng.normal(size=(64, width)).astype(np.float32)
            codes = np.empty((n, width), dtype=dtype)
            scale = (np.abs(centres).max(axis=0) + 1.5) / 127  # centre + 5 sigma of noise
            for s in range(0, n, 1 << 18):
                m = min(1 << 18, n - s)
                x = centres[rng.integers(0, 64, m)] + 0.3 * rng.normal(size=(m, width))
                codes[s : s + m] = np.clip(np.rint(x / scale), -127, 127) if dtype == np.int8 else x
            if dtype == np.int8:
                np.save(scale_path(path), scale.astype(np.float32))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, codes)
        tmp.replace(path)
    categories = np.arange(n) % N_CATEGORIES
    return np.load(path, mmap_mode="r"), categories


def scale_path(codes_path: Path) -> Path:
    """Where the (w,) float32 per-dimension scale of an int8 code file is kept."""
    return Path(codes_path).with_suffix(".scale.npy")


def synthetic_scale(kind: str, n: int, work: Path, seed: int = 0) -> np.ndarray | None:
    """The (w,) float32 per-dimension scale of an int8 kind's codes (made by :func:`synthetic_codes`), else None."""
    if KINDS[kind][1] != np.int8:
        return None
    return np.load(scale_path(Path(work) / f"codes-{kind}-{n}-{seed}.npy"))


def synthetic_queries(codes: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    """(n, w) queries near catalog rows: a few flipped bits, or a little Gaussian noise."""
    rng = np.random.default_rng(seed)
    rows = np.asarray(codes[np.sort(rng.choice(len(codes), size=n, replace=len(codes) < n))])
    if codes.dtype == np.uint8:
        flips = np.packbits(rng.random((n, rows.shape[1] * 8)) < 0.05, axis=1)
        return rows ^ flips
    x = rows.astype(np.float32)
    return x + 0.1 * float(np.std(x)) * rng.normal(size=x.shape).astype(np.float32)


def scaled_bundle(base: Bundle, n: int, work: Path, *, seed: int = 0, code_dtype: str = "auto") -> Path:
    """A bundle of ``n`` products grown from ``base`` (see the module docstring), cached in ``work``.

    ``code_dtype``: ``auto`` (int8 PCA / UMAP codes from ``INT8_FROM_ROWS`` rows, as the export
    ships them), ``int8`` (int8 PCA / UMAP codes at any size) or ``base`` (the base bundle's code dtype)."""
    if code_dtype not in ("auto", "int8", "base"):
        raise ValueError(f"code_dtype must be auto, int8 or base, got {code_dtype!r}")
    to_int8 = (
        (code_dtype == "int8" or (code_dtype == "auto" and n >= INT8_FROM_ROWS))
        and base.code_spec.family in ("pca", "umap")
        and base.code_scale is None
    )
    digest = hashlib.sha256((base.path / MANIFEST).read_bytes()).hexdigest()[:12]
    name = f"bundle-{digest}-{n}" + ("-int8" if to_int8 else "")
    out = Path(work) / name
    if (out / MANIFEST).exists():
        return out
    stage = Path(work) / f".{name}.staging"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    m = base.manifest
    src = rng.integers(0, len(base.codes), size=n)  # each new product copies a real one's row
    files: list[str] = []

    def copy(rel: str) -> None:
        (stage / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(base.file(rel), stage / rel)
        files.append(rel)

    for role in m["models"].values():
        for rel in role.values():
            copy(rel)
    sample = np.asarray(base.codes[: min(len(base.codes), 1 << 16)], dtype=np.float32)
    centre = np.zeros(base.codes.shape[1], np.float32)
    reducer = m["codes"].get("reducer") or {}
    if to_int8 and reducer.get("kind") == "landmark":  # centre the code space, as the export does
        centre = centre_of_range(np.asarray(base.codes, dtype=np.float32))
    for name_, rel in reducer.get("arrays", {}).items():
        if name_ == "positions" and centre.any():
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            np.save(stage / rel, (base.array(rel) - centre).astype(np.float32))
            files.append(rel)
        else:
            copy(rel)
    if m.get("eval_strokes"):
        copy("eval/strokes.json")
    if m.get("vocabulary"):  # the text search's words (the grown titles repeat the base's)
        copy(m["vocabulary"])
    copy("report.json")
    sheet = m["thumbnails"]["sheets"][0]
    copy(sheet)
    (stage / "codes").mkdir(exist_ok=True)
    std = float(np.std(sample[:4096]))
    # int8: the scale covers the base's centred range with room for the added noise
    scale = int8_scale(np.abs(sample - centre).max(axis=0, keepdims=True) + 0.1 * std) if to_int8 else None
    codes = np.lib.format.open_memmap(
        stage / "codes/codes.npy",
        mode="w+",
        dtype=np.int8 if to_int8 else base.codes.dtype,
        shape=(n, base.codes.shape[1]),
    )
    for s in range(0, n, 1 << 18):
        rows = np.asarray(base.codes[np.sort(src[s : s + (1 << 18)])])
        if base.codes.dtype == np.uint8:
            rows = rows ^ np.packbits(rng.random((len(rows), rows.shape[1] * 8)) < 0.02, axis=1)
        else:
            rows = rows.astype(np.float32) + 0.02 * std * rng.normal(size=rows.shape).astype(np.float32)
            if scale is not None:
                rows = quantize_int8(rows - centre, scale)
        codes[s : s + len(rows)] = rows
    codes.flush()
    del codes
    files.append("codes/codes.npy")
    np.save(stage / "codes/code_items.npy", np.arange(n, dtype=np.int32))
    files.append("codes/code_items.npy")
    codes_entry = dict(m["codes"])
    if scale is not None:
        codes_entry |= {"dtype": "int8", "bytes_per_item": int(base.codes.shape[1]), "scale": scale.tolist()}
    if base.has_rerank:
        full, _, _ = base.rerank()
        rerank = np.lib.format.open_memmap(
            stage / "codes/rerank_int8.npy", mode="w+", dtype=np.int8, shape=(n, full.shape[1])
        )
        for s in range(0, n, 1 << 18):
            rerank[s : s + (1 << 18)] = full[np.sort(src[s : s + (1 << 18)])]
        rerank.flush()
        del rerank
        files.append("codes/rerank_int8.npy")
    order = np.sort(src)  # the rows above were written in sorted-source order; products follow it
    with open(stage / "items.json", "w", encoding="utf-8") as f:
        f.write('{"items": [\n')
        for i, j in enumerate(order):
            item = base.items[int(base.code_items[j])]
            entry = {
                "id": f"SYN-{i:07d}",
                "title": f"{item.title} {i}",
                "category": item.category,
                "color": item.color,
                "price": item.price,
                "split": item.split,
            }
            f.write(("," if i else "") + json.dumps(entry, ensure_ascii=False) + "\n")
        f.write("]}\n")
    files.append("items.json")
    grid = int(m["thumbnails"]["grid"])
    manifest: dict[str, Any] = {key: value for key, value in m.items() if key not in ("files", "release", "signature")}
    manifest["catalog"] = {"name": f"{m['catalog']['name']} x{n}", "items": n, "images": n}
    manifest["codes"] = codes_entry
    manifest["thumbnails"] = {**m["thumbnails"], "sheets": [sheet] * (-(-n // (grid * grid)))}
    manifest["eval"] = False
    manifest["eval_scenes"] = 0  # the held-out scenes stay with the base bundle
    manifest["files"] = {
        rel: {"sha256": sha256_file(stage / rel), "size": (stage / rel).stat().st_size} for rel in files
    }
    (stage / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    stage.replace(out)
    return out
