"""Shopper's words → vocabulary words: normalisation and word repair, on the device.

The text side of a query, before any search runs:

1. **tokenise**: lower case, fold accents (``"Poleròn"`` → ``"poleron"``), split
   on anything but letters and digits;
2. **drop** numbers (``"1"``, ``"2xl"``), one-letter words, and the catalog's
   brand words (``"wake"``): they say nothing about the product;
3. **repair** each word the vocabulary does not know (:class:`WordRepair`):
   a Spanish plural or singular of a known word (``"polerones"`` →
   ``"poleron"``), the same word spelt with a letter that sounds alike
   (b/v, s/z, ll/y, c/s before e and i: ``"zapatiya"`` → ``"zapatilla"``,
   ``"asul"`` → ``"azul"``), the most frequent vocabulary word one edit away
   (a letter dropped or added, or two neighbours swapped: rapidfuzz's optimal
   string alignment distance 1 less substitutions, for words of 3+ letters:
   ``"zpatilla"`` → ``"zapatilla"``), or else the most similar vocabulary word when the
   similarity is at least ``min_similarity`` (rapidfuzz's Jaro-Winkler at 0.93
   by default; difflib's ratio at 0.95, the text-visual study's setting, on
   request). Anything else is dropped;
4. keep at most :data:`MAX_QUERY_WORDS` words.

Before step 3, a phrase of up to :data:`MAX_SYNONYM_WORDS` words that the
vocabulary lists as a **synonym** becomes the catalog words it stands for:
the retailer's own table (the catalog's ``aliases.json``), typically the
shoppers' other language (``"light blue"`` → ``"celeste"``, ``"ankle boot"`` →
``"botin"``). The longest phrase wins, and a synonym wins over the word itself
being in the vocabulary: the retailer said what the word means in this store.

Only the first :data:`MAX_QUERY_CHARS` characters of a query are read (a
search field's worth), so a pasted book costs no more than a sentence.

The vocabulary comes from the catalog's titles (plus category and colour names)
and ships in the bundle (``text/vocabulary.json``, read by
:meth:`vitrina.runtime.bundle.Bundle.vocabulary`); an older bundle without the
file gets one built from its items.

Why rapidfuzz's Jaro-Winkler rather than difflib: on generated misspellings
of the demo vocabulary it repaired far more words at the same rate of false
repairs, 5-10× faster per word (``vitrina eval --task text`` prints the
comparison; ``docs/text-search.md`` has the figures). difflib's ratio at 0.95
repairs almost no typo in a word shorter than ~20 letters: one dropped letter
in a 9-letter word scores 0.94. Jaro-Winkler weighs the first letters most, so
a letter dropped right after the first (``"zpatilla"``, 0.929; ``"nranjo"``,
0.907) missed 0.93: the one-edit rule takes those. On the demo bundle's 324
generated misspellings it raised the words repaired right from 0.849 to 0.985;
the wrong repairs (0.015) are mostly the word's other gender (``"roj"`` →
``"rojo"``, not ``"roja"``). Allowing a changed letter too gave 0.975 right and
mapped the second store's "mini" to "midi".
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

#: Words a query keeps (the text-visual study's text branch reads up to 9).
MAX_QUERY_WORDS = 9
#: Characters of a query that are read; the rest is ignored.
MAX_QUERY_CHARS = 256
#: Similarity scorers a fuzzy repair can use (each 0-1, 1 = same word).
SCORERS = ("jaro-winkler", "difflib")
#: Default similarity (Jaro-Winkler, 0-1) a fuzzy repair needs; chosen on generated misspellings.
DEFAULT_MIN_SIMILARITY = 0.93
#: The text-visual study's setting: difflib ratio >= 0.95.
STUDY_MIN_SIMILARITY = 0.95
#: Shortest word a fuzzy repair is tried on: shorter words match too much ("pan" → "paño").
MIN_FUZZY_LETTERS = 4
#: Longest synonym phrase, in words (``"ankle boot"``, ``"light blue"``).
MAX_SYNONYM_WORDS = 3
#: Synonyms a vocabulary holds at most (a retailer's table is hundreds).
MAX_SYNONYMS = 10_000
#: Shortest typed word the one-edit rule is tried on (3: a 4-letter word missing a letter, ``"gis"`` → ``"gris"``).
MIN_EDIT_LETTERS = 3

_TOKEN = re.compile(r"[a-z0-9]+")
_DIGIT = re.compile(r"[0-9]")
# Spellings that sound alike in (Latin American) Spanish, folded to one form; order matters (ll before l).
_SOUNDS_ALIKE = (
    (re.compile(r"ll"), "y"),
    (re.compile(r"v"), "b"),
    (re.compile(r"z"), "s"),
    (re.compile(r"c(?=[ei])"), "s"),
)


def fold(text: str) -> str:
    """Lower-case and strip accents: ``"Pantalón"`` → ``"pantalon"``, ``"Poleròn"`` → ``"poleron"``."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    """Folded word tokens of ``text`` in order, numbers included (``"Polera 2"`` → ``["polera", "2"]``)."""
    return _TOKEN.findall(fold(text))


def is_noise(token: str) -> bool:
    """True for tokens no search uses: numbers and words with digits, single letters."""
    return len(token) < 2 or _DIGIT.search(token) is not None


def sound_key(word: str) -> str:
    """``word`` with Spanish letters that sound alike folded to one: ``"zapatiya"`` and
    ``"zapatilla"`` both → ``"sapatiya"``; ``"vestido"`` → ``"bestido"``."""
    for pattern, replacement in _SOUNDS_ALIKE:
        word = pattern.sub(replacement, word)
    return word


@dataclass(frozen=True)
class Vocabulary:
    """The words a catalog's text search knows.

    Attributes:
        words: folded words, most frequent first (ties alphabetical).
        counts: products whose text holds each word, parallel to ``words``.
        brands: folded brand words; a query drops them without trying to repair them.
        synonyms: folded phrase of 1 to :data:`MAX_SYNONYM_WORDS` words (joined by one
            space) → the vocabulary words it stands for (``"orange"`` → ``("naranjo",)``).
    """

    words: tuple[str, ...]
    counts: tuple[int, ...]
    brands: frozenset[str] = frozenset()
    synonyms: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.words) != len(self.counts):
            raise ValueError(
                f"a vocabulary needs one count per word: {len(self.words)} words, {len(self.counts)} counts"
            )
        if self.synonyms:
            self._check_synonyms()

    def _check_synonyms(self) -> None:
        if len(self.synonyms) > MAX_SYNONYMS:
            raise ValueError(f"a vocabulary holds at most {MAX_SYNONYMS:,} synonyms, got {len(self.synonyms):,}")
        known = self.index
        for phrase, meant in self.synonyms.items():
            typed = tokens(phrase)
            if " ".join(typed) != phrase or not 1 <= len(typed) <= MAX_SYNONYM_WORDS:
                raise ValueError(
                    f"synonym {phrase[:80]!r} is not a folded phrase of 1 to {MAX_SYNONYM_WORDS} words "
                    "(lower case, no accents, single spaces)"
                )
            if not meant or not all(w in known for w in meant):
                raise ValueError(
                    f"synonym {phrase[:80]!r} stands for {list(meant)[:MAX_QUERY_WORDS]}: "
                    "expected 1+ words of the vocabulary"
                )

    @classmethod
    def from_texts(cls, texts: Iterable[str], brands: Iterable[str] = ()) -> Vocabulary:
        """The vocabulary of ``texts`` (one per product: its title, category and colour).

        Numbers, one-letter words and the words of ``brands`` (each a brand name,
        possibly of several words) are left out.
        """
        brand_words = frozenset(w for b in brands for w in tokens(b) if not is_noise(w))
        counts = Counter(w for text in texts for w in set(tokens(text)) if not is_noise(w) and w not in brand_words)
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return cls(tuple(w for w, _ in ordered), tuple(c for _, c in ordered), brand_words)

    def with_texts(self, texts: Iterable[str]) -> Vocabulary:
        """This vocabulary plus the words of ``texts`` (products added on the device), counts summed;
        brand words, numbers and one-letter words stay out, as in :meth:`from_texts`."""
        added = Counter(w for text in texts for w in set(tokens(text)) if not is_noise(w) and w not in self.brands)
        if not added:
            return self
        counts = Counter(dict(zip(self.words, self.counts)))
        counts.update(added)
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        return Vocabulary(tuple(w for w, _ in ordered), tuple(c for _, c in ordered), self.brands, self.synonyms)

    def with_synonyms(self, table: Mapping[str, str]) -> Vocabulary:
        """This vocabulary with the synonyms of ``table`` (phrase → the text it stands for, both
        as a retailer writes them: ``{"Light Blue": "Celeste"}``) whose phrase has 1 to
        :data:`MAX_SYNONYM_WORDS` words and whose text folds to words of this vocabulary (numbers,
        brand words and unknown words dropped); the others are left out (compare the lengths of
        :attr:`synonyms` to count them). Later entries of the same phrase win."""
        known = self.index
        kept = dict(self.synonyms)
        for phrase, text in table.items():
            typed = tokens(phrase)
            meant = tuple(dict.fromkeys(w for w in tokens(text) if w in known))
            if 1 <= len(typed) <= MAX_SYNONYM_WORDS and meant:
                kept[" ".join(typed)] = meant
        return Vocabulary(self.words, self.counts, self.brands, kept)

    def __contains__(self, word: object) -> bool:
        return word in self.index

    def __len__(self) -> int:
        return len(self.words)

    @cached_property
    def index(self) -> dict[str, int]:
        """word → its position in :attr:`words` (lower is more frequent)."""
        return {w: i for i, w in enumerate(self.words)}

    @cached_property
    def by_sound(self) -> dict[str, str]:
        """:func:`sound_key` → the most frequent vocabulary word with that key."""
        keys: dict[str, str] = {}
        for w in self.words:
            keys.setdefault(sound_key(w), w)
        return keys


@dataclass(frozen=True)
class WordRepairOptions:
    """How unknown words are repaired.

    Attributes:
        scorer: ``jaro-winkler`` (rapidfuzz) or ``difflib`` (SequenceMatcher ratio).
        min_similarity: score in (0, 1] a fuzzy repair needs (after the plural
            and sound-alike rules, which are exact); 1.0 turns fuzzy repair off.
        max_words: words a query keeps, 1 to :data:`MAX_QUERY_WORDS`.
        rules: apply the plural, sound-alike and one-edit rules (False: fuzzy repair only, as the study).
        synonyms: replace the vocabulary's synonyms (False for titles: they are the catalog's
            own words, and the text-visual model learnt them as written).
    """

    scorer: str = "jaro-winkler"
    min_similarity: float = DEFAULT_MIN_SIMILARITY
    max_words: int = MAX_QUERY_WORDS
    rules: bool = True
    synonyms: bool = True

    @classmethod
    def study(cls) -> WordRepairOptions:
        """The text-visual study's repair: difflib ratio >= 0.95, no rules, no synonyms."""
        return cls(scorer="difflib", min_similarity=STUDY_MIN_SIMILARITY, rules=False, synonyms=False)

    def __post_init__(self) -> None:
        if self.scorer not in SCORERS:
            raise ValueError(f"scorer must be one of {', '.join(SCORERS)}, got {self.scorer!r}")
        if not 0.0 < self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in (0, 1], got {self.min_similarity}")
        if not 1 <= self.max_words <= MAX_QUERY_WORDS:
            raise ValueError(f"max_words must be 1 to {MAX_QUERY_WORDS}, got {self.max_words}")


