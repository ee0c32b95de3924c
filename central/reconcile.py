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

Remedies are events central signs (:mod:`protocol.remedies`); each carries the
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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from protocol import kinds
from protocol.event import CENTRAL, Event, EventId
from protocol.money import yuan
from protocol.remedies import ANNOUNCEMENTS, CENTRAL_KINDS, balance_delta, family

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
    "equivocation",
    "chain_break",
    "revoked_node",
    "clock_skew",
    "malformed_event",
)


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

    kind: str  # "equivocation" | "chain_break"
    node: str
    seq: int
    message: str
    wall_ms: int = 0


@dataclass(frozen=True, slots=True)
class Incoming:
    event: Event
    received_ms: int = 0


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
class PatientInfo:
    patient_id: PatientId
    name: str = ""
    birth_date: str = ""
    phone: str = ""
    national_id: str = ""
    node: str = ""
    registered: EventId | None = None
    wall_ms: int = 0
    merged_into: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """One event of a patient's timeline with the balance after it (merge order)."""

    event: Event
    delta: Fen
    balance: Fen


class Timeline:
    """One patient's events in merge order, and what the detectors ask of them."""

    def __init__(self, pid: PatientId, events: Sequence[Event], world: Reconciler,
                 family: frozenset[PatientId] = frozenset()) -> None:
        self.pid = pid
        self.events = events
        self.world = world
        #: the records whose money counts: ``pid`` and, in a person's view, those merged in
        self.family = family or frozenset({pid})

    @property
    def name(self) -> str:
        info = self.world.patients.get(self.pid)
        return info.name if info and info.name else self.pid

    def who(self) -> str:
        return f"{self.name} ({self.pid})"

    def steps(self) -> list[Step]:
        """The running balance after each event (what the account held, in merge order)."""
        out, bal = [], 0
        for ev in self.events:
            d = sum(balance_delta(ev, p) for p in self.family)
            bal += d
            out.append(Step(ev, d, bal))
        return out


def _patients_of(ev: Event) -> set[PatientId]:
    b = ev.body
    if ev.kind == "patient.merged":
        return {b["survivor_id"], b["merged_id"]}
    pid = b.get("patient_id")
    return {pid} if isinstance(pid, str) else set()


def _ref(ev: Event) -> str:
    return f"{ev.node} #{ev.seq}"


# ---------------------------------------------------------------------------- detectors

Detector = Callable[[Timeline], list[Conflict]]


def detect_overdraft(tl: Timeline) -> list[Conflict]:
    """The balance went below the granted credit because decreases were concurrent.

    An *episode* starts at the first charge or settlement that takes the balance below
    ``-credit`` and ends when the balance is back above it; its id is the account and
    the last event that raised the balance before it, which later-arriving concurrent
    charges do not change.  A second settlement is the double-settlement detector's.
    """
    out: list[Conflict] = []
    credit = 0
    bal = 0
    excluded = 0  # money paid out by a double settlement: not an overdraft
    anchor: Event | None = None
    since: list[Event] = []  # decreases since the last raise
    episode: dict[str, Any] | None = None
    settled_since_deposit = False
    for ev in tl.events:
        d = balance_delta(ev, tl.pid)
        k = ev.kind
        if k == "account.credit_granted":
            credit = int(ev.body["limit"])
        double_settle = k == "account.settled" and settled_since_deposit and d < 0
        if k == "account.settled":
            settled_since_deposit = True
        elif k == "account.deposited":
            settled_since_deposit = False
        bal += d
        if double_settle:
            excluded += -d
        floor_bal = bal + excluded
        if d > 0:
            if episode is not None and floor_bal >= -credit:
                out.append(_overdraft(tl, episode, floor_bal, credit, closed_by=ev))
                episode = None
            anchor, since = ev, []
        elif d < 0 and not double_settle:
            since.append(ev)
            if floor_bal < -credit:
                if episode is None:
                    episode = {"anchor": anchor, "events": list(since), "max": 0,
                               "credit": credit, "start_balance": floor_bal - sum(
                                   balance_delta(e, tl.pid) for e in since)}
                else:
                    episode["events"].append(ev)
                episode["max"] = max(episode["max"], -credit - floor_bal)
    if episode is not None:
        out.append(_overdraft(tl, episode, bal + excluded, credit, closed_by=None))
    return out


