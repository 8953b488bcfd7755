"""The filter bar above the sketch results: category chips, a price range and "in stock only".

Built in Python (its chips depend on the catalog), placed by ``draw.kv``
(``FilterBar:``). Each chip calls the app's search session, which keeps the
shopper's :class:`~vitrina.runtime.filters.SearchFilter` and searches again;
the idle reset clears it for the next shopper. Price ranges come from the
catalog's price quartiles (:func:`price_ranges`, a pure function).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from kivy.metrics import dp, sp
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.scrollview import ScrollView
from kivy.uix.spinner import Spinner
from kivy.uix.togglebutton import ToggleButton

#: A price range: (label, min price or None, max price or None).
PriceRange = tuple[str, float | None, float | None]


def price_ranges(prices: np.ndarray, any_label: str) -> list[PriceRange]:
    """ "Any price" then four ranges cut at the catalog's price quartiles (fewer when prices repeat)."""
    prices = np.asarray(prices, dtype=np.float64)
    ranges: list[PriceRange] = [(any_label, None, None)]
    if prices.size == 0:
        return ranges
    cuts = sorted({float(c) for c in np.percentile(prices, [25, 50, 75])})
    edges = [None, *cuts, None]
    for lo, hi in zip(edges[:-1], edges[1:]):
        if lo is None and hi is not None:
            label = f"≤ ${hi:,.0f}"
        elif hi is None and lo is not None:
            label = f"> ${lo:,.0f}"
        elif lo is not None and hi is not None:
            label = f"${lo:,.0f} – ${hi:,.0f}"
        else:
            continue
        # ranges do not overlap: (lo, hi], a product on a cut belongs to the lower range
        ranges.append((label, None if lo is None else float(np.nextafter(lo, np.inf)), hi))
    return ranges


class FilterBar(BoxLayout):
    """One row: scrollable category chips, the price range spinner and the in-stock toggle.

    :meth:`populate` fills it for a catalog; the chips call ``on_change`` with
    (categories, price range, in stock only) whenever the shopper changes one.
    """

    def __init__(self, **kwargs: object):
        kwargs.setdefault("size_hint_y", None)
        kwargs.setdefault("height", dp(44))
        kwargs.setdefault("spacing", dp(6))
        super().__init__(**kwargs)
        self.on_change: Callable[[tuple[str, ...], PriceRange, bool], None] = lambda *_: None
        self.chips: dict[str, ToggleButton] = {}
        self.ranges: list[PriceRange] = []
        scroll = ScrollView(do_scroll_y=False, bar_width=dp(3))
        self._chip_row = BoxLayout(size_hint_x=None, spacing=dp(6))
        self._chip_row.bind(minimum_width=self._chip_row.setter("width"))
        scroll.add_widget(self._chip_row)
        self.add_widget(scroll)
        self.price = Spinner(size_hint_x=None, width=dp(150), font_size=sp(14))
        self.price.bind(text=lambda *_: self._changed())
        self.add_widget(self.price)
        self.in_stock = ToggleButton(size_hint_x=None, width=dp(120), font_size=sp(14))
        self.in_stock.bind(state=lambda *_: self._changed())
        self.add_widget(self.in_stock)
        self._quiet = False

    def populate(self, categories: Sequence[str], ranges: list[PriceRange], in_stock_label: str) -> None:
        """Chips for ``categories``, the price ``ranges`` (first: any price), the in-stock label; all cleared."""
        self._quiet = True
        self._chip_row.clear_widgets()
        self.chips = {}
        for name in categories:
            chip = ToggleButton(text=name, size_hint_x=None, font_size=sp(14))
            chip.width = (
                max(dp(64), chip.texture_size[0] + dp(24)) if chip.texture_size[0] else dp(12) * len(name) + dp(24)
            )
            chip.bind(state=lambda *_: self._changed())
            self._chip_row.add_widget(chip)
            self.chips[name] = chip
        self.ranges = ranges
        self.price.values = [label for label, _, _ in ranges]
        self.price.text = ranges[0][0] if ranges else ""
        self.in_stock.text = in_stock_label
        self.in_stock.state = "normal"
        self._quiet = False

    def clear(self) -> None:
        """Every chip off, any price, not only in stock (no search is triggered)."""
        self._quiet = True
        for chip in self.chips.values():
            chip.state = "normal"
        if self.ranges:
            self.price.text = self.ranges[0][0]
        self.in_stock.state = "normal"
        self._quiet = False

    def selection(self) -> tuple[tuple[str, ...], PriceRange, bool]:
        """(chosen categories, the chosen price range, in stock only)."""
        cats = tuple(name for name, chip in self.chips.items() if chip.state == "down")
        chosen = next((r for r in self.ranges if r[0] == self.price.text), (self.price.text, None, None))
        return cats, chosen, self.in_stock.state == "down"

    def _changed(self) -> None:
        if not self._quiet:
            self.on_change(*self.selection())
