"""One object that answers every query type a bundle supports.

The kiosk app and scripts use :class:`ProductSearch` instead of wiring the
encoders and the searcher themselves:

* ``by_strokes`` / ``by_sketch_image``: a drawing → ranked products;
* ``by_photo``: a photo → the products in it (detector, ``photo_search.py``) → the
  chosen (or largest) one's crop → ranked products (photo encoder); ``detect``: the boxes only;
* ``similar``: products that look like a given product (its catalog code);
* ``by_text``: keyword search over titles, categories and colours, accent- and
  case-insensitive; the words are normalised and repaired first
  (:mod:`~vitrina.runtime.text`: numbers and brands dropped, ``"zapatiya"`` →
  ``"zapatilla"``), and the result says which words were corrected or dropped;
  ``suggest`` offers completions from the catalog vocabulary.
  (A learned text-visual encoder replaces the keyword ranking when its issue
  lands; keyword search stays as the fallback and the baseline.)

Every query takes ``filters=`` (:class:`~vitrina.runtime.filters.SearchFilter`:
categories, colours, price range, in stock, allow / deny ids), applied during
the scan. The catalog is the bundle plus the device's update log
(:class:`~vitrina.runtime.live_catalog.LiveCatalog`: today's prices and stock,
products added on the device, removed ones never returned); an update written
by another process (``vitrina catalog update``) is picked up at the next query.

Not thread-safe: one instance per worker thread.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image

from .bundle import Bundle, BundleFormatError
from .color_search import COLOR_SHORTLIST, ColorFamilies, ColorFamilyError, color_scores, drawn_color
from .detector import DetectionResult, Detector, DetectorOptions
from .encoders import (
    EmbeddingResult,
    EncoderOptions,
    PhotoEncoder,
    PhotoEncoderOptions,
    SketchEncoder,
    SketchEncoderOptions,
)
from .filters import FilterMatch, SearchFilter
from .live_catalog import LiveCatalog, StockRow
from .photo_search import WHOLE_IMAGE, PhotoSearchResult, photo_query
from .rasterize import PenStroke, RasterOptions, Stroke, has_color, rasterize_strokes, shape_strokes, sketch_from_image
from .scan import RowFilter
from .search import (
    CAPPED_BY_FILTER,
    DEFAULT_K,
    MAX_K,
    CatalogIndex,
    RerankSearcher,
    Searcher,
    SearcherOptions,
    SearchResult,
    shortlist_rows,
    to_results,
)
from .text import QueryWords, Vocabulary, WordRepair, WordRepairOptions
from .text import tokens as words
from .text_visual import TextVisualOptions
from .text_visual_search import TEXT_METHODS, TextVisualSearch, hybrid_scores, top_k

#: Compiled filters kept per engine (the kiosk's chip sets in use).
_FILTER_CACHE = 16


@dataclass(frozen=True)
class TextSearchResult(SearchResult):
    """A text search's matches and what became of the shopper's words.

    Attributes:
        query: the words searched, those corrected (typed → vocabulary word) and
            those dropped (numbers, brands, unknown words); ``query.empty`` when
            no known word was left, and then ``matches`` is empty and ``note``
            says why (see :meth:`no_word_note`).
    """

    query: QueryWords = QueryWords(())
    method: str = "keyword"

    @staticmethod
    def no_word_note(query: QueryWords) -> str:
        """The sentence for a shopper when no word of ``query`` was usable (the result's ``note``)."""
        typed = ", ".join(repr(w) for w in query.dropped)
        if not typed:
            return "no word to search for: type a word such as 'polera' or 'rojo'"
        return f"no known word to search for (dropped: {typed})"


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
        text_method: how :meth:`ProductSearch.by_text` ranks: ``"auto"`` (``"hybrid"``
            when the bundle has the text-visual model, else ``"keyword"``), ``"hybrid"``
            (keyword match first, the text-visual similarity next), ``"text-visual"`` (the
            model's text branch alone; these two refuse a bundle without the model) or
            ``"keyword"``. On the demo bundle (``vitrina eval --task text``) hybrid and keyword
            had P@10 1.00 on Spanish queries, the model alone 0.60; hybrid's mAP was 0.83,
            keyword's 0.61.
    """

    precision: str = "int8"
    num_threads: int = 1
    bundle_path: str | None = None
    text_method: str = "auto"

    def __post_init__(self) -> None:
        if self.text_method not in TEXT_METHODS:
            raise ValueError(f"text_method must be one of {', '.join(TEXT_METHODS)}, got {self.text_method!r}")
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
        self.catalog = LiveCatalog.open(bundle)
        self._index = catalog_index(self.catalog)
        self._scopes: dict[SearchFilter, tuple[FilterMatch, RowFilter]] = {}
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
        return cls(Bundle.open(options.bundle_path, verify=False), options)

    @classmethod
    def create_from_bundle_path(cls, path: str | Path, options: ProductSearchOptions | None = None) -> ProductSearch:
        """Open (and verify) the bundle at ``path`` and search it (``create_from_options`` with ``bundle_path``)."""
        return cls(Bundle.open(path, verify=False), options)

    @cached_property
    def _photo(self) -> PhotoEncoder:
        return PhotoEncoder.create_from_bundle(
            self.bundle, PhotoEncoderOptions(num_threads=self.options.num_threads, precision=self.options.precision)
        )

    def _refresh(self) -> None:
        """Pick up catalog updates written since the last query (one stat of the log)."""
        if self.catalog.reload():
            self._index.close()
            self._index = catalog_index(self.catalog)
            self._scopes.clear()

    def _scope(self, filters: SearchFilter | None) -> tuple[FilterMatch | None, RowFilter | None]:
        """The filter compiled to the rows a scan may return (cached per filter); (None, None)
        when every row may be returned."""
        self._refresh()
        if (filters is None or filters.is_open) and not self.catalog.has_removed:
            return None, None
        key = filters if filters is not None else SearchFilter()
        if key not in self._scopes:
            if len(self._scopes) >= _FILTER_CACHE:
                self._scopes.pop(next(iter(self._scopes)))
            match = self.catalog.columns.compile(key)
            self._scopes[key] = (match, self._index.searcher.row_filter(match.mask))
        return self._scopes[key]

    def _search(self, embedding: EmbeddingResult, k: int, filters: SearchFilter | None = None) -> SearchResult:
        """One query's (1, D) embedding → its products."""
        self._check_open()
        match, within = self._scope(filters)
        if match is not None and match.count == 0:
            return SearchResult((), CAPPED_BY_FILTER, 0, match.why_empty)
        scores, ids = self._index.search(embedding.embeddings, SearcherOptions(k=k), within=within)
        return self._with_cap(self._results(scores, ids)[0], k, match)

    def _results(self, scores: np.ndarray, ids: np.ndarray) -> list[SearchResult]:
        stock = self.catalog.columns.in_stock if self.catalog.n_updates or self.catalog.n_added else None
        return to_results(scores, ids, self.catalog.items, stock)

    def _with_cap(self, result: SearchResult, k: int, match: FilterMatch | None = None) -> SearchResult:
        """``result`` with ``capped_by`` / ``cap`` set when it holds fewer than ``k`` matches."""
        if len(result.matches) >= k:
            return result
        capped_by, cap = self._index.cap()
        if match is not None and match.count < cap:
            capped_by, cap = CAPPED_BY_FILTER, match.count
        return replace(result, capped_by=capped_by, cap=cap)

    def set_in_stock(self, product_id: str, in_stock: bool) -> None:
        """Record in the update log that a product is (or is not) in stock (the kiosk admin's
        "out of stock" button); later queries see it.

        Raises:
            ValueError: no product with that id.
        """
        self._check_open()
        self.catalog.update_stock([StockRow(product_id, None, bool(in_stock))])
        self._refresh()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"ProductSearch over bundle {self.bundle.path} is closed; create a new one")

    @property
    def raster(self) -> RasterOptions:
        """Rasteriser settings of this bundle's sketch encoder (output side ``size`` pixels)."""
        return self._sketch.raster

    def by_sketch_pixels(
        self, pixels: np.ndarray, k: int = DEFAULT_K, *, filters: SearchFilter | None = None
    ) -> SearchResult:
        """A rasterised sketch, (S, S) uint8 with 255 paper and 0 ink (see :attr:`raster`) → products
        (only those ``filters`` keeps)."""
        self._check_open()
        k = SearcherOptions(k=k).k  # refuse a bad k before the encoder runs
        return self._search(self._sketch.embed(np.asarray(pixels)[None]), k, filters)

    def by_strokes(
        self, strokes: Sequence[Stroke | PenStroke], k: int = DEFAULT_K, *, filters: SearchFilter | None = None
    ) -> SearchResult:
        """Strokes ((m, 2) float point arrays in screen pixels, y down, or
        :class:`~vitrina.runtime.rasterize.PenStroke` with colour) → products (only those
        ``filters`` keeps).

        A drawing with colour, on a bundle with colour families, is ranked by
        shape and then by colour (``color_search``): the result's ``query_color``
        names the family it was drawn in. Black ink is searched by shape alone.

        Raises:
            EmptySketchError: nothing is drawn.
            SketchInputError: not points, a coordinate that is not finite, or over
                the rasteriser's budgets (``MAX_STROKE_POINTS``, ``MAX_COORDINATE``).
        """
        self._check_open()
        pixels = rasterize_strokes(shape_strokes(strokes), self.raster)
        drawn = drawn_color(strokes, self.color_families) if self.color_families and has_color(strokes) else None
        if drawn is None:
            return self.by_sketch_pixels(pixels, k, filters=filters)
        k = SearcherOptions(k=k).k
        match, within = self._scope(filters)
        if match is not None and match.count == 0:
            return SearchResult((), CAPPED_BY_FILTER, 0, match.why_empty)
        items, shape_scores = self._shape_ranking(pixels, max(k, COLOR_SHORTLIST), within=within)
        if len(self._color_labels[0]) != len(self.catalog.items):  # products were added since
            del self.__dict__["_color_labels"]
        families, categories = self._color_labels
        scores = color_scores(families[items], categories[items], drawn)
        order = np.argsort(-scores, kind="stable")[:k]
        result = self._results(scores[order][None], items[order][None])[0]
        return replace(self._with_cap(result, k, match), query_color=drawn.family)

    def _shape_ranking(
        self, pixels: np.ndarray, n: int, *, within: RowFilter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``n`` best products for sketch ``pixels`` by shape (among the rows ``within``
        keeps), best first: (n,) int64 items and their scores. A two-stage bundle's re-ranked
        shortlist comes first, in its order, then the compact codes' order (as ``vitrina eval``
        ranks a whole gallery); ``n`` may pass :data:`~vitrina.runtime.search.MAX_K`, since
        only the colour stage reads this list and it returns ``k`` products."""
        embedding = self._sketch.embed(np.asarray(pixels)[None]).embeddings
        scores, ids, rows = self._index.search_deep(embedding, k=min(n, MAX_K), n=n, within=within)
        items, kept = ids[ids >= 0], scores[ids >= 0]
        if len(items) < n:
            more = self._index.searcher.code_items[rows[rows >= 0]]
            more = more[np.sort(np.unique(more, return_index=True)[1])]  # each product at its best row
            more = more[~np.isin(more, items)]
            floor = float(kept.min()) - 1.0 if len(kept) else 0.0
            items = np.concatenate([items, more])[:n]
            kept = np.concatenate([kept, floor - np.arange(len(more), dtype=np.float32)])[:n]
        return items.astype(np.int64), kept

    @cached_property
    def color_families(self) -> ColorFamilies | None:
        """The catalog's colour families (manifest ``colors``), or None for a bundle without them.

        Raises:
            BundleFormatError: the manifest's ``colors`` is malformed.
        """
        colors = self.bundle.manifest.get("colors")
        if colors is None:
            return None
        try:
            return ColorFamilies.from_mapping(colors)
        except ColorFamilyError as exc:
            raise BundleFormatError(f"bundle {self.bundle.path}: manifest colors: {exc}") from None

    @cached_property
    def _color_labels(self) -> tuple[np.ndarray, np.ndarray]:
        """(P,) int64 colour family and (P,) int64 category index of each product; family -1
        where none (or no families)."""
        families = self.color_families
        items = self.catalog.items
        names = {name: i for i, name in enumerate(dict.fromkeys(item.category for item in items))}
        categories = np.array([names[item.category] for item in items], dtype=np.int64)
        if families is None:
            return np.full(len(items), -1, dtype=np.int64), categories
        return families.of_items([item.color for item in items]), categories

    def by_sketch_image(
        self, image: Image.Image, k: int = DEFAULT_K, *, filters: SearchFilter | None = None
    ) -> SearchResult:
        """A drawn sketch image (PIL, any mode and size; dark ink on light paper) → products.

        Raises:
            EmptySketchError: the image is uniform or has no ink.
            SketchInputError: a PIL mode with no grey conversion.
        """
        self._check_open()
        return self.by_sketch_pixels(sketch_from_image(image, self.raster), k, filters=filters)

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
        filters: SearchFilter | None = None,
    ) -> PhotoSearchResult:
        """A photo (PIL, any mode and size; transparency counts as white) → products.

        The detector finds the products; box ``box`` (an index into the
        detections), or else the largest, is cropped (aspect kept) and searched.
        Without a detection, or without a detector in the bundle, the whole photo is
        searched and the result's ``fallback`` says so. ``detections`` of this same
        photo (from an earlier call) skip detecting again. Only products ``filters`` keeps
        are returned.

        Raises:
            ValueError: ``box`` out of range, or given to a bundle without a detector.
        """
        self._check_open()
        k = SearcherOptions(k=k).k
        query = photo_query(image, self._detector, box, detections)
        result = self._search(self._photo.embed_photos([query.image]), k, filters)
        return PhotoSearchResult(
            result.matches,
            result.capped_by,
            result.cap,
            result.note,
            detections=query.detections,
            searched_box=query.searched_box,
            fallback=WHOLE_IMAGE if query.searched_box is None else None,
            fallback_reason=query.fallback_reason,
        )

    def similar(self, item: int, k: int = DEFAULT_K, *, filters: SearchFilter | None = None) -> SearchResult:
        """Products that look most like product ``item`` (its index; itself excluded).

        Raises:
            ValueError: the product has no catalog code.
        """
        self._check_open()
        k = SearcherOptions(k=k).k
        match, within = self._scope(filters)
        if not 0 <= item < len(self.catalog.items):
            raise ValueError(f"product {item} is not in the catalog of {len(self.catalog.items)} products")
        if item < self.catalog.n_base:
            row = int(self.bundle.first_code_rows[item])
        else:  # added on the device: its row follows the bundle's
            row = len(self.bundle.codes) + item - self.catalog.n_base
        if row < 0:
            raise ValueError(f"product {item} has no catalog code")
        if match is not None and match.count == 0:
            return SearchResult((), CAPPED_BY_FILTER, 0, match.why_empty)
        # one more than k, for the product itself (at k = MAX_K it may take one of the MAX_K places)
        scores, ids = self._index.search_rows(np.array([row]), SearcherOptions(k=min(k + 1, MAX_K)), within=within)
        result = self._results(scores, ids)[0]
        return self._with_cap(SearchResult(tuple(m for m in result.matches if m.item != item)[:k]), k, match)

    # --- keyword search --------------------------------------------------
    def _refresh_text(self) -> None:
        """Forget the word lists built before products were added on the device."""
        if self.__dict__.get("_text_items") != len(self.catalog.items):
            for name in ("_word_index", "text_vocabulary", "vocabulary", "word_repair"):
                self.__dict__.pop(name, None)
            self.__dict__["_text_items"] = len(self.catalog.items)

    @cached_property
    def _word_index(self) -> tuple[list[str], list[np.ndarray]]:
        """The products' words as an inverted index: the distinct words, sorted, and for each the
        (n,) int64 products whose title, category or colour holds it (a prefix is a range of words)."""
        postings: dict[str, list[int]] = {}
        for item, product in enumerate(self.catalog.items):
            for w in set(words(f"{product.title} {product.category} {product.color}")):
                postings.setdefault(w, []).append(item)
        ordered = sorted(postings)
        return ordered, [np.asarray(postings[w], dtype=np.int64) for w in ordered]

    @cached_property
    def text_vocabulary(self) -> Vocabulary:
        """The bundle's text vocabulary plus the words of products added on the device."""
        added = self.catalog.items[self.catalog.n_base :]
        return self.bundle.vocabulary.with_texts(f"{i.title} {i.category} {i.color}" for i in added)

    @cached_property
    def vocabulary(self) -> list[tuple[str, int]]:
        """(folded word, products containing it), most frequent first: :attr:`text_vocabulary`
        (brand words and numbers left out)."""
        vocab = self.text_vocabulary
        return list(zip(vocab.words, vocab.counts))

    @cached_property
    def word_repair(self) -> WordRepair:
        """Normalises and repairs query words against :attr:`text_vocabulary`."""
        return WordRepair.create_from_vocabulary(self.text_vocabulary, WordRepairOptions())

    def suggest(self, prefix: str, limit: int = 6) -> list[str]:
        """Catalog words starting with the last word of ``prefix``, most common first, then the
        catalog's synonyms starting with it (``"ora"`` → ``["orange"]``); when none does, the
        word it repairs to (``"zapatiya"`` → ``["zapatilla"]``), if any."""
        tokens = words(prefix)
        if not tokens:
            return []
        self._refresh_text()
        last = tokens[-1]
        found = [w for w, _ in self.vocabulary if w.startswith(last) and w != last][:limit]
        found += sorted(p for p in self.text_vocabulary.synonyms if p.startswith(last) and p != last)
        found = found[:limit]
        repaired = self.word_repair.repair(last) if not found else None
        return [repaired] if repaired is not None and repaired != last else found

    def keyword_scores(self, query_words: Sequence[str]) -> np.ndarray:
        """(P,) float32 share of ``query_words`` (folded) each product's title, category or colour
        holds, a word counting when it starts one of the product's words; in [0, 1]. P counts
        the products added on the device too."""
        self._refresh_text()
        scores = np.zeros(len(self.catalog.items), dtype=np.float32)
        ordered, postings = self._word_index
        for token in query_words:
            hits = np.zeros(len(scores), dtype=bool)
            # the words starting with token sit together in sorted order (no fold makes U+10FFFF)
            for j in range(bisect_left(ordered, token), bisect_left(ordered, token + "\U0010ffff")):
                hits[postings[j]] = True
            scores += hits
        return scores / max(1, len(query_words))

    def by_text(self, text: str, k: int = DEFAULT_K, *, filters: SearchFilter | None = None) -> TextSearchResult:
        """Products for the shopper's words, after :attr:`word_repair` (numbers and brands
        dropped, misspellings corrected), ranked by ``options.text_method`` (the result's ``method``):

        * ``keyword``: products whose title/category/colour contain the query's words (prefixes
          count); score: the share of query words matched, in (0, 1]; ties keep catalog order;
        * ``hybrid``: that share first, then the text-visual similarity
          (:func:`~vitrina.runtime.text_visual_search.hybrid_scores`), so products that match no
          word but are like the query come after the matches; score in (0, 1.1];
        * ``text-visual``: the cosine of the query's text code with each product's code, in [-1, 1].

        The two model methods fall back to keyword search when no word of the query is one
        the model knows. With no known word left (or none typed), the result is empty and its
        ``query.empty`` (and ``note``) say so: never an error. So does a filter that matches nothing.

        Raises:
            ValueError: a bad k, or a closed engine.
        """
        self._check_open()
        k = SearcherOptions(k=k).k
        self._refresh_text()
        query = self.word_repair.normalize(text)
        tokens = list(query.words)
        # "similar" may have loaded the model on a keyword engine: text search still follows the option
        tv = None if self.options.text_method == "keyword" else self._text_visual
        method = "keyword"
        if tv is not None and (not tokens or tv.known(tokens)):
            method = "text-visual" if self.options.text_method == "text-visual" else "hybrid"
        if not tokens:
            return TextSearchResult((), note=TextSearchResult.no_word_note(query), query=query, method=method)
        match, _ = self._scope(filters)
        if match is not None and match.count == 0:
            return TextSearchResult((), CAPPED_BY_FILTER, 0, match.why_empty, query=query, method=method)
        if tv is not None and method == "text-visual":
            self._refresh_text_visual(tv)
            ranking = top_k(tv.text_scores(tokens), k, mask=self._coded_mask(tv, match))
            result = self._results(ranking.scores[None], ranking.items[None])[0]
            return TextSearchResult(result.matches, query=query, method=method)
        scores = self.keyword_scores(tokens)
        if tv is not None and method == "hybrid":
            self._refresh_text_visual(tv)
            n = len(tv.codes)
            scores[:n] = hybrid_scores(scores[:n], tv.text_scores(tokens), tv.coded)
        if match is not None:
            scores[~match.mask] = 0.0
        order = shortlist_rows(scores, k)  # a partition, not a full sort; ties keep catalog order
        order = order[scores[order] > 0]
        result = self._results(scores[order][None], order[None])[0]
        return TextSearchResult(result.matches, query=query, method=method)

    @cached_property
    def _text_visual(self) -> TextVisualSearch | None:
        """The text-visual model and codes (``options.text_method``), None for keyword search
        (``keyword``, or ``auto`` on a bundle without the model).

        Raises:
            BundleFormatError: ``text_method`` ``"hybrid"`` or ``"text-visual"`` on a bundle without the model.
        """
        method = self.options.text_method
        if method == "keyword" or (method == "auto" and not TextVisualSearch.available(self.bundle)):
            return None
        options = TextVisualOptions(num_threads=self.options.num_threads, precision=self.options.precision)
        return TextVisualSearch.create_from_bundle(self.bundle, options)

    def similar_products(self, item: int, k: int = DEFAULT_K, *, filters: SearchFilter | None = None) -> SearchResult:
        """Products like ``item`` as a shopper sees them (the kiosk's detail screen): text-visual
        neighbours (:meth:`similar_by_text_visual`) when the bundle has the model and the product
        a text-visual code (the bundle's products, and those added on the device with one), else
        the photo codes' (:meth:`similar`)."""
        tv_ok = self.options.text_method != "keyword" and TextVisualSearch.available(self.bundle)
        added = self.catalog.added_text_visual
        coded = item < self.catalog.n_base or (
            added is not None
            and 0 <= item - self.catalog.n_base < len(added)
            and bool(np.any(added[item - self.catalog.n_base]))
        )
        if tv_ok and coded:
            return self.similar_by_text_visual(item, k, filters=filters)
        return self.similar(item, k, filters=filters)

    def _refresh_text_visual(self, tv: TextVisualSearch) -> None:
        """Append the products added on the device since ``tv`` last saw the catalog."""
        if self.__dict__.get("_tv_items") != len(self.catalog.items):
            tv.set_added(self.catalog.added_text_visual)
            self.__dict__["_tv_items"] = len(self.catalog.items)

    @staticmethod
    def _coded_mask(tv: TextVisualSearch, match: FilterMatch | None) -> np.ndarray:
        """(P + A,) bool: products with a text-visual code that pass the filters."""
        return tv.coded if match is None else tv.coded & match.mask[: len(tv.codes)]

    def similar_by_text_visual(
        self, item: int, k: int = DEFAULT_K, *, filters: SearchFilter | None = None
    ) -> SearchResult:
        """Products nearest product ``item`` (itself excluded) in the text-visual space: title and
        main image together. Score: cosine in [-1, 1].

        Raises:
            ValueError: a bad k or product, or a closed engine.
            BundleFormatError: the bundle has no text-visual model.
        """
        self._check_open()
        k = SearcherOptions(k=k).k
        if not 0 <= item < len(self.catalog.items):
            raise ValueError(f"product {item} is not in the catalog of {len(self.catalog.items)} products")
        tv = self._text_visual if self.options.text_method != "keyword" else None
        if tv is None:
            options = TextVisualOptions(num_threads=self.options.num_threads, precision=self.options.precision)
            tv = self.__dict__["_text_visual"] = TextVisualSearch.create_from_bundle(self.bundle, options)
        match, _ = self._scope(filters)
        if match is not None and match.count == 0:
            return SearchResult((), CAPPED_BY_FILTER, 0, match.why_empty)
        self._refresh_text_visual(tv)
        ranking = top_k(tv.item_scores(item), k, mask=self._coded_mask(tv, match), exclude=item)
        result = self._results(ranking.scores[None], ranking.items[None])[0]
        return self._with_cap(result, k, match)

    def close(self) -> None:
        """Release the interpreters and the catalog codes; later queries raise ``ValueError``.
        Closing twice is harmless."""
        self._closed = True
        text_visual = self.__dict__.get("_text_visual")
        if text_visual is not None:
            text_visual.close()
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


def catalog_index(catalog: LiveCatalog) -> CatalogIndex:
    """The live catalog's index: the bundle's memory-mapped codes, then the rows added on the
    device (and their re-rank rows), with the bundle's reducer."""
    bundle = catalog.bundle
    if catalog.n_added == 0:
        return CatalogIndex.create_from_bundle(bundle)
    n_base = len(bundle.items)
    code_items = np.concatenate([bundle.code_items.astype(np.int64), n_base + np.arange(catalog.n_added)])
    searcher = Searcher(
        [bundle.codes, catalog.added_codes],
        code_items,
        n_base + catalog.n_added,
        bundle.code_spec.metric,
        code_scale=bundle.code_scale,
    )
    rerank = None
    if bundle.has_rerank and catalog.added_rerank is not None:
        codes, scale, shortlist = bundle.rerank()
        rerank = RerankSearcher(searcher, [codes, catalog.added_rerank], scale, shortlist)
    return CatalogIndex(bundle.reducer(), searcher, rerank)
