"""Refund: pick one of the patient's charges, the amount, who approved it, where it goes."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on, work
from textual.widget import Widget
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from edge_node.service import CounterService, Receipt
from edge_node.tui.describe import local_time
from edge_node.tui.screens.form import FormScreen, Plan
from edge_node.tui.widgets.choice import Choice
from protocol.account import REFUND_TO, Charge
from protocol.errors import Problem
from protocol.money import yuan


class RefundScreen(FormScreen):
    title_key = "title.refund"
    DEFAULT_CSS = """
    RefundScreen #charge_id { height: 6; }
    """

    charges: list[Charge]

    def fields(self) -> Iterable[Widget]:
        tr = self.counter.tr
        yield Static(tr("form.pick_charge"))
        yield OptionList(id="charge_id")
        yield from self.labelled("form.refund_amount", Input(id="amount", max_length=14,
                                                             restrict=r"[0-9.,¥]*"))
        yield from self.labelled("form.refund_to", Choice(
            [(t, tr(f"to.{t}")) for t in REFUND_TO], id="to"))
        yield from self.labelled("form.approved_by", Input(id="approved_by", max_length=64))
        yield from self.labelled("form.reason", Input(id="reason", max_length=200))

    def on_mount(self) -> None:
        self.charges = []
        self.load_charges()

    @work(exit_on_error=False)
    async def load_charges(self) -> None:
        assert self.view is not None
        charges = await self.counter.service.charges(self.view.patient.patient_id)
        self.charges = [c for c in charges if c.refundable > 0]
        options = self.query_one("#charge_id", OptionList)
        tz = self.counter.config.timezone
        for c in self.charges:
            options.add_option(Option(f"{c.charge_id}  {local_time(c.wall_ms, tz)}  "
                                      f"{c.department}  {yuan(c.amount)}  "
                                      f"(−{yuan(c.refunded)})", id=c.charge_id))
        if self.charges:
            options.highlighted = 0
            options.focus()
        else:
            self.show_error(self.counter.tr("form.no_charges"))

    def _selected(self) -> Charge | None:
        options = self.query_one("#charge_id", OptionList)
        if options.highlighted is None or not self.charges:
            return None
        return self.charges[options.highlighted]

    @on(OptionList.OptionHighlighted, "#charge_id")
    def _highlighted(self) -> None:
        charge = self._selected()
        if charge is not None:
            left = charge.refundable
            self.query_one("#amount", Input).value = f"{left // 100}.{left % 100:02d}"

    @on(OptionList.OptionSelected, "#charge_id")
    def _chosen(self) -> None:
        self.query_one("#amount", Input).focus()

    def prepare(self) -> Plan | list[Problem]:
        tr = self.counter.tr
        charge = self._selected()
        if charge is None:
            return [Problem("form.charge", tr("form.no_charges"), "charge_id")]
        problems: list[Problem] = []
        amount = self.amount("amount", problems)
        approved_by = self.required("approved_by", "form.approved_by", problems)
        reason = self.required("reason", "form.reason", problems)
        if problems:
            return problems
        to = self.query_one("#to", Choice).value
        charge_id = charge.charge_id

        async def call(service: CounterService) -> Receipt:
            wallet, stamp = self.money_context()
            return await service.refund(charge_id, amount, to, approved_by, reason,
                                        wallet=wallet, stamp=stamp)
        return Plan(tr("confirm.refund", charge=charge_id, amount=yuan(amount),
                       to=tr(f"to.{to}")), call)
