"""What every screen of the counter needs, in one object handed to each screen.

Screens call :attr:`Counter.service` (never SQL), read :attr:`tr` for every word they
show, and :attr:`clock` for the time they display (pinned in tests and snapshots).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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

    def log_in(self, staff: Staff) -> None:
        """Every event from now on names this operator."""
        self.operator = staff
        self.service.operator = staff.staff_id

    def log_out(self) -> None:
        self.operator = None
        self.service.operator = ""
