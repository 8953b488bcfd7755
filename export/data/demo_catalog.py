"""``vitrina demo-catalog``: a real catalog folder built from Fashion-MNIST.

Each product is one Fashion-MNIST photo, tinted with one colour of a named
palette (the tint is synthetic: the source photos are grayscale) and drawn on
white. Titles are Spanish-first and written as retail titles are ("Polera
Camiseta Básica Manga Larga Negra Wake 2": nouns, style and material words, the
colour, brand words and numbers; see ``titles.py``); the ``brand`` column names
each title's brand words so export keeps them out of the text vocabulary.
``aliases.json`` holds the English aliases. The dataset's own train/test split
is kept in the ``split`` column.

Two stores (``--store``):

* ``main`` (default): train and test products, the main store's title words;
* ``second``: the generalisation store, test-split products only, with its own
  title vocabulary (other synonyms, English words, plurals, misspellings),
  its own colours, prices and ids (``S2-…``).

Outfit photos: with ``outfits`` (:class:`~.outfit_photos.OutfitOptions`), a share
of the products gets a catalog image with 1-4 other products of its split around
it (:mod:`.outfit_photos`); the ground truth goes to ``outfits.json`` and the sold
products' photos on white to ``packshots/``, for the measurements only. Without
it, every product stands alone on white.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm  # a core dependency of vitrina

from .fashion_mnist import CLASS_NAMES, DEFAULT_DIR, load_split
from .outfit_photos import PACKSHOT_DIR, TRUTH_NAME, OutfitComposer, OutfitOptions, truth_entry
from .titles import draw_title, get_store

#: Stores ``write_demo_catalog`` writes: name → (splits it takes products from, id prefix).
STORE_LAYOUT = {"main": (("train", "test"), "FM"), "second": (("test",), "S2")}
#: Seed offset of the second store: its colours and prices differ from the main store's.
_SECOND_STORE_SEED = 1_000_003


@dataclass(frozen=True)
class Colour:
    """A palette colour: Spanish masculine/feminine names, English name, RGB 0-255."""

    masculine: str
    feminine: str
    english: str
    rgb: tuple[int, int, int]


PALETTE = (
    Colour("negro", "negra", "black", (35, 35, 38)),
    Colour("gris", "gris", "grey", (128, 128, 132)),
    Colour("azul marino", "azul marino", "navy", (25, 45, 110)),
    Colour("celeste", "celeste", "light blue", (95, 170, 230)),
    Colour("rojo", "roja", "red", (200, 30, 45)),
    Colour("rosado", "rosada", "pink", (235, 120, 170)),
    Colour("verde", "verde", "green", (40, 140, 65)),
    Colour("amarillo", "amarilla", "yellow", (235, 200, 40)),
    Colour("naranjo", "naranja", "orange", (240, 130, 30)),
    Colour("morado", "morada", "purple", (120, 50, 150)),
    Colour("café", "café", "brown", (120, 75, 40)),
    Colour("beige", "beige", "beige", (205, 185, 145)),
)


@dataclass(frozen=True)
class CategoryNames:
    """Spanish noun and grammatical gender ("m"/"f"), style words, English aliases, price range."""

    noun: str
    gender: str
    styles: tuple[str, ...]
    english: tuple[str, ...]
    price_range: tuple[int, int]


CATEGORIES: dict[str, CategoryNames] = {
    "T-shirt/top": CategoryNames(
        "Polera",
        "f",
        ("manga corta", "básica", "estampada", "cuello redondo"),
        ("t-shirt", "tee", "top"),
        (5990, 14990),
    ),
    "Trouser": CategoryNames(
        "Pantalón", "m", ("recto", "slim", "de tela", "cargo"), ("trousers", "pants"), (12990, 29990)
    ),
    "Pullover": CategoryNames(
        "Suéter",
        "m",
        ("tejido", "cuello alto", "de lana", "oversize"),
        ("pullover", "sweater", "jumper"),
        (14990, 34990),
    ),
    "Dress": CategoryNames("Vestido", "m", ("largo", "corto", "de verano", "casual"), ("dress",), (15990, 39990)),
    "Coat": CategoryNames(
        "Abrigo", "m", ("largo", "acolchado", "de paño", "con capucha"), ("coat", "jacket"), (29990, 79990)
    ),
    "Sandal": CategoryNames(
        "Sandalia", "f", ("de tiras", "plana", "con plataforma", "deportiva"), ("sandal", "sandals"), (9990, 24990)
    ),
    "Shirt": CategoryNames(
        "Camisa", "f", ("manga larga", "de lino", "formal", "a cuadros"), ("shirt", "blouse"), (12990, 29990)
    ),
    "Sneaker": CategoryNames(
        "Zapatilla",
        "f",
        ("urbana", "deportiva", "de lona", "running"),
        ("sneaker", "sneakers", "trainers"),
        (19990, 59990),
    ),
    "Bag": CategoryNames(
        "Bolso", "m", ("de mano", "tote", "bandolera", "de cuero"), ("bag", "handbag", "purse"), (12990, 49990)
    ),
    "Ankle boot": CategoryNames(
        "Botín",
        "m",
        ("de cuero", "con taco", "chelsea", "con cordones"),
        ("ankle boot", "boot", "boots"),
        (24990, 69990),
    ),
}
assert set(CATEGORIES) == set(CLASS_NAMES)


def tint(image: np.ndarray, rgb: tuple[int, int, int]) -> np.ndarray:
    """Colour a Fashion-MNIST photo (h, w) uint8, product bright on black, as
    a product on white: returns (h, w, 3) uint8. The photo's intensity keeps the
    shading (folds, seams) inside the product."""
    v = image.astype(np.float32)[..., None] / 255.0
    shade = 0.55 + 0.45 * v
    out = 255.0 * (1.0 - v) + v * np.asarray(rgb, np.float32) * shade
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def product_title(category: str, style: str, colour: Colour) -> str:
    """Short Spanish title with gender agreement, e.g. ``"Zapatilla urbana roja"``
    (the demo catalog's titles are richer: :func:`~.titles.draw_title`)."""
    names = CATEGORIES[category]
    adjective = colour.feminine if names.gender == "f" else colour.masculine
    return f"{names.noun} {style} {adjective}"


def alias_table() -> dict[str, object]:
    """English aliases of the Spanish category nouns and colour names."""
    return {
        "categories": {cat: {"es": n.noun, "en": list(n.english)} for cat, n in CATEGORIES.items()},
        "colors": {c.masculine: {"es": sorted({c.masculine, c.feminine}), "en": [c.english]} for c in PALETTE},
    }


def write_demo_catalog(
    out: Path,
    source: Path = DEFAULT_DIR,
    *,
    limit_train: int | None = None,
    limit_test: int | None = None,
    seed: int = 7,
    store: str = "main",
    outfits: OutfitOptions | None = None,
) -> Path:
    """Write ``out/catalog.csv``, ``out/aliases.json`` and ``out/images/…png``
    (with ``outfits``: also ``out/outfits.json`` and ``out/packshots/…png``).

    Args:
        limit_train, limit_test: keep only the first N products of each split
            (the dataset is shuffled, so a prefix is roughly class-balanced);
            the ``second`` store takes test products only and ignores ``limit_train``.
        seed: colours, prices and titles follow from it.
        store: ``main`` or ``second`` (see the module docstring).
        outfits: how outfit photos are composed (their own random stream: colours,
            prices and titles do not change with it); None: every product on white.

    Returns:
        the path of catalog.csv.
    """
    out = Path(out)
    vocabulary = get_store(store)
    splits, id_prefix = STORE_LAYOUT[store]
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed if store == "main" else seed + _SECOND_STORE_SEED)
    # Titles draw from their own stream, so richer titles leave colours and prices (and so
    # the images and every cache keyed on them) as they were.
    title_rng = np.random.default_rng([seed, 1 if store == "main" else 2])
    scene_rng = np.random.default_rng([seed, 3 if store == "main" else 4])
    compose = OutfitComposer(outfits) if outfits is not None and outfits.share > 0 else None
    truth: dict[str, object] = {}
    rows = []
    for split in splits:
        limit = limit_train if split == "train" else limit_test
        data = load_split(split, source)
        n = len(data.images) if limit is None else min(limit, len(data.images))
        prefix = "tr" if split == "train" else "te"
        for i in tqdm(range(n), desc=f"demo catalog ({store}, {split})", unit="img", mininterval=1.0):
            category = CLASS_NAMES[int(data.labels[i])]
            names = CATEGORIES[category]
            colour = PALETTE[int(rng.integers(len(PALETTE)))]
            rng.integers(len(names.styles))  # the short titles' style draw, kept so prices stay as they were
            low, high = names.price_range
            price = int(rng.integers(low // 1000, high // 1000 + 1)) * 1000 - 10
            title = draw_title(
                title_rng,
                vocabulary,
                category,
                colour_masculine=colour.masculine,
                colour_feminine=colour.feminine,
                colour_english=colour.english,
            )
            rel = f"images/{prefix}{i:05d}.png"
            image = tint(data.images[i], colour.rgb)
            if compose is not None:
                packshot = image
                image = compose(image, category=category, split=split, rng=scene_rng)
                if compose.last is not None:
                    (out / PACKSHOT_DIR).mkdir(exist_ok=True)
                    packshot_rel = f"{PACKSHOT_DIR}/{prefix}{i:05d}.png"
                    Image.fromarray(packshot).save(out / packshot_rel, compress_level=1)
                    truth[rel] = truth_entry(compose.last, packshot_rel)
            Image.fromarray(image).save(out / rel, compress_level=1)
            rows.append(
                [
                    f"{id_prefix}-{prefix.upper()}-{i:05d}",
                    title.text,
                    category,
                    colour.masculine,
                    price,
                    rel,
                    split,
                    title.brand,
                ]
            )
    csv_path = out / "catalog.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "title", "category", "color", "price", "image", "split", "brand"])
        writer.writerows(rows)
    if compose is not None:
        (out / TRUTH_NAME).write_text(json.dumps(truth, ensure_ascii=False), encoding="utf-8")
    (out / "aliases.json").write_text(json.dumps(alias_table(), ensure_ascii=False, indent=2), encoding="utf-8")
    return csv_path
