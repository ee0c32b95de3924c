"""Deposit (top-up): cash (tendered and change), bank card or mobile (its reference)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Input

from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.form import Plan
from edge_node.tui.screens.payment import PaymentForm
from edge_node.tui.widgets.choice import Choice
from protocol.errors import Problem
from protocol.money import yuan


class DepositScreen(PaymentForm):
    title_key = "title.deposit"

    def fields(self) -> Iterable[Widget]:
        yield from self.labelled("form.amount", Input(id="amount", restrict=r"[0-9.,¥]*",
                                                      max_length=14))
        yield from self.payment_fields()

    def on_mount(self) -> None:
        self.query_one("#amount", Input).focus()

    def on_enter(self, field: Input) -> None:
        if field.id == "amount":
            self.query_one("#method", Choice).focus()
        else:
            super().on_enter(field)

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        problems: list[Problem] = []
        amount = self.amount("amount", problems)
        tendered, reference = self.payment(amount, problems)
        if problems:
            return problems
        method = self.method
        card, entry = self.card_no, self.card_entry

        async def call(service: CounterService) -> Receipt:
            wallet, stamp = self.money_context()
            return await service.deposit(card, amount, method, card_entry=entry,
                                         wallet=wallet, stamp=stamp, tendered=tendered,
                                         reference=reference)
        tr = self.counter.tr
        return Plan(tr("confirm.deposit", name=self.view.patient.name, amount=yuan(amount),
                       method=tr(f"method.{method}"))
                    + self.payment_question(amount, tendered, reference), call)