def _overdraft(tl: Timeline, ep: dict[str, Any], bal: Fen, credit: Fen,
               closed_by: Event | None) -> Conflict:
    evs: list[Event] = ep["events"]
    anchor: Event | None = ep["anchor"]
    cid = conflict_id("overdraft", tl.pid, anchor.id if anchor else "start")
    owed = 0 if closed_by is not None else max(0, -credit - bal)
    nodes = sorted({e.node for e in evs})
    listed = "; ".join(
        f"{_what(e)} {yuan(int(e.body['amount']))} at {e.node} ({_ref(e)})" for e in evs)
    start = ep["start_balance"]
    credit_txt = f" plus credit {yuan(ep['credit'])}" if ep["credit"] else ""
    text = (f"{tl.who()}'s account held {yuan(start)}{credit_txt}, but "
            f"{len(evs)} payments were taken from it without each knowing of the other "
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
            f"Records that {tl.name} owes {yuan(owed)} from an offline overdraft; every "
            f"counter asks for it at the next visit and the next deposit pays it off.",
            (("debt.recorded", {"conflict_id": cid, "patient_id": tl.pid, "amount": owed,
                                "debit": 0}),)))
    last = evs[-1]
    if last.kind == "account.charged":
        amt = int(last.body["amount"])
        remedies.append(RemedyOption(
            "reverse", f"Reverse charge {last.body['charge_id']}",
            f"Cancels charge {last.body['charge_id']} ({yuan(amt)} at {last.node}): the "
            f"hospital writes it off and the account gets {yuan(amt)} back.",
            (("charge.reversed", {"conflict_id": cid, "charge_id": last.body["charge_id"],
                                  "patient_id": tl.pid, "amount": amt}),)))
    remedies.append(_accept(cid, tl.pid, "Leaves the account as it is (e.g. the patient "
                                         "already paid at the ward)."))
    return Conflict(
        cid, "overdraft", "high" if owed else "medium",
        f"Overdraft {yuan(ep['max'])} — {tl.name}", text, tuple(e.id for e in evs),
        (tl.pid,), tuple(sorted({str(e.body["card_no"]) for e in evs if "card_no" in e.body})),
        tuple(nodes), ep["max"], evs[0].hlc.wall, tuple(remedies))


def _what(ev: Event) -> str:
    if ev.kind == "account.charged":
        return f"charge {ev.body['charge_id']}"
    if ev.kind == "account.settled":
        return f"settlement {ev.body['invoice_no']}"
    return ev.kind


def _accept(cid: ConflictId, pid: PatientId | None, effect: str) -> RemedyOption:
    body: dict[str, Any] = {"conflict_id": cid}
    if pid:
        body["patient_id"] = pid
    return RemedyOption("accept", "Accept as is", effect, (("conflict.accepted", body),))


