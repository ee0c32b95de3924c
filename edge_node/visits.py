"""Visits and queues at a counter: registration (挂号), the department's queue of the day,
and its steps (call, skip, recall, start, done, no-show) — what the triage desk, the
kiosk, the cashier and the doctor's station call.

Every registration draws its queue number from this counter's own series (its
``queue_tag``; :mod:`protocol.visit` says why two offline counters never collide) and
charges the fee from the deposit in the same event, priced from the newest catalogue
version this counter holds.  As everywhere, a refusal raises
:class:`~edge_node.errors.OperationRefused` with every problem and writes nothing;
``dry()`` checks instead of writing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edge_node import roles
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger, Op, OpContext
from edge_node.staff import Approval, supervisor_field
from protocol import catalogue
from protocol.account import Account
from protocol.card import CARD_ENTRY, Card
from protocol.catalogue import HEAD, CatalogueHead, CatalogueItem, Department, Doctor
from protocol.core import Ref, State
from protocol.errors import Problem
from protocol.event import Event
from protocol.patient import Patient
from protocol.visit import FINAL, QueueSeries, Visit, default_tag, queue_key

#: what the queue shows first: those called and in consultation, then waiting, then the
#: rest (skipped can be recalled), done and no-shows last
QUEUE_ORDER = {"consulting": 0, "called": 1, "waiting": 2, "skipped": 3, "done": 4,
               "no_show": 5}


def mask_name(name: str) -> str:
    """A name for the waiting room: the surname and a star per other character."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else "*"


@dataclass(frozen=True, slots=True)
class QueueEntry:
    visit: Visit
    name: str  # the patient's name (the staff's screens; the waiting room masks it)

    @property
    def masked(self) -> str:
        return mask_name(self.name)


@dataclass(frozen=True, slots=True)
class Board:
    """What the waiting room shows: the numbers called now (newest call first) and the
    next few waiting — labels, rooms and masked surnames only."""

    calling: tuple[QueueEntry, ...]
    waiting: tuple[QueueEntry, ...]
    waiting_count: int


@dataclass(frozen=True, slots=True)
class Offer:
    """What a registration form offers, read once when it opens: the clinics, each
    clinic's doctors, and the fee a visit charges (by doctor id; ``""``: no doctor)."""

    clinics: tuple[Department, ...]
    doctors: dict[str, tuple[Doctor, ...]]
    fees: dict[str, CatalogueItem | None]

    def fee(self, doctor_id: str = "") -> CatalogueItem | None:
        return self.fees.get(doctor_id, self.fees.get(""))

    def clinic(self, code: str) -> Department | None:
        return next((d for d in self.clinics if d.code == code), None)


@dataclass(frozen=True, slots=True)
class VisitReceipt:
    visit: Visit
    patient: Patient
    balance: int
    events: tuple[Event, ...]
    preview: bool = False


def _refuse(code: str, message: str, field: str = "", **values: object) -> OperationRefused:
    return OperationRefused([Problem(code, message, field, values)])


