"""What staff must do about a patient because of a conflict central resolved (pure, no I/O).

Central resolves a conflict with a remedy event it signs (:mod:`protocol.remedies`); the
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
a ``conflict.raised`` event (:mod:`protocol.remedies`): while no remedy names its
``conflict_id``, the counter says the conflict is open and to collect nothing until
told; the remedy that resolves it replaces that notice with its own.  A
``conflict.withdrawn`` (later events showed it was no conflict) takes the notice away
again, until a newer ``conflict.raised`` for the same id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from protocol.event import CENTRAL, Event
from protocol.fold import Account, Card, Patient
from protocol.money import yuan
from protocol.remedies import ANNOUNCEMENTS, RAISED

WHY = {
    "overdraft": "why.overdraft",
    "double_settlement": "why.double_settlement",
    "over_refund": "why.over_refund",
    "lost_card_used": "why.lost_card_used",
    "double_replacement": "why.double_replacement",
    "duplicate_patient": "why.duplicate_patient",
    "likely_duplicate": "why.duplicate_patient",
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
            history: Iterable[Event]) -> list[Notice]:
    """The notices for ``patient``: urgent ones first, then by the order of events.

    ``history``: the patient's events (any order; only central's remedies are read).
    """
    pid = patient.patient_id
    central = sorted((e for e in history if e.node == CENTRAL and "conflict_id" in e.body),
                     key=lambda e: e.sort_key())
    remedies = [e for e in central if e.kind not in ANNOUNCEMENTS]
    out = _open(central, {e.body["conflict_id"] for e in remedies})
    if patient.merged_into:
        cid = next((e.body["conflict_id"] for e in remedies if e.kind == "patient.merged"
                    and e.body["merged_id"] == pid), "")
        out.append(Notice("merged_into", "notice.merged_into", {"pid": patient.merged_into},
                          cid, urgent=True))
    debts = [e for e in remedies if e.kind == "debt.recorded" and e.body["patient_id"] == pid]
    if debts:
        last = debts[-1]
        total = sum(int(e.body["amount"]) for e in debts)
        owed = max(0, -account.balance)
        if owed:
            out.append(Notice("debt", "notice.debt", {"amount": yuan(owed)},
                              last.body["conflict_id"], urgent=True))
        else:
            out.append(Notice("debt_paid", "notice.debt_paid", {"amount": yuan(total)},
                              last.body["conflict_id"]))
    status = {c.card_no: c.status for c in cards}
    active = next((c.card_no for c in cards if c.status == "active"), "-")
    for e in remedies:
        b = e.body
        if e.kind == "card.blocked" and status.get(b["card_no"], "blocked") == "blocked":
            out.append(Notice("card_blocked", "notice.card_blocked",
                              {"card": b["card_no"], "active": active}, b["conflict_id"],
                              urgent=True))
        elif e.kind == "patient.merged" and b["survivor_id"] == pid:
            out.append(Notice("merged_from", "notice.merged_from", {"pid": b["merged_id"]},
                              b["conflict_id"]))
        elif e.kind == "charge.reversed" and b["patient_id"] == pid:
            out.append(Notice("reversed", "notice.reversed",
                              {"charge": b["charge_id"], "amount": yuan(int(b["amount"]))},
                              b["conflict_id"]))
        elif e.kind == "conflict.accepted" and b.get("patient_id") == pid:
            out.append(Notice("accepted", "notice.accepted", {"reason": b["reason"]},
                              b["conflict_id"]))
    return sorted(out, key=lambda n: not n.urgent)  # stable: event order within each group


def _open(central: list[Event], closed: set[str]) -> list[Notice]:
    """One notice per conflict whose latest announcement is "raised" and no remedy closed.

    ``central``: in central's order (its chain), so "latest" is the last one here.
    """
    latest: dict[str, Event] = {}
    for e in central:
        if e.kind in ANNOUNCEMENTS:
            latest.pop(e.body["conflict_id"], None)  # ordered by latest announcement
            latest[e.body["conflict_id"]] = e
    out: list[Notice] = []
    for cid, e in latest.items():
        if e.kind != RAISED or cid in closed:
            continue
        amount = int(e.body["amount"])
        out.append(Notice("open", "notice.open" if amount else "notice.open_no_amount",
                          {"amount": yuan(amount)} if amount else {}, cid, urgent=True))
    return out
