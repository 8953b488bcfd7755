"""UMAP codes: :class:`UMAPReducer` wraps umap-learn (export) → device twin
``vitrina.runtime.codes.umap.LandmarkReducer``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import _check_fit_input, _Fitted

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
