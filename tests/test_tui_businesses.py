"""Every registration/cashier business through the keyboard, with the ledger checked after each."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_node.config import EdgeConfig
from edge_node.ledger import Ledger
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.form import FormScreen
from edge_node.tui.screens.home import HomeScreen
from protocol.nationalid import check_digit
from protocol.privacy import details_of
from tests.conftest import ID_FEMALE, TEST_PATIENT_KEYS, business_signed
from tests.tui_harness import (
    fill,
    form_error,
    home,
    log_in,
    make_app,
    message,
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


async def balance(led: Ledger, card: str = CARD) -> int:
    c = await led.get("cards", card)
    return int((await led.get("accounts", c.patient_id)).balance)


async def kinds(led: Ledger) -> list[str]:
    return [(await led.history(pid))[0].kind for pid in [(await led.get("cards", CARD)).patient_id]]


async def own_events(led: Ledger) -> int:
    """The counter's own business events (not its audit trail: logins, records opened)."""
    return await business_signed(led)


async def refused(pilot) -> None:
    """The dry run refused what was submitted: still the form, no confirm question."""
    await settle_down(pilot)
    assert isinstance(pilot.app.screen, FormScreen), pilot.app.screen


async def confirm(pilot) -> None:
    await settle_down(pilot)
    assert isinstance(pilot.app.screen, ConfirmScreen), pilot.app.screen
    await pilot.press("y")
    await settle_down(pilot)


async def test_login_required_and_operator_recorded(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await settle_down(pilot)
        await fill(pilot, "#staff_id", "wang")
        await pilot.press("enter")
        await type_text(pilot, "9999")
        await pilot.press("enter")
        await settle_down(pilot)
        assert not isinstance(app.screen, HomeScreen)  # wrong PIN: still locked out
        await pilot.press("f3")  # business keys do nothing before login
        assert not isinstance(app.screen, HomeScreen)
        await log_in(pilot)
        assert isinstance(app.screen, HomeScreen)
        await tap(pilot, CARD)
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "20")
        await pilot.press("enter", "enter")
        await confirm(pilot)
    events = await led.history((await led.get("cards", CARD)).patient_id)
    assert events[0].kind == "account.deposited" and events[0].operator == "wang"


