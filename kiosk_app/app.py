"""The kiosk application: screens, searches off the UI thread, idle reset, lock-down.

State the kv files bind to lives in App properties (``results``, ``status``,
``portrait``, ``tile``, ``admin_unlocked`` ...). Searches run on a
:class:`SearchWorker` thread and come back through ``Clock.schedule_once``; a
reply whose generation is older than the latest request is dropped.

Import this module only after :func:`vitrina.kiosk_app.main.prepare_kivy` has
set Kivy's configuration (window, input, exit-on-escape).
"""

from __future__ import annotations

import gc
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from kivy.app import App
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.metrics import dp, sp
from kivy.properties import BooleanProperty, DictProperty, ListProperty, NumericProperty, StringProperty
from kivy.uix.button import Button
from kivy.uix.screenmanager import NoTransition, ScreenManager
from PIL import Image

from vitrina.runtime.bundle import Bundle, BundleError
from vitrina.runtime.product_search import ProductSearch
from vitrina.runtime.search import SearchResult

from .config import KioskConfig, verify_pin
from .geometry import clip_text, layout_for
from .screens import SCREENS, ProductTile, load_kv
from .strings import TEXTS
from .textures import TextTextures, thumbnail_texture
from .worker import Reply, SearchWorker

_THUMB_CACHE_SIZE = 512


def bundle_stamp(path: Path) -> tuple[str, int] | None:
    """Identity of the bundle a path points at now (resolved path, manifest mtime), or None."""
    try:
        real = path.resolve()
        return str(real), (real / "manifest.json").stat().st_mtime_ns
    except OSError:
        return None


def settle_garbage() -> None:
    """Collect now, then freeze every surviving object out of the collector's view.

    A full (generation 2) collection over the app's objects took ~80 ms: a stutter
    when it fell while a finger was drawing. Done at start-up and at each idle
    reset (nobody drawing), the later collections only scan what a session made.
    """
    gc.collect()
    gc.freeze()


