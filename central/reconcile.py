"""The reconciler: what offline counters could not decide, as typed conflicts (pure, no I/O).

Theory of operation
-------------------
Central feeds every stored event (with the time it was received) into a
:class:`Reconciler`, batch after batch, in any order.  The reconciler keeps, per
patient, that patient's events sorted in the one merge order ``(hlc, node, seq)``
(:meth:`protocol.event.Event.sort_key`), plus small indexes (national ID, name + birth
date + phone).  After a batch it re-runs the detectors only for the patients and
identities the batch touched: a detector is a plain function from a
:class:`Timeline` (one patient's merged history) to conflicts, listed in
:data:`PATIENT_DETECTORS`; adding a kind of conflict is adding a function there.
Per-event integrity checks (malformed body, remedy not signed by central, clock
skew, events signed after a node's revocation) run as events arrive; equivocations
and chain breaks, which never reach the events table, come in as
:class:`IntegrityReport` values from the store.

A conflict's id is a hash of what identifies the incident (the account and the
event that opened it, the card and its loss report, the charge refunded twice …),
never of when it was seen, so re-running detection over the same events gives the
same ids: the store inserts new ids and leaves known ones be, and re-syncing never
raises a conflict twice.  A conflict that a detector no longer finds for its scope
(late events showed it was not one) is reported as *withdrawn*.

Remedies are events central signs (:mod:`protocol.remedy`); each carries the
``conflict_id`` it resolves, and a central event naming a conflict is what marks it
resolved — so the status, too, is a function of the events.

Honest histories raise nothing: every detector looks for a fact that a counter
which knew everything would have refused (a charge beyond what the account held, a
charge on a card reported lost, a refund beyond the charge, a second replacement
or settlement, a second registration of one ID number).  An event a counter wrote
knowing another always sorts after it (the HLC), so "before, in merge order" is a
safe stand-in for "known to the writer".
"""

from __future__ import annotations

import bisect
import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from protocol.account import Account, Charged, Deposited, LimitsSet, Refunded, Settled
from protocol.card import Card, ReportedLost
from protocol.card import Replaced as CardReplaced
from protocol.core import Fact, Invalid, Key, Registry, State, Unknown
from protocol.domain import REGISTRY
from protocol.event import CENTRAL, Event, EventId
from protocol.execution import EXECUTED, ChargeReturned, CheckedIn, Dispensed, OrderProgressed
from protocol.execution import Returned as OrderReturned
from protocol.money import yuan
from protocol.order import Cancelled as OrderCancelled
from protocol.order import Placed as OrderPlaced
from protocol.patient import Patient, Registered, Updated
from protocol.privacy import is_sealed
from protocol.remedy import ANNOUNCEMENTS, Blocked, ChargeReversed, DebtRecorded, Merged
from protocol.stock import Stock
from protocol.visit import FeeCharged, FeeReturned

log = logging.getLogger("onecard.central.reconcile")

Fen = int
PatientId = str
ConflictId = str

SEVERITIES = ("high", "medium", "low")
STATUSES = ("open", "acknowledged", "resolved", "withdrawn")
KINDS = (
    "overdraft",
    "lost_card_used",
    "duplicate_patient",
    "likely_duplicate",
    "double_replacement",
    "over_refund",
    "double_settlement",
    "merged_record_used",
    "double_cancel",
    "double_fee",
    "double_execution",
    "double_dispense",
    "refund_after_execution",
    "charge_after_cancel",
    "stock_below_zero",
    "offline_overrun",
    "equivocation",
    "chain_break",
    "revoked_node",
    "stale_key",
    "clock_skew",
    "malformed_event",
    "reconcile_error",
    "audit_finding",
)
#: Conflicts about a node or central itself, not a patient's money or record.
INTEGRITY_KINDS = frozenset({"equivocation", "chain_break", "revoked_node", "stale_key",
                             "clock_skew", "malformed_event", "reconcile_error"})
#: Conflicts never announced to the counters: the integrity kinds, the daily audit's
#: findings (for central's finance and IT, not for the patient's next tap), and stock
#: below zero (a pharmacy's figures, no patient's: it names none).
#: An offline overrun is the counter's and its supervisor's, not the patient's next tap
#: (the money, if the account went below zero, is the overdraft's, which is announced).
UNANNOUNCED_KINDS = INTEGRITY_KINDS | {"audit_finding", "stock_below_zero", "offline_overrun"}


@dataclass(frozen=True, slots=True)
class ReconcileConfig:
    max_skew_ms: int = 5 * 60_000  # a node's own clock this far ahead of central: flagged


@dataclass(frozen=True, slots=True)
class RemedyOption:
    """One way to resolve a conflict: the central events it will sign, said in words."""

    code: str  # what IT types: "debt", "reverse", "merge", "block", "accept"
    label: str
    effect: str  # what it will do, before it is done
    events: tuple[tuple[str, dict[str, Any]], ...]  # (kind, body without "reason")


@dataclass(frozen=True, slots=True)
class Conflict:
    id: ConflictId
    kind: str
    severity: str
    title: str
    explanation: str
    events: tuple[EventId, ...]
    patients: tuple[PatientId, ...] = ()
    cards: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()
    amount: Fen = 0  # money at stake (shortfall, amount at risk, excess refunded)
    wall_ms: int = 0  # when it happened (merge order), for sorting and date filters
    remedies: tuple[RemedyOption, ...] = ()

    def remedy(self, code: str) -> RemedyOption | None:
        return next((r for r in self.remedies if r.code == code), None)


@dataclass(frozen=True, slots=True)
class Resolution:
    """A central event that names a conflict: that conflict is resolved by it."""

    conflict_id: ConflictId
    event: EventId
    kind: str
    operator: str
    reason: str
    wall_ms: int


@dataclass(frozen=True, slots=True)
class IntegrityReport:
    """What the store saw but did not merge: an equivocation or a chain break."""

    kind: str  # "equivocation" | "chain_break" | "malformed_event"
    node: str
    seq: int
    message: str
    wall_ms: int = 0
    offered: str = ""  # hex hash of the refused event (tells two refused bodies apart)


@dataclass(frozen=True, slots=True)
class Incoming:
    event: Event
    received_ms: int = 0
    pos: int = 0  # its place in central's pull cursor (0: not from the store)


@dataclass(slots=True)
class Work:
    """One batch on its way through :meth:`Reconciler.add`'s steps: decoded, folded,
    planned, detected.  A store-backed reconciler (:mod:`central.recon_store`) loads
    what the next step reads between the steps; alone, the steps run back to back."""

    items: list[tuple[Incoming, Any]] = field(default_factory=list)  # (incoming, decoded)
    rep: Report = field(default_factory=lambda: Report())
    dirty: set[PatientId] = field(default_factory=set)
    dirty_ids: set[str] = field(default_factory=set)
    dirty_people: set[Identity] = field(default_factory=set)
    dirty_stock: set[StockKey] = field(default_factory=set)
    #: (scope, merge order, incoming) of every fact the fold put in a timeline
    placed: list[tuple[str, str, Incoming]] = field(default_factory=list)
    limits_changed: bool = False


@dataclass(slots=True)
class Report:
    """What one :meth:`Reconciler.add` found: current conflicts of the touched scopes."""

    conflicts: list[Conflict] = field(default_factory=list)
    withdrawn: list[ConflictId] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)


def conflict_id(kind: str, *parts: object) -> ConflictId:
    """A stable id: the kind and a hash of what identifies the incident."""
    h = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=6).hexdigest()
    return f"{kind}-{h}"


# ---------------------------------------------------------------------------- timelines


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a timeline with what the fold makes of it, in merge order: the
    balance change for the timeline's person, the balance and the account after it."""

    fact: Fact
    delta: Fen
    balance: Fen
    account: Account

    @property
    def event(self) -> Event:
        return self.fact.event


class Timeline:
    """One patient's facts in merge order, and what the detectors ask of them."""

    def __init__(self, pid: PatientId, facts: Sequence[Fact], world: Reconciler,
                 family: frozenset[PatientId] = frozenset()) -> None:
        self.pid = pid  # (conflict texts name the patient by it: names are sealed, and
        # the console opens them beside the number)
        self.facts = facts
        self.world = world
        #: the records whose money counts: ``pid`` and, in a person's view, those merged in
        self.family = family or frozenset({pid})
        self._steps: list[Step] | None = None
        self._orders: dict[str, OrderFacts] | None = None

    @property
    def events(self) -> list[Event]:
        return [f.event for f in self.facts]

    def steps(self) -> list[Step]:
        """The timeline folded one fact at a time by the registry's fold (the one money
        rule): what the account held after each event, in merge order.

        Facts that touch no account leave it as it was, so only the others are folded;
        the steps are worked out once per timeline (several detectors read them).
        """
        if self._steps is not None:
            return self._steps
        state = State()
        reg = self.world.registry
        out, bal = [], 0
        acct = Account(self.pid)
        for f in self.facts:
            money = f.money
            if (Account, self.pid) in f.records:
                reg.apply_fact(state, f)
                acct = state.get_or_new(Account, self.pid)
            d = sum(money.delta(p) for p in self.family) if money.deltas else 0
            bal += d
            out.append(Step(f, d, bal, acct))
        self._steps = out
        return out

    def orders(self) -> dict[str, OrderFacts]:
        """This timeline's events about each order, by order id, each list in merge order
        (worked out once per timeline: several detectors read them)."""
        if self._orders is None:
            self._orders = {}
            for f in self.facts:
                oid = getattr(f.body, "order_id", None)
                if isinstance(oid, str):
                    self._orders.setdefault(oid, OrderFacts()).add(f)
        return self._orders


