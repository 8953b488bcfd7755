"""Start the kiosk (``vitrina kiosk``), or render every screen to PNG (``--screenshot DIR``).

Kivy reads its configuration when first imported, so :func:`prepare_kivy` runs
before any Kivy import: full screen unless windowed, Escape does not exit, no
multitouch-emulation dots, and a private ``KIVY_HOME`` so a kiosk never writes
into a user's Kivy settings.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

SCREENSHOT_SIZES = ((1920, 1080), (1280, 800), (720, 1280))


def prepare_kivy(windowed: bool, headless: bool, size: tuple[int, int] = (1280, 800)) -> None:
    """Set Kivy's environment and configuration; call before importing kivy."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    os.environ.setdefault("KIVY_HOME", tempfile.mkdtemp(prefix="vitrina-kivy-"))
    if headless:
        os.environ["SDL_VIDEODRIVER"] = "offscreen"
    from kivy.config import Config

    Config.set("kivy", "exit_on_escape", "0")
    Config.set("kivy", "keyboard_mode", "systemanddock" if not windowed and not headless else "system")
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("graphics", "width", str(size[0]))
    Config.set("graphics", "height", str(size[1]))
    Config.set("graphics", "fullscreen", "0" if windowed or headless else "auto")
    Config.set("graphics", "resizable", "1")


def run_kiosk(config, bundle: Path | None, windowed: bool) -> None:
    prepare_kivy(windowed, headless=False)
    from .app import KioskApp

    KioskApp(config, bundle, lock_down=not windowed).run()


def frames(count: int) -> None:
    """Let Kivy run ``count`` frames (layout, clock, drawing)."""
    from kivy.base import EventLoop

    for _ in range(count):
        EventLoop.idle()


def wait_for(predicate, timeout: float = 10.0) -> bool:
    """Run frames until ``predicate()`` holds or ``timeout`` seconds pass."""
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        frames(1)
        if predicate():
            return True
    return False


def sample_strokes(app) -> list:
    """A held-out drawing from the bundle (or a simple shape), scaled into the canvas (Kivy y-up)."""
    import numpy as np

    from .geometry import fit_strokes

    canvas = app.screen("draw").canvas_widget
    strokes = app.engine.bundle.eval_strokes() if app.engine else []
    lines = strokes[0][1] if strokes else [np.array([[0, 0], [40, 0], [44, 100], [26, 100], [20, 30], [14, 100], [-4, 100], [0, 0]], float)]
    return fit_strokes(lines, canvas.width, canvas.height, canvas.center)


def draw_strokes(app, strokes) -> None:
    """Replay strokes as real touch events on the canvas widget."""
    from kivy.tests.common import UnitTestTouch

    for line in strokes:
        touch = UnitTestTouch(*line[0])
        touch.touch_down()
        for x, y in line[1:]:
            touch.touch_move(x, y)
        touch.touch_up()


def screenshots(config, bundle: Path | None, out: Path) -> list[Path]:
    """Render every screen at 1920×1080, 1280×800 and 720×1280 into ``out``; returns the PNGs."""
    prepare_kivy(windowed=True, headless=True)
    from kivy.core.window import Window

    from .app import KioskApp

    out.mkdir(parents=True, exist_ok=True)
    app = KioskApp(config, bundle, lock_down=False)
    app.start_in_window()
    written = []
    try:
        for width, height in SCREENSHOT_SIZES:
            Window.size = (width, height)
            frames(5)
            for name in ("attract", "draw", "detail", "text", "photo", "admin", "unavailable"):
                _stage_screen(app, name)
                frames(10)
                path = out / f"{name}-{width}x{height}.png"
                app.root.export_to_png(str(path))
                written.append(path)
            app.reset_session()
    finally:
        # on_stop stops the search thread; the window stays for the caller (a test may go on)
        app.dispatch("on_stop")
        Window.remove_widget(app.root)
    return written


def _stage_screen(app, name: str) -> None:
    """Put sample content on a screen: a drawing and its results, a product, a query."""
    if name == "unavailable":
        app.unavailable_reason = app.unavailable_reason or "example: bundle missing"
        app.screen("unavailable")
        app.manager.current = "unavailable"
        return
    if app.engine is None:
        app.show(name)
        return
    if name == "draw":
        app.start_session()
        frames(3)
        app.screen("draw").canvas_widget.reset()
        draw_strokes(app, sample_strokes(app))
        app.searches.sketch_now()
        wait_for(lambda: bool(app.results))
    elif name == "detail":
        item = app.results[0]["item"] if app.results else 0
        app.searches.show_detail(item)
        wait_for(lambda: bool(app.screen("detail").similar_grid.children))
    elif name == "text":
        app.show("text")
        field = app.screen("text").query
        field.text = "polera ro"
        app.searches.by_text(field.text)
        wait_for(lambda: bool(app.screen("text").results_grid.children))
    elif name == "admin":
        app.show("admin")
    else:
        app.show(name)
