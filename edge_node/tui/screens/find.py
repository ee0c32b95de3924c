"""Find a patient who has no card with them: type, pick with Enter, the panel opens.

One field and a list that follows every keystroke (the search runs on the ledger's
index: :meth:`~edge_node.service.CounterService.search_patients`).  ↑/↓ move in the
list while typing; Enter (in the field or on a row) picks; Esc goes back.  Numbers and
IDs are shown masked: the patient confirms who they are, the screen does not tell.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Input, Static

from edge_node.service import PatientHit
from edge_node.tui.context import Counter
from edge_node.tui.describe import age, shown
from edge_node.tui.screens.base import bind_keys, error_text
from protocol.money import yuan

LIMIT = 50


class FindPatientScreen(ModalScreen[str | None]):
    """Dismisses with the picked patient's number (None: nobody picked)."""

    DEFAULT_CSS = """
    FindPatientScreen { align: center middle; }
    FindPatientScreen > Vertical { width: 96%; height: 90%; border: thick $primary;
                                   background: $surface; padding: 0 1; }
    FindPatientScreen #find-title { text-style: bold; background: $primary; padding: 0 1;
                                    margin: 0 0 1 0; }
    FindPatientScreen #find-help { color: $text-muted; }
    FindPatientScreen #hits { height: 1fr; }
    FindPatientScreen #find-status { height: auto; color: $text-muted; }
    FindPatientScreen #find-status.problem { color: $error; text-style: bold; }
    """

    def __init__(self, counter: Counter, query: str = "") -> None:
        super().__init__()
        self.counter = counter
        self.initial = query
        self.hits: list[PatientHit] = []
        bind_keys(self, counter, [("escape", "close", "key.cancel", True),
                                  ("down", "move(1)", "search.key_down", False),
                                  ("up", "move(-1)", "search.key_up", False)])

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        with Vertical():
            yield Static(tr("search.title"), id="find-title")
            yield Static(tr("search.help"), id="find-help")
            yield Input(self.initial, id="query", placeholder=tr("search.placeholder"),
                        max_length=64)
            yield DataTable(id="hits", cursor_type="row", zebra_stripes=True)
            yield Static(id="find-status")
        yield Footer()

    def on_mount(self) -> None:
        tr = self.counter.tr
        self.query_one(DataTable).add_columns(
            tr("panel.patient_id"), tr("panel.name"), tr("panel.sex_age"),
            tr("panel.national_id"), tr("panel.phone"), tr("panel.card"),
            tr("panel.balance"), tr("search.merged"))
        self.query_one("#query", Input).focus()
        self.run_search(self.initial)

    # -- searching -----------------------------------------------------------------------
    @on(Input.Changed, "#query")
    def _changed(self, event: Input.Changed) -> None:
        self.run_search(event.value)

    @work(exclusive=True, exit_on_error=False, group="find")
    async def run_search(self, query: str) -> None:
        tr = self.counter.tr
        if not query.strip():
            self.show([], tr("search.type"))
            return
        try:
            hits = await self.counter.service.search_patients(query, LIMIT)
        except Exception as exc:  # a storage error: plain words
            self.show([], error_text(self.counter, exc), problem=True)
            return
        if self.query_one("#query", Input).value != query:
            return  # typed on meanwhile: the newer search shows its own
        if not hits:
            self.show([], tr("search.none", q=query.strip()))
        elif len(hits) >= LIMIT:
            self.show(hits, tr("search.more", n=LIMIT))
        else:
            self.show(hits, tr("search.found", n=len(hits)))

    def show(self, hits: list[PatientHit], status: str, problem: bool = False) -> None:
        self.hits = hits
        table = self.query_one(DataTable)
        table.clear()
        for hit in hits:
            table.add_row(*self.row(hit), key=hit.patient.patient_id)
        msg = self.query_one("#find-status", Static)
        msg.update(status)
        msg.set_class(problem, "problem")

    def row(self, hit: PatientHit) -> tuple[str | Text, ...]:
        tr, p = self.counter.tr, hit.patient
        years = age(p.birth_date, self.counter.clock(), self.counter.config.timezone)
        sex = tr(f"sex.{p.sex}") if p.sex in ("M", "F") else "-"
        card = hit.card
        card_text = (f"{card.card_no} {tr('card.' + card.status)}" if card is not None
                     else tr("search.no_card"))
        balance = Text(yuan(hit.account.balance),
                       style="bold red" if hit.account.balance < 0 else "")
        merged = Text(f"→ {hit.merged_into}", style="bold yellow") if hit.merged_into else ""
        return (p.patient_id, p.name, f"{sex} / {tr('age', n=years) if years is not None else '-'}",
                shown(tr, hit.masked_national_id), shown(tr, hit.masked_phone), card_text, balance,
                merged)

    # -- picking ---------------------------------------------------------------------------
    def action_move(self, step: int) -> None:
        table = self.query_one(DataTable)
        if self.hits and not table.has_focus:
            table.move_cursor(row=max(0, min(len(self.hits) - 1, table.cursor_row + step)))

    @on(Input.Submitted, "#query")
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.pick(self.query_one(DataTable).cursor_row)

    @on(DataTable.RowSelected, "#hits")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.pick(event.cursor_row)

    def pick(self, row: int) -> None:
        if not self.hits:
            return
        self.dismiss(self.hits[max(0, min(row, len(self.hits) - 1))].patient.patient_id)

    def action_close(self) -> None:
        self.dismiss(None)
