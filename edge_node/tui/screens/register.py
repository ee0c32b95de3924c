"""New patient and card: from the national ID card (birth date and sex derived) or a form."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual import on
from textual.widget import Widget
from textual.widgets import Input, Static

from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.form import Plan
from edge_node.tui.screens.payment import PaymentForm
from protocol import nationalid
from protocol.errors import Problem
from protocol.money import yuan


class NewPatientScreen(PaymentForm):
    title_key = "title.new"
    field_ids: ClassVar[dict[str, str]] = {"amount": "first_deposit"}  # the deposit's amount
    amount_field = "first_deposit"
    card_field = "card_no"

    def fields(self) -> Iterable[Widget]:
        # the first deposit must cover the registration fee and the card fee (工本费)
        fee = self.counter.config.registration_fee + self.counter.service.card_fee
        yield from self.labelled("form.name", Input(id="name", max_length=64))
        yield from self.labelled("form.national_id", Input(id="national_id", max_length=18,
                                                           restrict=r"[0-9xX]*"))
        yield Static(id="derived")
        yield from self.labelled("form.sex", Input(id="sex", max_length=1, restrict=r"[MFmf]*"))
        yield from self.labelled("form.birth_date", Input(id="birth_date", max_length=10,
                                                          placeholder="1990-03-07"))
        yield from self.labelled("form.phone", Input(id="phone", max_length=20,
                                                     restrict=r"[0-9 +-]*"))
        yield from self.labelled("form.contact", Input(id="contact", max_length=128))
        yield from self.labelled("form.card_no", Input(self.card_no, id="card_no", max_length=32,
                                                       restrict=r"[A-Za-z0-9]*"))
        yield from self.labelled("form.first_deposit", Input(f"{fee // 100}.{fee % 100:02d}",
                                                             id="first_deposit"), fee=yuan(fee))
        yield from self.payment_fields()

    def on_mount(self) -> None:
        self.query_one("#name", Input).focus()

    @on(Input.Changed, "#national_id")
    def derive(self, event: Input.Changed) -> None:
        """A complete, valid ID number fills in sex and birth date (shown, not retyped)."""
        tr = self.counter.tr
        derived = self.query_one("#derived", Static)
        parsed = nationalid.parse(event.value) if len(event.value) == 18 else None
        if parsed is None:
            derived.update("")
            return
        if isinstance(parsed, Problem):
            derived.update(tr.problem(parsed))
            return
        self.query_one("#sex", Input).value = parsed.sex
        self.query_one("#birth_date", Input).value = parsed.birth_date
        derived.update(tr("form.derived", sex=tr(f"sex.{parsed.sex}"), birth=parsed.birth_date))

    def prepare(self) -> Plan | list[Problem]:
        tr = self.counter.tr
        problems: list[Problem] = []
        name = self.required("name", "form.name", problems)
        national_id = self.value("national_id").upper()
        sex = self.value("sex").upper()
        birth = self.value("birth_date")
        if national_id:
            parsed = nationalid.parse(national_id)
            if isinstance(parsed, Problem):
                problems.append(parsed)
            else:  # the ID number decides; the service re-checks they agree
                sex, birth = parsed.sex, parsed.birth_date
        else:
            self.required("sex", "form.sex", problems)
            self.required("birth_date", "form.birth_date", problems)
        phone, contact = self.value("phone"), self.value("contact")
        if not phone and not contact:
            problems.append(Problem("form.contact", tr("form.contact_required"), "phone"))
        card_no = self.required("card_no", "form.card_no", problems)
        amount = self.amount("first_deposit", problems)
        method = self.method
        tendered, reference = self.payment(amount, problems)
        if problems:
            return problems
        desk = self.counter.desk

        async def call(service: CounterService) -> Receipt:
            expect, chip, chip_uid = "", desk is not None and desk.chip, ""
            if chip and not service.dry_run:
                # Write-then-verify: the chip is written and read back BEFORE anything is
                # appended, so a card pulled mid-write leaves no registration (and no
                # deposit taken for a card the patient cannot use): staff present the
                # card and issue again.  The patient id is predicted (only this TUI
                # appends this counter's events) and re-checked inside the append.
                # (Not in the dry run before the confirm question: nothing is written.)
                assert desk is not None
                await service.check_new_card(card_no, national_id, amount)
                expect = await service.next_patient_id()
                chip_uid = await desk.issue(card_no, expect)
            return await service.register_patient(
                chip_uid=chip_uid, name=name, card_no=card_no, first_deposit=amount, method=method,
                national_id=national_id, sex=sex, birth_date=birth, phone=phone,
                contact=contact, expect_patient_id=expect, stamp=chip, tendered=tendered,
                reference=reference)
        question = tr("confirm.new", name=name, card=card_no, amount=yuan(amount),
                      method=tr(f"method.{method}"))
        if card_fee := self.counter.service.card_fee:
            question += " " + tr("confirm.card_fee", fee=yuan(card_fee))
        return Plan(question + self.payment_question(amount, tendered, reference), call)
