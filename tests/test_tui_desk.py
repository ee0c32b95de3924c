"""The desk a cashier lives at: log out and handover, Ctrl+Q, language switch, every key at
80×25, Ctrl+B (blank card) in the forms that take a card number — through the real TUI.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from textual.pilot import Pilot
from textual.widgets import Input, Static

from edge_node import demo
from edge_node.config import EdgeConfig, write_key
from edge_node.service import CounterService
from edge_node.tui.app import CounterApp, QuitConfirmScreen
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.form import FormScreen
from edge_node.tui.screens.handover import HandoverScreen
from edge_node.tui.screens.home import HomeScreen
from edge_node.tui.screens.keyhelp import KeyHelpScreen
from edge_node.tui.screens.login import LoginScreen
from edge_node.tui.widgets.keybar import KeyBar
from edge_node.tui.widgets.status import StatusBar
from tests.conftest import node_key
from tests.tui_harness import (
    fill,
    home,
    laid_out,
    log_in,
    make_app,
    make_config,
    message,
    open_ledger,
    seed_patient,
    seed_staff,
    settle_down,
    tap,
)

CARD = "8600000001"
TTY = (80, 25)


async def seeded(tmp_path: Path, language: str = "zh") -> EdgeConfig:
    cfg = make_config(tmp_path, language=language)
    write_key(cfg.key_file, node_key(cfg.node_id))
    led = await open_ledger(cfg)
    await seed_staff(led)
    await seed_patient(led, CARD, deposit=25_000)  # operator "seed": in no one's slip
    await led.close()
    return cfg


@pytest.fixture
async def counter(tmp_path: Path) -> EdgeConfig:
    return await seeded(tmp_path)


def text(pilot: Pilot[Any], selector: str) -> str:
    return str(pilot.app.screen.query_one(selector, Static).render())


def status(pilot: Pilot[Any], part: str) -> str:
    return str(home(pilot).query_one(StatusBar).query_one(f"#{part}", Static).render())


async def deposit(pilot: Pilot[Any], amount: str) -> None:
    """F3, the amount, cash, Ctrl+S and yes: a committed deposit on the card shown."""
    await pilot.press("f3")
    await settle_down(pilot)
    await fill(pilot, "#amount", amount)
    await pilot.press("ctrl+s")
    for _ in range(50):  # the confirmation (after whatever checks run first)
        await settle_down(pilot)
        if isinstance(pilot.app.screen, ConfirmScreen):
            break
    assert isinstance(pilot.app.screen, ConfirmScreen), pilot.app.screen
    await pilot.press("y")
    for _ in range(50):
        await settle_down(pilot)
        if isinstance(pilot.app.screen, HomeScreen):
            break
    assert isinstance(pilot.app.screen, HomeScreen), pilot.app.screen


async def unlock_as(pilot: Pilot[Any], staff_id: str, pin: str) -> None:
    """At the lock screen (F12): someone else's staff id and PIN."""
    assert isinstance(pilot.app.screen, LoginScreen)
    await fill(pilot, "#staff_id", staff_id)
    await fill(pilot, "#pin", pin)
    await pilot.press("enter")
    await settle_down(pilot)
    assert isinstance(pilot.app.screen, HomeScreen)


async def open_slip(pilot: Pilot[Any]) -> HandoverScreen:
    await pilot.press("ctrl+o")
    await settle_down(pilot)
    screen = pilot.app.screen
    assert isinstance(screen, HandoverScreen)
    assert screen.loaded and screen.report is not None
    return screen


# -- log out ---------------------------------------------------------------------------------
async def test_log_out_clears_the_desk_for_the_next_operator(counter: EdgeConfig) -> None:
    app = make_app(counter)
    async with app.run_test(size=TTY) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        assert home(pilot).view is not None
        await pilot.press("ctrl+o")  # the slip first; Esc: keep working, nothing changes
        await settle_down(pilot)
        assert isinstance(app.screen, HandoverScreen)
        await pilot.press("escape")
        await settle_down(pilot)
        assert isinstance(app.screen, HomeScreen) and home(pilot).view is not None
        assert app.counter is not None and app.counter.operator is not None

        await open_slip(pilot)
        await pilot.press("enter")
        await settle_down(pilot)
        login = app.screen
        assert isinstance(login, LoginScreen) and not login.locked  # for anyone
        assert login.query_one("#staff_id", Input).value == ""
        assert app.counter.operator is None and app.counter.service.operator == ""
        desk = home(pilot)
        assert desk.view is None and desk.card_no == "" and desk.last_receipt_text == ""
        assert desk.query_one("#card_no", Input).value == ""
        assert "张三" not in str(desk.panel.query_one("#who", Static).render())

        await log_in(pilot, "li", "5678")
        assert isinstance(app.screen, HomeScreen)
        assert app.counter.operator is not None and app.counter.operator.staff_id == "li"
        await settle_down(pilot)
        assert status(pilot, "operator") == "操作员 李强"
        assert home(pilot).view is None  # nothing of wang's patient came back