@dataclass(slots=True)
class OrderFacts:
    """One order's events in one patient's timeline, sorted by what they did."""

    placed: Fact | None = None  # the first placement (a second one of the id is ignored)
    checkins: list[Fact] = field(default_factory=list)
    executed: list[Fact] = field(default_factory=list)  # order.progressed executed/resulted
    dispenses: list[Fact] = field(default_factory=list)
    cancels: list[Fact] = field(default_factory=list)
    returns: list[Fact] = field(default_factory=list)  # order.returned (undispensed)
    given_back: list[Fact] = field(default_factory=list)  # central's order.charge_returned

    def add(self, f: Fact) -> None:
        b = f.body
        if isinstance(b, OrderPlaced):
            if self.placed is None:
                self.placed = f
        elif isinstance(b, CheckedIn):
            self.checkins.append(f)
        elif isinstance(b, OrderProgressed):
            if b.step in EXECUTED:
                self.executed.append(f)
        elif isinstance(b, Dispensed):
            self.dispenses.append(f)
        elif isinstance(b, OrderCancelled):
            self.cancels.append(f)
        elif isinstance(b, OrderReturned):
            self.returns.append(f)
        elif isinstance(b, ChargeReturned):
            self.given_back.append(f)

    def back(self, cid: ConflictId) -> Fen:
        """What central already gave back of this order under conflict ``cid``."""
        return int(sum(f.body.amount for f in self.given_back if f.body.conflict_id == cid))

    @property
    def charged(self) -> Fen:
        """Everything its events charged: when sent, at check-in and at dispensing."""
        return int((self.placed.body.charged if self.placed else 0)
                   + sum(f.body.charged for f in self.checkins)
                   + sum(f.body.amount for f in self.dispenses))

    def extras(self) -> list[tuple[Fact, str, int, int]]:
        """Dispensed beyond the order, in merge order: (dispensing, code, qty, unit price)
        — the part of each dispensing that took a line past its ordered quantity."""
        if self.placed is None:
            return []
        ordered = {x.code: x.qty for x in self.placed.body.lines}
        so_far: dict[str, int] = {}
        out = []
        for f in self.dispenses:
            for x in f.body.lines:
                before = so_far.get(x.code, 0)
                so_far[x.code] = before + x.qty
                extra = min(x.qty, max(0, before + x.qty - ordered.get(x.code, 0)))
                if extra:
                    out.append((f, x.code, extra, x.unit_price))
        return out


def _ref(ev: Event) -> str:
    return f"{ev.node} #{ev.seq}"


def accept_remedy(cid: ConflictId, pid: PatientId | None, effect: str) -> RemedyOption:
    body: dict[str, Any] = {"conflict_id": cid}
    if pid:
        body["patient_id"] = pid
    return RemedyOption("accept", "Accept as is", effect, (("conflict.accepted", body),))


# ---------------------------------------------------------------------------- detectors

Detector = Callable[[Timeline], list[Conflict]]


def _merged_at(tl: Timeline) -> str:
    """The merge order at which this timeline's record was merged into another ("" none)."""
    p = tl.world.patient(tl.pid)
    return p.merged_at if p is not None else ""


def detect_overdraft(tl: Timeline) -> list[Conflict]:
    """The balance went below the granted credit because payments were concurrent.

    An *episode* starts at the first charge or settlement that takes the balance below
    ``-credit`` and ends when the balance is back above it; its id is the account and
    the last event that raised the balance before it, which later-arriving concurrent
    charges do not change.  Central's own adjustments and transfers that lower the
    balance (a debt taken, a debt moved in by a merge) are debts, not overdrafts: they
    do not count against the floor.  A second settlement is the double-settlement
    detector's; what happens on a record after it was merged, the merged-record one's.
    """
    out: list[Conflict] = []
    excluded = 0  # lowered by what is not spending: not an overdraft
    anchor: Event | None = None
    since: list[Fact] = []  # spending since the last raise
    episode: dict[str, Any] | None = None
    settled_since_deposit = False
    merged_at = _merged_at(tl)
    step: Step | None = None
    for step in tl.steps():
        f, d = step.fact, step.delta
        if merged_at and f.at.order > merged_at:
            break  # the record was merged: later events are detect_merged_record_used's
        credit = step.account.credit_limit
        flow = f.money.flow
        double_settle = flow == "settle" and settled_since_deposit and d < 0
        if flow == "settle":
            settled_since_deposit = True
        elif flow == "deposit":
            settled_since_deposit = False
        spend = flow in ("charge", "settle") and d < 0 and not double_settle
        if d < 0 and not spend:
            excluded += -d
        floor_bal = step.balance + excluded
        if d > 0:
            if episode is not None and floor_bal >= -credit:
                out.append(_overdraft(tl, episode, floor_bal, credit, closed_by=f.event))
                episode = None
            anchor, since = f.event, []
        elif spend:
            since.append(f)
            if floor_bal < -credit:
                if episode is None:
                    episode = {"anchor": anchor, "facts": list(since), "max": 0,
                               "credit": credit,
                               "start_balance": floor_bal - sum(x.money.delta(tl.pid)
                                                                for x in since)}
                else:
                    episode["facts"].append(f)
                episode["max"] = max(episode["max"], -credit - floor_bal)
    if episode is not None and step is not None:
        out.append(_overdraft(tl, episode, step.balance + excluded,
                              step.account.credit_limit, closed_by=None))
    return out


def _overdraft(tl: Timeline, ep: dict[str, Any], bal: Fen, credit: Fen,
               closed_by: Event | None) -> Conflict:
    facts: list[Fact] = ep["facts"]
    anchor: Event | None = ep["anchor"]
    cid = conflict_id("overdraft", tl.pid, anchor.id if anchor else "start")
    owed = 0 if closed_by is not None else max(0, -credit - bal)
    nodes = sorted({f.at.node for f in facts})
    listed = "; ".join(f"{_what(f)} {yuan(-f.money.delta(tl.pid))} at {f.at.node} "
                       f"({_ref(f.event)})" for f in facts)
    start = ep["start_balance"]
    credit_txt = f" plus credit {yuan(ep['credit'])}" if ep["credit"] else ""
    text = (f"{tl.pid}'s account held {yuan(start)}{credit_txt}, but "
            f"{len(facts)} payments were taken from it without each knowing of the other "
            f"({', '.join(nodes)} offline): {listed}. Together they overdrew it by "
            f"{yuan(ep['max'])}.")
    if owed:
        text += f" The patient now owes {yuan(owed)}."
    else:
        text += f" It has since been covered ({_ref(closed_by) if closed_by else ''})."
    remedies: list[RemedyOption] = []
    if owed:
        remedies.append(RemedyOption(
            "debt", "Record the debt",
            f"Records that {tl.pid} owes {yuan(owed)} from an offline overdraft; every "
            f"counter asks for it at the next visit and the next deposit pays it off.",
            (("debt.recorded", {"conflict_id": cid, "patient_id": tl.pid, "amount": owed,
                                "debit": 0}),)))
    last = facts[-1].body
    if isinstance(last, Charged):
        remedies.append(RemedyOption(
            "reverse", f"Reverse charge {last.charge_id}",
            f"Cancels charge {last.charge_id} ({yuan(last.amount)} at {facts[-1].at.node}): "
            f"the hospital writes it off and the account gets {yuan(last.amount)} back.",
            (("charge.reversed", {"conflict_id": cid, "charge_id": last.charge_id,
                                  "patient_id": tl.pid, "amount": last.amount}),)))
    remedies.append(accept_remedy(cid, tl.pid, "Leaves the account as it is (e.g. the patient "
                                         "already paid at the ward)."))
    cards = sorted({f.body.card_no for f in facts
                    if isinstance(f.body, Charged) and f.body.card_no})
    return Conflict(
        cid, "overdraft", "high" if owed else "medium",
        f"Overdraft {yuan(ep['max'])} — {tl.pid}", text, tuple(f.event.id for f in facts),
        (tl.pid,), tuple(cards), tuple(nodes), ep["max"], facts[0].at.wall, tuple(remedies))


def _what(f: Fact) -> str:
    b = f.body
    if isinstance(b, Charged):
        return f"charge {b.charge_id}"
    if isinstance(b, Settled):
        return f"settlement {b.invoice_no}"
    return f.kind.name


