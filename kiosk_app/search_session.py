"""A shopper's searches: dispatched to the worker, stale replies dropped, result grids filled.

Every search has a kind ("sketch", "text", "photo", "similar") and a
generation, counted per kind. Searches run on a :class:`SearchWorker` thread,
which also decodes the thumbnails and renders the tile texts the results need,
and come back through ``Clock.schedule_once``; a reply whose generation is
older than the latest request of its kind (or than an idle reset) is dropped.

Observable state stays on the App: ``app.results`` (sketch results, a list of
match dicts) and ``app.status`` (an error line, or "").

The shopper's filter (the draw screen's category chips, price range and "in
stock only": ``screens/filter_bar.py``) is ``filters``; every search takes it,
a change searches the drawing again, and the idle reset clears it. A filter
that leaves nothing shows why on the status line.

A search that fails because of the shopper's input (an empty sketch, an
unreadable photo: ``failures.SHOPPER_ERRORS``) shows on the status line; any
other failure of a search, of the warm-up or of showing results means the
bundle broke, and goes to ``app.admin.bundle_failed`` (logged, "unavailable").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from kivy.clock import Clock
from kivy.core.window import Window
from kivy.metrics import dp, sp
from PIL import Image

from vitrina.runtime.detector import DetectionResult
from vitrina.runtime.filters import SearchFilter
from vitrina.runtime.photo import IMAGE_FORMATS, ImageBudgetError, load_image_bounded, on_white
from vitrina.runtime.photo_search import PHOTO_MIN_SIDE, PhotoSearchResult
from vitrina.runtime.product_search import ProductSearch, TextSearchResult
from vitrina.runtime.search import SearchResult
from vitrina.runtime.text import QueryWords

from .failures import BUNDLE_FAILURES, SHOPPER_ERRORS, PhotoUnreadableError
from .geometry import clip_text
from .paint_log import PaintLog
from .screens import ProductTile
from .screens.filter_bar import price_ranges
from .textures import TextTextures, ThumbnailCache
from .worker import Reply, SearchWorker

if TYPE_CHECKING:
    from .app import KioskApp

#: Search kind → the screen whose grid shows its results.
RESULT_SCREENS = {"sketch": "draw", "text": "text", "photo": "photo", "similar": "detail"}

#: Kind of the warm-up search: its results are dropped, its failure is a bundle failure.
WARM_UP = "warm-up"

#: Longest side of the photo shown with its outlines on the photo screen, pixels.
PHOTO_VIEW_SIDE = 512

TITLE_RGBA = (0.1, 0.1, 0.12, 1)
SUBTITLE_RGBA = (0.35, 0.35, 0.4, 1)


class SearchSession:
    """The searches of one kiosk app (``app.searches``); kv calls its ``by_*`` methods.

    Attributes: ``worker`` (the search thread), ``shown`` (kind → generation
    whose results are on screen), ``paint_log`` (:class:`PaintLog`),
    ``thumbnails`` and ``texts`` (texture caches).
    """

    def __init__(self, app: KioskApp):
        self.app = app
        self.thumbnails = ThumbnailCache(limit=512)
        self.texts = TextTextures()
        self.paint_log = PaintLog()
        self.shown: dict[str, int] = {}
        self._generations: dict[str, int] = {}
        self._tiles: dict[str, list[ProductTile]] = {}  # screen → reusable result tiles, in display order
        self.filters = SearchFilter()
        self._last_live = 0.0  # time.monotonic() of the last sketch search
        self._floor: dict[str, int] = {}  # kind → generations at or below it are void (a reset, a cleared canvas)
        # photo search: generation → (display pixels, display boxes, photo, detections); the photo on screen
        self._photo_views: dict[int, tuple[np.ndarray, list[list[float]], Image.Image, DetectionResult | None]] = {}
        self._photo: tuple[Image.Image, DetectionResult | None] | None = None
        self.worker = SearchWorker(lambda reply: Clock.schedule_once(lambda _dt: self.on_reply(reply)))

    # --- lifecycle -----------------------------------------------------------------
    def generation(self, kind: str) -> int:
        """The latest generation asked for of ``kind`` (0 before the first)."""
        return self._generations.get(kind, 0)

    def forget(self) -> None:
        """Make everything in flight stale and clear the results, the status and every grid shown so far."""
        for kind in list(self._generations):
            self._generations[kind] += 1
            self._floor[kind] = self._generations[kind]
        self.app.results = []
        self.app.status = ""
        self.filters = SearchFilter()
        if self.app.manager.has_screen("draw"):
            self.app.screen("draw").filter_bar.clear()
        for name in RESULT_SCREENS.values():
            if self.app.manager.has_screen(name):
                self.fill_grid(name, [])

    def stop(self) -> None:
        """Stop the worker thread (waits up to 2 s for a running search)."""
        self.worker.stop()

    def warm_up(self) -> None:
        """Load fonts and a thumbnail sheet now, and run one search of each kind on the
        worker (pages in the codes, the reducer and the models), so the first shopper's
        results do not pay for it (a text search builds the keyword index: 0.4 s at 70,000
        products). The warm-up's results are dropped; its failure is the bundle's."""
        for px, rgba in ((sp(13), TITLE_RGBA), (sp(12), SUBTITLE_RGBA)):
            self.texts.get(TextTextures.key("Ag 0123456789 · $", px, rgba))
        engine = self.app.engine
        if engine is None or not engine.bundle.items:
            return
        self.populate_filters()
        try:
            self.thumbnail(0)
        except BUNDLE_FAILURES as exc:
            self.app.admin.bundle_failed(exc, "warm-up")
            return
        line = [np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 80.0]])]
        k = self.app.kiosk_config.results
        generation = self._generations[WARM_UP] = self._generations.get(WARM_UP, 0) + 1
        word = engine.bundle.items[0].category  # a word every catalog's vocabulary holds
        self.worker.submit(
            WARM_UP,
            generation,
            lambda: (engine.by_strokes(line, k), engine.similar_products(0, 12), engine.by_text(word, k)),
        )

    # --- filters -------------------------------------------------------------------
    def populate_filters(self) -> None:
        """Fill the draw screen's filter bar for the open catalog: its categories, price quartiles."""
        engine = self.app.engine
        if engine is None:
            return
        bar = self.app.screen("draw").filter_bar
        prices = np.fromiter((i.price for i in engine.bundle.items), dtype=np.float64, count=len(engine.bundle.items))
        bar.populate(
            engine.bundle.categories, price_ranges(prices, self.app.texts["any_price"]), self.app.texts["in_stock_only"]
        )
        bar.on_change = self.set_filter
        self.filters = SearchFilter()

    def set_filter(
        self, categories: tuple[str, ...], price: tuple[str, float | None, float | None], in_stock: bool
    ) -> None:
        """The shopper changed a chip: keep the filter and search the drawing again."""
        self.filters = SearchFilter(categories=categories, min_price=price[1], max_price=price[2], in_stock=in_stock)
        self.idle_touch()
        if self.app.manager.has_screen("draw") and not self.app.screen("draw").canvas_widget.is_empty:
            self.sketch_now()

    def idle_touch(self) -> None:
        """A chip counts as the shopper's touch for the idle reset."""
        idle = getattr(self.app, "idle", None)
        if idle is not None:
            idle.note_touch()

    # --- dispatch ------------------------------------------------------------------
    def submit(self, kind: str, job: Callable[[ProductSearch], SearchResult]) -> int:
        """Run ``job(engine)`` on the worker as the newest search of ``kind``; returns
        its generation (-1 without an engine). The reply comes back with the
        thumbnails and tile texts already decoded there, so the UI thread only uploads textures."""
        engine = self.app.engine
        if engine is None:
            return -1
        generation = self._generations.get(kind, 0) + 1
        self._generations[kind] = generation
        self.paint_log.note_submitted(kind, generation)

        def run() -> tuple[SearchResult, dict[Any, Any]]:
            result = job(engine)
            pixels: dict[Any, Any] = {
                m.item: engine.catalog.thumbnail(m.item) for m in result.matches if m.item not in self.thumbnails
            }
            for m in result.matches:
                for key in self._text_keys(m.__dict__):
                    if key not in self.texts:
                        pixels[key] = self.texts.render(key)
            return result, pixels

        self.worker.submit(kind, generation, run)
        return generation

    def schedule_sketch(self) -> None:
        """A stroke ended or the drawing changed: search it at once (``debounce_ms`` 0, the
        default: a query costs milliseconds), or ``debounce_ms`` after the last change."""
        Clock.unschedule(self.sketch_now)
        debounce = self.app.kiosk_config.debounce_ms
        if debounce == 0:
            self.sketch_now()
        else:
            Clock.schedule_once(self.sketch_now, debounce / 1000.0)

    def live_sketch(self) -> None:
        """A stroke is being drawn: search the drawing so far, at most every ``live_search_ms``
        (the newest search wins: the worker drops older pending ones, the UI older replies)."""
        interval = self.app.kiosk_config.live_search_ms
        now = time.monotonic()
        if interval == 0 or now - self._last_live < interval / 1000.0:
            return
        self._last_live = now
        self.sketch_now(drawing=True)

    def sketch_now(self, _dt: float = 0.0, drawing: bool = False) -> None:
        """Search the drawing now (with ``drawing``, the strokes still being drawn too);
        an empty canvas clears the sketch results instead."""
        canvas = self.app.screen("draw").canvas_widget
        strokes = canvas.search_strokes(drawing=drawing)
        if not strokes:
            self._generations["sketch"] = self._floor["sketch"] = self._generations.get("sketch", 0) + 1
            self.app.results = []
            self.fill_grid("draw", [])
            return
        if not drawing:
            self._last_live = time.monotonic()  # the next live search waits a full interval after this one
        k, filters = self.app.kiosk_config.results, self.filters
        self.submit("sketch", lambda engine: engine.by_strokes(strokes, k, filters=filters))

    def by_text(self, text: str) -> None:
        """Keyword search for ``text`` (blank text only clears the status and "did you mean")."""
        if not text.strip():
            self.app.status = ""
            if self.app.manager.has_screen("text"):
                self.app.screen("text").show_query(QueryWords(()), "")
            return
        k, filters = self.app.kiosk_config.results, self.filters
        self.submit("text", lambda engine: engine.by_text(text, k, filters=filters))

    def suggest(self, text: str) -> None:
        """Offer up to 6 catalog words completing ``text`` on the text screen (synchronous, cheap)."""
        app = self.app
        if app.engine is None or not app.manager.has_screen("text"):
            return
        app.screen("text").show_suggestions(app.engine.suggest(text, limit=6), self.complete)

    def accept_correction(self) -> None:
        """ "Did you mean" was pressed: put the corrected words in the field and search them."""
        screen = self.app.screen("text")
        words = screen.corrected_query
        if words:
            screen.query.text = words
            self.by_text(words)

    def complete(self, word: str) -> None:
        """A suggestion was chosen: complete the query with ``word`` and search it."""
        self.by_text(self.app.screen("text").complete(word))

    def by_photo_file(self, selection: list[str]) -> None:
        """Photo search with the first chosen file (a chooser's ``selection``; empty: nothing).
        An unreadable file comes back as a :class:`PhotoUnreadableError` naming it."""
        if not selection:
            return
        path = Path(selection[0])

        def load(engine: ProductSearch) -> Image.Image:
            try:  # within the pixel budget, decoded reduced (the detector's crops want some detail)
                return load_image_bounded(path, min_side=PHOTO_MIN_SIDE, formats=IMAGE_FORMATS)
            except ImageBudgetError as exc:  # the shopper's file, not the bundle
                raise PhotoUnreadableError(f"cannot read photo {path.name}: {exc}") from None

        self._photo_search(load)

    def by_camera(self) -> None:
        """Photo search with the camera's current frame (nothing without a frame)."""
        image = self.app.screen("photo").capture()
        if image is not None:
            self._photo_search(lambda _engine: image)

    def by_photo_box(self, index: int) -> None:
        """Search detected product ``index`` of the photo on screen (a tapped outline)."""
        if self._photo is None:
            return
        image, detections = self._photo
        k, filters = self.app.kiosk_config.results, self.filters
        self._submit_photo(
            lambda engine: (image, engine.by_photo(image, k, index, detections=detections, filters=filters))
        )

    def _photo_search(self, load: Callable[[ProductSearch], Image.Image]) -> None:
        """Detect the products in the photo ``load`` gives and search the largest."""
        k, filters = self.app.kiosk_config.results, self.filters

        def job(engine: ProductSearch) -> tuple[Image.Image, PhotoSearchResult]:
            image = load(engine)
            return image, engine.by_photo(image, k, filters=filters)

        self._submit_photo(job)

    def _submit_photo(self, job: Callable[[ProductSearch], tuple[Image.Image, PhotoSearchResult]]) -> None:
        """Run a photo search; keep its photo (display-sized) and boxes for the reply to show."""
        shown: dict[int, tuple[np.ndarray, list[list[float]], Image.Image, DetectionResult | None]] = self._photo_views

        generation = self.generation("photo") + 1  # the one submit() gives this search

        def search(engine: ProductSearch) -> PhotoSearchResult:
            image, result = job(engine)
            view = on_white(image)
            view.thumbnail((PHOTO_VIEW_SIDE, PHOTO_VIEW_SIDE))
            scale = view.size[0] / max(image.size[0], 1)
            boxes = [] if result.detections is None else [list(b * scale) for b in result.detections.boxes]
            shown[generation] = (np.asarray(view), boxes, image, result.detections)
            return result

        self.submit("photo", search)

    def show_detail(self, item: int) -> None:
        """Show product ``item`` on the detail screen and search its similar products (up to 12):
        title and image together (the text-visual model) when the bundle has it, else by look."""
        app = self.app
        engine = app.engine
        if engine is None:
            return
        detail = app.screen("detail")
        try:
            product = engine.catalog.items[item]  # today's price; products added on the device too
            detail.texture = self.thumbnail(item)
        except BUNDLE_FAILURES as exc:
            app.admin.bundle_failed(exc, f"showing product {item}")
            return
        detail.title = product.title
        detail.subtitle = f"{product.color} · ${product.price:,.0f}"
        self.fill_grid("detail", [])
        filters = self.filters
        k = min(12, app.kiosk_config.results)
        self.submit("similar", lambda e: e.similar_products(item, k=k, filters=filters))
        app.show("detail")

    # --- replies -------------------------------------------------------------------
    def on_reply(self, reply: Reply) -> None:
        """A search came back (UI thread): drop it if stale; else show the shopper's input
        error on the status line, report any other failure as the bundle's, or show the results."""
        submitted = self.paint_log.take_submitted(reply.kind, reply.generation)
        if not self._current(reply):
            return  # a newer request (or an idle reset) made this stale
        app = self.app
        if reply.kind != WARM_UP:
            self.shown[reply.kind] = reply.generation
        if isinstance(reply.error, SHOPPER_ERRORS):
            app.status = app.texts["error"].format(error=reply.error)
            return
        if reply.error is not None:
            app.admin.bundle_failed(reply.error, f"{reply.kind} search")
            return
        if reply.kind == WARM_UP:
            return
        try:
            changed = self._show_results(reply)
        except BUNDLE_FAILURES as exc:
            app.admin.bundle_failed(exc, f"showing {reply.kind} results")
            return
        if submitted is not None:
            on_screen = not changed and not Window.canvas.needs_redraw
            self.paint_log.note_filled(reply.kind, reply.generation, submitted, on_screen=on_screen)

    def _current(self, reply: Reply) -> bool:
        """Is ``reply`` still worth showing? The latest request of its kind is; a sketch reply
        also is when it is newer than the sketch results on screen (and than any reset):
        while a finger draws, searches are asked for every ~100 ms, and on a slow device each
        reply would be stale by the time it came, so none would ever show. An older result
        never replaces a newer one."""
        latest = self._generations.get(reply.kind)
        if reply.generation == latest:
            return True
        if reply.kind != "sketch" or latest is None or reply.generation > latest:
            return False
        return reply.generation > max(self.shown.get(reply.kind, 0), self._floor.get(reply.kind, 0))

    def _show_results(self, reply: Reply) -> bool:
        """Upload a reply's decoded pixels and fill its screen's grid (and ``app.results`` for a sketch).
        Returns False when that changed nothing on screen (the same tiles and status line as before)."""
        result, pixels = reply.value
        for key, data in pixels.items():
            if isinstance(key, tuple):
                self.texts.put(key, data)
            else:
                self.thumbnails.put(key, data)
        matches = [m.__dict__ for m in result.matches]
        if reply.kind == "sketch":
            self.app.results = matches
        status = self.app.status
        changed = reply.kind in ("text", "photo")  # their screens show the query or photo too
        if reply.kind == "photo" and reply.generation in self._photo_views:
            pixels, boxes, image, detections = self._photo_views.pop(reply.generation)
            self._photo_views.clear()
            self._photo = (image, detections)
            self.app.screen("photo").show_photo(pixels, boxes, result.searched_box)
        self.app.status = result.note or ""  # a filter that left nothing says why
        if isinstance(result, TextSearchResult):
            self.app.screen("text").show_query(result.query, self.app.texts["did_you_mean"])
            if result.query.empty:
                self.app.status = self.app.texts["no_known_word"]
        changed |= self.app.status != status
        return self.fill_grid(RESULT_SCREENS[reply.kind], matches) or changed

    def fill_grid(self, screen: str, matches: list[dict[str, Any]]) -> bool:
        """Show ``matches`` (match dicts: item, title, color, price ...) in a screen's
        grid, reusing its tiles (creating widgets is what made frames stall, not the search).
        Returns True if any tile changed, was added or was removed."""
        shown_on = self.app.screen(screen)
        grid = shown_on.similar_grid if screen == "detail" else shown_on.results_grid
        tiles = self._tiles.setdefault(screen, [])
        while len(tiles) < len(matches):
            tile = ProductTile()
            tile.bind(on_release=lambda t: self.show_detail(int(t.item)))
            tiles.append(tile)
        changed = False
        for tile, m in zip(tiles, matches):
            title, subtitle = self._text_keys(m)
            shown = (m["item"], self.thumbnail(m["item"]), self.texts.get(title), self.texts.get(subtitle))
            if shown != (tile.item, tile.texture, tile.title_texture, tile.subtitle_texture) or tile.parent is None:
                changed = True
                tile.item, tile.texture, tile.title_texture, tile.subtitle_texture = shown
            if tile.parent is None:
                grid.add_widget(tile)
        for tile in tiles[len(matches) :]:
            if tile.parent is not None:
                changed = True
                grid.remove_widget(tile)
        return changed

    def thumbnail(self, item: int):
        """Texture of product ``item``'s thumbnail (cached; decoded here only if the worker did not), or None without a bundle."""
        engine = self.app.engine
        return self.thumbnails.get(item, engine.catalog.thumbnail if engine is not None else None)

    def _text_keys(self, m: dict[str, Any]) -> tuple[tuple, tuple]:
        """Text-cache keys of a result tile's title (clipped to the tile) and "colour · price"."""
        title = clip_text(m["title"], self.app.tile - dp(8), sp(13))
        return (
            TextTextures.key(title, sp(13), TITLE_RGBA),
            TextTextures.key(f"{m['color']} · ${m['price']:,.0f}", sp(12), SUBTITLE_RGBA),
        )
