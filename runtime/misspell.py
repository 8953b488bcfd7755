"""Typing mistakes shoppers make, generated deterministically (for evaluation and tests).

Kinds (:data:`MISSPELLINGS`), each a function of a word and a generator that
returns the misspelt word, or None when the kind does not apply to the word:

* ``drop``: one letter left out (``"zapatilla"`` → ``"zapatila"``);
* ``swap``: two neighbouring letters swapped (``"polera"`` → ``"ploera"``);
* ``accent``: accents left out (``"pantalón"`` → ``"pantalon"``);
* ``b/v``, ``s/z``, ``ll/y``: a letter written as the one that sounds the same
  (``"vestido"`` → ``"bestido"``, ``"azul"`` → ``"asul"``, ``"zapatilla"`` → ``"zapatiya"``).

The first letter is never dropped or swapped (shoppers rarely get it wrong).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import numpy as np

Misspeller = Callable[[str, np.random.Generator], "str | None"]


def _strip_accents(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    return unicodedata.normalize("NFC", "".join(c for c in decomposed if not unicodedata.combining(c)))


def drop_letter(word: str, rng: np.random.Generator) -> str | None:
    """``word`` without one letter after the first (None for words under 4 letters)."""
    if len(word) < 4:
        return None
    i = int(rng.integers(1, len(word)))
    return word[:i] + word[i + 1 :]


def swap_letters(word: str, rng: np.random.Generator) -> str | None:
    """``word`` with two different neighbouring letters after the first swapped (None if none differ)."""
    spots = [i for i in range(1, len(word) - 1) if word[i] != word[i + 1]]
    if len(word) < 4 or not spots:
        return None
    i = spots[int(rng.integers(len(spots)))]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def lose_accents(word: str, rng: np.random.Generator) -> str | None:
    """``word`` without its accents (None if it has none)."""
    plain = _strip_accents(word)
    return plain if plain != word else None


def _sound_swap(pairs: tuple[tuple[str, str], ...]) -> Misspeller:
    def swap(word: str, rng: np.random.Generator) -> str | None:
        spots = [(i, a, b) for a, b in pairs for i in range(len(word)) if word.startswith(a, i)]
        if not spots:
            return None
        i, a, b = spots[int(rng.integers(len(spots)))]
        return word[:i] + b + word[i + len(a) :]

    return swap


MISSPELLINGS: dict[str, Misspeller] = {
    "drop": drop_letter,
    "swap": swap_letters,
    "accent": lose_accents,
    "b/v": _sound_swap((("b", "v"), ("v", "b"))),
    "s/z": _sound_swap((("s", "z"), ("z", "s"))),
    "ll/y": _sound_swap((("ll", "y"), ("y", "ll"))),
}


def misspell(word: str, kind: str, rng: np.random.Generator) -> str | None:
    """``word`` misspelt the ``kind`` way (a key of :data:`MISSPELLINGS`), or None when it does not apply."""
    try:
        return MISSPELLINGS[kind](word, rng)
    except KeyError:
        raise ValueError(f"unknown misspelling {kind!r}: expected one of {', '.join(MISSPELLINGS)}") from None
