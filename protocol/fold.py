"""The fold: state (patients, cards, accounts, charges) as a deterministic function of events.

``apply(state, event)`` never refuses an event: events are facts that already happened
(possibly at another counter, offline).  Whether an operation *may* happen is decided
before it is appended, by :mod:`protocol.rules`; what offline work could not decide is
central's conflict detection.  Money fields are commutative (sums), so every order of
the same set of money events gives the same balances; card status takes the most final
status seen (active < lost < replaced), so it is order-independent too.

``State`` holds frozen records in plain dicts; ``apply`` replaces records and returns
the same ``State``.  A ledger may load only the records an event touches
(:func:`touched`), apply, and write back exactly those records: the result equals a
full refold, which ``rebuild`` proves.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from protocol.event import Event

Fen = int
PatientId = str
CardNo = str

CARD_STATUS_RANK = {"active": 0, "lost": 1, "replaced": 2, "blocked": 3}


@dataclass(frozen=True, slots=True)
class Patient:
    patient_id: PatientId
    name: str = ""
    sex: str = ""
    birth_date: str = ""
    national_id: str = ""
    phone: str = ""
    contact: str = ""
    registered_node: str = ""
    registered_ms: int = 0
    merged_into: str = ""


@dataclass(frozen=True, slots=True)
class Card:
    card_no: CardNo
    patient_id: PatientId
    status: str = "active"
    replaced_by: str = ""
    issued_node: str = ""
    issued_ms: int = 0


@dataclass(frozen=True, slots=True)
class Account:
    """The patient's deposit account (one per patient; cards point at it)."""

    patient_id: PatientId
    balance: Fen = 0
    credit_limit: Fen = 0
    deposited: Fen = 0
    charged: Fen = 0
    refunded_to_deposit: Fen = 0
    refunded_to_cash: Fen = 0
    settled: Fen = 0
    money_seq: int = 0  # count of money events: the per-account sequence of wallet stamps
    closed: int = 0  # 1 after settlement until the next deposit
    adjusted: Fen = 0  # net central adjustments (conflict remedies: reversals, debts, merges)
    # The newest wallet stamp written to (or accepted from) a card of this account: its
    # sequence and balance.  A card presenting an older stamp replays an old balance.
    stamp_seq: int = 0
    stamp_balance: Fen = 0

    @property
    def available(self) -> Fen:
        """What may still be charged: balance plus green-channel credit."""
        return self.balance + self.credit_limit


@dataclass(frozen=True, slots=True)
class Charge:
    charge_id: str
    patient_id: PatientId = ""
    card_no: str = ""
    amount: Fen = 0
    refunded: Fen = 0
    department: str = ""
    order_ref: str = ""
    node: str = ""
    seq: int = 0
    wall_ms: int = 0
    reversed: Fen = 0  # reversed by central (a conflict remedy): no longer refundable

    @property
    def refundable(self) -> Fen:
        return self.amount - self.refunded - self.reversed


RECORD_TYPES: dict[str, type[Any]] = {
    "patients": Patient,
    "cards": Card,
    "accounts": Account,
    "charges": Charge,
}
RECORD_KEYS = {"patients": "patient_id", "cards": "card_no", "accounts": "patient_id",
               "charges": "charge_id"}


def record_columns(table: str) -> tuple[str, ...]:
    return tuple(f.name for f in fields(RECORD_TYPES[table]))


@dataclass(slots=True)
class State:
    patients: dict[PatientId, Patient] = field(default_factory=dict)
    cards: dict[CardNo, Card] = field(default_factory=dict)
    accounts: dict[PatientId, Account] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)

    def account(self, patient_id: PatientId) -> Account:
        return self.accounts.get(patient_id) or Account(patient_id)

    def table(self, name: str) -> dict[str, Any]:
        table: dict[str, Any] = getattr(self, name)
        return table


@dataclass(frozen=True, slots=True)
class Touched:
    """The keys of the records an event reads or writes."""

    patients: frozenset[str] = frozenset()
    cards: frozenset[str] = frozenset()
    charges: frozenset[str] = frozenset()

    def __or__(self, other: Touched) -> Touched:
        return Touched(self.patients | other.patients, self.cards | other.cards,
                       self.charges | other.charges)


def touched(kind: str, body: dict[str, Any]) -> Touched:
    """Which records applying (or checking) an event of ``kind`` with ``body`` touches."""
    pats = {body["patient_id"]} if "patient_id" in body else set()
    cards = {body[k] for k in ("card_no", "old_card_no", "new_card_no") if k in body}
    charges = {body["charge_id"]} if "charge_id" in body else set()
    extra = _TOUCH_HOOKS.get(kind)
    base = Touched(frozenset(pats), frozenset(cards), frozenset(charges))
    return base | extra(body) if extra else base


def _acct(state: State, pid: PatientId, **changes: int) -> None:
    """Add ``changes`` to the account's sums (``closed`` is set, not added)."""
    acct = state.account(pid)
    new: dict[str, Any] = {k: v if k == "closed" else getattr(acct, k) + v
                           for k, v in changes.items()}
    state.accounts[pid] = replace(acct, **new)


def _stamp(state: State, ev: Event) -> None:
    """Remember the event's wallet stamp if it is the newest (order-independent).

    The newest is the highest ``stamp_seq``; two stamps with the same seq (two counters
    offline at once) keep the lower balance, so any order of the same events agrees.
    """
    b = ev.body
    if "stamp_seq" not in b:
        return
    acct = state.account(b["patient_id"])
    seq, balance = b["stamp_seq"], b["stamp_balance"]
    if seq > acct.stamp_seq or (seq == acct.stamp_seq and balance < acct.stamp_balance):
        state.accounts[b["patient_id"]] = replace(acct, stamp_seq=seq, stamp_balance=balance)


