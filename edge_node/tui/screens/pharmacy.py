"""The pharmacy desk (role ``pharmacy``): tap → the patient's prescriptions waiting here,
dispensed from this pharmacy's stock (price, charge and stock in one event), the rest
returned; the day's worklist; and the stock screen (receive, transfer, adjust).

The pharmacy is the counter's ``department`` (config, e.g. ``PHA-OP``).  A tap (or a
card number typed, or Enter on a prescription of the worklist) shows every line of the
patient's prescriptions waiting here: prescribed, dispensed, left, on hand here, and
what stock is short of in red.  Enter (or F2) dispenses the highlighted prescription:
the question says what is given now and what stays open, the charge and the balance
after (from the service's dry run, so every refusal comes before the question); the
medication labels go to the counter's printer.  F3 returns what is left (a reason and
the approving doctor), F4 opens the stock.  The worklist follows sync: it is read again
whenever the ledger moves (polled every :data:`POLL_S` seconds).  Offline everything
works the same, on the stock this counter knows; a dispensing that charges past the
offline limit asks a supervisor's approval in place (:meth:`Desk.ask_supervisor`).

Screens call :class:`~edge_node.pharmacy.PharmacyService`, never the ledger; every word
is in the string table (``_PHARMACY``).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, Static

from edge_node.errors import OperationRefused
from edge_node.labels import label_text, print_label
from edge_node.pharmacy import (
    ADJUST_REASONS,
    DispenseReceipt,
    PharmacyService,
    Prescription,
    StockRow,
    WaitingLine,
)
from edge_node.service import CounterService, PatientView
from edge_node.staff import Approval
from edge_node.tui.cardsource import Tapped, refusal_text
from edge_node.tui.context import Counter
from edge_node.tui.screens.ask import AskScreen, Values, Work
from edge_node.tui.screens.base import KeySpec, bind_keys, error_text
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.shift import LIST_MOVES, Desk, desk_css, say_in
from edge_node.tui.widgets.choice import Choice
from edge_node.tui.widgets.keybar import KeyBar
from edge_node.tui.widgets.status import StatusBar
from protocol.errors import Problem
from protocol.money import yuan

POLL_S = 2.0


def pharmacy_service(counter: Counter, service: CounterService | None = None
                     ) -> PharmacyService:
    """The pharmacy service as the operator now logged in, for this counter's pharmacy
    (on ``service``'s ledger, operator and dry run: the counter's by default)."""
    cfg, service = counter.config, service or counter.service
    return PharmacyService(service.ledger, service.operator, pharmacy=cfg.department,
                           low_stock=cfg.low_stock, low_stock_items=cfg.low_stock_items,
                           dry_run=service.dry_run, roles=service.roles)


def whole(text: str, field: str, signed: bool = False) -> int:
    """A whole number typed by staff (> 0; ``signed``: ≠ 0, "-" takes out)."""
    try:
        n = int(text.strip().replace("+", "", 1) if signed else text.strip())
    except ValueError:
        n = 0
    if n == 0 or (n < 0 and not signed):
        raise OperationRefused([Problem("pharmacy.delta" if signed else "pharmacy.qty",
                                        "type a whole number", field)])
    return n


def items_text(counter: Counter, pres: Prescription, qty: dict[str, int]) -> str:
    names = {ln.code: ln.name for ln in pres.lines}
    sep = "、" if counter.tr.language == "zh" else ", "
    return sep.join(f"{names.get(c, c)}×{q}" for c, q in qty.items())


class PharmacyDesk(Desk, Screen[None]):
    """The pharmacy's home: the patient's prescriptions and the day's worklist (a
    :class:`~edge_node.tui.screens.shift.Desk`: taps, reader notices, the message line)."""

    DEFAULT_CSS = desk_css("PharmacyDesk", """
    PharmacyDesk #card-row { height: 1; padding: 0 1; }
    PharmacyDesk #card-row Label { width: auto; padding: 0 1 0 0; }
    PharmacyDesk #card_no { width: 20; border: none; height: 1; padding: 0 1;
                            background: $boost; }
    PharmacyDesk #pharmacy-name { width: 1fr; text-align: right; text-style: bold; }
    PharmacyDesk #who { height: 1; padding: 0 1; background: $boost; }
    PharmacyDesk #lines { height: auto; max-height: 8; }
    PharmacyDesk #worklist-title { height: 1; padding: 0 1; text-style: bold; }
    PharmacyDesk #worklist { height: 1fr; }
    PharmacyDesk #message { max-height: 4; }
    """)
    KEYS: ClassVar[list[KeySpec]] = [
        ("f2", "dispense", "key.dispense", True),
        ("f3", "return_rest", "key.return_rest", True),
        ("f4", "stock", "key.stock", True),
        ("f5", "refresh", "key.refresh", True),
        ("ctrl+f", "find", "key.find", True),
    ]
    #: the cursor keys move the prescription lines' selection while typing a card number
    MOVE_KEYS = LIST_MOVES

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter
        self.view: PatientView | None = None
        self.patient_id = ""
        self.prescriptions: list[Prescription] = []
        self.rows: list[tuple[Prescription, WaitingLine]] = []  # the lines table, in order
        self.work: list[Prescription] = []
        self.last_labels = ""  # the labels of the last dispensing, as text
        self._mark = -1
        self.bind_desk_keys()

    @property
    def svc(self) -> PharmacyService:
        return pharmacy_service(self.counter)

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        yield StatusBar(self.counter)
        with Vertical():
            with Horizontal(id="card-row"):
                yield Label(tr("pharmacy.card_prompt"), id="card-prompt")
                yield Input(id="card_no", placeholder=tr("home.card_placeholder"),
                            max_length=32, restrict=r"[A-Za-z0-9]*")
                yield Static(self._title(), id="pharmacy-name")
            yield Static(tr("pharmacy.no_patient"), id="who")
            yield DataTable(id="lines", cursor_type="row", zebra_stripes=True)
            yield Static(id="message")
            yield Static(id="worklist-title")
            yield DataTable(id="worklist", cursor_type="row")
        yield KeyBar()

    def _title(self) -> str:
        dept = self.counter.config.department
        tr = self.counter.tr
        return tr("pharmacy.title", pharmacy=dept) if dept else tr("pharmacy.no_department")

    def on_mount(self) -> None:
        self._columns()
        self.query_one("#card_no", Input).focus()
        if not self.counter.config.department:
            self.say(self.counter.tr("pharmacy.no_department"), "problem")
        self.refresh_worklist(force=True)
        self.set_interval(POLL_S, self.refresh_worklist)

    def _columns(self) -> None:
        tr = self.counter.tr
        lines = self.query_one("#lines", DataTable)
        lines.clear(columns=True)
        for key in ("order", "drug", "qty", "given", "left", "on_hand", "short"):
            lines.add_column(tr(f"pharmacy.lcol.{key}"))
        work = self.query_one("#worklist", DataTable)
        work.clear(columns=True)
        for key in ("time", "order", "patient", "items", "state"):
            work.add_column(tr(f"pharmacy.wcol.{key}"))

    def relabel(self) -> None:
        tr = self.counter.tr
        self.bind_desk_keys()
        self.query_one("#card-prompt", Label).update(tr("pharmacy.card_prompt"))
        self.query_one("#card_no", Input).placeholder = tr("home.card_placeholder")
        self.query_one("#pharmacy-name", Static).update(self._title())
        self.query_one(StatusBar).relabel()
        self._columns()
        self.show_patient()
        self.refresh_worklist(force=True)
        self.refresh_bindings()

    def reset(self) -> None:
        """Log out: no patient, no card, no message (the worklist is the pharmacy's)."""
        while len(self.app.screen_stack) > 1 and self.app.screen_stack[-1] is not self:
            self.app.pop_screen()
        self.workers.cancel_group(self, "lookup")
        self.clear_patient()
        self.say("")
        self.query_one(StatusBar).refresh_status()

    @property
    def lines_table(self) -> DataTable[object]:
        return self.query_one("#lines", DataTable)

    def lines_text(self) -> list[str]:
        """The prescription lines as shown (tests read them)."""
        t = self.lines_table
        return ["  ".join(str(c) for c in t.get_row_at(i)) for i in range(t.row_count)]

    def worklist_text(self) -> list[str]:
        t = self.query_one("#worklist", DataTable)
        return ["  ".join(str(c) for c in t.get_row_at(i)) for i in range(t.row_count)]

    # -- the patient's prescriptions ---------------------------------------------------------
    def show_patient(self) -> None:
        tr = self.counter.tr
        who = self.query_one("#who", Static)
        table = self.lines_table
        row = table.cursor_row
        table.clear()
        self.rows = []
        if self.view is None:
            who.update(tr("pharmacy.no_patient"))
            return
        p, acct = self.view.patient, self.view.account
        header = Text()
        header.append(p.name, style="bold")
        header.append(f"  {p.patient_id}  {tr('pharmacy.balance')} ")
        header.append(yuan(acct.balance), style="bold red" if acct.balance <= 0 else "bold")
        header.append("  " + tr("pharmacy.waiting_n", n=len(self.prescriptions)))
        who.update(header)
        for pres in self.prescriptions:
            for ln in pres.open_lines:
                have = "-" if ln.on_hand is None else str(ln.on_hand)
                short = Text(tr("pharmacy.short", n=ln.short), style="bold red") \
                    if ln.short else Text("")
                table.add_row(pres.order_id, Text(ln.name, overflow="ellipsis", no_wrap=True),
                              str(ln.qty), str(ln.dispensed), str(ln.left),
                              Text(have, style="red" if ln.short else ""), short,
                              key=f"{pres.order_id}/{ln.code}")
                self.rows.append((pres, ln))
        if self.rows:
            table.move_cursor(row=min(max(row, 0), len(self.rows) - 1))

    def selected(self) -> Prescription | None:
        table = self.lines_table
        if not self.rows or table.cursor_row < 0:
            return None
        return self.rows[min(table.cursor_row, len(self.rows) - 1)][0]

    def action_move(self, step: int) -> None:
        table = self.lines_table
        if table.row_count:
            table.move_cursor(row=max(0, min(table.row_count - 1, table.cursor_row + step)))

    def clear_patient(self) -> None:
        self.view, self.patient_id, self.prescriptions = None, "", []
        self.query_one("#card_no", Input).value = ""
        self.show_patient()

    def action_clear(self) -> None:
        self.clear_patient()
        self.query_one("#card_no", Input).focus()
        self.say(self.counter.tr("home.cleared"))

    def action_refresh(self) -> None:
        self.refresh_worklist(force=True)
        if self.patient_id:
            self.reload()

    async def _load(self, patient_id: str) -> bool:
        """The patient's prescriptions waiting here (and their balance), or a message."""
        try:
            view = await self.counter.service.patient(patient_id)
            waiting = await self.svc.waiting(patient_id)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return False
        self.view, self.patient_id, self.prescriptions = view, patient_id, waiting
        self.show_patient()
        return True

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def reload(self) -> None:
        await self._load(self.patient_id)

    # -- cards --------------------------------------------------------------------------------
    @on(Input.Submitted, "#card_no")
    def _typed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if text:
            self.lookup(text, "manual")
        elif self.view is not None:  # Enter with nothing typed: dispense the one highlighted
            self.action_dispense()

    @on(DataTable.RowSelected, "#lines")
    def _enter_line(self, event: DataTable.RowSelected) -> None:
        self.action_dispense()

    @on(DataTable.RowSelected, "#worklist")
    def _enter_work(self, event: DataTable.RowSelected) -> None:
        table = self.query_one("#worklist", DataTable)
        if self.work and 0 <= table.cursor_row < len(self.work):
            self.open_patient(self.work[table.cursor_row].order.patient_id, "queue")

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def lookup(self, card_no: str, entry: str = "chip",
                     tapped: Tapped | None = None) -> None:
        """The patient behind the card (after every offline card check) and their
        prescriptions waiting here."""
        tr = self.counter.tr
        self.say(tr("home.loading"))
        desk = self.counter.desk
        try:
            if desk is not None:
                check = await desk.check(card_no, entry, tapped)
                if check.refusal is not None:
                    self.clear_patient()
                    self.say(f"{tr('card.refused')} — {refusal_text(tr, check.refusal)}",
                             "problem")
                    return
                assert check.view is not None
                pid = check.view.patient.patient_id
            else:
                pid = (await self.counter.service.lookup_card(card_no)).patient.patient_id
        except Exception as exc:
            self.clear_patient()
            self.say(error_text(self.counter, exc), "problem")
            return
        self.query_one("#card_no", Input).value = ""
        self.view = None
        if await self._load(pid):
            self._said_waiting()

    def action_find(self) -> None:
        """A patient without their card: the cashier's search (name, phone, number…)."""
        from edge_node.tui.screens.find import FindPatientScreen

        typed = self.query_one("#card_no", Input).value.strip()
        self.app.push_screen(FindPatientScreen(self.counter, typed), self._found)

    def _found(self, patient_id: str | None) -> None:
        self.query_one("#card_no", Input).focus()
        if patient_id:
            self.open_patient(patient_id)

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def open_patient(self, patient_id: str, how: str = "search") -> None:
        self.view = None
        await self.counter.service.opened(patient_id, how)  # the trail (never raises)
        if await self._load(patient_id):
            self._said_waiting()
            self.lines_table.focus()

    def _said_waiting(self) -> None:
        tr = self.counter.tr
        assert self.view is not None
        name = self.view.patient.name
        if not self.prescriptions:
            self.say(tr("pharmacy.none_waiting", name=name), "warning")
        elif any(ln.short for _, ln in self.rows):
            self.say(tr("pharmacy.some_short", name=name), "warning")
        else:
            self.say(tr("pharmacy.tapped", name=name, n=len(self.prescriptions)))

    # -- dispensing -------------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="dispense")
    async def action_dispense(self) -> None:
        tr = self.counter.tr
        if self.view is None:
            self.say(tr("home.need_card"), "warning")
            return
        pres = self.selected()
        if pres is None:
            self.say(tr("pharmacy.none_waiting", name=self.view.patient.name), "warning")
            return
        pid = self.patient_id
        try:  # the very same dispensing, checked and rolled back: refusals come first
            preview = await self.svc.dry().dispense(pres.order_id, patient_id=pid)
        except Exception as exc:  # offline past the limit: a supervisor may approve it
            async def step(service: CounterService, approval: Approval) -> DispenseReceipt:
                return await pharmacy_service(self.counter, service).dispense(
                    pres.order_id, patient_id=pid, approval=approval)
            if not self.ask_supervisor(
                    exc, self.view, tr("pharmacy.approve_about", order=pres.order_id,
                                       items=items_text(self.counter, pres, pres.give_now)),
                    step, lambda r: self._question(pres, r),
                    lambda r: self.dispensed(pres, r)):
                self.say(error_text(self.counter, exc), "problem")
            return
        self.app.push_screen(ConfirmScreen(self.counter, self._question(pres, preview)),
                             lambda yes: self._dispense(pres) if yes else None)

    def _question(self, pres: Prescription, r: DispenseReceipt) -> str:
        tr = self.counter.tr
        parts = [tr("pharmacy.q_dispense", order=pres.order_id, name=r.patient_name,
                    items=items_text(self.counter, pres, {x.code: x.qty for x in r.items}))]
        if r.stays_open:
            parts.append(tr("pharmacy.q_stays_open",
                            items=items_text(self.counter, pres, r.stays_open)))
        if r.amount:
            parts.append(tr("pharmacy.q_charge", amount=yuan(r.amount),
                            balance=yuan(r.balance)))
        else:
            parts.append(tr("pharmacy.q_paid", balance=yuan(r.balance)))
        return "\n".join(parts)

    @work(exclusive=True, exit_on_error=False, group="dispense")
    async def _dispense(self, pres: Prescription) -> None:
        try:
            r = await self.svc.dispense(pres.order_id, patient_id=self.patient_id)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            await self._load(self.patient_id)
            return
        await self._dispensed(pres, r)

    @work(exclusive=True, exit_on_error=False, group="dispense")
    async def dispensed(self, pres: Prescription, r: DispenseReceipt) -> None:
        """A dispensing done with a supervisor's approval: as any dispensing after."""
        await self._dispensed(pres, r)

    async def _dispensed(self, pres: Prescription, r: DispenseReceipt) -> None:
        """Say what was given (and what stays open), print the labels."""
        tr = self.counter.tr
        text = tr("pharmacy.dispensed", id=r.dispense_id,
                  items=items_text(self.counter, pres, {x.code: x.qty for x in r.items}),
                  amount=yuan(r.amount), balance=yuan(r.balance))
        if r.stays_open:
            text += "\n" + tr("pharmacy.still_open",
                              items=items_text(self.counter, pres, r.stays_open))
        cfg = self.counter.config
        labels = r.labels(tr.language, cfg.timezone)
        self.last_labels = "\n".join(label_text(lb) for lb in labels)
        kind = "warning" if r.stays_open else "done"
        if cfg.printer:
            for lb in labels:
                printed = await asyncio.to_thread(print_label, lb, cfg.printer,
                                                  language=tr.language)
                if not printed.printed:
                    text += "\n" + printed.warning
                    kind = "warning"
                    break
        await self._load(self.patient_id)
        self.say(text, kind)
        self.refresh_worklist(force=True)

    # -- returning the rest ------------------------------------------------------------------
    def action_return_rest(self) -> None:
        tr = self.counter.tr
        if self.view is None:
            self.say(tr("home.need_card"), "warning")
            return
        pres = self.selected()
        if pres is None:
            self.say(tr("pharmacy.none_waiting", name=self.view.patient.name), "warning")
            return
        svc, pid = self.svc, self.patient_id
        left = {ln.code: ln.left for ln in pres.open_lines}

        async def run(values: Values) -> str:
            r = await svc.return_rest(pres.order_id, values["reason"], values["approved_by"],
                                      patient_id=pid)
            return tr("pharmacy.returned", order=pres.order_id,
                      items=items_text(self.counter, pres, r.lines), refund=yuan(r.refund),
                      balance=yuan(r.balance))
        p = self.view.patient
        self.app.push_screen(AskScreen(
            self.counter, tr("pharmacy.title_return"), f"{p.name}  {p.patient_id}",
            [(tr("field.reason"), Input(id="reason", max_length=200)),
             (tr("pharmacy.approved_by"), Input(id="approved_by", max_length=64,
                                                placeholder=tr("pharmacy.doctor_hint")))],
            run, tr("pharmacy.return_about", order=pres.order_id,
                    items=items_text(self.counter, pres, left),
                    refund=yuan(pres.refund_rest))), self._returned)

    def _returned(self, text: str | None) -> None:
        self.query_one("#card_no", Input).focus()
        if text:
            self.say(text, "done")
            self.reload()
            self.refresh_worklist(force=True)

    # -- the worklist -------------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="worklist")
    async def refresh_worklist(self, force: bool = False) -> None:
        """Today's prescriptions waiting here, read again when the ledger moved."""
        if not self.counter.config.department or not self.counter.service.operator:
            return
        svc = self.svc
        try:
            mark = await svc.changes()
            if mark == self._mark and not force:
                return
            work = await svc.worklist()
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        moved = self._mark >= 0 and mark != self._mark
        self._mark = mark
        self.work = work
        tr, tz = self.counter.tr, self.counter.config.timezone
        from edge_node.tui.describe import local_time

        table = self.query_one("#worklist", DataTable)
        row = table.cursor_row
        table.clear()
        for pres in work:
            o = pres.order
            names = items_text(self.counter, pres, {ln.code: ln.left for ln in pres.open_lines})
            short = any(ln.short for ln in pres.open_lines)
            # short says more than "to be done" in a narrow column (the stage otherwise)
            state = tr("pharmacy.short_mark") if short else tr(f"doctor.order_state.{o.stage}")
            table.add_row(local_time(o.wall_ms, tz, "%H:%M"), o.order_id, pres.patient_name,
                          Text(names, overflow="ellipsis", no_wrap=True),
                          Text(state, style="red" if short else ""), key=o.order_id)
        if work:
            table.move_cursor(row=min(max(row, 0), len(work) - 1))
        self.query_one("#worklist-title", Static).update(
            tr("pharmacy.worklist_title", n=len(work)))
        if moved and self.patient_id and not force:
            self.reload()  # a prescription synced in for the patient at the counter

    # -- stock -------------------------------------------------------------------------------
    def action_stock(self) -> None:
        self.app.push_screen(StockScreen(self.counter), self._back_from_stock)

    def _back_from_stock(self, _: None) -> None:
        self.query_one("#card_no", Input).focus()
        if self.patient_id:
            self.reload()


class StockScreen(Screen[None]):
    """This pharmacy's stock: every item, low ones in red; receive, transfer, adjust."""

    DEFAULT_CSS = desk_css("StockScreen", """
    StockScreen #stock-title { height: 1; padding: 0 1; text-style: bold;
                               background: $primary; }
    StockScreen #stock { height: 1fr; }
    StockScreen #stock-counts { height: 1; padding: 0 1; color: $text-muted; }
    StockScreen #message { max-height: 4; }
    """)
    KEYS: ClassVar[list[KeySpec]] = [
        ("f2", "receive", "key.stock_receive", True),
        ("f3", "transfer", "key.stock_transfer", True),
        ("f4", "adjust", "key.stock_adjust", True),
        ("f5", "low_only", "key.stock_low", True),
        ("escape", "back", "key.back", True),
    ]

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter
        self.low_only = False
        self.rows: list[StockRow] = []
        bind_keys(self, counter, self.KEYS)

    @property
    def svc(self) -> PharmacyService:
        return pharmacy_service(self.counter)

    def compose(self) -> ComposeResult:
        yield StatusBar(self.counter)
        yield Static(id="stock-title")
        yield DataTable(id="stock", cursor_type="row", zebra_stripes=True)
        yield Static(id="stock-counts")
        yield Static(id="message")
        yield KeyBar()

    def on_mount(self) -> None:
        self._columns()
        self.query_one("#stock", DataTable).focus()
        self.load()

    def _columns(self) -> None:
        tr = self.counter.tr
        table = self.query_one("#stock", DataTable)
        table.clear(columns=True)
        for key in ("code", "name", "on_hand", "received", "dispensed", "adjusted", "moved",
                    "level"):
            table.add_column(tr(f"pharmacy.col.{key}"))

    def relabel(self) -> None:
        bind_keys(self, self.counter, self.KEYS)
        self.query_one(StatusBar).relabel()
        self._columns()
        self.load()
        self.refresh_bindings()

    def say(self, text: str, kind: str = "") -> None:
        say_in(self.query_one("#message", Static), text, kind)

    @property
    def message_text(self) -> str:
        return str(self.query_one("#message", Static).render())

    def rows_text(self) -> list[str]:
        t = self.query_one("#stock", DataTable)
        return ["  ".join(str(c) for c in t.get_row_at(i)) for i in range(t.row_count)]

    def action_back(self) -> None:
        self.dismiss(None)

    def action_low_only(self) -> None:
        self.low_only = not self.low_only
        self.load()

    @work(exclusive=True, exit_on_error=False, group="stock")
    async def load(self, select: str = "") -> None:
        tr = self.counter.tr
        dept = self.counter.config.department
        self.query_one("#stock-title", Static).update(
            tr("pharmacy.report_title_low" if self.low_only else "pharmacy.report_title",
               pharmacy=dept or "-"))
        try:
            rows = await self.svc.stock(low_only=self.low_only)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        table = self.query_one("#stock", DataTable)
        row = table.cursor_row
        table.clear()
        self.rows = rows
        for r in rows:
            style = "bold red" if r.low else ""
            table.add_row(Text(r.code, style=style),
                          Text(r.name or "-", overflow="ellipsis", no_wrap=True, style=style),
                          Text(str(r.on_hand) + (" " + tr("pharmacy.low_mark") if r.low else ""),
                               style=style),
                          str(r.received), str(r.dispensed),
                          f"{r.adjusted:+d}" if r.adjusted else "0",
                          f"{r.moved:+d}" if r.moved else "0", str(r.level), key=r.code)
        codes = [r.code for r in rows]
        if select in codes:
            table.move_cursor(row=codes.index(select))
        elif rows:
            table.move_cursor(row=min(max(row, 0), len(rows) - 1))
        low = sum(1 for r in rows if r.low)
        self.query_one("#stock-counts", Static).update(
            tr("pharmacy.report_count", n=len(rows), low=low) if rows
            else tr("pharmacy.report_none"))

    def selected(self) -> StockRow | None:
        table = self.query_one("#stock", DataTable)
        if not self.rows or table.cursor_row < 0:
            return None
        return self.rows[min(table.cursor_row, len(self.rows) - 1)]

    def _code_input(self) -> Input:
        row = self.selected()
        return Input(row.code if row else "", id="code", max_length=32)

    def _ask(self, title_key: str, fields: list[tuple[str, Widget]], run: Work,
             hint: str = "") -> None:
        self.app.push_screen(AskScreen(self.counter, self.counter.tr(title_key),
                                       self.counter.config.department, fields, run, hint),
                             self._done)

    def _done(self, text: str | None) -> None:
        if text:
            self.say(text, "done")
        self.query_one("#stock", DataTable).focus()

    def action_receive(self) -> None:
        tr, svc = self.counter.tr, self.svc

        async def run(values: Values) -> str:
            r = await svc.receive(values["code"], whole(values["qty"], "qty"), values["batch"],
                                  values["source"])
            self.load(r.row.code)
            return tr("pharmacy.received", code=r.row.code, name=r.row.name,
                      qty=values["qty"], on_hand=r.row.on_hand)
        self._ask("pharmacy.title_receive", [
            (tr("field.code"), self._code_input()),
            (tr("field.qty"), Input(id="qty", max_length=7, restrict=r"[0-9]*")),
            (tr("field.batch"), Input(id="batch", max_length=32)),
            (tr("field.source"), Input(id="source", max_length=64,
                                       placeholder=tr("pharmacy.source_hint")))], run)

    def action_transfer(self) -> None:
        tr, svc = self.counter.tr, self.svc

        async def run(values: Values) -> str:
            r = await svc.transfer(values["code"], whole(values["qty"], "qty"),
                                   values["to_pharmacy"], values["note"])
            self.load(r.row.code)
            return tr("pharmacy.transferred", code=r.row.code, qty=values["qty"],
                      to=values["to_pharmacy"], on_hand=r.row.on_hand)
        self._ask("pharmacy.title_transfer", [
            (tr("field.code"), self._code_input()),
            (tr("field.qty"), Input(id="qty", max_length=7, restrict=r"[0-9]*")),
            (tr("field.to_pharmacy"), Input(id="to_pharmacy", max_length=32)),
            (tr("field.note"), Input(id="note", max_length=200))], run)

    def action_adjust(self) -> None:
        tr, svc = self.counter.tr, self.svc

        async def run(values: Values) -> str:
            r = await svc.adjust(values["code"], whole(values["delta"], "delta", signed=True),
                                 values["reason"], values["note"])
            self.load(r.row.code)
            return tr("pharmacy.adjusted", code=r.row.code, delta=values["delta"],
                      reason=tr(f"pharmacy.reason.{values['reason']}"),
                      on_hand=r.row.on_hand)
        self._ask("pharmacy.title_adjust", [
            (tr("field.code"), self._code_input()),
            (tr("field.reason"), Choice([(k, tr(f"pharmacy.reason.{k}"))
                                         for k in ADJUST_REASONS], id="reason")),
            (tr("field.delta"), Input(id="delta", max_length=8, restrict=r"[-+0-9]*",
                                      placeholder=tr("pharmacy.delta_hint"))),
            (tr("field.note"), Input(id="note", max_length=200))], run,
            tr("pharmacy.choice_hint"))
