"""Settlement: the whole remaining balance is returned and invoiced; the account closes."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Static

from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.approval import ApprovedForm
from edge_node.tui.screens.form import Plan
from edge_node.tui.widgets.choice import Choice
from protocol.account import PAYMENT_METHODS
from protocol.errors import Problem
from protocol.money import yuan


class SettleScreen(ApprovedForm):
    title_key = "title.settle"

    def fields(self) -> Iterable[Widget]:
        assert self.view is not None
        tr = self.counter.tr
        balance = max(self.view.account.balance, 0)
        yield Static(tr("form.settle_summary", amount=yuan(balance)), id="summary")
        yield from self.labelled("form.method", Choice(
            [(m, tr(f"method.{m}")) for m in PAYMENT_METHODS], id="method"))
        yield from self.approval_fields()

    def on_mount(self) -> None:
        self.query_one("#method", Choice).focus()

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        tr = self.counter.tr
        method = self.query_one("#method", Choice).value
        card = self.card_no
        problems: list[Problem] = []
        approver, pin = self.approval_typed(problems)
        if problems:
            return problems

        async def call(service: CounterService) -> Receipt:
            wallet, stamp = self.money_context()
            return await service.settle(card, method, wallet=wallet, stamp=stamp,
                                        approval=await self.approval(service, approver, pin))
        return Plan(tr("confirm.settle", name=self.view.patient.name,
                       amount=yuan(max(self.view.account.balance, 0)),
                       method=tr(f"method.{method}")), call)
