"""Approvals are credentials (issue 11): the green channel is approved by a supervisor's
own id and PIN at the counter, capped, and can be ended.

Each refusal is a finding: a ¥10,000,000 green channel passed with authoriser ``x``,
there was no way to end one, and ``Staff.is_supervisor`` was never used.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from edge_node import staff
from edge_node.config import EdgeConfig
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.form import FormScreen
from edge_node.tui.screens.home import HomeScreen
from tests.conftest import business_signed
from tests.tui_harness import (
    NOW_MS,
    fill,
    form_error,
    log_in,
    make_app,
    seeded_counter,
    settle_down,
    tap,
    type_text,
)

CARD = "8600000001"
SIZE = (100, 40)


@pytest.fixture
async def counter(tmp_path: Path) -> AsyncIterator[tuple[EdgeConfig, Ledger]]:
    cfg, led, _ = await seeded_counter(tmp_path, card_no=CARD)
    hasher = staff.cheap_hasher()
    await staff.add_staff(led, "zhou", "周敏", "2468", hasher=hasher, now_ms=NOW_MS)
    await staff.add_staff(led, "sun", "孙主管", "1357", role="supervisor", hasher=hasher,
                          now_ms=NOW_MS)
    await staff.disable_staff(led, "sun")
    yield cfg, led
    await led.close()


async def _credit(pilot: Any, amount: str, approver: str, pin: str) -> str:
    """Fill the green channel form and send it; the form's error line ("" if done)."""
    await pilot.press("f9")
    await settle_down(pilot)
    await type_text(pilot, amount)
    await fill(pilot, "#reason", "外伤昏迷")
    await fill(pilot, "#approver", approver)
    await fill(pilot, "#approver_pin", pin)
    await pilot.press("ctrl+s")
    await settle_down(pilot)
    if isinstance(pilot.app.screen, ConfirmScreen):
        await pilot.press("y")
        await settle_down(pilot)
    if isinstance(pilot.app.screen, FormScreen):
        text = form_error(pilot)
        await pilot.press("escape")
        await settle_down(pilot)
        return text
    return ""


async def _credit_limit(led: Ledger) -> int:
    pid = (await led.get("cards", CARD)).patient_id
    acct = await led.get("accounts", pid)
    return int(acct.credit_limit)


@pytest.mark.parametrize(("approver", "pin", "says"), [
    ("li", "0000", "Supervisor id or PIN is wrong"),  # wrong PIN
    ("zhou", "2468", "zhou is not a supervisor"),  # right PIN, not a supervisor
    ("sun", "1357", "supervisor id is disabled"),  # a disabled supervisor
    ("wang", "1234", "another person must approve"),  # the operator approving themself
    ("x", "1234", "Supervisor id or PIN is wrong"),  # the finding: authoriser "x"
])
async def test_a_green_channel_without_a_real_supervisor_is_refused(
        counter: tuple[EdgeConfig, Ledger], approver: str, pin: str, says: str) -> None:
    cfg, led = counter
    before = await business_signed(led)
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        text = await _credit(pilot, "500", approver, pin)
    assert says.lower() in text.lower(), text
    assert await business_signed(led) == before  # nothing signed
    assert await _credit_limit(led) == 0


async def test_a_supervisor_approves_within_the_cap_and_ends_it(
        counter: tuple[EdgeConfig, Ledger]) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        text = await _credit(pilot, "10000000", "li", "5678")  # the ¥10,000,000 finding
        assert "at most ¥5,000.00" in text, text
        assert await _credit_limit(led) == 0
        assert await _credit(pilot, "500", "li", "5678") == ""
        assert await _credit_limit(led) == 50_000
        events = [e for e in await led.history((await led.get("cards", CARD)).patient_id)
                  if e.kind == "account.credit_granted"]
        assert events[0].body["authorised_by"] == "li" and events[0].operator == "wang"
        # the open channel is shown, and 0 ends it
        await tap(pilot, CARD)
        assert await _credit(pilot, "0", "li", "5678") == ""
        assert await _credit_limit(led) == 0
        assert isinstance(app.screen, HomeScreen)


