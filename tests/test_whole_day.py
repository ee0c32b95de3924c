"""The whole day (issue 14's end-to-end test): `onecard-central serve` and four counters'
sync daemons as real processes on 127.0.0.1 — the cashier, the doctor's station (which
also registers the visit, as a triage desk would), the lab window and the pharmacy.

A patient gets a card and a deposit at the cashier; registers a visit; the doctor starts
the consultation (its fee), diagnoses, sends a lab requisition and a prescription and,
later, a second lab order; the lab window checks both in (charged from the deposit, as
this hospital charges at execution; queue numbers; specimen ids and labels), collects,
executes and reports the first; the doctor cancels the second (its charge comes back);
the pharmacy dispenses what its stock covers (price, charge and stock in one event) and
the rest is returned; the cashier settles.  Every counter closes its day.  Then balances,
stock and order states agree on every counter and at central, no conflict is raised, and
central's daily audit of the day — which recomputes each counter's day from the events
and compares it with the close the counter signed — finds nothing: the cashier's daily
report and central's figures agree to the fen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest

from central.config import CentralConfig, load_key
from central.conflicts import sign_central
from central.store import CentralStore
from edge_node import config as cfgmod
from edge_node import staff
from edge_node.clinic import ClinicService
from edge_node.lab import LabService
from edge_node.labels import label_escpos
from edge_node.ledger import Ledger
from edge_node.pharmacy import PharmacyService
from edge_node.reports import day_bounds
from edge_node.service import CounterService
from edge_node.visits import VisitService
from protocol.account import Account
from protocol.catalogue import publication
from protocol.core import State
from protocol.domain import REGISTRY
from protocol.event import decode_event
from protocol.order import Order
from protocol.stock import Stock
from tests.conftest import ID_MALE
from tests.support.clinic import LAB, PHARMACY, entries
from tests.support.sync_cluster import Central, Counter, run_cli, wait_for

pytestmark = pytest.mark.slow

T = TypeVar("T")
CARD = "8600000001"
DOCTOR = "dr.qian"
CASHIER = "op.wang"
TZ = ZoneInfo("Asia/Shanghai")


async def publish(central: Central, charge_at: str = "execution") -> int:
    """Central signs the catalogue (charged at execution); returns its event count."""
    cfg = CentralConfig.load(central.config)
    store = await CentralStore.open(cfg.db)
    try:
        items = publication(1, charge_at, entries())
        await sign_central(store, load_key(cfg.key_file), items, operator="it.admin")
        return len(items)
    finally:
        await store.close()


def at(counter: Counter, fn: Callable[[Ledger], Awaitable[T]]) -> T:
    """Run ``fn`` on the counter's own ledger (opened as the counter opens it)."""
    async def go() -> T:
        cfg = cfgmod.load(counter.config)
        led = await Ledger.open(cfg.db, cfg.node_id, counter.key, rule_config=cfg.rules)
        try:
            return await fn(led)
        finally:
            await led.close()
    return asyncio.run(go())


def fold(db: Path, table: str = "events") -> State:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as c:
        events = [decode_event(bytes(r[0])) for r in c.execute(f"SELECT data FROM {table}")]
    return REGISTRY.fold(events)


