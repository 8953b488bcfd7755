"""Attract / idle screen (layout in ``attract.kv``): a pulsing hint; a touch starts a session."""

from __future__ import annotations

from kivy.animation import Animation
from kivy.app import App
from kivy.uix.screenmanager import Screen


class AttractScreen(Screen):
    """Shown between shoppers. The hint label (``ids.hint``) pulses while the
    screen is shown; a touch anywhere calls the app's ``start_session``."""

    def on_enter(self, *_args) -> None:
        """Start the hint's pulse (opacity 1 → 0.35 → 1, 2.4 s a cycle, repeating)."""
        hint = self.ids.hint
        self._pulse = Animation(opacity=0.35, duration=1.2) + Animation(opacity=1.0, duration=1.2)
        self._pulse.repeat = True
        self._pulse.start(hint)

    def on_leave(self, *_args) -> None:
        """Stop the pulse and leave the hint fully opaque."""
        Animation.cancel_all(self.ids.hint)
        self.ids.hint.opacity = 1.0

    def on_touch_down(self, touch) -> bool:
        """Any touch starts a shopper's session (and is consumed)."""
        App.get_running_app().start_session()
        return True
