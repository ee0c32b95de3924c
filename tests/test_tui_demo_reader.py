"""The demo counter end to end (simulated chip reader), and reading cards from reader events."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_node import demo
from edge_node.tui.cardsource import Notice, Tapped, TypedCard, interpret
from edge_node.tui.screens.home import HomeScreen
from tests.tui_harness import home, log_in, settle_down, type_text


async def test_demo_tap_a_card_and_take_a_deposit(tmp_path: Path) -> None:
    config, app = await asyncio.to_thread(demo.build, tmp_path, "en")
    async with app.run_test(size=(120, 44)) as pilot:
        await log_in(pilot, "demo", "1234")
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("ctrl+t")  # the simulated reader presents a signed chip card
        for _ in range(20):
            await settle_down(pilot)
            if home(pilot).panel.view is not None:
                break
        view = home(pilot).panel.view
        assert view is not None and view.patient.name == "张三"
        assert home(pilot).card_entry == "chip"
        assert view.account.balance == 49_500  # ¥500 deposit − registration fee
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "100")
        await pilot.press("enter", "enter")
        await settle_down(pilot)
        await pilot.press("y")
        await settle_down(pilot)
        assert home(pilot).panel.view.account.balance == 59_500
    receipts = Path(config.printer).read_bytes()
    assert "¥100.00".encode("gb18030") in receipts


def test_reader_events_mean_card_numbers_or_notices() -> None:
    assert interpret(TypedCard("8600000001")) == Tapped("8600000001", "wedge")
    assert interpret(TypedCard("8600000001", medium="manual")) == Tapped("8600000001", "manual")
    blank = interpret(TypedCard("", card_file=b"\x00" * 16))
    assert isinstance(blank, Notice) and blank.blank and blank.problem
    damaged = interpret(TypedCard("", card_file=b"XX\x01\x00\x05hello"))
    assert isinstance(damaged, Notice) and "damaged" in damaged.text
