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

import threading
from pathlib import Path

import numpy as np

from kivy.animation import Animation
from kivy.graphics.texture import Texture
from kivy.lang import Builder
from kivy.properties import BooleanProperty, NumericProperty, ObjectProperty, StringProperty
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
    """A result: thumbnail texture, title and "colour · price" as rendered-text
    textures (see :class:`TextTextures`); ``item`` is the product index."""

    item = NumericProperty(-1)
    texture = ObjectProperty(None, allownone=True)
    title_texture = ObjectProperty(None, allownone=True)
    subtitle_texture = ObjectProperty(None, allownone=True)


class TextTextures:
    """Rendered text as textures, cached by (text, size px, colour).

    Rendered with Pillow's FreeType and Kivy's bundled Roboto: 0.3 ms a line,
    where Kivy's own text provider took 2-4 ms here and 40 labels per result
    set stalled frames. :meth:`render` is thread-safe (one font object per
    thread), so the search worker renders new lines and the UI thread only
    uploads them (:meth:`put`).
    """

    def __init__(self, limit: int = 4096):
        self._cache: dict[tuple, Texture] = {}
        self._local = threading.local()
        self._limit = limit

    @staticmethod
    def key(text: str, font_px: float, rgba: tuple[float, float, float, float]) -> tuple:
        return (text, round(font_px), rgba)

    def __contains__(self, key: tuple) -> bool:
        return key in self._cache

    def render(self, key: tuple):
        """RGBA pixels (h, w, 4) uint8 of a text line, rows top-down. Any thread."""
        from PIL import Image, ImageDraw

        text, px, rgba = key
        fonts = self._local.__dict__.setdefault("fonts", {})
        font = fonts.get(px)
        if font is None:
            import kivy
            from PIL import ImageFont

            font = fonts[px] = ImageFont.truetype(str(Path(kivy.kivy_data_dir) / "fonts" / "Roboto-Regular.ttf"), px)
        left, top, right, bottom = font.getbbox(text or " ")
        image = Image.new("RGBA", (max(1, right - left + 2), max(1, bottom - top + 2)), (0, 0, 0, 0))
        ImageDraw.Draw(image).text((1 - left, 1 - top), text, font=font, fill=tuple(int(round(c * 255)) for c in rgba))
        return np.asarray(image)

    def put(self, key: tuple, pixels) -> Texture:
        """Upload rendered pixels as a texture (UI thread) and cache it."""
        if len(self._cache) >= self._limit:
            self._cache.pop(next(iter(self._cache)))
        h, w = pixels.shape[:2]
        texture = Texture.create(size=(w, h), colorfmt="rgba")
        texture.blit_buffer(np.ascontiguousarray(pixels[::-1]).tobytes(), colorfmt="rgba", bufferfmt="ubyte")
        self._cache[key] = texture
        return texture

    def get(self, key: tuple) -> Texture:
        """The texture for ``key``, rendering it here if the worker did not."""
        texture = self._cache.get(key)
        return texture if texture is not None else self.put(key, self.render(key))


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


#: Where a shopper's photo can come from, first existing wins: USB sticks, then the gallery.
PHOTO_DIRS = ("/media", "/run/media", "~/Pictures", "~")


class PhotoScreen(Screen):
    """Camera preview with a capture button where a camera works, else a file chooser."""

    chooser = ObjectProperty(None)
    camera_box = ObjectProperty(None)
    results_grid = ObjectProperty(None)
    camera_ready = BooleanProperty(False)

    def on_pre_enter(self, *_):
        for folder in PHOTO_DIRS:
            path = Path(folder).expanduser()
            if path.is_dir():
                self.chooser.path = str(path)
                break
        self.camera_ready = self._start_camera()

    def on_leave(self, *_):
        for child in self.camera_box.children:
            child.play = False
        self.camera_box.clear_widgets()
        self.camera_ready = False

    def _start_camera(self) -> bool:
        """Open camera 0 if Kivy has a camera provider and the device answers."""
        from kivy.core import camera as core_camera

        if core_camera.Camera is None or not Path("/dev/video0").exists():
            return False
        try:
            from kivy.uix.camera import Camera

            self.camera_box.add_widget(Camera(index=0, play=True, fit_mode="contain"))
        except Exception:  # noqa: BLE001 - any provider failure means: use the file chooser
            self.camera_box.clear_widgets()
            return False
        return True

    def capture(self):
        """The current camera frame as a PIL RGB image, or None."""
        from PIL import Image

        if not self.camera_ready or not self.camera_box.children:
            return None
        texture = self.camera_box.children[0].texture
        if texture is None:
            return None
        image = Image.frombytes("RGBA", texture.size, texture.pixels)
        return image.transpose(Image.Transpose.FLIP_TOP_BOTTOM).convert("RGB")


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
