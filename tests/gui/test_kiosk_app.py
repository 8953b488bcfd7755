"""The kiosk app rendering real frames offscreen (SDL_VIDEODRIVER=offscreen) with the tiny bundle."""

import shutil
import time

import pytest

from vitrina.kiosk_app.main import prepare_kivy

prepare_kivy(windowed=True, headless=True, size=(1280, 800))  # before any kivy import

from kivy.core.window import Window  # noqa: E402

from vitrina.kiosk_app.app import KioskApp  # noqa: E402
from vitrina.kiosk_app.config import KioskConfig, hash_pin  # noqa: E402
from vitrina.kiosk_app.geometry import rects_overlap  # noqa: E402
from vitrina.kiosk_app.tools.replay import draw_strokes, frames, sample_strokes, wait_for  # noqa: E402
from vitrina.kiosk_app.tools.screenshots import screenshots  # noqa: E402

PIN = "2468"


def make_app(bundle, **config):
    app = KioskApp(
        KioskConfig(**{"admin_pin_hash": hash_pin(PIN), "debounce_ms": 50, **config}), bundle, lock_down=True
    )
    app.start_in_window()
    frames(3)
    return app


@pytest.fixture()
def kiosk(tiny_bundle):
    app = make_app(tiny_bundle)
    yield app
    close(app)


def close(app):
    app.close_in_window()  # on_stop: stops the worker, unbinds the window, unschedules the idle check


def wait_for_search(app, kind="sketch", before=None):
    """Wait until a search newer than generation ``before`` ran and its results are shown."""
    searches = app.searches
    before = searches.generation(kind) if before is None else before
    assert wait_for(
        lambda: searches.generation(kind) > before and searches.shown.get(kind) == searches.generation(kind), timeout=15
    )


def drawn_search(app, strokes):
    canvas = app.screen("draw").canvas_widget
    before = app.searches.generation("sketch")
    draw_strokes(strokes)
    assert canvas.stroke_count() == len(strokes)
    wait_for_search(app, before=before)
    return app.results


def held_out_strokes(app, category, n):
    bundle = app.engine.bundle
    return [s for item, s in bundle.eval_strokes() if bundle.items[item].category == category][:n]


def test_starts_on_attract_and_touch_starts(kiosk):
    assert kiosk.manager.current == "attract"
    # the warm-up ran a text search too: the first shopper's words do not pay for the keyword index
    assert wait_for(lambda: "_word_index" in kiosk.engine.__dict__, timeout=15)
    from kivy.tests.common import UnitTestTouch

    touch = UnitTestTouch(400, 400)
    touch.touch_down()
    touch.touch_up()
    frames(2)
    assert kiosk.manager.current == "draw"


def test_drawing_a_sketch_shows_products_of_its_category(kiosk):
    kiosk.start_session()
    frames(3)
    canvas = kiosk.screen("draw").canvas_widget
    hits = 0
    drawings = held_out_strokes(kiosk, "Trouser", 3)
    assert len(drawings) == 3
    for strokes in drawings:
        canvas.reset()
        kiosk.results = []
        kiosk.searches.paint_log.awaiting.clear()
        scaled = _scale_into_canvas(canvas, strokes)
        results = drawn_search(kiosk, scaled)
        hits += any(m["category"] == "Trouser" for m in results[:5])
        assert len(kiosk.screen("draw").results_grid.children) == len(results)
    assert hits >= 2
    assert wait_for(lambda: bool(kiosk.searches.paint_log.painted))  # results reached a frame


def _scale_into_canvas(canvas, strokes):
    from vitrina.kiosk_app.geometry import fit_strokes

    return fit_strokes(strokes, canvas.width, canvas.height, canvas.center)


def test_undo_redo_clear(kiosk):
    kiosk.start_session()
    frames(3)
    canvas = kiosk.screen("draw").canvas_widget
    draw_strokes(sample_strokes(kiosk)[:2] or sample_strokes(kiosk))
    n = canvas.stroke_count()
    assert n >= 1 and canvas.can_undo and not canvas.can_redo
    canvas.undo()
    assert canvas.stroke_count() == n - 1 and canvas.can_redo
    canvas.redo()
    assert canvas.stroke_count() == n
    canvas.clear()
    assert canvas.is_empty and canvas.can_undo
    canvas.undo()
    assert canvas.stroke_count() == n
    canvas.clear()
    assert wait_for(lambda: kiosk.results == [], timeout=5)


