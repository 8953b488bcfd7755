"""Product detail (layout in ``detail.kv``): image, title, colour and price, and similar products."""

from __future__ import annotations

from kivy.properties import ObjectProperty, StringProperty
from kivy.uix.screenmanager import Screen


class DetailScreen(Screen):
    """One product: ``texture`` (its thumbnail), ``title``, ``subtitle``
    ("colour · price"); ``similar_grid`` is the GridLayout its similar products
    are shown in."""

    similar_grid = ObjectProperty(None)
    texture = ObjectProperty(None, allownone=True)
    title = StringProperty("")
    subtitle = StringProperty("")