async def test_handover_slip_is_the_operators_own_shift(counter: EdgeConfig) -> None:
    app = make_app(counter)
    async with app.run_test(size=TTY) as pilot:
        await log_in(pilot)  # wang
        await tap(pilot, CARD)
        await deposit(pilot, "100")
        await deposit(pilot, "20.50")
        await pilot.press("f12")  # wang steps away; li takes the desk for a while
        await settle_down(pilot)
        await unlock_as(pilot, "li", "5678")
        await tap(pilot, CARD)
        await deposit(pilot, "7")
        await pilot.press("f12")
        await settle_down(pilot)
        await unlock_as(pilot, "wang", "1234")

        slip = await open_slip(pilot)
        report = slip.report
        assert report is not None and report.operator == "wang"
        assert (report.deposits["cash"].count, report.deposits["cash"].amount) == (2, 12_050)
        assert report.total(report.deposits).amount == 12_050  # not li's ¥7, not the seed's
        assert report.expected_cash == 12_050
        shown = text(pilot, "#slip-text")
        assert "交班单" in shown and "¥120.50" in shown and "¥7.00" not in shown
        printer = Path(counter.printer)
        before = printer.stat().st_size if printer.exists() else 0
        await pilot.press("p")  # on the receipt printer, as a receipt is
        await settle_down(pilot)
        assert printer.stat().st_size > before
        assert "交班单".encode("gb18030") in printer.read_bytes()[before:]
        await pilot.press("enter")
        await settle_down(pilot)

        await log_in(pilot, "li", "5678")  # li's shift began when li unlocked: ¥7, and now ¥5
        await tap(pilot, CARD)
        await deposit(pilot, "5")
        slip = await open_slip(pilot)
        assert slip.report is not None
        assert slip.report.deposits["cash"].amount == 1_200
        await pilot.press("enter")
        await settle_down(pilot)

        await log_in(pilot)  # wang again: a new shift, the first one's money is not in it
        await tap(pilot, CARD)
        await deposit(pilot, "3")
        slip = await open_slip(pilot)
        assert slip.report is not None
        assert (slip.report.deposits["cash"].count, slip.report.deposits["cash"].amount) \
            == (1, 300)


# -- Ctrl+Q ------------------------------------------------------------------------------------
async def test_quit_asks_first(counter: EdgeConfig) -> None:
    app = make_app(counter)
    async with app.run_test(size=TTY) as pilot:
        await log_in(pilot)
        await pilot.press("ctrl+q")
        await settle_down(pilot)
        assert isinstance(app.screen, QuitConfirmScreen)
        await pilot.press("ctrl+q")  # a second Ctrl+Q does not stack another question
        await settle_down(pilot)
        assert len([s for s in app.screen_stack if isinstance(s, QuitConfirmScreen)]) == 1
        await pilot.press("n")
        await settle_down(pilot)
        assert isinstance(app.screen, HomeScreen) and app.return_code is None
        await pilot.press("ctrl+q")
        await settle_down(pilot)
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0


