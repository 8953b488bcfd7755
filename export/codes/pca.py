"""PCA codes: :class:`PCAReducer` (export) → device twin ``vitrina.runtime.codes.pca.LinearReducer``."""

from __future__ import annotations

import numpy as np

from .base import _check_fit_input, _Fitted

PCA_DIMS = (4, 8, 16, 32, 64)


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
