"""Draw & search, the main screen (layout in ``draw.kv``): the canvas with its
tools, and results refreshed while drawing. Landscape: canvas left, results
right; portrait (phones): canvas on top."""

from __future__ import annotations

from collections.abc import Sequence

from kivy.properties import ListProperty, ObjectProperty, StringProperty
from kivy.uix.button import Button
from kivy.uix.screenmanager import Screen

from ..drawing import DrawingCanvas  # noqa: F401 - registers the kv class name
from .filter_bar import FilterBar  # noqa: F401 - registers the kv class name


class ColorSwatch(Button):
    """One palette colour: ``name`` (the catalog's colour name) and ``rgb`` (0-1)."""

    name = StringProperty("")
    rgb = ListProperty([0.0, 0.0, 0.0])


class DrawScreen(Screen):
    """The drawing screen. ``canvas_widget``: the :class:`DrawingCanvas`;
    ``results_grid``: the GridLayout the sketch results are shown in;
    ``filter_bar``: the :class:`FilterBar` (category chips, price range, in stock);
    ``palette_box``: the row of :class:`ColorSwatch` (the catalog's colour families);
    ``ink_name``: the colour chosen."""

    canvas_widget = ObjectProperty(None)
    results_grid = ObjectProperty(None)
    filter_bar = ObjectProperty(None)
    palette_box = ObjectProperty(None)
    ink_name = StringProperty("")

    def show_palette(self, colors: Sequence[tuple[str, tuple[float, float, float]]]) -> None:
        """Offer ``colors`` ((name, RGB 0-1), black first) as swatches; the first is chosen."""
        self.palette_box.clear_widgets()
        for name, rgb in colors:
            swatch = ColorSwatch(name=name, rgb=list(rgb), background_normal="", background_color=(*rgb, 1))
            swatch.bind(on_release=lambda s: self.choose_color(s.name))
            self.palette_box.add_widget(swatch)
        if colors:
            self.choose_color(colors[0][0])

    def swatches(self) -> list[ColorSwatch]:
        """The palette's swatches, in palette order."""
        return list(reversed(self.palette_box.children))

    def choose_color(self, name: str) -> None:
        """Draw in palette colour ``name`` (the eraser goes back to the pen)."""
        for swatch in self.swatches():
            chosen = swatch.name == name
            swatch.opacity = 1.0 if chosen else 0.5
            if chosen:
                self.canvas_widget.ink = list(swatch.rgb)
                self.ink_name = name
        self.canvas_widget.erasing = False

    def choose_tool(self, tool: str) -> None:
        """``brush`` (lines) or ``fill`` (filled shapes); the eraser goes back to the pen."""
        self.canvas_widget.tool = tool
        self.canvas_widget.erasing = False
