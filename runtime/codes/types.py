"""Code types (``float``, ``pcaN``, ``umapN``, ``bitsN``) and the query-reducer protocol."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: Code type families, as in the manifest's ``codes.type`` (``umap8`` is family ``umap``, size 8).
CODE_FAMILIES = ("float", "pca", "umap", "bits")

#: How codes compare; every score is higher-is-better (see ``codes.pairwise_scores``).
METRICS = ("cosine", "l2", "hamming")


_CODE_TYPE = re.compile(r"^(float|pca|umap|bits)(\d*)$")


@dataclass(frozen=True)
class CodeType:
    """A parsed code type name such as ``"umap8"`` or ``"bits64"``.

    Attributes: family (float/pca/umap/bits); size: dims, or bits for ``bits``
    (0 for ``float``, whose dims come from the encoder).
    """

    family: str
    size: int

    @classmethod
    def parse(cls, name: str) -> CodeType:
        """Parse ``"float"``, ``"pcaN"``, ``"umapN"`` or ``"bitsN"`` (N dims; bits a multiple of 64).

        Raises:
            ValueError: any other name, a missing size, or a bad bit count.
        """
        m = _CODE_TYPE.match(str(name))
        if not m:
            raise ValueError(f"code type {name!r} is not one of float, pcaN, umapN, bitsN (e.g. pca8, umap8, bits64)")
        family, size = m.group(1), int(m.group(2) or 0)
        if family == "float" and size:
            raise ValueError(f"code type {name!r}: float takes no size (its dims are the encoder's)")
        if family != "float" and size < 1:
            raise ValueError(f"code type {name!r} needs a size, e.g. {family}8")
        if family == "bits" and size % 64:
            raise ValueError(f"code type {name!r}: bits must be a multiple of 64 (64, 128, 256)")
        return cls(family, size)

    @property
    def name(self) -> str:
        """The canonical name, e.g. ``"umap8"`` (``"float"`` without a size)."""
        return self.family if self.family == "float" else f"{self.family}{self.size}"

    @property
    def metric(self) -> str:
        """How codes of this type compare: ``"cosine"`` (float), ``"l2"`` (pca, umap) or ``"hamming"`` (bits)."""
        return {"float": "cosine", "pca": "l2", "umap": "l2", "bits": "hamming"}[self.family]


class QueryReducer(Protocol):
    """(n, D) float32 unit-norm embeddings → (n, d) codes in the catalog's code space."""

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, D) float32 embeddings → (n, d) codes: float32, or packed uint8 for binary codes."""
        ...


class IdentityReducer:
    """Float codes: the embedding is the code."""

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, D) embeddings → the same values as float32."""
        return np.asarray(embeddings, dtype=np.float32)