async def test_quit_is_refused_while_a_form_is_working(counter: EdgeConfig,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    release = asyncio.Event()
    real = CounterService.deposit

    async def slow_deposit(self: CounterService, *args: Any, **kw: Any) -> Any:
        await release.wait()
        return await real(self, *args, **kw)
    monkeypatch.setattr(CounterService, "deposit", slow_deposit)
    app = make_app(counter)
    async with app.run_test(size=TTY) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f3")
        await settle_down(pilot)
        form = app.screen
        assert isinstance(form, FormScreen)
        await fill(pilot, "#amount", "10")
        await pilot.press("ctrl+s")
        for _ in range(100):  # the service call is on its way (a check or the real one)
            await pilot.pause()
            if isinstance(app.screen, ConfirmScreen) and not form.busy:
                await pilot.press("y")
            if form.busy:
                break
        assert form.busy
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert not isinstance(app.screen, QuitConfirmScreen)
        assert any(n.message == app.tr("quit.busy") for n in app._notifications)
        release.set()
        for _ in range(50):
            await settle_down(pilot)
            if isinstance(app.screen, ConfirmScreen):
                await pilot.press("y")
            if isinstance(app.screen, HomeScreen):
                break
        assert isinstance(app.screen, HomeScreen)
        await pilot.press("ctrl+q")  # done: now it may ask
        await settle_down(pilot)
        assert isinstance(app.screen, QuitConfirmScreen)


# -- language --------------------------------------------------------------------------------
async def test_language_switch_keeps_the_patient(counter: EdgeConfig) -> None:
    app = make_app(counter)
    async with app.run_test(size=TTY) as pilot:
        await pilot.press("ctrl+l")  # at the login screen: log in in English
        await settle_down(pilot)
        assert text(pilot, "#title") == "Operator login"
        await pilot.press("ctrl+l")
        await settle_down(pilot)
        assert text(pilot, "#title") == "操作员登录"
        await log_in(pilot)
        await tap(pilot, CARD)
        view = home(pilot).view
        assert status(pilot, "operator") == "操作员 王丽"
        assert "余额" in str(home(pilot).panel.query_one("#money", Static).render())

        await pilot.press("ctrl+l")
        await settle_down(pilot)
        assert app.tr.language == "en"
        assert status(pilot, "operator") == "operator 王丽"
        assert status(pilot, "sync") == "○ offline"
        assert home(pilot).view is view and home(pilot).card_no == CARD  # still on screen
        panel = home(pilot).panel
        assert "Balance" in str(panel.query_one("#money", Static).render())
        assert "Patient no." in str(panel.query_one("#who", Static).render())
        bar = home(pilot).query_one(KeyBar).text
        assert "F3 Deposit" in bar and "^L 中文" in bar

        await deposit(pilot, "10")  # forms and receipts after the switch: English
        assert "Done: Deposit" in message(pilot)
        assert "Balance" in home(pilot).last_receipt_text
        await pilot.press("f3")
        await settle_down(pilot)
        assert text(pilot, "#form-title") == "Deposit"
        await pilot.press("ctrl+l")  # not under a form: what is typed there stays as it is
        await settle_down(pilot)
        assert app.tr.language == "en"
        assert "^L" not in app.screen.query_one(KeyBar).text
        await pilot.press("escape")
        await settle_down(pilot)

        await open_slip(pilot)  # a switch lasts this login: log out returns to zh
        assert "Shift slip" in text(pilot, "#slip-text")
        await pilot.press("enter")
        await settle_down(pilot)
        assert app.tr.language == "zh" and text(pilot, "#title") == "操作员登录"


# -- 80×25: every key on screen ------------------------------------------------------------------
@pytest.mark.parametrize("language", ["zh", "en"])
async def test_every_home_key_is_on_screen_at_80x25(tmp_path: Path, language: str) -> None:
    app = make_app(await seeded(tmp_path, language))
    async with app.run_test(size=TTY) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await laid_out(pilot)
        desk = home(pilot)
        bar = desk.query_one(KeyBar)
        shown = {k for item in bar.items for k in item.keys}
        wanted = {key for node in (desk, app) for key, bindings
                  in node._bindings.key_to_bindings.items()
                  if any(b.show and b.description for b in bindings)}
        assert {"f2", "f12", "ctrl+o", "escape", "f1", "ctrl+l", "ctrl+q"} <= wanted
        assert wanted <= shown, wanted - shown
        assert all(item.label and not item.label.startswith("[") for item in bar.items)
        lines = bar.text.split("\n")
        assert len(lines) == bar.size.height  # every line of the bar is on screen …
        assert bar.region.bottom <= TTY[1]
        assert all(cell_len(line) <= bar.content_size.width for line in lines)  # … uncut
        for item in bar.items:  # every key by its name and label, in the text shown
            assert f"{item.shown} {item.label}" in bar.text
        status_bar = desk.query_one(StatusBar)  # the operator stays on the status line
        op = status_bar.query_one("#operator", Static)
        assert op.region.right <= status_bar.query_one("#clock", Static).region.x

        await pilot.press("f1")  # the same keys, written out
        await settle_down(pilot)
        helper = app.screen
        assert isinstance(helper, KeyHelpScreen)
        assert {k for item in helper.items for k in item.keys} >= wanted
        await pilot.press("escape")
        await settle_down(pilot)
        assert isinstance(app.screen, HomeScreen)


async def test_new_patient_form_shows_its_fields_at_80x25(counter: EdgeConfig) -> None:
    app = make_app(counter)
    async with app.run_test(size=TTY) as pilot:
        await log_in(pilot)
        await pilot.press("f2")
        await laid_out(pilot)
        form = app.screen
        assert isinstance(form, FormScreen)
        fields = [w for w in form.query("Input, Choice")]
        box = form.query_one("VerticalScroll")
        visible = [w for w in fields if box.region.contains_region(w.region)]
        assert len(visible) >= 10 and len(fields) >= 10  # it was four
        assert form.query_one("Vertical").region.width <= TTY[0]
        for _ in fields:  # Enter and Tab walk the fields; the focused one is always shown
            await pilot.press("tab")
            await laid_out(pilot)
            focused = form.focused
            assert focused is not None and box.region.contains_region(focused.region)


async def test_a_long_form_scrolls_to_the_focused_field(counter: EdgeConfig) -> None:
    app = make_app(counter)
    async with app.run_test(size=(80, 16)) as pilot:  # fewer rows than the form has fields
        await log_in(pilot)
        await pilot.press("f2")
        await laid_out(pilot)
        form = app.screen
        box = form.query_one("VerticalScroll")
        assert box.max_scroll_y > 0
        hint = form.query_one("#form-foot")
        assert hint.region.bottom <= 16 - form.query_one(KeyBar).size.height
        for _ in range(8):  # name → … → payment method, the last field
            await pilot.press("tab")
            await laid_out(pilot)  # fails unless the focused field is scrolled into view
        assert form.focused is not None and form.focused.id == "method"
        assert box.scroll_y > 0


# -- Ctrl+B: a blank card into the card number field -------------------------------------------
def blank_pile() -> Any:
    numbers = iter(f"86100000{n:02d}" for n in range(1, 100))
    return lambda: next(numbers)


async def test_ctrl_b_fills_the_card_number_in_every_form_that_has_one(
        counter: EdgeConfig) -> None:
    from edge_node.tui.screens.home import FORMS

    app = make_app(counter, blanks=blank_pile())
    filled = {}
    async with app.run_test(size=TTY) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        for name in ("new", *FORMS):  # each form the home screen opens
            if name == "new":
                await pilot.press("f2")
            else:
                home(pilot).action_form(name)
            await settle_down(pilot)
            form = app.screen
            assert isinstance(form, FormScreen), name
            bar = form.query_one(KeyBar)
            listed = any("ctrl+b" in item.keys for item in bar.items)
            assert listed == bool(form.card_field), name
            if form.card_field:
                await pilot.press("ctrl+b")
                await settle_down(pilot)
                filled[name] = form.query_one(f"#{form.card_field}", Input).value
                assert filled[name] in text(pilot, "#form-hint")
            await pilot.press("escape")
            await settle_down(pilot)
    assert filled == {"new": "8610000001", "replace": "8610000002"}


async def test_no_ctrl_b_without_blank_cards(counter: EdgeConfig) -> None:
    app = make_app(counter)  # a real counter: the number printed on the card is typed
    async with app.run_test(size=TTY) as pilot:
        await log_in(pilot)
        await pilot.press("f2")
        await settle_down(pilot)
        assert "^B" not in app.screen.query_one(KeyBar).text
        await pilot.press("ctrl+b")
        await settle_down(pilot)
        assert app.screen.query_one("#card_no", Input).value == ""


async def test_demo_ctrl_b_issues_a_blank_card_to_a_new_patient(tmp_path: Path) -> None:
    _config, app = await asyncio.to_thread(demo.build, tmp_path, "en")
    assert isinstance(app, CounterApp)
    async with app.run_test(size=TTY) as pilot:
        await log_in(pilot, "demo", "1234")
        await pilot.press("f2")
        await settle_down(pilot)
        await pilot.press("ctrl+b")  # a blank card on the simulated reader, its number typed
        for _ in range(20):
            await settle_down(pilot)
            desk = app.counter.desk if app.counter else None
            if desk is not None and desk.on_reader is not None:
                break
        card = app.screen.query_one("#card_no", Input).value
        assert card.startswith("861")
        await fill(pilot, "#name", "赵六")
        await fill(pilot, "#sex", "M")
        await fill(pilot, "#birth_date", "1980-05-01")
        await fill(pilot, "#phone", "13912345678")
        await pilot.press("ctrl+s")
        for _ in range(50):
            await settle_down(pilot)
            if isinstance(app.screen, ConfirmScreen):
                break
        await pilot.press("y")
        for _ in range(50):
            await settle_down(pilot)
            if isinstance(app.screen, HomeScreen) and home(pilot).view is not None:
                break
        view = home(pilot).view
        assert view is not None and view.patient.name == "赵六", message(pilot)
        assert view.card is not None and view.card.card_no == card
        assert app.counter is not None and app.counter.desk is not None
        assert app.counter.desk.on_reader is not None
        assert app.counter.desk.on_reader.card_no == card  # written to the chip


async def test_the_patient_panel_shows_whole_lines_on_a_short_screen(
        counter: EdgeConfig) -> None:
    app = make_app(counter)
    async with app.run_test(size=(80, 20)) as pilot:  # room for some lines of three
        await log_in(pilot)
        await tap(pilot, CARD)
        await laid_out(pilot)
        panel = home(pilot).panel
        recent = panel.query_one("#recent", Static)
        assert recent.region.bottom <= panel.content_region.bottom  # no row cut in half
        assert 0 < panel._shown_recent < 3  # of the three it has
        await pilot.resize_terminal(80, 40)
        await laid_out(pilot)
        await pilot.pause()
        assert panel._shown_recent == 6 and recent.region.height == 4  # title + all three
