"""vitrina's Kivy kiosk app (drawing canvas, results, admin screen).

The app itself is tracked in issue 4; this package reserves its import name
``vitrina.kiosk_app`` and will depend only on ``vitrina.runtime`` and kivy.
"""
