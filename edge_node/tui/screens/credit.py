"""Green channel: emergency credit, with the reason and who authorised it (audited)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Input

from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.form import FormScreen, Plan
from protocol.errors import Problem
from protocol.money import yuan


class GreenChannelScreen(FormScreen):
    title_key = "title.credit"

    def fields(self) -> Iterable[Widget]:
        yield from self.labelled("form.limit", Input(id="limit", max_length=14,
                                                     restrict=r"[0-9.,¥]*"))
        yield from self.labelled("form.reason", Input(id="reason", max_length=200))
        yield from self.labelled("form.authorised_by", Input(id="authorised_by", max_length=64))

    def on_mount(self) -> None:
        self.query_one("#limit", Input).focus()

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        problems: list[Problem] = []
        limit = self.amount("limit", problems)
        reason = self.required("reason", "form.reason", problems)
        authorised_by = self.required("authorised_by", "form.authorised_by", problems)
        if problems:
            return problems
        card = self.card_no

        async def call(service: CounterService) -> Receipt:
            return await service.grant_credit(card, limit, reason, authorised_by)
        return Plan(self.counter.tr("confirm.credit", name=self.view.patient.name,
                                    amount=yuan(limit)), call)
