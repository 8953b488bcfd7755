"""Draw & search, the main screen (layout in ``draw.kv``): the canvas with its
tools, and results refreshed while drawing. Landscape: canvas left, results
right; portrait (phones): canvas on top."""

from __future__ import annotations

from kivy.properties import ObjectProperty
from kivy.uix.screenmanager import Screen

from ..drawing import DrawingCanvas  # noqa: F401 - registers the kv class name
from .filter_bar import FilterBar  # noqa: F401 - registers the kv class name


class DrawScreen(Screen):
    """The drawing screen. ``canvas_widget``: the :class:`DrawingCanvas`;
    ``results_grid``: the GridLayout the sketch results are shown in;
    ``filter_bar``: the :class:`FilterBar` (category chips, price range, in stock)."""

    canvas_widget = ObjectProperty(None)
    results_grid = ObjectProperty(None)
    filter_bar = ObjectProperty(None)
