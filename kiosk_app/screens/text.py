"""Text search (layout in ``text.kv``): a query field for the on-screen keyboard, suggestions, results."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kivy.properties import ObjectProperty
from kivy.uix.button import Button
from kivy.uix.screenmanager import Screen


class TextScreen(Screen):
    """Keyword search. ``query``: the TextInput; ``suggestions``: the row of
    suggested words; ``results_grid``: the GridLayout the results are shown in."""

    query = ObjectProperty(None)
    suggestions = ObjectProperty(None)
    results_grid = ObjectProperty(None)

    def show_suggestions(self, words: Iterable[str], choose: Callable[[str], None]) -> None:
        """Replace the suggestion row with one button per word; a press calls ``choose(word)``."""
        box = self.suggestions
        box.clear_widgets()
        for word in words:
            box.add_widget(Button(text=word, font_size="16sp", on_release=lambda b: choose(b.text)))

    def complete(self, word: str) -> str:
        """Replace the query's last word with ``word`` (or append it to a one-word query); returns the new query."""
        field = self.query
        head = field.text.rsplit(" ", 1)[0] if " " in field.text.strip() else ""
        field.text = f"{head} {word}".strip()
        return field.text

    def clear(self) -> None:
        """Empty the query field (idle reset)."""
        self.query.text = ""
