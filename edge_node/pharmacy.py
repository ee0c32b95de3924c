"""The pharmacy (DOMAIN 3.9–3.10): prescriptions dispensed from this pharmacy's stock,
undispensed items returned to the deposit, and the stock itself — receipts from the store
room, transfers to another pharmacy, adjustments with a reason — and its report.

What the pharmacy desk (:mod:`edge_node.tui.screens.pharmacy`), the ``onecard-edge
stock`` command and tests call; nothing here touches SQL (ledger queries on indexed
columns only).  As everywhere, a refusal raises :class:`~edge_node.errors.OperationRefused`
with every problem and writes nothing, and :meth:`PharmacyService.dry` checks instead of
writing.

The pharmacy is the counter's ``department`` (config, e.g. ``PHA-OP``): its stock
location and the executing department of the prescriptions it dispenses.

Theory of dispensing
--------------------
One ``order.dispensed`` event prices (the order's own prices), charges and takes the
drugs from stock (:mod:`protocol.execution`).  It charges the lines' price when the order
was not charged when it was sent (the hospital charges at execution), else nothing.
Without lines, :meth:`PharmacyService.dispense` gives everything left that this
pharmacy's stock covers as this counter knows it; what stock does not cover stays open
and can be dispensed after the next receipt, or returned (:meth:`return_rest`).  Offline,
the same works with the stock this counter knows; two pharmacies giving the same
prescription, or stock taken below zero together, come back from central as conflicts.

Dispense ids are made by the ledger's id allocator (``F-<node>-<seq>``): no other counter
can make the same one, even offline.

Low stock: an item is low when what is on hand is at or below its level — the config's
``[low_stock_items]`` entry for the item, else ``low_stock`` (default 10).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_node import roles
from edge_node.errors import OperationRefused
from edge_node.i18n import Translator
from edge_node.labels import Label, dispense_label
from edge_node.ledger import Ledger, Op, OpContext
from edge_node.staff import Approval, supervisor_field
from protocol.account import Account
from protocol.card import Card
from protocol.catalogue import HEAD, CatalogueHead, CatalogueItem, vkey
from protocol.core import State
from protocol.errors import Problem
from protocol.event import Event
from protocol.execution import return_refund
from protocol.order import Order
from protocol.patient import Patient
from protocol.stock import Stock

Fen = int
#: the reasons staff choose from for an adjustment (transfers have their own event)
ADJUST_REASONS = ("expired", "damaged", "count")
DEFAULT_LOW_STOCK = 10
#: dispense ids: ``F-pharmacy-01-000042`` (发药)
DISPENSE_PREFIX = "F"


def _refuse(code: str, message: str, field: str = "", **values: object) -> OperationRefused:
    return OperationRefused([Problem(code, message, field, values)])


@dataclass(frozen=True, slots=True)
class WaitingLine:
    """One line of a prescription as the pharmacy sees it."""

    code: str
    name: str
    qty: int  # prescribed
    unit_price: Fen
    dose: int
    per_day: int
    days: int
    dispensed: int
    returned: int
    left: int  # still to dispense
    on_hand: int | None  # this pharmacy's stock as this counter knows it (None: never)
    unit: str = ""
    dose_unit: str = ""
    strength: str = ""

    @property
    def can_give(self) -> int:
        """What this pharmacy can dispense of it now: what is left, as far as stock goes."""
        return max(0, min(self.left, self.on_hand or 0))

    @property
    def short(self) -> int:
        """How much of what is left the stock does not cover."""
        return self.left - self.can_give


@dataclass(frozen=True, slots=True)
class Prescription:
    """A prescription waiting at this pharmacy: the order and its lines."""

    order: Order
    lines: tuple[WaitingLine, ...]
    patient_name: str = ""

    @property
    def order_id(self) -> str:
        return self.order.order_id

    @property
    def charged_at_send(self) -> bool:
        """Charged when it was sent: dispensing charges nothing more."""
        return self.order.charged > 0

    @property
    def open_lines(self) -> tuple[WaitingLine, ...]:
        return tuple(ln for ln in self.lines if ln.left > 0)

    @property
    def give_now(self) -> dict[str, int]:
        """What dispensing everything stock covers would give: code → qty."""
        return {ln.code: ln.can_give for ln in self.lines if ln.can_give > 0}

    @property
    def stays_open(self) -> dict[str, int]:
        """What would stay open after that: code → qty the stock is short of."""
        return {ln.code: ln.short for ln in self.lines if ln.short > 0}

    def charge_for(self, lines: Mapping[str, int]) -> Fen:
        """What dispensing ``lines`` charges now (0 when charged at send)."""
        if self.charged_at_send:
            return 0
        prices = {ln.code: ln.unit_price for ln in self.lines}
        return sum(prices.get(c, 0) * q for c, q in lines.items())

    @property
    def refund_rest(self) -> Fen:
        """What returning everything left gives back to the deposit."""
        return return_refund(self.order, {ln.code: ln.left for ln in self.open_lines})


@dataclass(frozen=True, slots=True)
class DispensedItem:
    code: str
    name: str
    qty: int
    unit_price: Fen
    dose: int = 0
    per_day: int = 0
    days: int = 0
    unit: str = ""
    dose_unit: str = ""
    strength: str = ""

    @property
    def amount(self) -> Fen:
        return self.qty * self.unit_price


@dataclass(frozen=True, slots=True)
class DispenseReceipt:
    """What a dispensing wrote (or, from a dry run, would write)."""

    dispense_id: str
    order_id: str
    patient_id: str
    patient_name: str
    pharmacy: str
    items: tuple[DispensedItem, ...]
    amount: Fen  # charged now (0: charged when it was sent)
    balance: Fen
    stays_open: dict[str, int]  # code → qty still to dispense after this
    events: tuple[Event, ...]
    at_ms: int = 0
    preview: bool = False
    patient_sex: str = ""

    @property
    def value(self) -> Fen:
        """The price of what was dispensed (whenever it was charged)."""
        return sum(x.amount for x in self.items)

    def labels(self, language: str = "zh", timezone: str = "Asia/Shanghai") -> list[Label]:
        """One medication label per dispensed line (:func:`edge_node.labels.dispense_label`)."""
        return [dispense_label(
            self.dispense_id, name=self.patient_name, patient_id=self.patient_id,
            drug=x.name, qty=x.qty, unit=x.unit, unit_price=x.unit_price, dose=x.dose,
            dose_unit=x.dose_unit, per_day=x.per_day, days=x.days, order_id=self.order_id,
            pharmacy=self.pharmacy, dispensed_ms=self.at_ms, strength=x.strength,
            sex=self.patient_sex, timezone=timezone, language=language) for x in self.items]


@dataclass(frozen=True, slots=True)
class ReturnReceipt:
    order_id: str
    patient_id: str
    lines: dict[str, int]  # code → qty returned
    refund: Fen
    balance: Fen
    events: tuple[Event, ...]
    preview: bool = False


@dataclass(frozen=True, slots=True)
class StockRow:
    """One item this pharmacy stocks."""

    code: str
    name: str
    unit: str
    on_hand: int
    received: int
    dispensed: int
    adjusted: int
    moved: int
    level: int  # low at or below this
    low: bool


@dataclass(frozen=True, slots=True)
class StockReceipt:
    """What a stock operation wrote: the item's row after it."""

    row: StockRow
    events: tuple[Event, ...]
    preview: bool = False


