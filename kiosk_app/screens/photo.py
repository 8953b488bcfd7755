"""Photo search (layout in ``photo.kv``): a camera preview and capture button
where a camera works, otherwise a file chooser (USB stick, gallery); the photo
searched is shown with every detected product outlined (:class:`PhotoBoxes`):
the largest is searched at once, tapping another outline searches that one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from kivy.app import App
from kivy.graphics import Color, Line, Rectangle
from kivy.graphics.texture import Texture
from kivy.metrics import dp
from kivy.properties import BooleanProperty, ListProperty, NumericProperty, ObjectProperty
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget

from ..photo_boxes import box_at, box_rect, fit_photo

#: Outline colours (RGBA): every detected product, and the one searched.
OUTLINE = (0.15, 0.55, 0.95, 1)
OUTLINE_SEARCHED = (0.95, 0.35, 0.1, 1)

#: Where a shopper's photo can come from, first existing wins: USB sticks, then the gallery.
PHOTO_DIRS = ("/media", "/run/media", "~/Pictures", "~")


class PhotoScreen(Screen):
    """Camera preview with a capture button where a camera works, else a file chooser.

    ``chooser``: the FileChooserIconView; ``camera_box``: holds the Camera widget
    while the screen is shown; ``results_grid``: the GridLayout of results;
    ``camera_ready``: a camera preview is running (the kv hides the chooser).
    """

    chooser = ObjectProperty(None)
    camera_box = ObjectProperty(None)
    results_grid = ObjectProperty(None)
    photo_boxes = ObjectProperty(None)
    camera_ready = BooleanProperty(False)
    has_photo = BooleanProperty(False)

    def show_photo(self, pixels: np.ndarray, boxes: list[list[float]], searched: int | None) -> None:
        """Show ``pixels`` ((h, w, 3) uint8, rows top-down) with ``boxes`` (x0, y0, x1, y1 in its
        pixels) outlined, box ``searched`` (None: the whole photo) highlighted."""
        h, w = pixels.shape[:2]
        texture = Texture.create(size=(w, h), colorfmt="rgb")
        texture.blit_buffer(np.ascontiguousarray(pixels[::-1]).tobytes(), colorfmt="rgb", bufferfmt="ubyte")
        view = self.photo_boxes
        view.photo_size = [w, h]
        view.boxes = [list(map(float, b)) for b in boxes]
        view.searched = -1 if searched is None else int(searched)
        view.texture = texture
        self.has_photo = True

    def on_pre_enter(self, *_args) -> None:
        """Point the chooser at the first existing :data:`PHOTO_DIRS` folder and try the camera."""
        for folder in PHOTO_DIRS:
            path = Path(folder).expanduser()
            if path.is_dir():
                self.chooser.path = str(path)
                break
        self.camera_ready = self._start_camera()

    def on_leave(self, *_args) -> None:
        """Stop and drop the camera preview."""
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
        """The current camera frame as a PIL RGB image (rows top-down), or None without a frame."""
        from PIL import Image

        if not self.camera_ready or not self.camera_box.children:
            return None
        texture = self.camera_box.children[0].texture
        if texture is None:
            return None
        image = Image.frombytes("RGBA", texture.size, texture.pixels)
        return image.transpose(Image.Transpose.FLIP_TOP_BOTTOM).convert("RGB")


class PhotoBoxes(Widget):
    """The shopper's photo with every detected product outlined; the searched one in accent colour.

    ``texture``: the photo; ``photo_size``: its (w, h) in the boxes' pixels; ``boxes``: (x0, y0,
    x1, y1) per detection, photo pixels, y down; ``searched``: index of the searched box (-1:
    the whole photo). Tapping an outline calls ``app.searches.by_photo_box(index)``.
    """

    texture = ObjectProperty(None, allownone=True)
    photo_size = ListProperty([0, 0])
    boxes = ListProperty([])
    searched = NumericProperty(-1)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.bind(pos=self.redraw, size=self.redraw, texture=self.redraw, boxes=self.redraw, searched=self.redraw)

    def rects(self) -> list[tuple[float, float, float, float]]:
        """Each box's outline in window coordinates (x, y, width, height)."""
        fit = fit_photo(tuple(self.photo_size), tuple(self.pos), tuple(self.size))
        return [box_rect(b, int(self.photo_size[1]), fit) for b in self.boxes]

    def redraw(self, *_args) -> None:
        """Draw the photo and the outlines again (after a new photo, boxes, or a resize)."""
        self.canvas.clear()
        if self.texture is None:
            return
        fit = fit_photo(tuple(self.photo_size), tuple(self.pos), tuple(self.size))
        w, h = self.photo_size
        with self.canvas:
            Color(1, 1, 1, 1)
            Rectangle(texture=self.texture, pos=(fit.x, fit.y), size=(w * fit.scale, h * fit.scale))
            for i, rect in enumerate(self.rects()):
                Color(*(OUTLINE_SEARCHED if i == self.searched else OUTLINE))
                Line(rectangle=rect, width=dp(2) if i == self.searched else dp(1.2))

    def on_touch_down(self, touch) -> bool:
        """A tap inside an outline searches that product."""
        if not self.collide_point(*touch.pos) or self.texture is None:
            return super().on_touch_down(touch)
        index = box_at(self.rects(), *touch.pos)
        if index is None:
            return super().on_touch_down(touch)
        App.get_running_app().searches.by_photo_box(index)
        return True
