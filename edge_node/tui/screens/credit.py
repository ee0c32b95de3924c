"""Green channel: emergency credit, with the reason, approved by a supervisor's id and PIN.

The supervisor types their own staff id and PIN at this counter: the PIN is checked as
at login (wrong PINs count towards the same lockout), the approver must be a supervisor
and not the operator, and the signed event names them.  The credit is capped by the
hospital (config ``green_channel_cap``); a limit of 0 ends an open green channel.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Input, Static

from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.approval import ApprovedForm
from edge_node.tui.screens.form import Plan
from protocol.errors import Problem
from protocol.money import yuan


class GreenChannelScreen(ApprovedForm):
    title_key = "title.credit"

    def fields(self) -> Iterable[Widget]:
        assert self.view is not None
        open_ = self.view.account.credit_limit
        if open_:
            yield Static(self.counter.tr("credit.open", amount=yuan(open_)), id="credit-open")
        yield from self.labelled("form.limit", Input(id="limit", max_length=14,
                                                     restrict=r"[0-9.,¥]*"))
        yield from self.labelled("form.reason", Input(id="reason", max_length=200))
        yield from self.approval_fields()

    def on_mount(self) -> None:
        self.query_one("#limit", Input).focus()

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        problems: list[Problem] = []
        ending = self.value("limit") in ("0", "0.0", "0.00") and self.view.account.credit_limit
        limit = 0 if ending else self.amount("limit", problems)
        reason = self.required("reason", "form.reason", problems)
        approver, pin = self.approval_typed(problems, required=True)
        if problems:
            return problems
        card = self.card_no

        async def call(service: CounterService) -> Receipt:
            approval = await self.approval(service, approver, pin)
            assert approval is not None
            return await service.grant_credit(card, limit, reason, approval)
        tr = self.counter.tr
        question = (tr("confirm.credit_end", name=self.view.patient.name) if ending else
                    tr("confirm.credit", name=self.view.patient.name, amount=yuan(limit)))
        return Plan(question, call)
