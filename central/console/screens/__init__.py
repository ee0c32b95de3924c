"""The console's screens; what several of them share."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from textual.screen import Screen
from textual.widgets import DataTable, Static
from textual.widgets.data_table import RowKey

#: key, action, label (already in the console's language), shown in the footer
KeySpec = tuple[str, str, str, bool]


def bind_keys(screen: Screen[Any], keys: list[KeySpec]) -> None:
    """Bind ``keys`` with footer labels in the console's language (BINDINGS are per class,
    the language is per app)."""
    for key, action, label, show in keys:
        screen._bindings.bind(key, action, label, show=show)


class MessageScreen(Screen[None]):
    """A screen with a ``#message`` line at its foot."""

    def say(self, text: str, cls: str = "") -> None:
        """Show ``text`` there (``cls``: a style class, e.g. ``problem``)."""
        msg = self.query_one("#message", Static)
        msg.set_classes(f"message {cls}".strip())
        msg.update(text)


class Table(DataTable[str]):
    """A DataTable that redraws its cells once their columns have been measured.

    Textual (8.2) measures added rows on idle, but cells the screen draws before then are
    cached at the old (header) widths and not redrawn when the columns widen: on a busy
    machine the screen often draws first, and the table stays cut to its headers until
    its rows next change (Textual issues 3533, 4470).
    """

    def _update_dimensions(self, new_rows: Iterable[RowKey]) -> None:
        widths = [c.get_render_width(self) for c in self.ordered_columns]
        super()._update_dimensions(new_rows)
        if widths != [c.get_render_width(self) for c in self.ordered_columns]:
            self.notify_style_update()  # drops the cached cells, and refreshes
