"""Tools that drive the kiosk app offscreen; not used by the running kiosk.

* ``replay.py``: running frames, waiting on a condition, and synthetic touches
  (:class:`~vitrina.kiosk_app.tools.replay.SyntheticTouch`, a MotionEvent of our own).
* ``screenshots.py``: every screen at three window sizes, as PNGs (``vitrina kiosk --screenshot DIR``).
* ``responsiveness.py``: touch-replay responsiveness (``vitrina bench kiosk``).
"""
