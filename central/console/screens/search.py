"""Search patients by card number, patient number, national ID or name; open their
conflicts."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Static

from central.console.data import ConsoleData, SearchHit
from central.console.screens import Table, bind_keys
from protocol.money import yuan


class SearchScreen(Screen[None]):
    DEFAULT_CSS = """
    SearchScreen #q { margin: 0 1; }
    SearchScreen #hits { height: 1fr; }
    """
    AUTO_FOCUS = "#q"

    def __init__(self, data: ConsoleData, operator: str) -> None:
        super().__init__()
        self.data = data
        tr = self.tr = data.tr
        # q closes from the hits table; in the search field it is a letter
        bind_keys(self, [("escape", "app.pop_screen", tr("key.back"), True),
                         ("q", "app.pop_screen", tr("key.close"), False),
                         ("ctrl+o", "open", tr("key.open_conflict"), True)])
        self.operator = operator
        self.hits: list[SearchHit] = []

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        tr = self.tr
        yield Input(placeholder=tr("search.placeholder"), id="q")
        table = Table(id="hits", cursor_type="row", zebra_stripes=True)
        table.add_columns(*(tr(f"col.{c}") for c in (
            "patient", "name", "registered", "cards", "balance", "merged", "conflicts")))
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
            table.add_row(h.patient_id, Text(h.name), h.node, ", ".join(h.cards), yuan(h.balance),
                          h.merged_into or "-", ", ".join(h.conflicts) or "-", key=h.patient_id)
        said = (self.tr("search.count", n=len(self.hits)) if self.hits
                else self.tr("search.none", q=repr(text)))
        if self.data.searched_everyone:
            said += " " + self.tr("search.indexing")
        self.query_one("#message", Static).update(said)
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
            self.query_one("#message", Static).update(
                self.tr("search.no_conflicts", pid=hit.patient_id))
            return
        self.app.push_screen(DetailScreen(self.data, hit.conflicts[0], self.operator))
