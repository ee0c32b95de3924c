"""The doctor's station (DOMAIN 3.5–3.7, 3.10): the patient's record, the consultation,
diagnoses, allergies, insurance class, and orders with their checks, sent and cancelled.

What the doctor's TUI and tests call; nothing here touches SQL (ledger queries on the
indexed columns only).  As everywhere, a refusal raises
:class:`~edge_node.errors.OperationRefused` with every problem and writes nothing, and
:meth:`ClinicService.dry` checks instead of writing.

Theory of the checks
--------------------
Before an order is sent, :meth:`ClinicService.check_order` lists *findings*:

* **blocks** are exactly what the append would refuse: the order events are run through
  the ledger's own dry run (:meth:`~edge_node.ledger.Ledger.check_ops`, the one append
  path), so the kind's rule (:mod:`protocol.order`) decides — an item not in the
  catalogue version or at another price, a stale version, a dose above the item's
  single or daily maximum, a recorded allergy, a deposit that does not cover what is
  charged now (with how much is short, over all the orders together);
* **warnings** are the service's own, softer checks: the drug is not in stock at its
  pharmacy as this counter knows it (or its stock is not known here at all), the same
  drug is already on an active prescription, the item is not (or only partly) covered
  by the patient's insurance class.

:meth:`ClinicService.send_order` runs the same checks and refuses while a block stands
or a warning was not accepted (``accept_warnings``): a warning is never skipped without
the doctor having seen it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from edge_node import roles
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger, Op, OpContext
from edge_node.staff import Approval, supervisor_field
from protocol import catalogue
from protocol.account import Account, funds
from protocol.card import Card
from protocol.catalogue import HEAD, CatalogueHead, CatalogueItem, Template
from protocol.clinical import Profile
from protocol.core import State
from protocol.errors import Problem
from protocol.event import Event
from protocol.order import Order, active_codes
from protocol.patient import Patient
from protocol.stock import Stock
from protocol.visit import Diagnosis, Visit

Fen = int
ORDERABLE = ("lab", "exam", "drug")
BLOCK, WARNING = "block", "warning"
#: the service's warnings (each also a ``problem.<code>`` template in the string table)
WARNINGS = ("order.stock_unknown", "order.stock_short", "order.same_drug",
            "order.not_covered", "order.partly_covered")


@dataclass(frozen=True, slots=True)
class OrderLine:
    """One line of an order being written: an item priced from catalogue ``version``."""

    code: str
    name: str
    qty: int
    unit_price: Fen
    type: str = ""  # lab | exam | drug
    dept: str = ""  # the executing department (the item's)
    unit: str = ""
    dose: int = 0  # drugs: per take, in the item's dose unit
    per_day: int = 0
    days: int = 0
    dose_unit: str = ""
    insurance: str = ""
    version: int = 0

    @property
    def amount(self) -> Fen:
        return self.qty * self.unit_price

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "name": self.name, "qty": self.qty,
                               "unit_price": self.unit_price}
        if self.type == "drug":
            out.update(dose=self.dose, per_day=self.per_day, days=self.days)
        return out


@dataclass(frozen=True, slots=True)
class Finding:
    """One result of the order checks: a block (cannot send) or a warning (confirm)."""

    level: str  # BLOCK | WARNING
    problem: Problem
    item: str = ""  # the line's code it is about ("" for the whole order)

    @property
    def code(self) -> str:
        return self.problem.code

    @property
    def key(self) -> str:
        """What accepting this very warning means: its code and item."""
        return f"{self.code}:{self.item}" if self.item else self.code

    @property
    def blocks(self) -> bool:
        return self.level == BLOCK


@dataclass(frozen=True, slots=True)
class VisitEntry:
    visit: Visit
    diagnoses: tuple[Diagnosis, ...]


@dataclass(frozen=True, slots=True)
class ClinicView:
    """Everything the doctor sees of a patient (newest first)."""

    patient: Patient
    account: Account
    insurance: str  # none | employee | resident ("" unknown: treated as self-pay)
    allergies: tuple[tuple[str, str], ...]  # (substance, reaction) in force
    visits: tuple[VisitEntry, ...]
    orders: tuple[Order, ...]
    #: prescriptions with anything dispensed, and lab or exam orders with a result (a short
    #: text or the LIS/PACS report number), newest first: what came back from the
    #: pharmacy and the lab window by sync
    dispensed: tuple[Order, ...] = ()
    results: tuple[Order, ...] = ()

    @property
    def balance(self) -> Fen:
        return self.account.balance


@dataclass(frozen=True, slots=True)
class OrderReceipt:
    """What an order operation wrote (or, from :meth:`ClinicService.dry`, would write)."""

    orders: tuple[Order, ...]
    events: tuple[Event, ...]
    balance: Fen
    preview: bool = False


@dataclass(frozen=True, slots=True)
class Started:
    """A consultation started (:meth:`ClinicService.begin`; or, from its dry run, what
    would be written): the visit, the events (the consultation fee's among them when it
    is charged now) and the balance after."""

    visit: Visit
    events: tuple[Event, ...]
    balance: Fen
    fee: Fen = 0  # the consultation fee charged now (0: none, or charged before)
    preview: bool = False


def _refuse(code: str, message: str, field: str = "", **values: object) -> OperationRefused:
    return OperationRefused([Problem(code, message, field, values)])


class ClinicService:
    """The doctor's operations on one ledger, as the logged-in ``operator`` (the doctor).

    ``consult_code``: the catalogue's consultation item a visit is charged (by hospital
    setting); "" takes the cheapest consultation item of the current version.
    """

    def __init__(self, ledger: Ledger, operator: str = "", *, consult_code: str = "",
                 dry_run: bool = False, roles: frozenset[str] | None = None) -> None:
        self.ledger = ledger
        self.operator = operator
        self.consult_code = consult_code
        self.dry_run = dry_run
        self.roles = roles  # what the operator may do (edge_node.roles; None: unchecked)

    def dry(self) -> ClinicService:
        """The same service checking instead of writing (nothing signed or stored)."""
        return ClinicService(self.ledger, self.operator, consult_code=self.consult_code,
                             dry_run=True, roles=self.roles)

    # -- reading --------------------------------------------------------------------------
    async def patient_of_card(self, card_no: str) -> str:
        """The patient behind a card (any status: the doctor still sees who it is)."""
        card = await self.ledger.get(Card, card_no)
        if card is None:
            raise _refuse("card.unknown", f"card {card_no} is not known at this counter",
                          "card_no", card=card_no)
        return str(card.patient_id)

    async def patient_view(self, patient_id: str) -> ClinicView:
        led = self.ledger
        patient = await led.get(Patient, patient_id)
        if patient is None:
            raise _refuse("patient.unknown", f"no patient {patient_id} is known at this "
                          "counter", "patient_id", patient=patient_id)
        account = await led.get(Account, patient_id) or Account(patient_id)
        profile = await led.get(Profile, patient_id) or Profile(patient_id)
        visits = [v for v in await led.find(Visit, "patient_id", patient_id, limit=500)
                  if v.registered_at]
        visits.sort(key=lambda v: v.registered_at, reverse=True)
        diagnoses: dict[str, list[Diagnosis]] = {}
        for d in await led.find(Diagnosis, "patient_id", patient_id, limit=2000):
            diagnoses.setdefault(d.visit_id, []).append(d)
        for ds in diagnoses.values():
            ds.sort(key=lambda d: d.at)
        orders = [o for o in await led.find(Order, "patient_id", patient_id, limit=2000)
                  if o.placed_at]
        orders.sort(key=lambda o: o.placed_at, reverse=True)
        return ClinicView(patient, account, profile.insurance,
                          tuple(profile.active_allergies()),
                          tuple(VisitEntry(v, tuple(diagnoses.get(v.visit_id, ())))
                                for v in visits), tuple(orders),
                          tuple(o for o in orders if any(o.dispensed_qty().values())),
                          tuple(o for o in orders if o.result_at))

    async def visit_today(self, patient_id: str, dept: str = "") -> Visit | None:
        """The patient's visit of today (to ``dept`` if given) still open, newest first."""
        today = self.ledger.rule_config.on(self.ledger.now_ms()).today
        rows = await self.ledger.find(Visit, "patient_id", patient_id, limit=500)
        open_ = [v for v in rows if v.registered_at and v.day == today
                 and (not dept or v.dept == dept) and v.status not in ("done", "no_show")]
        open_.sort(key=lambda v: v.registered_at, reverse=True)
        return open_[0] if open_ else None

    async def head(self) -> CatalogueHead:
        head = await self.ledger.get(CatalogueHead, HEAD)
        if head is None or not head.version:
            raise OperationRefused(catalogue.check_version(State(), 1))
        return head  # type: ignore[no-any-return]

    async def _items(self, version: str) -> list[CatalogueItem]:
        return await self.ledger.find(CatalogueItem, "version", version, limit=100_000)

    async def search_items(self, query: str, types: Sequence[str] = ORDERABLE,
                           limit: int = 50) -> list[CatalogueItem]:
        """Items of the current catalogue version by code, name or pinyin initials
        (prefix first, then contains), of ``types`` only."""
        q = query.strip().casefold()
        head = await self.head()
        ranked: list[tuple[int, str, CatalogueItem]] = []
        for item in await self._items(head.version):
            if item.type not in types:
                continue
            code, name, py = item.code.casefold(), item.name.casefold(), item.pinyin.casefold()
            if not q:
                rank = 9
            elif code == q:
                rank = 0
            elif code.startswith(q):
                rank = 1
            elif py.startswith(q):
                rank = 2
            elif name.startswith(q):
                rank = 3
            elif q in name:
                rank = 4
            elif q in py or q in code:
                rank = 5
            else:
                continue
            ranked.append((rank, item.code, item))
        ranked.sort(key=lambda r: (r[0], r[1]))
        return [r[2] for r in ranked[:limit]]

    async def templates(self, type: str = "") -> list[Template]:
        """The current version's requisition or prescription templates (both if "")."""
        head = await self.head()
        rows = await self.ledger.find(Template, "version", head.version, limit=5000)
        return [t for t in rows if not type or t.type == type]

    async def line(self, code: str, qty: int = 1, dose: int = 0, per_day: int = 0,
                   days: int = 0) -> OrderLine:
        """A line for item ``code`` priced from the current catalogue version."""
        head = await self.head()
        item = await self.ledger.get(CatalogueItem, (head.version, code))
        if item is None or item.type not in ORDERABLE:
            raise OperationRefused([Problem(
                "catalogue.unknown_item", f"{code} is not an orderable item of catalogue "
                f"version {head.number}", "lines", {"code": code})])
        return priced_line(item, head.number, qty, dose, per_day, days)

    async def template_lines(self, code: str) -> list[OrderLine]:
        """A template's lines priced from the current version (an item the version no
        longer has stays as a line the checks will block, named by its code)."""
        head = await self.head()
        t = await self.ledger.get(Template, (head.version, code))
        if t is None:
            raise _refuse("order.unknown_template", f"no template {code} in catalogue "
                          f"version {head.number}", "template", template=code)
        out = []
        for c, qty, dose, per_day, days in t.parsed():
            item = await self.ledger.get(CatalogueItem, (head.version, c))
            if item is None:
                out.append(OrderLine(c, c, qty, 0, "drug" if t.type == "prescription"
                                     else "lab", "", "", dose, per_day, days,
                                     version=head.number))
            else:
                out.append(priced_line(item, head.number, qty, dose, per_day, days))
        return out

    # -- the consultation -----------------------------------------------------------------
    async def consult_item(self) -> CatalogueItem | None:
        """The consultation fee item: the configured one, else the cheapest."""
        head = await self.head()
        if self.consult_code:
            item = await self.ledger.get(CatalogueItem, (head.version, self.consult_code))
            if item is not None and item.type == "consultation":
                return item  # type: ignore[no-any-return]
        items = [i for i in await self._items(head.version) if i.type == "consultation"]
        items.sort(key=lambda i: (i.price, i.code))
        return items[0] if items else None

    async def _visit(self, visit_id: str) -> Visit:
        v = await self.ledger.get(Visit, visit_id)
        if v is None or not v.registered_at:
            raise _refuse("visit.unknown", f"visit {visit_id} is not known at this counter",
                          "visit_id", visit=visit_id)
        return v  # type: ignore[no-any-return]

    async def start(self, visit_id: str, room: str = "", *,
                    approval: Approval | None = None) -> Visit:
        """Start the consultation: ``visit.progressed`` "started" and, once per visit, the
        consultation fee (``visit.fee_charged``) in the same append.  A visit already in
        consultation is only charged if it never was.

        ``approval``: a supervisor's (:func:`edge_node.staff.approve`), which a charge
        past the offline limits (and a card number typed by hand) needs."""
        return (await self.begin(visit_id, room, approval=approval)).visit

    async def begin(self, visit_id: str, room: str = "", *,
                    approval: Approval | None = None) -> Started:
        """:meth:`start`, saying what it wrote and charged (and the balance after)."""
        roles.check(self.roles, "clinic.consult")
        v = await self._visit(visit_id)
        fee = 0
        ops: list[Op] = []
        if v.status != "consulting":
            body: dict[str, Any] = {"visit_id": visit_id, "patient_id": v.patient_id,
                                    "step": "started"}
            if room:
                body["room"] = room
            ops.append(Op("visit.progressed", body))
        if not v.consult_at:
            item = await self.consult_item()
            if item is not None and item.price > 0:
                fee = item.price
                ops.append(Op("visit.fee_charged", {
                    "visit_id": visit_id, "patient_id": v.patient_id, "code": item.code,
                    "name": item.name, "amount": item.price,
                    "catalogue_version": int(item.version), **supervisor_field(approval)}))
        if not ops:
            acct = await self.ledger.get(Account, v.patient_id)
            return Started(v, (), acct.balance if acct is not None else 0, 0, self.dry_run)
        events, state = await self._append(ops)
        acct = state.get(Account, v.patient_id) or await self.ledger.get(Account, v.patient_id)
        return Started(state.get(Visit, visit_id) or v, tuple(events),
                       acct.balance if acct is not None else 0, fee, self.dry_run)

    async def finish(self, visit_id: str) -> Visit:
        roles.check(self.roles, "clinic.consult")
        return await self._step(visit_id, "done")

    async def no_show(self, visit_id: str) -> Visit:
        roles.check(self.roles, "clinic.consult")
        return await self._step(visit_id, "no_show")

    async def _step(self, visit_id: str, step: str) -> Visit:
        v = await self._visit(visit_id)
        state = await self._run([Op("visit.progressed", {
            "visit_id": visit_id, "patient_id": v.patient_id, "step": step})])
        return state.get(Visit, visit_id) or v

    async def diagnose(self, visit_id: str, text: str, icd10: str = "") -> Diagnosis:
        """A diagnosis of the visit: free text and an optional ICD-10 code (the body
        checks its form: ``J06.9``)."""
        roles.check(self.roles, "clinic.consult")
        v = await self._visit(visit_id)
        body: dict[str, Any] = {"visit_id": visit_id, "patient_id": v.patient_id,
                                "text": text.strip()}
        if icd10.strip():
            body["icd10"] = icd10.strip().upper()
        state = await self._run([Op("visit.diagnosed", lambda ctx: {
            **body, "diagnosis_id": ctx.new_id("D")})])
        return state.all(Diagnosis)[0]

    async def record_allergy(self, patient_id: str, substance: str,
                             reaction: str = "") -> Profile:
        roles.check(self.roles, "clinic.consult")
        body: dict[str, Any] = {"patient_id": patient_id, "substance": substance.strip()}
        if reaction.strip():
            body["reaction"] = reaction.strip()
        state = await self._run([Op("patient.allergy_recorded", body)])
        return state.get_or_new(Profile, patient_id)

    async def withdraw_allergy(self, patient_id: str, substance: str) -> Profile:
        roles.check(self.roles, "clinic.consult")
        state = await self._run([Op("patient.allergy_recorded", {
            "patient_id": patient_id, "substance": substance.strip(), "active": 0})])
        return state.get_or_new(Profile, patient_id)

    async def set_insurance(self, patient_id: str, insurance: str) -> Profile:
        roles.check(self.roles, "clinic.consult")
        state = await self._run([Op("patient.insurance_set", {
            "patient_id": patient_id, "insurance": insurance})])
        return state.get_or_new(Profile, patient_id)

    # -- orders ---------------------------------------------------------------------------
    async def _order_ops(self, visit: Visit, lines: Sequence[OrderLine],
                         template: str = "", approval: Approval | None = None) -> list[Op]:
        """One ``order.placed`` per executing department (and order type), priced as the
        lines were, charged now or at execution by the catalogue head's setting."""
        head = await self.ledger.get(CatalogueHead, HEAD)
        charge_now = head is None or head.charge_at == "send"
        groups: dict[tuple[str, str], list[OrderLine]] = {}
        for ln in lines:
            groups.setdefault((ln.dept, ln.type if ln.type in ORDERABLE else "drug"),
                              []).append(ln)
        ops = []
        for (dept, type_), group in groups.items():
            total = sum(ln.amount for ln in group)
            version = min(ln.version for ln in group) or (head.number if head else 1)
            body: dict[str, Any] = {
                "visit_id": visit.visit_id, "patient_id": visit.patient_id, "type": type_,
                "exec_dept": dept or "-", "catalogue_version": version,
                "lines": [ln.wire() for ln in group], "total": total,
                "charged": total if charge_now else 0, **supervisor_field(approval)}
            if template:
                body["template"] = template

            def build(ctx: OpContext, body: dict[str, Any] = body) -> dict[str, Any]:
                return {**body, "order_id": ctx.new_id("O")}
            ops.append(Op("order.placed", build))
        return ops

    async def check_order(self, visit_id: str, lines: Sequence[OrderLine],
                          template: str = "", approval: Approval | None = None
                          ) -> list[Finding]:
        """Every block and warning for sending ``lines`` on visit ``visit_id`` now."""
        if not lines:
            return [Finding(BLOCK, Problem("order.empty", "add at least one item", "lines"))]
        v = await self._visit(visit_id)
        ops = await self._order_ops(v, lines, template, approval)
        blocks: list[Problem] = []
        for op in ops:  # each order alone: every order's own refusals
            try:
                await self.ledger.check_ops([op], self.operator or "-")
            except OperationRefused as exc:
                blocks += exc.problems
        # the deposit over all the orders together (the rule sees one order at a time)
        blocks = [p for p in blocks if p.code != "charge.insufficient"]
        account = await self.ledger.get(Account, v.patient_id) or Account(v.patient_id)
        head = await self.ledger.get(CatalogueHead, HEAD)
        if head is None or head.charge_at == "send":
            st = State()
            st.put(account)
            blocks += funds(st, v.patient_id, sum(ln.amount for ln in lines), "total")
        out = _dedupe([Finding(BLOCK, p, str(p.values.get("code", ""))) for p in blocks])
        return out + await self._warnings(v.patient_id, lines)

    async def _warnings(self, patient_id: str, lines: Sequence[OrderLine]) -> list[Finding]:
        out: list[Finding] = []
        profile = await self.ledger.get(Profile, patient_id)
        insured = profile is not None and profile.insurance in ("employee", "resident")
        orders = await self.ledger.find(Order, "patient_id", patient_id, limit=2000)
        active = active_codes(orders)
        for ln in lines:
            if ln.type == "drug":
                stock = await self.ledger.get(Stock, (ln.dept, ln.code))
                if stock is None:
                    out.append(Finding(WARNING, Problem(
                        "order.stock_unknown", f"{ln.name}: the stock of {ln.dept or '-'} is "
                        "not known at this counter", "lines",
                        {"item": ln.name, "pharmacy": ln.dept or "-"}), ln.code))
                elif stock.on_hand < ln.qty:
                    out.append(Finding(WARNING, Problem(
                        "order.stock_short", f"{ln.name}: {stock.on_hand} {ln.unit} on hand "
                        f"at {ln.dept}, {ln.qty} prescribed", "lines",
                        {"item": ln.name, "have": stock.on_hand, "qty": ln.qty,
                         "unit": ln.unit, "pharmacy": ln.dept}), ln.code))
                if ln.code in active:
                    out.append(Finding(WARNING, Problem(
                        "order.same_drug", f"{ln.name} is already prescribed in order "
                        f"{active[ln.code]}, not yet cancelled", "lines",
                        {"item": ln.name, "order": active[ln.code]}), ln.code))
            if insured and ln.insurance in ("丙", ""):
                out.append(Finding(WARNING, Problem(
                    "order.not_covered", f"{ln.name} is not covered by the patient's "
                    "insurance: self-pay", "lines", {"item": ln.name}), ln.code))
            elif insured and ln.insurance == "乙":
                out.append(Finding(WARNING, Problem(
                    "order.partly_covered", f"{ln.name} is only partly covered by the "
                    "patient's insurance (class B)", "lines", {"item": ln.name}), ln.code))
        return out

    async def send_order(self, visit_id: str, lines: Sequence[OrderLine], *,
                         accept_warnings: Iterable[str] = (),
                         template: str = "",
                         approval: Approval | None = None) -> OrderReceipt:
        """Send ``lines`` as one order per executing department, in one append.

        Refuses while a check blocks, or while a warning is not in ``accept_warnings``
        (its :attr:`Finding.key`, or its code to accept every warning of that code).
        """
        roles.check(self.roles, "clinic.order")
        findings = await self.check_order(visit_id, lines, template, approval)
        blocks = [f.problem for f in findings if f.blocks]
        if blocks:
            raise OperationRefused(blocks)
        accepted = set(accept_warnings)
        open_ = [f for f in findings if f.key not in accepted and f.code not in accepted]
        if open_:
            raise OperationRefused([Problem(
                "order.unconfirmed", f"{len(open_)} warning(s) not confirmed: read them and "
                "confirm before sending", "lines", {"n": len(open_)}),
                *(f.problem for f in open_)])
        v = await self._visit(visit_id)
        ops = await self._order_ops(v, lines, template, approval)
        events, state = await self._append(ops)
        orders = tuple(o for e in events
                       if (o := state.get(Order, str(e.body["order_id"]))) is not None)
        acct = state.get(Account, v.patient_id) or await self.ledger.get(
            Account, v.patient_id) or Account(v.patient_id)
        return OrderReceipt(orders, tuple(events), acct.balance, self.dry_run)

    async def cancel_order(self, order_id: str, reason: str) -> OrderReceipt:
        """Cancel an order not executed yet, returning what it charged to the deposit
        in the same event (``refund`` = all it charged, when sent and at check-in, −
        refunded), approved by the logged-in doctor (DOMAIN 3.10).

        The approval is the operator's name for now: once the trust issue's approvals
        exist it becomes a credential the rule checks (a signed approval by a doctor).
        """
        roles.check(self.roles, "clinic.order")
        o = await self.ledger.get(Order, order_id)
        if o is None or not o.placed_at:
            raise _refuse("order.unknown", f"order {order_id} is not known at this counter",
                          "order_id", order=order_id)
        if not reason.strip():
            raise _refuse("order.reason", "give the reason for cancelling", "reason")
        events, state = await self._append([Op("order.cancelled", {
            "order_id": order_id, "patient_id": o.patient_id,
            "refund": max(0, o.total_charged - o.refunded), "reason": reason.strip(),
            "approved_by": self.operator or "-"})])
        out = state.get(Order, order_id) or o
        acct = state.get(Account, o.patient_id) or Account(o.patient_id)
        return OrderReceipt((out,), tuple(events), acct.balance, self.dry_run)

    # -- appending ------------------------------------------------------------------------
    async def _append(self, ops: list[Op]) -> tuple[list[Event], State]:
        if self.dry_run:
            result = await self.ledger.check_ops(ops, self.operator)
        else:
            result = await self.ledger.append_ops(ops, self.operator)
        return [a.event for a in result.appended], result.state

    async def _run(self, ops: list[Op]) -> State:
        return (await self._append(ops))[1]


