"""The patient's account history: every event, newest first, with who did it where."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from edge_node.service import PatientView
from edge_node.tui.context import Counter
from edge_node.tui.describe import (
    event_amount,
    event_detail,
    event_title,
    family_of,
    local_time,
    signed_yuan,
)
from edge_node.tui.screens.base import bind_keys, error_text


class HistoryScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HistoryScreen { align: center middle; }
    HistoryScreen > Vertical { width: 96%; height: 90%; border: thick $primary;
                               background: $surface; }
    HistoryScreen #history-title { text-style: bold; background: $primary; padding: 0 1; }
    HistoryScreen DataTable { height: 1fr; }
    HistoryScreen #history-error { color: $error; height: auto; }
    """

    def __init__(self, counter: Counter, view: PatientView) -> None:
        super().__init__()
        self.counter = counter
        self.view = view
        bind_keys(self, counter, [("escape,f10", "close", "key.close", True)])

    def compose(self) -> ComposeResult:
        p = self.view.patient
        with Vertical():
            yield Static(f"{self.counter.tr('title.history')}: {p.name} {p.patient_id}",
                         id="history-title")
            yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
            yield Static(id="history-error")
        yield Footer()

    def on_mount(self) -> None:
        tr = self.counter.tr
        table = self.query_one(DataTable)
        table.add_columns(tr("receipt.time"), tr("title.history"), "¥", "",
                          tr("receipt.operator"), tr("receipt.counter"))
        table.focus()
        self.load()

    @work(exit_on_error=False)
    async def load(self) -> None:
        tr, tz = self.counter.tr, self.counter.config.timezone
        try:
            events = await self.counter.service.history(self.view.patient.patient_id)
        except Exception as exc:
            self.query_one("#history-error", Static).update(error_text(self.counter, exc))
            return
        table = self.query_one(DataTable)
        pid = self.view.patient.patient_id
        family = family_of(pid, events)
        for ev in events:
            detail = event_detail(tr, ev)
            other = ev.body.get("patient_id", pid)
            if other != pid and ev.kind != "patient.merged":  # a merged record's history
                detail = f"[{other}] {detail}"
            table.add_row(local_time(ev.hlc.wall, tz, "%Y-%m-%d %H:%M"), event_title(tr, ev),
                          signed_yuan(event_amount(ev, family)), detail[:48], ev.operator, ev.node)

    def action_close(self) -> None:
        self.dismiss(None)
