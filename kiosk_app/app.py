"""The kiosk application: observable state, and navigation between screens.

State the kv files bind to lives in App properties (``results``, ``status``,
``portrait``, ``tile``, ``admin_unlocked``, ``sync_progress`` ...). The work is
done by three helpers the App holds and kv calls: ``app.searches``
(:class:`~vitrina.kiosk_app.search_session.SearchSession`: searches on the
worker thread, stale replies dropped, result grids), ``app.admin``
(:class:`~vitrina.kiosk_app.admin_actions.AdminActions`: PIN, sync, benchmark,
bundle loading and failures) and ``app.idle``
(:class:`~vitrina.kiosk_app.idle_reset.IdleReset`). Screens live in
:mod:`vitrina.kiosk_app.screens`. A broken bundle shows the "unavailable"
screen and is logged (:mod:`vitrina.kiosk_app.failures`; ``app.log_path``).

Import this module only after :func:`vitrina.kiosk_app.main.prepare_kivy` has
set Kivy's configuration (window, input, exit-on-escape).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy import kivy_home_dir
from kivy.app import App
from kivy.core.window import Window
from kivy.properties import BooleanProperty, DictProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.screenmanager import NoTransition, Screen, ScreenManager

from vitrina.runtime.product_search import ProductSearch

from .admin_actions import AdminActions
from .config import PALETTE, KioskConfig
from .failures import BUNDLE_FAILURES, start_file_log
from .geometry import layout_for
from .idle_reset import IdleReset, settle_garbage
from .screens import SCREENS, load_kv
from .search_session import SearchSession
from .strings import TEXTS


class KioskApp(App):
    """The kiosk: ``KioskApp(config, bundle_path, lock_down).run()``.

    Properties (kv binds to them): ``results`` (sketch results, match dicts),
    ``status`` (error line or ""), ``portrait`` and ``tile`` (layout; tile side
    in px), ``texts`` (UI strings of the configured language),
    ``admin_unlocked``, ``admin_message``, ``sync_progress`` (0-1), ``syncing``,
    ``bundle_summary``, ``unavailable_reason`` (short, in the kiosk's language,
    for the unavailable screen) and ``unavailable_detail`` (the full message, for
    admin and the log). ``engine`` is the open ProductSearch (None without a
    usable bundle); ``in_session`` is True from a shopper's first touch to the
    next reset; ``log_path`` is the kiosk's log file (None if it cannot be
    written). With ``lock_down`` the window refuses to close (outside admin)
    and Escape is swallowed.
    """

    results = ListProperty([])
    status = StringProperty("")
    portrait = BooleanProperty(False)
    tile = NumericProperty(140)
    texts = DictProperty(TEXTS["es"])
    admin_unlocked = BooleanProperty(False)
    admin_message = StringProperty("")
    sync_progress = NumericProperty(0.0)
    syncing = BooleanProperty(False)
    bundle_summary = StringProperty("")
    unavailable_reason = StringProperty("")
    unavailable_detail = StringProperty("")

    def __init__(self, config: KioskConfig, bundle_path: Path | None, lock_down: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.kiosk_config = config
        self.bundle_path = bundle_path
        self.lock_down = lock_down
        self.texts = TEXTS[config.language]
        self.log_path = start_file_log(Path(kivy_home_dir))
        self.engine: ProductSearch | None = None
        self.in_session = False
        self.searches = SearchSession(self)
        self._palette_of: ProductSearch | None = None  # the engine the palette was made for
        self.admin = AdminActions(self)
        self.idle = IdleReset(config.idle_seconds, self.reset_session)

    # --- build / lifecycle -----------------------------------------------------
    def build(self) -> ScreenManager:
        """Open the bundle, lay out for the window, warm up, and start on attract (or unavailable)."""
        self.title = "vitrina"
        load_kv("widgets")
        self.manager = ScreenManager(transition=NoTransition())
        self.admin.open_bundle()
        self.apply_layout(*Window.size)
        self.searches.warm_up()
        self.show("attract")
        return self.manager

    def on_start(self) -> None:
        """Bind the window (lock-down, resize, paint timing), start the idle check, settle garbage."""
        Window.bind(on_request_close=self.keep_window_open, on_keyboard=self.swallow_key, on_resize=self._on_resize)
        Window.bind(on_flip=self.searches.paint_log.on_flip)
        self.idle.start()
        settle_garbage()

    def on_stop(self) -> None:
        """Stop the search thread and undo :meth:`on_start`'s bindings."""
        self.searches.stop()
        Window.unbind(on_request_close=self.keep_window_open, on_keyboard=self.swallow_key, on_resize=self._on_resize)
        Window.unbind(on_flip=self.searches.paint_log.on_flip)
        self.idle.stop()

    def start_in_window(self) -> None:
        """Build into Kivy's existing window and dispatch ``on_start``, without running
        Kivy's event loop: for tools and tests that drive the frames themselves."""
        self._run_prepare()

    def close_in_window(self) -> None:
        """Undo :meth:`start_in_window`: dispatch ``on_stop`` and take the root off the window (which stays)."""
        self.dispatch("on_stop")
        Window.remove_widget(self.root)

    def apply_layout(self, width: float, height: float) -> None:
        """Set ``portrait`` and ``tile`` for a window of ``width`` × ``height`` px."""
        layout = layout_for(width, height)
        self.portrait, self.tile = layout.portrait, layout.tile

    def _on_resize(self, _window: Any, width: float, height: float) -> None:
        self.apply_layout(width, height)

    # --- navigation --------------------------------------------------------------
    def screen(self, name: str) -> Screen:
        """The screen called ``name``, created (and its kv loaded) on first use."""
        if not self.manager.has_screen(name):
            load_kv(name)
            self.manager.add_widget(SCREENS[name](name=name))
        return self.manager.get_screen(name)

    def show(self, name: str) -> None:
        """Switch to screen ``name`` (to "unavailable" instead while there is no
        engine, except for admin) and clear the status line."""
        if name not in ("admin", "unavailable") and self.engine is None:
            name = "unavailable"
        screen = self.screen(name)
        if name == "draw" and self._palette_of is not self.engine:
            screen.show_palette(self.palette())
            self._palette_of = self.engine
        self.manager.current = name
        self.status = ""

    def palette(self) -> list[tuple[str, tuple[float, float, float]]]:
        """The drawing palette: the config's colours (black first) as (name, RGB 0-1), each
        in the bundle's colour family's RGB (what its products look like) when it has one."""
        try:
            families = self.engine.color_families if self.engine is not None else None
        except BUNDLE_FAILURES:  # malformed colours: the fixed palette still draws; colour search reports it
            families = None
        out = []
        for name in self.kiosk_config.colors:
            rgb = PALETTE[name]
            if families is not None and name in families.names and name != "negro":  # black stays ink-black
                r, g, b = (float(v) / 255.0 for v in families.rgb[families.names.index(name)])
                rgb = (r, g, b)
            out.append((name, rgb))
        return out

    def start_session(self) -> None:
        """A shopper touched the attract screen: open a session on the drawing screen."""
        self.in_session = True
        self.idle.note_touch()
        self.show("draw")

    def reset_session(self) -> None:
        """Privacy reset: forget the drawing, the query and the results; lock admin;
        back to attract. A bundle that sync activated meanwhile is picked up here."""
        self.idle.note_touch()
        if self.manager.has_screen("draw"):
            self.screen("draw").canvas_widget.reset()
            self._palette_of = None  # the next shopper starts in black
        if self.manager.has_screen("text"):
            self.screen("text").clear()
        self.searches.forget()
        self.admin.lock()
        self.in_session = False
        if self.admin.reload_if_changed():
            self.searches.warm_up()
        self.show("attract")
        settle_garbage()  # nobody is drawing now

    # --- kiosk lock-down -------------------------------------------------------------
    def keep_window_open(self, *_args: Any, **_kwargs: Any) -> bool:
        """Window ``on_request_close`` handler: refuse to close when locked down outside admin (True keeps the window)."""
        return self.lock_down and not self.admin_unlocked

    def swallow_key(self, _window: Any, key: int, *_args: Any) -> bool:
        """Window ``on_keyboard`` handler: when locked down, swallow Escape (key 27) so it cannot leave the app."""
        return self.lock_down and key == 27
