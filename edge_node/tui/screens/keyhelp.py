"""F1: every key of the screen underneath, one a line, with what it does.

The key bar already shows every key at 80 columns; this screen is the same list written
out (``Ctrl+L`` rather than ``^L``), scrollable however many keys a desk grows, plus what
a key bar cannot say: how long a language switch lasts.
"""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from edge_node.tui.context import Counter
from edge_node.tui.screens.base import bind_keys, key_name
from edge_node.tui.widgets.keybar import KeyItem


class KeyHelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    KeyHelpScreen { align: center middle; }
    KeyHelpScreen > Vertical { width: 72; max-width: 100%; height: auto; max-height: 100%;
                               border: thick $primary; background: $surface; padding: 0 1; }
    KeyHelpScreen #keys-title { dock: top; text-style: bold; background: $primary;
                                color: $text; padding: 0 1; }
    KeyHelpScreen VerticalScroll { height: auto; max-height: 100%; }
    KeyHelpScreen #keys-notes { dock: bottom; height: auto; color: $text-muted; }
    """
    AUTO_FOCUS = "#keys"

    def __init__(self, counter: Counter, items: list[KeyItem]) -> None:
        super().__init__()
        self.counter = counter
        self.items = items
        bind_keys(self, counter, [("escape,f1,enter", "close", "key.close", True)])

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        table = Table(box=None, show_header=False, padding=(0, 2, 0, 0), expand=True)
        table.add_column(no_wrap=True, style="bold")
        table.add_column(ratio=1)
        for item in self.items:
            table.add_row(" / ".join(key_name(k, long=True) for k in item.keys), item.label)
        default = self.counter.config.language
        with Vertical():
            yield Static(tr("title.keys"), id="keys-title")
            with VerticalScroll(id="keys"):
                yield Static(table, id="keys-table")
            yield Static(f"{tr('help.language', lang=tr('lang.' + default))}\n"
                         f"{tr('help.close')}", id="keys-notes", markup=False)

    @property
    def lines(self) -> list[str]:
        """Each key's line as shown (for tests)."""
        return [f"{' / '.join(key_name(k, long=True) for k in i.keys)}  {i.label}"
                for i in self.items]

    def action_close(self) -> None:
        self.dismiss(None)
