"""The lab and exam window (DOMAIN 3.8): the patient taps, the orders waiting for this
window's department show; each is checked in (queue number, charge, specimen id),
then collected (lab specimens), executed, and resulted.

What the lab desk (:mod:`edge_node.tui.screens.lab`) and tests call; nothing here
touches SQL (ledger queries on the indexed columns only).  As everywhere, a refusal
raises :class:`~edge_node.errors.OperationRefused` with every problem and writes
nothing, and :meth:`LabService.dry` checks instead of writing.

Theory of operation
-------------------
A window is a counter with role ``lab`` and a ``department`` (``LAB``, ``RAD``): it
serves the orders whose executing department is that one.  A check-in is one
``order.checked_in`` built inside the append (:class:`~edge_node.ledger.OpContext`),
from the records as they are in that transaction:

* the queue number is the next of this window's own series for the department and day
  (``queue_key(dept, day)`` and the counter's queue tag, as visits are numbered), so
  two windows offline at once never give one number, and a restart continues the
  series from the ledger;
* a lab order's specimen id is :func:`edge_node.labels.specimen_id` of the tag, the
  day and that same queue number: it comes from the ledger too (never an in-memory
  counter), and it is unique across windows because the tag is the counter's;
* the charge is :func:`protocol.execution.due_at_execution` — the order's total if it
  was not charged when sent, else nothing; the kind's rule refuses anything else, and a
  deposit that does not cover it (with how much is short).

The steps after it (``order.progressed``) are refused here for an order of another
window (the kind's rule knows lab and exam orders, not windows).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from edge_node import roles
from edge_node.errors import OperationRefused
from edge_node.labels import MAX_SPECIMEN_SEQ, Label, specimen_id, specimen_label
from edge_node.ledger import Ledger, Op, OpContext
from edge_node.staff import Approval, supervisor_field
from protocol.account import Account
from protocol.card import Card
from protocol.core import Ref, State
from protocol.errors import Problem
from protocol.event import Event
from protocol.execution import due_at_execution
from protocol.order import Order
from protocol.patient import Patient
from protocol.visit import QueueSeries, default_tag, queue_key, queue_label

Fen = int
#: the order types a lab or exam window serves
TYPES = ("lab", "exam")
#: the worklist's groups, in the order a window works through them
GROUPS = ("placed", "checked_in", "collected", "executed", "resulted")
#: how many of a department's newest orders the worklist reads (a day's are among them)
WORKLIST_READ = 5000


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One order on the window's worklist, with the patient's name."""

    order: Order
    name: str

    @property
    def number(self) -> str:
        o = self.order
        return queue_label(o.queue_tag, o.queue_no) if o.queue_no else ""


@dataclass(frozen=True, slots=True)
class Worklist:
    """The window's day: orders to check in, checked in, collected, executed awaiting
    their result, and resulted — each group oldest first."""

    day: str
    groups: dict[str, tuple[WorkItem, ...]]

    def __getitem__(self, stage: str) -> tuple[WorkItem, ...]:
        return self.groups.get(stage, ())

    @property
    def items(self) -> list[WorkItem]:
        """Every order of the day, group by group (what the desk's table lists)."""
        return [w for g in GROUPS for w in self.groups.get(g, ())]

    def counts(self) -> dict[str, int]:
        return {g: len(self.groups.get(g, ())) for g in GROUPS}


@dataclass(frozen=True, slots=True)
class CheckInReceipt:
    """What a check-in wrote (or, from :meth:`LabService.dry`, would write)."""

    order: Order
    patient: Patient
    number: str  # the queue number shown (``L01-007``)
    specimen_id: str  # "" for an exam
    charged: Fen
    balance: Fen
    events: tuple[Event, ...]
    preview: bool = False


def _refuse(code: str, message: str, field: str = "", **values: object) -> OperationRefused:
    return OperationRefused([Problem(code, message, field, values)])


def _age(birth_date: str, now_ms: int, timezone: str) -> int | None:
    """Whole years since ``birth_date`` (None: unknown, or a date after today)."""
    try:
        born = dt.date.fromisoformat(birth_date)
        today = dt.datetime.fromtimestamp(now_ms / 1000, ZoneInfo(timezone)).date()
    except (ValueError, KeyError, OSError, OverflowError):
        return None
    years = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return years if years >= 0 else None


def _placed(o: Order) -> str:
    return o.placed_at


