"""Void (作废) a charge of today: the whole charge back to the deposit, approved, with a
reason.  Only charges of this counter's business day with nothing refunded are listed;
the service refuses any other (another day, already refunded or voided)."""

from __future__ import annotations

from collections.abc import Iterable

from textual import on, work
from textual.widget import Widget
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from edge_node.service import CounterService, Receipt
from edge_node.tui.describe import local_time
from edge_node.tui.screens.approval import ApprovedForm
from edge_node.tui.screens.base import error_text
from edge_node.tui.screens.form import Plan
from protocol.account import Charge
from protocol.errors import Problem
from protocol.money import yuan


class VoidScreen(ApprovedForm):
    title_key = "title.void"
    DEFAULT_CSS = """
    VoidScreen #charge_id { height: 6; }
    """

    charges: list[Charge]

    def fields(self) -> Iterable[Widget]:
        tr = self.counter.tr
        yield Static(tr("form.pick_void"))
        yield OptionList(id="charge_id")
        yield from self.labelled("form.approved_by", Input(id="approved_by", max_length=64))
        yield from self.labelled("form.reason", Input(id="reason", max_length=200))
        yield from self.approval_fields()

    def on_mount(self) -> None:
        self.charges = []
        self.load_charges()

    @work(exit_on_error=False)
    async def load_charges(self) -> None:
        assert self.view is not None
        cfg = self.counter.config
        try:
            self.charges = await self.counter.service.voidable_charges(
                self.view.patient.patient_id, cfg.timezone, cfg.day_cutoff)
        except Exception as exc:
            self.show_error(error_text(self.counter, exc))
            return
        options = self.query_one("#charge_id", OptionList)
        for c in self.charges:
            options.add_option(Option(f"{c.charge_id}  {local_time(c.wall_ms, cfg.timezone)}  "
                                      f"{c.department}  {yuan(c.amount)}", id=c.charge_id))
        if self.charges:
            options.highlighted = 0
            options.focus()
        else:
            self.show_error(self.counter.tr("form.no_void"))

    def _selected(self) -> Charge | None:
        options = self.query_one("#charge_id", OptionList)
        if options.highlighted is None or not self.charges:
            return None
        return self.charges[options.highlighted]

    @on(OptionList.OptionSelected, "#charge_id")
    def _chosen(self) -> None:
        self.query_one("#approved_by", Input).focus()

    def prepare(self) -> Plan | list[Problem]:
        tr = self.counter.tr
        charge = self._selected()
        if charge is None:
            return [Problem("form.charge", tr("form.no_void"), "charge_id")]
        problems: list[Problem] = []
        approved_by = self.required("approved_by", "form.approved_by", problems)
        reason = self.required("reason", "form.reason", problems)
        approver, pin = self.approval_typed(problems)
        if problems:
            return problems
        cfg, charge_id = self.counter.config, charge.charge_id

        async def call(service: CounterService) -> Receipt:
            wallet, stamp = self.money_context()
            return await service.void_charge(charge_id, approved_by, reason,
                                             timezone=cfg.timezone, cutoff=cfg.day_cutoff,
                                             wallet=wallet, stamp=stamp,
                                             approval=await self.approval(service, approver,
                                                                          pin))
        return Plan(tr("confirm.void", charge=charge_id, amount=yuan(charge.amount)), call)
