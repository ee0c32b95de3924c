"""Conflict remedies: the event kinds central signs to resolve a conflict, and their folds.

A conflict (see :mod:`central.reconcile`) is resolved by a person at central; the
resolution is an ordinary signed event of node ``central`` that syncs to every counter
and that every counter folds.  Every remedy body names the ``conflict_id`` it resolves
and a ``reason``, so the audit trail reads from the events alone.

The folds follow :mod:`protocol.fold`'s rule: they commute with every other event
(sums on accounts, "most final" card status, set-once merge pointers), because each
counter folds in its own arrival order.  A remedy from any node but ``central`` is
ignored by the fold (counters cannot write these kinds: :mod:`protocol.rules` has no
rule for them, and central flags such an event as an integrity conflict).

Kinds:

- ``debt.recorded`` — the patient owes ``amount``; ``debit`` of it is taken from the
  account now (0 when the debt already is the negative balance of an overdraft).  The
  counter shows it and collects it with the next deposit (a deposit raises the balance).
- ``charge.reversed`` — a charge is cancelled by central: ``amount`` goes back on the
  account and the charge can no longer be refunded for that part.
- ``patient.merged`` — ``merged_id`` was the same person as ``survivor_id``: the merged
  record points at the survivor, the listed cards move to it and ``moved`` fen of
  balance moves from one account to the other (central's figure when it merged).
- ``card.blocked`` — a card may no longer be used.
- ``conflict.accepted`` — left as it is, for the stated reason.

Not a remedy, but signed by central the same way:

- ``conflict.raised`` — central found a conflict that is still open (no remedy yet).  It
  changes no state; it sits in the history of every patient it names, so a counter can
  say "open conflict — collect nothing until told" before anyone at central has acted.
  A later central event with the same ``conflict_id`` (its remedy) closes it there.
- ``conflict.withdrawn`` — a conflict central announced is no longer one: events that
  arrived later (a deposit made offline before the charge, say) showed the account was
  never short.  It closes the announcement at the counters; a ``conflict.raised`` for the
  same id after it (new events made it a conflict again) opens it again.  The latest of
  the two, in central's chain, is what holds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from protocol.errors import Problem
from protocol.event import CENTRAL, Event
from protocol.fold import Card, Charge, Patient, State, Touched, _set_card, register_applier
from protocol.kinds import MAX_AMOUNT, Field, card_no, ident, register_kind, text

CONFLICT_ID = Field(str, lo=8, hi=64)
REASON = text(500)

SCHEMAS: dict[str, dict[str, Field]] = {
    "debt.recorded": {
        "conflict_id": CONFLICT_ID,
        "patient_id": ident(),
        "amount": Field(int, lo=1, hi=MAX_AMOUNT),
        "debit": Field(int, lo=0, hi=MAX_AMOUNT),
        "reason": REASON,
    },
    "charge.reversed": {
        "conflict_id": CONFLICT_ID,
        "charge_id": ident(),
        "patient_id": ident(),
        "amount": Field(int, lo=1, hi=MAX_AMOUNT),
        "reason": REASON,
    },
    "patient.merged": {
        "conflict_id": CONFLICT_ID,
        "survivor_id": ident(),
        "merged_id": ident(),
        "moved": Field(int, lo=-MAX_AMOUNT, hi=MAX_AMOUNT),
        "cards": Field(list, hi=50),
        "reason": REASON,
    },
    "card.blocked": {
        "conflict_id": CONFLICT_ID,
        "card_no": card_no(),
        "patient_id": ident(),
        "reason": REASON,
    },
    "conflict.accepted": {
        "conflict_id": CONFLICT_ID,
        "patient_id": ident(required=False),
        "reason": REASON,
    },
}

REMEDY_KINDS = frozenset(SCHEMAS)

RAISED = "conflict.raised"
WITHDRAWN = "conflict.withdrawn"
_ABOUT: dict[str, Field] = {  # which conflict an announcement is about, and whom
    "conflict_id": CONFLICT_ID,
    "conflict_kind": Field(str, lo=1, hi=64),
    "patient_id": ident(),  # the primary patient (the first of ``patients``)
    "patients": Field(list, lo=1, hi=50),
}
RAISED_SCHEMA: dict[str, Field] = {
    **_ABOUT,
    "amount": Field(int, lo=0, hi=MAX_AMOUNT),  # fen at stake, 0 when none
    "summary": text(300),  # plain language; never a national ID or phone in clear
}
WITHDRAWN_SCHEMA: dict[str, Field] = {**_ABOUT, "reason": REASON}

#: Central's notices about a conflict's state, not resolutions of it.
ANNOUNCEMENTS = frozenset({RAISED, WITHDRAWN})
#: Kinds only central may sign (a counter's event of one is flagged by central).
CENTRAL_KINDS = REMEDY_KINDS | ANNOUNCEMENTS


def _check_debt(body: Mapping[str, Any]) -> list[Problem]:
    if body["debit"] > body["amount"]:
        return [Problem("debt.debit_over_amount", "the debit cannot exceed the debt", "debit")]
    return []


def _check_merged(body: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    if body["survivor_id"] == body["merged_id"]:
        out.append(Problem("merge.same_patient", "a patient cannot be merged into itself",
                           "merged_id"))
    for i, c in enumerate(body["cards"]):
        out += card_no().check(c, f"cards[{i}]")
    return out


_LONG_DIGITS = re.compile(r"\d{11,}")  # a phone (11) or national ID (18); card numbers are 10


def _check_raised(body: Mapping[str, Any]) -> list[Problem]:
    out: list[Problem] = []
    for i, p in enumerate(body["patients"]):
        out += ident().check(p, f"patients[{i}]")
    if _LONG_DIGITS.search(body.get("summary", "")):
        out.append(Problem("raised.summary_identifies", "the summary must not carry a national"
                           " ID or phone number in clear", "summary"))
    if not out and body["patient_id"] not in body["patients"]:
        out.append(Problem("raised.patient_not_listed", "the primary patient must be one of"
                           " the patients", "patient_id"))
    return out


SEMANTIC = {"debt.recorded": _check_debt, "patient.merged": _check_merged,
            RAISED: _check_raised, WITHDRAWN: _check_raised}


def _central(ev: Event) -> bool:
    return ev.node == CENTRAL


def _adjust(state: State, pid: str, amount: int) -> None:
    acct = state.account(pid)
    state.accounts[pid] = replace(acct, balance=acct.balance + amount,
                                  adjusted=acct.adjusted + amount)


def _debt(state: State, ev: Event) -> None:
    if _central(ev) and ev.body["debit"]:
        _adjust(state, ev.body["patient_id"], -ev.body["debit"])


def _reversed(state: State, ev: Event) -> None:
    if not _central(ev):
        return
    b = ev.body
    _adjust(state, b["patient_id"], b["amount"])
    old = state.charges.get(b["charge_id"])
    base = old if old is not None else Charge(b["charge_id"], b["patient_id"])
    state.charges[b["charge_id"]] = replace(base, reversed=base.reversed + b["amount"])


def _merged(state: State, ev: Event) -> None:
    if not _central(ev):
        return
    b = ev.body
    survivor, merged = b["survivor_id"], b["merged_id"]
    old = state.patients.get(merged) or Patient(merged)
    if not old.merged_into:  # set once: a second merge of the same record changes nothing
        state.patients[merged] = replace(old, merged_into=survivor)
    if b["moved"]:
        _adjust(state, merged, -b["moved"])
        _adjust(state, survivor, b["moved"])
    for no in b["cards"]:
        card = state.cards.get(no)
        # the card now belongs to the survivor whatever order its events arrive in:
        # fold._set_card keeps the patient first seen, so a late card.issued cannot undo it
        state.cards[no] = replace(card, patient_id=survivor) if card else Card(no, survivor)


def _blocked(state: State, ev: Event) -> None:
    if not _central(ev):
        return
    _set_card(state, Card(ev.body["card_no"], ev.body["patient_id"], "blocked"))


def _nothing(state: State, ev: Event) -> None:
    """``conflict.accepted`` and the announcements change no state; kept in the history."""


def balance_delta(ev: Event, pid: str) -> int:
    """How ``ev`` moves ``pid``'s balance in fen (the folds' money rules, for one account)."""
    b, k = ev.body, ev.kind
    if k == "patient.merged":
        if ev.node != CENTRAL:
            return 0
        if b["survivor_id"] == pid:
            return int(b["moved"])
        return -int(b["moved"]) if b["merged_id"] == pid else 0
    if b.get("patient_id") != pid:
        return 0
    if k == "account.deposited":
        return int(b["amount"])
    if k == "account.charged" or k == "account.settled":
        return -int(b["amount"])
    if k == "account.refunded":
        return int(b["amount"]) if b["to"] == "deposit" else 0
    if ev.node != CENTRAL:
        return 0
    if k == "charge.reversed":
        return int(b["amount"])
    if k == "debt.recorded":
        return -int(b["debit"])
    return 0


def family(pid: str, merged_into: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """``pid`` and every record merged into it, directly or through another merge
    (``merged_into``: survivor → the records merged into it)."""
    out, todo = {pid}, [pid]
    while todo:
        for m in merged_into.get(todo.pop(), ()):
            if m not in out:
                out.add(m)
                todo.append(m)
    return frozenset(out)


#: The kinds that can move money (the others never do).
MONEY_KINDS = frozenset({"account.deposited", "account.charged", "account.settled",
                         "account.refunded", "charge.reversed", "debt.recorded",
                         "patient.merged"})


def _merged_touch(body: dict[str, Any]) -> Touched:
    return Touched(patients=frozenset({body["survivor_id"], body["merged_id"]}),
                   cards=frozenset(body["cards"]))


def _raised_touch(body: dict[str, Any]) -> Touched:
    return Touched(patients=frozenset(body["patients"]))


def _register() -> None:
    for kind, schema in SCHEMAS.items():
        register_kind(kind, schema, SEMANTIC.get(kind))
    register_applier("debt.recorded", _debt)
    register_applier("charge.reversed", _reversed)
    register_applier("patient.merged", _merged, _merged_touch)
    register_applier("card.blocked", _blocked)
    register_applier("conflict.accepted", _nothing)
    for kind, schema in ((RAISED, RAISED_SCHEMA), (WITHDRAWN, WITHDRAWN_SCHEMA)):
        register_kind(kind, schema, SEMANTIC[kind])
        register_applier(kind, _nothing, _raised_touch)


_register()
