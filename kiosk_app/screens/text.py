"""Text search (layout in ``text.kv``): a query field for the on-screen keyboard, suggestions,
"did you mean …" from the words the search corrected, results."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kivy.properties import ObjectProperty, StringProperty
from kivy.uix.button import Button
from kivy.uix.screenmanager import Screen

from vitrina.runtime.text import QueryWords


class TextScreen(Screen):
    """Keyword search. ``query``: the TextInput; ``suggestions``: the row of
    suggested words; ``results_grid``: the GridLayout the results are shown in."""

    query = ObjectProperty(None)
    suggestions = ObjectProperty(None)
    results_grid = ObjectProperty(None)
    #: "Did you mean …?" line shown over the results when the search corrected words ("" hides it).
    did_you_mean = StringProperty("")
    #: The words searched after correction (what pressing "did you mean" puts in the field).
    corrected_query = StringProperty("")

    def show_query(self, query: QueryWords, template: str) -> None:
        """Show "did you mean" for a search's ``query`` when it corrected a word, else hide it;
        ``template`` is the UI text with a ``{words}`` field. The suggestion row is left as it is."""
        if query.corrected and query.words:
            self.corrected_query = " ".join(query.words)
            self.did_you_mean = template.format(words=self.corrected_query)
        else:
            self.corrected_query = self.did_you_mean = ""

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
        """Empty the query field and hide "did you mean" (idle reset)."""
        self.query.text = ""
        self.corrected_query = self.did_you_mean = ""