def test_eraser_removes_the_touched_stroke(kiosk):
    kiosk.start_session()
    frames(3)
    canvas = kiosk.screen("draw").canvas_widget
    cx, cy = canvas.center
    draw_strokes([[(cx - 100, cy), (cx + 100, cy)], [(cx - 100, cy + 120), (cx + 100, cy + 120)]])
    canvas.erasing = True
    draw_strokes([[(cx, cy + 3), (cx + 2, cy + 3)]])
    assert canvas.stroke_count() == 1
    canvas.undo()
    assert canvas.stroke_count() == 2


def test_stale_result_never_overwrites_newer(kiosk):
    kiosk.start_session()
    frames(3)
    draw_strokes(sample_strokes(kiosk))
    assert wait_for(lambda: bool(kiosk.results), timeout=15)
    current = list(kiosk.results)
    from vitrina.kiosk_app.worker import Reply
    from vitrina.runtime.search import SearchResult

    old = kiosk.searches.generation("sketch") - 1
    kiosk.searches.on_reply(Reply("sketch", old, value=(SearchResult(()), {})))
    assert kiosk.results == current


def test_idle_reset_clears_everything(tiny_bundle):
    app = make_app(tiny_bundle, idle_seconds=10)
    try:
        app.start_session()
        frames(3)
        draw_strokes(sample_strokes(app))
        assert wait_for(lambda: bool(app.results), timeout=15)
        app.show("text")
        app.screen("text").query.text = "polera"
        app.idle.last_touch = time.monotonic() - 11
        app.idle.check(1.0)
        frames(2)
        assert app.manager.current == "attract"
        assert app.results == [] and app.screen("draw").canvas_widget.is_empty
        assert not app.screen("draw").canvas_widget.can_undo  # history gone too
        assert app.screen("text").query.text == "" and not app.screen("draw").results_grid.children
    finally:
        close(app)


def test_admin_needs_the_pin(kiosk):
    kiosk.show("admin")
    kiosk.admin.unlock("0000")
    assert not kiosk.admin_unlocked and kiosk.admin_message == kiosk.texts["wrong_pin"]
    assert kiosk.keep_window_open() is True  # window close refused
    kiosk.admin.exit_kiosk()
    assert kiosk.manager.current == "admin"  # still running
    kiosk.admin.unlock(PIN)
    assert kiosk.admin_unlocked and "products:" in kiosk.bundle_summary
    assert kiosk.keep_window_open() is False


def test_admin_disabled_without_a_pin(tiny_bundle):
    app = KioskApp(KioskConfig(), tiny_bundle)
    app.start_in_window()
    try:
        app.admin.unlock("1234")
        assert not app.admin_unlocked and app.admin_message == app.texts["no_pin"]
    finally:
        close(app)


def test_escape_is_swallowed(kiosk):
    assert kiosk.swallow_key(Window, 27) is True
    assert kiosk.swallow_key(Window, 32) is False


def test_broken_bundle_shows_unavailable(tiny_bundle, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "codes/codes.npy").write_bytes(b"garbage")
    app = make_app(broken)
    try:
        assert app.manager.current == "unavailable" and "codes.npy" in app.unavailable_detail
        assert app.unavailable_reason == app.texts["reason_damaged"]  # short, for staff; the detail is logged
        app.start_session()
        assert app.manager.current == "unavailable"
    finally:
        close(app)


def test_new_bundle_picked_up_at_idle(tiny_bundle, tmp_path):
    link = tmp_path / "active"
    missing = tmp_path / "not-yet"
    link.symlink_to(missing)
    app = make_app(link)
    try:
        assert app.manager.current == "unavailable"
        link.unlink()
        link.symlink_to(tiny_bundle)  # what sync's activation does
        app.reset_session()
        assert app.engine is not None and app.manager.current == "attract"
    finally:
        close(app)


