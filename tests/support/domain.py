"""The domain registry as tests read it: folded state with a table per record type.

``fold(events)`` gives a :class:`View` whose ``patients``, ``cards``, ``accounts`` and
``charges`` are the registry's tables (dicts by key), so a test compares states or
reads one record in a line.  Everything goes through :data:`protocol.domain.REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from protocol.account import Account, Charge
from protocol.card import Card
from protocol.core import RuleConfig, State
from protocol.domain import REGISTRY
from protocol.errors import Problem
from protocol.event import Event
from protocol.fields import decode
from protocol.patient import Patient


@dataclass
class View:
    state: State = field(default_factory=State)

    @property
    def patients(self) -> dict[Any, Patient]:
        return self.state.table(Patient)

    @property
    def cards(self) -> dict[Any, Card]:
        return self.state.table(Card)

    @property
    def accounts(self) -> dict[Any, Account]:
        return self.state.table(Account)

    @property
    def charges(self) -> dict[Any, Charge]:
        return self.state.table(Charge)

    def account(self, pid: str) -> Account:
        return self.state.get_or_new(Account, pid)


def fold(events: Iterable[Event]) -> View:
    return View(REGISTRY.fold(events))


def apply(view: View, ev: Event) -> None:
    REGISTRY.apply(view.state, ev)


def validate(kind: str, body: Any) -> list[Problem]:
    return REGISTRY.validate(kind, body)


def check(view: View, kind: str, body: Any, cfg: RuleConfig = RuleConfig()) -> list[Problem]:
    return REGISTRY.check(view.state, kind, body, cfg)


def patients_of(kind: str, body: Any) -> set[str]:
    """Whose history an event of ``kind`` with ``body`` is in (as the ledger links it)."""
    k = REGISTRY.kinds[kind]
    typed = decode(k.body, body)
    return set() if isinstance(typed, list) else set(k.patients(typed))
