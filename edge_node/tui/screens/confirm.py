"""Confirmation for every money move and card change: Y confirms, N or Esc cancels."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from edge_node.tui.context import Counter
from edge_node.tui.screens.base import bind_keys


class ConfirmScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 64; height: auto; border: thick $warning;
                               background: $surface; padding: 1 2; }
    ConfirmScreen #question { text-style: bold; margin: 1 0; }
    ConfirmScreen #keys { color: $text-muted; }
    """
    AUTO_FOCUS = None

    def __init__(self, counter: Counter, question: str) -> None:
        super().__init__()
        self.counter = counter
        self.question = question
        bind_keys(self, counter, [("y,enter", "answer(True)", "key.confirm", True),
                                  ("n,escape", "answer(False)", "key.cancel", True)])

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        with Vertical():
            yield Static(tr("title.confirm"))
            yield Static(self.question, id="question")
            yield Static(f"{tr('confirm.yes')}    {tr('confirm.no')}", id="keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
