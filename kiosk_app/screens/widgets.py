"""Shared widgets (layout in ``widgets.kv``): the product tile of every result grid.

``widgets.kv`` also defines two dynamic classes: ``ResultsGrid`` (a vertical
ScrollView whose ``grid`` fits as many ``app.tile``-wide columns as it can) and
``ToolButton`` (the kiosk's flat, text-wrapping button).
"""

from __future__ import annotations

from typing import Any

from kivy.metrics import dp
from kivy.properties import ListProperty, NumericProperty, ObjectProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.widget import Widget

from ..geometry import fit_box

#: Tile padding, gap between its rows, and the heights of its title and "colour · price" rows, dp.
TILE_PADDING_DP = 4
TILE_SPACING_DP = 2
TITLE_HEIGHT_DP = 22
SUBTITLE_HEIGHT_DP = 20


class ProductTile(ButtonBehavior, Widget):
    """A result: thumbnail texture, title and "colour · price" as rendered-text
    textures (see :class:`vitrina.kiosk_app.textures.TextTextures`); ``item`` is
    the product index (-1 while unused). Its side is ``app.tile`` px.

    The three textures are drawn as rectangles of the tile's own canvas
    (``thumb_rect``, ``title_rect``, ``subtitle_rect``: x, y, width, height px),
    not as three Image widgets: on a software renderer (llvmpipe) a grid of
    20 tiles with Image children made each frame ~10 ms slower, drawn while the
    next stroke is drawn and holding the GIL the search thread needs.
    """

    item = NumericProperty(-1)
    texture = ObjectProperty(None, allownone=True)
    title_texture = ObjectProperty(None, allownone=True)
    subtitle_texture = ObjectProperty(None, allownone=True)
    thumb_rect = ListProperty([0.0, 0.0, 0.0, 0.0])
    title_rect = ListProperty([0.0, 0.0, 0.0, 0.0])
    subtitle_rect = ListProperty([0.0, 0.0, 0.0, 0.0])

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.bind(
            pos=self._place,
            size=self._place,
            texture=self._place,
            title_texture=self._place,
            subtitle_texture=self._place,
        )
        self._place()

    def _place(self, *_args: Any) -> None:
        """Lay the textures out as the vertical BoxLayout the tile was (rows from the bottom,
        spare height above): "colour · price" and the title (scaled down to fit, never up),
        then the thumbnail fitted in a square as wide as the tile's inside."""
        pad, gap = dp(TILE_PADDING_DP), dp(TILE_SPACING_DP)
        inner = max(0.0, self.width - 2 * pad)
        subtitle_y = self.y + pad
        title_y = subtitle_y + dp(SUBTITLE_HEIGHT_DP) + gap
        thumb_y = title_y + dp(TITLE_HEIGHT_DP) + gap
        self.thumb_rect = fit_box(_size(self.texture), (self.x + pad, thumb_y, inner, inner))
        self.title_rect = fit_box(
            _size(self.title_texture), (self.x + pad, title_y, inner, dp(TITLE_HEIGHT_DP)), upscale=False
        )
        self.subtitle_rect = fit_box(
            _size(self.subtitle_texture), (self.x + pad, subtitle_y, inner, dp(SUBTITLE_HEIGHT_DP)), upscale=False
        )


def _size(texture: Any) -> tuple[float, float] | None:
    """A texture's (width, height) px, or None without one."""
    return None if texture is None else (float(texture.width), float(texture.height))
