"""Kiosk text screen: "did you mean …" from the corrected words, suggestions kept, no known word."""

from collections.abc import Iterator
from contextlib import contextmanager

from kivy.uix.button import Button

from tests.gui.test_kiosk_app import close, make_app, wait_for_search
from vitrina.kiosk_app.tools.replay import frames


@contextmanager
def _text_screen(bundle) -> Iterator[tuple]:
    """A kiosk on ``bundle`` showing its text screen, in a session: ``(app, screen)``; closed after."""
    app = make_app(bundle)
    try:
        app.start_session()
        app.show("text")
        yield app, app.screen("text")
    finally:
        close(app)


def _did_you_mean_button(screen):
    return next(w for w in screen.walk() if isinstance(w, Button) and w.text and w.text == screen.did_you_mean)


def test_text_screen_says_did_you_mean_and_keeps_suggestions(tiny_bundle):
    with _text_screen(tiny_bundle) as (app, screen):
        screen.query.text = "zapatiya"  # on_text: the suggestion row offers the repaired word
        frames(2)
        suggestions = [b.text for b in screen.suggestions.children]
        assert suggestions == ["zapatilla"]
        screen.query.text = "zapatiya ro"  # completions of "ro": rojo, roja, rosado ...
        frames(1)
        kept = [b.text for b in screen.suggestions.children]
        assert "roja" in kept and "rojo" in kept
        before = app.searches.generation("text")
        app.searches.by_text("zapatiya roja")
        wait_for_search(app, "text", before)
        frames(2)
        assert screen.corrected_query == "zapatilla roja"
        assert "zapatilla roja" in screen.did_you_mean and screen.did_you_mean == app.texts["did_you_mean"].format(
            words="zapatilla roja"
        )
        assert [b.text for b in screen.suggestions.children] == kept  # the search left the suggestions alone
        assert screen.results_grid.children and app.status == ""
        button = _did_you_mean_button(screen)
        assert button.height > 0 and button.opacity == 1 and not button.disabled

        before = app.searches.generation("text")
        button.dispatch("on_release")  # the shopper accepts the correction
        wait_for_search(app, "text", before)
        frames(2)
        assert screen.query.text == "zapatilla roja"
        assert screen.did_you_mean == "" and screen.results_grid.children
        assert button.height == 0 and button.disabled


def test_text_screen_with_no_known_word_shows_why_and_no_results(tiny_bundle):
    with _text_screen(tiny_bundle) as (app, screen):
        before = app.searches.generation("text")
        app.searches.by_text("zapatiya")
        wait_for_search(app, "text", before)
        assert screen.results_grid.children and screen.did_you_mean
        before = app.searches.generation("text")
        app.searches.by_text("mesa 42")
        wait_for_search(app, "text", before)
        frames(2)
        assert app.status == app.texts["no_known_word"]
        assert not screen.results_grid.children and screen.did_you_mean == ""
        assert app.manager.current == "text"  # not an error screen


def test_text_screen_offers_and_searches_the_catalogs_english_synonyms(tiny_bundle):
    with _text_screen(tiny_bundle) as (app, screen):
        screen.query.text = "red lig"  # the catalog's aliases.json: "light blue" means celeste
        frames(2)
        offered = [b for b in screen.suggestions.children if b.text == "light blue"]
        assert len(offered) == 1
        before = app.searches.generation("text")
        offered[0].dispatch("on_release")  # complete the last word with the phrase and search
        wait_for_search(app, "text", before)
        frames(2)
        assert screen.query.text == "red light blue"
        assert screen.results_grid.children and app.status == ""
        assert screen.did_you_mean == ""  # a synonym is no misspelling
