"""Report a card lost, after checking the patient's identity (which proof is recorded)."""

from __future__ import annotations

from collections.abc import Iterable

from textual.widget import Widget
from textual.widgets import Input

from edge_node.service import CounterService, Receipt
from edge_node.tui.screens.form import FormScreen, Plan
from edge_node.tui.widgets.choice import Choice
from protocol.card import IDENTITY_PROOFS
from protocol.errors import Problem


class ReportLostScreen(FormScreen):
    title_key = "title.lost"

    def fields(self) -> Iterable[Widget]:
        tr = self.counter.tr
        yield from self.labelled("form.verified_by", Choice(
            [(p, tr(f"proof.{p}")) for p in IDENTITY_PROOFS], id="verified_by"))
        yield from self.labelled("form.reason", Input(id="reason", max_length=200))

    def on_mount(self) -> None:
        self.query_one("#verified_by", Choice).focus()

    def prepare(self) -> Plan | list[Problem]:
        assert self.view is not None
        verified_by = self.query_one("#verified_by", Choice).value
        reason = self.value("reason")
        card = self.card_no

        async def call(service: CounterService) -> Receipt:
            return await service.report_lost(card, verified_by, reason)
        return Plan(self.counter.tr("confirm.lost", card=card, name=self.view.patient.name),
                    call)