def detect_lost_card_used(tl: Timeline) -> list[Conflict]:
    """Charges on a card after (in merge order) it was reported lost, replaced or blocked."""
    status: dict[str, tuple[str, Event]] = {}
    bad: dict[str, list[Fact]] = {}
    for f in tl.facts:
        b = f.body
        if isinstance(b, ReportedLost):
            status.setdefault(b.card_no, ("lost", f.event))
        elif isinstance(b, CardReplaced):
            status.setdefault(b.old_card_no, ("replaced", f.event))
        elif isinstance(b, Blocked):
            status.setdefault(b.card_no, ("blocked", f.event))
        elif isinstance(b, Charged) and b.card_no in status:
            bad.setdefault(b.card_no, []).append(f)
    out = []
    for card, charges in bad.items():
        why, stop = status[card]
        cid = conflict_id("lost_card_used", card, stop.id)
        bodies: list[Charged] = [c.body for c in charges]
        at_risk = sum(b.amount for b in bodies)
        listed = "; ".join(f"charge {b.charge_id} {yuan(b.amount)} at {c.at.node}"
                           for b, c in zip(bodies, charges, strict=True))
        said = {"lost": "reported lost", "replaced": "replaced", "blocked": "blocked"}[why]
        text = (f"Card {card} of {tl.pid} was {said} at {stop.node} ({_ref(stop)}), but "
                f"{len(charges)} charge(s) were made with it afterwards by counters that did "
                f"not know yet: {listed}. Amount at risk: {yuan(at_risk)}. Ask the patient "
                f"whether they made these charges.")
        remedies = [RemedyOption(
            "reverse", "Reverse the charges",
            f"Cancels {len(charges)} charge(s), {yuan(at_risk)} back on the account (the "
            f"card was used by someone else).",
            tuple(("charge.reversed", {"conflict_id": cid, "charge_id": b.charge_id,
                                       "patient_id": tl.pid, "amount": b.amount})
                  for b in bodies))]
        remedies.append(RemedyOption(
            "block", f"Block card {card}",
            f"Blocks card {card} on every counter; the charges stand.",
            (("card.blocked", {"conflict_id": cid, "card_no": card, "patient_id": tl.pid}),)))
        remedies.append(accept_remedy(cid, tl.pid, "The patient confirms the charges; they stand."))
        out.append(Conflict(
            cid, "lost_card_used", "high", f"Lost card used — {card}, {yuan(at_risk)}", text,
            (stop.id, *(c.event.id for c in charges)), (tl.pid,), (card,),
            tuple(sorted({stop.node, *(c.at.node for c in charges)})), at_risk,
            charges[0].at.wall, tuple(remedies)))
    return out


def detect_double_replacement(tl: Timeline) -> list[Conflict]:
    """One card replaced twice (two counters each issued a new card for it)."""
    by_old: dict[str, list[tuple[Fact, CardReplaced]]] = {}
    for f in tl.facts:
        if isinstance(f.body, CardReplaced):
            by_old.setdefault(f.body.old_card_no, []).append((f, f.body))
    out = []
    for old, reps in by_old.items():
        if len({b.new_card_no for _, b in reps}) < 2:
            continue
        keep, extra = reps[0][1], [b for _, b in reps[1:]]
        cid = conflict_id("double_replacement", old, *sorted(b.new_card_no for _, b in reps))
        news = ", ".join(f"{b.new_card_no} at {f.at.node}" for f, b in reps)
        text = (f"Card {old} of {tl.pid} was replaced {len(reps)} times: {news}. Only one "
                f"new card should be in use; the first replacement is {keep.new_card_no}.")
        remedies = [RemedyOption(
            "block", "Block the later card(s)",
            "Blocks " + ", ".join(b.new_card_no for b in extra) + " on every counter;"
            f" {keep.new_card_no} stays the patient's card.",
            tuple(("card.blocked", {"conflict_id": cid, "card_no": b.new_card_no,
                                    "patient_id": tl.pid}) for b in extra))]
        remedies.append(accept_remedy(cid, tl.pid, "Both cards stay active."))
        out.append(Conflict(
            cid, "double_replacement", "medium", f"Card {old} replaced twice — {tl.pid}", text,
            tuple(f.event.id for f, _ in reps), (tl.pid,),
            (old, *(b.new_card_no for _, b in reps)), tuple(sorted({f.at.node for f, _ in reps})),
            0, reps[1][0].at.wall, tuple(remedies)))
    return out


def detect_over_refund(tl: Timeline) -> list[Conflict]:
    """Refunds (and reversals) of one charge adding up to more than the charge."""
    charges: dict[str, tuple[Fact, Charged]] = {}
    refunds: dict[str, list[tuple[Fact, Refunded]]] = {}
    reversed_: dict[str, int] = {}
    for f in tl.facts:
        b = f.body
        if isinstance(b, Charged):
            charges.setdefault(b.charge_id, (f, b))
        elif isinstance(b, Refunded):
            refunds.setdefault(b.charge_id, []).append((f, b))
        elif isinstance(b, ChargeReversed):
            reversed_[b.charge_id] = reversed_.get(b.charge_id, 0) + b.amount
    out = []
    for charge_id, refs in refunds.items():
        if charge_id not in charges:
            continue  # the charge has not reached central yet
        chf, ch = charges[charge_id]
        total = sum(b.amount for _, b in refs) + reversed_.get(charge_id, 0)
        excess = total - ch.amount
        if excess <= 0:
            continue
        cid = conflict_id("over_refund", charge_id)
        listed = "; ".join(f"{yuan(b.amount)} to {b.to} at {f.at.node}" for f, b in refs)
        text = (f"Charge {charge_id} of {tl.pid} was {yuan(ch.amount)}, but "
                f"{yuan(total)} was given back: {listed}"
                + (f" (and {yuan(reversed_[charge_id])} reversed)" if charge_id in reversed_
                   else "")
                + f". {yuan(excess)} too much was refunded.")
        remedies = [RemedyOption(
            "debt", "Take the excess back",
            f"Debits {yuan(excess)} from {tl.pid}'s account (if it does not hold that much "
            "the patient owes the rest, collected at the next visit).",
            (("debt.recorded", {"conflict_id": cid, "patient_id": tl.pid, "amount": excess,
                                "debit": excess}),)),
            accept_remedy(cid, tl.pid, "The hospital bears the excess refund.")]
        out.append(Conflict(
            cid, "over_refund", "high", f"Over-refund {yuan(excess)} — charge {charge_id}",
            text, (chf.event.id, *(f.event.id for f, _ in refs)), (tl.pid,), (),
            tuple(sorted({chf.at.node, *(f.at.node for f, _ in refs)})), excess,
            refs[-1][0].at.wall, tuple(remedies)))
    return out


def detect_double_settlement(tl: Timeline) -> list[Conflict]:
    """The account paid out twice: a second settlement with no deposit since the first."""
    out = []
    first: tuple[Fact, Settled] | None = None
    for step in tl.steps():
        f = step.fact
        if isinstance(f.body, Deposited):
            first = None
        elif isinstance(f.body, Settled):
            paid = f.body.amount
            if first is not None and paid > 0 and step.balance < 0:
                ff, fb = first
                cid = conflict_id("double_settlement", tl.pid, ff.event.id)
                text = (f"{tl.pid}'s account was settled at {ff.at.node} ({_ref(ff.event)}, "
                        f"{yuan(fb.amount)}) and again at {f.at.node} ({_ref(f.event)}, "
                        f"{yuan(paid)}) without a deposit in between: {yuan(paid)} was paid "
                        f"out twice. The patient owes {yuan(paid)}.")
                remedies = (RemedyOption(
                    "debt", "Record the debt",
                    f"Records that {tl.pid} owes {yuan(paid)}; counters ask for it at the "
                    "next visit.",
                    (("debt.recorded", {"conflict_id": cid, "patient_id": tl.pid,
                                        "amount": paid, "debit": 0}),)),
                    accept_remedy(cid, tl.pid, "The hospital bears the double payout."))
                out.append(Conflict(
                    cid, "double_settlement", "high", f"Settled twice — {tl.pid}, {yuan(paid)}",
                    text, (ff.event.id, f.event.id), (tl.pid,), (),
                    tuple(sorted({ff.at.node, f.at.node})), paid, f.at.wall, remedies))
            else:
                first = (f, f.body)
    return out


def detect_merged_record_used(tl: Timeline) -> list[Conflict]:
    """Money moved on a record after (in merge order) central merged it into another.

    A counter that had not heard of the merge still knew the old record: its charge or
    deposit landed on an account whose balance had moved to the survivor.  The remedy
    moves what the old record holds now (a debt, or money) to the survivor too.
    """
    p = tl.world.patient(tl.pid)
    if p is None or not p.merged_into:
        return []
    late = [f for f in tl.facts if f.at.order > p.merged_at and f.money.delta(tl.pid)
            and not isinstance(f.body, Merged)]
    if not late:
        return []
    survivor = p.merged_into
    first = late[0]
    cid = conflict_id("merged_record_used", tl.pid, first.event.id)
    balance = tl.world.balance(tl.pid)
    listed = "; ".join(f"{f.kind.name} {yuan(f.money.delta(tl.pid))} at {f.at.node} "
                       f"({_ref(f.event)})" for f in late)
    text = (f"{tl.pid} was merged into {survivor}, but {len(late)} payment(s) were made on"
            f" the old record afterwards by counters that did not know yet: {listed}. The old"
            f" record now holds {yuan(balance)}; its balance belongs to {survivor}.")
    remedies: list[RemedyOption] = []
    if balance:
        remedies.append(RemedyOption(
            "move", f"Move {yuan(balance)} to {survivor}",
            f"Moves the old record's {yuan(balance)} to {survivor}, where its money went.",
            (("patient.merged", {"conflict_id": cid, "survivor_id": survivor,
                                 "merged_id": tl.pid, "moved": balance, "cards": []}),)))
    charges = [f.body for f in late if isinstance(f.body, Charged)]
    if charges:
        remedies.append(RemedyOption(
            "reverse", "Reverse the late charge(s)",
            "Cancels " + ", ".join(f"{c.charge_id} ({yuan(c.amount)})" for c in charges)
            + ": the hospital writes them off.",
            tuple(("charge.reversed", {"conflict_id": cid, "charge_id": c.charge_id,
                                       "patient_id": tl.pid, "amount": c.amount})
                  for c in charges)))
    remedies.append(accept_remedy(cid, tl.pid, "Leaves both records as they are."))
    at_stake = sum(abs(f.money.delta(tl.pid)) for f in late)
    return [Conflict(
        cid, "merged_record_used", "high" if balance < 0 else "medium",
        f"Merged record used — {tl.pid}, {yuan(at_stake)}", text,
        tuple(f.event.id for f in late), (tl.pid, survivor), (),
        tuple(sorted({f.at.node for f in late})), at_stake, first.at.wall, tuple(remedies))]