class LabService:
    """The window's operations on one ledger, as the logged-in ``operator``.

    ``dept``: the department this window serves (its config's ``department``);
    ``queue_tag``: the counter's tag (config), else :func:`default_tag` of its node id.
    """

    def __init__(self, ledger: Ledger, operator: str = "", *, dept: str,
                 queue_tag: str = "", dry_run: bool = False,
                 roles: frozenset[str] | None = None) -> None:
        self.ledger = ledger
        self.operator = operator
        self.dept = dept
        self.queue_tag = queue_tag or default_tag(ledger.node_id)
        self.dry_run = dry_run
        self.roles = roles  # what the operator may do (edge_node.roles; None: unchecked)

    def dry(self) -> LabService:
        """The same service checking instead of writing (nothing signed or stored)."""
        return LabService(self.ledger, self.operator, dept=self.dept,
                          queue_tag=self.queue_tag, dry_run=True, roles=self.roles)

    def today(self) -> str:
        """This counter's day (``YYYY-MM-DD`` in the hospital's time zone)."""
        return self.ledger.rule_config.on(self.ledger.now_ms()).today

    def _day_of(self, ms: int) -> str:
        return self.ledger.rule_config.on(ms).today

    # -- reading --------------------------------------------------------------------------
    async def patient_of_card(self, card_no: str) -> str:
        """The patient behind a card (any status: the window still sees who it is)."""
        card = await self.ledger.get(Card, card_no)
        if card is None:
            raise _refuse("card.unknown", f"card {card_no} is not known at this counter",
                          "card_no", card=card_no)
        return str(card.patient_id)

    async def patient(self, patient_id: str) -> Patient:
        p = await self.ledger.get(Patient, patient_id)
        if p is None:
            raise _refuse("patient.unknown", f"no patient {patient_id} is known at this "
                          "counter", "patient_id", patient=patient_id)
        return p  # type: ignore[no-any-return]

    async def balance(self, patient_id: str) -> Fen:
        acct = await self.ledger.get(Account, patient_id)
        return int(acct.balance) if acct is not None else 0

    async def orders_of(self, patient_id: str) -> list[Order]:
        """The patient's lab and exam orders (any window, any stage), oldest first."""
        rows = await self.ledger.find(Order, "patient_id", patient_id, limit=2000)
        return sorted((o for o in rows if o.placed_at and o.type in TYPES), key=_placed)

    async def waiting(self, patient_id: str) -> list[Order]:
        """This patient's active orders for this window's department, oldest first:
        to check in, checked in, collected, and executed awaiting the result."""
        return [o for o in await self.orders_of(patient_id)
                if o.exec_dept == self.dept and o.active]

    async def elsewhere(self, patient_id: str) -> list[Order]:
        """The patient's active lab and exam orders done at other windows (a desk says
        where to go)."""
        return [o for o in await self.orders_of(patient_id)
                if o.exec_dept != self.dept and o.active]

    async def worklist(self, day: str = "") -> Worklist:
        """The window's ``day`` (today): orders sent that day still to check in, and the
        orders checked in here that day by stage, each group oldest first."""
        day = day or self.today()
        rows = await self.ledger.find(Order, "exec_dept", self.dept, order="placed_at DESC",
                                      limit=WORKLIST_READ)
        groups: dict[str, list[Order]] = {g: [] for g in GROUPS}
        for o in rows:
            if not o.placed_at or o.type not in TYPES:
                continue
            stage = o.stage
            if stage == "placed":
                if self._day_of(o.wall_ms) == day:
                    groups["placed"].append(o)
            elif stage in groups and o.day == day:
                groups[stage].append(o)
        names: dict[str, str] = {}
        out: dict[str, tuple[WorkItem, ...]] = {}
        for g, orders in groups.items():
            orders.sort(key=lambda o: (o.checked_in_at or o.placed_at) if g != "placed"
                        else o.placed_at)
            items = []
            for o in orders:
                if o.patient_id not in names:
                    p = await self.ledger.get(Patient, o.patient_id)
                    names[o.patient_id] = p.name if p is not None else ""
                items.append(WorkItem(o, names[o.patient_id]))
            out[g] = tuple(items)
        return Worklist(day, out)

    async def changes(self) -> int:
        """A number that moves whenever the ledger takes an event (own or synced)."""
        return await self.ledger.last_arrival()

    # -- check-in -------------------------------------------------------------------------
    async def check_in(self, order_id: str, patient_id: str = "", *,
                       approval: Approval | None = None) -> CheckInReceipt:
        """Check ``order_id`` in at this window, in one append: the next queue number of
        this window's series, a specimen id for a lab order, and the charge due now.

        ``patient_id``: the patient on the desk (an order of another patient is refused);
        "" checks the order in for whoever it belongs to.

        ``approval``: a supervisor's (:func:`edge_node.staff.approve`), which a charge
        past the offline limits (and a card number typed by hand) needs.
        """
        roles.check(self.roles, "lab.execute")
        if not self.dept:
            raise _refuse("lab.no_dept", "this window has no department configured",
                          "dept")
        day = self.today()
        dept, tag = self.dept, self.queue_tag

        def body(ctx: OpContext) -> dict[str, Any]:
            o = ctx.state.get(Order, order_id)
            if o is None or not o.placed_at:
                raise _refuse("order.unknown", f"order {order_id} is not known at this "
                              "counter", "order_id", order=order_id)
            series = ctx.state.get_or_new(QueueSeries, (queue_key(dept, day), tag))
            n = series.last + 1
            return {"order_id": order_id, "patient_id": patient_id or o.patient_id,
                    "dept": dept, "day": day, "queue_tag": tag, "queue_no": n,
                    # (no day or a full series: the decode refuses the body, in words)
                    "specimen_id": (specimen_id(tag, day, n) if o.type == "lab" and day
                                    and n <= MAX_SPECIMEN_SEQ else ""),
                    "charged": due_at_execution(o), **supervisor_field(approval)}
        need: set[Ref] = {(Order, order_id), (QueueSeries, (queue_key(dept, day), tag))}
        events, state = await self._append([Op("order.checked_in", body, frozenset(need))])
        ev = events[0]
        o = state.get(Order, order_id)
        assert o is not None
        pid = str(ev.body["patient_id"])
        patient = await self.patient(pid)  # (its name opened: Ledger.shown)
        acct = state.get(Account, pid) or await self.ledger.get(Account, pid)
        return CheckInReceipt(o, patient, queue_label(tag, int(ev.body["queue_no"])),
                              str(ev.body.get("specimen_id", "")), int(ev.body["charged"]),
                              acct.balance if acct is not None else 0, (ev,), self.dry_run)

    # -- the steps after it ---------------------------------------------------------------
    async def collect(self, order_id: str, patient_id: str = "") -> Order:
        """The specimen of a lab order was collected."""
        roles.check(self.roles, "lab.execute")
        return await self._step(order_id, "collected", patient_id)

    async def execute(self, order_id: str, patient_id: str = "") -> Order:
        """The exam or test was done: from now on the order cannot be cancelled."""
        roles.check(self.roles, "lab.execute")
        return await self._step(order_id, "executed", patient_id)

    async def result(self, order_id: str, text: str = "", report_ref: str = "",
                     patient_id: str = "") -> Order:
        """The result is ready: a short text, or the number of the LIS/PACS report (or
        both).  A later result corrects an earlier one."""
        roles.check(self.roles, "lab.execute")
        return await self._step(order_id, "resulted", patient_id, text.strip(),
                                report_ref.strip())

    async def _step(self, order_id: str, step: str, patient_id: str, result: str = "",
                    report_ref: str = "") -> Order:
        dept = self.dept

        def body(ctx: OpContext) -> dict[str, Any]:
            o = ctx.state.get(Order, order_id)
            if o is None or not o.placed_at:
                raise _refuse("order.unknown", f"order {order_id} is not known at this "
                              "counter", "order_id", order=order_id)
            if o.type in TYPES and o.exec_dept != dept:
                raise _refuse("order.wrong_window", f"order {order_id} is done at "
                              f"{o.exec_dept}", "order_id", order=order_id,
                              dept=o.exec_dept)
            b: dict[str, Any] = {"order_id": order_id,
                                 "patient_id": patient_id or o.patient_id, "step": step}
            if result:
                b["result"] = result
            if report_ref:
                b["report_ref"] = report_ref
            return b
        _, state = await self._append([Op("order.progressed", body,
                                          frozenset({(Order, order_id)}))])
        out = state.get(Order, order_id)
        assert out is not None
        return out

    # -- labels ---------------------------------------------------------------------------
    def label(self, receipt: CheckInReceipt, *, timezone: str = "Asia/Shanghai",
              language: str = "zh") -> Label | None:
        """The tube label of a lab check-in (None for an exam: no specimen)."""
        if not receipt.specimen_id:
            return None
        o, p = receipt.order, receipt.patient
        now = self.ledger.now_ms()
        return specimen_label(receipt.specimen_id, name=p.name, patient_id=p.patient_id,
                              order_id=o.order_id, items=[ln[1] for ln in o.line_list()],
                              collected_ms=now, sex=p.sex,
                              age=_age(p.birth_date, now, timezone), timezone=timezone,
                              language=language)

    # -- appending ------------------------------------------------------------------------
    async def _append(self, ops: list[Op]) -> tuple[list[Event], State]:
        if self.dry_run:
            result = await self.ledger.check_ops(ops, self.operator)
        else:
            result = await self.ledger.append_ops(ops, self.operator)
        return [a.event for a in result.appended], result.state


__all__ = ["GROUPS", "TYPES", "CheckInReceipt", "LabService", "WorkItem", "Worklist"]
