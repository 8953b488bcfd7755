"""The kiosk's filter bar rendering real frames offscreen: category chips, the price range and
"in stock only" narrow the sketch results during the search; a filter that leaves nothing says
why; the admin marks a product out of stock; the idle reset clears the chips."""

import shutil

import pytest

from vitrina.kiosk_app.main import prepare_kivy

prepare_kivy(windowed=True, headless=True, size=(1280, 800))  # before any kivy import

from vitrina.kiosk_app.app import KioskApp  # noqa: E402
from vitrina.kiosk_app.config import KioskConfig, hash_pin  # noqa: E402
from vitrina.kiosk_app.geometry import fit_strokes  # noqa: E402
from vitrina.kiosk_app.screens.filter_bar import price_ranges  # noqa: E402
from vitrina.kiosk_app.tools.replay import draw_strokes, frames, wait_for  # noqa: E402

PIN = "2468"


@pytest.fixture()
def kiosk(tiny_bundle, tmp_path):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "b")  # the update log lives beside the bundle
    app = KioskApp(KioskConfig(admin_pin_hash=hash_pin(PIN), debounce_ms=50, results=12), bundle, lock_down=True)
    app.start_in_window()
    frames(3)
    yield app
    app.close_in_window()


def searched(app, action):
    """Run ``action`` and wait until the sketch search it starts is shown."""
    searches = app.searches
    before = searches.generation("sketch")
    action()
    assert wait_for(
        lambda: (
            searches.generation("sketch") > before and searches.shown.get("sketch") == searches.generation("sketch")
        ),
        timeout=15,
    )
    frames(2)
    return app.results


def draw(app):
    app.start_session()
    frames(3)
    canvas = app.screen("draw").canvas_widget
    bundle = app.engine.bundle
    strokes = bundle.eval_strokes()[0][1]
    return searched(app, lambda: draw_strokes(fit_strokes(strokes, canvas.width, canvas.height, canvas.center)))


def test_category_chips_price_range_and_stock_narrow_the_results(kiosk):
    everything = draw(kiosk)
    assert len(everything) == 12
    bar = kiosk.screen("draw").filter_bar
    assert set(bar.chips) == set(kiosk.engine.bundle.categories) and bar.price.text == "Cualquier precio"
    # a chip: every result of that category, the best of them first
    wanted = everything[-1]["category"]
    results = searched(kiosk, lambda: setattr(bar.chips[wanted], "state", "down"))
    assert results and all(m["category"] == wanted for m in results)
    assert [m["id"] for m in everything if m["category"] == wanted] == [m["id"] for m in results][
        : sum(m["category"] == wanted for m in everything)
    ]
    assert len(kiosk.screen("draw").results_grid.children) == len(results)
    # a second chip widens, the price range narrows
    other = next(c for c in bar.chips if c != wanted)
    both = searched(kiosk, lambda: setattr(bar.chips[other], "state", "down"))
    assert {m["category"] for m in both} <= {wanted, other}
    label, lo, hi = bar.ranges[1]
    cheap = searched(kiosk, lambda: setattr(bar.price, "text", label))
    assert cheap and all(m["price"] <= hi for m in cheap) and lo is None
    # in stock only: a product the admin marked out of stock is left out
    gone = cheap[0]["id"]
    kiosk.show("admin")
    kiosk.admin.unlock(PIN)
    assert kiosk.admin.mark_out_of_stock(gone) and gone in kiosk.admin_message
    assert not kiosk.admin.mark_out_of_stock("NO-SUCH-ID") and "NO-SUCH-ID" in kiosk.admin_message
    kiosk.show("draw")
    in_stock = searched(kiosk, lambda: setattr(bar.in_stock, "state", "down"))
    assert gone not in {m["id"] for m in in_stock} and all(m["in_stock"] for m in in_stock)
    # the idle reset clears the chips for the next shopper
    kiosk.reset_session()
    frames(2)
    assert all(c.state == "normal" for c in bar.chips.values()) and bar.in_stock.state == "normal"
    assert kiosk.searches.filters.is_open and bar.price.text == bar.ranges[0][0]


def test_a_filter_matching_nothing_says_why(kiosk):
    draw(kiosk)
    category = kiosk.engine.bundle.categories[0]
    results = searched(kiosk, lambda: kiosk.searches.set_filter((category,), ("free", None, 0.0), False))
    assert results == [] and kiosk.screen("draw").results_grid.children == []
    assert kiosk.status == f"no product matches price <= 0 among products with category {category}"


def test_price_ranges_cut_at_quartiles_without_overlap():
    ranges = price_ranges([10, 20, 30, 40, 50, 60, 70, 80], "Any")
    assert ranges[0] == ("Any", None, None) and len(ranges) == 5
    assert ranges[1][1:] == (None, 27.5) and ranges[-1][2] is None and ranges[-1][1] > 62.5
    assert price_ranges([], "Any") == [("Any", None, None)]
    assert len(price_ranges([5, 5, 5, 5], "Any")) == 3  # repeated prices: fewer ranges
