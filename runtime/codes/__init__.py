"""Compact catalog codes on the device: code types, query reducers and scoring.

A bundle's catalog codes are one of (the manifest's ``codes.type``):

========  ==========================  =========  ============================
type      codes/codes.npy             metric     query reduction on device
========  ==========================  =========  ============================
float     (N, D) float32, unit norm   cosine     none (encoder embedding)
pcaN      (N, N) float16 or int8 [*]  l2         :class:`LinearReducer`
umapN     (N, N) float16 or int8 [*]  l2         :class:`LandmarkReducer` or a
                                                 distilled head in the encoder
bitsN     (N, N/8) uint8, packed      hamming    :class:`SignHasher`
========  ==========================  =========  ============================

[*] int8 with a per-dimension scale (``quantize.py``), for large catalogs.

Scores are "higher is better" for every metric (negated distances for l2 and
hamming), so one ranking routine serves them all. numpy only: the catalog
codes were computed at export by the real PCA / umap-learn / hash head, and
the reducers here reproduce those transforms from plain arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import SupportsInt, cast

import numpy as np

from .binary import SignHasher, as_words, code_words, hamming_distances, hamming_from_words
from .pca import LinearReducer
from .types import CODE_FAMILIES, METRICS, CodeType, IdentityReducer, QueryReducer
from .umap import LandmarkReducer, fuzzy_weights

__all__ = [
    "CODE_FAMILIES",
    "METRICS",
    "CodeType",
    "IdentityReducer",
    "LandmarkReducer",
    "LinearReducer",
    "QueryReducer",
    "SignHasher",
    "as_words",
    "code_words",
    "fuzzy_weights",
    "hamming_distances",
    "hamming_from_words",
    "pairwise_scores",
    "reducer_from_arrays",
]


def reducer_from_arrays(kind: str, arrays: Mapping[str, np.ndarray], params: Mapping[str, object]) -> QueryReducer:
    """Build the device reducer named in a manifest from its arrays.

    kind: ``none`` (float codes, or a distilled head inside the encoder),
    ``linear`` (PCA), ``landmark`` (UMAP) or ``sign`` (binary codes).
    """
    try:
        if kind == "none":
            return IdentityReducer()
        if kind == "linear":
            return LinearReducer(arrays["mean"], arrays["components"])
        if kind == "sign":
            return SignHasher(arrays["mean"], arrays["projection"], arrays["bias"])
        if kind == "landmark":
            return LandmarkReducer(
                arrays["landmarks"], arrays["positions"], int(cast(SupportsInt, params.get("n_neighbors", 15)))
            )
    except KeyError as exc:
        raise ValueError(f"{kind} reducer needs the array {exc}") from None
    raise ValueError(f"unknown reducer kind {kind!r}: expected none, linear, landmark or sign")


def pairwise_scores(queries: np.ndarray, codes: np.ndarray, metric: str) -> np.ndarray:
    """(n, N) float32 similarity of every query to every code, higher is better.

    cosine: dot product of unit vectors, in [-1, 1] (any real dtype, converted
    to float32); l2: minus the squared Euclidean distance (converted to float32);
    hamming: minus the number of differing bits of packed uint8 codes (other
    dtypes raise ``ValueError``, never cast).
    """
    if metric == "cosine":
        return np.asarray(queries, dtype=np.float32) @ np.asarray(codes, dtype=np.float32).T
    if metric == "l2":
        q = np.asarray(queries, dtype=np.float32)
        c = np.asarray(codes, dtype=np.float32)
        return 2.0 * (q @ c.T) - np.einsum("ij,ij->i", q, q)[:, None] - np.einsum("ij,ij->i", c, c)[None, :]
    if metric == "hamming":
        return -hamming_distances(queries, codes).astype(np.float32)
    raise ValueError(f"unknown metric {metric!r}: expected one of {METRICS}")
