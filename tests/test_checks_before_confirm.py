"""Everything the counter can know is refused in the form, before the confirm question.

Each refusal below is the dry run of the very same service call (the ledger's append
path, rolled back): it shows in the counter's language with the field's label and
yuan, no ConfirmScreen is ever pushed for it, and the ledger's head does not move.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from edge_node import staff
from edge_node.config import EdgeConfig
from edge_node.ledger import Ledger
from edge_node.tui.screens import form as form_module
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.form import FormScreen
from edge_node.tui.screens.home import HomeScreen
from protocol.privacy import details_of
from tests.conftest import TEST_PATIENT_KEYS, business_signed
from tests.tui_harness import (
    fill,
    form_error,
    log_in,
    make_app,
    make_config,
    open_ledger,
    seed_staff,
    seeded_counter,
    settle_down,
    tap,
    type_text,
)

CARD = "8600000001"
SIZE = (120, 44)
LATIN_WORD = re.compile(r"[A-Za-z_]{2,}")  # an English word or a raw field name


@pytest.fixture
async def counter(tmp_path: Path) -> Any:
    cfg, led, _ = await seeded_counter(tmp_path, language="zh", card_no=CARD)
    yield cfg, led
    await led.close()


@pytest.fixture
def questions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every confirm question the forms push (a spy on the form's ConfirmScreen)."""
    asked: list[str] = []

    class Spy(ConfirmScreen):
        def __init__(self, counter: Any, question: str) -> None:
            asked.append(question)
            super().__init__(counter, question)
    monkeypatch.setattr(form_module, "ConfirmScreen", Spy)
    return asked


async def head(led: Ledger) -> int:
    """The counter's own business events (not its audit trail: logins, records opened)."""
    return await business_signed(led)


async def refused_in_form(pilot: Any, questions: list[str], asked_before: int) -> str:
    """The form is still up with its error line; no question was asked.  The line."""
    await settle_down(pilot)
    assert isinstance(pilot.app.screen, FormScreen), pilot.app.screen
    assert len(questions) == asked_before, questions
    text = form_error(pilot)
    assert text.startswith("未办理："), text
    assert not LATIN_WORD.search(text), text  # all Chinese: no English, no field names
    return text


def focused(pilot: Any) -> str:
    return pilot.app.screen.focused.id if pilot.app.screen.focused is not None else ""


async def confirm_yes(pilot: Any) -> None:
    await settle_down(pilot)
    assert isinstance(pilot.app.screen, ConfirmScreen), pilot.app.screen
    await pilot.press("y")
    await settle_down(pilot)


async def test_registration_is_checked_before_the_question(counter, questions) -> None:
    cfg, led = counter
    start = await head(led)
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("f2")
        await settle_down(pilot)
        await type_text(pilot, "王五")
        await fill(pilot, "#sex", "M")
        await fill(pilot, "#birth_date", "1980-02-30")
        await fill(pilot, "#phone", "1")
        await fill(pilot, "#card_no", "8600000005")
        await fill(pilot, "#first_deposit", "100")
        await pilot.press("ctrl+s")
        text = await refused_in_form(pilot, questions, 0)
        assert "手机号：格式不对（应为" in text and focused(pilot) == "phone"
        # the line goes once the field is edited
        await fill(pilot, "#phone", "13912345678")
        assert form_error(pilot) == ""
        await pilot.press("ctrl+s")
        text = await refused_in_form(pilot, questions, 0)
        assert "出生日期：1980-02-30 不是真实的日期" in text and focused(pilot) == "birth_date"
        await fill(pilot, "#birth_date", "2031-05-01")  # after the counter's today
        assert form_error(pilot) == ""
        await pilot.press("ctrl+s")
        text = await refused_in_form(pilot, questions, 0)
        assert "2031-05-01 晚于今天（2026-09-21）" in text
        await fill(pilot, "#birth_date", "1880-05-01")
        await pilot.press("ctrl+s")
        text = await refused_in_form(pilot, questions, 0)
        assert "早于 1900-01-01" in text
        # below the registration fee: the deposit rule, shown on the first-deposit field
        await fill(pilot, "#birth_date", "1980-02-28")
        await fill(pilot, "#first_deposit", "4.99")
        await pilot.press("ctrl+s")
        text = await refused_in_form(pilot, questions, 0)
        assert "首次预交金：至少 ¥5.00（挂号费），现为 ¥4.99" in text
        assert focused(pilot) == "first_deposit"
        await fill(pilot, "#contact", "妻子 李梅")  # another field: the line stays
        assert "首次预交金" in form_error(pilot)
        assert await head(led) == start  # nothing appended by any check
        # fixed: now the question, with the balance the preview found, then for real
        await fill(pilot, "#first_deposit", "100")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        assert len(questions) == 1 and "办理后余额 ¥100.00" in questions[0]
        await confirm_yes(pilot)
        assert isinstance(app.screen, HomeScreen)
    assert await head(led) == start + 3
    card = await led.get("cards", "8600000005")
    patient = await led.get("patients", card.patient_id)
    opened = details_of(patient, TEST_PATIENT_KEYS)  # sealed in the ledger
    assert (patient.birth_date, opened.phone) == ("1980-02-28", "13912345678")