def rows(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as c:
        return list(c.execute(sql, args))


def picture(state: State, pid: str) -> tuple[Any, ...]:
    """What every counter must agree on: the balance, each order, the pharmacy's stock."""
    acct = state.get(Account, pid) or Account(pid)
    orders = sorted((o.order_id, o.stage, o.total_charged, o.refunded, o.dispensed,
                     o.returned, o.specimen_id, o.result) for o in state.all(Order))
    stock = sorted((s.pharmacy, s.code, s.on_hand) for s in state.all(Stock))
    return acct.balance, acct.closed, tuple(orders), tuple(stock)


def test_the_whole_day_across_four_counters_agrees_to_the_fen(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    catalogue_events = asyncio.run(publish(central))
    cashier = Counter.create(tmp_path, "cashier-01", central, role="cashier")
    doctor = Counter.create(tmp_path, "doctor-01", central, role="doctor")
    lab = Counter.create(tmp_path, "lab-01", central, role="lab")
    pharmacy = Counter.create(tmp_path, "pharmacy-01", central, role="pharmacy")
    counters = [cashier, doctor, lab, pharmacy]
    central.start()

    def synced() -> bool:  # the same events, not just as many (grants come as they connect)
        held = central.event_ids()
        return all(c.event_ids() == held for c in counters)

    def settle_all(what: str) -> None:
        wait_for(lambda: synced() and synced(), 60, what)

    try:
        for c in counters:
            c.start_sync()
        wait_for(lambda: all(c.event_count() >= catalogue_events for c in counters), 60,
                 "the catalogue to reach every counter")

        # -- the pharmacy's morning: stock from the store room --------------------------
        async def stock_in(led: Ledger) -> None:
            svc = PharmacyService(led, "ph.zhou", pharmacy=PHARMACY)
            await svc.receive("D-IBU", 20, "B2612", "store room")
            await svc.receive("D-AMX", 2, "B2611", "store room")
        at(pharmacy, stock_in)

        # -- cashier: card issued, ¥500.00 deposit --------------------------------------
        async def register(led: Ledger) -> str:
            await staff.add_staff(led, "sup.li", "李主管", "5678", role="supervisor",
                                  hasher=staff.cheap_hasher())
            r = await CounterService(led, CASHIER).register_patient(
                name="张三", national_id=ID_MALE, phone="13800138000", card_no=CARD,
                first_deposit=50_000, method="cash")
            return r.patient.patient_id
        pid = at(cashier, register)
        settle_all("the patient to reach every counter")

        # -- triage and doctor: a visit, the consultation, two orders -------------------
        async def consult(led: Ledger) -> dict[str, str]:
            visit = (await VisitService(led, "nurse.he").register(
                dept="IM", channel="triage", card_no=CARD, doctor_id=DOCTOR)).visit
            clinic = ClinicService(led, DOCTOR)
            await clinic.start(visit.visit_id)
            await clinic.diagnose(visit.visit_id, "急性上呼吸道感染", "J06.9")
            lines = [await clinic.line("LAB-CBC"), await clinic.line("LAB-GLU"),
                     await clinic.line("D-IBU", 2, 300, 2, 3),
                     await clinic.line("D-AMX", 3, 500, 3, 5)]
            sent = await clinic.send_order(visit.visit_id, lines, accept_warnings={
                "order.stock_unknown", "order.stock_short"})
            by = {o.exec_dept: o.order_id for o in sent.orders}
            second = await clinic.send_order(visit.visit_id, [await clinic.line("LAB-CRP")])
            return {"visit": visit.visit_id, "lab": by[LAB], "drug": by[PHARMACY],
                    "crp": second.orders[0].order_id}
        ids = at(doctor, consult)
        settle_all("the orders to reach the lab and the pharmacy")

        # -- lab window: both checked in (charged now), the first one done --------------
        async def lab_work(led: Ledger) -> tuple[str, bytes]:
            svc = LabService(led, "lab.sun", dept=LAB)
            first = await svc.check_in(ids["lab"])
            assert first.charged == 3300 and first.specimen_id
            label = svc.label(first)
            assert label is not None and label.barcode == first.specimen_id
            crp = await svc.check_in(ids["crp"])
            assert crp.charged == 4000 and crp.number != first.number
            await svc.collect(ids["lab"])
            await svc.execute(ids["lab"])
            await svc.result(ids["lab"], "WBC 6.1×10⁹/L, GLU 5.2 mmol/L")
            return first.specimen_id, label_escpos(label)
        specimen, printed = at(lab, lab_work)
        assert b"\x1dv0" in printed  # the bars as a raster image for the label printer
        assert "张三".encode("gb18030") in printed
        settle_all("the check-ins to reach the doctor")

        # -- doctor: the second lab order is cancelled; its charge comes back -----------
        async def cancel(led: Ledger) -> int:
            r = await ClinicService(led, DOCTOR).cancel_order(ids["crp"], "重复开单")
            assert r.orders[0].refunded == 4000
            return r.balance
        at(doctor, cancel)

        # -- pharmacy: dispense what stock covers, return the rest ----------------------
        async def dispense(led: Ledger) -> None:
            svc = PharmacyService(led, "ph.zhou", pharmacy=PHARMACY)
            await svc.dispense(ids["drug"])  # D-AMX: 2 of 3 on hand
            o = await led.get(Order, ids["drug"])
            assert o is not None and o.stage == "part_dispensed"
            assert o.remaining() == {"D-IBU": 0, "D-AMX": 1}
            await svc.return_rest(ids["drug"], "缺货", DOCTOR)
        settle_all("the cancel to reach the pharmacy")
        at(pharmacy, dispense)
        settle_all("the dispensing to reach the cashier")

        # -- cashier: settlement (cash: a supervisor approves) ---------------------------
        async def settle(led: Ledger) -> int:
            ok = await staff.approve(led, "sup.li", "5678", operator=CASHIER)
            r = await CounterService(led, CASHIER).settle(CARD, "cash", approval=ok)
            return r.amount if hasattr(r, "amount") else 0
        at(cashier, settle)

        # every fen accounted for: 500 − 5 registration − 10 consultation − 33 lab (CBC,
        # GLU) − 40 CRP + 40 back − 25.20 ibuprofen − 37.00 amoxicillin; the rest paid out
        spent = 500 + 1000 + 3300 + 2 * 1260 + 2 * 1850
        settle_all("the settlement to reach every counter")

        # -- every counter closes its day ------------------------------------------------
        day = dt.datetime.now(TZ).date()
        bounds = day_bounds(day)

        def close(counted: int) -> Callable[[Ledger], Awaitable[None]]:
            async def go(led: Ledger) -> None:
                await CounterService(led, CASHIER).close_day(bounds, counted,
                                                             all_operators=True)
            return go
        # the cashier took ¥500.00 in cash and paid the rest out in cash
        at(cashier, close(50_000 - (50_000 - spent)))
        for c in (doctor, lab, pharmacy):
            at(c, close(0))
        settle_all("the day closes to reach central")

        # -- everything agrees ----------------------------------------------------------
        pictures = {c.node: picture(fold(c.db), pid) for c in counters}
        central_picture = picture(fold(central.db), pid)
        for node, seen in pictures.items():
            assert seen == central_picture, node
        balance, closed, orders, stock = central_picture
        assert (balance, closed) == (0, 1)
        assert dict(((ph, code), n) for ph, code, n in stock) == {
            (PHARMACY, "D-IBU"): 18, (PHARMACY, "D-AMX"): 0}
        assert {o[0]: o[6] for o in orders}[ids["lab"]] == specimen
        stages = {o[0]: o[1] for o in orders}
        assert stages == {ids["lab"]: "resulted", ids["crp"]: "cancelled",
                          ids["drug"]: "dispensed"}
        for c in counters:  # the ledger's own projections say the same as a fresh fold
            got = rows(c.db, "SELECT balance FROM accounts WHERE patient_id = ?", pid)
            assert got == [(0,)], c.node
        assert rows(central.db, "SELECT COUNT(*) FROM conflicts") == [(0,)]
        r = run_cli("--config", str(central.config), "audit", "daily", "--date",
                    day.isoformat())
        assert r.returncode == 0, r.stdout + r.stderr
        assert rows(central.db, "SELECT COUNT(*) FROM conflicts") == [(0,)], r.stdout
    finally:
        for c in counters:
            c.stop()
        central.stop()



def test_the_same_prescription_at_two_pharmacies_offline_is_one_conflict_resolved(
        tmp_path: Path) -> None:
    """The pharmacy loses the link and dispenses from what it knows; a second window of
    the same pharmacy dispenses the same prescription.  On reconnect central raises
    exactly the double dispense and the stock it took below zero; IT resolves the double
    dispense (the patient brings the extra back: stock restored, its charge returned),
    which also brings the stock back to zero — and every counter converges."""
    central = Central.init(tmp_path / "central")
    catalogue_events = asyncio.run(publish(central))
    doctor = Counter.create(tmp_path, "doctor-01", central, role="doctor")
    first = Counter.create(tmp_path, "pharmacy-01", central, role="pharmacy")
    second = Counter.create(tmp_path, "pharmacy-02", central, role="pharmacy")
    counters = [doctor, first, second]
    central.start()

    def synced() -> bool:  # the same events, not just as many (grants come as they connect)
        held = central.event_ids()
        return all(c.event_ids() == held for c in counters)

    def conflicts() -> list[tuple[str, str, str, int]]:
        return [tuple(r) for r in rows(  # type: ignore[misc]
            central.db, "SELECT id, kind, status, amount FROM conflicts ORDER BY kind")]

    try:
        for c in counters:
            c.start_sync()
        wait_for(lambda: all(c.event_count() >= catalogue_events for c in counters), 60,
                 "the catalogue to reach every counter")

        async def stock_in(led: Ledger) -> None:
            await PharmacyService(led, "ph.zhou", pharmacy=PHARMACY).receive(
                "D-IBU", 2, "B2612", "store room")
        at(first, stock_in)

        async def prescribe(led: Ledger) -> tuple[str, str]:
            r = await CounterService(led, CASHIER).register_patient(
                name="张三", national_id=ID_MALE, phone="13800138000", card_no=CARD,
                first_deposit=50_000, method="cash")
            visit = (await VisitService(led, "nurse.he").register(
                dept="IM", channel="triage", card_no=CARD, doctor_id=DOCTOR)).visit
            clinic = ClinicService(led, DOCTOR)
            await clinic.start(visit.visit_id)
            sent = await clinic.send_order(visit.visit_id,
                                           [await clinic.line("D-IBU", 2, 300, 2, 3)],
                                           accept_warnings={"order.stock_unknown"})
            return r.patient.patient_id, sent.orders[0].order_id
        pid, order_id = at(doctor, prescribe)
        wait_for(synced, 60, "the prescription and the stock to reach both pharmacies")

        first.stop()  # the link is down at the first pharmacy

        async def dispense(led: Ledger) -> None:
            await PharmacyService(led, "ph.zhou", pharmacy=PHARMACY).dispense(order_id)
        at(second, dispense)
        at(first, dispense)  # from what it knows: the prescription still waits there
        assert conflicts() == []
        first.start_sync()
        wait_for(synced, 60, "the offline dispensing to sync")
        wait_for(lambda: len(conflicts()) == 2, 30, "central to raise the conflicts")
        kinds = {k: (cid, status, amount) for cid, k, status, amount in conflicts()}
        assert set(kinds) == {"double_dispense", "stock_below_zero"}
        assert all(status == "open" for _, status, _ in kinds.values())
        assert kinds["double_dispense"][2] == 2 * 1260  # the extra was charged again

        cid = kinds["double_dispense"][0]
        shown = run_cli("--config", str(central.config), "conflicts", "show", cid).stdout
        assert "pharmacy-01" in shown and "pharmacy-02" in shown and "bring_back" in shown
        r = run_cli("--config", str(central.config), "conflicts", "resolve", cid,
                    "--remedy", "bring_back", "--reason", "患者退回多发的药",
                    "--operator", "it.li")
        assert r.returncode == 0, r.stderr
        wait_for(lambda: synced() and all(s != "open" for _, _, s, _ in conflicts()), 60,
                 "the remedy to reach every counter and close both conflicts")
        statuses = {k: s for _, k, s, _ in conflicts()}
        assert statuses == {"double_dispense": "resolved", "stock_below_zero": "withdrawn"}
        seen = {c.node: picture(fold(c.db), pid) for c in counters}
        assert len(set(seen.values())) == 1 and seen[doctor.node] == picture(
            fold(central.db), pid)
        balance, _closed, orders, stock = seen[doctor.node]
        # 500 − 5 registration − 10 consultation − 25.20 once (the second was returned)
        assert balance == 50_000 - 500 - 1000 - 2 * 1260
        assert stock == ((PHARMACY, "D-IBU", 0),)
        [(oid, stage, *_)] = orders
        assert (oid, stage) == (order_id, "dispensed")
    finally:
        for c in counters:
            c.stop()
        central.stop()
