"""A supervisor's approval in a form: their own staff id and PIN, typed at this counter.

For the businesses that take cash out of the drawer or go past what one cashier may do
alone (green channel, cash refunds, refunds above ``refund_approval_above``, settlement
in cash, a charge on a card number typed by hand or, offline, past the offline limits).
The PIN is checked once, when the business is done (not in the dry run before the
question), as at login — wrong PINs count towards the same lockout — and the
approver must be a supervisor and not the operator (:func:`edge_node.staff.approve`).
The signed event names them; the rule refuses the business without one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.widget import Widget
from textual.widgets import Input

from edge_node import staff
from edge_node.errors import OperationRefused
from edge_node.service import CounterService
from edge_node.tui.screens.form import FormScreen
from protocol.errors import Problem


async def approval_of(service: CounterService, staff_id: str, pin: str) -> staff.Approval:
    """The supervisor's credential, or the refusal shown against the PIN field."""
    try:
        return await staff.approve(service.ledger, staff_id, pin, operator=service.operator,
                                   pepper=service.pepper)
    except staff.LoginRefused as exc:
        code = "approval." + exc.code.split(".", 1)[1]
        raise OperationRefused([Problem(code, str(exc), "approver_pin",
                                        dict(exc.values))]) from None


class ApprovedForm(FormScreen):
    """A form with the supervisor's id and PIN fields (filled only when needed)."""

    field_ids: ClassVar[dict[str, str]] = {"supervisor": "approver"}

    def approval_fields(self, *, hidden: bool = False) -> Iterable[Widget]:
        """The id and PIN fields; ``hidden``: shown only once :meth:`ask_approval` (a
        form whose business needs a supervisor only sometimes)."""
        rows = [*self.labelled("form.approver", Input(id="approver", max_length=32),
                               row_id="approver-row"),
                *self.labelled("form.approver_pin", Input(id="approver_pin", max_length=12,
                                                          password=True, restrict=r"[0-9]*"),
                               row_id="approver_pin-row")]
        for row in rows:
            row.display = not hidden
        yield from rows

    def ask_approval(self) -> None:
        """Show the approval fields (the business turned out to need a supervisor)."""
        for row_id in ("#approver-row", "#approver_pin-row"):
            self.query_one(row_id).display = True

    def approval_typed(self, problems: list[Problem], *, required: bool = False
                       ) -> tuple[str, str]:
        """The id and PIN typed (both or neither; both when ``required``)."""
        approver, pin = self.value("approver"), self.value("approver_pin")
        if required or approver or pin:
            approver = self.required("approver", "form.approver", problems)
            pin = self.required("approver_pin", "form.approver_pin", problems)
        return approver, pin

    @staticmethod
    async def approval(service: CounterService, approver: str, pin: str
                       ) -> staff.Approval | None:
        """None when none was typed; in the dry run the typed id (the rule sees one);
        when it is done, the checked credential (or the refusal)."""
        if not approver:
            return None
        if service.dry_run:
            return staff.Approval(approver, "", "supervisor")
        return await approval_of(service, approver, pin)