def detect_double_cancel(tl: Timeline) -> list[Conflict]:
    """An order cancelled at two counters offline: what it charged given back twice."""
    placed: dict[str, Fact] = {}
    cancels: dict[str, list[Fact]] = {}
    for f in tl.facts:
        if isinstance(f.body, OrderPlaced):
            placed.setdefault(f.body.order_id, f)
        elif isinstance(f.body, OrderCancelled):
            cancels.setdefault(f.body.order_id, []).append(f)
    out = []
    orders = tl.orders()
    for order_id, cs in cancels.items():
        first = placed.get(order_id)
        if first is None:
            continue  # the order has not reached central yet
        charged = orders[order_id].charged  # when sent, and at check-in or dispensing
        total = sum(f.body.refund for f in cs)
        excess = total - charged
        if excess <= 0:
            continue
        cid = conflict_id("double_cancel", order_id)
        listed = "; ".join(f"{yuan(f.body.refund)} at {f.at.node} ({_ref(f.event)})"
                           for f in cs)
        text = (f"Order {order_id} of {tl.pid} charged {yuan(charged)}, but it was "
                f"cancelled {len(cs)} times by counters that did not know of each other: "
                f"{listed}. {yuan(excess)} too much went back to the deposit.")
        remedies = [RemedyOption(
            "debt", "Take the excess back",
            f"Debits {yuan(excess)} from {tl.pid}'s account (if it does not hold that much "
            "the patient owes the rest, collected at the next visit).",
            (("debt.recorded", {"conflict_id": cid, "patient_id": tl.pid, "amount": excess,
                                "debit": excess}),)),
            accept_remedy(cid, tl.pid, "The hospital bears the excess refund.")]
        out.append(Conflict(
            cid, "double_cancel", "high", f"Order cancelled twice {yuan(excess)} — {order_id}",
            text, (first.event.id, *(f.event.id for f in cs)), (tl.pid,), (),
            tuple(sorted({f.at.node for f in cs})), excess, cs[-1].at.wall, tuple(remedies)))
    return out


def detect_double_fee(tl: Timeline) -> list[Conflict]:
    """One visit's consultation fee charged at two counters offline (a doctor's station
    and another that did not know): the patient paid it twice."""
    fees: dict[str, list[Fact]] = {}
    returned: dict[str, int] = {}
    for f in tl.facts:
        if isinstance(f.body, FeeCharged):
            fees.setdefault(f.body.visit_id, []).append(f)
        elif isinstance(f.body, FeeReturned):
            returned[f.body.visit_id] = returned.get(f.body.visit_id, 0) + f.body.amount
    out = []
    for visit_id, fs in fees.items():
        if len(fs) < 2:
            continue
        excess = sum(f.body.amount for f in fs[1:])
        open_ = excess - returned.get(visit_id, 0)
        cid = conflict_id("double_fee", visit_id)
        listed = "; ".join(f"{yuan(f.body.amount)} at {f.at.node} ({_ref(f.event)})" for f in fs)
        text = (f"The consultation fee of visit {visit_id} ({tl.pid}) was charged "
                f"{len(fs)} times: {listed}. The patient paid {yuan(excess)} too much.")
        remedies = []
        if open_ > 0:
            remedies.append(RemedyOption(
                "return", f"Give {yuan(open_)} back",
                f"Returns {yuan(open_)} to {tl.pid}'s deposit (the second fee).",
                (("visit.fee_returned", {"conflict_id": cid, "visit_id": visit_id,
                                         "patient_id": tl.pid, "amount": open_}),)))
        remedies.append(accept_remedy(cid, tl.pid, "Leaves both fees charged."))
        out.append(Conflict(
            cid, "double_fee", "medium", f"Consultation fee charged twice {yuan(excess)} — "
            f"{visit_id}", text, tuple(f.event.id for f in fs), (tl.pid,), (),
            tuple(sorted({f.at.node for f in fs})), excess, fs[-1].at.wall, tuple(remedies)))
    return out


# -- executing orders (DOMAIN 3.8-3.10): what two offline windows or pharmacies did twice --


def _lines(lines: Iterable[Any]) -> str:
    return ", ".join(f"{x.code}×{x.qty}" for x in lines)


def _debts(tl: Timeline, cid: ConflictId) -> Fen:
    """The debts central already recorded under conflict ``cid``."""
    return int(sum(f.body.amount for f in tl.facts
                   if isinstance(f.body, DebtRecorded) and f.body.conflict_id == cid))


def _give_back(cid: ConflictId, tl: Timeline, order_id: str, amount: Fen
               ) -> tuple[str, dict[str, Any]]:
    return ("order.charge_returned", {"conflict_id": cid, "order_id": order_id,
                                      "patient_id": tl.pid, "amount": amount})


def detect_double_execution(tl: Timeline) -> list[Conflict]:
    """One lab or exam order checked in at two windows offline: only the first check-in
    should have happened, and when the hospital charges at execution each later one
    charged the order again."""
    out = []
    for order_id, of in tl.orders().items():
        if len(of.checkins) < 2:
            continue
        first, later = of.checkins[0], of.checkins[1:]
        excess = sum(f.body.charged for f in later)
        cid = conflict_id("double_execution", order_id)
        open_ = excess - of.back(cid)
        listed = "; ".join(
            f"at {f.at.node} ({_ref(f.event)}) queue {f.body.queue_tag}{f.body.queue_no}"
            + (f", specimen {f.body.specimen_id}" if f.body.specimen_id else "")
            + (f", charged {yuan(f.body.charged)}" if f.body.charged else ", no charge")
            for f in of.checkins)
        text = (f"Order {order_id} of {tl.pid} was checked in {len(of.checkins)} times by "
                f"windows that did not know of each other: {listed}. Only the first "
                f"({_ref(first.event)}) should have happened")
        text += (f"; the later check-in(s) charged {yuan(excess)} again." if excess else
                 "; no money was taken twice (the order was charged when it was sent), but "
                 "the patient holds more than one queue number or specimen label.")
        if of.executed:
            text += " Executed: " + "; ".join(f"{f.body.step} at {f.at.node} "
                                              f"({_ref(f.event)})" for f in of.executed) + "."
        remedies = []
        if open_ > 0:
            remedies.append(RemedyOption(
                "return", f"Give {yuan(open_)} back",
                f"Returns the later check-in's charge, {yuan(open_)}, to {tl.pid}'s deposit.",
                (_give_back(cid, tl, order_id, open_),)))
        remedies.append(accept_remedy(cid, tl.pid, "Leaves every check-in and charge as it "
                                                   "is (the order was done twice)."))
        events = (*(f.event.id for f in of.checkins), *(f.event.id for f in of.executed))
        out.append(Conflict(
            cid, "double_execution", "medium" if excess else "low",
            f"Order checked in twice {yuan(excess)} — {order_id}", text, events, (tl.pid,),
            (), tuple(sorted({f.at.node for f in (*of.checkins, *of.executed)})), excess,
            later[0].at.wall, tuple(remedies)))
    return out


def detect_double_dispense(tl: Timeline) -> list[Conflict]:
    """One prescription dispensed beyond what was ordered: two pharmacies dispensed it
    offline.  The drugs left the shelf (the stock figures are right); what is wrong is
    the money (a second charge, or drugs handed out that nobody paid for) and the record.
    """
    out = []
    for order_id, of in tl.orders().items():
        extras = of.extras()
        if not extras or of.placed is None:
            continue
        cid = conflict_id("double_dispense", order_id)
        value = sum(q * p for _, _, q, p in extras)
        charged = sum(q * p for f, _, q, p in extras if f.body.amount)
        unpaid = value - charged
        back = of.back(cid)
        charged_open = max(0, charged - back)
        unpaid_open = max(0, unpaid - _debts(tl, cid))
        listed = "; ".join(
            f"{f.body.pharmacy} ({_ref(f.event)}) {_lines(f.body.lines)}, "
            + (f"charged {yuan(f.body.amount)}" if f.body.amount else "no charge")
            for f in of.dispenses)
        by_place: dict[tuple[str, str], int] = {}
        for f, code, q, _ in extras:
            by_place[(f.body.pharmacy, code)] = by_place.get((f.body.pharmacy, code), 0) + q
        extra_txt = ", ".join(f"{code}×{q} at {ph}" for (ph, code), q in by_place.items())
        text = (f"Prescription {order_id} of {tl.pid} ordered "
                f"{_lines(of.placed.body.lines)}, but it was dispensed by pharmacies that did "
                f"not know of each other: {listed}. Handed out beyond the order: {extra_txt} "
                f"({yuan(value)}).")
        if charged:
            text += f" The patient was charged {yuan(charged)} for them."
        if unpaid:
            text += (f" {yuan(unpaid)} of them was not charged (the order was charged when "
                     "it was sent).")
        resolved = cid in tl.world.resolutions
        remedies = []
        if not resolved:
            bring = [("stock.corrected", {"conflict_id": cid, "pharmacy": ph, "code": code,
                                          "delta": q}) for (ph, code), q in by_place.items()]
            if charged_open:
                bring.append(_give_back(cid, tl, order_id, charged_open))
            remedies.append(RemedyOption(
                "bring_back", "The patient brings the extra back",
                f"Puts {extra_txt} back in stock"
                + (f" and returns {yuan(charged_open)} to {tl.pid}'s deposit"
                   if charged_open else "") + ".", tuple(bring)))
            if unpaid_open:
                remedies.append(RemedyOption(
                    "keep", f"The patient keeps them: charge {yuan(unpaid_open)}",
                    f"Debits {yuan(unpaid_open)} for the extra drugs from {tl.pid}'s account "
                    "(if it does not hold that much the patient owes the rest, collected at "
                    "the next visit).",
                    (("debt.recorded", {"conflict_id": cid, "patient_id": tl.pid,
                                        "amount": unpaid_open, "debit": unpaid_open}),)))
            elif charged_open:
                remedies.append(RemedyOption(
                    "write_off", f"Give {yuan(charged_open)} back, write the drugs off",
                    f"Returns the second charge, {yuan(charged_open)}, to {tl.pid}'s deposit;"
                    " the hospital bears the drugs (they left the shelf: the stock stays as "
                    "it is).", (_give_back(cid, tl, order_id, charged_open),)))
        remedies.append(accept_remedy(cid, tl.pid, "The patient keeps the drugs; the charges "
                                                   "stand as they are."))
        first_extra = extras[0][0]
        out.append(Conflict(
            cid, "double_dispense", "high" if unpaid else "medium",
            f"Prescription dispensed twice {yuan(value)} — {order_id}", text,
            (of.placed.event.id, *(f.event.id for f in of.dispenses)), (tl.pid,), (),
            tuple(sorted({f.at.node for f in of.dispenses})), value, first_extra.at.wall,
            tuple(remedies)))
    return out


