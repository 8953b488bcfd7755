"""Search the catalog's text-visual codes: text queries and "more like this".

A text query's words (already normalised and repaired,
:class:`~vitrina.runtime.text.QueryWords`) go through the model's text branch
alone; the code is compared by cosine with every product's text-visual code
(title + main image, ``text_visual/codes_<precision>.npy``). "More like this"
compares a product's own text-visual code with the others'.

Scores are cosines in [-1, 1], higher is better. Products added on the device
get their text-visual code there (``catalog_feed.encode_new_products``, the
bundle's model through LiteRT) and :meth:`TextVisualSearch.set_added` appends
them; a product added without one (an older update log) is left out of these
rankings (:attr:`TextVisualSearch.coded`). Text search falls back to keyword
search only when none of the query's words is one the model knows.

A **hybrid** text search (:func:`hybrid_scores`, the default) ranks by the
keyword match first and by the text-visual similarity within each level of it,
so products whose titles use another word for the same thing (a synonym, a
word the repair could not place) come right after the keyword matches instead
of not at all. On the demo bundle (``vitrina eval --task text``) it kept keyword
search's P@10 and raised its mAP from 0.61 to 0.83 (Spanish queries), 0.59 to
0.79 (synonyms) and 0.62 to 0.83 (misspelled); the text-visual ranking alone
had P@10 0.60.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .bundle import Bundle
from .search import MAX_K, shortlist_rows
from .text_visual import TextVisualEncoder, TextVisualOptions, catalog_codes, has_text_visual

#: Text search methods: ``auto`` (``hybrid`` when the bundle has the text-visual model, else
#: ``keyword``), or one of the three (see :meth:`~vitrina.runtime.product_search.ProductSearch.by_text`).
TEXT_METHODS = ("auto", "hybrid", "text-visual", "keyword")
#: Weight of the text-visual similarity (mapped to [0, 1]) in a hybrid score. Below
#: 1 / MAX_QUERY_WORDS, the smallest step of the keyword share, so the similarity only
#: orders products that match the same share of the query's words.
HYBRID_WEIGHT = 0.1


def hybrid_scores(keyword: np.ndarray, cosine: np.ndarray, coded: np.ndarray | None = None) -> np.ndarray:
    """Keyword match first, text-visual similarity next.

    Args:
        keyword: (P,) share of the query's words each product matches, in [0, 1].
        cosine: (P,) text-visual cosine of the query with each product, in [-1, 1].
        coded: (P,) bool products that have a text-visual code (None: all); the others
            score their keyword share alone.

    Returns:
        (P,) float32 ``keyword + HYBRID_WEIGHT × (cosine + 1) / 2``, in [0, 1 + HYBRID_WEIGHT].
    """
    keyword = np.asarray(keyword, np.float32)
    similarity = (np.clip(np.asarray(cosine, np.float32), -1.0, 1.0) + 1.0) / 2.0
    if coded is not None:
        similarity = np.where(np.asarray(coded, bool), similarity, 0.0)
    return (keyword + np.float32(HYBRID_WEIGHT) * similarity).astype(np.float32)


@dataclass(frozen=True)
class Ranking:
    """Products ranked by a text-visual score.

    Attributes:
        items: (k,) int64 product indices, best first.
        scores: (k,) float32 cosines, parallel to ``items``.
    """

    items: np.ndarray
    scores: np.ndarray


class TextVisualSearch:
    """The bundle's text-visual model and codes. Create with :meth:`create_from_bundle`; close when done.

    Raises:
        BundleFormatError: the bundle has no text-visual model or codes, or they are malformed.
    """

    def __init__(self, bundle: Bundle, options: TextVisualOptions | None = None):
        options = options if options is not None else TextVisualOptions()
        self.bundle = bundle
        self.encoder = TextVisualEncoder.create_from_bundle(bundle, options)
        self._base = catalog_codes(bundle, options.precision)
        #: (P + A, D) float32 unit rows: the bundle's products, then those added on the device.
        self.codes = self._base
        #: (P + A,) bool: which products have a text-visual code (added ones may not).
        self.coded = np.ones(len(self._base), bool)

    def set_added(self, added: np.ndarray | None) -> None:
        """Rank the products added on the device too: ``added`` (A, D) float32 their codes in order
        (all-zero rows: none), or None / empty for none."""
        if added is None or len(added) == 0:
            self.codes, self.coded = self._base, np.ones(len(self._base), bool)
            return
        added = np.asarray(added, np.float32)
        if added.ndim != 2 or added.shape[1] != self._base.shape[1]:
            raise ValueError(f"added text-visual codes must be (A, {self._base.shape[1]}), got {added.shape}")
        self.codes = np.concatenate([self._base, added])
        self.coded = np.concatenate([np.ones(len(self._base), bool), np.linalg.norm(added, axis=1) > 0])

    @classmethod
    def create_from_bundle(cls, bundle: Bundle, options: TextVisualOptions | None = None) -> TextVisualSearch:
        return cls(bundle, options)

    @staticmethod
    def available(bundle: Bundle) -> bool:
        """True when ``bundle`` carries the text-visual model and codes."""
        return has_text_visual(bundle)

    def known(self, words: Sequence[str]) -> list[str]:
        """The words of ``words`` the model has an id for."""
        ids = self.encoder.ids(words)
        index = self.bundle.vocabulary.words
        return [index[i - 1] for i in ids if i]

    def text_scores(self, words: Sequence[str]) -> np.ndarray:
        """(P + A,) float32 cosine of the text-only code of ``words`` with each product's code.

        Raises:
            ValueError: no word of ``words`` is known to the model.
        """
        if not self.known(words):
            raise ValueError(f"none of the words {list(words)} is known to the text-visual model")
        query = self.encoder.encode_texts([list(words)]).codes[0]
        return self.codes @ query

    def item_scores(self, item: int) -> np.ndarray:
        """(P + A,) float32 cosine of product ``item``'s code with each product's (itself included).

        Raises:
            ValueError: the product has no text-visual code.
        """
        if not 0 <= item < len(self.codes) or not self.coded[item]:
            raise ValueError(f"product {item} has no text-visual code")
        return self.codes @ self.codes[item]

    def close(self) -> None:
        self.encoder.close()

    def __enter__(self) -> TextVisualSearch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def top_k(scores: np.ndarray, k: int, *, mask: np.ndarray | None = None, exclude: int | None = None) -> Ranking:
    """The ``k`` best of ``scores`` (P,) among ``mask`` (P,) bool (None: all), less ``exclude``; ties keep index order."""
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be 1 to {MAX_K}, got {k}")
    s = np.asarray(scores, np.float32).copy()
    keep = np.ones(len(s), bool) if mask is None else np.asarray(mask, bool)[: len(s)].copy()
    if exclude is not None and 0 <= exclude < len(s):
        keep[exclude] = False
    rows = np.flatnonzero(keep)
    order = rows[shortlist_rows(s[rows], k)]
    return Ranking(order.astype(np.int64), s[order])
