"""vitrina's device runtime: numpy + pillow + LiteRT only.

Open a bundle, turn a sketch or a photo into an embedding, search, rank
products. Never imports TensorFlow, keras, umap-learn or numba.

The package exports the device tasks, each with its ``…Options`` and result
(``create_from_bundle`` / ``create_from_options``, ``close()``, ``with``):

* :class:`SketchEncoder` / :class:`SketchEncoderOptions` → :class:`EmbeddingResult`;
* :class:`PhotoEncoder` / :class:`PhotoEncoderOptions` → :class:`EmbeddingResult`;
* :class:`Detector` / :class:`DetectorOptions` → :class:`DetectionResult` (product boxes in a photo);
* :class:`TextVisualEncoder` / :class:`TextVisualOptions` → :class:`TextVisualResult` (titles,
  crops or both → the text-visual space);
* :class:`Searcher` / :class:`SearcherOptions` → ``(scores, ids)`` arrays, and
  :class:`SearchResult` per query;
* :class:`ProductSearch` / :class:`ProductSearchOptions`: every query type of a
  bundle → :class:`SearchResult`;

the :class:`Bundle` their factories open, and the errors callers catch:
:class:`BundleError` and its subclasses, and :class:`EmptySketchError` (a
``ValueError``). Everything else (``RasterOptions``, ``DEFAULT_K``, ...) is
imported from its module.
"""

from .bundle import (
    Bundle,
    BundleError,
    BundleFormatError,
    BundleIntegrityError,
    BundleNotFoundError,
    BundleVersionError,
)
from .detector import DetectionResult, Detector, DetectorOptions
from .encoders import EmbeddingResult, PhotoEncoder, PhotoEncoderOptions, SketchEncoder, SketchEncoderOptions
from .product_search import ProductSearch, ProductSearchOptions
from .rasterize import EmptySketchError
from .search import Searcher, SearcherOptions, SearchResult
from .text_visual import TextVisualEncoder, TextVisualOptions, TextVisualResult

__all__ = [
    "Bundle",
    "BundleError",
    "BundleFormatError",
    "BundleIntegrityError",
    "BundleNotFoundError",
    "BundleVersionError",
    "DetectionResult",
    "Detector",
    "DetectorOptions",
    "EmbeddingResult",
    "EmptySketchError",
    "PhotoEncoder",
    "PhotoEncoderOptions",
    "ProductSearch",
    "ProductSearchOptions",
    "SearchResult",
    "Searcher",
    "SearcherOptions",
    "SketchEncoder",
    "SketchEncoderOptions",
    "TextVisualEncoder",
    "TextVisualOptions",
    "TextVisualResult",
]