def _executed_value(of: OrderFacts) -> Fen:
    """What the executed part of an order is worth: all of a lab or exam order once
    executed, the dispensed quantities (up to what was ordered) of a prescription."""
    assert of.placed is not None
    pb = of.placed.body
    if pb.type != "drug":
        return int(pb.total) if of.executed or of.dispenses else 0
    dispensed: dict[str, int] = {}
    for f in of.dispenses:
        for x in f.body.lines:
            dispensed[x.code] = dispensed.get(x.code, 0) + x.qty
    return sum(min(dispensed.get(x.code, 0), x.qty) * x.unit_price for x in pb.lines)


def _done(of: OrderFacts) -> str:
    return "; ".join(
        (f"dispensed {_lines(f.body.lines)} at {f.body.pharmacy}" if isinstance(
            f.body, Dispensed) else f"{f.body.step} at {f.at.node}") + f" ({_ref(f.event)})"
        for f in (*of.executed, *of.dispenses))


def detect_refund_after_execution(tl: Timeline) -> list[Conflict]:
    """An order cancelled (its charge refunded) at one counter while it was executed or
    dispensed at another offline: the patient got back money for what was done."""
    out = []
    for order_id, of in tl.orders().items():
        if of.placed is None or not of.cancels or not (of.executed or of.dispenses):
            continue
        refunds = sum(f.body.refund for f in of.cancels)
        # beyond what was charged is double_cancel's; beyond what was done was owed back
        amount = min(refunds, of.charged, _executed_value(of))
        if amount <= 0:
            continue
        cid = conflict_id("refund_after_execution", order_id)
        open_ = amount - _debts(tl, cid)
        cancels = "; ".join(f"at {f.at.node} ({_ref(f.event)}) refunding "
                            f"{yuan(f.body.refund)}" for f in of.cancels)
        text = (f"Order {order_id} of {tl.pid} was cancelled {cancels}, while counters that "
                f"did not know had already done it: {_done(of)}. {yuan(amount)} went back to "
                "the deposit for what was done; the order reads cancelled on every counter.")
        remedies = []
        if open_ > 0:
            remedies.append(RemedyOption(
                "debt", "Take the refund back",
                f"Debits {yuan(open_)} from {tl.pid}'s account for what was done (if it does "
                "not hold that much the patient owes the rest, collected at the next visit).",
                (("debt.recorded", {"conflict_id": cid, "patient_id": tl.pid,
                                    "amount": open_, "debit": open_}),)))
        remedies.append(accept_remedy(cid, tl.pid, "The hospital bears the refund."))
        done = [*of.executed, *of.dispenses]
        out.append(Conflict(
            cid, "refund_after_execution", "high",
            f"Refund of an executed order {yuan(amount)} — {order_id}", text,
            (*(f.event.id for f in of.cancels), *(f.event.id for f in done)), (tl.pid,), (),
            tuple(sorted({f.at.node for f in (*of.cancels, *done)})), amount,
            max(f.at.wall for f in (*of.cancels, *done)), tuple(remedies)))
    return out


def detect_charge_after_cancel(tl: Timeline) -> list[Conflict]:
    """A check-in or dispensing charged an order cancelled elsewhere: the cancel gave back
    what it knew of, the later charge was never refunded.  (A second check-in's or
    dispensing's charge is double_execution's or double_dispense's, not counted here.)"""
    out = []
    for order_id, of in tl.orders().items():
        if of.placed is None or not of.cancels:
            continue
        extra = {(f.event.id, code): q * p for f, code, q, p in of.extras() if f.body.amount}
        counted_checkins = of.checkins[:1]
        charges: list[tuple[Fact, Fen]] = [
            (f, f.body.charged) for f in counted_checkins if f.body.charged]
        for f in of.dispenses:
            if f.body.amount:
                own = f.body.amount - sum(v for (eid, _), v in extra.items()
                                          if eid == f.event.id)
                if own > 0:
                    charges.append((f, own))
        if not charges:
            continue
        counted = of.placed.body.charged + sum(a for _, a in charges)
        refunded = (sum(f.body.refund for f in of.cancels)
                    + sum(f.body.refund for f in of.returns))
        stake = counted - refunded
        if stake <= 0:
            continue
        cid = conflict_id("charge_after_cancel", order_id)
        open_ = stake - of.back(cid)
        cancels = "; ".join(f"at {f.at.node} ({_ref(f.event)}) refunding "
                            f"{yuan(f.body.refund)}" for f in of.cancels)
        listed = "; ".join(f"{f.kind.name} at {f.at.node} ({_ref(f.event)}) {yuan(a)}"
                           for f, a in charges)
        text = (f"Order {order_id} of {tl.pid} was cancelled {cancels}, but counters that "
                f"did not know charged it: {listed}. {yuan(stake)} charged for the cancelled "
                "order was never given back.")
        if of.executed or of.dispenses:
            text += (f" It was done, though: {_done(of)} — if the patient had it, the charge "
                     "is right: accept.")
        remedies = []
        if open_ > 0:
            remedies.append(RemedyOption(
                "return", f"Give {yuan(open_)} back",
                f"Returns the charge for the cancelled order, {yuan(open_)}, to {tl.pid}'s "
                "deposit.", (_give_back(cid, tl, order_id, open_),)))
        remedies.append(accept_remedy(cid, tl.pid, "The charge stands (the order was done "
                                                   "after all)."))
        facts = [*of.cancels, *(f for f, _ in charges)]
        out.append(Conflict(
            cid, "charge_after_cancel", "medium",
            f"Charge for a cancelled order {yuan(stake)} — {order_id}", text,
            tuple(f.event.id for f in facts), (tl.pid,), (),
            tuple(sorted({f.at.node for f in facts})), stake,
            max(f.at.wall for f in facts), tuple(remedies)))
    return out


def detect_offline_overrun(tl: Timeline) -> list[Conflict]:
    """A counter's offline run that charged this account past the offline limits.

    A counter charging offline under limits records the run in each charging event
    (``offline_from``: its first own seq central had not acknowledged, so one run of one
    counter is one ``(node, offline_from)``).  Per run and account, in the counter's seq
    order, a charge above the floor limit, or one that takes what the run charged the
    account past the cap, is an overrun — by the limits central had published before
    the run began (:meth:`Reconciler.limits_at`).  One conflict per run and account,
    approved or not: low severity when a supervisor approved every overrun (named),
    medium when one was not (a counter without the rule, or limits it had not heard
    of).  The money, if the account went below zero, is the overdraft's.
    """
    runs: dict[tuple[str, int], list[tuple[Fact, Fen]]] = {}
    for f in tl.facts:
        mark = getattr(f.body, "offline_from", 0)
        if type(mark) is not int or mark <= 0 or f.money.flow != "charge":
            continue
        taken = -f.money.delta(tl.pid)
        if taken > 0:
            runs.setdefault((f.at.node, mark), []).append((f, taken))
    out = []
    for (node, mark), facts in sorted(runs.items()):
        facts.sort(key=lambda ft: ft[0].at.seq)
        floor, cap = tl.world.limits_at(facts[0][0].at.order)
        if not (floor or cap):
            continue
        total, over = 0, []
        for f, taken in facts:
            total += taken
            if (floor and taken > floor) or (cap and total > cap):
                over.append((f, taken))
        if not over:
            continue
        cid = conflict_id("offline_overrun", node, mark, tl.pid)
        approvers = sorted({str(getattr(f.body, "supervisor", "")) for f, _ in over} - {""})
        unapproved = [f for f, _ in over if not getattr(f.body, "supervisor", "")]
        listed = "; ".join(f"{_what(f)} {yuan(t)} ({_ref(f.event)}"
                           + (f", approved by {f.body.supervisor})" if f.body.supervisor
                              else ", NOT approved)") for f, t in over)
        limits = ", ".join(x for x in (f"floor {yuan(floor)}" if floor else "",
                                       f"cap {yuan(cap)}" if cap else "") if x)
        text = (f"Counter {node} charged {tl.pid} {yuan(total)} while offline (its events "
                f"from #{mark} on, before central acknowledged them), past the offline "
                f"limits ({limits}): {listed}.")
        text += (f" {len(unapproved)} went past without a supervisor: check that counter's "
                 "software and limits." if unapproved else
                 f" Approved at the counter by {', '.join(approvers)}.")
        out.append(Conflict(
            cid, "offline_overrun", "medium" if unapproved else "low",
            f"Offline overrun {yuan(total)} at {node} — {tl.pid}", text,
            tuple(f.event.id for f, _ in over), (tl.pid,), (), (node,), total,
            over[0][0].at.wall,
            (accept_remedy(cid, None, "Marks it reviewed (the money, if the account went "
                                      "below zero, is the overdraft conflict's)."),)))
    return out


