"""Refund: pick one of the patient's charges, then its items (or an amount), who approved
it, where it goes.

The charge's lines are listed with how many of each are left to refund; in that table
+ and - change how many of the line under the cursor are refunded, and the amount is
computed from them.  With no item picked the refund is of the amount typed.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import on, work
from textual.widget import Widget
from textual.widgets import DataTable, Input, OptionList, Static
from textual.widgets.option_list import Option

from edge_node.service import ChargeLine, CounterService, Receipt
from edge_node.tui.context import Counter
from edge_node.tui.describe import local_time
from edge_node.tui.screens.approval import ApprovedForm
from edge_node.tui.screens.base import bind_keys
from edge_node.tui.screens.form import Plan
from edge_node.tui.widgets.choice import Choice
from protocol.account import REFUND_TO, Charge
from protocol.errors import Problem
from protocol.money import yuan


class RefundScreen(ApprovedForm):
    title_key = "title.refund"
    DEFAULT_CSS = """
    RefundScreen #charge_id { height: 6; }
    RefundScreen #items { height: auto; max-height: 8; }
    RefundScreen #items-total { text-style: bold; }
    """

    charges: list[Charge]

    def __init__(self, counter: Counter, *args: object, **kw: object) -> None:
        super().__init__(counter, *args, **kw)  # type: ignore[arg-type]
        self.lines: tuple[ChargeLine, ...] = ()
        self.picked: dict[int, int] = {}  # line index -> quantity to refund
        self.lines_of = ""  # the charge the lines are of
        bind_keys(self, counter, [("plus", "pick(1)", "key.more", False),
                                  ("minus", "pick(-1)", "key.less", False)])

    def fields(self) -> Iterable[Widget]:
        tr = self.counter.tr
        yield Static(tr("form.pick_charge"))
        yield OptionList(id="charge_id")
        yield Static(tr("form.refund_items"))
        items: DataTable[str] = DataTable(id="items", cursor_type="row")
        yield items
        yield Static(id="items-total")
        yield from self.labelled("form.refund_amount", Input(id="amount", max_length=14,
                                                             restrict=r"[0-9.,¥]*"))
        yield from self.labelled("form.refund_to", Choice(
            [(t, tr(f"to.{t}")) for t in REFUND_TO], id="to"))
        yield from self.labelled("form.approved_by", Input(id="approved_by", max_length=64))
        yield from self.labelled("form.reason", Input(id="reason", max_length=200))
        yield from self.approval_fields()

    def on_mount(self) -> None:
        tr = self.counter.tr
        self.charges = []
        self.query_one("#items", DataTable).add_columns(
            tr("form.refund_col_item"), tr("form.refund_col_charged"), "¥",
            tr("form.refund_col_left"), tr("form.refund_col_pick"))
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
            self.load_lines(charge.charge_id)

    @on(OptionList.OptionSelected, "#charge_id")
    def _chosen(self) -> None:
        self.query_one("#items", DataTable).focus()

    # -- the charge's items --------------------------------------------------------------
    @work(exclusive=True, exit_on_error=False, group="lines")
    async def load_lines(self, charge_id: str) -> None:
        try:
            _, lines = await self.counter.service.charge_lines(charge_id)
        except Exception:  # a charge not here any more: refund by amount
            lines = ()
        self.lines, self.picked, self.lines_of = lines, {}, charge_id
        self._render_lines()

    def _render_lines(self) -> None:
        tr = self.counter.tr
        table = self.query_one("#items", DataTable)
        row = table.cursor_row
        table.clear()
        for ln in self.lines:
            table.add_row(f"{ln.name}", f"×{ln.qty}", yuan(ln.unit_price), str(ln.left),
                          str(self.picked.get(ln.line, 0) or ""), key=str(ln.line))
        if self.lines:
            table.move_cursor(row=min(row, len(self.lines) - 1))
        total = self.items_total
        self.query_one("#items-total", Static).update(
            tr("form.refund_total", total=yuan(total)) if self.picked
            else tr("form.refund_none"))
        amount = self.query_one("#amount", Input)
        amount.disabled = bool(self.picked)  # computed from the items
        if self.picked:
            amount.value = f"{total // 100}.{total % 100:02d}"

    @property
    def items_total(self) -> int:
        price = {ln.line: ln.unit_price for ln in self.lines}
        return sum(q * price[i] for i, q in self.picked.items() if i in price)

    def action_pick(self, step: int) -> None:
        table = self.query_one("#items", DataTable)
        if not self.lines or not table.has_focus:
            return
        ln = self.lines[min(table.cursor_row, len(self.lines) - 1)]
        qty = max(0, min(ln.left, self.picked.get(ln.line, 0) + step))
        if qty:
            self.picked[ln.line] = qty
        else:
            self.picked.pop(ln.line, None)
        self._render_lines()

    # -- submit --------------------------------------------------------------------------
    def prepare(self) -> Plan | list[Problem]:
        tr = self.counter.tr
        charge = self._selected()
        if charge is None:
            return [Problem("form.charge", tr("form.no_charges"), "charge_id")]
        problems: list[Problem] = []
        items = dict(self.picked) if self.lines_of == charge.charge_id else {}
        amount = self.items_total if items else self.amount("amount", problems)
        approved_by = self.required("approved_by", "form.approved_by", problems)
        reason = self.required("reason", "form.reason", problems)
        approver, pin = self.approval_typed(problems)
        if problems:
            return problems
        to = self.query_one("#to", Choice).value
        charge_id = charge.charge_id

        async def call(service: CounterService) -> Receipt:
            wallet, stamp = self.money_context()
            return await service.refund(charge_id, None if items else amount, to, approved_by,
                                        reason, items=items or None, wallet=wallet,
                                        stamp=stamp,
                                        approval=await self.approval(service, approver, pin))
        if items:
            question = tr("confirm.refund_items", charge=charge_id, amount=yuan(amount),
                          n=sum(items.values()), to=tr(f"to.{to}"))
        else:
            question = tr("confirm.refund", charge=charge_id, amount=yuan(amount),
                          to=tr(f"to.{to}"))
        return Plan(question, call)
