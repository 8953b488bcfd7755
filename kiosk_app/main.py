"""Start the kiosk (``vitrina kiosk``).

Kivy reads its configuration when first imported, so :func:`prepare_kivy` runs
before any Kivy import: full screen unless windowed, Escape does not exit, no
multitouch-emulation dots, and a private ``KIVY_HOME`` so a kiosk never writes
into a user's Kivy settings. Screenshots and touch replay live in
:mod:`vitrina.kiosk_app.tools`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .config import KioskConfig


def prepare_kivy(windowed: bool, headless: bool, size: tuple[int, int] = (1280, 800)) -> None:
    """Set Kivy's environment and configuration; call before importing kivy.

    ``windowed``: a resizable window instead of full screen; ``headless``:
    render offscreen (SDL's offscreen driver); ``size``: the window's (width,
    height) in px when not full screen.
    """
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


def run_kiosk(config: KioskConfig, bundle: Path | None, windowed: bool) -> None:
    """Run the kiosk app until it exits: locked-down full screen, or a normal window with ``windowed``."""
    prepare_kivy(windowed, headless=False)
    from .app import KioskApp

    KioskApp(config, bundle, lock_down=not windowed).run()
