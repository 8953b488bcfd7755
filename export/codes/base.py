"""What the export-side code fitters share: input checks and the not-fitted guard."""

from __future__ import annotations

import numpy as np

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