class VisitService:
    """Visit and queue operations on one ledger, as the logged-in ``operator``."""

    def __init__(self, ledger: Ledger, operator: str = "", *, queue_tag: str = "",
                 dry_run: bool = False, roles: frozenset[str] | None = None) -> None:
        self.ledger = ledger
        self.operator = operator
        self.queue_tag = queue_tag or default_tag(ledger.node_id)
        self.dry_run = dry_run
        self.roles = roles  # what the operator may do (edge_node.roles; None: unchecked)

    def dry(self) -> VisitService:
        return VisitService(self.ledger, self.operator, queue_tag=self.queue_tag,
                            dry_run=True, roles=self.roles)

    def today(self) -> str:
        """This counter's day (``YYYY-MM-DD`` in the hospital's time zone)."""
        return self.ledger.rule_config.on(self.ledger.now_ms()).today

    # -- the catalogue ---------------------------------------------------------------------
    async def head(self) -> CatalogueHead:
        """The catalogue version this counter prices from (refuses if it holds none)."""
        head = await self.ledger.get(CatalogueHead, HEAD)
        if head is None or not head.version:
            raise OperationRefused(catalogue.check_version(State(), 1))
        return head  # type: ignore[no-any-return]

    async def clinics(self) -> list[Department]:
        """The clinic departments of the catalogue, by code."""
        head = await self.head()
        rows = await self.ledger.find(Department, "version", head.version, limit=500)
        return [d for d in rows if d.type == "clinic"]

    async def doctors(self, dept: str) -> list[Doctor]:
        head = await self.head()
        rows = await self.ledger.find(Doctor, "version", head.version, limit=2000)
        return [d for d in rows if d.dept == dept]

    async def department(self, code: str) -> Department | None:
        """A department of the catalogue this counter prices from (None if unknown)."""
        head = await self.head()
        return await self.ledger.get(Department, (head.version, code))  # type: ignore[no-any-return]

    async def doctor_names(self) -> dict[str, str]:
        """Every doctor of the catalogue: id → name (what a queue shows)."""
        head = await self.head()
        rows = await self.ledger.find(Doctor, "version", head.version, limit=2000)
        return {d.doctor_id: d.name for d in rows}

    async def offer(self) -> Offer:
        """The clinics, their doctors and the fees (refuses with no catalogue yet)."""
        head = await self.head()
        depts = await self.ledger.find(Department, "version", head.version, limit=500)
        clinics = tuple(sorted((d for d in depts if d.type == "clinic"),
                               key=lambda d: d.code))
        rows = await self.ledger.find(Doctor, "version", head.version, limit=2000)
        doctors: dict[str, tuple[Doctor, ...]] = {}
        for d in sorted(rows, key=lambda d: d.doctor_id):
            doctors[d.dept] = (*doctors.get(d.dept, ()), d)
        default = await self.fee_item("")
        fees: dict[str, CatalogueItem | None] = {"": default}
        for d in rows:  # as fee_item: the doctor's own fee item, else the default
            item = (await self.ledger.get(CatalogueItem, (head.version, d.fee_code))
                    if d.fee_code else None)
            fees[d.doctor_id] = item if item is not None else default
        return Offer(clinics, doctors, fees)

    async def fee_item(self, dept: str, doctor_id: str = "") -> CatalogueItem | None:
        """The registration fee a visit charges: the doctor's fee item, else the
        cheapest registration item (普通挂号); None if the catalogue has none."""
        head = await self.head()
        if doctor_id:
            doc = await self.ledger.get(Doctor, (head.version, doctor_id))
            if doc is not None and doc.fee_code:
                item = await self.ledger.get(CatalogueItem, (head.version, doc.fee_code))
                if item is not None:
                    return item  # type: ignore[no-any-return]
        items = await self.ledger.find(CatalogueItem, "version", head.version, limit=100_000)
        regs = sorted((i for i in items if i.type == "registration"),
                      key=lambda i: (i.price, i.code))
        return regs[0] if regs else None

    # -- registration ----------------------------------------------------------------------
    async def register(self, *, dept: str, channel: str, card_no: str = "",
                       patient_id: str = "", doctor_id: str = "", day: str = "",
                       card_entry: str = "chip", again: bool = False,
                       approval: Approval | None = None) -> VisitReceipt:
        """Register a visit for the patient behind ``card_no`` (or ``patient_id``) to
        ``dept`` (and ``doctor_id``) today, its fee charged from the deposit.

        Refused while the patient still queues in that department that day (a second
        tap would charge the fee twice), unless ``again``: staff meant a second visit.

        ``approval``: a supervisor's (:func:`edge_node.staff.approve`), which a charge
        past the offline limits (and a card number typed by hand) needs."""
        roles.check(self.roles, "visit.register")
        if not (card_no or patient_id):
            raise _refuse("visit.no_patient", "tap the patient's card or find the patient",
                          "card_no")
        if card_entry not in CARD_ENTRY:
            raise _refuse("card.entry", f"unknown card entry {card_entry!r}", "card_entry")
        head = await self.head()
        fee = await self.fee_item(dept, doctor_id)
        day = day or self.today()
        version = head.number
        tag = self.queue_tag
        if not again:
            await self._not_waiting_already(card_no, patient_id, dept, day)

        def body(ctx: OpContext) -> dict[str, Any]:
            pid = patient_id
            if card_no:
                card = ctx.state.get(Card, card_no)
                if card is None:
                    raise _refuse("card.unknown", f"card {card_no} is not known at this "
                                  "counter", "card_no", card=card_no)
                pid = card.patient_id
            series = ctx.state.get_or_new(QueueSeries, (queue_key(dept, day), tag))
            b: dict[str, Any] = {
                "visit_id": ctx.new_id("V"), "patient_id": pid, "dept": dept, "day": day,
                "queue_tag": tag, "queue_no": series.last + 1, "channel": channel,
                "fee": fee.price if fee else 0, "catalogue_version": version,
                **supervisor_field(approval)}
            if fee is not None:
                b["fee_code"] = fee.code
            if doctor_id:
                b["doctor_id"] = doctor_id
            if card_no:
                b.update(card_no=card_no, card_entry=card_entry)
            return b
        need: set[Ref] = {(QueueSeries, (queue_key(dept, day), tag))}
        if card_no:
            need.add((Card, card_no))
        result = await self._run([Op("visit.registered", body, frozenset(need))])
        ev = result[0]
        v = result[1].get(Visit, ev.body["visit_id"])
        assert v is not None
        pid = ev.body["patient_id"]
        patient = await self.ledger.get(Patient, pid)  # (its name opened: Ledger.shown)
        acct = result[1].get(Account, pid) or await self.ledger.get(Account, pid)
        return VisitReceipt(v, patient, acct.balance if acct else 0, (ev,), self.dry_run)

    async def _not_waiting_already(self, card_no: str, patient_id: str, dept: str,
                                   day: str) -> None:
        """Refuse a second visit to a department the patient is still queueing in today
        (a second tap at triage would charge the fee twice); after that visit is done or
        a no-show, a new one is fine."""
        if card_no:
            card = await self.ledger.get(Card, card_no)
            patient_id = card.patient_id if card is not None else ""
        if not patient_id:
            return  # (the append refuses an unknown card, with its own words)
        for v in await self.visits_of(patient_id):
            if v.dept == dept and v.day == day and v.status not in FINAL:
                raise _refuse("visit.already_waiting", f"the patient already has visit "
                              f"{v.label} to {dept} today ({v.status.replace('_', '-')})",
                              "dept", number=v.label, dept=dept)

    async def _run(self, ops: list[Op]) -> tuple[Event, State]:
        if self.dry_run:
            result = await self.ledger.check_ops(ops, self.operator)
        else:
            result = await self.ledger.append_ops(ops, self.operator)
        return result.appended[0].event, result.state

    # -- the queue -------------------------------------------------------------------------
    async def queue(self, dept: str, day: str = "", *, doctor_id: str = "",
                    everyone: bool = True) -> list[QueueEntry]:
        """The department's visits of ``day``: in consultation and called first, then
        waiting in registration order, then skipped, done and no-shows.  ``doctor_id``:
        that doctor's visits and the department's visits to no doctor in particular."""
        visits = await self.ledger.find(Visit, "queue", queue_key(dept, day or self.today()),
                                        limit=10_000)
        visits = [v for v in visits if v.registered_at]
        if doctor_id:
            visits = [v for v in visits if v.doctor_id in ("", doctor_id)]
        if not everyone:
            visits = [v for v in visits if v.status not in ("done", "no_show")]
        visits.sort(key=lambda v: (QUEUE_ORDER.get(v.status, 9), v.registered_at))
        names: dict[str, str] = {}
        for v in visits:
            if v.patient_id not in names:
                p = await self.ledger.get(Patient, v.patient_id)
                names[v.patient_id] = p.name if p is not None else ""
        return [QueueEntry(v, names[v.patient_id]) for v in visits]

    async def step(self, visit_id: str, step: str, room: str = "") -> Visit:
        """Move a visit one step (called, skipped, recalled, started, done, no_show)."""
        roles.check(self.roles, "visit.queue")
        v = await self.ledger.get(Visit, visit_id)
        if v is None:
            raise _refuse("visit.unknown", f"visit {visit_id} is not known at this counter",
                          "visit_id", visit=visit_id)
        body: dict[str, Any] = {"visit_id": visit_id, "patient_id": v.patient_id,
                                "step": step}
        if room:
            body["room"] = room
        _, state = await self._run([Op("visit.progressed", body)])
        out = state.get(Visit, visit_id)
        assert out is not None
        return out

    async def call_next(self, dept: str, room: str = "", *, doctor_id: str = "",
                        day: str = "") -> Visit | None:
        """Call the first patient waiting (registration order); None if none waits."""
        for e in await self.queue(dept, day, doctor_id=doctor_id):
            if e.visit.status == "waiting":
                return await self.step(e.visit.visit_id, "called", room)
        return None

    async def skip(self, visit_id: str) -> Visit:
        """过号: the called patient did not come; a recall calls them again."""
        return await self.step(visit_id, "skipped")

    async def recall(self, visit_id: str, room: str = "") -> Visit:
        """Call a called or skipped patient again (the waiting room shows the number)."""
        return await self.step(visit_id, "recalled", room)

    async def no_show(self, visit_id: str) -> Visit:
        """The patient never came: the visit ends (final, it beats any later step)."""
        return await self.step(visit_id, "no_show")

    async def counts(self, dept: str, day: str = "") -> dict[str, int]:
        """How many of the department's visits of ``day`` are in each status (every
        status named, zeros too), and ``total``."""
        out = dict.fromkeys(QUEUE_ORDER, 0)
        for e in await self.queue(dept, day):
            out[e.visit.status] = out.get(e.visit.status, 0) + 1
        out["total"] = sum(out.values())
        return out

    async def board(self, depts: list[str], day: str = "", *, calling: int = 4,
                    waiting: int = 6) -> Board:
        """The waiting room's board for ``depts``: the ``calling`` most recent calls still
        standing (status called) and the first ``waiting`` numbers waiting."""
        called: list[QueueEntry] = []
        queued: list[QueueEntry] = []
        for dept in depts:
            for e in await self.queue(dept, day, everyone=False):
                if e.visit.status == "called":
                    called.append(e)
                elif e.visit.status == "waiting":
                    queued.append(e)
        called.sort(key=lambda e: e.visit.status_at, reverse=True)
        queued.sort(key=lambda e: e.visit.registered_at)
        return Board(tuple(called[:calling]), tuple(queued[:waiting]), len(queued))

    async def changes(self) -> int:
        """A number that changes whenever the ledger takes an event (own or synced): a
        screen polls it and reads its queue again only when it moved."""
        return await self.ledger.last_arrival()

    async def visits_of(self, patient_id: str) -> list[Visit]:
        """The patient's visits, newest first."""
        rows = await self.ledger.find(Visit, "patient_id", patient_id, limit=500)
        return sorted((v for v in rows if v.registered_at), key=lambda v: v.registered_at,
                      reverse=True)


