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

from edge_node import staff
from edge_node.errors import OperationRefused
from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.form import FormScreen, Plan
from protocol.errors import Problem
from protocol.money import yuan


async def approval_of(service: CounterService, staff_id: str, pin: str) -> staff.Approval:
    """The supervisor's credential, or the refusal shown against the PIN field."""
    try:
        return await staff.approve(service.ledger, staff_id, pin, operator=service.operator)
    except staff.LoginRefused as exc:
        code = "approval." + exc.code.split(".", 1)[1]
        raise OperationRefused([Problem(code, str(exc), "approver_pin",
                                        dict(exc.values))]) from None


class GreenChannelScreen(FormScreen):
    title_key = "title.credit"

    def fields(self) -> Iterable[Widget]:
        assert self.view is not None
        open_ = self.view.account.credit_limit
        if open_:
            yield Static(self.counter.tr("credit.open", amount=yuan(open_)), id="credit-open")
        yield from self.labelled("form.limit", Input(id="limit", max_length=14,
                                                     restrict=r"[0-9.,¥]*"))
        yield from self.labelled("form.reason", Input(id="reason", max_length=200))
        yield from self.labelled("form.approver", Input(id="approver", max_length=32))
        yield from self.labelled("form.approver_pin", Input(id="approver_pin", max_length=12,
                                                            password=True, restrict=r"[0-9]*"))

    def on_mount(self) -> None:
        self.query_one("#limit", Input).focus()

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        problems: list[Problem] = []
        ending = self.value("limit") in ("0", "0.0", "0.00") and self.view.account.credit_limit
        limit = 0 if ending else self.amount("limit", problems)
        reason = self.required("reason", "form.reason", problems)
        approver = self.required("approver", "form.approver", problems)
        pin = self.required("approver_pin", "form.approver_pin", problems)
        if problems:
            return problems
        card = self.card_no

        async def call(service: CounterService) -> Receipt:
            if service.dry_run:  # the PIN is checked once, when it is done
                approval = staff.Approval(approver, "", "supervisor")
            else:
                approval = await approval_of(service, approver, pin)
            return await service.grant_credit(card, limit, reason, approval)
        tr = self.counter.tr
        question = (tr("confirm.credit_end", name=self.view.patient.name) if ending else
                    tr("confirm.credit", name=self.view.patient.name, amount=yuan(limit)))
        return Plan(question, call)
