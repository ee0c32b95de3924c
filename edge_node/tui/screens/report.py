"""The cashier's daily report (日结) on screen: day by day, this operator or all, printable,
and closed (日结 确认: the cash counted, the difference seen, then signed and synced)."""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from edge_node import receipt, reports
from edge_node.tui.context import Counter
from edge_node.tui.screens.base import bind_keys, error_text
from edge_node.tui.screens.confirm import ConfirmScreen
from protocol.event import Event
from protocol.money import parse_yuan, yuan


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
                                  ("a", "toggle_all", "report.all_operators", False),
                                  ("c", "close_day", "key.close_day", False)])

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

    def action_close_day(self) -> None:
        """Count the drawer and close the day shown (this operator's or all)."""
        if self.report is None:
            return

        def closed(event: Event | None) -> None:
            if event is not None:
                tr = self.counter.tr
                diff = event.body["counted_cash"] - event.body["expected_cash"]
                self.query_one("#report-note", Static).update(tr(
                    "close.done", day=event.body["day"], node=event.node, seq=event.seq,
                    difference=yuan(diff)))
        self.app.push_screen(DayCloseScreen(self.counter, self.day, self.all_operators,
                                            self.report), closed)

    def action_close(self) -> None:
        self.dismiss(None)


class DayCloseScreen(ModalScreen[Event | None]):
    """日结 确认: type the cash counted, see the difference from the cash expected,
    confirm; the service signs the close (it syncs to central's daily audit)."""

    DEFAULT_CSS = """
    DayCloseScreen { align: center middle; }
    DayCloseScreen > Vertical { width: 64; height: auto; border: thick $warning;
                                background: $surface; padding: 1 2; }
    DayCloseScreen #close-difference { text-style: bold; }
    DayCloseScreen #close-note { color: $error; height: auto; }
    """

    def __init__(self, counter: Counter, day: reports.BusinessDay, all_operators: bool,
                 report: reports.DailyReport) -> None:
        super().__init__()
        self.counter = counter
        self.day = day
        self.all_operators = all_operators
        self.report = report
        bind_keys(self, counter, [("escape", "cancel", "key.cancel", True)])

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        who = self.report.operator or tr("report.all_operators")
        with Vertical():
            yield Static(tr("close.title", day=self.day.date.isoformat(), who=who))
            yield Static(tr("close.expected", amount=yuan(self.report.expected_cash)))
            yield Static(tr("close.counted"))
            yield Input(id="counted")
            yield Static(id="close-difference")
            yield Static(id="close-note")
            yield Static(tr("close.hint"))

    def counted(self) -> int | None:
        parsed = parse_yuan(self.query_one("#counted", Input).value, "counted_cash")
        return parsed if isinstance(parsed, int) else None

    def on_input_changed(self, event: Input.Changed) -> None:
        tr = self.counter.tr
        fen = self.counted()
        line = self.query_one("#close-difference", Static)
        if fen is None:
            line.update("")
            return
        diff = fen - self.report.expected_cash
        word = "close.over" if diff > 0 else "close.short" if diff < 0 else "close.even"
        line.update(tr("close.difference", amount=yuan(diff)) + tr(word))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        tr = self.counter.tr
        fen = self.counted()
        if fen is None:
            self.query_one("#close-note", Static).update(tr("close.bad_amount"))
            return
        question = tr("close.question", day=self.day.date.isoformat(),
                      expected=yuan(self.report.expected_cash), counted=yuan(fen),
                      difference=yuan(fen - self.report.expected_cash))

        def answered(yes: bool | None) -> None:
            if yes:
                self.sign(fen)
        self.app.push_screen(ConfirmScreen(self.counter, question), answered)

    @work(exclusive=True, exit_on_error=False)
    async def sign(self, fen: int) -> None:
        try:
            event, _ = await self.counter.service.close_day(
                self.day, fen, all_operators=self.all_operators)
        except Exception as exc:
            self.query_one("#close-note", Static).update(error_text(self.counter, exc))
            return
        self.dismiss(event)

    def action_cancel(self) -> None:
        self.dismiss(None)
