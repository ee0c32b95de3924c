"""Orders through REAL sync: `onecard-central serve` and three counters' sync daemons
(a doctor's, the laboratory's, the outpatient pharmacy's) on 127.0.0.1.

Central publishes the catalogue (signed with its own key, as `catalogue import` will);
the doctor registers a visit, starts it and sends a lab requisition and a
prescription; each executing counter finds its order in its own ledger
(``find(Order, "exec_dept", …)``).  Cancelling the lab order at the doctor's counter
refunds exactly what it charged: once everything has synced the balance agrees on
every counter and at central, to the fen.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from central.config import CentralConfig, load_key
from central.conflicts import sign_central
from central.store import CentralStore
from edge_node.clinic import ClinicService
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.visits import VisitService
from protocol.account import Account
from protocol.catalogue import publication
from protocol.domain import REGISTRY
from protocol.event import decode_event
from protocol.order import Order
from tests.conftest import ID_MALE
from tests.support.clinic import LAB, PHARMACY, entries
from tests.support.sync_cluster import Central, Counter, wait_for

pytestmark = pytest.mark.slow

DOCTOR = "dr.qian"


async def publish(central: Central) -> int:
    """Central signs catalogue version 1 (charged when sent); returns its event count."""
    cfg = CentralConfig.load(central.config)
    store = await CentralStore.open(cfg.db)
    try:
        items = publication(1, "send", entries())
        await sign_central(store, load_key(cfg.key_file), items, operator="it.admin")
        return len(items)
    finally:
        await store.close()


async def doctor_work(counter: Counter) -> dict[str, object]:
    """At the doctor's counter: a patient, a visit started, two orders sent."""
    led = await Ledger.open(counter.db, counter.node, counter.key)
    try:
        desk = CounterService(led, "op.wang")
        r = await desk.register_patient(name="张三", national_id=ID_MALE, phone="13800138000",
                                        card_no="8600000001", first_deposit=50_000,
                                        method="cash")
        pid = r.patient.patient_id
        visit = (await VisitService(led, "op.wang").register(
            dept="IM", channel="cashier", patient_id=pid, doctor_id=DOCTOR)).visit
        clinic = ClinicService(led, DOCTOR)
        await clinic.start(visit.visit_id)
        lines = [await clinic.line("LAB-CBC"), await clinic.line("LAB-GLU"),
                 await clinic.line("D-IBU", 2, 300, 2, 3)]
        sent = await clinic.send_order(visit.visit_id, lines,
                                       accept_warnings={"order.stock_unknown"})
        by_dept = {o.exec_dept: o for o in sent.orders}
        return {"pid": pid, "lab": by_dept[LAB].order_id,
                "pharmacy": by_dept[PHARMACY].order_id, "balance": sent.balance}
    finally:
        await led.close()


async def cancel(counter: Counter, order_id: str) -> int:
    led = await Ledger.open(counter.db, counter.node, counter.key)
    try:
        r = await ClinicService(led, DOCTOR).cancel_order(order_id, "患者已在外院检查")
        return r.balance
    finally:
        await led.close()


async def orders_at(counter: Counter, dept: str) -> list[Order]:
    led = await Ledger.open(counter.db, counter.node, counter.key)
    try:
        return await led.find(Order, "exec_dept", dept)
    finally:
        await led.close()


def order_rows(counter: Counter, dept: str) -> int:
    with sqlite3.connect(f"file:{counter.db}?mode=ro", uri=True, timeout=10) as c:
        return int(c.execute("SELECT COUNT(*) FROM orders WHERE exec_dept = ? AND placed_at"
                             " != ''", (dept,)).fetchone()[0])


def central_balance(central: Central, pid: str) -> int:
    with sqlite3.connect(f"file:{central.db}?mode=ro", uri=True, timeout=10) as c:
        events = [decode_event(bytes(r[0])) for r in c.execute("SELECT data FROM events")]
    acct = REGISTRY.fold(events).get(Account, pid)
    assert acct is not None
    return acct.balance


def test_an_order_reaches_the_lab_and_the_pharmacy_and_a_cancel_refunds_exactly(
        tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    catalogue_events = asyncio.run(publish(central))
    doctor = Counter.create(tmp_path, "doctor-01", central, role="doctor")
    lab = Counter.create(tmp_path, "lab-01", central, role="lab")
    pharmacy = Counter.create(tmp_path, "pharmacy-01", central, role="pharmacy")
    counters = [doctor, lab, pharmacy]
    central.start()
    try:
        for c in counters:
            c.start_sync()
        wait_for(lambda: all(c.event_count() >= catalogue_events for c in counters), 60,
                 "the catalogue to reach every counter")
        done = asyncio.run(doctor_work(doctor))
        pid = str(done["pid"])
        wait_for(lambda: order_rows(lab, LAB) == 1 and order_rows(pharmacy, PHARMACY) == 1,
                 60, "the orders to reach the lab and the pharmacy")
        [at_lab] = asyncio.run(orders_at(lab, LAB))
        [at_pharmacy] = asyncio.run(orders_at(pharmacy, PHARMACY))
        assert at_lab.order_id == done["lab"] and at_pharmacy.order_id == done["pharmacy"]
        assert [ln[0] for ln in at_lab.line_list()] == ["LAB-CBC", "LAB-GLU"]
        assert (at_lab.total, at_lab.charged, at_lab.doctor, at_lab.node) == (
            3300, 3300, DOCTOR, "doctor-01")
        assert at_pharmacy.line_list()[0][:2] == ("D-IBU", "布洛芬缓释胶囊")
        assert asyncio.run(orders_at(lab, PHARMACY)) == [at_pharmacy], "every counter holds all"
        # 500.00 − 5.00 registration − 10.00 consultation − 33.00 lab − 25.20 drugs
        assert done["balance"] == 50_000 - 500 - 1000 - 3300 - 2520

        held = len(central.event_ids())  # all of the doctor's so far: the lab has them
        after = asyncio.run(cancel(doctor, str(done["lab"])))
        assert after == 50_000 - 500 - 1000 - 2520
        total = held + 1  # and the cancel, once pushed and pulled
        wait_for(lambda: len(central.event_ids()) == total
                 and all(c.event_count() == total for c in counters), 60,
                 "every counter and central to hold the cancel")
        for c in counters:
            assert dict(c.balances())[pid] == after, c.node
        assert central_balance(central, pid) == after
        [cancelled] = asyncio.run(orders_at(lab, LAB))
        assert (cancelled.status, cancelled.refunded) == ("cancelled", 3300)
        conflicts = sqlite3.connect(f"file:{central.db}?mode=ro", uri=True)
        try:
            assert conflicts.execute("SELECT COUNT(*) FROM conflicts").fetchone()[0] == 0
        finally:
            conflicts.close()
    finally:
        for c in counters:
            c.stop()
        central.stop()
