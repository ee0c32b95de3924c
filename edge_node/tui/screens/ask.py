"""A small modal form for the doctor's quick entries (diagnosis, allergy, insurance,
cancel reason): labelled fields, Enter to the next, Ctrl+S (or Enter on the last) to
do it, Esc to go back.  The work is an async call given by the screen that opens it;
a refusal shows in the form in plain words and nothing closes until it is done."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Input, Label, Static

from edge_node.tui.context import Counter
from edge_node.tui.screens.base import bind_keys, error_text
from edge_node.tui.widgets.choice import Choice
from edge_node.tui.widgets.keybar import KeyBar

Values = dict[str, str]
Work = Callable[[Values], Awaitable[str]]  # does it; returns what to tell staff


class AskScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    AskScreen { align: center middle; }
    AskScreen > Vertical { width: 76; max-width: 100%; height: auto; max-height: 100%;
                           border: thick $primary; background: $surface; padding: 0 1; }
    AskScreen #ask-title { text-style: bold; background: $primary; color: $text;
                           padding: 0 1; }
    AskScreen #ask-about { color: $text-muted; }
    AskScreen .field { height: auto; margin: 1 0 0 0; }
    AskScreen .field > Label { width: 16; color: $text-muted; }
    AskScreen Input { border: none; height: 1; padding: 0 1; background: $boost; }
    AskScreen Input:focus { border: none; background: $primary 30%; }
    AskScreen #ask-error { color: $error; text-style: bold; height: auto; }
    AskScreen #ask-hint { color: $text-muted; height: auto; }
    """

    def __init__(self, counter: Counter, title: str, about: str,
                 fields: list[tuple[str, Widget]], run: Work, hint: str = "") -> None:
        super().__init__()
        self.counter = counter
        self.title_text, self.about, self.fields, self.run = title, about, fields, run
        self.hint = hint
        self.busy = False
        bind_keys(self, counter, [("ctrl+s", "submit", "key.submit", True),
                                  ("escape", "cancel", "key.cancel", True)])

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.title_text, id="ask-title", markup=False)
            yield Static(self.about, id="ask-about", markup=False)
            for label, widget in self.fields:
                yield Horizontal(Label(label), widget, classes="field")
            yield Static(self.hint, id="ask-hint", markup=False)
            yield Static(id="ask-error")
        yield KeyBar()

    def values(self) -> Values:
        out: Values = {}
        for _, w in self.fields:
            if isinstance(w, Input) and w.id:
                out[w.id] = w.value.strip()
            elif isinstance(w, Choice) and w.id:
                out[w.id] = w.value
        return out

    @on(Input.Submitted)
    def _next(self, event: Input.Submitted) -> None:
        event.stop()
        inputs = [w for _, w in self.fields if isinstance(w, Input)]
        if inputs and event.input is inputs[-1]:
            self.action_submit()
        else:
            self.focus_next()

    def action_cancel(self) -> None:
        if not self.busy:
            self.dismiss(None)

    def action_submit(self) -> None:
        if not self.busy:
            self.perform()

    @work(exclusive=True, exit_on_error=False, group="form")
    async def perform(self) -> None:
        self.busy = True
        error = self.query_one("#ask-error", Static)
        error.update("")
        try:
            done = await self.run(self.values())
        except Exception as exc:  # a refusal or a storage error: plain words, stay open
            error.update(error_text(self.counter, exc))
            return
        finally:
            self.busy = False
        self.dismiss(done)
