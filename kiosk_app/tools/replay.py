"""Drive a kiosk app without a person: run frames, wait for a condition, replay strokes as touches.

Call :func:`vitrina.kiosk_app.main.prepare_kivy` before importing this module.
Touches are :class:`SyntheticTouch` events posted into Kivy's event loop, so
they go through the window and the widget tree as a finger's would.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from kivy.base import EventLoop
from kivy.input.motionevent import MotionEvent

from ..geometry import fit_strokes

_touch_ids = itertools.count(1)


class SyntheticTouch(MotionEvent):
    """One finger at window pixel (x, y) (Kivy coordinates, y up), posted into Kivy's event loop.

    ``down()``, then any number of ``move_to(x, y)``, then ``up()``; each
    dispatches immediately to the window and its widgets (no frame needed).
    """

    def __init__(self, x: float, y: float):
        super().__init__("vitrina-replay", next(_touch_ids), self._normalised(x, y), is_touch=True, type_id="touch")
        self.profile = ["pos"]

    @staticmethod
    def _normalised(x: float, y: float) -> dict[str, float]:
        window = EventLoop.window
        return {"x": x / (window.width - 1.0), "y": y / (window.height - 1.0)}

    def depack(self, args: dict[str, float]) -> None:
        """Take the position (0-1 of the window) from ``args``; Kivy then computes ``pos``."""
        self.sx, self.sy = args["x"], args["y"]
        super().depack(args)

    def down(self) -> None:
        """Put the finger down where the touch was created."""
        EventLoop.post_dispatch_input("begin", self)

    def move_to(self, x: float, y: float) -> None:
        """Move the finger to window pixel (x, y)."""
        self.move(self._normalised(x, y))
        EventLoop.post_dispatch_input("update", self)

    def up(self) -> None:
        """Lift the finger."""
        EventLoop.post_dispatch_input("end", self)


def frames(count: int) -> None:
    """Let Kivy run ``count`` frames (input, clock, layout, drawing)."""
    for _ in range(count):
        EventLoop.idle()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> bool:
    """Run frames until ``predicate()`` holds or ``timeout`` seconds pass; True if it held."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        frames(1)
        if predicate():
            return True
    return False


def draw_strokes(strokes: Sequence[np.ndarray] | Sequence[Sequence[Sequence[float]]]) -> None:
    """Replay strokes, each a sequence of window pixel (x, y) points (y up), as touches: down, moves, up."""
    for line in strokes:
        touch = SyntheticTouch(*line[0])
        touch.down()
        for x, y in line[1:]:
            touch.move_to(x, y)
        touch.up()


def sample_strokes(app) -> list[np.ndarray]:
    """A held-out drawing from the app's bundle (or a simple shape without one), as
    (m, 2) arrays scaled into the drawing canvas in window pixels (Kivy y-up)."""
    canvas = app.screen("draw").canvas_widget
    strokes = app.engine.bundle.eval_strokes() if app.engine else []
    lines = (
        strokes[0][1]
        if strokes
        else [np.array([[0, 0], [40, 0], [44, 100], [26, 100], [20, 30], [14, 100], [-4, 100], [0, 0]], float)]
    )
    return fit_strokes(lines, canvas.width, canvas.height, canvas.center)