PATIENT_DETECTORS: list[Detector] = [
    detect_overdraft,
    detect_lost_card_used,
    detect_double_replacement,
    detect_over_refund,
    detect_double_settlement,
    detect_merged_record_used,
    detect_double_cancel,
    detect_double_fee,
    detect_double_execution,
    detect_double_dispense,
    detect_refund_after_execution,
    detect_charge_after_cancel,
    detect_offline_overrun,
]


# -- stock: a pharmacy's figures, not a patient's ------------------------------------------

StockKey = tuple[str, str]  # (pharmacy, code)
#: the most events a stock conflict lists (the one that last raised the stock, then the
#: latest): a busy item's history is long, the dip is at its end
MAX_STOCK_EVENTS = 40


def _stock_what(f: Fact, key: StockKey) -> str:
    b = f.body
    if isinstance(b, Dispensed):
        return f"dispensed for {b.order_id}"
    if f.kind.name == "stock.transferred":
        return (f"transfer to {b.to_pharmacy}" if b.from_pharmacy == key[0]
                else f"transfer from {b.from_pharmacy}")
    if f.kind.name == "stock.adjusted":
        return f"adjusted ({b.reason})"
    return f.kind.name.split(".")[-1]


def detect_stock_below_zero(key: StockKey, facts: Sequence[Fact], world: Reconciler
                            ) -> list[Conflict]:
    """A pharmacy's stock of an item below zero once everything is merged: two offline
    pharmacies (or a dispensing and a transfer) took what only one of them could, or a
    receipt was not recorded.  A receipt arriving later that lifts it to zero or more
    makes it no conflict (withdrawn).

    The events listed are those since the last one that raised the stock before it went
    below zero for good, in merge order; the id is the item and that event, which events
    arriving later at the end of the history do not change.
    """
    s = world.state.get(Stock, key)
    if s is None or s.on_hand >= 0:
        return []
    pharmacy, code = key
    state = State()
    rows: list[tuple[Fact, int, int]] = []  # fact, change, on hand after it
    was = 0
    for f in facts:
        world.registry.apply_fact(state, f)
        st = state.get(Stock, key)
        now = st.on_hand if st is not None else 0
        rows.append((f, now - was, now))
        was = now
    if was >= 0:
        return []  # (cannot be: the same facts as the state) — nothing to say
    last_ok = max((i for i, (_, _, v) in enumerate(rows) if v >= 0), default=-1)
    anchor = max((i for i, (_, d, _) in enumerate(rows[:last_ok + 1]) if d > 0), default=-1)
    listed = rows[max(anchor, 0):]
    skipped = 0
    if len(listed) > MAX_STOCK_EVENTS:
        skipped = len(listed) - MAX_STOCK_EVENTS
        listed = listed[:1] + listed[-(MAX_STOCK_EVENTS - 1):]
    cid = conflict_id("stock_below_zero", pharmacy, code,
                      rows[anchor][0].event.id if anchor >= 0 else "start")
    story = "; ".join(f"{_stock_what(f, key)} {d:+d} at {f.at.node} ({_ref(f.event)}) → {v}"
                      for f, d, v in listed)
    if skipped:
        story += f" ({skipped} more events in between not listed)"
    text = (f"Pharmacy {pharmacy} holds {was} of {code} once every counter's events are "
            f"merged: {story}. A counter never takes stock below zero as it knows it, so "
            "these were done without knowing of each other, or a receipt was not recorded. "
            "Count the shelf: if it holds more, correct the stock.")
    remedies = (RemedyOption(
        "correct", f"Correct the stock to 0 (+{-was})",
        f"Records +{-was} of {code} at {pharmacy} (a count found them, or a receipt was not "
        "recorded): the stock reads 0 on every counter.",
        (("stock.corrected", {"conflict_id": cid, "pharmacy": pharmacy, "code": code,
                              "delta": -was}),)),
        accept_remedy(cid, None, "Leaves the stock below zero until the next receipt or "
                                 "count."))
    first_below = rows[last_ok + 1][0]
    return [Conflict(
        cid, "stock_below_zero", "medium", f"Stock below zero — {pharmacy} {code} {was}",
        text, tuple(f.event.id for f, _, _ in listed), (), (),
        tuple(sorted({f.at.node for f, _, _ in listed})), 0, first_below.at.wall, remedies)]


MAX_LIKELY_GROUP = 5


def detect_duplicates(pids: Iterable[PatientId], world: Reconciler, *, strong: bool,
                      key: str) -> list[Conflict]:
    """Patients sharing a national ID (strong) or name + birth date + phone (likely).

    More than ``MAX_LIKELY_GROUP`` records sharing a name, birth date and phone are not
    one person but a placeholder identity (an unknown patient registered with the ward's
    phone, say): not a likely duplicate, and not worth re-sorting on every batch.
    """
    if not strong:
        pids = list(pids)
        if len(pids) > MAX_LIKELY_GROUP:
            return []
    # a record already merged into another is that person's past, not a duplicate of it
    live: list[Patient] = sorted(
        (p for p in (world.patient(pid) for pid in pids)
         if p is not None and p.registered_at and not p.merged_into),
        key=lambda p: (p.registered_ms, p.patient_id))
    if strong:
        live = [p for p in live if id_key(p)]
    else:  # two different ID numbers are two different people
        ids = {id_key(p) for p in live if id_key(p)}
        if len(ids) > 1 or all(id_key(p) for p in live):
            return []  # different ID numbers: different people; all the same: the strong one
    if len(live) < 2:
        return []
    kind = "duplicate_patient" if strong else "likely_duplicate"
    cid = conflict_id(kind, *sorted(p.patient_id for p in live))
    survivor, others = live[0], live[1:]
    listed = "; ".join(f"{p.patient_id} at {p.registered_node}" for p in live)
    if strong:
        text = (f"The same national ID number{_shown(key)} was registered {len(live)} times: "
                f"{listed}. They are one person; merge the later records into "
                f"{survivor.patient_id}.")
    else:
        text = (f"One name, born {survivor.birth_date}, with the same phone, was "
                f"registered {len(live)} times: {listed}. Probably one person: check an ID "
                "document before merging.")
    moves = []
    effect = []
    for p in others:
        moved = world.balance(p.patient_id)
        cards = sorted(world.cards_of(p.patient_id))
        moves.append(("patient.merged", {"conflict_id": cid, "survivor_id": survivor.patient_id,
                                         "merged_id": p.patient_id, "moved": moved,
                                         "cards": cards}))
        effect.append(f"{p.patient_id} ({yuan(moved)}, cards {', '.join(cards) or '-'})")
    remedies = (RemedyOption(
        "merge", f"Merge into {survivor.patient_id}",
        f"Merges {'; '.join(effect)} into {survivor.patient_id}: the balance and cards move "
        "there and the old record points to it on every counter.", tuple(moves)),
        accept_remedy(cid, None, "Keeps the records apart (they are different people)."))
    return [Conflict(
        cid, kind, "medium" if strong else "low",
        f"{'Duplicate' if strong else 'Possible duplicate'} patient — {survivor.patient_id}",
        text,
        tuple((p.registered_node, p.registered_seq) for p in live),
        tuple(p.patient_id for p in live), (), tuple(sorted({p.registered_node for p in live})),
        0, live[-1].registered_ms, remedies)]


def _shown(key: str) -> str:
    """A legacy clear ID number, masked, for the conflict's text; a sealed one's key is its
    keyed tag, which says nothing (the console opens the records themselves)."""
    if not key.startswith("c:"):
        return ""
    nid = key[2:]
    return " (" + (nid[:4] + "*" * (len(nid) - 8) + nid[-4:] if len(nid) > 8 else "****") + ")"


def id_key(p: Patient | Registered | Updated) -> str:
    """What two records of one ID number share: the keyed tag of a sealed number (the
    sealed texts differ: each has its own nonce), or a legacy ledger's clear number."""
    if p.id_tag:
        return "t:" + p.id_tag
    return "c:" + p.national_id if p.national_id and not is_sealed(p.national_id) else ""


def name_key(p: Patient) -> str:
    """The same for the name: its keyed tag (normalised; the sealed texts differ), or a
    legacy ledger's clear name."""
    if p.name_tag:
        return "t:" + p.name_tag
    return "c:" + p.name if p.name and not is_sealed(p.name) else ""


def phone_key(p: Patient) -> str:
    """The same for the phone (its whole number's tag, not its last four digits')."""
    if p.phone_tag:
        return "t:" + p.phone_tag.split(" ", 1)[0]
    return "c:" + p.phone if p.phone and not is_sealed(p.phone) else ""


# ---------------------------------------------------------------------------- reconciler

Identity = tuple[str, str, str]  # name, birth date, phone: a likely-duplicate key


