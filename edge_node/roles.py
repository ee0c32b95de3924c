"""What each staff role may do at a counter: the one table, checked by every service.

Each service operation that writes names its action (:data:`ACTIONS`); before it
writes, the service calls :func:`check` with the logged-in operator's roles.  The TUI
always passes the roles of the person logged in (:attr:`edge_node.staff.Staff.roles`),
so its screens and the command line inherit the check.

A service made without roles (``roles=None``) checks nothing: tests and the
walkthrough drive the services that way; a counter's screens never do.

Roles come from central's signed staff records (:mod:`protocol.staff`).  A person in the
counter's own staff table (a counter without central staff yet: the demo, tests,
``onecard-edge staff add``) acts in their recorded role *and* the role of the desk
they were added at (:data:`DESK_ROLE`): whoever set that counter up made them staff of
that desk.
"""

from __future__ import annotations

from collections.abc import Iterable

from edge_node.errors import OperationRefused
from protocol.errors import Problem
from protocol.staff import ROLES

#: every action a service checks, and the roles that may do it
ACTIONS: dict[str, frozenset[str]] = {
    # the cashier's businesses (a supervisor may do everything a cashier may)
    "patient.register": frozenset({"cashier", "supervisor"}),  # patients, cards, losses
    "money.deposit": frozenset({"cashier", "supervisor"}),
    "money.charge": frozenset({"cashier", "supervisor"}),
    "money.refund": frozenset({"cashier", "supervisor"}),  # asked; approval is another's
    "money.settle": frozenset({"cashier", "supervisor"}),
    "money.void": frozenset({"cashier", "supervisor"}),
    "money.credit": frozenset({"cashier", "supervisor"}),  # green channel (approved)
    "money.close_day": frozenset({"cashier", "supervisor"}),
    # visits: registering one (挂号) at the cashier, triage or kiosk; the queue
    "visit.register": frozenset({"cashier", "supervisor", "triage"}),
    "visit.queue": frozenset({"triage", "doctor"}),
    # the doctor's station
    "clinic.consult": frozenset({"doctor"}),  # start, finish, no-show, diagnoses, profile
    "clinic.order": frozenset({"doctor"}),  # send and cancel orders
    # the lab and exam windows
    "lab.execute": frozenset({"lab"}),
    # the pharmacy
    "pharmacy.dispense": frozenset({"pharmacist"}),
    "pharmacy.return": frozenset({"pharmacist"}),
    "pharmacy.stock": frozenset({"pharmacist"}),
    # seeing a patient's sealed ID number, phone and address (protocol.privacy): the
    # desks that register patients; everyone else sees them masked as sealed
    "patient.details": frozenset({"cashier", "supervisor", "it"}),
    # a second person's approval (edge_node.staff.approve)
    "approve": frozenset({"supervisor"}),
}

#: the staff role of each desk (a counter's config role), for counter-local staff
DESK_ROLE = {"cashier": "cashier", "triage": "triage", "doctor": "doctor", "lab": "lab",
             "pharmacy": "pharmacist", "kiosk": "triage"}

assert all(r in ROLES for roles in ACTIONS.values() for r in roles)


def allowed(roles: Iterable[str] | None, action: str) -> bool:
    """Whether someone with ``roles`` may do ``action`` (``roles`` None: not checked)."""
    if roles is None:
        return True
    return not ACTIONS[action].isdisjoint(roles)


def actions_of(role: str) -> frozenset[str]:
    """Every action ``role`` may do."""
    return frozenset(a for a, roles in ACTIONS.items() if role in roles)


def check(roles: Iterable[str] | None, action: str) -> None:
    """Refuse (``role.not_allowed``) unless ``roles`` may do ``action``."""
    if roles is None:
        return
    held = frozenset(roles)
    if not allowed(held, action):
        who = ", ".join(sorted(held)) or "-"
        need = ", ".join(sorted(ACTIONS[action]))
        raise OperationRefused([Problem(
            "role.not_allowed", f"your role ({who}) may not do this ({action}): it needs "
            f"{need}", "", {"action": action, "roles": who, "need": need})])
