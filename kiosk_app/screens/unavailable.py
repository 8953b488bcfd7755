"""Catalog unavailable (layout in ``unavailable.kv``): shown instead of crashing
when the bundle is missing or broken, with the reason and a way to admin."""

from __future__ import annotations

from kivy.uix.screenmanager import Screen


class UnavailableScreen(Screen):
    """No usable bundle: the kv shows ``app.unavailable_reason`` and an admin button."""
