"""Screen classes; each screen's layout is ``kv/<name>.kv``, loaded on first use and cached.

| screen      | kv file          | what it does                                        |
| ----------- | ---------------- | --------------------------------------------------- |
| attract     | attract.kv       | looping hint; a touch starts a session              |
| draw        | draw.kv          | canvas + tools; results refresh while drawing       |
| detail      | detail.kv        | one product and its similar products                |
| text        | text.kv          | keyword search with suggestions                     |
| photo       | photo.kv         | photo search from a file (USB stick, gallery)       |
| admin       | admin.kv         | PIN, bundle info, benchmark, exit kiosk mode        |
| unavailable | unavailable.kv   | "catalog unavailable — see staff"                   |
"""

from __future__ import annotations

from pathlib import Path

from kivy.animation import Animation
from kivy.graphics.texture import Texture
from kivy.lang import Builder
from kivy.properties import NumericProperty, ObjectProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

from .drawing import DrawingCanvas  # noqa: F401 - registers the kv class name

KV_DIR = Path(__file__).resolve().parent / "kv"
_loaded: set[str] = set()


def load_kv(name: str) -> None:
    """Load ``kv/<name>.kv`` once per process."""
    if name not in _loaded:
        Builder.load_file(str(KV_DIR / f"{name}.kv"))
        _loaded.add(name)


class ProductTile(ButtonBehavior, BoxLayout):
    """A result: thumbnail texture, title, "colour · price"; ``item`` is the product index."""

    item = NumericProperty(-1)
    texture = ObjectProperty(None, allownone=True)
    title = StringProperty("")
    subtitle = StringProperty("")


class AttractScreen(Screen):
    def on_enter(self, *_):
        hint = self.ids.hint
        self._pulse = Animation(opacity=0.35, duration=1.2) + Animation(opacity=1.0, duration=1.2)
        self._pulse.repeat = True
        self._pulse.start(hint)

    def on_leave(self, *_):
        Animation.cancel_all(self.ids.hint)
        self.ids.hint.opacity = 1.0

    def on_touch_down(self, touch):
        from kivy.app import App

        App.get_running_app().start_session()
        return True


class DrawScreen(Screen):
    canvas_widget = ObjectProperty(None)
    results_grid = ObjectProperty(None)


class DetailScreen(Screen):
    similar_grid = ObjectProperty(None)
    texture = ObjectProperty(None, allownone=True)
    title = StringProperty("")
    subtitle = StringProperty("")


class TextScreen(Screen):
    query = ObjectProperty(None)
    suggestions = ObjectProperty(None)
    results_grid = ObjectProperty(None)


class PhotoScreen(Screen):
    chooser = ObjectProperty(None)
    results_grid = ObjectProperty(None)


class AdminScreen(Screen):
    pin = ObjectProperty(None)


class UnavailableScreen(Screen):
    pass


SCREENS: dict[str, type[Screen]] = {
    "attract": AttractScreen,
    "draw": DrawScreen,
    "detail": DetailScreen,
    "text": TextScreen,
    "photo": PhotoScreen,
    "admin": AdminScreen,
    "unavailable": UnavailableScreen,
}


def thumbnail_texture(pixels) -> Texture:
    """(h, w, 3) uint8 RGB → Kivy texture (Kivy's rows go bottom-up)."""
    h, w = pixels.shape[:2]
    texture = Texture.create(size=(w, h), colorfmt="rgb")
    texture.blit_buffer(pixels[::-1].tobytes(), colorfmt="rgb", bufferfmt="ubyte")
    texture.mag_filter = "linear"
    return texture
