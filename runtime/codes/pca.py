"""Device twin of ``vitrina.export.codes.pca.PCAReducer``: one matmul from embedding to PCA code."""

from __future__ import annotations

import numpy as np


class LinearReducer:
    """PCA on the device: ``(x - mean) @ components`` → (n, d) float32."""

    def __init__(self, mean: np.ndarray, components: np.ndarray):
        """``mean``: (D,), ``components``: (D, d), stored as float32."""
        if components.ndim != 2 or mean.shape != (components.shape[0],):
            raise ValueError(
                f"linear reducer: mean {mean.shape} and components {components.shape} do not fit (D,) and (D, d)"
            )
        self.mean = np.asarray(mean, dtype=np.float32)
        self.components = np.asarray(components, dtype=np.float32)

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, D) embeddings → (n, d) float32 PCA codes."""
        return (np.asarray(embeddings, dtype=np.float32) - self.mean) @ self.components
