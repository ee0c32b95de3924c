"""Conflict remedies and announcements: the kinds only central signs.

A conflict (see :mod:`central.reconcile`) is resolved by a person at central; the
resolution is an ordinary signed event of node ``central`` that syncs to every counter
and that every counter folds.  Every remedy body names the ``conflict_id`` it resolves
and a ``reason``, so the audit trail reads from the events alone.  A counter's event of
one of these kinds is invalid (the registry refuses the signer): never folded, and
flagged by central as an integrity conflict.

Kinds:

- ``debt.recorded`` — the patient owes ``amount``; ``debit`` of it is taken from the
  account now (0 when the debt already is the negative balance of an overdraft).  The
  counter shows it and collects it with the next deposit (a deposit raises the balance).
- ``charge.reversed`` — a charge is cancelled by central: ``amount`` goes back on the
  account and the charge can no longer be refunded for that part.
- ``patient.merged`` — ``merged_id`` was the same person as ``survivor_id``: the merged
  record points at the survivor (the earliest merge, if two), the listed cards move to
  it and ``moved`` fen of balance moves from one account to the other (central's figure
  when it merged; negative moves a debt).
- ``card.blocked`` — a card may no longer be used.
- ``conflict.accepted`` — left as it is, for the stated reason.

Announcements (they change no record; they sit in the history of every patient named):

- ``conflict.raised`` — central found a conflict that is still open (no remedy yet): a
  counter says "open conflict — collect nothing until told".  A later central event
  with the same ``conflict_id`` (its remedy) closes it there.
- ``conflict.withdrawn`` — a conflict central announced is no longer one (later events
  showed the account was never short).  The latest announcement, in central's chain,
  is what holds.
"""

from __future__ import annotations

import re

from protocol.account import Account, Charge, add, charge_record
from protocol.card import MERGED, NAMED, Card, claim, set_status
from protocol.core import (
    CENTRAL_ONLY,
    At,
    Kind,
    Money,
    Notice,
    NoticeContext,
    PatientId,
    Tx,
    earlier,
    no_report,
    no_rule,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import (
    MAX_AMOUNT,
    Body,
    Field,
    body,
    card_no,
    id_list,
    ident,
    spec,
    text,
)
from protocol.money import yuan
from protocol.patient import Patient

CONFLICT_ID = Field(str, lo=8, hi=64)
REASON = text(500)
_LONG_DIGITS = re.compile(r"[0-9]{11,}")  # a phone (11) or national ID (18); cards are 10


def _money(amount: int) -> tuple[tuple[str, str], ...]:
    return (("amount", yuan(amount)),)


# -- debt.recorded ---------------------------------------------------------------------------
@body
class DebtRecorded(Body):
    conflict_id: str = spec(CONFLICT_ID)
    patient_id: str = spec(ident())
    amount: int = spec(Field(int, lo=1, hi=MAX_AMOUNT, money=True))
    debit: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))
    reason: str = spec(REASON)

    def problems(self) -> list[Problem]:
        if self.debit > self.amount:
            return [Problem("debt.debit_over_amount", "the debit cannot exceed the debt",
                            "debit")]
        return []


def _debt_notice(b: DebtRecorded, ctx: NoticeContext) -> Notice | None:
    if b.patient_id != ctx.patient_id:
        return None
    return Notice("debt", "notice.debt", _money(b.amount), b.conflict_id, True, b.amount)


