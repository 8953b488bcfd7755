"""Catalog unavailable (layout in ``unavailable.kv``): shown instead of crashing
when the bundle is missing or broken, with a short reason in the kiosk's
language (``app.unavailable_reason``) and a way to admin, where the full
message and the log's path are (see :mod:`vitrina.kiosk_app.failures`)."""

from __future__ import annotations

from kivy.uix.screenmanager import Screen


class UnavailableScreen(Screen):
    """No usable bundle: the kv shows ``app.unavailable_reason`` (never a traceback) and an admin button."""
