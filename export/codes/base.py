"""What the export-side code fitters share: scikit-learn's estimator conventions.

* ``__init__`` only stores its parameters, under their own names; nothing is
  checked there. ``fit`` checks them (and the data), learns, and returns ``self``.
* Learned state ends in ``_`` (``mean_``, ``components_``, ``embedding_``,
  ``n_features_in_``) and does not exist before ``fit``.
* Using an unfitted fitter raises :class:`NotFittedError`, which is both a
  ``ValueError`` and an ``AttributeError``, as scikit-learn's.
"""

from __future__ import annotations

from typing import TypeGuard

import numpy as np


class NotFittedError(ValueError, AttributeError):
    """A fitter was used (``transform``, ``device_arrays``, ...) before ``fit``."""


def check_fit_input(x: np.ndarray, min_rows: int, what: str) -> np.ndarray:
    """(n, D) finite embeddings with n >= ``min_rows``, as float32; ValueError otherwise."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"{what}: embeddings must be a (n, D) array, got shape {x.shape}")
    if len(x) < min_rows:
        raise ValueError(f"{what}: needs at least {min_rows} embeddings to fit, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: embeddings contain NaN or infinity")
    return x


def is_int(value: object) -> TypeGuard[int]:
    """A whole number (Python or numpy integer), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class Fitted:
    """Guards use before ``fit`` (``n_features_in_`` is set by every ``fit``) and checks the input width."""

    n_features_in_: int  # declared, not set: hasattr() is False until fit()

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call fit() first")

    def _check_transform_input(self, x: np.ndarray) -> np.ndarray:
        """(n, n_features_in_) float32 embeddings; NotFittedError before fit, ValueError on the wrong shape."""
        self._check_is_fitted()
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.n_features_in_:
            raise ValueError(
                f"{type(self).__name__}.transform: expected (n, {self.n_features_in_}) embeddings, got shape {x.shape}"
            )
        return x
