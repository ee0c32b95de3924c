"""Register a visit (挂号) for the patient on screen: department, doctor (optional), the
fee shown before confirming; the queue number is given after.

The same form at the triage desk and at the cashier (``channel``).  Its choices (the
clinics, their doctors, the fees) are read before it opens (:meth:`VisitService.offer`),
so the form itself never waits; the registration goes through
:class:`~edge_node.visits.VisitService`, checked on its dry run before the question as
every form is (:class:`~edge_node.tui.screens.form.FormScreen`), and dismisses with a
:class:`~edge_node.service.Receipt` whose number is the queue number.  A fee charged
offline past the limits, or on a card number typed by hand, asks a supervisor's id and
PIN in the form when the counter refuses it for that (as the cashier's charge form).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual import on
from textual.widget import Widget
from textual.widgets import Select, Static

from edge_node.service import CounterService, PatientView, Receipt
from edge_node.tui.context import Counter
from edge_node.tui.screens.approval import ApprovedForm
from edge_node.tui.screens.form import Plan
from edge_node.visits import Offer, VisitReceipt, VisitService
from protocol.errors import Problem
from protocol.money import yuan


def visits_for(counter: Counter, service: CounterService) -> VisitService:
    """The visit service on the same ledger, operator and dry run as ``service``."""
    return VisitService(service.ledger, service.operator, queue_tag=counter.config.queue_tag,
                        roles=service.roles,
                        dry_run=service.dry_run)


def as_receipt(r: VisitReceipt, fee_name: str = "") -> Receipt:
    """A visit's registration as the counter's receipt (printed and shown like any)."""
    v = r.visit
    lines = ((fee_name or v.fee_code, v.fee),) if v.fee else ()
    return Receipt("Visit registered", r.patient, r.events, r.balance, lines, v.label,
                   r.events[0].hlc.wall if r.events and not r.preview else 0,
                   preview=r.preview)


class VisitForm(ApprovedForm):
    title_key = "title.visit"
    field_ids: ClassVar[dict[str, str]] = {**ApprovedForm.field_ids, "doctor_id": "doctor",
                                           "fee": "doctor", "card_no": "dept"}

    def __init__(self, counter: Counter, view: PatientView, card_no: str, card_entry: str,
                 offer: Offer, *, channel: str, dept: str = "") -> None:
        super().__init__(counter, view, card_no, card_entry)
        self.offer = offer
        self.channel = channel
        codes = [d.code for d in offer.clinics]
        self.dept = dept if dept in codes else (codes[0] if codes else "")

    def fields(self) -> Iterable[Widget]:
        tr = self.counter.tr
        depts = [(f"{d.code}  {d.name}", d.code) for d in self.offer.clinics]
        yield from self.labelled("field.dept", Select(depts, value=self.dept or Select.BLANK,
                                                      allow_blank=not depts, id="dept"))
        yield from self.labelled("field.doctor_id", Select(self._doctors(self.dept), value="",
                                                           allow_blank=False, id="doctor"))
        yield from self.labelled("visit.fee", Static(id="fee"))
        yield Static(tr("visit.hint"), id="visit-hint")
        yield from self.approval_fields(hidden=True)

    def _doctors(self, dept: str) -> list[tuple[str, str]]:
        tr = self.counter.tr
        out = [(tr("visit.any_doctor"), "")]
        out += [(f"{d.name} {d.title}".strip(), d.doctor_id)
                for d in self.offer.doctors.get(dept, ())]
        return out

    def on_mount(self) -> None:
        self._show_fee()
        self.query_one("#dept", Select).focus()

    @on(Select.Changed, "#dept")
    def _dept_changed(self, event: Select.Changed) -> None:
        value = event.value
        self.dept = value if isinstance(value, str) else ""
        doctor = self.query_one("#doctor", Select)
        doctor.set_options(self._doctors(self.dept))
        doctor.value = ""
        self._show_fee()

    @on(Select.Changed, "#doctor")
    def _doctor_changed(self, event: Select.Changed) -> None:
        self._show_fee()

    @property
    def doctor_id(self) -> str:
        value = self.query_one("#doctor", Select).value
        return value if isinstance(value, str) else ""

    def _show_fee(self) -> None:
        tr = self.counter.tr
        item = self.offer.fee(self.doctor_id)
        assert self.view is not None
        balance = yuan(self.view.account.balance)
        text = (tr("visit.fee_line", item=item.name, fee=yuan(item.price), balance=balance)
                if item is not None else tr("visit.no_fee", balance=balance))
        self.query_one("#fee", Static).update(text)

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        tr = self.counter.tr
        if not self.dept:
            return [Problem("form.required", "dept: required", "dept")]
        problems: list[Problem] = []
        approver, pin = self.approval_typed(problems)
        if problems:
            return problems
        dept, doctor, channel = self.dept, self.doctor_id, self.channel
        card, entry = self.card_no, self.card_entry
        pid = self.view.patient.patient_id
        item = self.offer.fee(doctor)

        async def call(service: CounterService) -> Receipt:
            visits = visits_for(self.counter, service)
            r = await visits.register(dept=dept, channel=channel, card_no=card,
                                      patient_id="" if card else pid, doctor_id=doctor,
                                      card_entry=entry or "chip",
                                      approval=await self.approval(service, approver, pin))
            return as_receipt(r, item.name if item else "")
        clinic = self.offer.clinic(dept)
        names = {d.doctor_id: d.name for d in self.offer.doctors.get(dept, ())}
        question = tr("confirm.visit", name=self.view.patient.name,
                      dept=clinic.name if clinic else dept,
                      doctor=names.get(doctor) or tr("visit.any_doctor"),
                      fee=yuan(item.price if item else 0))
        return Plan(question, call)