def detect_lost_card_used(tl: Timeline) -> list[Conflict]:
    """Charges on a card after (in merge order) it was reported lost, replaced or blocked."""
    status: dict[str, tuple[str, Event]] = {}
    bad: dict[str, list[Event]] = {}
    for ev in tl.events:
        b = ev.body
        if ev.kind == "card.reported_lost":
            status.setdefault(b["card_no"], ("lost", ev))
        elif ev.kind == "card.replaced":
            status.setdefault(b["old_card_no"], ("replaced", ev))
        elif ev.kind == "card.blocked" and ev.node == CENTRAL:
            status.setdefault(b["card_no"], ("blocked", ev))
        elif ev.kind == "account.charged" and b.get("card_no") in status:
            bad.setdefault(b["card_no"], []).append(ev)
    out = []
    for card, charges in bad.items():
        why, stop = status[card]
        cid = conflict_id("lost_card_used", card, stop.id)
        at_risk = sum(int(e.body["amount"]) for e in charges)
        listed = "; ".join(f"charge {e.body['charge_id']} {yuan(int(e.body['amount']))} at "
                           f"{e.node}" for e in charges)
        said = {"lost": "reported lost", "replaced": "replaced", "blocked": "blocked"}[why]
        text = (f"Card {card} of {tl.who()} was {said} at {stop.node} ({_ref(stop)}), but "
                f"{len(charges)} charge(s) were made with it afterwards by counters that did "
                f"not know yet: {listed}. Amount at risk: {yuan(at_risk)}. Ask the patient "
                f"whether they made these charges.")
        remedies = [RemedyOption(
            "reverse", "Reverse the charges",
            f"Cancels {len(charges)} charge(s), {yuan(at_risk)} back on the account (the "
            f"card was used by someone else).",
            tuple(("charge.reversed", {"conflict_id": cid, "charge_id": e.body["charge_id"],
                                       "patient_id": tl.pid, "amount": int(e.body["amount"])})
                  for e in charges))]
        remedies.append(RemedyOption(
            "block", f"Block card {card}",
            f"Blocks card {card} on every counter; the charges stand.",
            (("card.blocked", {"conflict_id": cid, "card_no": card, "patient_id": tl.pid}),)))
        remedies.append(_accept(cid, tl.pid, "The patient confirms the charges; they stand."))
        out.append(Conflict(
            cid, "lost_card_used", "high", f"Lost card used — {card}, {yuan(at_risk)}", text,
            (stop.id, *(e.id for e in charges)), (tl.pid,), (card,),
            tuple(sorted({stop.node, *(e.node for e in charges)})), at_risk,
            charges[0].hlc.wall, tuple(remedies)))
    return out


def detect_double_replacement(tl: Timeline) -> list[Conflict]:
    """One card replaced twice (two counters each issued a new card for it)."""
    by_old: dict[str, list[Event]] = {}
    for ev in tl.events:
        if ev.kind == "card.replaced":
            by_old.setdefault(ev.body["old_card_no"], []).append(ev)
    out = []
    for old, evs in by_old.items():
        if len({e.body["new_card_no"] for e in evs}) < 2:
            continue
        keep, extra = evs[0], evs[1:]
        cid = conflict_id("double_replacement", old, *sorted(e.body["new_card_no"] for e in evs))
        news = ", ".join(f"{e.body['new_card_no']} at {e.node}" for e in evs)
        text = (f"Card {old} of {tl.who()} was replaced {len(evs)} times: {news}. Only one "
                f"new card should be in use; the first replacement is {keep.body['new_card_no']}.")
        remedies = [RemedyOption(
            "block", "Block the later card(s)",
            "Blocks " + ", ".join(e.body["new_card_no"] for e in extra) + " on every counter;"
            f" {keep.body['new_card_no']} stays the patient's card.",
            tuple(("card.blocked", {"conflict_id": cid, "card_no": e.body["new_card_no"],
                                    "patient_id": tl.pid}) for e in extra))]
        remedies.append(_accept(cid, tl.pid, "Both cards stay active."))
        out.append(Conflict(
            cid, "double_replacement", "medium", f"Card {old} replaced twice — {tl.name}", text,
            tuple(e.id for e in evs), (tl.pid,),
            (old, *(e.body["new_card_no"] for e in evs)), tuple(sorted({e.node for e in evs})),
            0, evs[1].hlc.wall, tuple(remedies)))
    return out


