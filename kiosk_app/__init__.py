"""vitrina's Kivy kiosk app: draw, see results as you draw, search by words or photo.

Where things live: ``app.py`` (the App: state, searches, idle reset, lock-down),
``screens/`` (one ``<screen>.py`` and ``<screen>.kv`` per screen, kv loaded lazily),
``textures.py`` (thumbnail and text texture caches),
``drawing.py`` (the canvas widget), ``geometry.py`` (pure stroke and layout
maths), ``worker.py`` (background searches, newest wins), ``config.py`` (TOML
config and PIN hashing), ``main.py`` (Kivy set-up, screenshots), ``cli.py``
(``vitrina kiosk``). Depends only on ``vitrina.runtime`` and kivy.
"""
