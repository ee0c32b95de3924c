"""A day at the desk through the keyboard (Textual pilot, real ledger): change shown as the
cash is typed, reprint from the history, void a charge of today, refund single items,
edit a patient's details, and the card fee on a replacement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Static

from edge_node.config import EdgeConfig
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.history import HistoryScreen
from edge_node.tui.screens.home import HomeScreen
from edge_node.tui.screens.refund import RefundScreen
from edge_node.tui.screens.void import VoidScreen
from protocol.account import Charge
from protocol.privacy import details_of
from tests.conftest import TEST_PATIENT_KEYS, item
from tests.tui_harness import (
    fill,
    form_error,
    log_in,
    make_app,
    make_config,
    open_ledger,
    seed_patient,
    seed_staff,
    settle_down,
    tap,
    type_text,
)

CARD = "8600000001"
SIZE = (120, 44)


async def _counter(tmp_path: Path, **cfg: Any) -> tuple[EdgeConfig, Ledger, str]:
    config = make_config(tmp_path, **cfg)
    led = await open_ledger(config)
    await seed_staff(led)
    pid = await seed_patient(led, CARD, deposit=10_000)
    return config, led, pid


@pytest.fixture
async def counter(tmp_path: Path) -> tuple[EdgeConfig, Ledger, str]:
    cfg, led, pid = await _counter(tmp_path)
    yield cfg, led, pid
    await led.close()


def text_of(pilot: Any, selector: str) -> str:
    return str(pilot.app.screen.query_one(selector, Static).render())


async def confirm(pilot: Any) -> str:
    """Answer yes to the confirm question; return the question."""
    await settle_down(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, ConfirmScreen), (screen, form_error(pilot))
    question = screen.question
    await pilot.press("y")
    await settle_down(pilot)
    return question


def printed(cfg: EdgeConfig) -> str:
    path = Path(cfg.printer)
    return path.read_bytes().decode("gb18030", errors="replace") if path.exists() else ""


async def test_change_is_shown_as_the_cash_is_typed(counter) -> None:
    cfg, led, pid = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "88.5")
        await pilot.press("tab", "tab")  # past the method (cash) to the tendered cash
        assert app.screen.focused.id == "tendered"
        await type_text(pilot, "50")
        assert "less than" in text_of(pilot, "#change")
        await pilot.press("enter")  # tendered below the amount: refused before confirm
        await settle_down(pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert "Tendered ¥50.00 is less than ¥88.50" in form_error(pilot)
        await fill(pilot, "#tendered", "100")
        assert text_of(pilot, "#change") == "Change ¥11.50"  # live, before any submit
        await fill(pilot, "#amount", "90")
        assert text_of(pilot, "#change") == "Change ¥10.00"
        await pilot.press("ctrl+s")
        question = await confirm(pilot)
        assert "Tendered ¥100.00, change ¥10.00" in question
        assert isinstance(app.screen, HomeScreen)
    ev = (await led.history(pid))[0]
    assert (ev.body["amount"], ev.body["tendered"], ev.body["method"]) == (9_000, 10_000, "cash")
    receipt = printed(cfg)
    assert "Paid by" in receipt and "Tendered" in receipt and "¥10.00" in receipt


async def test_reprint_from_the_history(counter) -> None:
    cfg, led, _pid = counter
    svc = CounterService(led, "wang")
    r = await svc.deposit(CARD, 2_000, "mobile", card_entry="manual", reference="WX-77")
    Path(cfg.printer).unlink(missing_ok=True)
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "li", "5678")  # another operator reprints it
        await tap(pilot, CARD)
        await pilot.press("f10")
        await settle_down(pilot)
        assert isinstance(app.screen, HistoryScreen)
        table = app.screen.query_one("#history", DataTable)
        assert table.cursor_row == 0  # the newest: the deposit
        await pilot.press("p")
        await settle_down(pilot)
        assert f"Reprinted: {r.number}" in text_of(pilot, "#history-status")
        text = app.screen.last_reprint
        assert "(REPRINT)" in text and r.number in text and "WX-77" in text
        assert "Mobile" in text and "¥120.00" in text  # the balance after that deposit
        assert "Operator: wang" in text and "Reprinted" in text and " li" in text
        assert printed(cfg).count(r.number) == 1  # through the receipt printer
        # the card issue row: the registration's receipt, appended with it
        rows = [app.screen.events[i].kind for i in range(table.row_count)]
        table.move_cursor(row=rows.index("card.issued"))
        await pilot.press("p")
        await settle_down(pilot)
        text = app.screen.last_reprint
        assert "New patient and card (REPRINT)" in text and "Card: 8600000001" in text
        assert "¥100.00" in text and "Operator: seed" in text
        assert printed(cfg).count("REPRINT") == 2


async def test_void_a_charge_of_today(counter) -> None:
    cfg, led, pid = counter
    svc = CounterService(led, "wang")
    c = await svc.charge(CARD, [item(2_500, qty=2)], "检验科", card_entry="manual")
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("ctrl+g")
        await settle_down(pilot)
        assert isinstance(app.screen, VoidScreen)
        assert [x.charge_id for x in app.screen.charges] == [c.number]
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert "Approved by" in form_error(pilot)  # approval and reason first
        await fill(pilot, "#approved_by", "li")
        await fill(pilot, "#reason", "wrong patient")
        await pilot.press("ctrl+s")
        question = await confirm(pilot)
        assert c.number in question and "¥50.00" in question
        assert isinstance(app.screen, HomeScreen)
        # nothing left to void today
        await pilot.press("ctrl+g")
        await settle_down(pilot)
        assert "No charge of today" in form_error(pilot)
        await pilot.press("escape")
        await settle_down(pilot)
        await pilot.press("f10")
        await settle_down(pilot)
        table = app.screen.query_one("#history", DataTable)
        first = [str(x) for x in table.get_row_at(0)]
        assert first[1] == "Void" and "+¥50.00" in first[2] and c.number in first[3]
    charge = await led.get(Charge, c.number)
    assert (charge.refunded, charge.refundable) == (5_000, 0)
    ev = (await led.history(pid))[0]
    assert ev.body["void"] == 1 and ev.body["approved_by"] == "li" and ev.operator == "wang"


async def test_refund_single_items(counter) -> None:
    cfg, led, pid = counter
    svc = CounterService(led, "wang")
    c = await svc.charge(CARD, [item(2_500, qty=2, code="LAB-CBC", name="CBC"),
                                item(300, qty=1, code="LAB-FEE", name="Draw")], "Lab",
                         card_entry="manual")
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f5")
        await settle_down(pilot)
        assert isinstance(app.screen, RefundScreen)
        items = app.screen.query_one("#items", DataTable)
        assert items.row_count == 2
        await pilot.press("enter")  # the charge is picked: on to its items
        await settle_down(pilot)
        assert items.has_focus
        await pilot.press("plus", "plus", "plus")  # at most the 2 charged
        await pilot.press("down", "plus")
        await settle_down(pilot)
        assert app.screen.picked == {0: 2, 1: 1}
        assert "Refund total ¥53.00" in text_of(pilot, "#items-total")
        amount = app.screen.query_one("#amount", Input)
        assert amount.disabled and amount.value == "53.00"
        await pilot.press("up", "minus")  # one CBC less
        await settle_down(pilot)
        assert "Refund total ¥28.00" in text_of(pilot, "#items-total")
        await fill(pilot, "#approved_by", "Dr Zhou")
        await fill(pilot, "#reason", "one test not done")
        await pilot.press("ctrl+s")
        question = await confirm(pilot)
        assert "2 item(s)" in question and "¥28.00" in question
        assert isinstance(app.screen, HomeScreen)
        # the form now offers only what is left of each line
        await pilot.press("f5")
        await settle_down(pilot)
        lefts = [str(app.screen.query_one("#items", DataTable).get_row_at(i)[3])
                 for i in range(2)]
        assert lefts == ["1", "0"]
    ev = (await led.history(pid))[0]
    assert ev.body["items"] == [{"line": 0, "qty": 1}, {"line": 1, "qty": 1}]
    assert ev.body["amount"] == 2_800
    charge = await led.get(Charge, c.number)
    assert charge.refunded_qty() == {0: 1, 1: 1}


async def test_edit_patient_details_and_see_who_changed_what(counter) -> None:
    cfg, led, pid = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("ctrl+r")
        await settle_down(pilot)
        assert app.screen.query_one("#phone", Input).value == "13800138000"  # prefilled
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert "Nothing was changed" in form_error(pilot)
        await fill(pilot, "#phone", "")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert "Phone: required" in form_error(pilot)  # corrected, never erased
        await fill(pilot, "#phone", "13912345678")
        await fill(pilot, "#contact", "Room 3, 5 Dongdan St")
        await pilot.press("ctrl+s")
        question = await confirm(pilot)
        assert "Phone: 13800138000 → 13912345678" in question
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("f10")
        await settle_down(pilot)
        table = app.screen.query_one("#history", DataTable)
        row = [str(x) for x in table.get_row_at(0)]
        assert row[1] == "Details changed" and row[4] == "wang"
        assert "phone: 13800138000 → 13912345678" in row[3]
        assert "contact: (empty) → Room 3" in row[3]
    p = await led.get("patients", pid)
    opened = details_of(p, TEST_PATIENT_KEYS)  # sealed in the ledger
    assert (opened.phone, opened.contact) == ("13912345678", "Room 3, 5 Dongdan St")
    ev = (await led.history(pid))[0]
    assert ev.kind == "patient.updated" and ev.operator == "wang"
    assert set(ev.body) == {"patient_id", "phone", "phone_tag", "contact"}  # what changed


async def test_card_fee_on_replacement_asked_and_refused_before_confirm(
        tmp_path: Path) -> None:
    cfg, led, pid = await _counter(tmp_path, card_fee=1_000)
    try:
        app = make_app(cfg, led)
        async with app.run_test(size=SIZE) as pilot:
            await log_in(pilot)
            await tap(pilot, CARD)
            await pilot.press("f7")
            await settle_down(pilot)
            await type_text(pilot, "8600000002")
            await pilot.press("enter")
            question = await confirm(pilot)
            assert "Card fee ¥10.00" in question
            assert isinstance(app.screen, HomeScreen)
            assert "¥80.00" in str(app.screen.query_one("#money").render())
            # spend the rest: another replacement is refused before the question
            await CounterService(led, "wang").charge("8600000002", [item(8_000)], "x",
                                                     card_entry="manual")
            await tap(pilot, "8600000002")
            await pilot.press("f7")
            await settle_down(pilot)
            await type_text(pilot, "8600000003")
            await pilot.press("enter")
            await settle_down(pilot)
            assert not isinstance(app.screen, ConfirmScreen)
            assert "not enough for the card fee ¥10.00" in form_error(pilot)
        acct = await led.get("accounts", pid)
        # registration (first deposit ¥100, card fee ¥10), replacement fee, the charge
        assert (acct.deposited, acct.charged, acct.balance) == (10_000, 10_000, 0)
        assert (await led.get("cards", "8600000003")) is None
    finally:
        await led.close()


async def test_registration_takes_tendered_cash_and_the_card_fee(tmp_path: Path) -> None:
    cfg, led, _ = await _counter(tmp_path, card_fee=1_000)
    try:
        app = make_app(cfg, led)
        async with app.run_test(size=SIZE) as pilot:
            await log_in(pilot)
            await pilot.press("f2")
            await settle_down(pilot)
            # the first deposit offered covers the registration fee and the card fee
            assert app.screen.query_one("#first_deposit", Input).value == "15.00"
            await fill(pilot, "#name", "李梅")
            await fill(pilot, "#sex", "F")
            await fill(pilot, "#birth_date", "1990-03-07")
            await fill(pilot, "#phone", "13912345678")
            await fill(pilot, "#card_no", "8600000002")
            await fill(pilot, "#first_deposit", "12")
            await pilot.press("ctrl+s")
            await settle_down(pilot)
            assert not isinstance(app.screen, ConfirmScreen)
            assert "card fee" in form_error(pilot) and "¥15.00" in form_error(pilot)
            await fill(pilot, "#first_deposit", "180")
            await fill(pilot, "#tendered", "200")
            assert text_of(pilot, "#change") == "Change ¥20.00"
            await pilot.press("ctrl+s")
            question = await confirm(pilot)
            assert "Card fee ¥10.00" in question and "change ¥20.00" in question
            assert isinstance(app.screen, HomeScreen)
        card = await led.get("cards", "8600000002")
        events = await led.history(card.patient_id)
        kinds = [e.kind for e in reversed(events)]
        assert kinds == ["patient.registered", "card.issued", "account.deposited",
                         "account.charged"]
        assert events[1].body["tendered"] == 20_000
        assert (await led.get("accounts", card.patient_id)).balance == 17_000
        receipt = printed(cfg)
        assert "Card fee" in receipt and "Change" in receipt and "¥20.00" in receipt
    finally:
        await led.close()
