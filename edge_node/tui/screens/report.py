"""The cashier's daily report (日结) on screen: day by day, this operator or all, printable."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from edge_node import receipt, reports
from edge_node.tui.context import Counter
from edge_node.tui.screens.base import bind_keys, error_text


class DailyReportScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    DailyReportScreen { align: center middle; }
    DailyReportScreen > Vertical { width: 64; height: 95%; border: thick $primary;
                                   background: $surface; }
    DailyReportScreen #report-text { padding: 0 1; }
    DailyReportScreen #report-note { color: $warning; height: auto; padding: 0 1; }
    """
    AUTO_FOCUS = None

    def __init__(self, counter: Counter, all_operators: bool = False) -> None:
        super().__init__()
        self.counter = counter
        cfg = counter.config
        self.day = reports.business_day(counter.clock(), cfg.timezone, cfg.day_cutoff)
        self.all_operators = all_operators
        self.text = ""
        self.report: reports.DailyReport | None = None
        bind_keys(self, counter, [("escape,f11", "close", "key.close", True),
                                  ("p", "print", "key.print", False),
                                  ("left_square_bracket", "day(-1)", "key.prev_day", False),
                                  ("right_square_bracket", "day(1)", "key.next_day", False),
                                  ("a", "toggle_all", "report.all_operators", False)])

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll():
                yield Static(id="report-text")
            yield Static(id="report-note")
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        op = self.counter.operator
        operator = "" if self.all_operators or op is None else op.staff_id
        try:
            self.report = await reports.daily_report(self.counter.ledger, self.day, operator)
        except Exception as exc:
            self.query_one("#report-note", Static).update(error_text(self.counter, exc))
            return
        self.text = reports.render_text(self.report, self.counter.tr.language,
                                        generated_ms=self.counter.clock())
        self.query_one("#report-text", Static).update(self.text)

    def action_day(self, step: int) -> None:
        self.day = self.day.shifted(step)
        self.load()

    def action_toggle_all(self) -> None:
        self.all_operators = not self.all_operators
        self.load()

    @work(exit_on_error=False)
    async def action_print(self) -> None:
        tr = self.counter.tr
        note = self.query_one("#report-note", Static)
        device = self.counter.config.printer
        if not device:
            note.update(tr("home.printer_warning", msg="-"))
            return
        result = await asyncio.to_thread(receipt.print_text, self.text, device)
        note.update(tr("home.printed") if result.printed
                    else tr("home.printer_warning", msg=result.warning))

    def action_close(self) -> None:
        self.dismiss(None)