async def test_money_and_card_refusals_before_the_question(counter, questions) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        # overdraft: a head CT (¥320.00) on ¥100.00
        before = await head(led)
        await pilot.press("f4")
        await settle_down(pilot)
        await type_text(pilot, "EX104")
        await pilot.press("enter", "ctrl+s")
        text = await refused_in_form(pilot, questions, 0)
        assert "余额不足：余额 ¥100.00，本次 ¥320.00，还差 ¥220.00" in text
        assert await head(led) == before
        await pilot.press("escape")
        await settle_down(pilot)
        # green channel ¥500, then the same charge goes through: ¥220.00 owed
        await pilot.press("f9")
        await settle_down(pilot)
        await type_text(pilot, "500")
        await fill(pilot, "#reason", "外伤昏迷")
        await fill(pilot, "#approver", "li")
        await fill(pilot, "#approver_pin", "5678")
        await pilot.press("ctrl+s")
        await confirm_yes(pilot)
        await pilot.press("f4")
        await settle_down(pilot)
        await type_text(pilot, "EX104")
        await pilot.press("enter", "ctrl+s")
        await settle_down(pilot)
        assert "办理后余额 -¥220.00" in questions[-1]
        await confirm_yes(pilot)
        asked = len(questions)
        assert asked == 2
        # settling while in debt
        before = await head(led)
        await pilot.press("f8")
        await settle_down(pilot)
        await pilot.press("enter")
        text = await refused_in_form(pilot, questions, asked)
        assert "病人欠费 ¥220.00：请先收回欠款再结算" in text
        assert await head(led) == before
        await pilot.press("escape")
        await settle_down(pilot)
        # a lost card: reported (asked), then a deposit on it is refused unasked
        await pilot.press("f6")
        await settle_down(pilot)
        await pilot.press("1", "ctrl+s")
        await confirm_yes(pilot)
        asked = len(questions)
        before = await head(led)
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "10")
        await pilot.press("enter", "enter")
        text = await refused_in_form(pilot, questions, asked)
        assert f"卡 {CARD} 已挂失，不能使用" in text
        assert await head(led) == before
        assert (await led.get("cards", CARD)).status == "lost"


async def test_amount_above_the_limit_reads_in_yuan(counter, questions) -> None:
    cfg, led = counter
    before = await head(led)
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "999999999.99")
        await pilot.press("enter", "enter")
        text = await refused_in_form(pilot, questions, 0)
        assert "金额：超过上限 ¥100,000,000.00" in text and focused(pilot) == "amount"
        await pilot.press("backspace")
        assert form_error(pilot) == ""  # edited: the line is gone
    assert await head(led) == before


async def test_lockout_says_how_long(tmp_path: Path) -> None:
    cfg: EdgeConfig = make_config(tmp_path, language="zh")
    led = await open_ledger(cfg)
    try:
        await seed_staff(led)
        app = make_app(cfg, led)
        async with app.run_test(size=SIZE) as pilot:
            await settle_down(pilot)
            await fill(pilot, "#staff_id", "wang")
            for _ in range(staff.MAX_FAILED):
                await fill(pilot, "#pin", "9999")
                await pilot.press("enter")
                await settle_down(pilot)
            from textual.widgets import Static
            text = str(app.screen.query_one("#error", Static).render())
            minutes = staff.LOCKOUT_MS // 60_000
            assert f"请 {minutes} 分钟后再试" in text, text
            await fill(pilot, "#pin", "1234")  # typing again clears the line…
            assert str(app.screen.query_one("#error", Static).render()) == ""
            await pilot.press("enter")  # …the right PIN, still locked: says so again
            await settle_down(pilot)
            text = str(app.screen.query_one("#error", Static).render())
            assert re.search(r"请 [1-5] 分钟后再试", text), text
            assert not isinstance(app.screen, HomeScreen)
    finally:
        await led.close()


def test_an_age_is_never_negative() -> None:
    from edge_node.tui.describe import age
    from tests.tui_harness import NOW_MS

    assert age("1990-09-21", NOW_MS, "Asia/Shanghai") == 36
    assert age("2026-09-21", NOW_MS, "Asia/Shanghai") == 0
    assert age("2030-01-01", NOW_MS, "Asia/Shanghai") is None  # a wrong date: unknown
    assert age("1980-02-30", NOW_MS, "Asia/Shanghai") is None


async def test_concurrent_logins_cannot_try_more_pins_than_the_lockout_allows(
        tmp_path: Path) -> None:
    """30 attempts at once (a script against the counter): at most MAX_FAILED PINs are
    checked before the id locks; every other attempt is refused as locked, and so is the
    right PIN afterwards."""
    cfg: EdgeConfig = make_config(tmp_path, language="zh")
    led = await open_ledger(cfg)
    try:
        await seed_staff(led)
        results = await asyncio.gather(*(staff.login(led, "wang", f"{9000 + i}")
                                         for i in range(30)), return_exceptions=True)
        codes = [r.code for r in results if isinstance(r, staff.LoginRefused)]
        assert len(codes) == 30
        wrong = codes.count("login.wrong")
        assert wrong <= staff.MAX_FAILED - 1 and codes.count("login.locked") == 30 - wrong
        with pytest.raises(staff.LoginRefused) as locked:
            await staff.login(led, "wang", "1234")
        assert locked.value.code == "login.locked"
    finally:
        await led.close()
