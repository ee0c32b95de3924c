"""Finding a patient with no card at the counter, and an item by pinyin (Pilot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Static

from edge_node.card.layout import check_record
from edge_node.config import EdgeConfig
from edge_node.i18n import Translator
from edge_node.ledger import Ledger, Op
from edge_node.service import CounterService
from edge_node.tui.cardsource import refusal_text
from edge_node.tui.screens.charge import ChargeScreen
from edge_node.tui.screens.deposit import DepositScreen
from edge_node.tui.screens.find import FindPatientScreen
from edge_node.tui.screens.home import FIND_KEY
from edge_node.tui.screens.replace import ReplaceCardScreen
from tests.conftest import TEST_PATIENT_KEYS, FakeClock, node_key
from tests.test_search import merge
from tests.tui_harness import (
    NOW_MS,
    home,
    log_in,
    make_app,
    make_config,
    message,
    open_ledger,
    seed_patient,
    seed_staff,
    settle_down,
    tap,
    type_text,
)

CARD = "8600000001"
OTHER_CARD = "8600000002"
SIZE = (140, 44)


@pytest.fixture
async def counter(tmp_path: Path) -> Any:
    cfg = make_config(tmp_path)
    led = await open_ledger(cfg)
    await seed_staff(led)
    zhang = await seed_patient(led, CARD, deposit=10_000)  # 张三, 13800138000
    li = (await CounterService(led, "seed").register_patient(
        name="李四", sex="F", birth_date="1985-02-01", phone="13700005678",
        card_no=OTHER_CARD, first_deposit=5_000)).patient.patient_id
    yield cfg, led, {"zhang": zhang, "li": li}
    await led.close()


def panel_text(pilot: Any) -> str:
    panel = home(pilot).panel
    return "\n".join(str(panel.query_one(f"#{w}", Static).render())
                     for w in ("who", "ident", "card", "flags"))


def rows(pilot: Any) -> list[list[str]]:
    table = pilot.app.screen.query_one("#hits", DataTable)
    return [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]


async def find(pilot: Any, query: str) -> None:
    await pilot.press(FIND_KEY)
    await settle_down(pilot)
    assert isinstance(pilot.app.screen, FindPatientScreen)
    await type_text(pilot, query)
    await settle_down(pilot)


async def test_type_pick_with_enter_and_the_panel_shows_the_patient(counter: Any) -> None:
    cfg, led, pids = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        [binding] = home(pilot)._bindings.key_to_bindings[FIND_KEY]
        assert binding.action == "find" and binding.description == "Find patient"
        await find(pilot, "zs")
        [row] = rows(pilot)
        assert row[:2] == [pids["zhang"], "张三"]
        assert row[3] == "110101********0011" and row[4] == "138****8000"
        assert row[5] == f"{CARD} active" and row[6] == "¥100.00" and row[7] == ""
        await pilot.press("enter")
        await settle_down(pilot)
        assert not isinstance(app.screen, FindPatientScreen)
        assert home(pilot).view is not None
        assert home(pilot).view.patient.patient_id == pids["zhang"]
        text = panel_text(pilot)
        assert "张三" in text and pids["zhang"] in text and f"Card {CARD}" in text
        assert f"Opened by search (no card read): businesses use the active card {CARD}" in text
        assert home(pilot).card_no == CARD and home(pilot).card_entry == "manual"
        # a business that needs a card uses the patient's active card
        await pilot.press("f3")
        await settle_down(pilot)
        assert isinstance(app.screen, DepositScreen) and app.screen.card_no == CARD
        await type_text(pilot, "20")
        await pilot.press("enter", "enter")
        await settle_down(pilot)
        await pilot.press("y")
        await settle_down(pilot)
        assert (await led.get("accounts", pids["zhang"])).balance == 12_000
        last = (await led.history(pids["zhang"], 1))[0]
        assert last.kind == "account.deposited" and last.body["card_entry"] == "manual"
        assert "Done" in message(pilot)


async def test_arrows_choose_the_row_and_escape_goes_back(counter: Any) -> None:
    cfg, led, pids = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await find(pilot, "P-cashier-01")
        assert [r[1] for r in rows(pilot)] == ["张三", "李四"]
        await pilot.press("down")
        await pilot.press("enter")
        await settle_down(pilot)
        assert home(pilot).view.patient.patient_id == pids["li"]
        await find(pilot, "nobody")
        assert rows(pilot) == []
        assert "No patient matches nobody" in str(app.screen.query_one("#find-status",
                                                                       Static).render())
        await pilot.press("enter")  # nothing to pick: stays
        await settle_down(pilot)
        assert isinstance(app.screen, FindPatientScreen)
        await pilot.press("escape")
        await settle_down(pilot)
        assert not isinstance(app.screen, FindPatientScreen)
        assert home(pilot).view.patient.patient_id == pids["li"]  # still who it was


async def test_by_phone_last_four_and_a_typed_number_carries_over(counter: Any) -> None:
    cfg, led, _ = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await type_text(pilot, "5678")  # typed in the card field first: searching carries it
        await pilot.press(FIND_KEY)
        await settle_down(pilot)
        assert [r[1] for r in rows(pilot)] == ["李四"]
        await pilot.press("enter")
        await settle_down(pilot)
        assert home(pilot).card_no == OTHER_CARD


async def test_a_merged_record_opens_the_record_it_was_merged_into(counter: Any) -> None:
    cfg, led, pids = counter
    await merge(led, pids["zhang"], pids["li"], [OTHER_CARD])
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await find(pilot, "lisi")
        [row] = rows(pilot)
        assert row[1] == "李四" and row[7] == f"→ {pids['zhang']}"
        await pilot.press("enter")
        await settle_down(pilot)
        assert home(pilot).view.patient.patient_id == pids["zhang"]
        assert f"Record {pids['li']} was merged into {pids['zhang']}" in panel_text(pilot)


async def test_no_active_card_is_shown_and_said_and_f7_replaces_the_lost_one(
        counter: Any) -> None:
    cfg, led, _ = counter
    await CounterService(led, "seed").report_lost(OTHER_CARD, "id_card")
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await find(pilot, "李")
        assert rows(pilot)[0][5] == f"{OTHER_CARD} LOST"
        await pilot.press("enter")
        await settle_down(pilot)
        text = panel_text(pilot)
        assert "李四" in text and "This patient has no active card: for viewing only" in text
        assert f"Card {OTHER_CARD} is reported lost: F7 replaces it" in text
        await pilot.press("f7")
        await settle_down(pilot)
        assert isinstance(app.screen, ReplaceCardScreen) and app.screen.card_no == OTHER_CARD
        await pilot.press("escape")
        await settle_down(pilot)


async def test_no_card_at_all_refuses_businesses_in_plain_words(counter: Any,
                                                                tmp_path: Path) -> None:
    cfg, led, _ = counter
    # registered at another counter, no card issued (yet): synced here
    other = await Ledger.open(tmp_path / "other.sqlite3", "cashier-02",
                              node_key("cashier-02"), clock=FakeClock(NOW_MS - 60_000))
    try:
        await other.append(Op("patient.registered", {
            "patient_id": "P-cashier-02-000001", "sex": "M",
            "birth_date": "1970-07-07", **TEST_PATIENT_KEYS.sealed_details(
                "P-cashier-02-000001", {"name": "王五", "phone": "13511112222"})}), "op")
        await led.set_node_keys({"cashier-02": (node_key("cashier-02").public_key,
                                                "cashier")})
        await led.ingest([d for _, d in await other.events()])
    finally:
        await other.close()
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await find(pilot, "ww")
        assert rows(pilot)[0][5] == "no card"
        await pilot.press("enter")
        await settle_down(pilot)
        assert home(pilot).view.patient.patient_id == "P-cashier-02-000001"
        assert home(pilot).card_no == ""
        assert "This patient has no active card" in panel_text(pilot)
        await pilot.press("f3")
        await settle_down(pilot)
        assert not isinstance(app.screen, DepositScreen)
        assert "no active card" in message(pilot)


async def test_the_charge_form_finds_an_item_by_its_initials(counter: Any) -> None:
    cfg, led, _ = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f4")
        await settle_down(pilot)
        assert isinstance(app.screen, ChargeScreen)
        await type_text(pilot, "xcg")
        await settle_down(pilot)
        await pilot.press("enter")
        await settle_down(pilot)
        assert [(line.item.code, line.qty) for line in app.screen.cart] == [("LB201", 1)]


def test_the_unknown_card_advice_names_the_key() -> None:
    refusal = check_record("8600000099", None, None)
    assert refusal is not None
    assert "Ctrl+F" in refusal_text(Translator("en"), refusal)
    assert "按 Ctrl+F 查找病人" in refusal_text(Translator("zh"), refusal)
    assert FIND_KEY == "ctrl+f"


async def test_chinese_screen(tmp_path: Path) -> None:
    cfg: EdgeConfig = make_config(tmp_path, language="zh")
    led: Ledger = await open_ledger(cfg)
    try:
        await seed_staff(led)
        pid = await seed_patient(led, CARD)
        app = make_app(cfg, led)
        async with app.run_test(size=SIZE) as pilot:
            await log_in(pilot)
            await find(pilot, "zhangsan")
            [row] = rows(pilot)
            assert row[1] == "张三" and row[5] == f"{CARD} 正常"
            await pilot.press("enter")
            await settle_down(pilot)
            assert "按查找打开" in panel_text(pilot) and pid in panel_text(pilot)
    finally:
        await led.close()
