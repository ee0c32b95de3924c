"""The cashier's day close (日结 确认): a signed ``report.closed`` with the report's figures
and the cash counted, from the service and from the report screen (F11, C)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_node import reports
from edge_node.config import EdgeConfig
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.report import DailyReportScreen, DayCloseScreen
from protocol.dayclose import DayClosed
from protocol.domain import REGISTRY
from tests.tui_harness import (
    NOW_MS,
    log_in,
    make_app,
    seeded_counter,
    settle_down,
    tap,
    type_text,
)

CARD = "8600000001"
SIZE = (120, 44)


@pytest.fixture
async def counter(tmp_path: Path) -> tuple[EdgeConfig, Ledger]:
    cfg, led, _ = await seeded_counter(tmp_path, card_no=CARD)
    yield cfg, led
    await led.close()


def _day(led: Ledger) -> reports.BusinessDay:
    return reports.business_day(led.now_ms())


async def _closes(led: Ledger) -> list[DayClosed]:
    out = []
    for ev, _ in await led.own_events_between(0, 2**53):
        fact = REGISTRY.fact(ev)
        if fact is not None and isinstance(fact.body, DayClosed):
            out.append(fact.body)
    return out


async def test_close_signs_the_reports_figures_and_moves_no_money(counter) -> None:
    _cfg, led = counter
    svc = CounterService(led, "wang")
    await svc.deposit(CARD, 5_000, "bank_card", reference="POS-778")
    await svc.charge(CARD, [{"code": "LAB-CBC", "name": "血常规", "qty": 1,
                             "unit_price": 2_500}], "lab")
    before = await led.get("accounts", (await led.get("cards", CARD)).patient_id)
    day = _day(led)
    with pytest.raises(OperationRefused):  # a negative count of cash is refused, unsigned
        await svc.close_day(day, -1, all_operators=True)
    head = (await led.head()).seq
    _, preview = await svc.dry().close_day(day, 10_000, all_operators=True)
    assert (await led.head()).seq == head  # the dry run signed nothing
    event, report = await svc.close_day(day, 9_950, all_operators=True, note="¥0.50 short")
    assert event is not None and event.kind == "report.closed" and event.operator == "wang"
    body = REGISTRY.fact(event).body
    assert isinstance(body, DayClosed)
    assert body.day == day.date.isoformat() and (body.start_ms, body.end_ms) == (
        day.start_ms, day.end_ms)
    assert body.cashier == ""  # the whole counter
    # the figures are the report's, as the report screen shows them
    figures = {(f.section, f.line): (f.count, f.amount) for f in body.figures}
    assert figures == reports.report_figures(report) == reports.report_figures(preview)
    assert figures[("deposits", "cash")] == (1, 10_000)  # the seed's first deposit
    assert figures[("deposits", "bank_card")] == (1, 5_000)
    assert figures[("charges", "")] == (1, 2_500)
    assert body.expected_cash == 10_000 and body.counted_cash == 9_950
    assert body.difference == -50 and body.note == "¥0.50 short"
    after = await led.get("accounts", before.patient_id)
    assert after == before and REGISTRY.money(event).deltas == ()
    # this operator alone: only wang's own work (the seed deposited as "seed")
    event2, mine = await svc.close_day(day, 0)
    assert REGISTRY.fact(event2).body.cashier == "wang"
    assert reports.report_figures(mine)[("deposits", "bank_card")] == (1, 5_000)
    assert ("deposits", "cash") not in reports.report_figures(mine)
    # a close is no line of the report it closes
    again = await reports.daily_report(led, day)
    assert reports.report_figures(again) == reports.report_figures(report)


def test_a_close_whose_cash_does_not_add_up_is_invalid() -> None:
    body = {"day": "2026-11-30", "start_ms": 10, "end_ms": 20,
            "figures": [{"section": "deposits", "line": "cash", "count": 1, "amount": 500}],
            "expected_cash": 400, "counted_cash": 400}
    assert [p.code for p in REGISTRY.validate("report.closed", body)] == [
        "close.expected_cash"]
    assert REGISTRY.validate("report.closed", {**body, "expected_cash": 500}) == []
    bad_day = {**body, "expected_cash": 500, "day": "2026-02-30", "end_ms": 5}
    assert {p.code for p in REGISTRY.validate("report.closed", bad_day)} == {
        "close.day", "close.span"}


async def test_report_screen_closes_the_day(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f11")
        await settle_down(pilot)
        assert isinstance(app.screen, DailyReportScreen)
        await pilot.press("a")  # every operator's work (the seed deposited ¥100.00 cash)
        await settle_down(pilot)
        await pilot.press("c")
        await settle_down(pilot)
        assert isinstance(app.screen, DayCloseScreen)
        text = "\n".join(str(w.render()) for w in app.screen.query("Static"))
        assert "¥100.00" in text  # the cash expected
        await type_text(pilot, "99.5")
        await settle_down(pilot)
        diff = str(app.screen.query_one("#close-difference").render())
        assert "-¥0.50" in diff and "short" in diff
        await pilot.press("enter")
        await settle_down(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "-¥0.50" in app.screen.question
        await pilot.press("y")
        await settle_down(pilot)
        assert isinstance(app.screen, DailyReportScreen)
        note = str(app.screen.query_one("#report-note").render())
        assert "closed" in note and "-¥0.50" in note
    closes = await _closes(led)
    assert len(closes) == 1
    close = closes[0]
    assert close.counted_cash == 9_950 and close.expected_cash == 10_000
    assert close.cashier == "" and close.start_ms <= NOW_MS < close.end_ms


async def test_close_screen_refuses_a_bad_amount_and_cancels(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("f11")
        await settle_down(pilot)
        await pilot.press("c")
        await settle_down(pilot)
        await type_text(pilot, "abc")
        await pilot.press("enter")
        await settle_down(pilot)
        assert isinstance(app.screen, DayCloseScreen)
        assert "1250" in str(app.screen.query_one("#close-note").render())
        await pilot.press("escape")
        await settle_down(pilot)
        assert isinstance(app.screen, DailyReportScreen)
    assert await _closes(led) == []
