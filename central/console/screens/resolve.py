"""Confirm a resolution: what the remedy does, and a reason (required, kept in the event)."""

from __future__ import annotations

from typing import ClassVar

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from central.conflicts import ConflictRow, ResolveError
from central.console.data import ConsoleData
from central.reconcile import RemedyOption


class ResolveScreen(ModalScreen[int | None]):
    """Dismissed with the number of events signed, or ``None`` when cancelled."""

    DEFAULT_CSS = """
    ResolveScreen { align: center middle; }
    ResolveScreen #box { width: 80; height: auto; border: thick $warning; padding: 1 2;
                         background: $panel; }
    ResolveScreen #reason { margin: 1 0 0 0; }
    ResolveScreen #error { color: $error; text-style: bold; height: auto; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel"),
                Binding("enter", "submit", "Sign remedy", priority=True)]

    def __init__(self, data: ConsoleData, conflict: ConflictRow, remedy: RemedyOption,
                 operator: str) -> None:
        super().__init__()
        self.data = data
        self.conflict = conflict
        self.remedy = remedy
        self.operator = operator

    def compose(self) -> ComposeResult:
        with Vertical(id="box"):
            yield Static(f"[b]Resolve {self.conflict.id}: {escape(self.remedy.label)}[/b]\n"
                         f"{escape(self.remedy.effect)}\n\nSigned as central by "
                         f"{escape(self.operator)}; it syncs to every counter and cannot be "
                         "taken back.")
            yield Input(placeholder="reason (required, kept in the event for audit)",
                        id="reason")
            yield Static(id="error")
        yield Footer()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        reason = self.query_one("#reason", Input).value
        if not reason.strip():
            self.query_one("#error", Static).update("A reason is required: nothing was signed.")
            return
        self.sign(reason)

    @work(exclusive=True, group="resolve")
    async def sign(self, reason: str) -> None:
        try:
            events = await self.data.resolve(self.conflict.id, self.remedy.code, reason=reason,
                                             operator=self.operator)
        except ResolveError as exc:
            self.query_one("#error", Static).update(f"Not resolved: {escape(str(exc))}")
            return
        self.dismiss(len(events))
