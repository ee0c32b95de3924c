"""The card: issue, loss report and replacement (DOMAIN 3.3); cards point at an account.

A card's status only ever becomes more final (active < lost < replaced < blocked), so
every order of its events agrees.  Who owns a card is a claim: a central merge (the
latest) beats an issuing event (the earliest), which beats any other event naming the
card (the earliest) — a deterministic choice, whatever order the events arrive in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from protocol.core import (
    COUNTER,
    At,
    CardNo,
    Kind,
    PatientId,
    Record,
    ReportLine,
    RuleConfig,
    State,
    Tx,
    earlier,
    no_money,
    no_notice,
    record,
    refs,
    say,
)
from protocol.errors import Problem
from protocol.fields import Body, Field, body, card_no, choice, ident, spec, text
from protocol.patient import Patient, patient_known

CARD_MEDIA = ("chip", "magstripe", "qr")
CHIP_UID_RE = re.compile(r"^[0-9a-f]{8,32}$")  # a chip's UID (4 to 16 bytes), lower-case hex
CARD_ENTRY = ("chip", "wedge", "manual")
IDENTITY_PROOFS = ("id_card", "deposit_receipt", "record_book", "other")
STATUS_RANK = {"active": 0, "lost": 1, "replaced": 2, "blocked": 3}
LABELS = {"proof.id_card": ("身份证", "ID card"),
          "proof.deposit_receipt": ("预交金收据", "Deposit receipt"),
          "proof.record_book": ("病历本", "Record book"), "proof.other": ("其他", "Other")}

NAMED, ISSUED, MERGED = 1, 2, 3  # owner claims, weakest first


@record("cards", ("card_no",), indexes=(("patient_id",),))
@dataclass(frozen=True, slots=True)
class Card(Record):
    card_no: CardNo
    patient_id: PatientId = ""
    status: str = "active"
    replaced_by: str = ""  # the smallest new number, if (wrongly) replaced twice
    issued_node: str = ""
    issued_ms: int = 0
    issued_at: str = ""  # merge order of the earliest event that issued this number
    owner_rank: int = 0  # the claim that set patient_id: NAMED, ISSUED or MERGED
    owner_at: str = ""
    chip_uid: str = ""  # the chip the issuing counter wrote (hex; "" printed/QR, or older)
    issued_seq: int = 0  # the issuing event's seq in issued_node's chain (its key then)


def claim(tx: Tx, card: CardNo, pid: PatientId, rank: int, at: str) -> None:
    """Give ``card`` to ``pid`` if this claim beats the one that holds it."""
    c = tx.get_or_new(Card, card)
    if rank > c.owner_rank or (rank == c.owner_rank and (
            at > c.owner_at if rank == MERGED else at < c.owner_at)):
        tx.put(c.evolve(patient_id=pid, owner_rank=rank, owner_at=at))


def set_status(tx: Tx, card: CardNo, status: str, replaced_by: str = "") -> None:
    """Keep the most final status seen (and the smallest replacement number)."""
    c = tx.get_or_new(Card, card)
    new = c
    if STATUS_RANK[status] > STATUS_RANK.get(c.status, 0):
        new = new.evolve(status=status)
    if replaced_by and (not c.replaced_by or replaced_by < c.replaced_by):
        new = new.evolve(replaced_by=replaced_by)
    if new != c:
        tx.put(new)


def issue(tx: Tx, at: At, card: CardNo, pid: PatientId, chip_uid: str = "") -> None:
    """The card was issued by ``at.node`` (on chip ``chip_uid``): the earliest issuing
    event holds — a tap accepts a card only if its signed data says the same issuer and
    chip, signed with the issuer's key valid at that event's seq
    (:mod:`edge_node.tui.cardsource`)."""
    claim(tx, card, pid, ISSUED, at.order)
    c = tx.get_or_new(Card, card)
    if earlier(at.order, c.issued_at):
        tx.put(c.evolve(issued_node=at.node, issued_ms=at.wall, issued_at=at.order,
                        chip_uid=chip_uid, issued_seq=at.seq))


def usable_card(state: State, card: CardNo, pid: PatientId,
                field: str = "card_no") -> list[Problem]:
    """Refuse a card that is unknown here, another patient's, lost, replaced or blocked."""
    c = state.get(Card, card)
    if c is None or not c.issued_at:
        return [Problem("card.unknown", f"card {card} is not known at this counter", field,
                        {"card": card})]
    if c.patient_id != pid:
        return [Problem("card.wrong_patient", f"card {card} belongs to another patient", field,
                        {"card": card})]
    if c.status == "lost":
        return [Problem("card.lost", f"card {card} was reported lost: keep it and ask for ID",
                        field, {"card": card})]
    if c.status == "replaced":
        return [Problem("card.replaced", f"card {card} was replaced by {c.replaced_by}", field,
                        {"card": card, "new": c.replaced_by})]
    if c.status != "active":
        return [Problem("card.blocked", f"card {card} is blocked", field, {"card": card})]
    return []