def priced_line(item: CatalogueItem, version: int, qty: int = 1, dose: int = 0,
                per_day: int = 0, days: int = 0) -> OrderLine:
    return OrderLine(item.code, item.name, qty, item.price, item.type, item.dept, item.unit,
                     dose, per_day, days, item.dose_unit, item.insurance, version)


def repriced(line: OrderLine, item: CatalogueItem | None, version: int) -> OrderLine:
    """``line`` priced again from ``item`` of ``version`` (kept as it was if gone)."""
    if item is None:
        return line
    return replace(line, name=item.name, unit_price=item.price, dept=item.dept,
                   insurance=item.insurance, unit=item.unit, version=version)


def _dedupe(findings: list[Finding]) -> list[Finding]:
    seen: set[tuple[str, str]] = set()
    out = []
    for f in findings:
        k = (f.code, f.problem.message)
        if k not in seen:
            seen.add(k)
            out.append(f)
    return out


def amount_short(findings: Iterable[Finding]) -> Fen:
    """How much the deposit is short for the order (0: it covers it)."""
    for f in findings:
        if f.code == "charge.insufficient":
            short = f.problem.values.get("short", 0)
            return int(short) if isinstance(short, int) else 0
    return 0


__all__ = ["BLOCK", "WARNING", "ClinicService", "ClinicView", "Finding",
           "OrderLine", "OrderReceipt", "VisitEntry", "amount_short", "priced_line",
           "repriced"]
