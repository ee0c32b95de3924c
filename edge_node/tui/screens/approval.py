"""A supervisor's approval in a form: their own staff id and PIN, typed at this counter.

For the businesses that take cash out of the drawer or go past what one cashier may do
alone (green channel, cash refunds, refunds above ``refund_approval_above``, settlement
in cash, a charge on a card number typed by hand or, offline, past the offline limits).
The PIN is checked once, when the business is done (not in the dry run before the
question), as at login — wrong PINs count towards the same lockout — and the
approver must be a supervisor and not the operator (:func:`edge_node.staff.approve`).
The signed event names them; the rule refuses the business without one.

Where the business needs a supervisor only sometimes (a charge offline past the limits,
or on a card number typed by hand: :data:`APPROVAL_CODES`), the form asks in place:
its fields are hidden until the counter refuses it for that.  A desk whose step is not
a form (the lab's check-in, the pharmacy's dispensing, the doctor starting a visit)
opens :class:`ApprovalForm` on that refusal: the same fields, and the step again with
the supervisor's approval, checked on the dry run before the question as any form.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar

from textual.widget import Widget
from textual.widgets import Input, Static

from edge_node import staff
from edge_node.errors import OperationRefused
from edge_node.service import CounterService, PatientView
from edge_node.tui.context import Counter
from edge_node.tui.screens.form import FormScreen, Plan
from protocol.errors import Problem

#: the refusals a supervisor's approval lifts (a charge offline past the limits, or on a
#: card number typed by hand): a form or desk refused with one asks for the approval
APPROVAL_CODES = frozenset({"approval.manual_entry", "approval.offline_limit"})


def lifted_by_approval(exc: BaseException) -> list[Problem]:
    """The problems of a refusal a supervisor's approval lifts ([] for any other)."""
    if isinstance(exc, OperationRefused) and any(p.code in APPROVAL_CODES
                                                 for p in exc.problems):
        return exc.problems
    return []


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

    def show_problems(self, problems: list[Problem], refused: bool = False) -> None:
        """A refusal a supervisor lifts shows the approval fields (if hidden) first, so
        the refusal's field (``supervisor``: the approver's id) is there to focus."""
        if (refused and any(p.code in APPROVAL_CODES for p in problems)
                and self.query("#approver-row")):
            self.ask_approval()
        super().show_problems(problems, refused)

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


#: a desk's step done with a supervisor's approval, on the service given (the dry run's
#: first, then the counter's): what it returns has the ``events`` and ``balance`` of a
#: :class:`~edge_node.service.Receipt`
Step = Callable[[CounterService, staff.Approval], Awaitable[Any]]


class ApprovalForm(ApprovedForm):
    """A desk's step the counter refused for want of a supervisor (:data:`APPROVAL_CODES`):
    what it is and why, the supervisor's id and PIN, and the step again with them.

    ``question``: what the confirm asks, from the dry run's receipt (so it says what will
    be charged).  Dismisses with the step's receipt once it is done; a wrong PIN, the
    operator approving themselves or a non-supervisor is refused on the PIN field and
    the form stays open, as every approval form does.
    """

    title_key = "title.approval"
    DEFAULT_CSS = """
    ApprovalForm #approval-about { height: auto; padding: 0 0 1 0; }
    ApprovalForm #approval-why { height: auto; color: $warning; padding: 0 0 1 0; }
    """

    def __init__(self, counter: Counter, view: PatientView | None, about: str,
                 problems: list[Problem], step: Step, question: Callable[[Any], str]
                 ) -> None:
        super().__init__(counter, view)
        self.about, self.problems, self.step, self.question = about, problems, step, question

    def fields(self) -> Iterable[Widget]:
        yield Static(self.about, id="approval-about", markup=False)
        yield Static(self.counter.tr.problems(self.problems), id="approval-why", markup=False)
        yield from self.approval_fields()

    def on_mount(self) -> None:
        self.query_one("#approver", Input).focus()

    def prepare(self) -> Plan | list[Problem]:
        problems: list[Problem] = []
        approver, pin = self.approval_typed(problems, required=True)
        if problems:
            return problems
        step = self.step

        async def call(service: CounterService) -> Any:
            approval = await self.approval(service, approver, pin)
            assert approval is not None
            return await step(service, approval)
        return Plan("", call, self.question)
