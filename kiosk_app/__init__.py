"""vitrina's Kivy kiosk app: draw, see results as you draw, search by words or photo.

Where things live:

* ``app.py``: the App — observable state (Kivy properties the kv files bind
  to) and navigation between screens, session start and reset, lock-down.
* ``screens/``: one ``<screen>.py`` (the Screen class) beside one
  ``<screen>.kv`` (its layout) per screen; a screen's kv is loaded when it is
  first shown and cached (``screens.load_kv``):

  | screen      | class             | files                                          |
  | ----------- | ----------------- | ---------------------------------------------- |
  | attract     | AttractScreen     | ``screens/attract.py``, ``attract.kv``         |
  | draw        | DrawScreen        | ``screens/draw.py``, ``draw.kv``               |
  | detail      | DetailScreen      | ``screens/detail.py``, ``detail.kv``           |
  | text        | TextScreen        | ``screens/text.py``, ``text.kv``               |
  | photo       | PhotoScreen       | ``screens/photo.py``, ``photo.kv``             |
  | admin       | AdminScreen       | ``screens/admin.py``, ``admin.kv``             |
  | unavailable | UnavailableScreen | ``screens/unavailable.py``, ``unavailable.kv`` |
  | (shared)    | ProductTile ...   | ``screens/widgets.py``, ``widgets.kv``         |

* ``search_session.py`` (``app.searches``): searches dispatched to the worker,
  stale replies dropped, result grids filled; ``worker.py``: the background
  search thread (newest request wins); ``paint_log.py``: when results reached
  a frame; ``textures.py``: thumbnail and rendered-text texture caches.
* ``admin_actions.py`` (``app.admin``): PIN check, catalog sync, benchmark,
  bundle (re)loading and bundle failures. ``idle_reset.py`` (``app.idle``):
  privacy reset after ``idle_seconds`` untouched. ``failures.py``: what counts
  as a bundle failure, its short reason for staff, and the kiosk's log
  (logger ``vitrina.kiosk``, file ``<KIVY_HOME>/vitrina-kiosk.log``).
* ``drawing.py`` (the canvas widget), ``geometry.py`` (pure stroke and layout
  maths), ``config.py`` (TOML config checked against its schema, PIN hashing),
  ``strings.py`` (UI texts).
* ``main.py`` (Kivy set-up, ``run_kiosk``), ``cli.py`` (``vitrina kiosk``,
  ``vitrina bench kiosk``).
* ``tools/``: not used by the running kiosk — screenshots of every screen and
  touch replay, with synthetic touches of their own.

Depends only on ``vitrina.runtime`` and kivy; importing the package imports neither.
"""
