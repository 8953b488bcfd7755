"""When search results reached the screen, for the responsiveness benchmark.

A search is noted when it is submitted; when its results are put in a grid it
waits for the next frame; the window's ``on_flip`` (a frame was presented)
records it as painted. Results that change nothing on screen (the same products
as the grid showed, often the case at a stroke's end after the live search's
reply) are painted already: Kivy draws no frame for an unchanged window, so
waiting for a flip would count them only at the next unrelated change (the next
stroke, 250 ms or more later). Times are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import time
from typing import Any


class PaintLog:
    """Submitted → painted times of searches.

    ``painted``: (kind, generation, submitted, painted) tuples in monotonic
    seconds, in the order they reached the screen; ``awaiting``: (kind,
    generation, submitted) of results filled in but not yet on a frame.
    """

    def __init__(self) -> None:
        self.painted: list[tuple[str, int, float, float]] = []
        self.awaiting: list[tuple[str, int, float]] = []
        self._submitted: dict[tuple[str, int], float] = {}

    def note_submitted(self, kind: str, generation: int) -> None:
        """A search of ``kind`` / ``generation`` was handed to the worker now."""
        self._submitted[(kind, generation)] = time.monotonic()

    def take_submitted(self, kind: str, generation: int) -> float | None:
        """When that search was submitted (and forget it), or None if it was not noted."""
        return self._submitted.pop((kind, generation), None)

    def note_filled(self, kind: str, generation: int, submitted: float, on_screen: bool = False) -> None:
        """Its results are in a grid now; the next frame paints them. With ``on_screen`` (filling
        them changed nothing and the window has nothing to redraw) they are painted already."""
        if on_screen:
            self.painted.append((kind, generation, submitted, time.monotonic()))
        else:
            self.awaiting.append((kind, generation, submitted))

    def on_flip(self, *_args: Any) -> None:
        """Window ``on_flip`` handler: whatever was filled before this frame is now painted."""
        if self.awaiting:
            now = time.monotonic()
            self.painted += [(kind, gen, submitted, now) for kind, gen, submitted in self.awaiting]
            self.awaiting.clear()
