"""Binary codes by iterative quantisation: :class:`ITQHasher` (export) → device twin
``vitrina.runtime.codes.binary.SignHasher``. The learnt CBS / DSH heads are in
``vitrina.export.training.hash_heads``."""

from __future__ import annotations

import numpy as np

from .base import Fitted, check_fit_input, is_int
from .pca import PCAReducer

HASH_BITS = (64, 128, 256)


class ITQHasher(Fitted):
    """Iterative quantisation: (n, D) float32 → (n, bits/8) packed uint8 binary codes.

    ``bits = sign((x - mean_) @ projection_)`` where ``projection_ = PCA_bits @ R``
    and R (bits, bits) is the orthogonal rotation minimising quantisation loss.

    Parameters (checked by :meth:`fit`):
        bits: code length, a positive multiple of 8, at most D.
        iterations: ITQ rotation updates, >= 0.
        seed: seed of the initial random rotation.

    Attributes (after :meth:`fit`):
        mean_: (D,) float32; projection_: (D, bits) float32; n_features_in_: D.
    """

    def __init__(self, bits: int, iterations: int = 50, seed: int = 0):
        self.bits = bits
        self.iterations = iterations
        self.seed = seed

    def fit(self, x: np.ndarray) -> ITQHasher:
        """Fit on (n, D) float embeddings, n > bits; returns ``self``."""
        if not is_int(self.bits) or self.bits < 8 or self.bits % 8:
            raise ValueError(f"bits must be a positive multiple of 8, got {self.bits!r}")
        if not is_int(self.iterations) or self.iterations < 0:
            raise ValueError(f"iterations must be an integer >= 0, got {self.iterations!r}")
        bits = int(self.bits)
        x = check_fit_input(x, bits + 1, f"ITQ-{bits}")
        if bits > x.shape[1]:
            raise ValueError(
                f"ITQ-{bits}: ITQ gives at most one bit per embedding dim ({x.shape[1]}); use the trained hash heads for more bits"
            )
        pca = PCAReducer(bits).fit(x)
        v = pca.transform(x).astype(np.float64)
        rng = np.random.default_rng(self.seed)
        r, _ = np.linalg.qr(rng.standard_normal((bits, bits)))
        for _ in range(int(self.iterations)):
            b = np.sign(v @ r)
            b[b == 0] = 1
            u, _, wt = np.linalg.svd(b.T @ v)
            r = (u @ wt).T
        self.mean_ = pca.mean_
        self.projection_ = (pca.components_.astype(np.float64) @ r).astype(np.float32)
        self.n_features_in_ = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """(n, D) embeddings → (n, bits/8) uint8, bits packed big-endian (``np.packbits``)."""
        x = self._check_transform_input(x)
        return np.packbits((x - self.mean_) @ self.projection_ > 0, axis=1)

    def device_arrays(self) -> dict[str, np.ndarray]:
        """What the device's ``SignHasher`` takes: ``mean`` (D,), ``projection`` (D, bits), ``bias`` (bits,) zeros; float32."""
        self._check_is_fitted()
        return {
            "mean": self.mean_.astype(np.float32),
            "projection": self.projection_,
            "bias": np.zeros(int(self.bits), np.float32),
        }
