"""Textures for result tiles: product thumbnails and rendered text lines, cached.

Pixels are decoded or rendered on the search worker thread where possible; the
UI thread only uploads them (Kivy textures must be created on the UI thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from kivy.graphics.texture import Texture


def thumbnail_texture(pixels: np.ndarray) -> Texture:
    """A Kivy texture of an (h, w, 3) uint8 RGB thumbnail whose rows go top-down
    (Kivy's rows go bottom-up, so they are flipped); linear magnification."""
    h, w = pixels.shape[:2]
    texture = Texture.create(size=(w, h), colorfmt="rgb")
    texture.blit_buffer(pixels[::-1].tobytes(), colorfmt="rgb", bufferfmt="ubyte")
    texture.mag_filter = "linear"
    return texture


class ThumbnailCache:
    """Product thumbnail textures by product index, at most ``limit`` of them
    (the oldest is dropped first). :meth:`put` uploads (h, w, 3) uint8 pixels the
    worker decoded; :meth:`get` decodes on the UI thread when it did not."""

    def __init__(self, limit: int = 512):
        self._textures: dict[int, Texture] = {}
        self._limit = limit

    def __contains__(self, item: int) -> bool:
        return item in self._textures

    def put(self, item: int, pixels: np.ndarray) -> Texture:
        """Upload thumbnail pixels of product ``item`` (UI thread) and cache the texture."""
        if len(self._textures) >= self._limit:
            self._textures.pop(next(iter(self._textures)))
        texture = self._textures[item] = thumbnail_texture(pixels)
        return texture

    def get(self, item: int, load: Callable[[int], Any] | None) -> Texture | None:
        """The texture of product ``item``; if not cached, ``load(item)`` gives its
        pixels (None when there is nothing to load from, e.g. no bundle)."""
        texture = self._textures.get(item)
        if texture is None and load is not None:
            texture = self.put(item, load(item))
        return texture

    def clear(self) -> None:
        """Forget every texture (another bundle was opened)."""
        self._textures.clear()


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
        """Cache key of a text line: (text, font size rounded to whole px, RGBA 0-1)."""
        return (text, round(font_px), rgba)

    def __contains__(self, key: tuple) -> bool:
        return key in self._cache

    def render(self, key: tuple) -> np.ndarray:
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

    def put(self, key: tuple, pixels: np.ndarray) -> Texture:
        """Upload rendered (h, w, 4) pixels as a texture (UI thread) and cache it."""
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