DEBT_RECORDED = Kind(
    name="debt.recorded", body=DebtRecorded, signer=CENTRAL_ONLY,
    title=("记录欠费", "Debt recorded"),
    records=lambda b: refs(Account, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=lambda tx, at, b: add(tx, b.patient_id, adjusted=-b.debit),
    money=lambda b: Money("adjust", ((b.patient_id, -b.debit),) if b.debit else ()),
    rule=no_rule,
    describe=lambda b, lang: f"{yuan(b.amount)} {b.reason}",
    report=no_report, notice=_debt_notice,
)


# -- charge.reversed -------------------------------------------------------------------------
@body
class ChargeReversed(Body):
    conflict_id: str = spec(CONFLICT_ID)
    charge_id: str = spec(ident())
    patient_id: str = spec(ident())
    amount: int = spec(Field(int, lo=1, hi=MAX_AMOUNT, money=True))
    reason: str = spec(REASON)


def _fold_reversed(tx: Tx, at: At, b: ChargeReversed) -> None:
    add(tx, b.patient_id, adjusted=b.amount)
    c = charge_record(tx, b.charge_id, b.patient_id, at)
    tx.put(c.evolve(reversed=c.reversed + b.amount))


def _reversed_notice(b: ChargeReversed, ctx: NoticeContext) -> Notice | None:
    if b.patient_id != ctx.patient_id:
        return None
    return Notice("reversed", "notice.reversed",
                  (("charge", b.charge_id), ("amount", yuan(b.amount))), b.conflict_id,
                  amount=b.amount)


CHARGE_REVERSED = Kind(
    name="charge.reversed", body=ChargeReversed, signer=CENTRAL_ONLY,
    title=("撤销收费", "Charge reversed"),
    records=lambda b: refs(Account, b.patient_id) | refs(Charge, b.charge_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_reversed,
    money=lambda b: Money("adjust", ((b.patient_id, b.amount),)),
    rule=no_rule,
    describe=lambda b, lang: f"{b.charge_id} {b.reason}",
    report=no_report, notice=_reversed_notice,
)


# -- patient.merged --------------------------------------------------------------------------
@body
class Merged(Body):
    conflict_id: str = spec(CONFLICT_ID)
    survivor_id: str = spec(ident())
    merged_id: str = spec(ident())
    moved: int = spec(Field(int, lo=-MAX_AMOUNT, hi=MAX_AMOUNT, money=True))
    cards: tuple[str, ...] = spec(Field(list, hi=50, each=card_no()))
    reason: str = spec(REASON)

    def problems(self) -> list[Problem]:
        if self.survivor_id == self.merged_id:
            return [Problem("merge.same_patient", "a patient cannot be merged into itself",
                            "merged_id")]
        return []


def _fold_merged(tx: Tx, at: At, b: Merged) -> None:
    old = tx.get_or_new(Patient, b.merged_id)
    if earlier(at.order, old.merged_at):  # merged twice: the first merge holds
        tx.put(old.evolve(merged_into=b.survivor_id, merged_at=at.order))
    add(tx, b.merged_id, transferred=-b.moved)
    add(tx, b.survivor_id, transferred=b.moved)
    for no in b.cards:
        claim(tx, no, b.survivor_id, MERGED, at.order)


def _merged_notice(b: Merged, ctx: NoticeContext) -> Notice | None:
    if b.survivor_id == ctx.patient_id:
        return Notice("merged_from", "notice.merged_from", (("pid", b.merged_id),),
                      b.conflict_id)
    if b.merged_id == ctx.patient_id:
        return Notice("merged_into", "notice.merged_into", (("pid", b.survivor_id),),
                      b.conflict_id, urgent=True)
    return None


MERGED_KIND = Kind(
    name="patient.merged", body=Merged, signer=CENTRAL_ONLY,
    title=("合并档案", "Records merged"),
    records=lambda b: (refs(Patient, b.survivor_id, b.merged_id)
                       | refs(Account, b.survivor_id, b.merged_id) | refs(Card, *b.cards)),
    patients=lambda b: (b.survivor_id, b.merged_id),
    fold=_fold_merged,
    money=lambda b: Money("transfer", ((b.merged_id, -b.moved), (b.survivor_id, b.moved))
                          if b.moved else ()),
    rule=no_rule,
    describe=lambda b, lang: f"{b.merged_id} → {b.survivor_id} {b.reason}",
    report=no_report, notice=_merged_notice,
)


# -- card.blocked ----------------------------------------------------------------------------
@body
class Blocked(Body):
    conflict_id: str = spec(CONFLICT_ID)
    card_no: str = spec(card_no())
    patient_id: str = spec(ident())
    reason: str = spec(REASON)


def _fold_blocked(tx: Tx, at: At, b: Blocked) -> None:
    claim(tx, b.card_no, b.patient_id, NAMED, at.order)
    set_status(tx, b.card_no, "blocked")


def _blocked_notice(b: Blocked, ctx: NoticeContext) -> Notice | None:
    if dict(ctx.card_status).get(b.card_no, "blocked") != "blocked":
        return None
    return Notice("card_blocked", "notice.card_blocked",
                  (("card", b.card_no), ("active", ctx.active_card)), b.conflict_id, True)


BLOCKED = Kind(
    name="card.blocked", body=Blocked, signer=CENTRAL_ONLY, title=("冻结卡", "Card blocked"),
    records=lambda b: refs(Card, b.card_no),
    patients=lambda b: (b.patient_id,),
    fold=_fold_blocked, money=lambda b: Money(), rule=no_rule,
    describe=lambda b, lang: f"{b.card_no} {b.reason}",
    report=no_report, notice=_blocked_notice,
)


# -- conflict.accepted -----------------------------------------------------------------------
@body
class Accepted(Body):
    conflict_id: str = spec(CONFLICT_ID)
    patient_id: str = spec(ident(required=False), "")
    reason: str = spec(REASON)


def _nothing(tx: Tx, at: At, b: Body) -> None:
    """The kind changes no record; it is kept in the patients' histories."""


def _accepted_notice(b: Accepted, ctx: NoticeContext) -> Notice | None:
    if not b.patient_id or b.patient_id != ctx.patient_id:
        return None
    return Notice("accepted", "notice.accepted", (("reason", b.reason),), b.conflict_id)


ACCEPTED = Kind(
    name="conflict.accepted", body=Accepted, signer=CENTRAL_ONLY,
    title=("冲突已审核", "Conflict reviewed"),
    records=lambda b: set(),
    patients=lambda b: (b.patient_id,) if b.patient_id else (),
    fold=_nothing, money=lambda b: Money(), rule=no_rule,
    describe=lambda b, lang: b.reason,
    report=no_report, notice=_accepted_notice,
)


# -- announcements ---------------------------------------------------------------------------
class About(Body):
    """Which conflict an announcement is about, and whom."""

    __slots__ = ()
    conflict_id: str
    conflict_kind: str
    patient_id: str
    patients: tuple[str, ...]

    def problems(self) -> list[Problem]:
        if self.patient_id not in self.patients:
            return [Problem("raised.patient_not_listed", "the primary patient must be one of"
                            " the patients", "patient_id")]
        return []


@body
class Raised(About):
    conflict_id: str = spec(CONFLICT_ID)
    conflict_kind: str = spec(text(64))
    patient_id: str = spec(ident())  # the primary patient (the first of ``patients``)
    patients: tuple[str, ...] = spec(id_list(lo=1))
    amount: int = spec(Field(int, lo=0, hi=MAX_AMOUNT, money=True))  # fen at stake, or 0
    summary: str = spec(text(300))  # plain language; never a national ID or phone in clear

    def problems(self) -> list[Problem]:
        if _LONG_DIGITS.search(self.summary):
            return [Problem("raised.summary_identifies", "the summary must not carry a "
                            "national ID or phone number in clear", "summary")]
        return About.problems(self)


@body
class Withdrawn(About):
    conflict_id: str = spec(CONFLICT_ID)
    conflict_kind: str = spec(text(64))
    patient_id: str = spec(ident())
    patients: tuple[str, ...] = spec(id_list(lo=1))
    reason: str = spec(REASON)


#: What a counter's history calls each conflict central announces about a patient
#: (zh, en); the announcement's summary (English, from the reconciler) has the detail.
ANNOUNCED: dict[str, tuple[str, str]] = {
    "overdraft": ("离线透支", "Offline overdraft"),
    "lost_card_used": ("挂失卡被使用", "Lost card used"),
    "duplicate_patient": ("重复建档", "Duplicate registration"),
    "likely_duplicate": ("疑似重复建档", "Likely duplicate registration"),
    "double_replacement": ("重复补卡", "Double card replacement"),
    "over_refund": ("超额退费", "Over-refund"),
    "double_settlement": ("重复结算", "Double settlement"),
    "merged_record_used": ("合并后旧档案被使用", "Old record used after a merge"),
    "double_cancel": ("医嘱重复撤销", "Order cancelled twice"),
    "double_fee": ("重复收取诊查费", "Consultation fee charged twice"),
    "double_execution": ("医嘱重复签到", "Order checked in twice"),
    "double_dispense": ("处方重复发药", "Prescription dispensed twice"),
    "refund_after_execution": ("已执行医嘱被退费", "Refund of an executed order"),
    "charge_after_cancel": ("已撤销医嘱被收费", "Charge for a cancelled order"),
}


def _describe_raised(b: Raised, lang: str) -> str:
    """In English the reconciler's summary; in Chinese the conflict's name and amount."""
    if lang == "en":
        return b.summary
    word = say(ANNOUNCED.get(b.conflict_kind, ("冲突", "Conflict")), lang)
    return f"{word} {yuan(b.amount)}" if b.amount else word


def _describe_withdrawn(b: Withdrawn, lang: str) -> str:
    word = say(ANNOUNCED.get(b.conflict_kind, ("冲突", "Conflict")), lang)
    return f"{word}：{b.reason}" if lang != "en" else f"{word}: {b.reason}"


def _raised_notice(b: Raised, ctx: NoticeContext) -> Notice | None:
    if b.amount:
        return Notice("open", "notice.open", _money(b.amount), b.conflict_id, True, b.amount)
    return Notice("open", "notice.open_no_amount", (), b.conflict_id, True)


def _withdrawn_notice(b: Withdrawn, ctx: NoticeContext) -> Notice | None:
    return Notice("withdrawn", "", (), b.conflict_id)


def _announced(b: About) -> tuple[PatientId, ...]:
    return tuple(dict.fromkeys(b.patients))


RAISED_KIND = Kind(
    name="conflict.raised", body=Raised, signer=CENTRAL_ONLY,
    title=("发现冲突", "Conflict raised"),
    records=lambda b: set(), patients=_announced,
    fold=_nothing, money=lambda b: Money(), rule=no_rule,
    describe=_describe_raised,
    report=no_report, notice=_raised_notice,
)
WITHDRAWN_KIND = Kind(
    name="conflict.withdrawn", body=Withdrawn, signer=CENTRAL_ONLY,
    title=("冲突已撤销", "Conflict withdrawn"),
    records=lambda b: set(), patients=_announced,
    fold=_nothing, money=lambda b: Money(), rule=no_rule,
    describe=_describe_withdrawn,
    report=no_report, notice=_withdrawn_notice,
)

RAISED = RAISED_KIND.name
WITHDRAWN = WITHDRAWN_KIND.name
#: Central's notices about a conflict's state, not resolutions of it.
ANNOUNCEMENTS = frozenset({RAISED, WITHDRAWN})
KINDS = (DEBT_RECORDED, CHARGE_REVERSED, MERGED_KIND, BLOCKED, ACCEPTED, RAISED_KIND,
         WITHDRAWN_KIND)
REMEDY_KINDS = frozenset(k.name for k in KINDS) - ANNOUNCEMENTS
