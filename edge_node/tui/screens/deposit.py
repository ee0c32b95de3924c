"""Deposit (top-up): cash, bank card or mobile, amount in yuan with fen."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Input

from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.form import FormScreen, Plan
from edge_node.tui.widgets.choice import Choice
from protocol.account import PAYMENT_METHODS
from protocol.errors import Problem
from protocol.money import yuan


class DepositScreen(FormScreen):
    title_key = "title.deposit"

    def fields(self) -> Iterable[Widget]:
        tr = self.counter.tr
        yield from self.labelled("form.amount", Input(id="amount", restrict=r"[0-9.,¥]*",
                                                      max_length=14))
        yield from self.labelled("form.method", Choice(
            [(m, tr(f"method.{m}")) for m in PAYMENT_METHODS], id="method"))

    def on_mount(self) -> None:
        self.query_one("#amount", Input).focus()

    def on_enter(self, field: Input) -> None:
        self.query_one("#method", Choice).focus()

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        problems: list[Problem] = []
        amount = self.amount("amount", problems)
        if problems:
            return problems
        method = self.query_one("#method", Choice).value
        card, entry = self.card_no, self.card_entry

        async def call(service: CounterService) -> Receipt:
            wallet, stamp = self.money_context()
            return await service.deposit(card, amount, method, card_entry=entry,
                                         wallet=wallet, stamp=stamp)
        tr = self.counter.tr
        return Plan(tr("confirm.deposit", name=self.view.patient.name, amount=yuan(amount),
                       method=tr(f"method.{method}")), call)