@dataclass(frozen=True)
class QueryWords:
    """A query's words after normalisation and repair.

    Attributes:
        words: vocabulary words the search uses, in query order, at most ``max_words``, no repeats.
        corrected: typed word (folded) → the vocabulary word it was repaired to.
        dropped: typed words (folded) the search does not use: numbers, brands,
            words with no close vocabulary word, words past ``max_words``.
        synonyms: typed phrase (folded) → the vocabulary words it stood for, joined by
            spaces (``{"light blue": "celeste"}``): the catalog's synonyms, not repairs.
    """

    words: tuple[str, ...]
    corrected: Mapping[str, str] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    synonyms: Mapping[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """No known word is left: the search has nothing to look for."""
        return not self.words

    def to_json(self) -> dict[str, object]:
        """``{"query_words": [...], "corrected": {...}, "dropped": [...], "synonyms": {...}}``."""
        return {
            "query_words": list(self.words),
            "corrected": dict(self.corrected),
            "dropped": list(self.dropped),
            "synonyms": dict(self.synonyms),
        }


class WordRepair:
    """Normalises queries against one :class:`Vocabulary`. Create with :meth:`create_from_vocabulary`."""

    def __init__(self, vocabulary: Vocabulary, options: WordRepairOptions | None = None):
        self.vocabulary = vocabulary
        self.options = options if options is not None else WordRepairOptions()
        self._cache: dict[str, str | None] = {}

    @classmethod
    def create_from_vocabulary(cls, vocabulary: Vocabulary, options: WordRepairOptions | None = None) -> WordRepair:
        return cls(vocabulary, options)

    @classmethod
    def for_titles(cls, vocabulary: Vocabulary) -> WordRepair:
        """The repair that turns product titles into the text-visual model's words: the
        default one, synonyms left as written."""
        return cls(vocabulary, WordRepairOptions(synonyms=False))

    def repair(self, word: str) -> str | None:
        """The vocabulary word for the folded token ``word`` (itself when known), or None to drop it."""
        if word in self._cache:
            return self._cache[word]
        found = self._repair(word)
        if len(self._cache) < 4096:  # shoppers repeat words; bounded so a long session cannot grow it
            self._cache[word] = found
        return found

    def _repair(self, word: str) -> str | None:
        vocab = self.vocabulary
        if word in vocab:
            return word
        if is_noise(word) or word in vocab.brands:
            return None
        if self.options.rules:
            found = self._by_rules(word)
            if found is not None:
                return found
        if self.options.min_similarity >= 1.0 or len(word) < MIN_FUZZY_LETTERS:
            return None
        return self._closest(word)

    def _closest(self, word: str) -> str | None:
        """The most similar vocabulary word scoring at least ``min_similarity`` (ties: the more frequent)."""
        words, cutoff = self.vocabulary.words, self.options.min_similarity
        if self.options.scorer == "difflib":
            close = difflib.get_close_matches(word, words, n=1, cutoff=cutoff)
            return close[0] if close else None
        from rapidfuzz import process  # here, not at import: opening a bundle need not load it
        from rapidfuzz.distance import JaroWinkler

        found = process.extractOne(word, words, scorer=JaroWinkler.similarity, score_cutoff=cutoff)
        return None if found is None else str(found[0])

    def _by_rules(self, word: str) -> str | None:
        """Plural/singular, then sound-alike spellings (each also combined with the other), then one edit."""
        vocab = self.vocabulary
        forms = [word]
        if word.endswith("es") and len(word) > 4:
            forms.append(word[:-2])
        if word.endswith("s") and len(word) > 3:
            forms.append(word[:-1])
        forms += [word + "s", word + "es"]
        for form in forms[1:]:
            if form in vocab:
                return form
        for form in forms:
            found = vocab.by_sound.get(sound_key(form))
            if found is not None:
                return found
        return self._one_edit(word)

    def _one_edit(self, word: str) -> str | None:
        """The most frequent vocabulary word one edit away, for words of :data:`MIN_EDIT_LETTERS`+:
        a letter dropped or added, or two neighbours swapped (optimal string alignment distance 1,
        less substitutions: a changed letter is as often another word, "mini" → "midi")."""
        if len(word) < MIN_EDIT_LETTERS:
            return None
        from rapidfuzz import process  # here, not at import: opening a bundle need not load it
        from rapidfuzz.distance import OSA

        near = process.extract(word, self.vocabulary.words, scorer=OSA.distance, score_cutoff=1, limit=None)
        for candidate, _, index in sorted(near, key=lambda found: found[2]):  # most frequent first
            if len(candidate) != len(word) or sorted(candidate) == sorted(word):  # not a substitution
                return str(self.vocabulary.words[index])
        return None

    def normalize(self, text: str) -> QueryWords:
        """Tokenise, replace synonyms, drop and repair ``text`` (its first :data:`MAX_QUERY_CHARS`
        characters; see the module docstring)."""
        typed = tokens(text[:MAX_QUERY_CHARS])
        kept: list[str] = []
        corrected: dict[str, str] = {}
        dropped: list[str] = []
        synonyms: dict[str, str] = {}
        at = 0
        while at < len(typed):
            phrase, meant = self.synonym_at(typed, at)
            if meant:
                fits = [w for w in meant if w not in kept][: self.options.max_words - len(kept)]
                if fits or set(meant) <= set(kept):
                    synonyms[phrase] = " ".join(meant)
                    kept += fits
                else:
                    dropped.append(phrase)
                at += len(phrase.split())
                continue
            token = typed[at]
            at += 1
            found = self.repair(token)
            if found is None or len(kept) >= self.options.max_words and found not in kept:
                dropped.append(token)
                continue
            if found != token:
                corrected[token] = found
            if found not in kept:
                kept.append(found)
        return QueryWords(tuple(kept), corrected, tuple(dropped), synonyms)

    def synonym_at(self, typed: list[str], at: int) -> tuple[str, tuple[str, ...]]:
        """The longest synonym phrase of the vocabulary starting at ``typed[at]`` and the words it
        stands for, or ``("", ())`` when none starts there."""
        table = self.vocabulary.synonyms
        if table and self.options.synonyms:
            for n in range(min(MAX_SYNONYM_WORDS, len(typed) - at), 0, -1):
                phrase = " ".join(typed[at : at + n])
                if phrase in table:
                    return phrase, table[phrase]
        return "", ()
