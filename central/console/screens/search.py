"""Search patients by card number, patient number or name; open their conflicts."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from central.console.data import ConsoleData, SearchHit
from central.console.screens import Table
from protocol.money import yuan


class SearchScreen(Screen[None]):
    DEFAULT_CSS = """
    SearchScreen #q { margin: 0 1; }
    SearchScreen #hits { height: 1fr; }
    """
    AUTO_FOCUS = "#q"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back"),
                Binding("ctrl+o", "open", "Open conflict")]

    def __init__(self, data: ConsoleData, operator: str) -> None:
        super().__init__()
        self.data = data
        self.operator = operator
        self.hits: list[SearchHit] = []

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Input(placeholder="card number, patient number or name — Enter to search", id="q")
        table = Table(id="hits", cursor_type="row", zebra_stripes=True)
        table.add_columns("patient", "name", "registered at", "cards", "balance", "merged into",
                          "conflicts")
        yield table
        yield Static(classes="message", id="message")
        yield Footer()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.search(event.value)

    @work(exclusive=True, group="search")
    async def search(self, text: str) -> None:
        self.hits = await self.data.search(text)
        table = self.query_one("#hits", DataTable)
        table.clear()
        for h in self.hits:
            table.add_row(h.patient_id, h.name, h.node, ", ".join(h.cards), yuan(h.balance),
                          h.merged_into or "-", ", ".join(h.conflicts) or "-", key=h.patient_id)
        self.query_one("#message", Static).update(
            f"{len(self.hits)} patient(s)" if self.hits else f"nothing matches {text!r}")
        if self.hits:
            table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        from central.console.screens.detail import DetailScreen

        table = self.query_one("#hits", DataTable)
        if not self.hits:
            return
        hit = self.hits[min(max(table.cursor_row, 0), len(self.hits) - 1)]
        if not hit.conflicts:
            self.query_one("#message", Static).update(f"{hit.patient_id} has no conflicts")
            return
        self.app.push_screen(DetailScreen(self.data, hit.conflicts[0], self.operator))
