"""When the counter cannot start (ledger or key unusable): say why, plainly, and how to quit."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static


class FatalScreen(Screen[None]):
    DEFAULT_CSS = """
    FatalScreen { align: center middle; }
    FatalScreen Static { width: 70; border: thick $error; padding: 1 2; }
    """

    def __init__(self, title: str, message: str) -> None:
        super().__init__()
        self.title_text = title
        self.message = message

    def compose(self) -> ComposeResult:
        yield Static(f"[b]{self.title_text}[/b]\n\n{self.message}\n\nCtrl+Q")
        yield Footer()
