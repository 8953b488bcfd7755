"""Shared widgets (layout in ``widgets.kv``): the product tile of every result grid.

``widgets.kv`` also defines two dynamic classes: ``ResultsGrid`` (a vertical
ScrollView whose ``grid`` fits as many ``app.tile``-wide columns as it can) and
``ToolButton`` (the kiosk's flat, text-wrapping button).
"""

from __future__ import annotations

from kivy.properties import NumericProperty, ObjectProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout


class ProductTile(ButtonBehavior, BoxLayout):
    """A result: thumbnail texture, title and "colour · price" as rendered-text
    textures (see :class:`vitrina.kiosk_app.textures.TextTextures`); ``item`` is
    the product index (-1 while unused). Its side is ``app.tile`` px."""

    item = NumericProperty(-1)
    texture = ObjectProperty(None, allownone=True)
    title_texture = ObjectProperty(None, allownone=True)
    subtitle_texture = ObjectProperty(None, allownone=True)
