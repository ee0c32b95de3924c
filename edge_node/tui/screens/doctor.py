"""The doctor's desk (role ``doctor``): the doctor's queue of the day, and the patient.

The desk lists the queue of the counter's ``department`` for the logged-in doctor
(their visits and the department's visits to no doctor in particular).  F2 calls the
next patient and starts the consultation (the consultation fee is charged once per
visit, in the same append); Enter starts the highlighted visit; a card tap opens the
patient and their open visit of today.  The patient screen shows who they are, their
balance, insurance class and allergies (in red), visits with diagnoses and orders with
their states; every entry is one function key away (F1 lists them).

Screens call :class:`~edge_node.clinic.ClinicService` and
:class:`~edge_node.visits.VisitService`, never the ledger; every word is in the string
table.  The queue is the shared :class:`~edge_node.tui.widgets.queue.QueueTable` (the
triage desk's), with the doctor's columns: number, name, status, doctor, registered at.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static

from edge_node.clinic import ClinicService, ClinicView, OrderReceipt, Started
from edge_node.service import CounterService
from edge_node.staff import Approval
from edge_node.tui.cardsource import Tapped, refusal_text
from edge_node.tui.context import Counter
from edge_node.tui.describe import age
from edge_node.tui.screens.ask import AskScreen, Work
from edge_node.tui.screens.base import KeySpec, bind_keys, error_text, refreshed
from edge_node.tui.screens.shift import Desk, desk_css, say_in
from edge_node.tui.widgets.choice import Choice
from edge_node.tui.widgets.keybar import KeyBar
from edge_node.tui.widgets.queue import DOCTOR_COLUMNS, QueueTable
from edge_node.tui.widgets.status import StatusBar
from edge_node.visits import VisitService
from protocol.clinical import INSURANCE_TYPES
from protocol.money import yuan
from protocol.order import CANCELLABLE, Order
from protocol.visit import Visit


def clinic(counter: Counter, service: CounterService | None = None) -> ClinicService:
    """The clinic service as the operator now logged in (the doctor), on ``service``'s
    ledger, operator and dry run (the counter's by default)."""
    service = service or counter.service
    return ClinicService(service.ledger, service.operator, dry_run=service.dry_run,
                         roles=service.roles)


def visits(counter: Counter) -> VisitService:
    return VisitService(counter.ledger, counter.service.operator,
                        queue_tag=counter.config.queue_tag, roles=counter.service.roles)


class DoctorDesk(Desk, Screen[None]):
    """The doctor's home: the queue, call next, and taps."""

    DEFAULT_CSS = desk_css("DoctorDesk", """
    DoctorDesk #queue-title { padding: 0 1; text-style: bold; }
    DoctorDesk #queue { height: 1fr; border: none; }
    DoctorDesk #card-row { height: 1; padding: 0 1; }
    DoctorDesk #card-row Static { width: auto; padding: 0 1 0 0; }
    DoctorDesk #card_no { width: 24; border: none; height: 1; padding: 0 1;
                          background: $boost; }
    """)
    KEYS: ClassVar[list[KeySpec]] = [
        ("f2", "call_next", "key.call_next", True),
        ("f3", "no_show", "key.no_show", True),
        ("f4", "recall", "key.recall", True),
        ("f6", "skip", "key.skip", True),
        ("f5", "refresh", "key.refresh", True),
    ]
    CLEARS = False

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter
        self.bind_desk_keys()

    def compose(self) -> ComposeResult:
        tr = self.counter.tr
        yield StatusBar(self.counter)
        with Vertical():
            yield Static(self._title(), id="queue-title")
            with Vertical(id="card-row"):
                yield Input(id="card_no", placeholder=tr("doctor.card_placeholder"),
                            max_length=32, restrict=r"[A-Za-z0-9]*")
            yield QueueTable(tr, id="queue", columns=DOCTOR_COLUMNS,
                             timezone=self.counter.config.timezone)
            yield Static(id="message")
        yield KeyBar()

    def _title(self) -> str:
        cfg = self.counter.config
        return self.counter.tr("doctor.queue_title", dept=cfg.department or "-",
                               room=cfg.room or "-")

    def on_mount(self) -> None:
        self.queue_table.focus()

    @property
    def queue_table(self) -> QueueTable:
        return self.query_one("#queue", QueueTable)

    def relabel(self) -> None:
        self.bind_desk_keys()
        self.query_one("#queue-title", Static).update(self._title())
        self.query_one("#card_no", Input).placeholder = self.counter.tr(
            "doctor.card_placeholder")
        self.query_one(StatusBar).relabel()
        self.queue_table.relabel(self.counter.tr)
        self.refresh_queue()
        self.refresh_bindings()

    def reset(self) -> None:
        """Log out: nothing of the last doctor's left (their patient screens closed)."""
        while len(self.app.screen_stack) > 1 and self.app.screen_stack[-1] is not self:
            self.app.pop_screen()
        self.queue_table.show([], {}, self.counter.clock())
        self.say("")
        self.query_one(StatusBar).refresh_status()

    def on_screen_resume(self) -> None:
        if self.counter.service.operator:
            self.refresh_queue()

    # -- the queue -------------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.refresh_queue()

    @work(exclusive=True, exit_on_error=False, group="queue")
    async def refresh_queue(self) -> None:
        tr, cfg = self.counter.tr, self.counter.config
        if not cfg.department:
            self.say(tr("doctor.no_department"), "warning")
            return
        try:
            entries = await visits(self.counter).queue(
                cfg.department, doctor_id=self.counter.service.operator)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self.queue_table.show(entries, {}, self.counter.clock())  # doctors by id
        if not entries:
            self.say(tr("doctor.queue_empty"))

    def _selected(self) -> Visit | None:
        entry = self.queue_table.selected
        return entry.visit if entry is not None else None

    @work(exclusive=True, exit_on_error=False, group="doctor")
    async def action_call_next(self) -> None:
        """Call the next patient (the waiting room shows the number and room); the
        consultation — and its fee — starts when they come in: Enter on the visit, or a
        tap of their card.  Not there: F6 skip (F4 calls again), F3 no-show."""
        tr, cfg = self.counter.tr, self.counter.config
        try:
            called = await visits(self.counter).call_next(
                cfg.department, cfg.room, doctor_id=self.counter.service.operator)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            self.refresh_queue()
            return
        if called is None:
            self.say(tr("doctor.nobody_waiting"), "warning")
            return
        self.say(tr("doctor.called", number=called.label), "done")
        await self._show(called.visit_id)

    async def _show(self, visit_id: str) -> None:
        """The queue again, its cursor on ``visit_id``."""
        await refreshed(lambda: self.refresh_queue())
        self.queue_table.select(visit_id)

    async def _step(self, step: str, done_key: str) -> None:
        v = self._selected()
        if v is None:
            return
        try:
            await visits(self.counter).step(v.visit_id, step, self.counter.config.room)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self.say(self.counter.tr(done_key, number=v.label), "done")
        await self._show(v.visit_id)

    @work(exclusive=True, exit_on_error=False, group="doctor")
    async def action_recall(self) -> None:
        await self._step("recalled", "doctor.recalled")

    @work(exclusive=True, exit_on_error=False, group="doctor")
    async def action_skip(self) -> None:
        await self._step("skipped", "doctor.skipped")

    @on(DataTable.RowSelected, "#queue")
    def _enter(self, event: DataTable.RowSelected) -> None:
        v = self._selected()
        if v is not None:
            self.start_visit(v)

    @work(exclusive=True, exit_on_error=False, group="doctor")
    async def start_visit(self, v: Visit) -> None:
        """Enter on a visit: start it (unless it is over) and open the patient."""
        if v.status not in ("done", "no_show"):
            try:
                v = await clinic(self.counter).start(v.visit_id, self.counter.config.room)
            except Exception as exc:  # offline past the limit: a supervisor may approve
                if not self.ask_start(exc, v, lambda r: self.started(r.visit)):
                    self.say(error_text(self.counter, exc), "problem")
                return
        await self._started(v)

    @work(exclusive=True, exit_on_error=False, group="doctor")
    async def started(self, v: Visit) -> None:
        """A visit started with a supervisor's approval: as any start after."""
        await self._started(v)

    async def _started(self, v: Visit) -> None:
        """A visit started (or over): the patient opened, on the trail."""
        await self.counter.service.opened(v.patient_id, "queue")  # the trail (never raises)
        self.open_patient(v.patient_id, v.visit_id if v.status == "consulting" else "")

    def ask_start(self, exc: BaseException, v: Visit, done: Callable[[Started], object],
                  cancelled: Callable[[], object] | None = None) -> bool:
        """A consultation fee refused for want of a supervisor: ask for the approval
        (:meth:`Desk.ask_supervisor`) and start the visit with it."""
        tr, room, visit_id = self.counter.tr, self.counter.config.room, v.visit_id
        number = v.label or v.visit_id

        async def step(service: CounterService, approval: Approval) -> Started:
            return await clinic(self.counter, service).begin(visit_id, room,
                                                             approval=approval)

        def question(r: Started) -> str:
            return tr("doctor.q_start", number=number, name=self._patient_name(r.visit),
                      fee=yuan(r.fee))
        return self.ask_supervisor(exc, None, tr("doctor.approve_about", number=number),
                                   step, question, done, cancelled)

    def _patient_name(self, v: Visit) -> str:
        entry = next((e for e in self.queue_table.entries if e.visit.visit_id == v.visit_id),
                     None)
        return entry.name if entry is not None else v.patient_id

    @work(exclusive=True, exit_on_error=False, group="doctor")
    async def action_no_show(self) -> None:
        v = self._selected()
        if v is None:
            return
        try:
            await clinic(self.counter).no_show(v.visit_id)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self.say(self.counter.tr("doctor.marked_no_show", number=v.label), "done")
        self.refresh_queue()

    # -- cards -----------------------------------------------------------------------------
    @on(Input.Submitted, "#card_no")
    def _typed(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        event.input.value = ""
        if text:
            self.lookup(text, "manual")

    @work(exclusive=True, exit_on_error=False, group="lookup")
    async def lookup(self, card_no: str, entry: str = "chip",
                     tapped: Tapped | None = None) -> None:
        """A tap opens the patient and their open visit of today (card checks first)."""
        tr = self.counter.tr
        top = self.app.screen
        if top is not self and not isinstance(top, PatientScreen):
            self.app.notify(tr("doctor.finish_first"), severity="warning")
            return
        desk = self.counter.desk
        try:
            if desk is not None:
                check = await desk.check(card_no, entry, tapped)
                if check.refusal is not None:
                    self.say(f"{tr('card.refused')} — {refusal_text(tr, check.refusal)}",
                             "problem")
                    return
                assert check.view is not None
                pid = check.view.patient.patient_id
            else:
                pid = await clinic(self.counter).patient_of_card(card_no)
            today = await clinic(self.counter).visit_today(pid, self.counter.config.department)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        note = ""
        if today is not None and today.status != "consulting":
            # the patient is at the doctor: tapping starts the consultation (DOMAIN 3.5)
            try:
                today = await clinic(self.counter).start(today.visit_id, self.counter.config.room)
            except Exception as exc:  # (a deposit short of the fee): show them anyway
                note = error_text(self.counter, exc)
                # offline past the limit: a supervisor may approve it (or not: shown anyway)
                visit_id = today.visit_id
                if self.ask_start(exc, today, lambda r: self.open_patient(pid, visit_id),
                                  lambda: self.open_patient(pid, visit_id, note)):
                    return
        self.open_patient(pid, today.visit_id if today is not None else "", note)

    def open_patient(self, patient_id: str, visit_id: str, note: str = "") -> None:
        while isinstance(self.app.screen, PatientScreen):
            self.app.pop_screen()
        self.app.push_screen(PatientScreen(self.counter, patient_id, visit_id, note),
                             self._back)

    def _back(self, _: None) -> None:
        self.refresh_queue()



class PatientScreen(Screen[None]):
    """One patient as the doctor sees them, with the visit being seen (if any)."""

    DEFAULT_CSS = desk_css("PatientScreen", """
    PatientScreen #header { padding: 0 1; height: auto; background: $boost; }
    PatientScreen #allergies { padding: 0 1; height: auto; color: $error; text-style: bold; }
    PatientScreen #allergies.none { color: $text-muted; text-style: none; }
    PatientScreen #visits { padding: 0 1; height: auto; max-height: 40%; }
    PatientScreen #orders-title { padding: 0 1; text-style: bold; }
    PatientScreen #orders { height: 1fr; }
    """)
    KEYS: ClassVar[list[KeySpec]] = [
        ("f2", "diagnose", "key.diagnose", True),
        ("f3", "allergy", "key.allergy", True),
        ("f4", "insurance", "key.insurance", True),
        ("f5", "order('requisition')", "key.requisition", True),
        ("f6", "order('prescription')", "key.prescription", True),
        ("f7", "cancel_order", "key.cancel_order", True),
        ("f8", "finish", "key.finish", True),
        ("escape", "back", "key.back", True),
    ]

    def __init__(self, counter: Counter, patient_id: str, visit_id: str = "",
                 note: str = "") -> None:
        super().__init__()
        self.counter = counter
        self.patient_id = patient_id
        self.visit_id = visit_id
        self.note = note  # a problem to show first (the consultation could not start)
        self.view: ClinicView | None = None
        self.orders: list[Order] = []
        bind_keys(self, counter, self.KEYS)

    def compose(self) -> ComposeResult:
        yield StatusBar(self.counter)
        yield Static(self.counter.tr("home.loading"), id="header")
        yield Static(id="allergies")
        yield Static(id="visits")
        yield Static(id="orders-title")
        yield DataTable(id="orders", cursor_type="row", zebra_stripes=True)
        yield Static(id="message")
        yield KeyBar()

    def on_mount(self) -> None:
        self._columns()
        self.query_one("#orders", DataTable).focus()
        if self.note:
            self.say(self.note, "problem")
        self.load()

    def _columns(self) -> None:
        tr = self.counter.tr
        table = self.query_one("#orders", DataTable)
        table.clear(columns=True)
        for key in ("doctor.col_order", "doctor.col_type", "doctor.col_items",
                    "doctor.col_total", "doctor.col_state"):
            table.add_column(tr(key))

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

    @property
    def visit(self) -> Visit | None:
        if self.view is None:
            return None
        return next((e.visit for e in self.view.visits if e.visit.visit_id == self.visit_id),
                    None)

    # -- showing ---------------------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="patient")
    async def load(self) -> None:
        try:
            view = await clinic(self.counter).patient_view(self.patient_id)
        except Exception as exc:
            self.query_one("#header", Static).update("")
            self.say(error_text(self.counter, exc), "problem")
            return
        self.show(view)

    def show(self, view: ClinicView) -> None:
        self.view = view
        tr, cfg = self.counter.tr, self.counter.config
        p = view.patient
        years = age(p.birth_date, self.counter.clock(), cfg.timezone)
        sex = tr(f"sex.{p.sex}") if p.sex in ("M", "F") else "-"
        ins = tr(f"doctor.insurance.{view.insurance or 'none'}")
        v = self.visit
        seeing = (tr("doctor.seeing", number=v.label or v.visit_id,
                     status=tr(f"doctor.status.{v.status}")) if v is not None
                  else tr("doctor.no_visit_open"))
        header = Text()
        header.append(f"{p.name}", style="bold")
        header.append(f"  {sex} / {tr('age', n=years) if years is not None else '-'}"
                      f"  {p.patient_id}\n")
        header.append(f"{tr('doctor.balance')} ")
        header.append(yuan(view.balance), style="bold red" if view.balance <= 0 else "bold")
        header.append(f"   {tr('doctor.insurance')} {ins}   {seeing}")
        self.query_one("#header", Static).update(header)
        allergies = self.query_one("#allergies", Static)
        if view.allergies:
            allergies.update(tr("doctor.allergic", list="、".join(
                f"{s}（{r}）" if r else s for s, r in view.allergies)
                if tr.language == "zh" else ", ".join(
                f"{s} ({r})" if r else s for s, r in view.allergies)))
            allergies.remove_class("none")
        else:
            allergies.update(tr("doctor.no_allergies"))
            allergies.add_class("none")
        self.query_one("#visits", Static).update(self._visits_text(view))
        table = self.query_one("#orders", DataTable)
        table.clear()
        self.orders = list(view.orders)
        for o in self.orders:
            names = ", ".join(f"{ln[1]}×{ln[2]}" for ln in o.line_list())
            state = tr(f"doctor.order_state.{o.stage}")
            if o.stage == "placed" and not o.total_charged and o.total:
                state += tr("doctor.at_execution")
            if o.refunded:
                state += " " + tr("doctor.refunded", amount=yuan(o.refunded))
            if o.result_at:  # what the lab window reported, as it came by sync
                state += " " + tr("doctor.result", result=" ".join(
                    x for x in (o.result, o.report_ref) if x))
            table.add_row(o.order_id, tr(f"doctor.order_type.{o.type}"),
                          Text(names, overflow="ellipsis", no_wrap=True), yuan(o.total),
                          Text(state, style="" if o.active else "dim"),
                          key=o.order_id)
        self.query_one("#orders-title", Static).update(
            tr("doctor.orders_title", n=len(self.orders)) if self.orders
            else tr("doctor.no_orders"))

    def _visits_text(self, view: ClinicView) -> Text:
        tr = self.counter.tr
        out = Text()
        if not view.visits:
            out.append(tr("doctor.no_visits"), style="dim")
            return out
        for n, entry in enumerate(view.visits[:4]):
            v = entry.visit
            if n:
                out.append("\n")
            out.append(f"{v.day} {v.dept} {v.label} ", style="bold" if
                       v.visit_id == self.visit_id else "")
            out.append(tr(f"doctor.status.{v.status}"))
            for d in entry.diagnoses:
                out.append(f"\n    {tr('doctor.diagnosis')}: ")
                out.append(f"{d.icd10} " if d.icd10 else "", style="bold")
                out.append(d.text)
        if len(view.visits) > 4:
            out.append("\n" + tr("doctor.more_visits", n=len(view.visits) - 4), style="dim")
        return out

    # -- keys ------------------------------------------------------------------------------
    def action_back(self) -> None:
        self.dismiss(None)

    def _need_visit(self) -> Visit | None:
        v = self.visit
        if v is None or v.status in ("done", "no_show"):
            self.say(self.counter.tr("doctor.need_visit"), "warning")
            return None
        return v

    def _ask(self, title_key: str, fields: list[tuple[str, Widget]], run: Work,
             hint: str = "") -> None:
        assert self.view is not None
        p = self.view.patient
        self.app.push_screen(AskScreen(self.counter, self.counter.tr(title_key),
                                       f"{p.name}  {p.patient_id}", fields, run, hint),
                             self._done)

    def _done(self, text: str | None) -> None:
        if text:
            self.say(text, "done")
        self.load()

    def action_diagnose(self) -> None:
        v = self._need_visit()
        if v is None:
            return
        tr = self.counter.tr
        svc = clinic(self.counter)

        async def run(values: dict[str, str]) -> str:
            d = await svc.diagnose(v.visit_id, values["diagnosis"], values["icd10"])
            return tr("doctor.diagnosed", text=d.text)
        self._ask("doctor.title_diagnose", [
            (tr("field.text"), Input(id="diagnosis", max_length=200)),
            (tr("field.icd10"), Input(id="icd10", max_length=12,
                                      placeholder=tr("doctor.icd10_placeholder")))], run)

    def action_allergy(self) -> None:
        if self.view is None:
            return
        tr = self.counter.tr
        svc, pid = clinic(self.counter), self.patient_id

        async def run(values: dict[str, str]) -> str:
            if values["allergy_action"] == "withdraw":
                await svc.withdraw_allergy(pid, values["substance"])
                return tr("doctor.allergy_withdrawn", substance=values["substance"])
            await svc.record_allergy(pid, values["substance"], values["reaction"])
            return tr("doctor.allergy_recorded", substance=values["substance"])
        self._ask("doctor.title_allergy", [
            (tr("field.substance"), Input(id="substance", max_length=32,
                                          placeholder=tr("doctor.substance_placeholder"))),
            (tr("field.reaction"), Input(id="reaction", max_length=64)),
            (tr("doctor.allergy_action"), Choice([("record", tr("doctor.allergy_record")),
                                                  ("withdraw", tr("doctor.allergy_withdraw"))],
                                                 id="allergy_action"))], run)

    def action_insurance(self) -> None:
        if self.view is None:
            return
        tr = self.counter.tr
        svc, pid = clinic(self.counter), self.patient_id

        async def run(values: dict[str, str]) -> str:
            await svc.set_insurance(pid, values["insurance"])
            return tr("doctor.insurance_set",
                      insurance=tr(f"doctor.insurance.{values['insurance']}"))
        choice = Choice([(k, tr(f"doctor.insurance.{k}")) for k in INSURANCE_TYPES],
                        self.view.insurance or "none", id="insurance")
        self._ask("doctor.title_insurance", [(tr("field.insurance"), choice)], run,
                  tr("doctor.choice_hint"))

    def action_order(self, kind: str) -> None:
        v = self._need_visit()
        if v is None or self.view is None:
            return
        from edge_node.tui.screens.order import OrderScreen

        self.app.push_screen(OrderScreen(self.counter, kind, v, self.view.patient.name),
                             self._sent)

    def _sent(self, receipt: OrderReceipt | None) -> None:
        if receipt is not None:
            self.say(self.counter.tr("doctor.sent", n=len(receipt.orders),
                                     orders=", ".join(o.order_id for o in receipt.orders),
                                     balance=yuan(receipt.balance)), "done")
        self.load()

    def action_cancel_order(self) -> None:
        tr = self.counter.tr
        table = self.query_one("#orders", DataTable)
        if not self.orders or table.cursor_row < 0:
            self.say(tr("doctor.pick_order"), "warning")
            return
        o = self.orders[min(table.cursor_row, len(self.orders) - 1)]
        if o.stage not in CANCELLABLE or o.executed_at:
            self.say(tr("problem.order.not_cancellable", order=o.order_id,
                        status=tr(f"doctor.order_state.{o.stage}")), "warning")
            return
        svc = clinic(self.counter)

        async def run(values: dict[str, str]) -> str:
            r = await svc.cancel_order(o.order_id, values["reason"])
            return tr("doctor.cancelled", order=o.order_id,
                      refund=yuan(r.orders[0].refunded), balance=yuan(r.balance))
        names = ", ".join(f"{ln[1]}×{ln[2]}" for ln in o.line_list())
        self._ask("doctor.title_cancel", [
            (tr("field.reason"), Input(id="reason", max_length=200))], run,
            tr("doctor.cancel_about", order=o.order_id, items=names,
               refund=yuan(o.total_charged - o.refunded)))

    @work(exclusive=True, exit_on_error=False, group="doctor")
    async def action_finish(self) -> None:
        v = self._need_visit()
        if v is None:
            return
        try:
            done = await clinic(self.counter).finish(v.visit_id)
        except Exception as exc:
            self.say(error_text(self.counter, exc), "problem")
            return
        self.say(self.counter.tr("doctor.finished", number=done.label), "done")
        self.load()
