"""The execution kinds' rules and folds on real SQLite ledgers (protocol/execution.py):
check-in charges exactly once and at the right time, steps only move forward, dispensing
takes stock and can be partial, returning gives back exactly what the rest cost, and an
executed order can no longer be cancelled.  The services built on them (lab window,
pharmacy) have their own tests; these hold the core to its word whatever calls it."""

from __future__ import annotations

from typing import Any

import pytest

from edge_node.clinic import ClinicService
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger, Op
from edge_node.service import CounterService
from edge_node.visits import VisitService
from protocol.account import Account
from protocol.core import State
from protocol.domain import REGISTRY
from protocol.event import decode_event
from protocol.order import Order
from protocol.stock import Stock
from tests.conftest import LedgerFactory, registered
from tests.support.clinic import LAB, PHARMACY, give_catalogue

OP = "op.li"
DAY = "2026-12-01"


class World:
    def __init__(self, led: Ledger, pid: str, visit_id: str) -> None:
        self.led, self.pid, self.visit_id = led, pid, visit_id
        self.clinic = ClinicService(led, "dr.qian")

    async def order(self, *lines: tuple[str, int, int, int, int]) -> Order:
        got = [await self.clinic.line(*x) for x in lines]
        r = await self.clinic.send_order(self.visit_id, got, accept_warnings={
            "order.stock_unknown", "order.stock_short", "order.not_covered",
            "order.partly_covered", "order.same_drug"})
        [o] = r.orders
        return o

    async def do(self, kind: str, **body: Any) -> None:
        await self.led.append(Op(kind, {"patient_id": self.pid, **body}), OP)

    async def refused(self, kind: str, **body: Any) -> list[str]:
        with pytest.raises(OperationRefused) as exc:
            await self.do(kind, **body)
        return exc.value.codes

    async def get(self, order_id: str) -> Order:
        o = await self.led.get(Order, order_id)
        assert o is not None
        return o

    async def balance(self) -> int:
        a = await self.led.get(Account, self.pid)
        assert a is not None
        return a.balance

    async def stock(self, code: str, pharmacy: str = PHARMACY) -> int:
        s = await self.led.get(Stock, (pharmacy, code))
        return 0 if s is None else s.on_hand


async def world(make_ledger: LedgerFactory, charge_at: str, deposit: int = 50_000) -> World:
    led = await make_ledger("doctor-01")
    await give_catalogue(led, charge_at=charge_at)
    pid = await registered(CounterService(led, OP), deposit=deposit)
    r = await VisitService(led, OP).register(dept="IM", channel="cashier", patient_id=pid,
                                             doctor_id="dr.qian")
    return World(led, pid, r.visit.visit_id)


def checkin(o: Order, n: int, charged: int, specimen: str = "L01-261201-0001",
            dept: str = LAB) -> dict[str, Any]:
    return {"order_id": o.order_id, "dept": dept, "day": DAY, "queue_tag": "L01",
            "queue_no": n, "specimen_id": specimen, "charged": charged}


CBC = ("LAB-CBC", 1, 0, 0, 0)  # 血常规 ¥25.00
AMX = ("D-AMX", 3, 500, 3, 5)  # 阿莫西林 ¥18.50 × 3
IBU = ("D-IBU", 2, 300, 2, 3)  # 布洛芬 ¥12.60 × 2


async def test_a_lab_order_charged_at_execution_is_charged_once_at_check_in(
        make_ledger: LedgerFactory) -> None:
    w = await world(make_ledger, "execution")
    o = await w.order(CBC)
    before = await w.balance()
    assert o.charged == 0 and before == 50_000 - 500
    assert await w.refused("order.checked_in", **checkin(o, 1, 0)) == ["order.charge_due"]
    assert await w.refused("order.checked_in", **checkin(o, 1, 2500, specimen="")) == [
        "order.specimen_missing"]
    assert await w.refused("order.checked_in", **checkin(o, 1, 2500, dept="RAD")) == [
        "order.wrong_window"]
    await w.do("order.checked_in", **checkin(o, 1, 2500))
    got = await w.get(o.order_id)
    assert (got.stage, got.exec_charged, got.total_charged, got.queue_no, got.specimen_id) == (
        "checked_in", 2500, 2500, 1, "L01-261201-0001")
    assert await w.balance() == before - 2500
    assert await w.refused("order.checked_in", **checkin(o, 2, 0)) == ["order.step"]


async def test_a_lab_order_charged_at_send_checks_in_for_nothing_and_numbers_move_on(
        make_ledger: LedgerFactory) -> None:
    w = await world(make_ledger, "send")
    a, b = await w.order(CBC), await w.order(("LAB-GLU", 1, 0, 0, 0))
    assert await w.refused("order.checked_in", **checkin(a, 1, 2500)) == ["order.charge_due"]
    await w.do("order.checked_in", **checkin(a, 1, 0))
    assert await w.refused("order.checked_in", **checkin(b, 1, 0, "L01-261201-0002")) == [
        "visit.queue_taken"]
    await w.do("order.checked_in", **checkin(b, 2, 0, "L01-261201-0002"))


