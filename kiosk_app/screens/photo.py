"""Photo search (layout in ``photo.kv``): a camera preview and capture button
where a camera works, otherwise a file chooser (USB stick, gallery)."""

from __future__ import annotations

from pathlib import Path

from kivy.properties import BooleanProperty, ObjectProperty
from kivy.uix.screenmanager import Screen

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
    camera_ready = BooleanProperty(False)

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
