"""int8 catalog codes with a per-dimension scale: half the bytes of float16 and a
faster scan (``runtime/scan.py`` widens int8 to float32 in one cast pass; float16
needs two), for catalogs of hundreds of thousands of products and more.

A row's value is ``code * scale`` (``code`` int8 in [-127, 127], ``scale`` (d,)
float32 > 0). The code space is centred at export (UMAP positions are shifted by
the middle of each dimension's range; L2 distances do not change), so no offset
is stored. The export quantises the catalog with :func:`int8_scale` and
:func:`quantize_int8`; the device quantises the products it adds with the
bundle's scale and the same function, so both sides round alike.
"""

from __future__ import annotations

import numpy as np

#: Largest int8 magnitude used: symmetric, so -128 never appears and negation is exact.
INT8_LIMIT = 127
#: Catalogs of this many code rows or more ship int8 PCA / UMAP codes by default (the export's
#: ``code_dtype="auto"``): at a million rows the 8-d int8 scan costs ~1.2x faiss's float32 against
#: ~2x for float16, and 8 MB against 16 (``vitrina bench search``); below it float16 keeps the
#: codes exact to 1e-3 and the scan takes a fraction of a millisecond either way.
INT8_FROM_ROWS = 250_000


def int8_scale(values: np.ndarray) -> np.ndarray:
    """(d,) float32 per-dimension scale for (N, d) float code values: ``max |x| / 127``.

    A dimension that is all zeros (or N = 0) gets scale 1, so the scale is always
    finite and positive.

    Raises:
        ValueError: ``values`` is not (N, d) finite floats.
    """
    x = np.asarray(values, dtype=np.float32)
    if x.ndim != 2 or not np.isfinite(x).all():
        raise ValueError(f"int8 codes need (N, d) finite float values, got {x.dtype} {x.shape}")
    peak = np.abs(x).max(axis=0) if len(x) else np.zeros(x.shape[1], np.float32)
    scale = peak / np.float32(INT8_LIMIT)
    return np.where(scale > 0, scale, np.float32(1.0)).astype(np.float32)


def quantize_int8(values: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(N, d) float values → (N, d) int8 codes ``clip(rint(x / scale), -127, 127)``.

    Values beyond the scale's range (a product added on the device) saturate.

    Raises:
        ValueError: shapes that do not fit, a scale that is not finite and positive,
            or non-finite values.
    """
    x = np.asarray(values, dtype=np.float32)
    s = np.asarray(scale, dtype=np.float32)
    if x.ndim != 2 or s.shape != (x.shape[1],):
        raise ValueError(f"int8 quantisation: values {x.shape} and scale {s.shape} must be (N, d) and (d,)")
    if not np.isfinite(s).all() or (s <= 0).any():
        raise ValueError("int8 quantisation: the scale must be finite and positive in every dimension")
    if not np.isfinite(x).all():
        raise ValueError("int8 quantisation: the values hold NaN or infinity")
    return np.clip(np.rint(x / s), -INT8_LIMIT, INT8_LIMIT).astype(np.int8)


def centre_of_range(values: np.ndarray) -> np.ndarray:
    """(d,) float32 middle of each dimension's range, ``(min + max) / 2``, of (N, d) values
    (zeros for N = 0): subtracting it makes the symmetric int8 range cover the values."""
    x = np.asarray(values, dtype=np.float32)
    if len(x) == 0:
        return np.zeros(x.shape[1], np.float32)
    return ((x.min(axis=0) + x.max(axis=0)) / 2).astype(np.float32)
