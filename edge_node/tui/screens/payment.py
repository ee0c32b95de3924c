"""How a deposit is paid, for the deposit and registration forms: the method, and then
cash tendered (change shown as it is typed) or a bank-card / mobile payment's reference.

Enter on cash submits as before (the tendered field under it is optional, reached with
Tab; empty: the exact amount; below the amount it is refused before the confirm
question).  Enter on bank card or mobile goes on to the reference, which they require;
Enter there submits.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.widget import Widget
from textual.widgets import Input, Static

from edge_node.tui.screens.form import FormScreen
from edge_node.tui.widgets.choice import Choice
from protocol.account import PAYMENT_METHODS
from protocol.errors import Amount, Problem
from protocol.money import parse_yuan, yuan


class PaymentForm(FormScreen):
    """A form taking a payment: ``amount_field`` names its amount input."""

    amount_field = "amount"

    def payment_fields(self) -> Iterable[Widget]:
        tr = self.counter.tr
        yield from self.labelled("form.method", Choice(
            [(m, tr(f"method.{m}")) for m in PAYMENT_METHODS], id="method"))
        yield from self.labelled("form.tendered", Input(id="tendered", restrict=r"[0-9.,¥]*",
                                                        max_length=14), row_id="tendered-row")
        yield Static(id="change")
        yield from self.labelled("form.reference", Input(id="reference", max_length=64),
                                 row_id="reference-row")

    def on_mount(self) -> None:
        self.watch(self.query_one("#method", Choice), "value", self._method_changed)

    @property
    def method(self) -> str:
        return self.query_one("#method", Choice).value

    def _method_changed(self, method: str) -> None:
        cash = method == "cash"
        for wid in ("#tendered-row", "#change"):
            self.query_one(wid).display = cash
        self.query_one("#reference-row").display = not cash
        self.show_change()

    @on(Input.Changed)
    def _typed_money(self, event: Input.Changed) -> None:
        if event.input.id in (self.amount_field, "tendered"):
            self.show_change()

    def show_change(self) -> None:
        """Change as the tendered cash is typed (or that it is short)."""
        tr = self.counter.tr
        out = self.query_one("#change", Static)
        amount = parse_yuan(self.value(self.amount_field), self.amount_field)
        tendered = parse_yuan(self.value("tendered"), "tendered")
        if (self.method != "cash" or not self.value("tendered") or isinstance(amount, Problem)
                or isinstance(tendered, Problem)):
            out.update("")
        elif tendered < amount:
            out.update(tr("form.tendered_short", tendered=yuan(tendered), amount=yuan(amount)))
        else:
            out.update(tr("form.change", change=yuan(tendered - amount)))

    def action_submit(self) -> None:
        """Enter on a card or mobile method goes on to its reference while that is empty;
        on cash it submits (the tendered field below it is optional: Tab reaches it)."""
        if isinstance(self.focused, Choice) and self.focused.id == "method" \
                and self.method != "cash" and not self.value("reference"):
            self.query_one("#reference", Input).focus()
            return
        super().action_submit()

    def payment(self, amount: int, problems: list[Problem]) -> tuple[int, str]:
        """(tendered fen or 0, reference) as typed, adding what is wrong to ``problems``."""
        tr = self.counter.tr
        if self.method == "cash":
            text = self.value("tendered")
            if not text:
                return 0, ""
            tendered = parse_yuan(text, "tendered")
            if isinstance(tendered, Problem):
                problems.append(Problem("form.amount", tr("form.bad_amount"), "tendered"))
                return 0, ""
            if tendered < amount:
                problems.append(Problem("deposit.tendered_short",
                                        tr("form.tendered_short", tendered=yuan(tendered),
                                           amount=yuan(amount)), "tendered",
                                        {"tendered": Amount(tendered), "amount": Amount(amount)}))
            return tendered, ""
        reference = self.value("reference")
        if not reference:
            problems.append(Problem("deposit.reference_required",
                                    tr("problem.deposit.reference_required"), "reference"))
        return 0, reference

    def payment_question(self, amount: int, tendered: int, reference: str) -> str:
        """What the confirm question adds about the payment."""
        tr = self.counter.tr
        if tendered:
            return " " + tr("confirm.tendered", tendered=yuan(tendered),
                            change=yuan(tendered - amount))
        if reference:
            return " " + tr("confirm.reference", reference=reference)
        return ""