class Reconciler:
    """Everything central holds, folded by the registry like every counter's ledger, and
    merged per patient in the one order; detectors re-run per touched patient."""

    def __init__(self, config: ReconcileConfig = ReconcileConfig(),
                 registry: Registry = REGISTRY) -> None:
        self.config = config
        self.registry = registry
        #: the same projections as every counter's, by the same fold
        self.state = State()
        self.timelines: dict[PatientId, list[tuple[str, Fact]]] = {}
        #: per (pharmacy, code): the facts that moved its stock, in merge order
        self.stocks: dict[StockKey, list[tuple[str, Fact]]] = {}
        self._merged_into: dict[PatientId, set[PatientId]] = {}  # survivor → merged records
        self._cards_by_patient: dict[PatientId, set[str]] = {}
        self._card_owner: dict[str, PatientId] = {}
        self._identity: dict[PatientId, tuple[str, Identity | None]] = {}
        self.by_national_id: dict[str, set[PatientId]] = {}
        self.by_identity: dict[Identity, set[PatientId]] = {}
        self.revoked: dict[str, int] = {}
        #: central's offline limits as published: (merge order, floor, cap), in order
        self.limits: list[tuple[str, Fen, Fen]] = []
        #: patients charged offline under limits: checked again when limits arrive late
        self._charged_offline: set[PatientId] = set()
        self.resolutions: dict[ConflictId, Resolution] = {}
        #: skip an event fed twice (off when the feeder dedupes, by cursor position)
        self.track_seen = True
        self.seen: set[EventId] = set()
        self._emitted: dict[str, set[ConflictId]] = {}  # scope -> ids last found there
        self._skew_run: dict[str, int] = {}  # node -> first seq of its current skewed run
        self.count = 0
        self.unknown = 0  # events of kinds this version does not know (kept, not folded)
        #: accounts whose balance or credit a fact may have changed since the caller
        #: last took them (:meth:`take_dirty_accounts`): central keeps them in its store
        self.dirty_accounts: set[PatientId] = set()

    # -- queries -------------------------------------------------------------------------
    def patient(self, pid: PatientId) -> Patient | None:
        return self.state.get(Patient, pid)

    def patients(self) -> list[Patient]:
        return self.state.all(Patient)

    def account(self, pid: PatientId) -> Account:
        return self.state.get_or_new(Account, pid)

    def balance(self, pid: PatientId) -> Fen:
        return self.account(pid).balance

    def card(self, card_no: str) -> Card | None:
        return self.state.get(Card, card_no)

    def cards_of(self, pid: PatientId) -> set[str]:
        return set(self._cards_by_patient.get(pid, ()))

    def timeline(self, pid: PatientId) -> Timeline:
        return Timeline(pid, [f for _, f in self.timelines.get(pid, [])], self)

    def family(self, pid: PatientId) -> frozenset[PatientId]:
        """``pid`` and every record merged into it (directly or through another)."""
        out, todo = {pid}, [pid]
        while todo:
            for m in self._merged_into.get(todo.pop(), ()):
                if m not in out:
                    out.add(m)
                    todo.append(m)
        return frozenset(out)

    def person_timeline(self, pid: PatientId) -> Timeline:
        """A patient's events with those of the records merged into it, in merge order,
        with the person's running balance (money moved by the merge nets to nothing)."""
        family = self.family(pid)
        seen: dict[EventId, tuple[str, Fact]] = {}
        for p in family:
            for key, f in self.timelines.get(p, []):
                seen[f.event.id] = (key, f)
        ordered = [f for _, f in sorted(seen.values(), key=lambda kf: kf[0])]
        return Timeline(pid, ordered, self, family)

    def limits_at(self, order: str) -> tuple[Fen, Fen]:
        """The (floor, cap) central had published before merge order ``order``
        ((0, 0): none)."""
        i = bisect.bisect_left(self.limits, (order,))
        return (self.limits[i - 1][1], self.limits[i - 1][2]) if i else (0, 0)

    def take_dirty_accounts(self) -> list[Account]:
        """The accounts changed since the last call, as folded now (and forget them)."""
        out = [self.account(pid) for pid in sorted(self.dirty_accounts)]
        self.dirty_accounts = set()
        return out

    # -- input ---------------------------------------------------------------------------
    def set_revoked(self, revoked: dict[str, int]) -> Report:
        """Nodes revoked and when (ms): events they signed after that are flagged."""
        self.revoked = dict(revoked)
        rep = Report()
        for tl in self.timelines.values():
            for _, f in tl:
                c = self._revoked_check(f.event)
                if c:
                    rep.conflicts.append(c)
        return rep

    def report_integrity(self, reports: Iterable[IntegrityReport]) -> Report:
        rep = Report()
        for r in reports:
            if r.kind == "malformed_event":
                cid = conflict_id(r.kind, r.node, r.seq, r.offered)
                rep.conflicts.append(Conflict(
                    cid, r.kind, "high", f"Malformed event refused — {r.node} #{r.seq}",
                    f"Node {r.node} signed an event central cannot accept ({r.message}). It "
                    "was refused at push, never stored or relayed, and is kept as evidence; "
                    "the node cannot sync its later work until it is fixed. Check that "
                    "node's software version and key.", ((r.node, r.seq),), nodes=(r.node,),
                    wall_ms=r.wall_ms, remedies=(accept_remedy(cid, None, "Marks it reviewed."),)))
                continue
            if r.kind == "stale_key":
                cid = conflict_id(r.kind, r.node, r.seq, r.offered)
                rep.conflicts.append(Conflict(
                    cid, r.kind, "high", f"Stale key — {r.node} #{r.seq}",
                    f"Node {r.node} pushed an event signed with a key that is not valid at "
                    f"that seq ({r.message}): an old key after a rotation, or a key past "
                    "the node's revocation. It was refused, never stored or relayed, and is "
                    "kept as evidence. If the counter kept signing with its old key, install "
                    "its new one (onecard-edge rotate-key); otherwise the old key may be in "
                    "the wrong hands: check the machine and revoke it.",
                    ((r.node, r.seq),), nodes=(r.node,), wall_ms=r.wall_ms,
                    remedies=(accept_remedy(cid, None, "Marks it reviewed."),)))
                continue
            cid = conflict_id(r.kind, r.node, r.seq)
            what = ("offered a different event at a position central already holds: it "
                    "signed two histories (a cloned key or a restored disk). The offered event "
                    "is quarantined, never merged." if r.kind == "equivocation" else
                    "sent an event that does not continue its hash chain; nothing was stored.")
            rep.conflicts.append(Conflict(
                cid, r.kind, "high", f"{r.kind.replace('_', ' ').capitalize()} — {r.node}",
                f"Node {r.node} {what} Seq {r.seq}: {r.message}. Check the machine before it "
                "syncs again (revoke and re-enrol it if its key may be copied).",
                ((r.node, r.seq),), nodes=(r.node,), wall_ms=r.wall_ms,
                remedies=(accept_remedy(cid, None, "Marks it reviewed."),)))
        return rep

    def add(self, batch: Iterable[Incoming | Event]) -> Report:
        """Merge a batch of stored events; return the conflicts of every scope it touched.

        Never raises for what an event holds: a bad body is a conflict, a kind this
        version does not know is counted and kept out, and a failure while folding one
        event or checking one scope is logged with the event or scope and raised as a
        ``reconcile_error`` conflict while the rest of the batch goes on.
        """
        work = self.begin(batch)
        self.fold(work)
        self.plan(work)
        return self.detect(work)

    def begin(self, batch: Iterable[Incoming | Event]) -> Work:
        """Step 1: decode the batch (events seen before are skipped)."""
        work = Work()
        for item in batch:
            inc = item if isinstance(item, Incoming) else Incoming(item, 0)
            ev = inc.event
            if self.track_seen:
                if ev.id in self.seen:
                    continue
                self.seen.add(ev.id)
            self.count += 1
            try:
                work.items.append((inc, self.registry.decode(ev)))
            except Exception as exc:
                log.exception("decoding %s #%d (%s) failed", ev.node, ev.seq, ev.kind)
                work.rep.conflicts.append(_reconcile_error(f"e:{ev.node}:{ev.seq}", (ev.id,),
                                                           (ev.node,), ev.hlc.wall, exc))
        return work

    def fold(self, work: Work) -> None:
        """Step 2: fold every decoded event into the state, timelines and indexes."""
        for inc, d in work.items:
            ev = inc.event
            try:
                self._add_one(inc, d, work)
            except Exception as exc:
                log.exception("reconciling %s #%d (%s) failed", ev.node, ev.seq, ev.kind)
                work.rep.conflicts.append(_reconcile_error(f"e:{ev.node}:{ev.seq}", (ev.id,),
                                                           (ev.node,), ev.hlc.wall, exc))

    def plan(self, work: Work) -> None:
        """Step 3: the identities to check again: those of the patients the batch touched
        that are shared (a duplicate's merge remedy carries its balance and cards)."""
        for pid in work.dirty:
            nid, person = self._identity.get(pid, ("", None))
            if nid and len(self.by_national_id.get(nid, ())) > 1:
                work.dirty_ids.add(nid)
            if person is not None and len(self.by_identity.get(person, ())) > 1:
                work.dirty_people.add(person)

    def scopes(self, work: Work) -> list[str]:
        """The detection scopes step 4 runs, by name."""
        return ([f"p:{pid}" for pid in sorted(work.dirty)]
                + [f"n:{nid}" for nid in sorted(work.dirty_ids)]
                + [f"i:{person}" for person in sorted(work.dirty_people)]
                + [stock_scope(sk) for sk in sorted(work.dirty_stock)])

    def detect(self, work: Work) -> Report:
        """Step 4: run the detectors of every scope the batch touched."""
        rep = work.rep
        for pid in sorted(work.dirty):
            timeline = self.timeline(pid)
            self._scope(f"p:{pid}", lambda tl=timeline: [  # type: ignore[misc]
                c for det in PATIENT_DETECTORS for c in det(tl)], rep)
        for nid in sorted(work.dirty_ids):
            self._scope(f"n:{nid}", lambda nid=nid: detect_duplicates(  # type: ignore[misc]
                self.by_national_id.get(nid, ()), self, strong=True, key=nid), rep)
        for person in sorted(work.dirty_people):
            self._scope(f"i:{person}", lambda person=person: detect_duplicates(  # type: ignore
                self.by_identity.get(person, ()), self, strong=False, key=""), rep)
        for sk in sorted(work.dirty_stock):
            self._scope(stock_scope(sk), lambda sk=sk: (  # type: ignore[misc]
                detect_stock_below_zero(sk, [f for _, f in self.stocks.get(sk, [])], self)),
                rep)
        return rep

    def _add_one(self, inc: Incoming, d: Any, work: Work) -> None:
        ev, rep, dirty = inc.event, work.rep, work.dirty
        if isinstance(d, Unknown):
            self.unknown += 1  # a newer counter's kind: kept, folded after central's upgrade
            return
        if isinstance(d, Invalid):
            rep.conflicts.append(self._malformed(d))
            return  # never let a malformed body into a timeline
        for c in (self._skew_check(ev, inc.received_ms), self._revoked_check(ev)):
            if c:
                rep.conflicts.append(c)
        cid = getattr(d.body, "conflict_id", None)
        if ev.node == CENTRAL and cid and ev.kind not in ANNOUNCEMENTS:
            res = Resolution(cid, ev.id, ev.kind, ev.operator,
                             str(getattr(d.body, "reason", "")), ev.hlc.wall)
            self.resolutions.setdefault(res.conflict_id, res)
            rep.resolutions.append(res)
        if ev.kind in ANNOUNCEMENTS:
            return  # central's notices of a conflict's state: for counters, not resolutions
        self.registry.apply_fact(self.state, d)
        if isinstance(d.body, LimitsSet):
            bisect.insort(self.limits, (d.at.order, d.body.floor, d.body.cap))
            dirty.update(self._charged_offline)
            work.limits_changed = True
        elif getattr(d.body, "offline_from", 0):
            self._charged_offline.update(d.patients)
        self.dirty_accounts.update(str(k) for rt, k in d.records if rt is Account)
        self.dirty_accounts.update(pid for pid, _ in d.money.deltas)
        self._reindex(d.records, work.dirty_ids, work.dirty_people)
        order = d.at.order
        for pid in d.patients:
            bisect.insort(self.timelines.setdefault(pid, []), (order, d), key=lambda x: x[0])
            dirty.add(pid)
            work.placed.append((f"p:{pid}", order, inc))
        for sk in stock_keys(d):  # a pharmacy's stock is a scope of its own
            bisect.insort(self.stocks.setdefault(sk, []), (order, d), key=lambda x: x[0])
            work.dirty_stock.add(sk)
            work.placed.append((stock_scope(sk), order, inc))

    def _scope(self, scope: str, detect: Callable[[], list[Conflict]], rep: Report) -> None:
        try:
            found = detect()
        except Exception as exc:  # a detector bug: say so, keep what was found before
            log.exception("conflict detection for %s failed", scope)
            rep.conflicts.append(_reconcile_error(scope, (), (), 0, exc))
            return
        ids = {c.id for c in found}
        rep.withdrawn += sorted(self._emitted.get(scope, set()) - ids)
        self._emitted[scope] = ids
        rep.conflicts += found

    def _reindex(self, touched: frozenset[tuple[type[Any], Key]], dirty_ids: set[str],
                 dirty_people: set[Identity]) -> None:
        """Keep the lookup indexes level with the records a fact changed."""
        for rt, key in touched:
            if rt is Patient:
                self._index_patient(str(key), dirty_ids, dirty_people)
            elif rt is Card:
                c = self.state.get(Card, key)
                if c is not None and self._card_owner.get(c.card_no) != c.patient_id:
                    old = self._card_owner.get(c.card_no)
                    if old is not None:
                        self._cards_by_patient.get(old, set()).discard(c.card_no)
                    self._card_owner[c.card_no] = c.patient_id
                    self._cards_by_patient.setdefault(c.patient_id, set()).add(c.card_no)

    def _index_patient(self, pid: PatientId, dirty_ids: set[str],
                       dirty_people: set[Identity]) -> None:
        p = self.state.get(Patient, pid)
        if p is None:
            return
        if p.merged_into:
            self._merged_into.setdefault(p.merged_into, set()).add(pid)
        nid = id_key(p) if p.registered_at else ""
        phone = phone_key(p)
        name = name_key(p)
        person = (name, p.birth_date, phone) if p.registered_at and phone and name else None
        old_nid, old_person = self._identity.get(pid, ("", None))
        if (nid, person) == (old_nid, old_person):
            return
        if old_nid:
            self.by_national_id.get(old_nid, set()).discard(pid)
            dirty_ids.add(old_nid)
        if old_person is not None:
            self.by_identity.get(old_person, set()).discard(pid)
            dirty_people.add(old_person)
        if nid:
            self.by_national_id.setdefault(nid, set()).add(pid)
            dirty_ids.add(nid)
        if person is not None:
            self.by_identity.setdefault(person, set()).add(pid)
            dirty_people.add(person)
        self._identity[pid] = (nid, person)

    def _malformed(self, d: Invalid) -> Conflict:
        ev = d.event
        cid = conflict_id("malformed_event", ev.node, ev.seq, ev.hash().hex())
        why = "; ".join(p.message for p in d.problems[:5])
        return Conflict(
            cid, "malformed_event", "high", f"Malformed event — {ev.node} #{ev.seq}",
            f"Node {ev.node} signed an event central cannot merge ({ev.kind}: {why}). It is "
            "kept but folded nowhere: every counter and central skip it. Check that node's "
            "software version and key.", (ev.id,), nodes=(ev.node,), wall_ms=ev.hlc.wall,
            remedies=(accept_remedy(cid, None, "Marks it reviewed."),))

    def _skew_check(self, ev: Event, received_ms: int) -> Conflict | None:
        """A stamp further ahead of central's clock than ``max_skew_ms`` (whatever its
        counter: counters never adopt such a stamp, so an honest one never carries it)."""
        ahead = ev.hlc.wall - received_ms
        if ev.node == CENTRAL or received_ms <= 0 or ahead <= self.config.max_skew_ms:
            if ev.node in self._skew_run and received_ms > 0 and ahead <= 0:
                del self._skew_run[ev.node]  # the clock is right again: a new run may start
            return None
        first = self._skew_run.setdefault(ev.node, ev.seq)
        cid = conflict_id("clock_skew", ev.node, first)
        return Conflict(
            cid, "clock_skew", "medium", f"Clock skew — {ev.node} {ahead // 1000} s ahead",
            f"Node {ev.node}'s clock was {ahead // 1000} s ahead of central's when it signed "
            f"seq {ev.seq} (limit {self.config.max_skew_ms // 1000} s). Its events sort too "
            "late in the merge order and no counter adopts its clock; set its clock (NTP) "
            "and check its recent work.",
            (ev.id,), nodes=(ev.node,), wall_ms=received_ms,
            remedies=(accept_remedy(cid, None, "Marks it reviewed once the clock is fixed."),))

    def _revoked_check(self, ev: Event) -> Conflict | None:
        at = self.revoked.get(ev.node)
        if at is None or ev.hlc.wall < at:
            return None
        cid = conflict_id("revoked_node", ev.node)
        return Conflict(
            cid, "revoked_node", "high", f"Events from revoked node {ev.node}",
            f"Node {ev.node} was revoked, yet central holds events it signed afterwards "
            f"(first: seq {ev.seq}, {ev.kind}). Its key may be in the wrong hands.",
            (ev.id,), nodes=(ev.node,), wall_ms=ev.hlc.wall,
            remedies=(accept_remedy(cid, None, "Marks it reviewed."),))