def detect_over_refund(tl: Timeline) -> list[Conflict]:
    """Refunds (and reversals) of one charge adding up to more than the charge."""
    charges: dict[str, Event] = {}
    refunds: dict[str, list[Event]] = {}
    reversed_: dict[str, int] = {}
    for ev in tl.events:
        b = ev.body
        if ev.kind == "account.charged":
            charges[b["charge_id"]] = ev
        elif ev.kind == "account.refunded":
            refunds.setdefault(b["charge_id"], []).append(ev)
        elif ev.kind == "charge.reversed" and ev.node == CENTRAL:
            reversed_[b["charge_id"]] = reversed_.get(b["charge_id"], 0) + int(b["amount"])
    out = []
    for charge_id, refs in refunds.items():
        ch = charges.get(charge_id)
        if ch is None:
            continue  # the charge has not reached central yet
        total = sum(int(e.body["amount"]) for e in refs) + reversed_.get(charge_id, 0)
        excess = total - int(ch.body["amount"])
        if excess <= 0:
            continue
        cid = conflict_id("over_refund", charge_id)
        listed = "; ".join(f"{yuan(int(e.body['amount']))} to {e.body['to']} at {e.node}"
                           for e in refs)
        text = (f"Charge {charge_id} of {tl.who()} was {yuan(int(ch.body['amount']))}, but "
                f"{yuan(total)} was given back: {listed}"
                + (f" (and {yuan(reversed_[charge_id])} reversed)" if charge_id in reversed_
                   else "")
                + f". {yuan(excess)} too much was refunded.")
        remedies = [RemedyOption(
            "debt", "Take the excess back",
            f"Debits {yuan(excess)} from {tl.name}'s account (if it does not hold that much "
            "the patient owes the rest, collected at the next visit).",
            (("debt.recorded", {"conflict_id": cid, "patient_id": tl.pid, "amount": excess,
                                "debit": excess}),)),
            _accept(cid, tl.pid, "The hospital bears the excess refund.")]
        out.append(Conflict(
            cid, "over_refund", "high", f"Over-refund {yuan(excess)} — charge {charge_id}",
            text, (ch.id, *(e.id for e in refs)), (tl.pid,), (),
            tuple(sorted({ch.node, *(e.node for e in refs)})), excess, refs[-1].hlc.wall,
            tuple(remedies)))
    return out


def detect_double_settlement(tl: Timeline) -> list[Conflict]:
    """The account paid out twice: a second settlement with no deposit since the first."""
    out = []
    first: Event | None = None
    bal = 0
    for ev in tl.events:
        bal += balance_delta(ev, tl.pid)
        if ev.kind == "account.deposited":
            first = None
        elif ev.kind == "account.settled":
            if first is not None and int(ev.body["amount"]) > 0 and bal < 0:
                paid = int(ev.body["amount"])
                cid = conflict_id("double_settlement", tl.pid, first.id)
                text = (f"{tl.who()}'s account was settled at {first.node} ({_ref(first)}, "
                        f"{yuan(int(first.body['amount']))}) and again at {ev.node} "
                        f"({_ref(ev)}, {yuan(paid)}) without a deposit in between: "
                        f"{yuan(paid)} was paid out twice. The patient owes {yuan(paid)}.")
                remedies = (RemedyOption(
                    "debt", "Record the debt",
                    f"Records that {tl.name} owes {yuan(paid)}; counters ask for it at the "
                    "next visit.",
                    (("debt.recorded", {"conflict_id": cid, "patient_id": tl.pid,
                                        "amount": paid, "debit": 0}),)),
                    _accept(cid, tl.pid, "The hospital bears the double payout."))
                out.append(Conflict(
                    cid, "double_settlement", "high", f"Settled twice — {tl.name}, {yuan(paid)}",
                    text, (first.id, ev.id), (tl.pid,), (), tuple(sorted({first.node, ev.node})),
                    paid, ev.hlc.wall, remedies))
            else:
                first = ev
    return out