async def test_steps_only_move_forward_and_an_executed_order_is_not_cancelled(
        make_ledger: LedgerFactory) -> None:
    w = await world(make_ledger, "execution")
    o = await w.order(CBC)
    oid = o.order_id
    assert await w.refused("order.progressed", order_id=oid, step="collected") == [
        "order.step"]
    await w.do("order.checked_in", **checkin(o, 1, 2500))
    await w.do("order.progressed", order_id=oid, step="collected")
    assert await w.refused("order.progressed", order_id=oid, step="collected") == [
        "order.step"]
    await w.do("order.progressed", order_id=oid, step="executed")
    assert await w.refused("order.progressed", order_id=oid, step="resulted") == [
        "order.result_missing"]
    await w.do("order.progressed", order_id=oid, step="resulted", result="WBC 6.1")
    await w.do("order.progressed", order_id=oid, step="resulted", result="WBC 6.2")
    got = await w.get(oid)
    assert (got.stage, got.result, bool(got.executed_at)) == ("resulted", "WBC 6.2", True)
    with pytest.raises(OperationRefused) as exc:
        await w.clinic.cancel_order(oid, "patient left")
    assert exc.value.codes == ["order.not_cancellable"]


async def test_cancel_after_check_in_gives_back_everything_it_charged(
        make_ledger: LedgerFactory) -> None:
    w = await world(make_ledger, "execution")
    o = await w.order(CBC)
    before = await w.balance()
    await w.do("order.checked_in", **checkin(o, 1, 2500))
    r = await w.clinic.cancel_order(o.order_id, "patient left")
    assert (r.orders[0].stage, r.orders[0].refunded) == ("cancelled", 2500)
    assert await w.balance() == before
    assert await w.refused("order.progressed", order_id=o.order_id,
                           step="executed") == ["order.step"]


async def test_dispensing_in_parts_takes_stock_and_the_rest_can_be_returned(
        make_ledger: LedgerFactory) -> None:
    w = await world(make_ledger, "send")
    await w.led.append(Op("stock.received", {"pharmacy": PHARMACY, "code": "D-AMX",
                                             "qty": 2}), "store.keeper")
    await w.led.append(Op("stock.received", {"pharmacy": PHARMACY, "code": "D-IBU",
                                             "qty": 5}), "store.keeper")
    o = await w.order(AMX, IBU)
    charged = 3 * 1850 + 2 * 1260
    assert o.charged == charged
    after_send = await w.balance()

    def disp(n: int, lines: list[tuple[str, int, int]], amount: int = 0) -> dict[str, Any]:
        return {"dispense_id": f"DS-doctor-01-{n:06d}", "order_id": o.order_id,
                "pharmacy": PHARMACY, "amount": amount,
                "lines": [{"code": c, "qty": q, "unit_price": p} for c, q, p in lines]}
    assert await w.refused("order.dispensed", **disp(1, [("D-AMX", 3, 1850)])) == [
        "stock.below_zero"]
    assert await w.refused("order.dispensed", **disp(1, [("D-IBU", 3, 1260)])) == [
        "order.over_dispense"]
    assert await w.refused("order.dispensed", **disp(1, [("D-IBU", 1, 1000)])) == [
        "catalogue.price"]
    assert await w.refused("order.dispensed", **disp(1, [("D-AZI", 1, 2390)])) == [
        "order.line_unknown"]
    assert await w.refused("order.dispensed", **disp(1, [("D-IBU", 2, 1260)], 2520)) == [
        "order.charge_due"]  # charged when sent: dispensing charges nothing more
    await w.do("order.dispensed", **disp(1, [("D-AMX", 2, 1850), ("D-IBU", 2, 1260)]))
    got = await w.get(o.order_id)
    assert (got.stage, got.remaining()) == ("part_dispensed", {"D-AMX": 1, "D-IBU": 0})
    assert (await w.stock("D-AMX"), await w.stock("D-IBU")) == (0, 3)
    assert await w.balance() == after_send
    with pytest.raises(OperationRefused) as exc:
        await w.clinic.cancel_order(o.order_id, "x")
    assert exc.value.codes == ["order.not_cancellable"]
    ret = {"order_id": o.order_id, "lines": [{"code": "D-AMX", "qty": 1}],
           "reason": "out of stock", "approved_by": "dr.qian"}
    assert await w.refused("order.returned", **ret, refund=0) == ["order.return_refund"]
    await w.do("order.returned", **ret, refund=1850)
    got = await w.get(o.order_id)
    assert (got.stage, got.refunded, got.active) == ("dispensed", 1850, False)
    assert await w.balance() == after_send + 1850
    assert await w.refused("order.dispensed", **disp(2, [("D-AMX", 1, 1850)])) == [
        "order.step"]


