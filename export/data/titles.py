"""Product titles of the demo stores, written the way retail titles are.

The text-visual study's titles look like ``"Polera Camiseta Básica Manga Larga
Negro"`` or ``"Pantalón Wake Leg Gabardina Rojo Oscuro 1"``: one or two nouns
of the category, style and material words, the colour, and brand words and
numbers (which the device's tokenizer drops, ``vitrina.runtime.text``).

Two vocabularies:

* :data:`MAIN_STORE`: the demo catalog's own store (Chilean Spanish, as the
  study's source stores: polera, polerón, zapatilla, botín ...);
* :data:`SECOND_STORE`: the generalisation store — other synonyms (remera,
  buzo, tenis, jersey ...), English words (jeans, sneakers, hoodie ...),
  plurals and misspellings (poleròn, poleron, polerones), and other brands.
  The second store shares the colour names (they are what the shopper asks
  for) but writes them its own way now and then (``"Negro"`` / ``"Black"``).

A title is drawn from a :class:`numpy.random.Generator`, so a catalog is
deterministic from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fashion_mnist import CLASS_NAMES


@dataclass(frozen=True)
class Noun:
    """A category noun as it appears in titles, with its grammatical gender (``"m"`` / ``"f"``)."""

    text: str
    gender: str


@dataclass(frozen=True)
class CategoryWords:
    """Title words of one category in one store.

    Attributes:
        nouns: the first noun of a title is one of these; a second one may follow
            (``"Polera Camiseta ..."``), and the colour agrees with the first.
        styles: style phrases (``"Manga Larga"``, ``"Wide Leg"``).
        materials: material words (``"Gabardina"``, ``"Cuero"``).
    """

    nouns: tuple[Noun, ...]
    styles: tuple[str, ...]
    materials: tuple[str, ...]


@dataclass(frozen=True)
class StoreVocabulary:
    """Everything a store's titles are made of.

    Attributes:
        name: ``"main"`` or ``"second"``.
        categories: Fashion-MNIST class name → :class:`CategoryWords`.
        brands: brand words (dropped by the device's tokenizer; written to the
            catalog's ``brand`` column so export can keep them out of the vocabulary).
        english_colours: share of titles whose colour is written in English.
        second_noun, material, brand, number: share of titles with that part.
    """

    name: str
    categories: dict[str, CategoryWords]
    brands: tuple[str, ...]
    english_colours: float = 0.0
    second_noun: float = 0.35
    material: float = 0.6
    brand: float = 0.45
    number: float = 0.3


def _n(*spec: str) -> tuple[Noun, ...]:
    """``_n("Polera f", "Top m")`` → nouns with their genders (the last word is the gender)."""
    return tuple(Noun(s.rsplit(" ", 1)[0], s.rsplit(" ", 1)[1]) for s in spec)


MAIN_STORE = StoreVocabulary(
    name="main",
    categories={
        "T-shirt/top": CategoryWords(
            _n("Polera f", "Camiseta f", "Top m"),
            ("Básica", "Manga Corta", "Manga Larga", "Estampada", "Cuello Redondo", "Cuello V"),
            ("Algodón", "Jersey", "Piqué"),
        ),
        "Trouser": CategoryWords(
            _n("Pantalón m", "Jeans m", "Calza f"),
            ("Recto", "Slim", "Wide Leg", "Cargo", "Tiro Alto", "Skinny"),
            ("Gabardina", "Denim", "Lino", "Algodón"),
        ),
        "Pullover": CategoryWords(
            _n("Suéter m", "Polerón m", "Chaleco m"),
            ("Tejido", "Cuello Alto", "Oversize", "Con Capucha", "Cuello Redondo"),
            ("Lana", "Algodón", "Polar", "Hilo"),
        ),
        "Dress": CategoryWords(
            _n("Vestido m", "Solera f"),
            ("Largo", "Corto", "Midi", "De Verano", "Casual", "Tirantes"),
            ("Lino", "Viscosa", "Gasa", "Satín"),
        ),
        "Coat": CategoryWords(
            _n("Abrigo m", "Chaqueta f", "Parka f", "Casaca f"),
            ("Largo", "Acolchado", "Con Capucha", "Impermeable", "Cruzado"),
            ("Paño", "Cuero", "Nylon", "Lana"),
        ),
        "Sandal": CategoryWords(
            _n("Sandalia f", "Hawaiana f"),
            ("De Tiras", "Plana", "Con Plataforma", "Deportiva", "Con Hebilla"),
            ("Cuero", "Sintético", "Goma"),
        ),
        "Shirt": CategoryWords(
            _n("Camisa f", "Blusa f"),
            ("Manga Larga", "Formal", "A Cuadros", "Oxford", "Slim", "Cuello Mao"),
            ("Lino", "Popelina", "Algodón", "Seda"),
        ),
        "Sneaker": CategoryWords(
            _n("Zapatilla f", "Tenis m"),
            ("Urbana", "Deportiva", "Running", "Caña Alta", "Slip On"),
            ("Lona", "Cuero", "Malla", "Gamuza"),
        ),
        "Bag": CategoryWords(
            _n("Bolso m", "Cartera f", "Morral m"),
            ("De Mano", "Tote", "Bandolera", "Clutch", "Shopper"),
            ("Cuero", "Lona", "Ecocuero"),
        ),
        "Ankle boot": CategoryWords(
            _n("Botín m", "Bota f", "Botineta f"),
            ("Con Taco", "Chelsea", "Con Cordones", "Plataforma", "Caña Corta"),
            ("Cuero", "Gamuza", "Charol"),
        ),
    },
    brands=("Wake", "Nórdika", "Andes Co", "Pampa", "Kuyén", "Austral", "Litoral", "Mapu"),
)

SECOND_STORE = StoreVocabulary(
    name="second",
    categories={
        "T-shirt/top": CategoryWords(
            _n("Remera f", "Polera f", "Playera f", "T-Shirt m", "Tee m"),
            ("Basica", "Manga Corta", "Estampada", "Print", "Regular Fit"),
            ("Cotton", "Algodon"),
        ),
        "Trouser": CategoryWords(
            _n("Jeans m", "Pantalon m", "Pantalones m", "Pants m", "Joggers m"),
            ("Slim Fit", "Straight", "Mom", "Baggy", "Tiro Alto"),
            ("Denim", "Gabardina", "Twill"),
        ),
        "Pullover": CategoryWords(
            _n("Poleròn m", "Poleron m", "Polerones m", "Buzo m", "Jersey m", "Sweater m", "Hoodie m"),
            ("Canguro", "Cuello Alto", "Oversize", "Basico"),
            ("Frisa", "Lana", "Knit"),
        ),
        "Dress": CategoryWords(
            _n("Vestido m", "Vestidos m", "Dress m"),
            ("Midi", "Mini", "Maxi", "Floral", "Wrap"),
            ("Lino", "Jersey", "Crepe"),
        ),
        "Coat": CategoryWords(
            _n("Campera f", "Chaqueta f", "Jacket m", "Parka f", "Tapado m"),
            ("Puffer", "Rompevientos", "Con Capucha", "Trench"),
            ("Nylon", "Cuero", "Paño"),
        ),
        "Sandal": CategoryWords(
            _n("Sandalias f", "Sandalia f", "Ojotas f", "Chanclas f"),
            ("Flat", "De Tiras", "Plataforma"),
            ("Cuero", "Goma"),
        ),
        "Shirt": CategoryWords(
            _n("Camisa f", "Camisas f", "Blusa f", "Shirt m"),
            ("Oxford", "Leñadora", "Manga Larga", "Button Down"),
            ("Lino", "Franela", "Jean"),
        ),
        "Sneaker": CategoryWords(
            _n("Zapatillas f", "Zapatiya f", "Tenis m", "Sneakers m", "Deportivas f"),
            ("Running", "Urbanas", "Low", "High Top"),
            ("Lona", "Mesh", "Cuero"),
        ),
        "Bag": CategoryWords(
            _n("Cartera f", "Bolso m", "Bag m", "Mochila f", "Tote m"),
            ("Crossbody", "Bandolera", "Shopper", "De Hombro"),
            ("Cuero", "Lona", "Vinilo"),
        ),
        "Ankle boot": CategoryWords(
            _n("Botas f", "Bota f", "Botitas f", "Botines m", "Boots m"),
            ("Chelsea", "Texanas", "Con Taco", "Borcego"),
            ("Cuero", "Gamuza"),
        ),
    },
    brands=("Rayo", "Kuntur", "Patagonia Sur", "Selva", "Urbano Tres", "Ñandú"),
    english_colours=0.25,
)

STORES = {s.name: s for s in (MAIN_STORE, SECOND_STORE)}
for _store in STORES.values():
    if set(_store.categories) != set(CLASS_NAMES):  # a store must name every class
        raise RuntimeError(f"store {_store.name!r} does not cover the Fashion-MNIST classes")


def get_store(name: str) -> StoreVocabulary:
    """The store vocabulary named ``name`` (``main`` or ``second``); ValueError otherwise."""
    try:
        return STORES[name]
    except KeyError:
        raise ValueError(f"unknown store {name!r}: expected one of {', '.join(STORES)}") from None


@dataclass(frozen=True)
class Title:
    """A drawn title and its brand (``""`` when the title has none)."""

    text: str
    brand: str


def draw_title(
    rng: np.random.Generator,
    store: StoreVocabulary,
    category: str,
    *,
    colour_masculine: str,
    colour_feminine: str,
    colour_english: str,
) -> Title:
    """One title of ``category`` in ``store``'s words, e.g. ``"Pantalón Wake Wide Leg Gabardina Rojo 1"``.

    Order: noun, optional second noun, optional brand (here or at the end),
    style, optional material, colour (agreeing with the first noun's gender, or
    in English), optional number. Words are title-cased as retail titles are.
    """
    words = store.categories[category]
    first = words.nouns[int(rng.integers(len(words.nouns)))]
    parts = [first.text]
    if len(words.nouns) > 1 and rng.random() < store.second_noun:
        others = [n for n in words.nouns if n.text != first.text]
        parts.append(others[int(rng.integers(len(others)))].text)
    brand = store.brands[int(rng.integers(len(store.brands)))] if rng.random() < store.brand else ""
    brand_first = bool(brand) and rng.random() < 0.5
    if brand_first:
        parts.append(brand)
    parts.append(words.styles[int(rng.integers(len(words.styles)))])
    if rng.random() < store.material:
        parts.append(words.materials[int(rng.integers(len(words.materials)))])
    if rng.random() < store.english_colours:
        parts.append(colour_english.title())
    else:
        parts.append((colour_feminine if first.gender == "f" else colour_masculine).title())
    if brand and not brand_first:
        parts.append(brand)
    if rng.random() < store.number:
        parts.append(str(int(rng.integers(1, 30))))
    return Title(" ".join(parts), brand)