PATIENT_DETECTORS: list[Detector] = [
    detect_overdraft,
    detect_lost_card_used,
    detect_double_replacement,
    detect_over_refund,
    detect_double_settlement,
]


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
    live = sorted((world.patients[p] for p in pids
                   if p in world.patients and not world.patients[p].merged_into),
                  key=lambda p: (p.wall_ms, p.patient_id))
    if strong:
        live = [p for p in live if p.national_id]
    else:  # two different ID numbers are two different people
        ids = {p.national_id for p in live if p.national_id}
        if len(ids) > 1 or all(p.national_id for p in live):
            return []  # different ID numbers: different people; all the same: the strong one
    if len(live) < 2:
        return []
    kind = "duplicate_patient" if strong else "likely_duplicate"
    cid = conflict_id(kind, *sorted(p.patient_id for p in live))
    survivor, others = live[0], live[1:]
    listed = "; ".join(f"{p.patient_id} at {p.node}" for p in live)
    if strong:
        text = (f"The same national ID number ({_mask(key)}) was registered {len(live)} times: "
                f"{listed}. They are one person; merge the later records into "
                f"{survivor.patient_id}.")
    else:
        text = (f"{survivor.name}, born {survivor.birth_date}, with the same phone, was "
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
        _accept(cid, None, "Keeps the records apart (they are different people)."))
    return [Conflict(
        cid, kind, "medium" if strong else "low",
        f"{'Duplicate' if strong else 'Possible duplicate'} patient — {survivor.name}", text,
        tuple(p.registered for p in live if p.registered), tuple(p.patient_id for p in live),
        (), tuple(sorted({p.node for p in live})), 0, live[-1].wall_ms, remedies)]


def _mask(nid: str) -> str:
    return nid[:4] + "*" * (len(nid) - 8) + nid[-4:] if len(nid) > 8 else "****"


# ---------------------------------------------------------------------------- reconciler