async def test_dispensing_charges_when_the_hospital_charges_at_execution(
        make_ledger: LedgerFactory) -> None:
    w = await world(make_ledger, "execution")
    await w.led.append(Op("stock.received", {"pharmacy": PHARMACY, "code": "D-IBU",
                                             "qty": 1}), "store.keeper")
    o = await w.order(IBU)
    before = await w.balance()
    body = {"dispense_id": "DS-doctor-01-000001", "order_id": o.order_id,
            "pharmacy": PHARMACY, "lines": [{"code": "D-IBU", "qty": 1, "unit_price": 1260}]}
    assert await w.refused("order.dispensed", **body, amount=0) == ["order.charge_due"]
    await w.do("order.dispensed", **body, amount=1260)
    assert await w.balance() == before - 1260
    ret = {"order_id": o.order_id, "lines": [{"code": "D-IBU", "qty": 1}],
           "reason": "not needed", "approved_by": "dr.qian"}
    await w.do("order.returned", **ret, refund=0)  # the rest was never charged
    got = await w.get(o.order_id)
    assert (got.stage, got.total_charged, got.refunded) == ("dispensed", 1260, 0)
    assert await w.balance() == before - 1260


async def test_transfers_move_stock_between_pharmacies_and_never_below_zero(
        make_ledger: LedgerFactory) -> None:
    w = await world(make_ledger, "send")
    await w.led.append(Op("stock.received", {"pharmacy": PHARMACY, "code": "D-AMX",
                                             "qty": 10}), "store.keeper")
    move = {"from_pharmacy": PHARMACY, "to_pharmacy": "PHA-ER", "code": "D-AMX"}
    with pytest.raises(OperationRefused) as exc:
        await w.led.append(Op("stock.transferred", {**move, "qty": 11}), OP)
    assert exc.value.codes == ["stock.below_zero"]
    with pytest.raises(OperationRefused) as exc:
        await w.led.append(Op("stock.transferred", {**move, "to_pharmacy": PHARMACY,
                                                    "qty": 1}), OP)
    assert exc.value.codes == ["stock.same_place"]
    await w.led.append(Op("stock.transferred", {**move, "qty": 4}), OP)
    assert (await w.stock("D-AMX"), await w.stock("D-AMX", "PHA-ER")) == (6, 4)


async def test_the_ledger_and_a_fold_in_reverse_agree(make_ledger: LedgerFactory) -> None:
    """The same events folded backwards (dispensing before the order, check-in before
    the catalogue) give the ledger's records: nothing depends on arrival order."""
    w = await world(make_ledger, "execution")
    await w.led.append(Op("stock.received", {"pharmacy": PHARMACY, "code": "D-IBU",
                                             "qty": 9}), "store.keeper")
    lab, drug = await w.order(CBC), await w.order(IBU)
    await w.do("order.checked_in", **checkin(lab, 1, 2500))
    await w.do("order.progressed", order_id=lab.order_id, step="collected")
    await w.do("order.dispensed", dispense_id="DS-doctor-01-000001", order_id=drug.order_id,
               pharmacy=PHARMACY, lines=[{"code": "D-IBU", "qty": 1, "unit_price": 1260}],
               amount=1260)
    events = [decode_event(d) for _, d in await w.led.events(limit=10_000)]
    forward = REGISTRY.fold(events)
    backward = REGISTRY.fold(reversed(events))
    assert forward.dump() == backward.dump()
    for rt, key in ((Order, lab.order_id), (Order, drug.order_id), (Stock, (PHARMACY, "D-IBU")),
                    (Account, w.pid)):
        assert backward.get(rt, key) == await w.led.get(rt, key), rt  # type: ignore[arg-type]
    assert isinstance(forward, State)


async def test_the_doctor_sees_what_came_back_results_and_dispensed_drugs(
        make_ledger: LedgerFactory) -> None:
    w = await world(make_ledger, "execution")
    await w.led.append(Op("stock.received", {"pharmacy": PHARMACY, "code": "D-IBU",
                                             "qty": 9}), "store.keeper")
    lab, drug, other = await w.order(CBC), await w.order(IBU), await w.order(
        ("LAB-GLU", 1, 0, 0, 0))
    view = await w.clinic.patient_view(w.pid)
    assert (view.results, view.dispensed) == ((), ())
    await w.do("order.checked_in", **checkin(lab, 1, 2500))
    await w.do("order.progressed", order_id=lab.order_id, step="resulted",
               result="WBC 6.1", report_ref="LIS-7")
    await w.do("order.dispensed", dispense_id="DS-doctor-01-000001", order_id=drug.order_id,
               pharmacy=PHARMACY, lines=[{"code": "D-IBU", "qty": 1, "unit_price": 1260}],
               amount=1260)
    view = await w.clinic.patient_view(w.pid)
    assert [(o.order_id, o.result, o.report_ref) for o in view.results] == [
        (lab.order_id, "WBC 6.1", "LIS-7")]
    assert [(o.order_id, o.stage) for o in view.dispensed] == [
        (drug.order_id, "part_dispensed")]
    assert other.order_id not in {o.order_id for o in (*view.results, *view.dispensed)}