def stock_keys(d: Any) -> list[StockKey]:
    """The (pharmacy, code) stocks a fact moves."""
    return [(str(key[0]), str(key[1])) for rt, key in d.records
            if rt is Stock and isinstance(key, tuple) and len(key) == 2]


def stock_scope(sk: StockKey) -> str:
    return f"s:{sk[0]}\x1f{sk[1]}"


def _reconcile_error(scope: str, events: tuple[EventId, ...], nodes: tuple[str, ...],
                     wall_ms: int, exc: Exception) -> Conflict:
    cid = conflict_id("reconcile_error", scope)
    return Conflict(
        cid, "reconcile_error", "high", f"Reconciler failed — {scope}",
        f"Central could not reconcile {scope}: {type(exc).__name__}: {exc}. The event is "
        "stored and synced; conflicts it may cause are not detected until this is fixed "
        "(the server log has the details). Report it to the onecard developers.",
        events, nodes=nodes, wall_ms=wall_ms,
        remedies=(accept_remedy(cid, None, "Marks it reviewed."),))


def reconcile(events: Iterable[Event], config: ReconcileConfig = ReconcileConfig()
              ) -> list[Conflict]:
    """Every conflict in ``events`` at once (tests, audits): one batch, deduplicated."""
    rep = Reconciler(config).add(events)
    return list({c.id: c for c in rep.conflicts}.values())
