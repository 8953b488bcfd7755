"""Admin (layout in ``admin.kv``), behind the PIN from the config: bundle info,
catalog sync with progress, benchmark, exit kiosk mode. The actions are
:class:`vitrina.kiosk_app.admin_actions.AdminActions` (``app.admin``)."""

from __future__ import annotations

from kivy.properties import ObjectProperty
from kivy.uix.screenmanager import Screen


class AdminScreen(Screen):
    """The admin screen; ``pin`` is the PIN TextInput (emptied after each attempt)."""

    pin = ObjectProperty(None)
