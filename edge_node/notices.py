"""What staff must do about a patient because of a conflict central resolved (pure, no I/O).

Central resolves a conflict with a remedy event it signs (:mod:`protocol.remedy`); the
event syncs to every counter and the fold applies it, but a balance that went down or
a card that stopped working means nothing to the person at the counter unless it says
why and what to do.  :func:`notices` reads the patient's records and recent events and
returns those instructions; the patient panel shows them on every tap.

The conflict a remedy resolves is named by its ``conflict_id``, ``<kind>-<hash>``
(:func:`central.reconcile.conflict_id`), so the notice can say *why* ("from an offline
overdraft") without the counter holding central's conflict book.

A debt is what the account is below zero once central recorded one: a deposit raises
the balance, so the next deposit collects it (and the notice turns into "paid").

Before anyone at central acts, central announces each new conflict about patients with
a ``conflict.raised`` event (:mod:`protocol.remedy`): while no remedy names its
``conflict_id``, the counter says the conflict is open and to collect nothing until
told; the remedy that resolves it replaces that notice with its own.  A
``conflict.withdrawn`` (later events showed it was no conflict) takes the notice away
again, until a newer ``conflict.raised`` for the same id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from protocol import core
from protocol.account import Account
from protocol.card import Card
from protocol.core import Fact, NoticeContext, Registry
from protocol.domain import REGISTRY
from protocol.event import CENTRAL, Event
from protocol.money import yuan
from protocol.patient import Patient
from protocol.remedy import ANNOUNCEMENTS

WHY = {
    "overdraft": "why.overdraft",
    "double_settlement": "why.double_settlement",
    "over_refund": "why.over_refund",
    "lost_card_used": "why.lost_card_used",
    "double_replacement": "why.double_replacement",
    "duplicate_patient": "why.duplicate_patient",
    "likely_duplicate": "why.duplicate_patient",
    "merged_record_used": "why.merged_record_used",
    "double_cancel": "why.double_cancel",
    "double_fee": "why.double_fee",
    "double_execution": "why.double_execution",
    "double_dispense": "why.double_dispense",
    "refund_after_execution": "why.refund_after_execution",
    "charge_after_cancel": "why.charge_after_cancel",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """One instruction for staff: an i18n key, its values, and whether it blocks work."""

    code: str  # open, debt, debt_paid, card_blocked, merged_into, merged_from, reversed,
    # accepted
    key: str
    values: dict[str, str] = field(default_factory=dict)
    conflict_id: str = ""
    urgent: bool = False  # act before new charges

    @classmethod
    def of(cls, n: core.Notice) -> Notice:
        return cls(n.code, n.key, dict(n.values), n.conflict_id, n.urgent)

    @property
    def why_key(self) -> str:
        return WHY.get(conflict_kind(self.conflict_id), "why.other")

    def text(self, tr: Callable[..., str]) -> str:
        """The notice in the counter's language (``tr``: an ``edge_node.i18n.Translator``)."""
        return tr(self.key, why=tr(self.why_key), **self.values)


def conflict_kind(conflict_id: str) -> str:
    """``overdraft-1a2b3c4d5e6f`` → ``overdraft``."""
    return conflict_id.rsplit("-", 1)[0] if "-" in conflict_id else ""


def notices(patient: Patient, account: Account, cards: Sequence[Card],
            history: Iterable[Event], registry: Registry = REGISTRY) -> list[Notice]:
    """The notices for ``patient``: urgent ones first, then by the order of events.

    ``history``: the patient's events (any order; central's events naming a conflict are
    read, each through its kind's ``notice`` facet; anything else, or a bad body, is
    passed over).
    """
    pid = patient.patient_id
    active = next((c.card_no for c in cards if c.status == "active"), "-")
    ctx = NoticeContext(pid, tuple((c.card_no, c.status) for c in cards), active)
    central = sorted((f for e in history if e.node == CENTRAL
                      and (f := registry.fact(e)) is not None
                      and isinstance(getattr(f.body, "conflict_id", None), str)),
                     key=lambda f: f.at.order)
    told = [(f, n) for f in central if (n := f.kind.notice(f.body, ctx)) is not None]
    closed = {f.body.conflict_id for f in central if f.kind.name not in ANNOUNCEMENTS}
    out = _open(told, closed)
    if patient.merged_into:
        cid = next((n.conflict_id for _, n in told if n.code == "merged_into"
                    and dict(n.values).get("pid") == patient.merged_into), "")
        out.append(Notice("merged_into", "notice.merged_into", {"pid": patient.merged_into},
                          cid, urgent=True))
    debts = [n for _, n in told if n.code == "debt"]
    if debts:
        owed = max(0, -account.balance)
        if owed:
            out.append(Notice("debt", "notice.debt", {"amount": yuan(owed)},
                              debts[-1].conflict_id, urgent=True))
        else:
            out.append(Notice("debt_paid", "notice.debt_paid",
                              {"amount": yuan(sum(n.amount for n in debts))},
                              debts[-1].conflict_id))
    out += [Notice.of(n) for _, n in told if n.code not in _AGGREGATED]
    return sorted(out, key=lambda n: not n.urgent)  # stable: event order within each group


_AGGREGATED = frozenset({"open", "withdrawn", "debt", "merged_into"})


def _open(told: list[tuple[Fact, core.Notice]], closed: set[str]) -> list[Notice]:
    """One notice per conflict whose latest announcement is "raised" and no remedy closed.

    ``told``: in central's order, so "latest" is the last one here.
    """
    latest: dict[str, core.Notice] = {}
    for f, n in told:
        if f.kind.name in ANNOUNCEMENTS:
            latest.pop(n.conflict_id, None)  # ordered by latest announcement
            latest[n.conflict_id] = n
    return [Notice.of(n) for cid, n in latest.items() if n.code == "open" and cid not in closed]
