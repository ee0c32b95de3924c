"""Log out (交班): the outgoing operator's shift slip, to print and confirm.

The slip is the daily report (:mod:`edge_node.reports`) over the operator's shift —
from their login to now by the counter's own clock — filtered to their own events, so
it is what their drawer should hold for the next person to check.  Dismisses ``True``
when they confirm (the app then logs them out), ``False`` to keep working.
"""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from edge_node import receipt, reports
from edge_node.tui.context import Counter
from edge_node.tui.screens.base import bind_keys, error_text
from edge_node.tui.widgets.keybar import KeyBar


class HandoverScreen(ModalScreen[bool]):
    DEFAULT_CSS = """
    HandoverScreen { align: center middle; }
    HandoverScreen > Vertical { width: 56; max-width: 100%; height: auto; max-height: 100%;
                                border: thick $warning; background: $surface; padding: 0 1; }
    HandoverScreen #handover-title { dock: top; text-style: bold; background: $warning;
                                     color: $text; padding: 0 1; }
    HandoverScreen VerticalScroll { height: auto; max-height: 100%; }
    HandoverScreen #handover-note { dock: bottom; height: auto; color: $text-muted; }
    """
    AUTO_FOCUS = "#slip"

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter
        self.report: reports.DailyReport | None = None
        self.text = ""
        self.loaded = False
        bind_keys(self, counter, [("enter,y", "confirm", "handover.confirm", True),
                                  ("p", "print", "key.print", False),
                                  ("escape", "cancel", "key.cancel", True)])

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        op = self.counter.operator
        with Vertical():
            yield Static(f"{tr('title.handover')}  {op.name if op else ''}",
                         id="handover-title", markup=False)
            with VerticalScroll(id="slip"):
                yield Static(tr("handover.loading"), id="slip-text", markup=False)
            yield Static(tr("handover.note"), id="handover-note")
        yield KeyBar()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        counter = self.counter
        op = counter.operator
        if op is None:
            self.dismiss(True)
            return
        cfg = counter.config
        end = counter.ledger.now_ms() + 1  # [login, now]
        period = reports.span(counter.shift_start(), end, cfg.timezone, cfg.day_cutoff)
        try:
            self.report = await reports.daily_report(counter.ledger, period, op.staff_id)
        except Exception as exc:  # the operator can still log out; the note says why
            self.query_one("#handover-note", Static).update(error_text(counter, exc))
            self.loaded = True
            return
        self.text = reports.render_text(self.report, counter.tr.language, generated_ms=end,
                                        shift=True)
        self.query_one("#slip-text", Static).update(self.text)
        self.loaded = True

    @work(exit_on_error=False)
    async def action_print(self) -> None:
        tr = self.counter.tr
        note = self.query_one("#handover-note", Static)
        device = self.counter.config.printer
        if not self.text:
            return
        if not device:
            note.update(tr("handover.not_printed", msg=tr("handover.no_printer")))
            return
        result = await asyncio.to_thread(receipt.print_text, self.text, device)
        note.update(tr("handover.printed") if result.printed
                    else tr("handover.not_printed", msg=result.warning))

    def action_confirm(self) -> None:
        if self.loaded:
            self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