def _taken(state: State, card: CardNo, field: str) -> list[Problem]:
    c = state.get(Card, card)
    if c is not None and c.issued_at:
        return [Problem("card.exists", f"card {card} has already been issued", field,
                        {"card": card})]
    return []


# -- card.issued ---------------------------------------------------------------------------
@body
class Issued(Body):
    card_no: str = spec(card_no())
    patient_id: str = spec(ident())
    medium: str = spec(choice(CARD_MEDIA, required=False), "")
    chip_uid: str = spec(Field(str, False, pattern=CHIP_UID_RE), "")  # the chip written


def _rule_issued(state: State, b: Issued, cfg: RuleConfig) -> list[Problem]:
    return patient_known(state, b.patient_id) + _taken(state, b.card_no, "card_no")


ISSUED_KIND = Kind(
    name="card.issued", body=Issued, signer=COUNTER, title=("发卡", "Card issued"),
    records=lambda b: refs(Card, b.card_no) | refs(Patient, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=lambda tx, at, b: issue(tx, at, b.card_no, b.patient_id, b.chip_uid),
    money=no_money, rule=_rule_issued,
    describe=lambda b, lang: b.card_no,
    report=lambda b: ReportLine("counts", "cards_issued"),
    notice=no_notice,
)


# -- card.reported_lost ----------------------------------------------------------------------
@body
class ReportedLost(Body):
    card_no: str = spec(card_no())
    patient_id: str = spec(ident())
    verified_by: str = spec(choice(IDENTITY_PROOFS))
    reason: str = spec(text(200, required=False), "")


def _fold_lost(tx: Tx, at: At, b: ReportedLost) -> None:
    claim(tx, b.card_no, b.patient_id, NAMED, at.order)
    set_status(tx, b.card_no, "lost")


def _rule_lost(state: State, b: ReportedLost, cfg: RuleConfig) -> list[Problem]:
    return patient_known(state, b.patient_id) or usable_card(state, b.card_no, b.patient_id)


LOST_KIND = Kind(
    name="card.reported_lost", body=ReportedLost, signer=COUNTER,
    title=("挂失", "Card reported lost"),
    records=lambda b: refs(Card, b.card_no) | refs(Patient, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_lost, money=no_money, rule=_rule_lost,
    describe=lambda b, lang: f"{b.card_no} ({say(LABELS['proof.' + b.verified_by], lang)})",
    report=lambda b: ReportLine("counts", "cards_lost"),
    notice=no_notice,
)


# -- card.replaced ---------------------------------------------------------------------------
@body
class Replaced(Body):
    old_card_no: str = spec(card_no())
    new_card_no: str = spec(card_no())
    patient_id: str = spec(ident())
    medium: str = spec(choice(CARD_MEDIA, required=False), "")
    chip_uid: str = spec(Field(str, False, pattern=CHIP_UID_RE), "")  # the new card's chip

    def problems(self) -> list[Problem]:
        if self.old_card_no == self.new_card_no:
            return [Problem("card.same_number", "the new card must have a different number",
                            "new_card_no")]
        return []


def _fold_replaced(tx: Tx, at: At, b: Replaced) -> None:
    claim(tx, b.old_card_no, b.patient_id, NAMED, at.order)
    set_status(tx, b.old_card_no, "replaced", b.new_card_no)
    issue(tx, at, b.new_card_no, b.patient_id, b.chip_uid)


def _rule_replaced(state: State, b: Replaced, cfg: RuleConfig) -> list[Problem]:
    out = patient_known(state, b.patient_id)
    old = state.get(Card, b.old_card_no)
    if old is None or not old.issued_at:
        out.append(Problem("card.unknown", f"card {b.old_card_no} is not known at this "
                           "counter", "old_card_no", {"card": b.old_card_no}))
    elif old.patient_id != b.patient_id:
        out.append(Problem("card.wrong_patient", f"card {b.old_card_no} belongs to another "
                           "patient", "old_card_no", {"card": b.old_card_no}))
    elif old.status not in ("active", "lost"):
        out.append(Problem("card.already_replaced", f"card {b.old_card_no} was already "
                           f"replaced by {old.replaced_by or 'another card'}", "old_card_no",
                           {"card": b.old_card_no}))
    return out + _taken(state, b.new_card_no, "new_card_no")


REPLACED_KIND = Kind(
    name="card.replaced", body=Replaced, signer=COUNTER, title=("补卡", "Card replaced"),
    records=lambda b: refs(Card, b.old_card_no, b.new_card_no) | refs(Patient, b.patient_id),
    patients=lambda b: (b.patient_id,),
    fold=_fold_replaced, money=no_money, rule=_rule_replaced,
    describe=lambda b, lang: f"{b.old_card_no} → {b.new_card_no}",
    report=lambda b: ReportLine("counts", "cards_replaced"),
    notice=no_notice,
)

KINDS = (ISSUED_KIND, LOST_KIND, REPLACED_KIND)
RECORDS = (Card,)
