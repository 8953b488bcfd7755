"""Compact catalog codes on the device: code types, query reducers and scoring.

A bundle's catalog codes are one of (the manifest's ``codes.type``):

========  ==========================  =========  ============================
type      codes/codes.npy             metric     query reduction on device
========  ==========================  =========  ============================
float     (N, D) float32, unit norm   cosine     none (encoder embedding)
pcaN      (N, N) float16              l2         :class:`LinearReducer`
umapN     (N, N) float16              l2         :class:`LandmarkReducer` or a
                                                 distilled head in the encoder
bitsN     (N, N/8) uint8, packed      hamming    :class:`SignHasher`
========  ==========================  =========  ============================

Scores are "higher is better" for every metric (negated distances for l2 and
hamming), so one ranking routine serves them all. numpy only: the catalog
codes were computed at export by the real PCA / umap-learn / hash head, and
the reducers here reproduce those transforms from plain arrays.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Protocol

import numpy as np

CODE_FAMILIES = ("float", "pca", "umap", "bits")
METRICS = ("cosine", "l2", "hamming")
_CODE_TYPE = re.compile(r"^(float|pca|umap|bits)(\d*)$")
_HAMMING_CHUNK = 64


@dataclass(frozen=True)
class CodeType:
    """A parsed code type name such as ``"umap8"`` or ``"bits64"``.

    Attributes: family (float/pca/umap/bits); size: dims, or bits for ``bits``
    (0 for ``float``, whose dims come from the encoder).
    """

    family: str
    size: int

    @classmethod
    def parse(cls, name: str) -> "CodeType":
        m = _CODE_TYPE.match(str(name))
        if not m:
            raise ValueError(f"code type {name!r} is not one of float, pcaN, umapN, bitsN (e.g. pca8, umap8, bits64)")
        family, size = m.group(1), int(m.group(2) or 0)
        if family == "float" and size:
            raise ValueError(f"code type {name!r}: float takes no size (its dims are the encoder's)")
        if family != "float" and size < 1:
            raise ValueError(f"code type {name!r} needs a size, e.g. {family}8")
        if family == "bits" and size % 64:
            raise ValueError(f"code type {name!r}: bits must be a multiple of 64 (64, 128, 256)")
        return cls(family, size)

    @property
    def name(self) -> str:
        return self.family if self.family == "float" else f"{self.family}{self.size}"

    @property
    def metric(self) -> str:
        return {"float": "cosine", "pca": "l2", "umap": "l2", "bits": "hamming"}[self.family]


class QueryReducer(Protocol):
    """(n, D) float32 unit-norm embeddings → (n, d) codes in the catalog's code space."""

    def __call__(self, embeddings: np.ndarray) -> np.ndarray: ...


class IdentityReducer:
    """Float codes: the embedding is the code."""

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        return np.asarray(embeddings, dtype=np.float32)


class LinearReducer:
    """PCA on the device: ``(x - mean) @ components`` → (n, d) float32."""

    def __init__(self, mean: np.ndarray, components: np.ndarray):
        if components.ndim != 2 or mean.shape != (components.shape[0],):
            raise ValueError(f"linear reducer: mean {mean.shape} and components {components.shape} do not fit (D,) and (D, d)")
        self.mean = np.asarray(mean, dtype=np.float32)
        self.components = np.asarray(components, dtype=np.float32)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        return (np.asarray(embeddings, dtype=np.float32) - self.mean) @ self.components


class SignHasher:
    """Binary codes: ``bits = (x - mean) @ projection + bias > 0``, packed (n, bits/8) uint8."""

    def __init__(self, mean: np.ndarray, projection: np.ndarray, bias: np.ndarray):
        if projection.ndim != 2 or mean.shape != (projection.shape[0],) or bias.shape != (projection.shape[1],):
            raise ValueError(f"sign hasher: mean {mean.shape}, projection {projection.shape}, bias {bias.shape} do not fit (D,), (D, b), (b,)")
        if projection.shape[1] % 8:
            raise ValueError(f"sign hasher: {projection.shape[1]} bits is not a multiple of 8")
        self.mean = np.asarray(mean, dtype=np.float32)
        self.projection = np.asarray(projection, dtype=np.float32)
        self.bias = np.asarray(bias, dtype=np.float32)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        return np.packbits((x - self.mean) @ self.projection + self.bias > 0, axis=1)


