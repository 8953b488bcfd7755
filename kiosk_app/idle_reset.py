"""Shopper privacy: reset the kiosk after ``idle_seconds`` without a touch.

:class:`IdleReset` watches the window's touches and checks once a second; the
reset itself is the app's ``reset_session`` (forget the drawing, the query and
the results; back to attract). :func:`settle_garbage` runs at start-up and at
each reset, when nobody is drawing.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from kivy.clock import Clock
from kivy.core.window import Window


def settle_garbage() -> None:
    """Collect now, then freeze every surviving object out of the collector's view.

    A full (generation 2) collection over the app's objects took ~80 ms: a stutter
    when it fell while a finger was drawing. Done at start-up and at each idle
    reset (nobody drawing), the later collections only scan what a session made.
    """
    gc.collect()
    gc.freeze()


class IdleReset:
    """Calls ``reset()`` once no touch reached the window for ``idle_seconds`` (checked every second).

    ``last_touch`` is the ``time.monotonic()`` of the latest touch down or move
    (or of the latest reset). :meth:`start` binds the window and the clock,
    :meth:`stop` unbinds them.
    """

    def __init__(self, idle_seconds: float, reset: Callable[[], None]):
        self.idle_seconds = idle_seconds
        self.reset = reset
        self.last_touch = time.monotonic()

    def start(self) -> None:
        """Watch the window's touches and check for idleness once a second."""
        Window.bind(on_touch_down=self.note_touch, on_touch_move=self.note_touch)
        Clock.schedule_interval(self.check, 1.0)

    def stop(self) -> None:
        """Stop watching (a no-op if not started)."""
        Window.unbind(on_touch_down=self.note_touch, on_touch_move=self.note_touch)
        Clock.unschedule(self.check)

    def note_touch(self, *_args: Any) -> None:
        """Someone is here: restart the idle countdown (returns None, so the touch goes on to the widgets)."""
        self.last_touch = time.monotonic()

    def check(self, _dt: float = 0.0) -> None:
        """Reset if the last touch is ``idle_seconds`` old or older (Clock callback; ``_dt`` unused)."""
        if time.monotonic() - self.last_touch >= self.idle_seconds:
            self.reset()