async def test_the_service_takes_only_a_checked_approval(
        counter: tuple[EdgeConfig, Ledger]) -> None:
    _, led = counter
    svc = CounterService(led, "wang")
    with pytest.raises(OperationRefused) as refused:
        await svc.grant_credit(CARD, 50_000, "trauma", "x")  # type: ignore[arg-type]
    assert refused.value.codes == ["approval.required"]
    with pytest.raises(OperationRefused) as none_open:
        await svc.grant_credit(CARD, 0, "discharged",
                               await staff.approve(led, "li", "5678", operator="wang"))
    assert none_open.value.codes == ["credit.none_open"]


async def test_wrong_supervisor_pins_count_towards_the_lockout(
        counter: tuple[EdgeConfig, Ledger]) -> None:
    _, led = counter
    for _ in range(staff.MAX_FAILED - 1):
        with pytest.raises(staff.LoginRefused):
            await staff.approve(led, "li", "0000", operator="wang")
    with pytest.raises(staff.LoginRefused) as locked:
        await staff.approve(led, "li", "0000", operator="wang")
    assert locked.value.code == "login.locked"
    with pytest.raises(staff.LoginRefused) as still:
        await staff.approve(led, "li", "5678", operator="wang")
    assert still.value.code == "login.locked"


SUP = staff.Approval("li", "李强", "supervisor")


async def _charged(led: Ledger, amount: int) -> str:
    from tests.conftest import item

    svc = CounterService(led, "wang")
    await svc.deposit(CARD, 100_000, "cash")
    return (await svc.charge(CARD, [item(amount)], "检验科")).number


@pytest.mark.parametrize(("to", "amount", "variant"), [
    ("cash", 100, "cash_refund"),  # the finding: a cash refund approved by "nobody"
    ("deposit", 20_001, "above"),  # above the ¥200.00 threshold
])
async def test_refunds_that_need_a_supervisor_are_refused_without_one(
        counter: tuple[EdgeConfig, Ledger], to: str, amount: int, variant: str) -> None:
    _, led = counter
    svc = CounterService(led, "wang")
    charge = await _charged(led, 30_000)
    with pytest.raises(OperationRefused) as refused:
        await svc.refund(charge, amount, to, "nobody", "x")
    [p] = refused.value.problems
    assert (p.code, p.values["variant"]) == ("approval.required", variant)
    r = await svc.refund(charge, amount, to, "dr.zhao", "x", approval=SUP)
    assert r.events[0].body["supervisor"] == "li"


async def test_small_deposit_refunds_and_non_cash_settlement_need_none(
        counter: tuple[EdgeConfig, Ledger]) -> None:
    _, led = counter
    svc = CounterService(led, "wang")
    charge = await _charged(led, 30_000)
    r = await svc.refund(charge, 20_000, "deposit", "dr.zhao", "x")  # exactly the threshold
    assert "supervisor" not in r.events[0].body
    with pytest.raises(OperationRefused) as refused:
        await svc.settle(CARD, "cash")
    assert refused.value.problems[0].values["variant"] == "cash_settle"
    assert (await svc.settle(CARD, "bank_card")).events[0].body["method"] == "bank_card"


async def test_a_cash_refund_at_the_counter_takes_the_supervisors_pin(
        counter: tuple[EdgeConfig, Ledger]) -> None:
    cfg, led = counter
    await _charged(led, 5_000)
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)

        async def refund(approver: str, pin: str) -> str:
            await pilot.press("f5")
            await settle_down(pilot)
            await fill(pilot, "#amount", "20")
            await fill(pilot, "#approved_by", "Dr Zhou")
            await fill(pilot, "#reason", "not seen")
            pilot.app.screen.query_one("#to").value = "cash"
            await fill(pilot, "#approver", approver)
            await fill(pilot, "#approver_pin", pin)
            await pilot.press("ctrl+s")
            await settle_down(pilot)
            if isinstance(pilot.app.screen, ConfirmScreen):
                await pilot.press("y")
                await settle_down(pilot)
            if isinstance(pilot.app.screen, FormScreen):
                text = form_error(pilot)
                await pilot.press("escape")
                await settle_down(pilot)
                return text
            return ""
        before = await business_signed(led)
        assert "cash refund needs a supervisor" in (await refund("", "")).lower()
        assert "supervisor id or pin is wrong" in (await refund("li", "0000")).lower()
        assert await business_signed(led) == before
        assert await refund("li", "5678") == ""
    pid = (await led.get("cards", CARD)).patient_id
    [ev] = [e for e in await led.history(pid) if e.kind == "account.refunded"]
    assert ev.body["supervisor"] == "li" and ev.body["to"] == "cash" and ev.operator == "wang"
