"""Confirm a resolution: what the remedy does, and a reason (required, kept in the event)."""

from __future__ import annotations

from rich.markup import escape
from textual import work
from textual.app import ComposeResult
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
    def __init__(self, data: ConsoleData, conflict: ConflictRow, remedy: RemedyOption,
                 operator: str) -> None:
        super().__init__()
        self.data = data
        tr = self.tr = data.tr
        # q types into the reason here; escape cancels
        self._bindings.bind("escape", "cancel", tr("key.cancel"))
        self._bindings.bind("enter", "submit", tr("key.sign"), priority=True)
        self.conflict = conflict
        self.remedy = remedy
        self.operator = operator

    def compose(self) -> ComposeResult:
        tr, c, r = self.tr, self.conflict, self.remedy
        label = self.data.named(tr.remedy_label(c.kind, r.code, r.label, r.events),
                                c.patients)
        effect = self.data.named(tr.remedy_effect(r.code, r.effect, r.events), c.patients)
        with Vertical(id="box"):
            yield Static(f"[b]{escape(tr('resolve.title', cid=c.id, label=label))}[/b]\n"
                         f"{escape(effect)}\n\n"
                         + escape(tr("resolve.signed_by", op=self.operator)))
            yield Input(placeholder=tr("resolve.reason"), id="reason")
            yield Static(id="error")
        yield Footer()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        reason = self.query_one("#reason", Input).value
        if not reason.strip():
            self.query_one("#error", Static).update(self.tr("resolve.need_reason"))
            return
        self.sign(reason)

    @work(exclusive=True, group="resolve")
    async def sign(self, reason: str) -> None:
        try:
            events = await self.data.resolve(self.conflict.id, self.remedy.code, reason=reason,
                                             operator=self.operator)
        except ResolveError as exc:
            self.query_one("#error", Static).update(
                self.tr("resolve.refused", msg=escape(str(exc))))
            return
        self.dismiss(len(events))