class PharmacyService:
    """The pharmacy's operations on one ledger, as the logged-in ``operator``, for the
    pharmacy ``pharmacy`` (the counter's ``department``)."""

    def __init__(self, ledger: Ledger, operator: str = "", *, pharmacy: str,
                 low_stock: int = DEFAULT_LOW_STOCK,
                 low_stock_items: Mapping[str, int] | None = None,
                 dry_run: bool = False, roles: frozenset[str] | None = None) -> None:
        self.ledger = ledger
        self.operator = operator
        self.pharmacy = pharmacy
        self.low_stock = low_stock
        self.low_stock_items = dict(low_stock_items or {})
        self.dry_run = dry_run
        self.roles = roles  # what the operator may do (edge_node.roles; None: unchecked)

    def dry(self) -> PharmacyService:
        """The same service checking instead of writing (nothing signed or stored)."""
        return PharmacyService(self.ledger, self.operator, pharmacy=self.pharmacy,
                               low_stock=self.low_stock, low_stock_items=self.low_stock_items,
                               dry_run=True, roles=self.roles)

    def _need_pharmacy(self) -> None:
        if not self.pharmacy:
            raise _refuse("pharmacy.none", "this counter has no pharmacy: set department "
                          "in its config (e.g. PHA-OP)", "department")

    def today(self) -> str:
        return self.ledger.rule_config.on(self.ledger.now_ms()).today

    async def changes(self) -> int:
        """A number that moves whenever the ledger takes an event (own or synced)."""
        return await self.ledger.last_arrival()

    # -- reading --------------------------------------------------------------------------
    async def patient_of_card(self, card_no: str) -> str:
        card = await self.ledger.get(Card, card_no)
        if card is None:
            raise _refuse("card.unknown", f"card {card_no} is not known at this counter",
                          "card_no", card=card_no)
        return str(card.patient_id)

    async def _item(self, o: Order | None, code: str) -> CatalogueItem | None:
        """The catalogue item for ``code``: as the order was priced, else the newest."""
        if o is not None and o.catalogue_version:
            item = await self.ledger.get(CatalogueItem, (vkey(o.catalogue_version), code))
            if item is not None:
                return item  # type: ignore[no-any-return]
        head = await self.ledger.get(CatalogueHead, HEAD)
        if head is None or not head.version:
            return None
        return await self.ledger.get(CatalogueItem, (head.version, code))  # type: ignore[no-any-return]

    async def _prescription(self, o: Order, name: str = "") -> Prescription:
        left, d, r = o.remaining(), o.dispensed_qty(), o.returned_qty()
        lines = []
        for code, lname, qty, price, dose, per_day, days in o.line_list():
            stock = await self.ledger.get(Stock, (self.pharmacy, code))
            item = await self._item(o, code)
            lines.append(WaitingLine(
                code, lname, qty, price, dose, per_day, days, d.get(code, 0), r.get(code, 0),
                left.get(code, 0), None if stock is None else stock.on_hand,
                item.unit if item else "", item.dose_unit if item else "",
                item.strength if item else ""))
        return Prescription(o, tuple(lines), name)

    def _waits_here(self, o: Order) -> bool:
        return (o.type == "drug" and o.active and o.exec_dept == self.pharmacy
                and any(o.remaining().values()))

    async def waiting(self, patient_id: str) -> list[Prescription]:
        """The patient's prescriptions waiting at this pharmacy (oldest first), each line
        with what is left and what this pharmacy has on hand."""
        self._need_pharmacy()
        patient = await self.ledger.get(Patient, patient_id)
        if patient is None:
            raise _refuse("patient.unknown", f"no patient {patient_id} is known at this "
                          "counter", "patient_id", patient=patient_id)
        orders = [o for o in await self.ledger.find(Order, "patient_id", patient_id,
                                                     limit=2000) if self._waits_here(o)]
        orders.sort(key=lambda o: o.placed_at)
        return [await self._prescription(o, patient.name) for o in orders]

    async def worklist(self, day: str | None = None) -> list[Prescription]:
        """Every prescription waiting at this pharmacy sent on ``day`` (default today;
        "": any day), oldest first — it follows sync: poll :meth:`changes`."""
        self._need_pharmacy()
        day = self.today() if day is None else day
        cfg = self.ledger.rule_config
        out = []
        names: dict[str, str] = {}
        orders = [o for o in await self.ledger.find(Order, "exec_dept", self.pharmacy,
                                                     limit=5000) if self._waits_here(o)]
        orders.sort(key=lambda o: o.placed_at)
        for o in orders:
            if day and cfg.on(o.wall_ms).today != day:
                continue
            if o.patient_id not in names:
                p = await self.ledger.get(Patient, o.patient_id)
                names[o.patient_id] = p.name if p is not None else ""
            out.append(await self._prescription(o, names[o.patient_id]))
        return out

    async def _order(self, order_id: str, patient_id: str = "") -> Order:
        o = await self.ledger.get(Order, order_id)
        if o is None or not o.placed_at:
            raise _refuse("order.unknown", f"order {order_id} is not known at this counter",
                          "order_id", order=order_id)
        if patient_id and o.patient_id != patient_id:
            raise _refuse("order.wrong_patient", "that order is another patient's",
                          "order_id", order=order_id)
        if o.type != "drug" or o.exec_dept != self.pharmacy:
            raise _refuse("order.wrong_window", f"order {order_id} is done at {o.exec_dept}",
                          "order_id", order=order_id, dept=o.exec_dept)
        if o.stage in ("dispensed", "returned"):
            raise _refuse("pharmacy.nothing_left", f"order {order_id} has nothing left to "
                          "dispense", "order_id", order=order_id, status=o.stage)
        if o.stage not in ("placed", "part_dispensed"):
            raise _refuse("order.step", f"order {order_id} is {o.stage}: it cannot be "
                          "dispensed", "order_id", order=order_id, status=o.stage,
                          step="dispensed")
        return o  # type: ignore[no-any-return]

    async def prescription(self, order_id: str, patient_id: str = "") -> Prescription:
        """One prescription waiting here (refused as :meth:`dispense` would refuse it)."""
        self._need_pharmacy()
        o = await self._order(order_id, patient_id)
        p = await self.ledger.get(Patient, o.patient_id)
        return await self._prescription(o, p.name if p is not None else "")

    # -- dispensing -----------------------------------------------------------------------
    async def dispense(self, order_id: str, lines: Mapping[str, int] | None = None, *,
                       patient_id: str = "",
                       approval: Approval | None = None) -> DispenseReceipt:
        """Dispense ``lines`` (code → qty) of ``order_id`` in one ``order.dispensed``:
        price, charge and stock deduction together.  None: everything left that this
        pharmacy's stock covers (partial when it is short: the rest stays open).
        ``patient_id``: the patient at the counter (another's order is refused).

        ``approval``: a supervisor's (:func:`edge_node.staff.approve`), which a charge
        past the offline limits (and a card number typed by hand) needs."""
        roles.check(self.roles, "pharmacy.dispense")
        pres = await self.prescription(order_id, patient_id)
        o = pres.order
        if lines is None:
            give = pres.give_now
            if not give:
                raise OperationRefused([Problem(
                    "pharmacy.no_stock", f"{ln.name}: {ln.on_hand or 0} on hand here, "
                    f"{ln.left} to dispense", "lines",
                    {"item": ln.name, "have": ln.on_hand or 0, "left": ln.left})
                    for ln in pres.open_lines])
        else:
            give = {c: q for c, q in lines.items() if q > 0}
            if not give:
                raise _refuse("pharmacy.nothing_chosen", "choose at least one item to "
                              "dispense", "lines")
        by_code = {ln.code: ln for ln in pres.lines}
        wire = [{"code": c, "qty": q,
                 "unit_price": by_code[c].unit_price if c in by_code else 0}
                for c, q in give.items()]
        amount = pres.charge_for(give)
        body: dict[str, Any] = {"order_id": o.order_id, "patient_id": patient_id or o.patient_id,
                                "pharmacy": self.pharmacy, "lines": wire, "amount": amount,
                                **supervisor_field(approval)}

        def build(ctx: OpContext) -> dict[str, Any]:
            return {**body, "dispense_id": ctx.new_id(DISPENSE_PREFIX)}
        events, state, at_ms = await self._append([Op("order.dispensed", build)])
        after = state.get(Order, o.order_id) or o
        acct = state.get(Account, o.patient_id) or await self.ledger.get(
            Account, o.patient_id) or Account(o.patient_id)
        patient = await self.ledger.get(Patient, o.patient_id)
        items = tuple(DispensedItem(c, by_code[c].name, q, by_code[c].unit_price,
                                    by_code[c].dose, by_code[c].per_day, by_code[c].days,
                                    by_code[c].unit, by_code[c].dose_unit, by_code[c].strength)
                      for c, q in give.items() if c in by_code)
        return DispenseReceipt(
            str(events[0].body["dispense_id"]), o.order_id, o.patient_id, pres.patient_name,
            self.pharmacy, items, amount, acct.balance,
            {c: q for c, q in after.remaining().items() if q > 0}, tuple(events),
            at_ms, self.dry_run, patient.sex if patient is not None else "")

    async def return_rest(self, order_id: str, reason: str, approved_by: str,
                          lines: Mapping[str, int] | None = None, *,
                          patient_id: str = "") -> ReturnReceipt:
        """Return undispensed items of ``order_id`` (None: everything left) in one
        ``order.returned``: they are no longer waited for, and what they were charged
        when the order was sent goes back to the deposit (DOMAIN 3.10); charged at
        execution, nothing undispensed was charged, so nothing is given back.
        ``approved_by``: the doctor who approved it."""
        roles.check(self.roles, "pharmacy.return")
        pres = await self.prescription(order_id, patient_id)
        o = pres.order
        problems = []
        if not reason.strip():
            problems.append(Problem("pharmacy.return_reason", "give the reason for returning",
                                    "reason"))
        if not approved_by.strip():
            problems.append(Problem("pharmacy.approval", "a doctor approves a return: give "
                                    "their name or staff id", "approved_by"))
        if problems:
            raise OperationRefused(problems)
        if lines is None:
            back = {ln.code: ln.left for ln in pres.open_lines}
        else:
            back = {c: q for c, q in lines.items() if q > 0}
            if not back:
                raise _refuse("pharmacy.nothing_chosen", "choose at least one item to "
                              "return", "lines")
        refund = return_refund(o, back)
        events, state, _ = await self._append([Op("order.returned", {
            "order_id": o.order_id, "patient_id": patient_id or o.patient_id,
            "lines": [{"code": c, "qty": q} for c, q in back.items()], "refund": refund,
            "reason": reason.strip(), "approved_by": approved_by.strip()})])
        acct = state.get(Account, o.patient_id) or await self.ledger.get(
            Account, o.patient_id) or Account(o.patient_id)
        return ReturnReceipt(o.order_id, o.patient_id, back, refund, acct.balance,
                             tuple(events), self.dry_run)

    # -- stock ------------------------------------------------------------------------------
    def level(self, code: str) -> int:
        """The low-stock level of ``code`` (its own, else the pharmacy's)."""
        return self.low_stock_items.get(code, self.low_stock)

    async def _row(self, s: Stock, names: dict[str, tuple[str, str]] | None = None) -> StockRow:
        if names is not None and s.code in names:
            name, unit = names[s.code]
        else:
            item = await self._item(None, s.code)
            name, unit = (item.name, item.unit) if item is not None else ("", "")
        level = self.level(s.code)
        return StockRow(s.code, name, unit, s.on_hand, s.received, s.dispensed, s.adjusted,
                        s.moved, level, s.on_hand <= level)

    async def stock(self, low_only: bool = False) -> list[StockRow]:
        """Each item this pharmacy stocks (by code): on hand and how it got there."""
        self._need_pharmacy()
        head = await self.ledger.get(CatalogueHead, HEAD)
        names: dict[str, tuple[str, str]] = {}
        if head is not None and head.version:
            for item in await self.ledger.find(CatalogueItem, "version", head.version,
                                               limit=100_000):
                names[item.code] = (item.name, item.unit)
        rows = [await self._row(s, names) for s in await self.ledger.find(
            Stock, "pharmacy", self.pharmacy, limit=100_000)]
        rows.sort(key=lambda r: r.code)
        return [r for r in rows if r.low or not low_only]

    async def stock_of(self, code: str) -> StockRow:
        s = await self.ledger.get(Stock, (self.pharmacy, code)) or Stock(self.pharmacy, code)
        return await self._row(s)

    async def _stock_op(self, code: str, op: Op) -> StockReceipt:
        self._need_pharmacy()
        events, state, _ = await self._append([op])
        s = state.get(Stock, (self.pharmacy, code)) or Stock(self.pharmacy, code)
        return StockReceipt(await self._row(s), tuple(events), self.dry_run)

    async def receive(self, code: str, qty: int, batch: str = "",
                      source: str = "") -> StockReceipt:
        """``qty`` of ``code`` received from the store room (``source``), batch ``batch``."""
        roles.check(self.roles, "pharmacy.stock")
        body: dict[str, Any] = {"pharmacy": self.pharmacy, "code": code.strip(), "qty": qty}
        if batch.strip():
            body["batch"] = batch.strip()
        if source.strip():
            body["source"] = source.strip()
        return await self._stock_op(code.strip(), Op("stock.received", body))

    async def transfer(self, code: str, qty: int, to_pharmacy: str,
                       note: str = "") -> StockReceipt:
        """``qty`` of ``code`` sent to ``to_pharmacy`` (one event: out here, in there)."""
        roles.check(self.roles, "pharmacy.stock")
        body: dict[str, Any] = {"from_pharmacy": self.pharmacy, "to_pharmacy": to_pharmacy.strip(),
                                "code": code.strip(), "qty": qty}
        if note.strip():
            body["note"] = note.strip()
        return await self._stock_op(code.strip(), Op("stock.transferred", body))

    async def adjust(self, code: str, delta: int, reason: str, note: str = "") -> StockReceipt:
        """Stock of ``code`` changed by ``delta`` for ``reason`` (expired, damaged, count)."""
        roles.check(self.roles, "pharmacy.stock")
        if reason not in ADJUST_REASONS:
            raise _refuse("pharmacy.adjust_reason", "choose the reason: expired, damaged or "
                          "count", "reason")
        body: dict[str, Any] = {"pharmacy": self.pharmacy, "code": code.strip(),
                                "delta": delta, "reason": reason}
        if note.strip():
            body["note"] = note.strip()
        return await self._stock_op(code.strip(), Op("stock.adjusted", body))

    # -- appending ------------------------------------------------------------------------
    async def _append(self, ops: list[Op]) -> tuple[list[Event], State, int]:
        if self.dry_run:
            result = await self.ledger.check_ops(ops, self.operator or "-")
        else:
            result = await self.ledger.append_ops(ops, self.operator or "-")
        return [a.event for a in result.appended], result.state, (
            result.local_ms or self.ledger.now_ms())


