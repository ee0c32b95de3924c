"""The IT console on the conflicts of executing orders: a prescription dispensed at two
offline pharmacies (and the stock that took below zero) in a real central store, opened,
read and resolved by keyboard through Pilot; the remedy's central events fold back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from central.config import write_key
from central.conflicts import ConflictWatch
from central.console.app import ConsoleApp
from central.console.screens.detail import DetailScreen
from central.console.screens.resolve import ResolveScreen
from central.reconcile import Incoming, Reconciler
from central.store import CentralStore, enrol_central
from protocol.crypto import SigningKey
from protocol.event import decode_event
from protocol.stock import Stock
from tests.support.central_seed import CENTRAL_SEED, HOUR, NOW_MS, Chains, node_key
from tests.test_console import SIZE, book, central_seq, open_kind, rows, settle, text

PID, ORDER = "P-cashier-01-000001", "O-doctor-01-000001"
NODES = {"cashier-01": "cashier", "doctor-01": "doctor", "pharmacy-01": "pharmacy",
         "pharmacy-02": "pharmacy", "store-01": "pharmacy"}


async def seed(directory: Path) -> tuple[Path, Path]:
    """Prescription ``ORDER`` (AMOX×10 at ¥3.00, charged at dispensing) dispensed in full
    at WEST by pharmacy-01 and again at EAST by pharmacy-02, both offline; EAST had
    only 6 of it."""
    db, key_file = directory / "central.sqlite3", directory / "central.key"
    key = SigningKey(CENTRAL_SEED)
    write_key(key_file, key)
    ch = Chains()
    t = NOW_MS - HOUR
    ch.patient("cashier-01", t, PID, "8600000001", 10_000, "张三")
    ch.add("store-01", t + 5, "stock.received", {"pharmacy": "WEST", "code": "AMOX", "qty": 20})
    ch.add("store-01", t + 6, "stock.received", {"pharmacy": "EAST", "code": "AMOX", "qty": 6})
    ch.add("doctor-01", t + 10, "order.placed", {
        "order_id": ORDER, "visit_id": "V-triage-01-000001", "patient_id": PID,
        "type": "drug", "exec_dept": "PHARM", "catalogue_version": 1,
        "lines": [{"code": "AMOX", "name": "阿莫西林", "qty": 10, "unit_price": 300,
                   "dose": 500, "per_day": 3, "days": 3}], "total": 3_000, "charged": 0})
    for n, (node, pharmacy) in enumerate((("pharmacy-01", "WEST"), ("pharmacy-02", "EAST"))):
        ch.add(node, t + 20 + n, "order.dispensed", {
            "dispense_id": f"D-{node}-000001", "order_id": ORDER, "patient_id": PID,
            "pharmacy": pharmacy, "lines": [{"code": "AMOX", "qty": 10, "unit_price": 300}],
            "amount": 3_000})
    store = await CentralStore.open(db)
    try:
        await enrol_central(store, key)
        for node, role in NODES.items():
            await store.enrol(node, node_key(node).public_key, role, now_ms=NOW_MS - 2 * HOUR)
        for node in NODES:
            await store.ingest(node, ch.encoded[node], now_ms=NOW_MS - 60_000)
        await ConflictWatch(store, announce=False).catch_up()
    finally:
        await store.close()
    return db, key_file


@pytest.fixture
def seeded(tmp_path: Path) -> tuple[Path, Path]:
    return asyncio.run(seed(tmp_path))


async def central_state(db: Path) -> Reconciler:
    store = await CentralStore.open(db)
    try:
        r = Reconciler()
        r.add(Incoming(decode_event(d), ms) for _, d, ms in await store.events_since(0, 10_000))
        return r
    finally:
        await store.close()


def make(seeded: tuple[Path, Path], language: str = "en") -> ConsoleApp:
    return ConsoleApp(seeded[0], seeded[1], "it.li", clock=lambda: NOW_MS, language=language)


async def test_a_double_dispense_shows_who_dispensed_what_and_the_patient_brings_it_back(
        seeded: tuple[Path, Path]) -> None:
    db = seeded[0]
    async with make(seeded).run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert sorted(r[2] for r in rows(pilot, "#queue")) == ["double_dispense",
                                                               "stock_below_zero"]
        await open_kind(pilot, "double_dispense")
        head = text(pilot, "#head")
        assert "Prescription dispensed twice ¥30.00" in head and "amount ¥30.00" in head
        explanation = text(pilot, "#explanation")
        assert "WEST (pharmacy-01 #1) AMOX×10, charged ¥30.00" in explanation
        assert "EAST (pharmacy-02 #1) AMOX×10, charged ¥30.00" in explanation
        assert "Handed out beyond the order: AMOX×10 at EAST" in explanation
        events = [str(s.render()) for s in pilot.app.screen.query("#events Static")]
        assert [e.split()[0] for e in events] == ["doctor-01", "pharmacy-01", "pharmacy-02"]
        assert "pharmacy: EAST" in events[2] and "amount: ¥30.00" in events[2]
        remedies = text(pilot, "#remedies")
        assert "1 The patient brings the extra back (bring_back)" in remedies
        assert "2 Give ¥30.00 back, write the drugs off (write_off)" in remedies
        assert "3 Accept as is (accept)" in remedies
        await pilot.press("1")
        plan = text(pilot, "#plan")
        assert "Puts AMOX×10 at EAST back in stock and returns ¥30.00" in plan
        assert "central signs stock.corrected" in plan and "delta=10" in plan
        assert "central signs order.charge_returned" in plan and "amount=¥30.00" in plan
        assert await central_seq(db) == 0  # looking signs nothing
        await pilot.press("c")
        await settle(pilot)
        assert isinstance(pilot.app.screen, ResolveScreen)
        pilot.app.screen.query_one("#reason", Input).value = "patient brought 10 back"
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
        assert "2 central event(s) signed" in text(pilot, "#message")
        assert "Resolved by it.li with order.charge_returned" in text(pilot, "#remedies")
    row = (await book(db))["double_dispense"]
    assert (row.status, row.resolved_reason) == ("resolved", "patient brought 10 back")
    assert await central_seq(db) == 2
    world = await central_state(db)
    assert world.balance(PID) == 10_000 - 3_000  # the second charge given back
    stock = world.state.get(Stock, ("EAST", "AMOX"))
    assert stock is not None and stock.on_hand == 6  # 6 − 10 + 10 brought back


async def test_stock_below_zero_in_the_console_in_chinese(seeded: tuple[Path, Path]) -> None:
    async with make(seeded, language="zh").run_test(size=SIZE) as pilot:
        await settle(pilot)
        kinds = sorted(r[2] for r in rows(pilot, "#queue"))
        assert kinds == ["处方重复发药", "库存为负"]
        pilot.app.screen.query_one("#queue", DataTable).move_cursor(
            row=[r[2] for r in rows(pilot, "#queue")].index("库存为负"))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(pilot.app.screen, DetailScreen)
        assert "库存为负 — EAST AMOX -4" in text(pilot, "#head")
        assert "库存低于零" in text(pilot, "#explanation")
        assert "EAST holds -4 of AMOX" in text(pilot, "#explanation")
        assert "不涉及账户" in text(pilot, "#timelines")
        remedies = text(pilot, "#remedies")
        assert "1 更正库存 EAST AMOX +4 (correct)" in remedies
        await pilot.press("1")
        assert "中心签署 库存更正" in text(pilot, "#plan")