async def test_new_patient_with_national_id(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("f2")
        await settle_down(pilot)
        await type_text(pilot, "李梅")
        await pilot.press("enter")
        await type_text(pilot, ID_FEMALE.lower())
        await settle_down(pilot)
        # sex and birth date are derived from the number, not typed
        assert app.screen.query_one("#sex").value == "F"
        assert app.screen.query_one("#birth_date").value == "1949-12-31"
        await fill(pilot, "#phone", "13912345678")
        await fill(pilot, "#card_no", "8600000002")
        await fill(pilot, "#first_deposit", "200")
        await pilot.press("ctrl+s")
        await confirm(pilot)
        assert isinstance(app.screen, HomeScreen)
        assert "P-cashier-01-" in message(pilot) or "¥200.00" in message(pilot)
        assert home(pilot).panel.view is not None
        assert home(pilot).panel.view.patient.name == "李梅"
    card = await led.get("cards", "8600000002")
    patient = await led.get("patients", card.patient_id)
    assert (details_of(patient, TEST_PATIENT_KEYS).national_id, patient.sex,
            patient.birth_date) == (ID_FEMALE, "F", "1949-12-31")
    assert await balance(led, "8600000002") == 20_000
    assert Path(cfg.printer).read_bytes().startswith(b"\x1b@")  # receipt printed


async def test_new_patient_refused_inputs_write_nothing(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    before = await own_events(led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("f2")
        await settle_down(pilot)
        await type_text(pilot, "王五")
        await fill(pilot, "#national_id", "110101199003070012")  # check digit wrong
        await fill(pilot, "#card_no", "8600000003")
        await pilot.press("ctrl+s")
        await settle_down(pilot)
        text = form_error(pilot)
        assert "check digit" in text  # plain language, field by field
        assert "contact" in text  # no phone and no other contact
        assert app.screen.focused is not None and app.screen.focused.id == "national_id"
        # fix the number; first deposit below the registration fee: refused
        other = "11010519800101001" + check_digit("11010519800101001")
        await fill(pilot, "#national_id", other)
        await fill(pilot, "#phone", "13800000000")
        await fill(pilot, "#first_deposit", "1")
        await pilot.press("ctrl+s")
        await refused(pilot)  # in the form: no question asked
        assert "registration fee" in form_error(pilot)
        # the ID number is already registered (the seeded patient): refused by the service
        await fill(pilot, "#national_id", "110101199003070011")
        await fill(pilot, "#first_deposit", "10")
        await pilot.press("ctrl+s")
        await refused(pilot)  # in the form: no question asked
        assert "already registered" in form_error(pilot)
        assert "Traceback" not in form_error(pilot)
    assert await own_events(led) == before
    assert await led.get("cards", "8600000003") is None


async def test_deposit_methods_and_bad_amount(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "12.345")
        await pilot.press("enter", "enter")
        await settle_down(pilot)
        assert "12.50" in form_error(pilot)  # tells how to type an amount
        await fill(pilot, "#amount", "12.5")
        await pilot.press("enter", "3", "enter")  # 3: mobile, which needs its reference
        await settle_down(pilot)
        assert app.screen.focused.id == "reference"
        await pilot.press("enter")
        await settle_down(pilot)
        assert "reference" in form_error(pilot)  # refused before any confirm question
        await type_text(pilot, "WX42")
        await pilot.press("enter")
        await confirm(pilot)
        assert "¥112.50" in message(pilot)
    events = await led.history((await led.get("cards", CARD)).patient_id)
    assert events[0].body["amount"] == 1250 and events[0].body["method"] == "mobile"
    assert events[0].body["reference"] == "WX42"
    assert events[0].body["card_entry"] == "manual"
    assert await balance(led) == 11_250


async def test_charge_from_price_list_and_insufficient_funds(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f4")
        await settle_down(pilot)
        await type_text(pilot, "lb201")  # by code
        await pilot.press("enter")
        await fill(pilot, "#qty", "2")
        await fill(pilot, "#search", "ECG")  # by name
        await pilot.press("enter")
        await settle_down(pilot)
        assert "¥70.00" in str(app.screen.query_one("#total").render())  # CBC + ECG×2
        await pilot.press("ctrl+s")
        await confirm(pilot)
        assert await balance(led) == 10_000 - 7_000
        # now more than the balance: a head CT (¥320.00) is refused, nothing written
        before = await own_events(led)
        await pilot.press("f4")
        await settle_down(pilot)
        await type_text(pilot, "EX104")
        await pilot.press("enter", "ctrl+s")
        await refused(pilot)  # in the form: no question asked
        assert "short" in form_error(pilot)
        assert await own_events(led) == before
    pid = (await led.get("cards", CARD)).patient_id
    charge = (await led.charges_of(pid))[0]
    assert charge.amount == 7_000


async def test_refund_to_deposit_and_too_much(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f4")
        await settle_down(pilot)
        await type_text(pilot, "CON02")
        await pilot.press("enter", "ctrl+s")
        await confirm(pilot)
        assert await balance(led) == 5_000
        await pilot.press("f5")
        await settle_down(pilot)
        assert app.screen.query_one("#amount").value == "50.00"  # what is left to refund
        await fill(pilot, "#amount", "60")
        await fill(pilot, "#approved_by", "Dr Zhou")
        await fill(pilot, "#reason", "not seen")
        await pilot.press("ctrl+s")
        await refused(pilot)  # in the form: no question asked
        assert "left to refund" in form_error(pilot)
        await fill(pilot, "#amount", "30")
        await pilot.press("ctrl+s")
        await confirm(pilot)
        assert isinstance(app.screen, HomeScreen)
    pid = (await led.get("cards", CARD)).patient_id
    assert (await led.charges_of(pid))[0].refunded == 3_000
    assert await balance(led) == 8_000


async def test_report_lost_then_refused_then_replace(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f6")
        await settle_down(pilot)
        await pilot.press("1", "ctrl+s")  # checked with the ID card
        await confirm(pilot)
        assert (await led.get("cards", CARD)).status == "lost"
        assert "LOST" in str(home(pilot).panel.query_one("#flags").render())
        # a deposit on a lost card is refused, in words
        before = await own_events(led)
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "10")
        await pilot.press("enter", "enter")
        await refused(pilot)  # in the form: no question asked
        assert "reported lost" in form_error(pilot)
        assert await own_events(led) == before
        await pilot.press("escape")
        await settle_down(pilot)
        await pilot.press("f7")
        await settle_down(pilot)
        await type_text(pilot, "8600000099")
        await pilot.press("enter")
        await confirm(pilot)
        assert home(pilot).card_no == "8600000099"  # the panel follows the new card
        assert home(pilot).panel.view.account.balance == 10_000
    new = await led.get("cards", "8600000099")
    old = await led.get("cards", CARD)
    assert (old.status, old.replaced_by, new.patient_id) == ("replaced", "8600000099",
                                                             old.patient_id)


async def test_settlement_and_green_channel(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await pilot.press("f9")
        await settle_down(pilot)
        await type_text(pilot, "500")
        await fill(pilot, "#reason", "trauma, unconscious")
        await fill(pilot, "#approver", "li")
        await fill(pilot, "#approver_pin", "5678")
        await pilot.press("ctrl+s")
        await confirm(pilot)
        pid = (await led.get("cards", CARD)).patient_id
        assert (await led.get("accounts", pid)).credit_limit == 50_000
        # charge beyond the balance, within the credit
        await pilot.press("f4")
        await settle_down(pilot)
        await type_text(pilot, "EX104")
        await pilot.press("enter", "ctrl+s")
        await confirm(pilot)
        assert await balance(led) == 10_000 - 32_000
        assert "Owes ¥220.00" in str(home(pilot).panel.query_one("#flags").render())
        # settling while owing is refused
        await pilot.press("f8")
        await settle_down(pilot)
        await pilot.press("enter")
        await refused(pilot)  # in the form: no question asked
        assert "owes" in form_error(pilot)
        await pilot.press("escape")
        await settle_down(pilot)
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "300")
        await pilot.press("enter", "enter")
        await confirm(pilot)
        assert await balance(led) == 8_000
        await pilot.press("f8")
        await settle_down(pilot)
        await pilot.press("2", "enter")  # returned by bank card
        await confirm(pilot)
        assert "INV-cashier-01-" in message(pilot)
    acct = await led.get("accounts", (await led.get("cards", CARD)).patient_id)
    assert (acct.balance, acct.settled, acct.closed) == (0, 8_000, 1)


async def test_history_lists_every_event(counter) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await pilot.press("f10")
        assert isinstance(app.screen, HomeScreen)  # no patient yet: nothing opens
        assert "card" in message(pilot).lower()
        await tap(pilot, CARD)
        await pilot.press("f10")
        await settle_down(pilot)
        table = app.screen.query_one("#history")
        assert table.row_count == 3  # registered, card issued, first deposit
        await pilot.press("escape")
        await settle_down(pilot)
        assert isinstance(app.screen, HomeScreen)


async def test_unknown_card_and_disk_error_are_plain_words(counter, monkeypatch) -> None:
    cfg, led = counter
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, "1234567")
        assert "Card refused" in message(pilot) and "not in this counter's records" in \
            message(pilot)
        await tap(pilot, CARD)
        from edge_node.errors import StorageError

        async def full(*a: object, **k: object) -> object:
            raise StorageError("the disk is full: nothing was written. Free space, then retry.")
        # the service layer is the TUI's boundary: it raises StorageError on a full disk
        monkeypatch.setattr(app.counter.service, "deposit", full)
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "10")
        await pilot.press("enter", "enter")
        await confirm(pilot)
        assert not isinstance(app.screen, HomeScreen), message(pilot)
        assert "disk is full" in form_error(pilot)
        assert "Traceback" not in form_error(pilot)


async def test_idle_lock_and_unlock(counter) -> None:
    from tests.tui_harness import IdleClock

    cfg, led = counter
    idle = IdleClock()
    app = make_app(cfg, led, idle_clock=idle)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        idle.t += cfg.idle_lock_s - 1
        app.lock_if_idle()
        assert not app.locked
        idle.t += 2
        app.lock_if_idle()
        await settle_down(pilot)
        assert app.locked and not isinstance(app.screen, HomeScreen)
        await pilot.press("f3")
        assert not isinstance(app.screen, HomeScreen)
        await type_text(pilot, "1234")  # same operator: PIN only
        await pilot.press("enter")
        await settle_down(pilot)
        assert not app.locked and isinstance(app.screen, HomeScreen)


async def test_panel_and_history_show_events_they_cannot_read(counter) -> None:
    """Events of this patient that another counter signed with a bad body, or of a kind
    of a newer version, are listed as such; nothing on screen fails over them."""
    from protocol.crypto import ZERO_HASH
    from protocol.event import sign_event
    from protocol.hlc import Hlc
    from tests.conftest import node_key
    from tests.tui_harness import NOW_MS

    cfg, led = counter
    pid = (await led.get("cards", CARD)).patient_id
    key = node_key("cashier-09")
    await led.set_node_keys({"cashier-09": (key.public_key, "cashier")})
    prev, datas = ZERO_HASH, []
    for seq, (kind, body) in enumerate([
            ("account.charged", {"patient_id": pid, "amount": "lots", "items": [1]}),
            ("ward.admitted", {"patient_id": pid, "department": "内科"})], 1):
        _, data, prev = sign_event(key, node="cashier-09", seq=seq, prev=prev,
                                   hlc=Hlc(NOW_MS - 60_000 + seq, 0), operator="op",
                                   kind=kind, body=body)
        datas.append(data)
    assert await led.ingest(datas) == 2
    app = make_app(cfg, led)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        await settle_down(pilot)
        assert "¥100.00" in str(app.screen.query_one("#money").render())  # balance unmoved
        await pilot.press("f10")
        await settle_down(pilot)
        table = app.screen.query_one("#history")
        assert table.row_count == 5
        rows = [" ".join(str(c) for c in table.get_row_at(i)) for i in range(5)]
        assert any("unreadable event (flagged)" in r for r in rows), rows
        assert any("ward.admitted" in r and "newer version" in r for r in rows), rows
