"""The patient's account history: every event, newest first, with who did it where.

P reprints the receipt of the entry under the cursor (补打: rebuilt from the stored
event, with its original number and time) through the same printer path as every
receipt.  A detail change lists each field from what to what; a void reads as one.
"""

from __future__ import annotations

import asyncio

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from edge_node import receipt as receipts
from edge_node.i18n import Translator
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
from protocol.core import COUNTER
from protocol.domain import REGISTRY
from protocol.event import Event
from protocol.patient import DETAILS, Registered, Updated
from protocol.privacy import NAME, PatientKeys, is_sealed


class HistoryScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HistoryScreen { align: center middle; }
    HistoryScreen > Vertical { width: 96%; height: 90%; border: thick $primary;
                               background: $surface; }
    HistoryScreen #history-title { text-style: bold; background: $primary; padding: 0 1; }
    HistoryScreen DataTable { height: 1fr; }
    HistoryScreen #history-error { color: $error; height: auto; }
    HistoryScreen #history-status { color: $success; height: auto; }
    """

    def __init__(self, counter: Counter, view: PatientView) -> None:
        super().__init__()
        self.counter = counter
        self.view = view
        self.events: list[Event] = []  # in the table's row order
        self.last_reprint = ""  # the text of the last receipt reprinted
        bind_keys(self, counter, [("escape,f10", "close", "key.close", True),
                                  ("p,ctrl+p", "reprint", "key.reprint", True)])

    def compose(self) -> ComposeResult:
        p = self.view.patient
        with Vertical():
            yield Static(f"{self.counter.tr('title.history')}: {p.name} {p.patient_id}",
                         id="history-title")
            yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
            yield Static(id="history-status")
            yield Static(id="history-error")
        yield Footer()

    def on_mount(self) -> None:
        tr = self.counter.tr
        table = self.query_one(DataTable)
        table.add_columns(tr("receipt.time"), tr("history.business"), "¥", tr("history.detail"),
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
        service = self.counter.service
        changed = detail_changes(tr, events, await service.detail_keys(),
                                 await service.ledger.patient_keys())
        self.events = list(events)
        for ev in events:
            detail = changed.get(ev.id) or event_detail(tr, ev)
            other = ev.body.get("patient_id", pid)
            if other != pid and ev.kind != "patient.merged":  # a merged record's history
                detail = f"[{other}] {detail}"
            title = event_title(tr, ev)
            if ev.kind == "account.refunded" and ev.body.get("void") == 1:
                title = tr("history.void")
            table.add_row(local_time(ev.hlc.wall, tz, "%Y-%m-%d %H:%M"), title,
                          signed_yuan(event_amount(ev, family)), detail[:60], ev.operator,
                          ev.node)
        base = await service.ledger.snapshot_base()
        if base is not None:  # bootstrapped: the entries before central's snapshot are there
            self.query_one("#history-status", Static).update(tr(
                "history.from_snapshot",
                at=local_time(base.manifest.clock[0], tz, "%Y-%m-%d %H:%M")))

    def action_close(self) -> None:
        self.dismiss(None)

    # -- reprint -------------------------------------------------------------------------
    def action_reprint(self) -> None:
        table = self.query_one(DataTable)
        if not self.events or table.cursor_row >= len(self.events):
            return
        ev = self.events[table.cursor_row]
        fact = REGISTRY.fact(ev)
        if fact is None or fact.kind.signer != COUNTER:  # central's, or unreadable
            self.say(self.counter.tr("history.no_receipt"), problem=True)
            return
        self.reprint(ev)

    @work(exclusive=True, exit_on_error=False, group="printer")
    async def reprint(self, ev: Event) -> None:
        """The receipt rebuilt from the stored event, marked 补打, printed as any receipt
        (a printer problem is a warning: nothing is written)."""
        cfg, tr = self.counter.config, self.counter.tr
        op = self.counter.operator
        try:
            r = await self.counter.service.receipt_for(ev, self.view.patient.patient_id,
                                                       self.counter.clock())
        except Exception as exc:
            self.say(error_text(self.counter, exc), problem=True)
            return
        card = next((c for e in r.events for c in (e.body.get("new_card_no"),
                                                    e.body.get("card_no"))
                     if isinstance(c, str) and c), "")
        text = receipts.render_text(r, node=cfg.node_id, operator=op.staff_id if op else "",
                                    language=tr.language, card_no=card,
                                    timezone=cfg.timezone)
        self.last_reprint = text
        if not cfg.printer:
            self.say(tr("history.reprint_saved", number=r.number))
            return
        result = await asyncio.to_thread(receipts.print_text, text, cfg.printer)
        if result.printed:
            self.say(tr("history.reprinted", number=r.number))
        else:
            self.say(tr("home.printer_warning", msg=result.warning), problem=True)

    def say(self, text: str, problem: bool = False) -> None:
        self.query_one("#history-status", Static).update("" if problem else text)
        self.query_one("#history-error", Static).update(text if problem else "")


def detail_changes(tr: Translator, events: list[Event], keys: PatientKeys | None = None,
                   name_keys: PatientKeys | None = None) -> dict[tuple[str, int], str]:
    """For each ``patient.updated`` among ``events``: each field it changed, from what to
    what, replaying the patient's details in the merge order (the fold's order); sealed
    details opened with ``keys`` (None, or not this counter's: shown as sealed), sealed
    names with ``name_keys`` (the counter's: every desk reads names; None: ``keys``).  For each
    ``patient.registered``: the name it registered."""
    facts = [f for ev in events if ev.kind in ("patient.registered", "patient.updated")
             and (f := REGISTRY.fact(ev)) is not None]
    facts.sort(key=lambda f: f.at.order)
    current: dict[str, dict[str, str]] = {}
    out: dict[tuple[str, int], str] = {}

    def say(value: str, d: str, pid: str) -> str:
        if not value:
            return tr("history.empty_value")
        holder = (name_keys or keys) if d == NAME else keys
        opened = holder.open(d, pid, value) if holder is not None else (
            None if is_sealed(value) else value)
        return tr("privacy.sealed") if opened is None else opened
    for f in facts:
        b = f.body
        details = current.setdefault(b.patient_id, {})
        if isinstance(b, Registered):
            for d in DETAILS:
                details.setdefault(d, getattr(b, d))
            out[f.event.id] = say(b.name, NAME, b.patient_id)
        elif isinstance(b, Updated):
            parts = []
            for d, new in b.changed().items():
                if d not in DETAILS:  # a sealed detail's lookup tag
                    continue
                parts.append(tr("history.changed", field=REGISTRY.label(f"detail.{d}",
                                                                        tr.language),
                                old=say(details.get(d, ""), d, b.patient_id),
                                new=say(new, d, b.patient_id)))
                details[d] = new
            out[f.event.id] = "; ".join(parts)
    return out
