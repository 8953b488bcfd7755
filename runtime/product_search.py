"""One object that answers every query type a bundle supports.

The kiosk app and scripts use :class:`ProductSearch` instead of wiring the
encoders and the searcher themselves:

* ``by_strokes`` / ``by_sketch_image``: a drawing → ranked products;
* ``by_photo``: a product photo → ranked products (photo encoder);
* ``similar``: products that look like a given product (its catalog code);
* ``by_text``: keyword search over titles, categories and colours, accent- and
  case-insensitive, with ``suggest`` for completions from the catalog vocabulary.
  (A learned text-visual encoder replaces the keyword ranking when its issue lands.)

Not thread-safe: one instance per worker thread.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .bundle import Bundle
from .encoders import PhotoEncoder, SketchEncoder
from .rasterize import RasterOptions, Stroke, rasterize_strokes, sketch_from_image
from .search import CatalogIndex, SearchOptions, SearchResult, to_results

_WORD = re.compile(r"[a-z0-9]+")


def fold(text: str) -> str:
    """Lower-case and strip accents: ``"Pantalón"`` → ``"pantalon"``."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """Folded word tokens of ``text``."""
    return _WORD.findall(fold(text))


@dataclass(frozen=True)
class ProductSearchOptions:
    """Attributes: precision of the encoders (int8 as shipped, or float); num_threads of each interpreter."""

    precision: str = "int8"
    num_threads: int = 1


class ProductSearch:
    """All query types over one opened bundle."""

    def __init__(self, bundle: Bundle, options: ProductSearchOptions = ProductSearchOptions()):
        self.bundle = bundle
        self.options = options
        self._sketch = SketchEncoder.create_from_bundle(bundle, options.precision, options.num_threads)
        self._index = CatalogIndex.create_from_bundle(bundle)

    @classmethod
    def create_from_bundle_path(cls, path: str | Path, options: ProductSearchOptions = ProductSearchOptions()) -> "ProductSearch":
        return cls(Bundle.open(path), options)

    @cached_property
    def _photo(self) -> PhotoEncoder:
        return PhotoEncoder.create_from_bundle(self.bundle, self.options.precision, self.options.num_threads)

    def _search(self, embedding: np.ndarray, k: int) -> SearchResult:
        scores, ids = self._index.search(embedding, SearchOptions(k=k))
        return to_results(scores, ids, self.bundle.items)[0]

    @property
    def raster(self) -> RasterOptions:
        """Rasteriser settings of this bundle's sketch encoder."""
        return self._sketch.raster

    def by_sketch_pixels(self, pixels: np.ndarray, k: int = 20) -> SearchResult:
        """A rasterised sketch, (S, S) uint8 with 255 paper (see :attr:`raster`) → products."""
        return self._search(self._sketch.embed(pixels[None]), k)

    def by_strokes(self, strokes: Sequence[Stroke], k: int = 20) -> SearchResult:
        """Strokes in screen pixels (y down) → products. Raises EmptySketchError when nothing is drawn."""
        return self.by_sketch_pixels(rasterize_strokes(strokes, self.raster), k)

    def by_sketch_image(self, image: Image.Image, k: int = 20) -> SearchResult:
        return self.by_sketch_pixels(sketch_from_image(image, self.raster), k)

    def by_photo(self, image: Image.Image, k: int = 20) -> SearchResult:
        return self._search(self._photo.embed_photos([image]), k)

    def similar(self, item: int, k: int = 10) -> SearchResult:
        """Products that look most like product ``item`` (itself excluded)."""
        row = int(self.bundle.first_code_rows[item])
        if row < 0:
            raise ValueError(f"product {item} has no catalog code")
        scores, ids = self._index.search_rows(np.array([row]), SearchOptions(k=k + 1))
        result = to_results(scores, ids, self.bundle.items)[0]
        return SearchResult(tuple(m for m in result.matches if m.item != item)[:k])

    # --- keyword search --------------------------------------------------
    @cached_property
    def _item_words(self) -> list[set[str]]:
        return [set(words(f"{i.title} {i.category} {i.color}")) for i in self.bundle.items]

    @cached_property
    def vocabulary(self) -> list[tuple[str, int]]:
        """(folded word, products containing it), most frequent first."""
        counts = Counter(w for ws in self._item_words for w in ws if len(w) > 1)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def suggest(self, prefix: str, limit: int = 6) -> list[str]:
        """Catalog words starting with the last word of ``prefix``, most common first."""
        tokens = words(prefix)
        if not tokens:
            return []
        last = tokens[-1]
        return [w for w, _ in self.vocabulary if w.startswith(last) and w != last][:limit]

    def by_text(self, text: str, k: int = 20) -> SearchResult:
        """Products whose title/category/colour contain the query words (prefixes count).

        Score: the share of query words matched (1.0 = all). Ties keep catalog order.
        """
        tokens = words(text)
        if not tokens:
            raise ValueError("the text query is empty: type a word such as 'polera' or 'rojo'")
        scores = np.zeros(len(self.bundle.items), dtype=np.float32)
        for token in tokens:
            hits = np.fromiter((any(w.startswith(token) for w in ws) for ws in self._item_words), dtype=bool, count=len(scores))
            scores += hits
        scores /= len(tokens)
        order = np.argsort(-scores, kind="stable")[:k]
        order = order[scores[order] > 0]
        return to_results(scores[order][None], order[None].astype(np.int64), self.bundle.items)[0]

    def close(self) -> None:
        self._sketch.close()
        if "_photo" in self.__dict__:
            self._photo.close()
