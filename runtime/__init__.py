"""vitrina's device runtime: numpy + pillow + LiteRT only.

Open a bundle, turn a sketch into a code, search, rank products.
Never imports TensorFlow, keras, umap-learn or numba.
"""

from .bundle import Bundle, BundleError
from .encoders import EncoderOptions, PhotoEncoder, SketchEncoder
from .rasterize import EmptySketchError, RasterOptions
from .search import Match, Searcher, SearchOptions, SearchResult

__all__ = [
    "Bundle",
    "BundleError",
    "EmptySketchError",
    "EncoderOptions",
    "Match",
    "PhotoEncoder",
    "RasterOptions",
    "Searcher",
    "SearchOptions",
    "SearchResult",
    "SketchEncoder",
]
