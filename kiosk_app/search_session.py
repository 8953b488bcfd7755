"""A shopper's searches: dispatched to the worker, stale replies dropped, result grids filled.

Every search has a kind ("sketch", "text", "photo", "similar") and a
generation, counted per kind. Searches run on a :class:`SearchWorker` thread,
which also decodes the thumbnails and renders the tile texts the results need,
and come back through ``Clock.schedule_once``; a reply whose generation is
older than the latest request of its kind (or than an idle reset) is dropped.

Observable state stays on the App: ``app.results`` (sketch results, a list of
match dicts) and ``app.status`` (an error line, or "").

A search that fails because of the shopper's input (an empty sketch, an
unreadable photo: ``failures.SHOPPER_ERRORS``) shows on the status line; any
other failure of a search, of the warm-up or of showing results means the
bundle broke, and goes to ``app.admin.bundle_failed`` (logged, "unavailable").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from kivy.clock import Clock
from kivy.metrics import dp, sp
from PIL import Image

from vitrina.runtime.detector import DetectionResult
from vitrina.runtime.photo import IMAGE_FORMATS, ImageBudgetError, load_image_bounded, on_white
from vitrina.runtime.photo_search import PHOTO_MIN_SIDE, PhotoSearchResult
from vitrina.runtime.product_search import ProductSearch
from vitrina.runtime.search import SearchResult

from .failures import BUNDLE_FAILURES, SHOPPER_ERRORS, PhotoUnreadableError
from .geometry import clip_text
from .paint_log import PaintLog
from .screens import ProductTile
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
        self.app.results = []
        self.app.status = ""
        for name in RESULT_SCREENS.values():
            if self.app.manager.has_screen(name):
                self.fill_grid(name, [])

    def stop(self) -> None:
        """Stop the worker thread (waits up to 2 s for a running search)."""
        self.worker.stop()

    def warm_up(self) -> None:
        """Load fonts and a thumbnail sheet now, and run one search of each kind on the
        worker (pages in the codes, the reducer and the models), so the first shopper's
        results do not pay for it. The warm-up's results are dropped; its failure is the bundle's."""
        for px, rgba in ((sp(13), TITLE_RGBA), (sp(12), SUBTITLE_RGBA)):
            self.texts.get(TextTextures.key("Ag 0123456789 · $", px, rgba))
        engine = self.app.engine
        if engine is None or not engine.bundle.items:
            return
        try:
            self.thumbnail(0)
        except BUNDLE_FAILURES as exc:
            self.app.admin.bundle_failed(exc, "warm-up")
            return
        line = [np.array([[0.0, 0.0], [40.0, 0.0], [40.0, 80.0]])]
        k = self.app.kiosk_config.results
        generation = self._generations[WARM_UP] = self._generations.get(WARM_UP, 0) + 1
        self.worker.submit(WARM_UP, generation, lambda: (engine.by_strokes(line, k), engine.similar(0, 12)))

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
                m.item: engine.bundle.thumbnail(m.item) for m in result.matches if m.item not in self.thumbnails
            }
            for m in result.matches:
                for key in self._text_keys(m.__dict__):
                    if key not in self.texts:
                        pixels[key] = self.texts.render(key)
            return result, pixels

        self.worker.submit(kind, generation, run)
        return generation

    def schedule_sketch(self) -> None:
        """Debounce: search the drawing ``debounce_ms`` after the last stroke change."""
        Clock.unschedule(self.sketch_now)
        Clock.schedule_once(self.sketch_now, self.app.kiosk_config.debounce_ms / 1000.0)

    def sketch_now(self, _dt: float = 0.0) -> None:
        """Search the drawing now; an empty canvas clears the sketch results instead."""
        canvas = self.app.screen("draw").canvas_widget
        if canvas.is_empty:
            self._generations["sketch"] = self._generations.get("sketch", 0) + 1
            self.app.results = []
            self.fill_grid("draw", [])
            return
        strokes = canvas.search_strokes()
        k = self.app.kiosk_config.results
        self.submit("sketch", lambda engine: engine.by_strokes(strokes, k))

    def by_text(self, text: str) -> None:
        """Keyword search for ``text`` (blank text only clears the status)."""
        if not text.strip():
            self.app.status = ""
            return
        k = self.app.kiosk_config.results
        self.submit("text", lambda engine: engine.by_text(text, k))

    def suggest(self, text: str) -> None:
        """Offer up to 6 catalog words completing ``text`` on the text screen (synchronous, cheap)."""
        app = self.app
        if app.engine is None or not app.manager.has_screen("text"):
            return
        app.screen("text").show_suggestions(app.engine.suggest(text, limit=6), self.complete)

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
        k = self.app.kiosk_config.results
        self._submit_photo(lambda engine: (image, engine.by_photo(image, k, index, detections=detections)))

    def _photo_search(self, load: Callable[[ProductSearch], Image.Image]) -> None:
        """Detect the products in the photo ``load`` gives and search the largest."""
        k = self.app.kiosk_config.results

        def job(engine: ProductSearch) -> tuple[Image.Image, PhotoSearchResult]:
            image = load(engine)
            return image, engine.by_photo(image, k)

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
        """Show product ``item`` on the detail screen and search its similar products (up to 12)."""
        app = self.app
        engine = app.engine
        if engine is None:
            return
        detail = app.screen("detail")
        try:
            product = engine.bundle.items[item]
            detail.texture = self.thumbnail(item)
        except BUNDLE_FAILURES as exc:
            app.admin.bundle_failed(exc, f"showing product {item}")
            return
        detail.title = product.title
        detail.subtitle = f"{product.color} · ${product.price:,.0f}"
        self.fill_grid("detail", [])
        self.submit("similar", lambda e: e.similar(item, k=min(12, app.kiosk_config.results)))
        app.show("detail")

    # --- replies -------------------------------------------------------------------
    def on_reply(self, reply: Reply) -> None:
        """A search came back (UI thread): drop it if stale; else show the shopper's input
        error on the status line, report any other failure as the bundle's, or show the results."""
        submitted = self.paint_log.take_submitted(reply.kind, reply.generation)
        if reply.generation != self._generations.get(reply.kind):
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
            self._show_results(reply)
        except BUNDLE_FAILURES as exc:
            app.admin.bundle_failed(exc, f"showing {reply.kind} results")
            return
        if submitted is not None:
            self.paint_log.note_filled(reply.kind, reply.generation, submitted)

    def _show_results(self, reply: Reply) -> None:
        """Upload a reply's decoded pixels and fill its screen's grid (and ``app.results`` for a sketch)."""
        result, pixels = reply.value
        for key, data in pixels.items():
            if isinstance(key, tuple):
                self.texts.put(key, data)
            else:
                self.thumbnails.put(key, data)
        matches = [m.__dict__ for m in result.matches]
        if reply.kind == "sketch":
            self.app.results = matches
        if reply.kind == "photo" and reply.generation in self._photo_views:
            pixels, boxes, image, detections = self._photo_views.pop(reply.generation)
            self._photo_views.clear()
            self._photo = (image, detections)
            self.app.screen("photo").show_photo(pixels, boxes, result.searched_box)
        self.app.status = ""
        self.fill_grid(RESULT_SCREENS[reply.kind], matches)

    def fill_grid(self, screen: str, matches: list[dict[str, Any]]) -> None:
        """Show ``matches`` (match dicts: item, title, color, price ...) in a screen's
        grid, reusing its tiles (creating widgets is what made frames stall, not the search)."""
        shown_on = self.app.screen(screen)
        grid = shown_on.similar_grid if screen == "detail" else shown_on.results_grid
        tiles = self._tiles.setdefault(screen, [])
        while len(tiles) < len(matches):
            tile = ProductTile()
            tile.bind(on_release=lambda t: self.show_detail(int(t.item)))
            tiles.append(tile)
        for tile, m in zip(tiles, matches):
            title, subtitle = self._text_keys(m)
            tile.item, tile.texture = m["item"], self.thumbnail(m["item"])
            tile.title_texture, tile.subtitle_texture = self.texts.get(title), self.texts.get(subtitle)
            if tile.parent is None:
                grid.add_widget(tile)
        for tile in tiles[len(matches) :]:
            if tile.parent is not None:
                grid.remove_widget(tile)

    def thumbnail(self, item: int):
        """Texture of product ``item``'s thumbnail (cached; decoded here only if the worker did not), or None without a bundle."""
        engine = self.app.engine
        return self.thumbnails.get(item, engine.bundle.thumbnail if engine is not None else None)

    def _text_keys(self, m: dict[str, Any]) -> tuple[tuple, tuple]:
        """Text-cache keys of a result tile's title (clipped to the tile) and "colour · price"."""
        title = clip_text(m["title"], self.app.tile - dp(8), sp(13))
        return (
            TextTextures.key(title, sp(13), TITLE_RGBA),
            TextTextures.key(f"{m['color']} · ${m['price']:,.0f}", sp(12), SUBTITLE_RGBA),
        )
