"""UMAP codes: :class:`UMAPReducer` wraps umap-learn (export) → device twin
``vitrina.runtime.codes.umap.LandmarkReducer``.

umap-learn comes with the ``export`` extra; importing it without the extra
raises an ImportError that says ``pip install 'vitrina[export]'``.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass

import numpy as np

from .base import Fitted, check_fit_input, is_int


def _check_umap_params(dims: object, n_neighbors: object, min_dist: object, fit_sample: object) -> None:
    """ValueError naming the first bad UMAP setting."""
    if not is_int(dims) or dims < 1:
        raise ValueError(f"UMAP dims must be an integer >= 1, got {dims!r}")
    if not is_int(n_neighbors) or n_neighbors < 2:
        raise ValueError(f"UMAP n_neighbors must be an integer >= 2, got {n_neighbors!r}")
    if not isinstance(min_dist, (int, float, np.floating)) or not 0.0 <= min_dist <= 1.0:
        raise ValueError(f"UMAP min_dist must be in [0, 1], got {min_dist!r}")
    if fit_sample is not None and (not is_int(fit_sample) or fit_sample < 2):
        raise ValueError(f"UMAP fit_sample (--umap-fit-sample) must be an integer >= 2, got {fit_sample!r}")


def _import_umap():
    """``import umap``, or an ImportError that says which extra to install."""
    try:
        import umap  # export-only dependency: never imported by the runtime
    except ImportError as exc:
        raise ImportError(
            "UMAP codes need umap-learn, which comes with the export extra: pip install 'vitrina[export]'"
        ) from exc
    return umap


@dataclass(frozen=True, kw_only=True)
class UMAPOptions:
    """UMAP settings as the build and the CLI carry them; the fields are
    :class:`UMAPReducer`'s parameters (``UMAPReducer(**asdict(options))``).

    Attributes: dims: output dims; n_neighbors, min_dist: umap-learn's knobs
    (defaults as the study); fit_sample: fit on this many rows (None: all);
    supervised: use the catalog's category labels in the fit (umap-learn's
    supervised mode, target_weight 0.5); unsupervised by default, as the study;
    seed: random state (fixing it makes umap-learn single-threaded).
    Checked on construction, so a bad command-line value fails before any work.
    """

    dims: int = 8
    n_neighbors: int = 15
    min_dist: float = 0.1
    fit_sample: int | None = None
    supervised: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        _check_umap_params(self.dims, self.n_neighbors, self.min_dist, self.fit_sample)


class UMAPReducer(Fitted):
    """umap-learn to ``dims`` dims, fitted on (n, D) float32 catalog photo embeddings.

    Parameters (checked by :meth:`fit`; see :class:`UMAPOptions` for their meaning):
        dims, n_neighbors, min_dist, fit_sample, supervised, seed.

    Attributes (after :meth:`fit`):
        model_: the fitted ``umap.UMAP``.
        fit_rows_: (n_fit,) int64 rows of ``x`` it was fitted on (sorted).
        fit_data_: (n_fit, D) float32, those rows.
        embedding_: (n_fit, dims) float32 fitted coordinates of those rows.
        n_features_in_: D.
    """

    def __init__(
        self,
        dims: int = 8,
        *,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        fit_sample: int | None = None,
        supervised: bool = False,
        seed: int = 0,
    ):
        self.dims = dims
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.fit_sample = fit_sample
        self.supervised = supervised
        self.seed = seed

    def fit(self, x: np.ndarray, labels: np.ndarray | None = None) -> UMAPReducer:
        """Fit on (n, D) embeddings; ``labels`` (n,) int categories are required when supervised. Returns ``self``."""
        _check_umap_params(self.dims, self.n_neighbors, self.min_dist, self.fit_sample)
        umap = _import_umap()
        x = check_fit_input(x, max(self.n_neighbors + 1, self.dims + 2), f"UMAP-{self.dims}")
        if self.supervised and (labels is None or np.shape(labels) != (len(x),)):
            raise ValueError(
                f"supervised UMAP needs one category label per embedding ({len(x)}), got {None if labels is None else np.shape(labels)}"
            )
        rng = np.random.default_rng(self.seed)
        n_fit = len(x) if self.fit_sample is None else min(self.fit_sample, len(x))
        self.fit_rows_ = np.sort(rng.choice(len(x), size=n_fit, replace=False)) if n_fit < len(x) else np.arange(len(x))
        self.fit_data_ = x[self.fit_rows_]
        self.model_ = umap.UMAP(
            n_components=self.dims, n_neighbors=self.n_neighbors, min_dist=self.min_dist, random_state=self.seed
        )
        y = np.asarray(labels)[self.fit_rows_] if self.supervised else None
        self.embedding_ = self.model_.fit_transform(self.fit_data_, y=y).astype(np.float32)
        self.n_features_in_ = x.shape[1]
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        """umap-learn's exact transform, (n, D) → (n, dims) float32 (needs numba; seconds per new process)."""
        x = self._check_transform_input(x)
        return self.model_.transform(x).astype(np.float32)

    def landmarks(self, count: int, seed: int = 0) -> dict[str, np.ndarray]:
        """Arrays for the device's landmark reducer: ``count`` fit rows (random,
        seeded) with their fitted coordinates; it interpolates over ``n_neighbors`` of them.

        Returns ``{"landmarks": (L, D) float16, "positions": (L, dims) float32}``, L = min(count, n_fit).
        """
        self._check_is_fitted()
        if count < self.n_neighbors:
            raise ValueError(f"landmark count must be >= n_neighbors ({self.n_neighbors}), got {count}")
        rng = np.random.default_rng(seed)
        pick = np.sort(rng.choice(len(self.fit_data_), size=min(count, len(self.fit_data_)), replace=False))
        return {
            "landmarks": self.fit_data_[pick].astype(np.float16),
            "positions": self.embedding_[pick].astype(np.float32),
        }

    def model_bytes(self) -> int:
        """Size in bytes of the pickled umap-learn model (what shipping it would cost)."""
        self._check_is_fitted()
        return len(pickle.dumps(self.model_, protocol=pickle.HIGHEST_PROTOCOL))