@pytest.mark.parametrize("size", [(1920, 1080), (1280, 800), (720, 1280)])
def test_no_overlapping_widgets(kiosk, size):
    Window.size = size
    frames(5)
    kiosk.start_session()
    draw_strokes(sample_strokes(kiosk))
    wait_for(lambda: bool(kiosk.results), timeout=15)
    frames(5)
    root = kiosk.screen("draw").children[0]
    problems = []
    _check_children(root, problems)
    Window.size = (1280, 800)
    frames(3)
    assert problems == []


def _check_children(widget, problems):
    from kivy.uix.boxlayout import BoxLayout
    from kivy.uix.gridlayout import GridLayout

    if isinstance(widget, (BoxLayout, GridLayout)):
        kids = [c for c in widget.children if c.opacity > 0]
        for i, a in enumerate(kids):
            if a.width < 1 or a.height < 1:
                problems.append(f"{type(a).__name__} collapsed to {a.size}")
            for b in kids[i + 1 :]:
                if rects_overlap((*a.pos, *a.size), (*b.pos, *b.size)):
                    problems.append(f"{type(a).__name__} overlaps {type(b).__name__}")
    for child in widget.children:
        _check_children(child, problems)


def test_screenshot_command_renders_every_screen(tiny_bundle, tmp_path):
    from PIL import Image

    paths = screenshots(KioskConfig(), tiny_bundle, tmp_path / "shots")
    names = {p.name for p in paths}
    for screen in ("attract", "draw", "detail", "text", "photo", "admin", "unavailable"):
        for size in ("1920x1080", "1280x800", "720x1280"):
            assert f"{screen}-{size}.png" in names
    with Image.open(tmp_path / "shots/draw-720x1280.png") as im:
        assert im.size == (720, 1280)
        colours = im.convert("RGB").getcolors(maxcolors=1 << 16)
        assert colours is None or len(colours) > 20  # a real rendering, not a blank frame


def test_responsiveness_benchmark_measures_real_frames(tiny_bundle):
    from vitrina.kiosk_app.tools.responsiveness import measure_responsiveness

    report = measure_responsiveness(KioskConfig(debounce_ms=100), tiny_bundle, drawings=2)
    assert report["drawings"] == 2 and report["searches_painted"] >= 2
    assert report["frame_ms_while_drawing"]["n"] > 10
    search, felt = report["search_to_painted_ms"], report["stroke_end_to_painted_ms"]
    assert 0 < search["p50"] <= search["max"]
    assert 1 <= felt["n"] <= report["strokes"]  # stroke ends whose results were painted
    assert felt["p50"] >= 100  # a debounce is part of what the shopper waits
    live = measure_responsiveness(KioskConfig(), tiny_bundle, drawings=2)  # results follow the pen
    assert live["debounce_ms"] == 0 and live["live_search_ms"] == 100
    assert live["searches_painted"] >= 2
    assert 1 <= live["stroke_end_to_painted_ms"]["n"] <= live["strokes"]


def test_palette_draws_coloured_strokes_and_fills_that_search_in_colour(kiosk):
    kiosk.start_session()
    frames(3)
    draw = kiosk.screen("draw")
    canvas = draw.canvas_widget
    names = [s.name for s in draw.swatches()]
    assert names[0] == "negro" and {"rojo", "celeste", "verde"} <= set(names)
    assert draw.ink_name == "negro"
    from vitrina.runtime.rasterize import PenStroke

    strokes = held_out_strokes(kiosk, "Trouser", 1)[0]
    scaled = _scale_into_canvas(canvas, strokes)
    draw_strokes(scaled)  # black brush: plain point arrays, as before colour existed
    assert all(not isinstance(s, PenStroke) for s in canvas.search_strokes())
    red = next(s for s in draw.swatches() if s.name == "rojo")
    red.dispatch("on_release")
    assert draw.ink_name == "rojo" and canvas.ink == red.rgb
    draw.choose_tool("fill")
    before = kiosk.searches.generation("sketch")
    longest = max(scaled, key=len)
    draw_strokes([longest])
    wait_for_search(kiosk, before=before)
    last = canvas.search_strokes()[-1]
    assert isinstance(last, PenStroke) and last.fill
    expected = tuple(int(round(c * 255)) for c in red.rgb)
    assert last.color == expected
    from kivy.graphics import Mesh

    fill_group = canvas._strokes[-1].group.children[0]  # the tesselated fill, under the outline
    assert any(isinstance(i, Mesh) for i in fill_group.children)
    assert sum(m["color"] == "rojo" for m in kiosk.results[:10]) >= 3  # results follow the colour
    draw.choose_tool("brush")
    blue = next(s for s in draw.swatches() if s.name == "celeste")
    blue.dispatch("on_release")
    draw_strokes([scaled[0]])
    assert canvas.search_strokes()[-1].color == tuple(int(round(c * 255)) for c in blue.rgb)
    canvas.undo()
    canvas.undo()
    assert all(not isinstance(s, PenStroke) for s in canvas.search_strokes())  # undo as today