class KioskApp(App):
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

    def __init__(self, config: KioskConfig, bundle_path: Path | None, lock_down: bool = True, **kwargs: Any):
        super().__init__(**kwargs)
        self.kiosk_config = config
        self.bundle_path = bundle_path
        self.lock_down = lock_down
        self.texts = TEXTS[config.language]
        self.engine: ProductSearch | None = None
        self._stamp: tuple[str, int] | None = None
        self._generations: dict[str, int] = {}
        self._thumbs: dict[int, Any] = {}
        self._texts = TextTextures()
        self._tiles: dict[str, list[ProductTile]] = {}  # screen → reusable result tiles, in display order
        self._last_touch = time.monotonic()
        self.in_session = False
        # (kind, generation, submitted, painted) monotonic seconds, for the responsiveness benchmark
        self.painted: list[tuple[str, int, float, float]] = []
        self._submitted: dict[tuple[str, int], float] = {}
        self._awaiting_paint: list[tuple[str, int, float]] = []
        self.shown: dict[str, int] = {}  # kind → generation whose results are on screen
        self.worker = SearchWorker(lambda reply: Clock.schedule_once(lambda _dt: self._on_reply(reply)))

    # --- build / lifecycle -----------------------------------------------------
    def build(self) -> ScreenManager:
        self.title = "vitrina"
        load_kv("widgets")
        self.manager = ScreenManager(transition=NoTransition())
        self._open_bundle()
        self._apply_layout(*Window.size)
        self._warm_up()
        self.show("attract" if self.engine else "unavailable")
        return self.manager

    def on_start(self) -> None:
        Window.bind(on_request_close=self._on_request_close, on_keyboard=self._on_keyboard, on_resize=lambda _w, w, h: self._apply_layout(w, h))
        Window.bind(on_touch_down=self._note_touch, on_touch_move=self._note_touch, on_flip=self._on_flip)
        Clock.schedule_interval(self._check_idle, 1.0)
        settle_garbage()

    def on_stop(self) -> None:
        self.worker.stop()

    def _open_bundle(self) -> bool:
        """(Re)open the configured bundle; on failure show why and keep any working engine."""
        if self.bundle_path is None:
            self.unavailable_reason = "no bundle configured (set bundle in the config or pass --bundle)"
            return False
        try:
            engine = ProductSearch(Bundle.open(self.bundle_path))
        except (BundleError, ValueError, RuntimeError, OSError) as exc:
            self.unavailable_reason = str(exc)
            return False
        self.engine = engine
        self._stamp = bundle_stamp(self.bundle_path)
        self._thumbs.clear()
        m = engine.bundle.manifest
        self.bundle_summary = (
            f"catalog: {m['catalog']['name']}\nformat version: {m['format_version']}, vitrina {m['vitrina_version']}\n"
            f"products: {m['catalog']['items']}\ncodes: {m['codes']['type']} × {m['codes']['dims']}\n"
            f"built: {m['created']}\npath: {engine.bundle.path}"
        )
        release = m.get("release")
        if release:
            self.bundle_summary += f"\nrelease: v{release['version']}, signed {release['signed']}, expires {release['expires']}"
        return True

    def _warm_up(self) -> None:
        """Load fonts and a thumbnail sheet now, and run one search of each kind on the
        worker (pages in the codes, the reducer and the models), so the first shopper's
        results do not pay for it. The warm-up replies are dropped (no generation asked for them)."""
        for px, rgba in ((sp(13), (0.1, 0.1, 0.12, 1)), (sp(12), (0.35, 0.35, 0.4, 1))):
            self._texts.get(TextTextures.key("Ag 0123456789 · $", px, rgba))
        engine = self.engine
        if engine is not None and engine.bundle.items:
            self.thumbnail(0)
            line = [np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 80.0]])]
            self.worker.submit("warm-up", 0, lambda: (engine.by_strokes(line, self.kiosk_config.results), engine.similar(0, 12)))

    def _apply_layout(self, width: float, height: float) -> None:
        layout = layout_for(width, height)
        self.portrait, self.tile = layout.portrait, layout.tile

    # --- navigation --------------------------------------------------------------
    def screen(self, name: str):
        """The screen called ``name``, created (and its kv loaded) on first use."""
        if not self.manager.has_screen(name):
            load_kv(name)
            self.manager.add_widget(SCREENS[name](name=name))
        return self.manager.get_screen(name)

    def show(self, name: str) -> None:
        if name not in ("admin", "unavailable") and self.engine is None:
            name = "unavailable"
        self.screen(name)
        self.manager.current = name
        self.status = ""

    def start_session(self) -> None:
        self.in_session = True
        self._last_touch = time.monotonic()
        self.show("draw")

    # --- kiosk lock-down -------------------------------------------------------------
    def _on_request_close(self, *_args: Any, **_kwargs: Any) -> bool:
        """Refuse to close outside admin (returning True keeps the window)."""
        return self.lock_down and not self.admin_unlocked

    def _on_keyboard(self, _window: Any, key: int, *_args: Any) -> bool:
        return self.lock_down and key == 27  # swallow Escape

    # --- idle reset ----------------------------------------------------------------------
    def _note_touch(self, *_args: Any) -> None:
        self._last_touch = time.monotonic()

    def _check_idle(self, _dt: float) -> None:
        if time.monotonic() - self._last_touch >= self.kiosk_config.idle_seconds:
            self.reset_session()

    def reset_session(self) -> None:
        """Privacy reset: forget the drawing, the query and the results; back to attract.
        A bundle that sync activated meanwhile is picked up here."""
        self._last_touch = time.monotonic()
        for kind in list(self._generations):
            self._generations[kind] += 1  # anything in flight is now stale
        if self.manager.has_screen("draw"):
            self.screen("draw").canvas_widget.reset()
        if self.manager.has_screen("text"):
            self.screen("text").query.text = ""
        self.results = []
        self.status = ""
        for name in ("draw", "text", "photo", "detail"):
            if self.manager.has_screen(name):
                self._fill_grid(name, [])
        self.admin_unlocked = False
        self.admin_message = ""
        self.in_session = False
        if self.bundle_path is not None and bundle_stamp(self.bundle_path) != self._stamp:
            self._open_bundle()
            self._warm_up()
        self.show("attract" if self.engine else "unavailable")
        settle_garbage()  # nobody is drawing now

    # --- searches --------------------------------------------------------------------------
    def _submit(self, kind: str, job: Callable[[ProductSearch], SearchResult]) -> int:
        """Run ``job`` on the worker; its result comes back with the thumbnails
        already decoded there, so the UI thread only uploads textures."""
        engine = self.engine
        if engine is None:
            return -1
        generation = self._generations.get(kind, 0) + 1
        self._generations[kind] = generation
        self._submitted[(kind, generation)] = time.monotonic()

        def run() -> tuple[SearchResult, dict[Any, Any]]:
            result = job(engine)
            pixels: dict[Any, Any] = {m.item: engine.bundle.thumbnail(m.item) for m in result.matches if m.item not in self._thumbs}
            for m in result.matches:
                for key in self._text_keys(m.__dict__):
                    if key not in self._texts:
                        pixels[key] = self._texts.render(key)
            return result, pixels

        self.worker.submit(kind, generation, run)
        return generation

    def schedule_sketch_search(self) -> None:
        """Debounce: search ``debounce_ms`` after the last stroke change."""
        Clock.unschedule(self._sketch_search_now)
        Clock.schedule_once(self._sketch_search_now, self.kiosk_config.debounce_ms / 1000.0)

    def _sketch_search_now(self, _dt: float = 0.0) -> None:
        canvas = self.screen("draw").canvas_widget
        if canvas.is_empty:
            self._generations["sketch"] = self._generations.get("sketch", 0) + 1
            self.results = []
            self._fill_grid("draw", [])
            return
        strokes = canvas.search_strokes()
        k = self.kiosk_config.results
        self._submit("sketch", lambda engine: engine.by_strokes(strokes, k))

    def text_search(self, text: str) -> None:
        if not text.strip():
            self.status = ""
            return
        k = self.kiosk_config.results
        self._submit("text", lambda engine: engine.by_text(text, k))

    def suggest(self, text: str) -> None:
        if self.engine is None or not self.manager.has_screen("text"):
            return
        box = self.screen("text").suggestions
        box.clear_widgets()
        for word in self.engine.suggest(text, limit=6):
            box.add_widget(Button(text=word, font_size="16sp", on_release=lambda b: self._complete(b.text)))

    def _complete(self, word: str) -> None:
        field = self.screen("text").query
        head = field.text.rsplit(" ", 1)[0] if " " in field.text.strip() else ""
        field.text = f"{head} {word}".strip()
        self.text_search(field.text)

    def photo_search(self, selection: list[str]) -> None:
        if not selection:
            return
        path = Path(selection[0])
        k = self.kiosk_config.results

        def job(engine: ProductSearch) -> SearchResult:
            try:
                with Image.open(path) as image:
                    image.load()
                    return engine.by_photo(image, k)
            except OSError as exc:
                raise ValueError(f"cannot read photo {path.name}: {exc}") from None

        self._submit("photo", job)

    def photo_capture(self) -> None:
        image = self.screen("photo").capture()
        if image is not None:
            k = self.kiosk_config.results
            self._submit("photo", lambda engine: engine.by_photo(image, k))

    def show_detail(self, item: int) -> None:
        engine = self.engine
        if engine is None:
            return
        product = engine.bundle.items[item]
        detail = self.screen("detail")
        detail.texture = self.thumbnail(item)
        detail.title = product.title
        detail.subtitle = f"{product.color} · ${product.price:,.0f}"
        self._fill_grid("detail", [])
        self._submit("similar", lambda e: e.similar(item, k=min(12, self.kiosk_config.results)))
        self.show("detail")

    def _on_reply(self, reply: Reply) -> None:
        submitted = self._submitted.pop((reply.kind, reply.generation), None)
        if reply.generation != self._generations.get(reply.kind):
            return  # a newer request (or an idle reset) made this stale
        self.shown[reply.kind] = reply.generation
        if reply.error is not None:
            self.status = self.texts["error"].format(error=reply.error)
            return
        result, pixels = reply.value
        for key, data in pixels.items():
            if isinstance(key, tuple):
                self._texts.put(key, data)
            else:
                self._cache_texture(key, data)
        matches = [m.__dict__ for m in result.matches]
        target = {"sketch": "draw", "text": "text", "photo": "photo", "similar": "detail"}[reply.kind]
        if reply.kind == "sketch":
            self.results = matches
        self.status = ""
        self._fill_grid(target, matches)
        if submitted is not None:
            self._awaiting_paint.append((reply.kind, reply.generation, submitted))

    def _on_flip(self, *_args: Any) -> None:
        """A frame reached the screen: whatever was filled before it is now painted."""
        if self._awaiting_paint:
            now = time.monotonic()
            self.painted += [(kind, gen, submitted, now) for kind, gen, submitted in self._awaiting_paint]
            self._awaiting_paint.clear()

    def _fill_grid(self, screen: str, matches: list[dict[str, Any]]) -> None:
        """Show ``matches`` in a screen's grid, reusing its tiles (creating widgets is
        what made frames stall, not the search)."""
        grid = self.screen(screen).similar_grid if screen == "detail" else self.screen(screen).results_grid
        tiles = self._tiles.setdefault(screen, [])
        while len(tiles) < len(matches):
            tile = ProductTile()
            tile.bind(on_release=lambda t: self.show_detail(int(t.item)))
            tiles.append(tile)
        for tile, m in zip(tiles, matches):
            title, subtitle = self._text_keys(m)
            tile.item, tile.texture = m["item"], self.thumbnail(m["item"])
            tile.title_texture, tile.subtitle_texture = self._texts.get(title), self._texts.get(subtitle)
            if tile.parent is None:
                grid.add_widget(tile)
        for tile in tiles[len(matches) :]:
            if tile.parent is not None:
                grid.remove_widget(tile)

    def _text_keys(self, m: dict[str, Any]) -> tuple[tuple, tuple]:
        """Text-cache keys of a result tile's title (clipped to the tile) and "colour · price"."""
        title = clip_text(m["title"], self.tile - dp(8), sp(13))
        return (
            TextTextures.key(title, sp(13), (0.1, 0.1, 0.12, 1)),
            TextTextures.key(f"{m['color']} · ${m['price']:,.0f}", sp(12), (0.35, 0.35, 0.4, 1)),
        )

    def _cache_texture(self, item: int, pixels: Any) -> Any:
        if len(self._thumbs) >= _THUMB_CACHE_SIZE:
            self._thumbs.pop(next(iter(self._thumbs)))
        texture = self._thumbs[item] = thumbnail_texture(pixels)
        return texture

    def thumbnail(self, item: int):
        """Texture of a product thumbnail (cached; decoded here only if the worker did not)."""
        texture = self._thumbs.get(item)
        if texture is None and self.engine is not None:
            texture = self._cache_texture(item, self.engine.bundle.thumbnail(item))
        return texture

    # --- admin ------------------------------------------------------------------------------
    def unlock_admin(self, pin: str) -> None:
        if not self.kiosk_config.admin_pin_hash:
            self.admin_message = self.texts["no_pin"]
        elif verify_pin(pin, self.kiosk_config.admin_pin_hash):
            self.admin_unlocked = True
            self.admin_message = ""
        else:
            self.admin_message = self.texts["wrong_pin"]
        if self.manager.has_screen("admin"):
            self.screen("admin").pin.text = ""

    def leave_admin(self) -> None:
        self.admin_unlocked = False
        self.admin_message = ""
        self.show("draw" if self.in_session and self.engine else ("attract" if self.engine else "unavailable"))

    def run_admin_benchmark(self) -> None:
        if not self.admin_unlocked or self.engine is None:
            return
        path = self.engine.bundle.path
        self.admin_message = "benchmark running…"

        def work() -> None:
            from vitrina.runtime.bench.benchmark import BenchOptions, run_benchmark

            try:
                report = run_benchmark(path, BenchOptions(queries=50, cold_runs=1, accuracy=False))
                sketch = report["latency"]["1"].get("sketch", {}).get("total", {})
                text = f"sketch p50 {sketch.get('p50', 0):.1f} ms, p95 {sketch.get('p95', 0):.1f} ms; cold start {report['cold_start'].get('median_s', 0):.2f} s"
            except Exception as exc:  # noqa: BLE001 - shown to staff
                text = f"benchmark failed: {exc}"
            Clock.schedule_once(lambda _dt: setattr(self, "admin_message", text))

        threading.Thread(target=work, daemon=True).start()

    def run_admin_sync(self) -> None:
        """Sync from the configured source on a thread; progress in :attr:`sync_progress` (0-1).

        The active bundle changes only when the whole new one is verified; it is
        loaded right away (staff are at the screen, no shopper session is open).
        """
        cfg = self.kiosk_config
        if not self.admin_unlocked or self.syncing:
            return
        if not (cfg.device_root and cfg.sync_source and cfg.trusted_keys):
            self.admin_message = "sync needs device_root, sync_source and trusted_keys in the config"
            return
        self.syncing, self.sync_progress = True, 0.0
        self.admin_message = f"sync from {cfg.sync_source}…"

        def progress(p) -> None:  # noqa: ANN001 - SyncProgress, on the sync thread
            eta = f", {p.eta_s:.0f} s left" if p.eta_s is not None else ""
            text = f"{p.done / 1e6:.1f} / {p.total / 1e6:.1f} MB at {p.rate / 1e6:.1f} MB/s{eta}"
            Clock.schedule_once(lambda _dt: self._sync_update(p.done / max(p.total, 1), text))

        def work() -> None:
            from vitrina.runtime.sync.client import SyncError, sync
            from vitrina.runtime.sync.trust import PublicKey

            try:
                result = sync(cfg.sync_source, cfg.device_root, [PublicKey.from_hex(k) for k in cfg.trusted_keys], progress=progress)
                text = (f"{result.catalog} v{result.version} already active" if result.up_to_date else
                        f"activated {result.catalog} v{result.version} ({result.transferred / 1e6:.1f} MB in {result.seconds:.0f} s)")
                ok = True
            except (SyncError, OSError, ValueError) as exc:
                text, ok = f"sync failed, catalog unchanged: {exc}", False
            Clock.schedule_once(lambda _dt: self._sync_done(text, ok))

        threading.Thread(target=work, daemon=True).start()

    def _sync_update(self, fraction: float, text: str) -> None:
        self.sync_progress = fraction
        self.admin_message = text

    def _sync_done(self, text: str, ok: bool) -> None:
        self.syncing = False
        self.sync_progress = 1.0 if ok else self.sync_progress
        if ok and self.bundle_path is not None and bundle_stamp(self.bundle_path) != self._stamp:
            self._open_bundle()
        self.admin_message = text

    def exit_kiosk(self) -> None:
        if self.admin_unlocked:
            self.stop()
