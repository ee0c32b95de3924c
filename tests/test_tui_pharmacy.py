"""The pharmacy desk through the real TUI on real ledgers (Textual's pilot): tap → the
prescriptions waiting → dispense (part of it: stock short) → return the rest; the stock
screen's receive and adjust; refusals said at the desk; the worklist following the
ledger; a snapshot at 80×25 (zh)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Static

from edge_node.clinic import WARNINGS, ClinicService
from edge_node.config import EdgeConfig, write_key
from edge_node.ledger import Ledger
from edge_node.pharmacy import PharmacyService
from edge_node.tui.screens.ask import AskScreen
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.find import FindPatientScreen
from edge_node.tui.screens.pharmacy import PharmacyDesk, StockScreen
from edge_node.visits import VisitService
from protocol.account import Account
from protocol.order import Order
from protocol.stock import Stock
from tests.conftest import ID_FEMALE, node_key
from tests.support.clinic import PHARMACY, give_catalogue
from tests.tui_harness import (
    NOW_MS,
    fill,
    laid_out,
    log_in,
    make_app,
    open_ledger,
    seed_patient,
    seed_staff,
    settle_down,
    tap,
)

CARD = "8600000001"
POOR = "8600000002"  # 李梅, ¥10.00 on deposit
TTY = (80, 25)
AMX, IBU = 1850, 1260


def config(tmp_path: Path, language: str = "en", **kw: Any) -> EdgeConfig:
    kw.setdefault("department", PHARMACY)
    cfg = EdgeConfig(node_id="pharmacy-01", role="pharmacy",
                     db=tmp_path / "pharmacy-01.sqlite3", key_file=tmp_path / "node.key",
                     language=language, **kw)
    write_key(cfg.key_file, node_key("pharmacy-01"))
    return cfg


async def prescribe(led: Ledger, patient_id: str, *lines: tuple[str, int]) -> str:
    """A visit and a prescription sent by the doctor (on this ledger, as sync brings it)."""
    r = await VisitService(led, "seed").register(dept="IM", channel="cashier",
                                                  patient_id=patient_id, doctor_id="dr.qian",
                                                  again=True)
    clinic = ClinicService(led, "dr.qian")
    built = [await clinic.line(code, qty, 250, 2, 3) for code, qty in lines]
    sent = await clinic.send_order(r.visit.visit_id, built, accept_warnings=WARNINGS)
    return str(sent.orders[0].order_id)


async def seeded(cfg: EdgeConfig, charge_at: str = "execution") -> tuple[Ledger, str, str]:
    led = await open_ledger(cfg)
    await seed_staff(led)
    pid = await seed_patient(led, CARD, deposit=20_000)
    poor = await seed_patient(led, POOR, deposit=1_000, national_id=ID_FEMALE, name="李梅")
    await give_catalogue(led, charge_at=charge_at)
    return led, pid, poor


async def until(pilot: Pilot[Any], what: str, cond: Callable[[], bool],
                timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await settle_down(pilot)
        await asyncio.sleep(0.05)


def desk(pilot: Pilot[Any]) -> PharmacyDesk:
    screen = pilot.app.home  # type: ignore[attr-defined]
    assert isinstance(screen, PharmacyDesk)
    return screen


def question(pilot: Pilot[Any]) -> str:
    return str(pilot.app.screen.query_one("#question", Static).render())


async def on_hand(led: Ledger, code: str) -> int:
    s = await led.get(Stock, (PHARMACY, code))
    return 0 if s is None else int(s.on_hand)


async def test_tap_dispense_part_then_return_the_rest(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    led, pid, _ = await seeded(cfg)
    svc = PharmacyService(led, "seed", pharmacy=PHARMACY)
    await svc.receive("D-AMX", 2)
    order = await prescribe(led, pid, ("D-AMX", 5), ("D-IBU", 1))
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        await until(pilot, "the worklist", lambda: len(desk(pilot).worklist_text()) == 1)
        assert order in desk(pilot).worklist_text()[0]
        await tap(pilot, CARD)
        rows = desk(pilot).lines_text()
        assert len(rows) == 2
        assert rows[0].split("  ") == [order, "阿莫西林胶囊", "5", "0", "5", "2", "short 3"]
        assert rows[1].split("  ")[-2:] == ["-", "short 1"]
        assert "stock is short" in desk(pilot).message_text
        balance = (await led.get(Account, pid)).balance
        await pilot.press("enter")  # the card field is empty: Enter dispenses
        await until(pilot, "the question", lambda: isinstance(pilot.app.screen, ConfirmScreen))
        q = question(pilot)
        assert "阿莫西林胶囊×2" in q and "Short, stays open: 阿莫西林胶囊×3, 布洛芬缓释胶囊×1" in q
        assert f"Charges ¥37.00 from the deposit, balance after {_yuan(balance - 2 * AMX)}" in q
        await pilot.press("y")
        await until(pilot, "dispensed", lambda: "Dispensed F-pharmacy-01-" in
                    desk(pilot).message_text)
        msg = desk(pilot).message_text
        assert "charged ¥37.00" in msg and "Still open (stock short)" in msg
        assert "Medication label" in desk(pilot).last_labels and "250 mg" in \
            desk(pilot).last_labels
        assert await on_hand(led, "D-AMX") == 0
        assert desk(pilot).lines_text()[0].split("  ")[2:5] == ["5", "2", "3"]
        # the rest returned: nothing charged for it at execution, so nothing back
        await pilot.press("f3")
        await until(pilot, "the return form", lambda: isinstance(pilot.app.screen, AskScreen))
        about = str(pilot.app.screen.query_one("#ask-hint", Static).render())
        assert "阿莫西林胶囊×3" in about and "¥0.00" in about
        await pilot.press("ctrl+s")  # nothing filled in: refused in the form
        await until(pilot, "the refusal", lambda: bool(str(
            pilot.app.screen.query_one("#ask-error", Static).render())))
        error = str(pilot.app.screen.query_one("#ask-error", Static).render())
        assert "Give the reason for returning" in error and "A doctor approves" in error
        await fill(pilot, "#reason", "out of stock")
        await fill(pilot, "#approved_by", "dr.qian")
        await pilot.press("ctrl+s")
        await until(pilot, "back at the desk", lambda: pilot.app.screen is desk(pilot))
        await until(pilot, "returned", lambda: "returned" in desk(pilot).message_text)
        assert desk(pilot).lines_text() == []
        await until(pilot, "the worklist empty", lambda: desk(pilot).worklist_text() == [])
    o = await led.get(Order, order)
    assert o.stage == "dispensed" and o.returned_qty() == {"D-AMX": 3, "D-IBU": 1}
    assert (await led.get(Account, pid)).balance == balance - 2 * AMX
    await led.close()


def _yuan(fen: int) -> str:
    from protocol.money import yuan

    return yuan(fen)


async def test_stock_screen_receive_and_adjust(tmp_path: Path) -> None:
    cfg = config(tmp_path, low_stock_items={"D-AMX": 5})
    led, _, _ = await seeded(cfg)
    await PharmacyService(led, "seed", pharmacy=PHARMACY).receive("D-VITC", 50)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        await pilot.press("f4")
        await until(pilot, "the stock", lambda: isinstance(pilot.app.screen, StockScreen))
        stock = pilot.app.screen
        assert isinstance(stock, StockScreen)
        await until(pilot, "the rows", lambda: len(stock.rows_text()) == 1)
        await pilot.press("f2")
        await until(pilot, "the receive form", lambda: isinstance(pilot.app.screen, AskScreen))
        assert pilot.app.screen.query_one("#code", Input).value == "D-VITC"  # the row's
        await fill(pilot, "#code", "D-AMX")
        await fill(pilot, "#qty", "6")
        await fill(pilot, "#batch", "B2026-09")
        await pilot.press("ctrl+s")
        await until(pilot, "back", lambda: pilot.app.screen is stock)
        await until(pilot, "two rows", lambda: len(stock.rows_text()) == 2)
        assert "Received D-AMX 阿莫西林胶囊 6: 6 on hand" in stock.message_text
        assert stock.rows_text()[0].split("  ")[:3] == ["D-AMX", "阿莫西林胶囊", "6"]
        await pilot.press("f4")  # adjust the highlighted D-AMX: two damaged boxes
        await until(pilot, "the adjust form", lambda: isinstance(pilot.app.screen, AskScreen))
        await pilot.press("enter")  # code → the reason
        await pilot.press("2")  # damaged
        await fill(pilot, "#delta", "-2")
        await pilot.press("ctrl+s")
        await until(pilot, "back", lambda: pilot.app.screen is stock)
        await until(pilot, "adjusted", lambda: "Adjusted D-AMX -2 (damaged)" in
                    stock.message_text)
        await until(pilot, "low", lambda: stock.rows_text()[0].split("  ")[2] == "4 LOW")
        await pilot.press("f5")  # low only
        await until(pilot, "only the low one", lambda: len(stock.rows_text()) == 1)
        await pilot.press("f4")  # taking more than there is: refused in the form
        await until(pilot, "the adjust form", lambda: isinstance(pilot.app.screen, AskScreen))
        await fill(pilot, "#delta", "-9")
        await pilot.press("ctrl+s")
        await until(pilot, "the refusal", lambda: "4 on hand, cannot take 9" in str(
            pilot.app.screen.query_one("#ask-error", Static).render()))
        await pilot.press("escape")
        await until(pilot, "back", lambda: pilot.app.screen is stock)
        await pilot.press("escape")
        await until(pilot, "the desk", lambda: pilot.app.screen is desk(pilot))
    s = await led.get(Stock, (PHARMACY, "D-AMX"))
    assert (s.received, s.adjusted, s.on_hand) == (6, -2, 4)
    await led.close()


async def test_refusals_are_said_at_the_desk(tmp_path: Path) -> None:
    cfg = config(tmp_path, language="zh")
    led, _, poor = await seeded(cfg)
    await PharmacyService(led, "seed", pharmacy=PHARMACY).receive("D-AMX", 10)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        await tap(pilot, "8600009999")  # an unknown card
        assert "拒绝此卡" in desk(pilot).message_text and desk(pilot).view is None
        await tap(pilot, POOR)  # nothing waiting for her yet
        assert "李梅 在本药房没有待发的处方" in desk(pilot).message_text
        await pilot.press("f2")
        await settle_down(pilot)
        assert pilot.app.screen is desk(pilot)
        # ¥10.00 − ¥5.00 registration: ¥37.00 of 阿莫西林 is ¥32.00 short
        await prescribe(led, poor, ("D-AMX", 2))
        await tap(pilot, POOR)
        await pilot.press("f2")
        await settle_down(pilot)
        assert pilot.app.screen is desk(pilot)
        assert "还差 ¥32.00" in desk(pilot).message_text
        assert await on_hand(led, "D-AMX") == 10
    await led.close()


async def test_nothing_in_stock_says_how_much(tmp_path: Path) -> None:
    printer = tmp_path / "labels.bin"
    cfg = config(tmp_path, printer=str(printer))
    led, pid, _ = await seeded(cfg, charge_at="send")
    o = await prescribe(led, pid, ("D-AZI", 2))
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f2")
        await settle_down(pilot)
        assert "阿奇霉素片: 0 on hand here, 2 to dispense" in desk(pilot).message_text
        # a receipt arrives (the store room, synced in): now it can be given, nothing charged
        await PharmacyService(led, "store", pharmacy=PHARMACY).receive("D-AZI", 5)
        await pilot.press("f5")
        await until(pilot, "in stock", lambda: desk(pilot).lines_text()[0].split("  ")[5]
                    == "5")
        await pilot.press("f2")
        await until(pilot, "the question", lambda: isinstance(pilot.app.screen, ConfirmScreen))
        assert "Charged when prescribed: nothing charged now" in question(pilot)
        await pilot.press("y")
        await until(pilot, "dispensed", lambda: "charged ¥0.00" in desk(pilot).message_text)
    assert (await led.get(Order, o)).dispensed_qty() == {"D-AZI": 2}
    paper = printer.read_bytes()  # the medication label, as ESC/POS bytes
    assert paper.startswith(b"\x1b@") and "阿奇霉素片".encode("gb18030") in paper
    await led.close()


async def test_the_worklist_follows_the_ledger(tmp_path: Path) -> None:
    """A prescription another counter sent (arriving as sync writes it into this ledger)
    shows without a key pressed, and Enter on it opens that patient."""
    cfg = config(tmp_path)
    led, _, poor = await seeded(cfg)
    async with make_app(cfg, led).run_test(size=TTY) as pilot:
        await log_in(pilot)
        assert desk(pilot).worklist_text() == []
        order = await prescribe(led, poor, ("D-IBU", 2))
        await until(pilot, "the prescription", lambda: len(desk(pilot).worklist_text()) == 1)
        row = desk(pilot).worklist_text()[0]
        assert order in row and "李梅" in row and "布洛芬缓释胶囊×2" in row
        desk(pilot).query_one("#worklist").focus()  # Enter on it opens that patient
        await pilot.press("enter")
        await until(pilot, "the patient", lambda: desk(pilot).view is not None)
        assert desk(pilot).view.patient.name == "李梅"  # type: ignore[union-attr]
        assert desk(pilot).lines_text()[0].startswith(order)
        await pilot.press("escape")  # cleared; found by name instead (no card with him)
        await until(pilot, "cleared", lambda: desk(pilot).view is None)
        await fill(pilot, "#card_no", "张三")
        await pilot.press("ctrl+f")
        await until(pilot, "the search", lambda: isinstance(pilot.app.screen,
                                                             FindPatientScreen))
        await until(pilot, "a hit", lambda: bool(pilot.app.screen.hits))  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, "the patient", lambda: desk(pilot).view is not None)
        assert desk(pilot).view.patient.name == "张三"  # type: ignore[union-attr]
        assert "Nothing waiting here for 张三" in desk(pilot).message_text
    await led.close()


# -- snapshot -------------------------------------------------------------------------------
def test_pharmacy_desk_snapshot(tmp_path: Path, snap_compare: Any) -> None:
    cfg = config(tmp_path, language="zh")

    async def seed() -> None:
        led, pid, poor = await seeded(cfg)
        svc = PharmacyService(led, "seed", pharmacy=PHARMACY)
        await svc.receive("D-AMX", 2)
        await svc.receive("D-IBU", 20)
        await prescribe(led, pid, ("D-AMX", 5), ("D-IBU", 1))
        await prescribe(led, poor, ("D-IBU", 2))
        await led.close()
    asyncio.run(seed())

    async def run_before(pilot: Pilot[Any]) -> None:
        await log_in(pilot)
        await until(pilot, "the worklist", lambda: len(desk(pilot).worklist_text()) == 2)
        await tap(pilot, CARD)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await laid_out(pilot)
    app = make_app(cfg, ledger_clock=lambda: NOW_MS)
    assert snap_compare(app, terminal_size=TTY, run_before=run_before)


def test_every_desk_word_is_in_the_table() -> None:
    """Every pharmacy.* and key.* string the desk names exists in both languages (no
    "[key]" on screen); a refusal code it makes has its problem.* template."""
    import re

    from edge_node.i18n import STRINGS

    src = (Path(__file__).parents[1] / "edge_node/tui/screens/pharmacy.py").read_text(
        encoding="utf-8")
    keys = set(re.findall(r'"((?:pharmacy|key)\.[a-z_.]+)"', src))
    assert len(keys) > 30
    missing = sorted(k for k in keys if k not in STRINGS and f"problem.{k}" not in STRINGS)
    assert not missing
    for k in keys:
        zh, en = STRINGS.get(k) or STRINGS[f"problem.{k}"]
        assert zh and en