def test_results_follow_the_pen_while_drawing(tiny_bundle):
    kiosk = make_app(tiny_bundle, debounce_ms=0)
    try:
        _follow_the_pen(kiosk)
    finally:
        close(kiosk)


def _follow_the_pen(kiosk):
    kiosk.start_session()
    frames(3)
    from vitrina.kiosk_app.tools.replay import SyntheticTouch

    canvas = kiosk.screen("draw").canvas_widget
    cx, cy = canvas.center
    before = kiosk.searches.generation("sketch")
    touch = SyntheticTouch(cx - 150, cy - 150)
    touch.down()
    start = time.monotonic()
    for i in range(40):  # a slow stroke: 40 moves, one per frame at about 60 Hz
        touch.move_to(cx - 150 + 7 * i, cy - 150 + 5 * i)
        frames(1)
        time.sleep(1 / 60)
    elapsed = time.monotonic() - start
    live = kiosk.searches.generation("sketch") - before
    assert live >= 2  # searched while the finger was still down
    assert live <= elapsed / 0.1 + 1 and live < 40  # at most every 100 ms, not at every move
    touch.up()
    assert kiosk.searches.generation("sketch") == before + live + 1  # and at once at the stroke end
    wait_for_search(kiosk, before=before + live)


def test_photo_search_from_a_file_without_camera(kiosk, tmp_path):
    from PIL import Image

    from vitrina.runtime.photo import load_image_bounded
    from vitrina.runtime.photo_search import PHOTO_MIN_SIDE

    kiosk.start_session()
    kiosk.show("photo")
    frames(3)
    photo = kiosk.screen("photo")
    assert photo.camera_ready is False and photo.chooser.height > 0  # no camera here: the chooser
    thumb = kiosk.engine.bundle.thumbnail(3)
    Image.fromarray(thumb).resize((200, 200)).save(tmp_path / "shot.png")
    before = kiosk.searches.generation("photo")
    kiosk.searches.by_photo_file([str(tmp_path / "shot.png")])
    assert wait_for(lambda: kiosk.searches.shown.get("photo", 0) > before, timeout=15)
    shown = sorted(int(t.item) for t in photo.results_grid.children)
    # what the engine itself finds for this file, read as the kiosk reads files: within the pixel budget, reduced
    shot = load_image_bounded(tmp_path / "shot.png", min_side=PHOTO_MIN_SIDE)
    expected = sorted(m.item for m in kiosk.engine.by_photo(shot, kiosk.kiosk_config.results).matches)
    assert shown and shown == expected  # the grid shows the photo search's results, all of them
    (tmp_path / "bad.png").write_bytes(b"nope")
    kiosk.searches.by_photo_file([str(tmp_path / "bad.png")])
    assert wait_for(lambda: "cannot read photo" in kiosk.status, timeout=15)


