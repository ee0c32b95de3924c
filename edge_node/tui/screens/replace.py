"""Replace a (lost or damaged) card: the new card points at the same patient and account."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Input

from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.form import FormScreen, Plan
from protocol.errors import Problem
from protocol.money import yuan


class ReplaceCardScreen(FormScreen):
    title_key = "title.replace"
    card_field = "new_card_no"

    def fields(self) -> Iterable[Widget]:
        yield from self.labelled("form.new_card_no", Input(id="new_card_no", max_length=32,
                                                           restrict=r"[A-Za-z0-9]*"))

    def on_mount(self) -> None:
        self.query_one("#new_card_no", Input).focus()

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        problems: list[Problem] = []
        new = self.required("new_card_no", "form.new_card_no", problems)
        if problems:
            return problems
        old, desk = self.card_no, self.counter.desk
        tr, fee = self.counter.tr, self.counter.service.card_fee
        pid = self.view.patient.patient_id
        chip = desk is not None and desk.chip

        async def call(service: CounterService) -> Receipt:
            chip_uid = ""
            if desk is not None and desk.chip and not service.dry_run:
                # Write-then-verify before the replacement is appended: the old card stays
                # valid until the new one is proven readable (see NewPatientScreen).
                await service.check_new_card(new)
                chip_uid = await desk.issue(new, pid)
            return await service.replace_card(old, new, stamp=chip, chip_uid=chip_uid)
        question = tr("confirm.replace", name=self.view.patient.name, new=new, old=old)
        if fee:
            question += " " + tr("confirm.card_fee", fee=yuan(fee))
        return Plan(question, call)