# -- the stock report ---------------------------------------------------------------------
CSV_COLUMNS = ("pharmacy", "code", "name", "unit", "on_hand", "received", "dispensed",
               "adjusted", "moved", "low_level", "low")


def report_csv(pharmacy: str, rows: list[StockRow]) -> str:
    """The stock as CSV (a header line, then one line per item; UTF-8 text)."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        w.writerow((pharmacy, r.code, r.name, r.unit, r.on_hand, r.received, r.dispensed,
                    r.adjusted, r.moved, r.level, "1" if r.low else "0"))
    return out.getvalue()


def report_text(pharmacy: str, rows: list[StockRow], language: str = "zh", *,
                when: str = "", low_only: bool = False) -> str:
    """The stock report as text in ``language``: one line per item, low ones marked."""
    from rich.cells import cell_len

    tr = Translator(language)

    def pad(text: str, width: int, right: bool = False) -> str:
        fill = " " * max(0, width - cell_len(text))
        return fill + text if right else text + fill
    head = [tr("pharmacy.report_title_low" if low_only else "pharmacy.report_title",
               pharmacy=pharmacy)]
    if when:
        head.append(tr("pharmacy.report_when", when=when))
    cols = [tr(f"pharmacy.col.{k}") for k in ("code", "name", "on_hand", "received",
                                              "dispensed", "adjusted", "moved", "level")]
    name_w = max([cell_len(cols[1]), *(cell_len(r.name) for r in rows)]) if rows else 8
    code_w = max([cell_len(cols[0]), *(cell_len(r.code) for r in rows)]) if rows else 8
    widths = [code_w, name_w] + [max(8, cell_len(c)) for c in cols[2:]]

    def row(cells: list[str]) -> str:
        return "  ".join(pad(c, w, i >= 2)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    lines = [row(cols)]
    for r in rows:
        cells = [r.code, r.name or "-", str(r.on_hand), str(r.received), str(r.dispensed),
                 f"{r.adjusted:+d}" if r.adjusted else "0",
                 f"{r.moved:+d}" if r.moved else "0", str(r.level)]
        lines.append(row(cells) + ("  " + tr("pharmacy.low_mark") if r.low else ""))
    low = sum(1 for r in rows if r.low)
    foot = tr("pharmacy.report_none") if not rows else tr("pharmacy.report_count",
                                                          n=len(rows), low=low)
    return "\n".join([*head, "", *lines, "", foot]) + "\n"


__all__ = ["ADJUST_REASONS", "CSV_COLUMNS", "DispenseReceipt", "DispensedItem",
           "PharmacyService", "Prescription", "ReturnReceipt", "StockReceipt", "StockRow",
           "WaitingLine", "report_csv", "report_text"]
