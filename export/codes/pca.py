"""PCA codes: :class:`PCAReducer` (export) → device twin ``vitrina.runtime.codes.pca.LinearReducer``."""

from __future__ import annotations

import numpy as np

from .base import Fitted, check_fit_input, is_int

PCA_DIMS = (4, 8, 16, 32, 64)


class PCAReducer(Fitted):
    """Principal components: (n, D) float32 → (n, dims) float32, ``y = (x - mean_) @ components_``.

    Parameters:
        dims: components kept, 1 <= dims <= D (checked by :meth:`fit`).

    Attributes (after :meth:`fit`):
        mean_: (D,) float32 mean of the fit embeddings.
        components_: (D, dims) float32, columns by decreasing variance.
        n_features_in_: D.
    """

    def __init__(self, dims: int):
        self.dims = dims

    def fit(self, x: np.ndarray) -> PCAReducer:
        """Fit on (n, D) float embeddings, n > dims; returns ``self``."""
        if not is_int(self.dims) or self.dims < 1:
            raise ValueError(f"PCA dims must be an integer >= 1, got {self.dims!r}")
        dims = int(self.dims)
        x = check_fit_input(x, dims + 1, f"PCA-{dims}")
        if dims > x.shape[1]:
            raise ValueError(f"PCA-{dims}: cannot keep more dims than the embedding has ({x.shape[1]})")
        self.mean_ = x.mean(axis=0)
        _, _, vt = np.linalg.svd(x - self.mean_, full_matrices=False)
        self.components_ = np.ascontiguousarray(vt[:dims].T, dtype=np.float32)
        self.n_features_in_ = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(n, D) embeddings → (n, dims) float32 codes."""
        x = self._check_transform_input(x)
        return ((x - self.mean_) @ self.components_).astype(np.float32)

    def device_arrays(self) -> dict[str, np.ndarray]:
        """What the device's ``LinearReducer`` takes: ``mean`` (D,) and ``components`` (D, dims), float32."""
        self._check_is_fitted()
        return {"mean": self.mean_.astype(np.float32), "components": self.components_}
