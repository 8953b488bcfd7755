"""Kiosk detail screen: "similar products" come from the text-visual model when the bundle has it."""

from tests.gui.test_kiosk_app import close, make_app, wait_for_search
from vitrina.kiosk_app.tools.replay import frames


def test_detail_screen_shows_text_visual_neighbours(tiny_bundle):
    app = make_app(tiny_bundle)
    try:
        app.start_session()
        item = 4
        before = app.searches.generation("similar")
        app.searches.show_detail(item)
        wait_for_search(app, "similar", before)
        frames(2)
        screen = app.screen("detail")
        assert app.manager.current == "detail" and screen.title == app.engine.catalog.items[item].title
        shown = [tile.item for tile in reversed(screen.similar_grid.children) if tile.item >= 0]
        k = min(12, app.kiosk_config.results)
        want = [m.item for m in app.engine.similar_by_text_visual(item, k).matches]
        visual = [m.item for m in app.engine.similar(item, k).matches]
        assert shown == want and item not in shown
        assert want != visual  # the detail screen does not show the photo codes' neighbours
    finally:
        close(app)
