"""Export-side code reducers: PCA, UMAP and ITQ binary codes (sklearn-style fit/transform).

Every reducer turns (n, D) float32 L2-normalised embeddings into compact codes
and can hand the device what it needs as plain arrays (``device_arrays``):
nothing is pickled into a bundle. The device-side twins live in
``vitrina.runtime.codes`` and are tested to reproduce ``transform`` here.

* :class:`PCAReducer`: a linear projection to 4–64 dims (device: one matmul).
* :class:`UMAPReducer`: umap-learn, fitted on catalog photo embeddings only.
  Its exact ``transform`` needs the fit data, a pynndescent index and numba:
  an export-time reference. :meth:`UMAPReducer.landmarks` picks the subset the
  device's landmark reducer interpolates from.
* :class:`ITQHasher`: iterative quantisation (Gong & Lazebnik): PCA then the
  rotation that best aligns the data with the binary hypercube; bits = sign.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PCA_DIMS = (4, 8, 16, 32, 64)
HASH_BITS = (64, 128, 256)


def _check_fit_input(x: np.ndarray, min_rows: int, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{what}: embeddings must be a (n, D) array, got shape {x.shape}")
    if len(x) < min_rows:
        raise ValueError(f"{what}: needs at least {min_rows} embeddings to fit, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: embeddings contain NaN or infinity")
    return x


class _Fitted:
    """Guards ``transform`` before ``fit`` and checks the input width."""

    dims_in: int | None = None

    def _check_transform_input(self, x: np.ndarray) -> np.ndarray:
        if self.dims_in is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit() first")
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dims_in:
            raise ValueError(f"{type(self).__name__}.transform: expected (n, {self.dims_in}) embeddings, got shape {x.shape}")
        return x


class PCAReducer(_Fitted):
    """Principal components: (n, D) → (n, dims) float32, ``y = (x - mean) @ components``."""

    def __init__(self, dims: int):
        if not isinstance(dims, (int, np.integer)) or dims < 1:
            raise ValueError(f"PCA dims must be an integer >= 1, got {dims!r}")
        self.dims = int(dims)
        self.mean: np.ndarray | None = None
        self.components: np.ndarray | None = None  # (D, dims) float32

    def fit(self, x: np.ndarray) -> "PCAReducer":
        x = _check_fit_input(x, self.dims + 1, f"PCA-{self.dims}")
        if self.dims > x.shape[1]:
            raise ValueError(f"PCA-{self.dims}: cannot keep more dims than the embedding has ({x.shape[1]})")
        self.mean = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - self.mean, full_matrices=False)
        self.components = np.ascontiguousarray(vt[: self.dims].T, dtype=np.float32)
        self.dims_in = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = self._check_transform_input(x)
        return ((x - self.mean) @ self.components).astype(np.float32)

    def device_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean.astype(np.float32), "components": self.components}


class ITQHasher(_Fitted):
    """Iterative quantisation to ``bits`` <= D binary codes, packed uint8 (n, bits/8).

    ``bits = sign((x - mean) @ projection)`` where ``projection = PCA_bits @ R``
    and R (bits, bits) is the orthogonal rotation minimising quantisation loss.
    """

    def __init__(self, bits: int, iterations: int = 50, seed: int = 0):
        if not isinstance(bits, (int, np.integer)) or bits < 8 or bits % 8:
            raise ValueError(f"bits must be a positive multiple of 8, got {bits!r}")
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        self.bits, self.iterations, self.seed = int(bits), int(iterations), seed
        self.mean: np.ndarray | None = None
        self.projection: np.ndarray | None = None  # (D, bits) float32

    def fit(self, x: np.ndarray) -> "ITQHasher":
        x = _check_fit_input(x, self.bits + 1, f"ITQ-{self.bits}")
        if self.bits > x.shape[1]:
            raise ValueError(f"ITQ-{self.bits}: ITQ gives at most one bit per embedding dim ({x.shape[1]}); use the trained hash heads for more bits")
        pca = PCAReducer(self.bits).fit(x)
        v = pca.transform(x).astype(np.float64)
        rng = np.random.default_rng(self.seed)
        r, _ = np.linalg.qr(rng.standard_normal((self.bits, self.bits)))
        for _ in range(self.iterations):
            b = np.sign(v @ r)
            b[b == 0] = 1
            u, _, wt = np.linalg.svd(b.T @ v)
            r = (u @ wt).T
        self.mean = pca.mean
        self.projection = (pca.components.astype(np.float64) @ r).astype(np.float32)
        self.dims_in = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        x = self._check_transform_input(x)
        return np.packbits((x - self.mean) @ self.projection > 0, axis=1)

    def device_arrays(self) -> dict[str, np.ndarray]:
        return {"mean": self.mean.astype(np.float32), "projection": self.projection, "bias": np.zeros(self.bits, np.float32)}


@dataclass(frozen=True)
class UMAPOptions:
    """Attributes: dims: output dims; n_neighbors, min_dist: umap-learn's knobs
    (defaults as the study); fit_sample: fit on this many rows (None: all);
    supervised: use the catalog's category labels in the fit (umap-learn's
    supervised mode, target_weight 0.5); unsupervised by default, as the study;
    seed: random state (fixing it makes umap-learn single-threaded)."""

    dims: int = 8
    n_neighbors: int = 15
    min_dist: float = 0.1
    fit_sample: int | None = None
    supervised: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dims < 1:
            raise ValueError(f"UMAP dims must be >= 1, got {self.dims}")
        if self.n_neighbors < 2:
            raise ValueError(f"UMAP n_neighbors must be >= 2, got {self.n_neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise ValueError(f"UMAP min_dist must be in [0, 1], got {self.min_dist}")
        if self.fit_sample is not None and self.fit_sample < 2:
            raise ValueError(f"--umap-fit-sample must be >= 2, got {self.fit_sample}")


class UMAPReducer(_Fitted):
    """umap-learn to ``options.dims`` dims, fitted on catalog photo embeddings.

    After :meth:`fit`, ``fit_rows`` are the rows of ``x`` it was fitted on and
    ``embedding`` their (n_fit, dims) float32 coordinates.
    """

    def __init__(self, options: UMAPOptions = UMAPOptions()):
        self.options = options
        self.model = None
        self.fit_rows: np.ndarray | None = None
        self.fit_data: np.ndarray | None = None
        self.embedding: np.ndarray | None = None

    def fit(self, x: np.ndarray, labels: np.ndarray | None = None) -> "UMAPReducer":
        """Fit on (n, D) embeddings; ``labels`` (n,) int categories are required when supervised."""
        import umap  # export-only dependency: never imported by the runtime

        o = self.options
        x = _check_fit_input(x, max(o.n_neighbors + 1, o.dims + 2), f"UMAP-{o.dims}")
        if o.supervised and (labels is None or np.shape(labels) != (len(x),)):
            raise ValueError(f"supervised UMAP needs one category label per embedding ({len(x)}), got {None if labels is None else np.shape(labels)}")
        rng = np.random.default_rng(o.seed)
        n_fit = len(x) if o.fit_sample is None else min(o.fit_sample, len(x))
        self.fit_rows = np.sort(rng.choice(len(x), size=n_fit, replace=False)) if n_fit < len(x) else np.arange(len(x))
        self.fit_data = x[self.fit_rows]
        self.model = umap.UMAP(n_components=o.dims, n_neighbors=o.n_neighbors, min_dist=o.min_dist, random_state=o.seed)
        y = np.asarray(labels)[self.fit_rows] if o.supervised else None
        self.embedding = self.model.fit_transform(self.fit_data, y=y).astype(np.float32)
        self.dims_in = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """umap-learn's exact transform (needs numba; seconds per new process)."""
        x = self._check_transform_input(x)
        return self.model.transform(x).astype(np.float32)

    def landmarks(self, count: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Arrays for the device's landmark reducer: ``count`` fit rows (random,
        seeded) with their fitted coordinates, and the n_neighbors to interpolate over.

        Returns ``{"landmarks": (L, D) float16, "positions": (L, dims) float32}``.
        """
        if self.embedding is None:
            raise RuntimeError("UMAPReducer is not fitted: call fit() first")
        if count < self.options.n_neighbors:
            raise ValueError(f"landmark count must be >= n_neighbors ({self.options.n_neighbors}), got {count}")
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(self.fit_data), size=min(count, len(self.fit_data)), replace=False))
        return {"landmarks": self.fit_data[pick].astype(np.float16), "positions": self.embedding[pick].astype(np.float32)}

    def model_bytes(self) -> int:
        """Size of the pickled umap-learn model (what shipping it would cost)."""
        import pickle

        return len(pickle.dumps(self.model, protocol=pickle.HIGHEST_PROTOCOL))