def _registered(state: State, ev: Event) -> None:
    b = ev.body
    pid = b["patient_id"]
    old = state.patients.get(pid)
    state.patients[pid] = Patient(
        pid, b["name"], b["sex"], b["birth_date"], b.get("national_id", ""), b.get("phone", ""),
        b.get("contact", ""), ev.node, ev.hlc.wall, old.merged_into if old else "",
    )
    state.accounts.setdefault(pid, Account(pid))


def _updated(state: State, ev: Event) -> None:
    b = ev.body
    pid = b["patient_id"]
    old = state.patients.get(pid) or Patient(pid)
    state.patients[pid] = replace(old, **{k: v for k, v in b.items() if k != "patient_id"})


def _set_card(state: State, card: Card) -> None:
    """Keep the most final status seen for a card (order-independent)."""
    old = state.cards.get(card.card_no)
    if old is None:
        state.cards[card.card_no] = card
        return
    keep = old if CARD_STATUS_RANK[old.status] >= CARD_STATUS_RANK[card.status] else card
    # One card replaced at two offline counters (a double-replacement conflict): keep the
    # smaller new number whatever order the replacements arrive in, so counters agree.
    replaced_by = min(filter(None, (old.replaced_by, card.replaced_by)), default="")
    state.cards[card.card_no] = replace(
        keep,
        patient_id=old.patient_id or card.patient_id,
        replaced_by=replaced_by,
        issued_node=old.issued_node or card.issued_node,
        issued_ms=old.issued_ms or card.issued_ms,
    )


def _issued(state: State, ev: Event) -> None:
    b = ev.body
    _set_card(state, Card(b["card_no"], b["patient_id"], "active", "", ev.node, ev.hlc.wall))


def _lost(state: State, ev: Event) -> None:
    b = ev.body
    _set_card(state, Card(b["card_no"], b["patient_id"], "lost"))


def _replaced(state: State, ev: Event) -> None:
    b = ev.body
    _set_card(state, Card(b["old_card_no"], b["patient_id"], "replaced", b["new_card_no"]))
    _set_card(state, Card(b["new_card_no"], b["patient_id"], "active", "", ev.node, ev.hlc.wall))


def _deposited(state: State, ev: Event) -> None:
    amount = ev.body["amount"]
    _acct(state, ev.body["patient_id"], balance=amount, deposited=amount, money_seq=1, closed=0)
    _stamp(state, ev)


def _charged(state: State, ev: Event) -> None:
    b = ev.body
    amount = b["amount"]
    _acct(state, b["patient_id"], balance=-amount, charged=amount, money_seq=1)
    old = state.charges.get(b["charge_id"])
    state.charges[b["charge_id"]] = Charge(
        b["charge_id"], b["patient_id"], b.get("card_no", ""), amount,
        old.refunded if old else 0, b["department"], b.get("order_ref", ""), ev.node, ev.seq,
        ev.hlc.wall, old.reversed if old else 0,
    )
    _stamp(state, ev)


def _refunded(state: State, ev: Event) -> None:
    b = ev.body
    amount = b["amount"]
    if b["to"] == "deposit":
        _acct(state, b["patient_id"], balance=amount, refunded_to_deposit=amount, money_seq=1)
    else:
        _acct(state, b["patient_id"], refunded_to_cash=amount, money_seq=1)
    old = state.charges.get(b["charge_id"]) or Charge(b["charge_id"], b["patient_id"])
    state.charges[b["charge_id"]] = replace(old, refunded=old.refunded + amount)
    _stamp(state, ev)


def _settled(state: State, ev: Event) -> None:
    amount = ev.body["amount"]
    _acct(state, ev.body["patient_id"], balance=-amount, settled=amount, money_seq=1, closed=1)
    _stamp(state, ev)


def _credit(state: State, ev: Event) -> None:
    pid = ev.body["patient_id"]
    state.accounts[pid] = replace(state.account(pid), credit_limit=ev.body["limit"])


APPLIERS: dict[str, Any] = {
    "patient.registered": _registered,
    "patient.updated": _updated,
    "card.issued": _issued,
    "card.reported_lost": _lost,
    "card.replaced": _replaced,
    "account.deposited": _deposited,
    "account.charged": _charged,
    "account.refunded": _refunded,
    "account.settled": _settled,
    "account.credit_granted": _credit,
}
_TOUCH_HOOKS: dict[str, Any] = {}


def register_applier(kind: str, applier: Any, touch: Any = None) -> None:
    """Add the fold of a new event kind (and, if it reads more records, which ones)."""
    APPLIERS[kind] = applier
    if touch is not None:
        _TOUCH_HOOKS[kind] = touch


def apply(state: State, ev: Event) -> State:
    """Fold one event into ``state`` (updated in place) and return it.

    Kinds this version does not know are kept in the ledger and ignored by the fold,
    so an older counter never refuses a newer counter's events.
    """
    applier = APPLIERS.get(ev.kind)
    if applier is not None:
        applier(state, ev)
    return state


def fold(events: Any, state: State | None = None) -> State:
    """The state after applying ``events`` in the order given."""
    st = state if state is not None else State()
    for ev in events:
        apply(st, ev)
    return st
