"""The home screen: waits for a card, shows the patient, and puts every business one key away.

Focus stays in the card-number field so a keyboard-wedge scanner or typing works at
any moment; every business is on a function key (an Input never swallows those).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from edge_node import receipt as receipts
from edge_node.card.wedge import QR_PREFIX
from edge_node.service import PatientView, Receipt
from edge_node.tui.cardsource import Tapped, refusal_text
from edge_node.tui.context import Counter
from edge_node.tui.messages import OperationDone
from edge_node.tui.screens.base import KeySpec, bind_keys, error_text
from edge_node.tui.screens.charge import ChargeScreen
from edge_node.tui.screens.credit import GreenChannelScreen
from edge_node.tui.screens.deposit import DepositScreen
from edge_node.tui.screens.edit import EditPatientScreen
from edge_node.tui.screens.find import FindPatientScreen
from edge_node.tui.screens.form import FormScreen
from edge_node.tui.screens.history import HistoryScreen
from edge_node.tui.screens.lost import ReportLostScreen
from edge_node.tui.screens.refund import RefundScreen
from edge_node.tui.screens.register import NewPatientScreen
from edge_node.tui.screens.replace import ReplaceCardScreen
from edge_node.tui.screens.report import DailyReportScreen
from edge_node.tui.screens.settle import SettleScreen
from edge_node.tui.screens.shift import Desk
from edge_node.tui.screens.void import VoidScreen
from edge_node.tui.widgets.keybar import KeyBar
from edge_node.tui.widgets.patient_panel import PatientPanel
from edge_node.tui.widgets.status import StatusBar
from protocol.money import yuan

FORMS: dict[str, type[FormScreen]] = {
    "deposit": DepositScreen,
    "charge": ChargeScreen,
    "refund": RefundScreen,
    "lost": ReportLostScreen,
    "replace": ReplaceCardScreen,
    "settle": SettleScreen,
    "credit": GreenChannelScreen,
    "void": VoidScreen,
    "edit": EditPatientScreen,
}


#: Opens the patient search (named in the unknown-card advice: keep them in step).  Not a
#: printable key: a keyboard-wedge scanner types whole QR lines into the card field.
FIND_KEY = "ctrl+f"
#: Registers a visit (挂号) for the patient on screen: the triage desk's form.
VISIT_KEY = "ctrl+n"


class HomeScreen(Desk, Screen[None]):
    DEFAULT_CSS = """
    HomeScreen #card-row { height: 3; padding: 0 1; }
    HomeScreen #card-row Label { width: 1fr; max-width: 60; padding: 1 1 0 0; }
    HomeScreen #card_no { width: 30; }
    HomeScreen #message { height: auto; min-height: 1; padding: 0 1; }
    HomeScreen #message.problem { color: $error; text-style: bold; }
    HomeScreen #message.done { color: $success; }
    HomeScreen #message.warning { color: $warning; }
    """
    KEYS: ClassVar[list[KeySpec]] = [
        ("f2", "new_patient", "key.new", True),
        ("f3", "form('deposit')", "key.deposit", True),
        ("f4", "form('charge')", "key.charge", True),
        ("f5", "form('refund')", "key.refund", True),
        ("f6", "form('lost')", "key.lost", True),
        ("f7", "form('replace')", "key.replace", True),
        ("f8", "form('settle')", "key.settle", True),
        ("f9", "form('credit')", "key.credit", True),
        ("f10", "history", "key.history", True),
        ("f11", "report", "key.report", True),
        ("f12", "lock", "key.lock", True),
        ("ctrl+g", "form('void')", "key.void", True),
        ("ctrl+r", "form('edit')", "key.edit", True),
        (FIND_KEY, "find", "key.find", True),
        (VISIT_KEY, "visit", "key.visit", True),
        ("ctrl+o", "log_out", "key.log_out", True),
        ("escape", "clear", "key.clear", True),
    ]

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter
        self.card_no = ""
        self.card_entry = "chip"
        self.last_receipt_text = ""
        bind_keys(self, counter, self.KEYS)

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        yield StatusBar(self.counter)
        with Vertical():
            with Horizontal(id="card-row"):
                yield Label(tr("home.card_prompt"), id="card-prompt")
                if self._wedge() is not None:  # a scanner types whole lines here (QR text)
                    yield Input(id="card_no", placeholder=tr("home.card_placeholder"),
                                max_length=4096)
                else:
                    yield Input(id="card_no", placeholder=tr("home.card_placeholder"),
                                max_length=32, restrict=r"[A-Za-z0-9]*")
            yield PatientPanel(self.counter)
            yield Static(id="message")
        yield KeyBar()

    def relabel(self) -> None:
        """After a language switch: every word again, the patient kept on screen."""
        tr = self.counter.tr
        bind_keys(self, self.counter, self.KEYS)
        self.query_one("#card-prompt", Label).update(tr("home.card_prompt"))
        self.query_one("#card_no", Input).placeholder = tr("home.card_placeholder")
        self.query_one(StatusBar).relabel()
        self.panel.relabel()
        self.say(tr("home.language"))
        self.refresh_bindings()

    def reset(self) -> None:
        """Nothing of the last operator's left: no patient, no card, no message."""
        self.workers.cancel_group(self, "lookup")
        self.panel.clear()
        self.card_no = ""
        self.card_entry = "chip"
        self.last_receipt_text = ""
        self.query_one("#card_no", Input).value = ""
        self.say("")
        self.query_one(StatusBar).refresh_status()

    def on_mount(self) -> None:
        self.query_one("#card_no", Input).focus()

    @property
    def panel(self) -> PatientPanel:
        return self.query_one(PatientPanel)

    @property
    def view(self) -> PatientView | None:
        return self.panel.view

    # -- messages to staff ---------------------------------------------------------------
    # -- cards ---------------------------------------------------------------------------
    def _wedge(self) -> Any:
        from edge_node.card.wedge import WedgeReader

        desk = self.counter.desk
        reader = desk.reader if desk is not None else None
        return reader if isinstance(reader, WedgeReader) else None

    @on(Input.Submitted, "#card_no")
    def _typed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        wedge = self._wedge()
        # A keyboard-wedge scanner types into this field: a QR code or a stripe track is
        # certainly a scan (no one types those); a bare number may be a person, so it is
        # recorded as manual entry (the conservative reading).
        if wedge is not None and (QR_PREFIX in text or text[:1] in (";", "%")):
            event.input.value = ""
            wedge.feed_line(text)
            return
        self.lookup(text, "manual")

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def lookup(self, card_no: str, entry: str = "chip", quiet: bool = False,
                     tapped: Tapped | None = None) -> None:
        """Open the patient panel for a card: every offline check first (see CardDesk).

        ``quiet``: a refresh after an operation on the card already checked.
        """
        tr = self.counter.tr
        if not quiet:
            self.say(tr("home.loading"))
        service, desk = self.counter.service, self.counter.desk
        notes: tuple[str, ...] = ()
        try:
            if desk is not None and not quiet:
                check = await desk.check(card_no, entry, tapped)
                if check.refusal is not None:
                    self.panel.clear()
                    self.card_no = ""
                    text = refusal_text(tr, check.refusal)
                    self.say(f"{tr('card.refused')} — {text}", "problem")
                    return
                assert check.view is not None
                view, notes, entry, card_no = check.view, check.notes, check.entry, check.card_no
            else:
                view = await service.lookup_card(card_no)
                if desk is not None and desk.current is not None \
                        and desk.current.card_no == card_no:
                    notes = desk.current.notes
            history = await service.history(view.patient.patient_id, 20)
        except Exception as exc:
            self.panel.clear()
            self.card_no = ""
            self.say(error_text(self.counter, exc), "problem")
            return
        self.card_no, self.card_entry = card_no, entry
        self.panel.show(view, history, notes)
        field = self.query_one("#card_no", Input)
        field.value = ""
        if not quiet:
            self.say("")

    # -- finding a patient without a card -------------------------------------------------
    def action_find(self) -> None:
        typed = self.query_one("#card_no", Input).value.strip()
        self.app.push_screen(FindPatientScreen(self.counter, typed), self._found)

    def _found(self, patient_id: str | None) -> None:
        self.query_one("#card_no", Input).focus()
        if patient_id:
            self.open_patient(patient_id)

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def open_patient(self, patient_id: str) -> None:
        """Show a patient found by search as a tapped card shows them: the panel, and the
        patient's active card for the businesses (no card read: entered by hand)."""
        tr = self.counter.tr
        self.say(tr("home.loading"))
        service, desk = self.counter.service, self.counter.desk
        try:
            view = await service.open_patient(patient_id)
            history = await service.history(view.patient.patient_id, 20)
        except Exception as exc:
            self.panel.clear()
            self.card_no = ""
            self.say(error_text(self.counter, exc), "problem")
            return
        if desk is not None:
            desk.current = None  # no card was read: no wallet stamp to weigh or write
        notes: list[str] = []
        pid = view.patient.patient_id
        if pid != patient_id:
            notes.append(tr("search.flag_merged", old=patient_id, pid=pid))
        if view.card is not None:
            self.card_no = view.card.card_no
            notes.append(tr("search.flag_opened", card=view.card.card_no))
        else:
            # the newest lost card, if any: a replacement card starts from it (F7)
            lost = next((c for c in reversed(view.cards) if c.status == "lost"), None)
            self.card_no = lost.card_no if lost is not None else ""
            notes.append(tr("search.flag_no_active"))
            if lost is not None:
                notes.append(tr("search.flag_lost", card=lost.card_no))
        self.card_entry = "manual"
        self.panel.show(view, history, tuple(notes))
        self.query_one("#card_no", Input).value = ""
        self.say("")

    def action_clear(self) -> None:
        self.card_no = ""
        self.panel.clear()
        self.query_one("#card_no", Input).value = ""
        self.query_one("#card_no", Input).focus()
        self.say(self.counter.tr("home.cleared"))

    # -- businesses ------------------------------------------------------------------------
    def action_new_patient(self) -> None:
        card = self.query_one("#card_no", Input).value.strip()
        self.app.push_screen(NewPatientScreen(self.counter, None, card), self._after)

    def action_form(self, name: str) -> None:
        view = self.view
        if view is None or not self.card_no:
            self.say(self.counter.tr("home.need_card" if view is None else "search.need_active"),
                     "warning")
            return
        form = FORMS[name](self.counter, view, self.card_no, self.card_entry)
        self.app.push_screen(form, self._after)

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def action_visit(self) -> None:
        view = self.view
        if view is None or not self.card_no:
            self.say(self.counter.tr("home.need_card" if view is None else "search.need_active"),
                     "warning")
            return
        from edge_node.tui.screens.visit import VisitForm, visits_for

        try:
            offer = await visits_for(self.counter, self.counter.service).offer()
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self.app.push_screen(VisitForm(self.counter, view, self.card_no, self.card_entry, offer,
                                       channel="cashier", dept=self.counter.config.department),
                             self._after)

    def action_history(self) -> None:
        if self.view is None:
            self.say(self.counter.tr("home.need_card"), "warning")
            return
        self.app.push_screen(HistoryScreen(self.counter, self.view))

    def action_report(self) -> None:
        self.app.push_screen(DailyReportScreen(self.counter))

    def _after(self, result: Receipt | None) -> None:
        self.query_one("#card_no", Input).focus()
        if result is None:
            return
        card = self.card_no
        first = result.events[0] if result.events else None
        if first is not None and first.kind == "card.replaced":
            card = str(first.body["new_card_no"])
        elif first is not None and first.kind == "patient.registered":
            card = next((str(e.body["card_no"]) for e in result.events
                         if e.kind == "card.issued"), card)
        self.post_message(OperationDone(result, card))

    def on_operation_done(self, message: OperationDone) -> None:
        r, tr = message.receipt, self.counter.tr
        kind = r.events[0].kind if r.events else ""
        title = tr("title.new") if kind == "patient.registered" else tr(f"kind.{kind}")
        text = (tr("home.done", title=title, number=r.number, balance=yuan(r.balance))
                if r.number else tr("home.done_nonum", title=title, balance=yuan(r.balance)))
        self.say(text, "done")
        self.stamp_and_refresh(r, message.card_no, text)
        self.print_receipt(r, message.card_no, text)

    @work(exit_on_error=False, group="stamp")
    async def stamp_and_refresh(self, r: Receipt, card_no: str, done_text: str) -> None:
        """Write the wallet stamp (never undoes the committed event), then refresh."""
        desk = self.counter.desk
        warning = await desk.stamp_after(r, card_no) if desk is not None else None
        if warning:
            self.say(f"{done_text}\n{warning}", "warning")
        if card_no:
            entry = self.card_entry if card_no == self.card_no else "chip"
            if desk is not None and desk.current is not None and desk.current.card_no != card_no:
                desk.current = None  # a new card (registration, replacement)
            self.lookup(card_no, entry, quiet=True)

    @work(exit_on_error=False, group="printer")
    async def print_receipt(self, r: Receipt, card_no: str, done_text: str) -> None:
        """The transaction is already committed: a printer problem is only a warning."""
        cfg, tr = self.counter.config, self.counter.tr
        op = self.counter.operator
        text = receipts.render_text(r, node=cfg.node_id, operator=op.staff_id if op else "",
                                    language=tr.language, card_no=card_no,
                                    timezone=cfg.timezone)
        self.last_receipt_text = text
        if not cfg.printer:
            return
        result = await asyncio.to_thread(receipts.print_text, text, cfg.printer)
        if not result.printed:
            self.say(f"{done_text}\n{tr('home.printer_warning', msg=result.warning)}", "warning")