class LandmarkReducer:
    """UMAP on the device without umap-learn: its transform initialisation.

    For each query, the ``n_neighbors`` nearest landmarks (Euclidean) get
    UMAP's fuzzy membership weights ``exp(-(d - rho) / sigma)`` (rho = 0 and
    sigma found by bisection so the weights of all but the nearest sum to
    log2(n_neighbors), exactly as umap-learn's ``smooth_knn_dist`` with its
    transform-time local connectivity), L1-normalised; the code is the
    weighted mean of those landmarks' fitted positions.

    Args:
        landmarks: (L, D) float16/float32 embeddings of a subset of the UMAP fit set.
        positions: (L, d) float32 their fitted UMAP coordinates.
        n_neighbors: landmarks averaged per query (umap-learn's n_neighbors).
    """

    def __init__(self, landmarks: np.ndarray, positions: np.ndarray, n_neighbors: int = 15):
        if landmarks.ndim != 2 or positions.ndim != 2 or len(landmarks) != len(positions):
            raise ValueError(f"landmark reducer: landmarks {landmarks.shape} and positions {positions.shape} must be (L, D) and (L, d)")
        if not 2 <= n_neighbors <= len(landmarks):
            raise ValueError(f"landmark reducer: n_neighbors must be in [2, {len(landmarks)}], got {n_neighbors}")
        self.landmarks = np.asarray(landmarks, dtype=np.float32)
        self.positions = np.asarray(positions, dtype=np.float32)
        self.n_neighbors = int(n_neighbors)
        self._sq_norms = np.einsum("ij,ij->i", self.landmarks, self.landmarks)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        k = self.n_neighbors
        sq = np.einsum("ij,ij->i", x, x)[:, None] - 2.0 * (x @ self.landmarks.T) + self._sq_norms
        idx = np.argpartition(sq, k - 1, axis=1)[:, :k]
        d2 = np.take_along_axis(sq, idx, axis=1)
        order = np.argsort(d2, axis=1, kind="stable")
        idx = np.take_along_axis(idx, order, axis=1)
        dists = np.sqrt(np.maximum(np.take_along_axis(d2, order, axis=1), 0.0)).astype(np.float64)
        weights = fuzzy_weights(dists)
        return np.einsum("nk,nkd->nd", weights, self.positions[idx]).astype(np.float32)


def fuzzy_weights(dists: np.ndarray, n_iter: int = 64, tolerance: float = 1e-5) -> np.ndarray:
    """UMAP membership weights of each row's sorted kNN distances, L1-normalised.

    ``dists``: (n, k) float64 ascending. Returns (n, k) float64 rows summing to 1.
    Mirrors umap-learn's ``smooth_knn_dist`` (local_connectivity 0, so rho = 0;
    the sum skips the first neighbour; sigma floored at 1e-3 × the mean distance)
    followed by ``compute_membership_strengths(bipartite=True)``.
    """
    n, k = dists.shape
    target = np.log2(k)
    lo, hi, mid = np.zeros(n), np.full(n, np.inf), np.ones(n)
    active = np.ones(n, dtype=bool)
    for _ in range(n_iter):
        psum = np.exp(-dists[:, 1:] / mid[:, None]).sum(axis=1)
        active &= np.abs(psum - target) >= tolerance
        if not active.any():
            break
        above = active & (psum > target)
        below = active & ~(psum > target)
        hi[above] = mid[above]
        mid[above] = (lo[above] + hi[above]) / 2.0
        lo[below] = mid[below]
        mid[below] = np.where(np.isinf(hi[below]), mid[below] * 2.0, (lo[below] + hi[below]) / 2.0)
    sigma = np.maximum(mid, 1e-3 * dists.mean())
    w = np.where(dists > 0, np.exp(-dists / sigma[:, None]), 1.0)
    return w / w.sum(axis=1, keepdims=True)


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
            return LandmarkReducer(arrays["landmarks"], arrays["positions"], int(params.get("n_neighbors", 15)))
    except KeyError as exc:
        raise ValueError(f"{kind} reducer needs the array {exc}") from None
    raise ValueError(f"unknown reducer kind {kind!r}: expected none, linear, landmark or sign")


def hamming_distances(queries: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(n, N) int32 Hamming distances between packed (n, B) and (N, B) uint8 codes.

    Bytes are viewed as uint64 words when B is a multiple of 8, XORed, counted
    with ``np.bitwise_count`` (uint8 per word) and summed into a uint16
    accumulator, so 256-bit codes (up to 256 differing bits) cannot overflow.
    """
    q = np.ascontiguousarray(queries, dtype=np.uint8)
    c = np.ascontiguousarray(codes, dtype=np.uint8)
    if q.ndim != 2 or c.ndim != 2 or q.shape[1] != c.shape[1]:
        raise ValueError(f"hamming: queries {q.shape} and codes {c.shape} must be (n, B) and (N, B) packed bytes")
    return hamming_from_words(as_words(q), code_words(c))


def as_words(packed: np.ndarray) -> np.ndarray:
    """(n, B) packed uint8 → (n, W) words: uint64 when B is a multiple of 8, else the bytes."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    return packed.view(np.uint64) if packed.shape[1] % 8 == 0 else packed


def code_words(codes: np.ndarray) -> np.ndarray:
    """(N, B) packed catalog codes → (W, N) word-major copy, so each pass scans one contiguous row."""
    return np.ascontiguousarray(as_words(codes).T)


def hamming_from_words(query_words: np.ndarray, words: np.ndarray) -> np.ndarray:
    """(n, W) query words against (W, N) word-major codes → (n, N) int32 distances."""
    out = np.empty((len(query_words), words.shape[1]), dtype=np.int32)
    for start in range(0, len(query_words), _HAMMING_CHUNK):
        block = query_words[start : start + _HAMMING_CHUNK]
        acc = np.zeros((len(block), words.shape[1]), dtype=np.uint16)
        for w in range(words.shape[0]):
            acc += np.bitwise_count(block[:, w, None] ^ words[w][None, :])
        out[start : start + len(block)] = acc
    return out


def pairwise_scores(queries: np.ndarray, codes: np.ndarray, metric: str) -> np.ndarray:
    """(n, N) float32 similarity of every query to every code, higher is better.

    cosine: dot product of unit vectors; l2: minus the squared Euclidean
    distance; hamming: minus the number of differing bits.
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
