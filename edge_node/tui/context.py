"""What every screen of the counter needs, in one object handed to each screen.

Screens call :attr:`Counter.service` (never SQL), read :attr:`tr` for every word they
show, and :attr:`clock` for the time they display (pinned in tests and snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge_node.config import EdgeConfig
from edge_node.i18n import Translator
from edge_node.ledger import Ledger
from edge_node.pricelist import PriceList
from edge_node.service import CounterService
from edge_node.staff import Staff

if TYPE_CHECKING:
    from edge_node.tui.cardsource import CardDesk


@dataclass(slots=True)
class Counter:
    config: EdgeConfig
    ledger: Ledger
    service: CounterService
    prices: PriceList
    tr: Translator
    clock: Callable[[], int]  # wall clock, UTC ms: what the screens display
    operator: Staff | None = None
    desk: CardDesk | None = None  # the card glue: checks on taps, issuing, wallet stamps
    #: staff id → when their shift began, by the ledger's clock (the clock its events'
    #: ``local_ms`` and the daily report use); a lock and unlock keeps it, a log out ends it
    shifts: dict[str, int] = field(default_factory=dict)

    def log_in(self, staff: Staff) -> None:
        """Every event from now on names this operator."""
        self.operator = staff
        self.service.operator = staff.staff_id
        self.service.roles = staff.roles  # every business checks it (edge_node.roles)
        self.shifts.setdefault(staff.staff_id, self.ledger.now_ms())

    def shift_start(self) -> int:
        """When the operator at the counter logged in (their shift: to log out)."""
        assert self.operator is not None
        return self.shifts.get(self.operator.staff_id, 0)

    def log_out(self) -> None:
        """The shift is over: no one is at the counter until someone logs in."""
        if self.operator is not None:
            self.shifts.pop(self.operator.staff_id, None)
        self.operator = None
        self.service.operator = ""
        self.service.roles = frozenset()  # no one at the counter: nothing may be done
