"""The kiosk's screens: one module and one kv file per screen, side by side here.

| screen      | class             | files                          | what it does                                    |
| ----------- | ----------------- | ------------------------------ | ----------------------------------------------- |
| attract     | AttractScreen     | attract.py, attract.kv         | looping hint; a touch starts a session          |
| draw        | DrawScreen        | draw.py, draw.kv               | canvas + tools; results refresh while drawing   |
| detail      | DetailScreen      | detail.py, detail.kv           | one product and its similar products            |
| text        | TextScreen        | text.py, text.kv               | keyword search with suggestions                 |
| photo       | PhotoScreen       | photo.py, photo.kv             | photo (camera or file), products outlined; tap  |
| admin       | AdminScreen       | admin.py, admin.kv             | PIN, bundle info, sync, benchmark, exit kiosk   |
| unavailable | UnavailableScreen | unavailable.py, unavailable.kv | "catalog unavailable — see staff"               |
| (shared)    | ProductTile       | widgets.py, widgets.kv         | result tile; ``ResultsGrid``, ``ToolButton``    |
| (draw)      | FilterBar         | filter_bar.py                  | category chips, price range, in stock only      |

A screen's kv file is loaded when the screen is first shown and cached
(:func:`load_kv`); ``widgets.kv`` is loaded when the app is built, before any screen.
"""

from __future__ import annotations

from pathlib import Path

from kivy.lang import Builder
from kivy.uix.screenmanager import Screen

from .admin import AdminScreen
from .attract import AttractScreen
from .detail import DetailScreen
from .draw import DrawScreen
from .photo import PhotoScreen
from .text import TextScreen
from .unavailable import UnavailableScreen
from .widgets import ProductTile

__all__ = ["KV_DIR", "SCREENS", "ProductTile", "load_kv"]

#: Folder of the kv files (beside their modules).
KV_DIR = Path(__file__).resolve().parent
_loaded: set[str] = set()


def load_kv(name: str) -> None:
    """Load ``screens/<name>.kv`` (``name`` a screen or ``"widgets"``) once per process."""
    if name not in _loaded:
        Builder.load_file(str(KV_DIR / f"{name}.kv"))
        _loaded.add(name)


#: Screen name → its class; the kv file of the same name holds its layout.
SCREENS: dict[str, type[Screen]] = {
    "attract": AttractScreen,
    "draw": DrawScreen,
    "detail": DetailScreen,
    "text": TextScreen,
    "photo": PhotoScreen,
    "admin": AdminScreen,
    "unavailable": UnavailableScreen,
}
