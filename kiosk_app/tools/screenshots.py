"""``vitrina kiosk --screenshot DIR``: render every screen, with sample content, to PNGs."""

from __future__ import annotations

from pathlib import Path

from ..config import KioskConfig
from ..main import prepare_kivy

#: Window sizes (w, h px) every screen is rendered at: landscape full HD, a 1280×800 kiosk, a portrait phone.
SCREENSHOT_SIZES = ((1920, 1080), (1280, 800), (720, 1280))
#: Screens in the order they are staged.
SCREEN_NAMES = ("attract", "draw", "detail", "text", "photo", "admin", "unavailable")


def screenshots(config: KioskConfig, bundle: Path | None, out: Path) -> list[Path]:
    """Render every screen at each of :data:`SCREENSHOT_SIZES` into ``out`` as
    ``<screen>-<w>x<h>.png`` (offscreen); returns the PNG paths."""
    prepare_kivy(windowed=True, headless=True)
    from kivy.core.window import Window

    from ..app import KioskApp
    from .replay import frames

    out.mkdir(parents=True, exist_ok=True)
    app = KioskApp(config, bundle, lock_down=False)
    app.start_in_window()
    written = []
    try:
        for width, height in SCREENSHOT_SIZES:
            Window.size = (width, height)
            frames(5)
            for name in SCREEN_NAMES:
                stage_screen(app, name)
                frames(10)
                path = out / f"{name}-{width}x{height}.png"
                app.root.export_to_png(str(path))
                written.append(path)
            app.reset_session()
    finally:
        app.close_in_window()  # the window stays for the caller (a test may go on)
    return written


def stage_screen(app, name: str) -> None:
    """Show screen ``name`` with sample content: a drawing and its results, a product and
    its similar products, a query and its results, an example reason for "unavailable"."""
    from .replay import draw_strokes, frames, sample_strokes, wait_for

    if name == "unavailable":
        app.unavailable_reason = app.unavailable_reason or app.texts["reason_missing"]
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
        draw_strokes(sample_strokes(app))
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
    else:
        app.show(name)
