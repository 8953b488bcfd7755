"""Binary codes by iterative quantisation: :class:`ITQHasher` (export) → device twin
``vitrina.runtime.codes.binary.SignHasher``. The learnt CBS / DSH heads are in
``vitrina.export.training.hash_heads``."""

from __future__ import annotations

import numpy as np

from .base import _check_fit_input, _Fitted
from .pca import PCAReducer

HASH_BITS = (64, 128, 256)


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