class Reconciler:
    """Everything central holds, merged; detectors re-run per touched patient."""

    def __init__(self, config: ReconcileConfig = ReconcileConfig()) -> None:
        self.config = config
        self.timelines: dict[PatientId, list[tuple[tuple[int, int, str, int], Event]]] = {}
        self.patients: dict[PatientId, PatientInfo] = {}
        self.card_owner: dict[str, PatientId] = {}
        self._cards_by_patient: dict[PatientId, set[str]] = {}
        self._merged_into: dict[PatientId, set[PatientId]] = {}  # survivor → merged records
        self.by_national_id: dict[str, set[PatientId]] = {}
        self.by_identity: dict[tuple[str, str, str], set[PatientId]] = {}
        self.revoked: dict[str, int] = {}
        self.resolutions: dict[ConflictId, Resolution] = {}
        self.seen: set[EventId] = set()
        self._emitted: dict[str, set[ConflictId]] = {}  # scope -> ids last found there
        self._skew_run: dict[str, int] = {}  # node -> first seq of its current skewed run
        self._integrity: dict[ConflictId, Conflict] = {}
        self.count = 0

    # -- queries -------------------------------------------------------------------------
    def timeline(self, pid: PatientId) -> Timeline:
        return Timeline(pid, [e for _, e in self.timelines.get(pid, [])], self)

    def family(self, pid: PatientId) -> frozenset[PatientId]:
        """``pid`` and every record merged into it (directly or through another)."""
        return family(pid, self._merged_into)

    def person_timeline(self, pid: PatientId) -> Timeline:
        """A patient's events with those of the records merged into it, in merge order,
        with the person's running balance (money moved by the merge nets to nothing)."""
        family = self.family(pid)
        seen: dict[EventId, tuple[tuple[int, int, str, int], Event]] = {}
        for p in family:
            for key, ev in self.timelines.get(p, []):
                seen[ev.id] = (key, ev)
        ordered = [e for _, e in sorted(seen.values(), key=lambda ke: ke[0])]
        return Timeline(pid, ordered, self, family)

    def balance(self, pid: PatientId) -> Fen:
        return sum(balance_delta(e, pid) for _, e in self.timelines.get(pid, []))

    def cards_of(self, pid: PatientId) -> set[str]:
        return set(self._cards_by_patient.get(pid, ()))

    # -- input ---------------------------------------------------------------------------
    def set_revoked(self, revoked: dict[str, int]) -> Report:
        """Nodes revoked and when (ms): events they signed after that are flagged."""
        self.revoked = dict(revoked)
        rep = Report()
        for pid in list(self.timelines):
            for _, ev in self.timelines[pid]:
                c = self._revoked_check(ev)
                if c:
                    rep.conflicts.append(c)
        return rep

    def report_integrity(self, reports: Iterable[IntegrityReport]) -> Report:
        rep = Report()
        for r in reports:
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
                remedies=(_accept(cid, None, "Marks it reviewed."),)))
        return rep

    def add(self, batch: Iterable[Incoming | Event]) -> Report:
        """Merge a batch of stored events; return the conflicts of every scope it touched."""
        rep = Report()
        dirty: set[PatientId] = set()
        dirty_ids: set[str] = set()
        dirty_people: set[tuple[str, str, str]] = set()
        for item in batch:
            inc = item if isinstance(item, Incoming) else Incoming(item, 0)
            ev = inc.event
            if ev.id in self.seen:
                continue
            self.seen.add(ev.id)
            self.count += 1
            problems = kinds.validate_body(ev.kind, ev.body) if ev.kind in kinds.SCHEMAS else []
            if problems or (ev.kind in CENTRAL_KINDS and ev.node != CENTRAL):
                rep.conflicts.append(self._malformed(ev, problems))
                continue  # never let a malformed body into a timeline
            if ev.kind not in kinds.SCHEMAS or ev.kind in ANNOUNCEMENTS:
                continue  # a newer kind this central does not know: kept, not reconciled;
                # central's own notices of a conflict's state: for counters, not resolutions
            for c in (self._skew_check(ev, inc.received_ms), self._revoked_check(ev)):
                if c:
                    rep.conflicts.append(c)
            if ev.node == CENTRAL and "conflict_id" in ev.body:
                res = Resolution(ev.body["conflict_id"], ev.id, ev.kind, ev.operator,
                                 str(ev.body.get("reason", "")), ev.hlc.wall)
                self.resolutions.setdefault(res.conflict_id, res)
                rep.resolutions.append(res)
            self._index(ev, dirty_ids, dirty_people)
            for pid in _patients_of(ev):
                bisect.insort(self.timelines.setdefault(pid, []), (ev.sort_key(), ev))
                dirty.add(pid)
        for pid in dirty:  # a duplicate's merge remedy carries its balance and cards: refresh
            info = self.patients.get(pid)
            if info is not None and len(self.by_national_id.get(info.national_id, ())) > 1:
                dirty_ids.add(info.national_id)
            person = (info.name, info.birth_date, info.phone) if info else None
            if person is not None and len(self.by_identity.get(person, ())) > 1:
                dirty_people.add(person)
        for pid in sorted(dirty):
            timeline = self.timeline(pid)
            found: list[Conflict] = []
            for det in PATIENT_DETECTORS:
                found += det(timeline)
            self._scope(f"p:{pid}", found, rep)
        for nid in sorted(dirty_ids):
            self._scope(f"n:{nid}", detect_duplicates(self.by_national_id.get(nid, ()), self,
                                                      strong=True, key=nid), rep)
        for person in sorted(dirty_people):
            self._scope(f"i:{person}", detect_duplicates(self.by_identity.get(person, ()), self,
                                                         strong=False, key=""), rep)
        return rep

    def _scope(self, scope: str, found: list[Conflict], rep: Report) -> None:
        ids = {c.id for c in found}
        rep.withdrawn += sorted(self._emitted.get(scope, set()) - ids)
        self._emitted[scope] = ids
        rep.conflicts += found

    def _index(self, ev: Event, dirty_ids: set[str],
               dirty_people: set[tuple[str, str, str]]) -> None:
        b = ev.body
        if ev.kind == "patient.registered":
            info = PatientInfo(b["patient_id"], b["name"], b["birth_date"], b.get("phone", ""),
                               b.get("national_id", ""), ev.node, ev.id, ev.hlc.wall)
            old = self.patients.get(info.patient_id)
            if old is not None and old.merged_into:
                info = replace(info, merged_into=old.merged_into)
            self.patients[info.patient_id] = info
            if info.national_id:
                self.by_national_id.setdefault(info.national_id, set()).add(info.patient_id)
                dirty_ids.add(info.national_id)
            if info.phone:
                person = (info.name, info.birth_date, info.phone)
                self.by_identity.setdefault(person, set()).add(info.patient_id)
                dirty_people.add(person)
        elif ev.kind == "card.issued":
            self._own(b["card_no"], b["patient_id"])
        elif ev.kind == "card.replaced":
            self._own(b["new_card_no"], b["patient_id"])
        elif ev.kind == "patient.merged" and ev.node == CENTRAL:
            old = self.patients.get(b["merged_id"]) or PatientInfo(b["merged_id"])
            if not old.merged_into:
                self.patients[b["merged_id"]] = replace(old, merged_into=b["survivor_id"])
                self._merged_into.setdefault(b["survivor_id"], set()).add(b["merged_id"])
            for c in b["cards"]:
                self._own(c, b["survivor_id"], force=True)

    def _own(self, card: str, pid: PatientId, *, force: bool = False) -> None:
        old = self.card_owner.get(card)
        if old is not None and not force:
            return
        if old is not None:
            self._cards_by_patient.get(old, set()).discard(card)
        self.card_owner[card] = pid
        self._cards_by_patient.setdefault(pid, set()).add(card)

    def _malformed(self, ev: Event, problems: list[Any]) -> Conflict:
        cid = conflict_id("malformed_event", ev.node, ev.seq)
        why = ("; ".join(p.message for p in problems) if problems else
               f"{ev.kind} may only be signed by central")
        return Conflict(
            cid, "malformed_event", "high", f"Malformed event — {ev.node} #{ev.seq}",
            f"Node {ev.node} signed an event central cannot merge ({ev.kind}: {why}). It is "
            "kept but not reconciled; counters may fold it differently. Check that node's "
            "software version and key.", (ev.id,), nodes=(ev.node,), wall_ms=ev.hlc.wall,
            remedies=(_accept(cid, None, "Marks it reviewed."),))

    def _skew_check(self, ev: Event, received_ms: int) -> Conflict | None:
        # counter 0: the stamp's wall came from the node's own clock, not from a remote
        # stamp it observed — so an honest node that saw a skewed one is never blamed.
        ahead = ev.hlc.wall - received_ms
        if ev.node == CENTRAL or received_ms <= 0 or ev.hlc.counter != 0 \
                or ahead <= self.config.max_skew_ms:
            if ev.node in self._skew_run and received_ms > 0 and ahead <= 0:
                del self._skew_run[ev.node]  # the clock is right again: a new run may start
            return None
        first = self._skew_run.setdefault(ev.node, ev.seq)
        cid = conflict_id("clock_skew", ev.node, first)
        c = Conflict(
            cid, "clock_skew", "medium", f"Clock skew — {ev.node} {ahead // 1000} s ahead",
            f"Node {ev.node}'s clock was {ahead // 1000} s ahead of central's when it signed "
            f"seq {ev.seq} (limit {self.config.max_skew_ms // 1000} s). Its events sort too "
            "late in the merge order; set its clock (NTP) and check its recent work.",
            (ev.id,), nodes=(ev.node,), wall_ms=received_ms,
            remedies=(_accept(cid, None, "Marks it reviewed once the clock is fixed."),))
        self._integrity[cid] = c
        return c

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
            remedies=(_accept(cid, None, "Marks it reviewed."),))


def reconcile(events: Iterable[Event], config: ReconcileConfig = ReconcileConfig()
              ) -> list[Conflict]:
    """Every conflict in ``events`` at once (tests, audits): one batch, deduplicated."""
    rep = Reconciler(config).add(events)
    return list({c.id: c for c in rep.conflicts}.values())