def test_admin_sync_activates_a_signed_bundle_with_progress(tiny_bundle, tmp_path):
    """Admin → Sync against a real HTTP server: progress reported, v2 verified through TUF and loaded.
    A device that trusts another root refuses in words (role, check, what to do) and keeps v1."""
    from vitrina.export.publish.bench_sync import prepare_repository
    from vitrina.export.publish.repository import Repository
    from vitrina.export.publish.serve import serve_in_thread
    from vitrina.runtime.sync.client import SyncOptions, sync
    from vitrina.runtime.sync.store import DeviceStore
    from vitrina.runtime.sync.trust import provision_root

    repo, root_json, _ = prepare_repository(tiny_bundle, tmp_path, fraction=0.05)  # v1 and v2 in repo
    stranger, _ = Repository.create(tmp_path / "stranger", [tmp_path / "stranger-keys"], generate_missing=True)
    server, url = serve_in_thread(repo)
    try:
        for trust, expect_version, expect_text in (
            (stranger.path / "metadata/1.root.json", 1, "sync refused, catalog unchanged: the timestamp metadata"),
            (root_json, 2, "activated"),
        ):
            root = tmp_path / f"device-{expect_version}"
            sync(str(tmp_path / "repo-v1"), root, root_json.read_bytes(), SyncOptions(reserve_bytes=0))
            if expect_version == 1:  # re-provisioned by staff with a root that does not sign this repository
                provision_root(root, trust.read_bytes(), replace=True)
            app = make_app(root / "current", device_root=root, sync_source=url, trusted_root=trust)
            try:
                app.show("admin")
                app.admin.run_sync()
                assert not app.syncing  # locked until the PIN is given
                app.admin.unlock(PIN)
                app.admin.run_sync()
                assert app.syncing
                assert wait_for(lambda app=app: not app.syncing, timeout=60)
                assert app.admin_message.startswith(expect_text), app.admin_message
                assert "Traceback" not in app.admin_message
                assert app.engine.bundle.manifest["release"]["version"] == expect_version
                assert release_of(DeviceStore(root)) == expect_version
                if expect_version == 2:
                    assert app.sync_progress == 1.0 and "release: v2" in app.bundle_summary
                    frames(10)
                else:
                    assert "signatures check" in app.admin_message and "tell headquarters" in app.admin_message
            finally:
                close(app)
    finally:
        server.shutdown()


def release_of(store):
    from vitrina.runtime.bundle import release_version

    return release_version(store.current_manifest())


def test_photo_screen_outlines_detected_products_and_searches_a_tapped_one(kiosk, tmp_path):
    from kivy.tests.common import UnitTestTouch
    from PIL import Image

    from vitrina.kiosk_app.photo_boxes import box_rect, fit_photo

    engine = kiosk.engine
    scenes = engine.bundle.eval_scenes()
    # a held-out scene in which the detector finds at least two products
    index = next(i for i, im in enumerate(scenes.images) if len(engine.detect(Image.fromarray(im))) >= 2)
    Image.fromarray(scenes.images[index]).resize((384, 384)).save(tmp_path / "scene.png")
    detections = engine.detect(Image.open(tmp_path / "scene.png"))
    kiosk.start_session()
    kiosk.show("photo")
    frames(3)
    before = kiosk.searches.generation("photo")
    kiosk.searches.by_photo_file([str(tmp_path / "scene.png")])
    assert wait_for(lambda: kiosk.searches.shown.get("photo", 0) > before, timeout=20)
    frames(3)
    view = kiosk.screen("photo").photo_boxes
    assert view.texture is not None and view.height > 0
    assert len(view.boxes) == len(detections) >= 2  # every detected product outlined
    assert view.searched == detections.largest()  # the largest searched at once
    lines = [i for i in view.canvas.children if type(i).__name__ == "Line"]
    assert len(lines) == len(detections)
    # tap the centre of another outline (the smallest box there): that product is searched
    other = next(i for i in range(len(detections)) if i != detections.largest())
    x, y, w, h = view.rects()[other]
    before = kiosk.searches.generation("photo")
    touch = UnitTestTouch(x + w / 2, y + h / 2)
    touch.touch_down()
    touch.touch_up()
    assert wait_for(lambda: kiosk.searches.shown.get("photo", 0) > before, timeout=20)
    frames(3)
    tapped = view.searched
    assert tapped != detections.largest()
    fit = fit_photo(tuple(view.photo_size), tuple(view.pos), tuple(view.size))
    assert box_rect(view.boxes[tapped], int(view.photo_size[1]), fit) == view.rects()[tapped]
    shown = sorted(int(t.item) for t in kiosk.screen("photo").results_grid.children)
    image = Image.open(tmp_path / "scene.png")
    expected = sorted(
        m.item for m in engine.by_photo(image, kiosk.kiosk_config.results, tapped, detections=detections).matches
    )
    assert shown == expected
