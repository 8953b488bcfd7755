"""One object that answers every query type a bundle supports.

The kiosk app and scripts use :class:`ProductSearch` instead of wiring the
encoders and the searcher themselves:

* ``by_strokes`` / ``by_sketch_image``: a drawing → ranked products;
* ``by_photo``: a photo → the products in it (detector, ``photo_search.py``) → the
  chosen (or largest) one's crop → ranked products (photo encoder); ``detect``: the boxes only;
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
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from .bundle import Bundle
from .detector import DetectionResult, Detector, DetectorOptions
from .encoders import (
    EmbeddingResult,
    EncoderOptions,
    PhotoEncoder,
    PhotoEncoderOptions,
    SketchEncoder,
    SketchEncoderOptions,
)
from .photo_search import WHOLE_IMAGE, PhotoSearchResult, photo_query
from .rasterize import RasterOptions, Stroke, rasterize_strokes, sketch_from_image
from .search import DEFAULT_K, MAX_K, CatalogIndex, SearcherOptions, SearchResult, to_results

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
    """How :class:`ProductSearch` runs its encoders.

    Tensor contracts are the encoders' (:class:`SketchEncoderOptions`,
    :class:`PhotoEncoderOptions`): one query per interpreter call (batch 1).

    Attributes:
        precision: of the encoders: ``"int8"`` as shipped, or ``"float"``.
        num_threads: CPU threads of each interpreter.
        bundle_path: the bundle :meth:`ProductSearch.create_from_options` opens;
            None otherwise.
    """

    precision: str = "int8"
    num_threads: int = 1
    bundle_path: str | None = None

    def __post_init__(self) -> None:
        # the encoders' own checks, with their messages, before a bundle is opened
        EncoderOptions(num_threads=self.num_threads, precision=self.precision)


class ProductSearch:
    """All query types over one opened bundle; every method returns a :class:`SearchResult`.

    ``k`` (products per query) defaults to :data:`~vitrina.runtime.search.DEFAULT_K`
    and may be at most :data:`~vitrina.runtime.search.MAX_K`. When fewer than ``k``
    products come back because the re-rank shortlist or the catalog is smaller,
    the result's ``capped_by`` and ``cap`` say so. Scores are higher-is-better;
    what they measure follows the bundle's codes (see
    :class:`~vitrina.runtime.search.Match`), except for :meth:`by_text`.

    Raises (every query method):
        ValueError: bad input (k < 1 or > MAX_K, an unknown product), or a closed engine.
        SketchInputError: a sketch that cannot be searched (a ``ValueError``); its
            subclass EmptySketchError: a sketch with nothing drawn.
        NonFiniteQueryError: the encoder gave NaN or infinity (a ``ValueError``).
        RuntimeError: LiteRT failed to run an encoder.
    """

    def __init__(self, bundle: Bundle, options: ProductSearchOptions | None = None):
        """Search the opened ``bundle``; the photo encoder opens on the first photo query.

        Raises:
            BundleFormatError: the bundle lacks the sketch model of ``options.precision``.
            RuntimeError: LiteRT cannot load the sketch model.
        """
        options = options if options is not None else ProductSearchOptions()
        self.bundle = bundle
        self.options = options
        self._sketch = SketchEncoder.create_from_bundle(
            bundle, SketchEncoderOptions(num_threads=options.num_threads, precision=options.precision)
        )
        self._index = CatalogIndex.create_from_bundle(bundle)
        self._closed = False

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, options: ProductSearchOptions | None = None) -> ProductSearch:
        """Search ``bundle`` (already opened); ``options.bundle_path`` must be None.

        Raises:
            ValueError: ``options.bundle_path`` is set.
            BundleFormatError: the bundle lacks the sketch model of that precision.
            RuntimeError: LiteRT cannot load the sketch model.
        """
        if options is not None and options.bundle_path is not None:
            raise ValueError(
                f"ProductSearch.create_from_bundle was given bundle {bundle.path}; options.bundle_path must be None, got {options.bundle_path!r}"
            )
        return cls(bundle, options)

    @classmethod
    def create_from_options(cls, options: ProductSearchOptions) -> ProductSearch:
        """Open (and verify) the bundle at ``options.bundle_path`` and search it.

        Raises:
            ValueError: ``options.bundle_path`` is None.
            BundleError: the bundle cannot be opened (a subclass says why).
        """
        if options.bundle_path is None:
            raise ValueError("ProductSearch.create_from_options needs options.bundle_path (or use create_from_bundle)")
        return cls(Bundle.open(options.bundle_path), options)

    @classmethod
    def create_from_bundle_path(cls, path: str | Path, options: ProductSearchOptions | None = None) -> ProductSearch:
        """Open (and verify) the bundle at ``path`` and search it (``create_from_options`` with ``bundle_path``)."""
        return cls(Bundle.open(path), options)

    @cached_property
    def _photo(self) -> PhotoEncoder:
        return PhotoEncoder.create_from_bundle(
            self.bundle, PhotoEncoderOptions(num_threads=self.options.num_threads, precision=self.options.precision)
        )

    def _search(self, embedding: EmbeddingResult, k: int) -> SearchResult:
        """One query's (1, D) embedding → its products."""
        self._check_open()
        scores, ids = self._index.search(embedding.embeddings, SearcherOptions(k=k))
        return self._with_cap(to_results(scores, ids, self.bundle.items)[0], k)

    def _with_cap(self, result: SearchResult, k: int) -> SearchResult:
        """``result`` with ``capped_by`` / ``cap`` set when it holds fewer than ``k`` matches."""
        if len(result.matches) >= k:
            return result
        capped_by, cap = self._index.cap()
        return replace(result, capped_by=capped_by, cap=cap)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"ProductSearch over bundle {self.bundle.path} is closed; create a new one")

    @property
    def raster(self) -> RasterOptions:
        """Rasteriser settings of this bundle's sketch encoder (output side ``size`` pixels)."""
        return self._sketch.raster

    def by_sketch_pixels(self, pixels: np.ndarray, k: int = DEFAULT_K) -> SearchResult:
        """A rasterised sketch, (S, S) uint8 with 255 paper and 0 ink (see :attr:`raster`) → products."""
        self._check_open()
        k = SearcherOptions(k=k).k  # refuse a bad k before the encoder runs
        return self._search(self._sketch.embed(np.asarray(pixels)[None]), k)

    def by_strokes(self, strokes: Sequence[Stroke], k: int = DEFAULT_K) -> SearchResult:
        """Strokes ((m, 2) float point arrays in screen pixels, y down) → products.

        Raises:
            EmptySketchError: nothing is drawn.
            SketchInputError: not points, a coordinate that is not finite, or over
                the rasteriser's budgets (``MAX_STROKE_POINTS``, ``MAX_COORDINATE``).
        """
        self._check_open()
        return self.by_sketch_pixels(rasterize_strokes(strokes, self.raster), k)

    def by_sketch_image(self, image: Image.Image, k: int = DEFAULT_K) -> SearchResult:
        """A drawn sketch image (PIL, any mode and size; dark ink on light paper) → products.

        Raises:
            EmptySketchError: the image is uniform or has no ink.
            SketchInputError: a PIL mode with no grey conversion.
        """
        self._check_open()
        return self.by_sketch_pixels(sketch_from_image(image, self.raster), k)

    @cached_property
    def _detector(self) -> Detector | None:
        if not self.bundle.has_detector:
            return None
        return Detector.create_from_bundle(
            self.bundle, DetectorOptions(num_threads=self.options.num_threads, precision=self.options.precision)
        )

    def detect(self, image: Image.Image) -> DetectionResult:
        """The products in a photo (PIL, any mode and size): boxes in its pixels, best first.

        Raises:
            ValueError: the bundle has no detector.
        """
        self._check_open()
        if self._detector is None:
            raise ValueError(
                f"bundle {self.bundle.path} has no detector (models: {sorted(self.bundle.manifest['models'])})"
            )
        return self._detector.detect(image)

    def by_photo(
        self,
        image: Image.Image,
        k: int = DEFAULT_K,
        box: int | None = None,
        *,
        detections: DetectionResult | None = None,
    ) -> PhotoSearchResult:
        """A photo (PIL, any mode and size; transparency counts as white) → products.

        The detector finds the products; box ``box`` (an index into the
        detections), or else the largest, is cropped (aspect kept) and searched.
        Without a detection, or without a detector in the bundle, the whole photo is
        searched and the result's ``fallback`` says so. ``detections`` of this same
        photo (from an earlier call) skip detecting again.

        Raises:
            ValueError: ``box`` out of range, or given to a bundle without a detector.
        """
        self._check_open()
        k = SearcherOptions(k=k).k
        query = photo_query(image, self._detector, box, detections)
        result = self._search(self._photo.embed_photos([query.image]), k)
        return PhotoSearchResult(
            result.matches,
            result.capped_by,
            result.cap,
            detections=query.detections,
            searched_box=query.searched_box,
            fallback=WHOLE_IMAGE if query.searched_box is None else None,
            fallback_reason=query.fallback_reason,
        )

    def similar(self, item: int, k: int = DEFAULT_K) -> SearchResult:
        """Products that look most like product ``item`` (its index; itself excluded).

        Raises:
            ValueError: the product has no catalog code.
        """
        self._check_open()
        k = SearcherOptions(k=k).k
        row = int(self.bundle.first_code_rows[item])
        if row < 0:
            raise ValueError(f"product {item} has no catalog code")
        # one more than k, for the product itself (at k = MAX_K it may take one of the MAX_K places)
        scores, ids = self._index.search_rows(np.array([row]), SearcherOptions(k=min(k + 1, MAX_K)))
        result = to_results(scores, ids, self.bundle.items)[0]
        return self._with_cap(SearchResult(tuple(m for m in result.matches if m.item != item)[:k]), k)

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

    def by_text(self, text: str, k: int = DEFAULT_K) -> SearchResult:
        """Products whose title/category/colour contain the query words (prefixes count).

        Score: the share of query words matched, in (0, 1] (1.0 = all). Ties keep catalog order.

        Raises:
            ValueError: no word in ``text``, or k < 1.
        """
        self._check_open()
        k = SearcherOptions(k=k).k
        tokens = words(text)
        if not tokens:
            raise ValueError("the text query is empty: type a word such as 'polera' or 'rojo'")
        scores = np.zeros(len(self.bundle.items), dtype=np.float32)
        for token in tokens:
            hits = np.fromiter(
                (any(w.startswith(token) for w in ws) for ws in self._item_words), dtype=bool, count=len(scores)
            )
            scores += hits
        scores /= len(tokens)
        order = np.argsort(-scores, kind="stable")[:k]
        order = order[scores[order] > 0]
        return to_results(scores[order][None], order[None].astype(np.int64), self.bundle.items)[0]

    def close(self) -> None:
        """Release the interpreters and the catalog codes; later queries raise ``ValueError``.
        Closing twice is harmless."""
        self._closed = True
        self._sketch.close()
        if "_photo" in self.__dict__:
            self._photo.close()
        detector = self.__dict__.get("_detector")
        if detector is not None:
            detector.close()
        self._index.close()

    def __enter__(self) -> ProductSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
