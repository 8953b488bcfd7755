"""Device twin of ``vitrina.export.codes.umap.UMAPReducer``: the landmark UMAP reducer.

umap-learn's own ``transform`` needs the fit data, a pynndescent index and numba
(seconds of JIT in every new process). The device instead interpolates a query's
position from its nearest landmarks, as umap-learn initialises ``transform``.
"""

from __future__ import annotations

import math

import numpy as np


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
            raise ValueError(
                f"landmark reducer: landmarks {landmarks.shape} and positions {positions.shape} must be (L, D) and (L, d)"
            )
        if not 2 <= n_neighbors <= len(landmarks):
            raise ValueError(f"landmark reducer: n_neighbors must be in [2, {len(landmarks)}], got {n_neighbors}")
        self.landmarks = np.asarray(landmarks, dtype=np.float32)
        self.positions = np.asarray(positions, dtype=np.float32)
        self.n_neighbors = int(n_neighbors)
        self._sq_norms = np.einsum("ij,ij->i", self.landmarks, self.landmarks)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, D) embeddings → (n, d) float32 UMAP codes (weighted means of landmark positions)."""
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
    if n == 1:  # one query (the kiosk's case): the same bisection on Python floats, ~10x faster
        return _fuzzy_weights_one(dists[0], n_iter, tolerance)[None]
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


def _fuzzy_weights_one(dists: np.ndarray, n_iter: int, tolerance: float) -> np.ndarray:
    """:func:`fuzzy_weights` of one (k,) float64 ascending row, the bisection step by step
    on Python floats (numpy's per-call overhead dominates arrays of one row)."""
    d = [float(v) for v in dists]
    target = math.log2(len(d))
    lo, hi, mid = 0.0, math.inf, 1.0
    for _ in range(n_iter):
        psum = math.fsum(math.exp(-v / mid) for v in d[1:])
        if abs(psum - target) < tolerance:
            break
        if psum > target:
            hi = mid
            mid = (lo + hi) / 2.0
        else:
            lo = mid
            mid = mid * 2.0 if math.isinf(hi) else (lo + hi) / 2.0
    sigma = max(mid, 1e-3 * (sum(d) / len(d)))
    w = np.array([math.exp(-v / sigma) if v > 0 else 1.0 for v in d])
    return w / w.sum()
