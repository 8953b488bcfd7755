"""Search filters through ProductSearch and the CLI, on a real tiny bundle: each filter keeps
exactly what it says, applied during the scan (the filtered top-k is the top-k of the products
the filter keeps), and a filter matching nothing returns no products and says why."""

import json
import shutil

import numpy as np
import pytest

from vitrina.runtime.bundle import Bundle
from vitrina.runtime.cli import main
from vitrina.runtime.filters import SearchFilter
from vitrina.runtime.product_search import ProductSearch
from vitrina.runtime.rasterize import load_strokes_json
from vitrina.runtime.search import CAPPED_BY_FILTER, MAX_K


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path):
    """A private copy: the update log lives beside the bundle."""
    return shutil.copytree(tiny_bundle, tmp_path / "b")


@pytest.fixture()
def engine(bundle_copy):
    with ProductSearch(Bundle.open(bundle_copy, verify=False)) as e:
        yield e


def _filters(items):
    cats = sorted({i.category for i in items})
    colors = sorted({i.color for i in items})
    prices = np.array([i.price for i in items])
    lo, hi = np.percentile(prices, [30, 60])
    ids = [i.id for i in items]
    return {
        "category": (SearchFilter(categories=(cats[0],)), lambda m: m.category == cats[0]),
        "categories": (SearchFilter(categories=(cats[1], cats[2])), lambda m: m.category in (cats[1], cats[2])),
        "color": (SearchFilter(colors=(colors[0].upper(),)), lambda m: m.color == colors[0]),
        "price": (SearchFilter(min_price=float(lo), max_price=float(hi)), lambda m: lo <= m.price <= hi),
        "allow": (SearchFilter(allow_ids=tuple(ids[::7])), lambda m: m.id in set(ids[::7])),
        "deny": (SearchFilter(deny_ids=tuple(ids[::2])), lambda m: m.id not in set(ids[::2])),
        "in_stock": (SearchFilter(in_stock=True), lambda m: m.in_stock),
    }


@pytest.mark.parametrize("name", ["category", "categories", "color", "price", "allow", "deny", "in_stock"])
def test_each_filter_keeps_the_best_matching_products(engine, strokes_file, name):
    items = engine.catalog.items
    engine.set_in_stock(items[3].id, False)  # so "in stock" has something to drop
    f, keeps = _filters(items)[name]
    strokes = load_strokes_json(strokes_file)
    result = engine.by_strokes(strokes, k=12, filters=f)
    assert result.matches and all(keeps(m) for m in result.matches)
    # during the scan, not after: the same as ranking everything, then keeping the filter's products
    everything = engine.by_strokes(strokes, k=MAX_K).matches
    expected = [m.id for m in everything if keeps(m)][:12]
    assert [m.id for m in result.matches] == expected
    for query in (lambda: engine.similar(5, k=12, filters=f), lambda: engine.by_text(items[0].title, k=50, filters=f)):
        assert all(keeps(m) for m in query().matches)


def test_filter_matching_nothing_is_empty_and_says_why(engine, strokes_file):
    strokes = load_strokes_json(strokes_file)
    cat = engine.catalog.items[0].category
    result = engine.by_strokes(strokes, k=5, filters=SearchFilter(categories=(cat,), max_price=0.0))
    assert result.matches == () and result.capped_by == CAPPED_BY_FILTER and result.cap == 0
    assert result.cap_note() == f"no product matches price <= 0 among products with category {cat}"
    unknown = engine.by_text(cat, filters=SearchFilter(categories=("Spaceships",)))
    assert unknown.matches == () and "no category named 'Spaceships'" in unknown.cap_note()
    everyone = SearchFilter(allow_ids=())
    assert engine.similar(1, filters=everyone).matches == ()


def test_few_matches_say_the_filter_capped_them(engine, strokes_file):
    ids = tuple(i.id for i in engine.catalog.items[:3])
    result = engine.by_strokes(load_strokes_json(strokes_file), k=10, filters=SearchFilter(allow_ids=ids))
    assert {m.id for m in result.matches} == set(ids)
    assert result.capped_by == CAPPED_BY_FILTER and result.cap == 3 and "only 3 products match" in result.cap_note()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"min_price": -1.0}, "min_price must be a finite number >= 0"),
        ({"max_price": float("nan")}, "max_price must be a finite number >= 0"),
        ({"min_price": 5.0, "max_price": 1.0}, "is above max_price"),
        ({"categories": ("",)}, "an empty name"),
        ({"in_stock": "yes"}, "in_stock must be True or False"),
    ],
)
def test_bad_filters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SearchFilter(**kwargs)


def _cli(bundle, strokes_file, capsys, *flags):
    code = main(["search", "--bundle", str(bundle), "--strokes", str(strokes_file), "-k", "8", "--json", *flags])
    return code, capsys.readouterr()


def test_each_filter_through_the_cli(bundle_copy, strokes_file, capsys):
    items = Bundle.open(bundle_copy, verify=False).items
    cat, color = items[0].category, items[1].color
    prices = sorted(i.price for i in items)
    lo, hi = prices[len(prices) // 4], prices[len(prices) // 2]
    cases = [
        (["--category", cat], lambda r: r["category"] == cat),
        (["--color", color], lambda r: r["color"] == color),
        (["--min-price", str(lo)], lambda r: r["price"] >= lo),
        (["--max-price", str(hi)], lambda r: r["price"] <= hi),
        (["--in-stock"], lambda r: r["in_stock"]),
    ]
    for flags, keeps in cases:
        code, out = _cli(bundle_copy, strokes_file, capsys, *flags)
        results = json.loads(out.out)["results"]
        assert code == 0 and results and all(keeps(r) for r in results), flags
    code, out = _cli(bundle_copy, strokes_file, capsys, "--category", cat, "--max-price", "0")
    body = json.loads(out.out)
    assert code == 0 and body["results"] == [] and "no product matches price <= 0" in body["note"]
    code, out = _cli(bundle_copy, strokes_file, capsys, "--min-price", "9", "--max-price", "1")
    assert code == 2 and "is above max_price" in out.err
