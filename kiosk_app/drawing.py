"""The drawing canvas: strokes with brush size and colour, brush and fill tools, eraser, undo/redo/clear.

Each stroke keeps its canvas instructions in one InstructionGroup, so undo,
redo and the eraser remove or restore exactly that stroke. Per-touch state
lives in ``touch.ud``. ``on_stroke_move`` fires as a finger draws (the app
searches at most every ``live_search_ms`` then), ``on_stroke_end`` when it
lifts, and ``on_changed`` after any edit (undo, redo, erase, clear): the app
searches at once on both.

The ``fill`` tool draws a closed shape filled with the ink colour (tesselated
when the finger lifts; an outline while drawing). :meth:`DrawingCanvas.search_strokes`
gives black brush strokes as plain point arrays (exactly as before colour
existed) and colour or filled strokes as :class:`~vitrina.runtime.rasterize.PenStroke`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kivy.graphics import Color, InstructionGroup, Line, Mesh, Rectangle
from kivy.graphics.tesselator import TYPE_POLYGONS, WINDING_ODD, Tesselator
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, OptionProperty
from kivy.uix.widget import Widget

from .geometry import interpolate, pen_strokes, stroke_hit

#: Drawing tools: ``brush`` draws lines, ``fill`` draws a filled closed shape.
TOOLS = ("brush", "fill")


@dataclass
class Stroke:
    """One drawn stroke: flat widget-local points [x0, y0, ...], RGB colour (0-1), width (px), filled or not."""

    points: list[float]
    rgb: tuple[float, float, float]
    width: float
    group: InstructionGroup
    line: Line
    fill: bool = False


class DrawingCanvas(Widget):
    """White paper; draw with one finger. Properties bound by the kv file:
    ``brush_width`` (px), ``ink`` (RGB 0-1), ``tool`` (``brush`` or ``fill``), ``erasing``;
    read-only ``can_undo``/``can_redo``/``is_empty``."""

    brush_width = NumericProperty(6.0)
    ink = ListProperty([0.08, 0.08, 0.09])
    tool = OptionProperty("brush", options=TOOLS)
    erasing = BooleanProperty(False)
    can_undo = BooleanProperty(False)
    can_redo = BooleanProperty(False)
    is_empty = BooleanProperty(True)

    __events__ = ("on_stroke_move", "on_stroke_end", "on_changed")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._strokes: list[Stroke] = []
        self._drawing: list[Stroke] = []  # strokes whose finger is still down
        self._history: list[tuple[str, list[Stroke]]] = []  # ("add"|"remove", strokes) for undo
        self._redo: list[tuple[str, list[Stroke]]] = []
        with self.canvas.before:
            Color(1, 1, 1)
            self._paper = Rectangle(pos=self.pos, size=self.size)
        self.bind(pos=self._update_paper, size=self._update_paper)

    def _update_paper(self, *_):
        self._paper.pos, self._paper.size = self.pos, self.size
        self.canvas.clear()
        for stroke in self._strokes:
            self.canvas.add(stroke.group)

    # --- touch --------------------------------------------------------------
    def on_touch_down(self, touch):
        """A finger on the paper starts a stroke (or, erasing, removes the strokes under it)."""
        if not self.collide_point(*touch.pos) or touch.is_mouse_scrolling:
            return False
        touch.grab(self)
        if self.erasing:
            touch.ud["vitrina_erase"] = True
            self._erase_at(touch.x, touch.y)
            return True
        group = InstructionGroup()
        group.add(Color(*self.ink))
        fill = self.tool == "fill"
        line = Line(points=[touch.x, touch.y], width=self.brush_width / 2.0, cap="round", joint="round", close=fill)
        group.add(line)
        stroke = Stroke([touch.x, touch.y], tuple(self.ink), self.brush_width, group, line, fill)
        self.canvas.add(group)
        touch.ud["vitrina_stroke"] = stroke
        self._drawing.append(stroke)
        return True

    def on_touch_move(self, touch):
        """Extend the finger's stroke, interpolating points at most half a brush width apart (clamped to the paper)."""
        if touch.grab_current is not self:
            return False
        if touch.ud.get("vitrina_erase"):
            self._erase_at(touch.x, touch.y)
            return True
        stroke: Stroke | None = touch.ud.get("vitrina_stroke")
        if stroke is not None:
            x, y = self._clamp(touch.x, touch.y)
            for px, py in interpolate(
                stroke.points[-2], stroke.points[-1], x, y, spacing=max(2.0, self.brush_width / 2)
            ):
                stroke.points += [px, py]
            stroke.line.points = stroke.points
            self.dispatch("on_stroke_move")
        return True

    def on_touch_up(self, touch):
        """The finger lifts: keep its stroke (undoable) and fire ``on_stroke_end``."""
        if touch.grab_current is not self:
            return False
        touch.ungrab(self)
        stroke: Stroke | None = touch.ud.pop("vitrina_stroke", None)
        if touch.ud.pop("vitrina_erase", False):
            return True
        if stroke is not None:
            if stroke in self._drawing:
                self._drawing.remove(stroke)
            if stroke.fill:
                _add_fill(stroke)
            self._strokes.append(stroke)
            self._record(("add", [stroke]))
            self.dispatch("on_stroke_end")
        return True

    def _clamp(self, x: float, y: float) -> tuple[float, float]:
        return min(max(x, self.x), self.right), min(max(y, self.y), self.top)

    def _erase_at(self, x: float, y: float) -> None:
        hit = [s for s in self._strokes if stroke_hit(s.points, x, y, radius=max(12.0, self.brush_width * 2))]
        if hit:
            for stroke in hit:
                self._strokes.remove(stroke)
                self.canvas.remove(stroke.group)
            self._record(("remove", hit))
            self.dispatch("on_changed")

    # --- history -------------------------------------------------------------
    def _record(self, entry: tuple[str, list[Stroke]]) -> None:
        self._history.append(entry)
        self._redo.clear()
        self._refresh_flags()

    def _refresh_flags(self) -> None:
        self.can_undo, self.can_redo, self.is_empty = bool(self._history), bool(self._redo), not self._strokes

    def _apply(self, action: str, strokes: list[Stroke]) -> None:
        for stroke in strokes:
            if action == "add":
                self._strokes.append(stroke)
                self.canvas.add(stroke.group)
            else:
                self._strokes.remove(stroke)
                self.canvas.remove(stroke.group)

    def undo(self) -> None:
        """Undo the last edit (a stroke, an erase or a clear); fires ``on_changed``."""
        if not self._history:
            return
        action, strokes = self._history.pop()
        self._apply("remove" if action == "add" else "add", strokes)
        self._redo.append((action, strokes))
        self._refresh_flags()
        self.dispatch("on_changed")

    def redo(self) -> None:
        """Redo the last undone edit; fires ``on_changed``."""
        if not self._redo:
            return
        action, strokes = self._redo.pop()
        self._apply(action, strokes)
        self._history.append((action, strokes))
        self._refresh_flags()
        self.dispatch("on_changed")

    def clear(self) -> None:
        """Remove every stroke (undoable)."""
        if not self._strokes:
            return
        removed = list(self._strokes)
        self._apply("remove", removed)
        self._record(("remove", removed))
        self.dispatch("on_changed")

    def reset(self) -> None:
        """Forget everything, history included (idle privacy reset)."""
        for stroke in self._strokes + self._drawing:
            self.canvas.remove(stroke.group)
        self._strokes.clear()
        self._drawing.clear()
        self._history.clear()
        self._redo.clear()
        self._refresh_flags()

    # --- output --------------------------------------------------------------
    def search_strokes(self, drawing: bool = False):
        """The drawing for ProductSearch.by_strokes, in y-down pixels: black brush strokes as
        (m, 2) arrays, colour and filled ones as PenStroke; with ``drawing``, the strokes whose
        finger is still down too (a fill counts as its outline until the finger lifts)."""
        # The rasteriser crops to the drawing's bounding box, so only the y flip matters.
        strokes = self._strokes + (self._drawing if drawing else [])
        return pen_strokes([(s.points, s.rgb, s.fill) for s in strokes], self.top)

    def has_drawing(self) -> bool:
        """True while a finger is drawing a stroke."""
        return bool(self._drawing)

    def stroke_count(self) -> int:
        """How many strokes are on the paper."""
        return len(self._strokes)

    def on_stroke_move(self) -> None:
        """Event: a stroke being drawn got longer (default handler does nothing)."""

    def on_stroke_end(self) -> None:
        """Event: a stroke was finished (default handler does nothing)."""

    def on_changed(self) -> None:
        """Event: strokes were undone, redone, erased or cleared (default handler does nothing)."""


def _add_fill(stroke: Stroke) -> None:
    """Fill the closed shape of a finished ``fill`` stroke with its colour, under its outline."""
    if len(stroke.points) < 6:
        return
    tess = Tesselator()
    tess.add_contour(stroke.points)
    if not tess.tesselate(WINDING_ODD, TYPE_POLYGONS):
        return
    fill = InstructionGroup()
    fill.add(Color(*stroke.rgb))
    for vertices, indices in tess.meshes:
        fill.add(Mesh(vertices=vertices, indices=indices, mode="triangle_fan"))
    stroke.group.insert(0, fill)
