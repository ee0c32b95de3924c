"""The counter with a (simulated) chip reader: every tap verified, write-then-verify issue,
wallet stamps after money events, replayed and newer stamps — through the real TUI (Pilot).

The reader is :class:`edge_node.card.reader.SimulatedReader`: the same events and the same
write-then-read-back contract as the PC/SC reader (which tests/test_card_glue_pcsc.py
drives through the real pcscd stack).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge_node.card import layout
from edge_node.card.layout import EF_CARD, EF_STAMP, frame, issue_card, make_stamp
from edge_node.card.reader import CardRemovedError, SimulatedReader
from edge_node.tui.screens.confirm import ConfirmScreen
from edge_node.tui.screens.home import HomeScreen
from protocol.crypto import SigningKey
from tests.conftest import ID_FEMALE, node_key
from tests.tui_harness import (
    NODE,
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

SIZE = (120, 44)
CARD = "8600000001"
UID = b"\x04\x10\x20\x30"
KEY = node_key(NODE)


@pytest.fixture
async def counter(tmp_path: Path) -> Any:
    cfg, led, pid = await seeded_counter(tmp_path, card_no=CARD)
    yield cfg, led, pid
    await led.close()


def chip(card_no: str, pid: str, uid: bytes = UID, key: SigningKey = KEY,
         node: str = NODE) -> bytes:
    data = issue_card(key, node, card_no=card_no, patient_no=pid, issued_ms=1, uid=uid)
    return frame(data.to_bytes())


async def present(pilot: Any, reader: SimulatedReader, files: dict[int, bytes],
                  uid: bytes = UID) -> None:
    """Put a card on the reader and wait until the counter has dealt with it."""
    before = (home(pilot).panel.view, message(pilot))
    reader.present(uid, files)
    for _ in range(30):
        await settle_down(pilot)
        if (home(pilot).panel.view, message(pilot)) != before and \
                message(pilot) != home(pilot).counter.tr("home.loading"):
            return


def flags(pilot: Any) -> str:
    from textual.widgets import Static

    return str(home(pilot).panel.query_one("#flags", Static).render())


async def confirm(pilot: Any) -> None:
    await settle_down(pilot)
    assert isinstance(pilot.app.screen, ConfirmScreen), pilot.app.screen
    await pilot.press("y")
    await settle_down(pilot)


async def charge_cbc(pilot: Any) -> None:
    await pilot.press("f4")
    await settle_down(pilot)
    await type_text(pilot, "lb201")
    await pilot.press("enter", "ctrl+s")
    await confirm(pilot)
    for _ in range(5):  # the stamp is written by a worker after the receipt
        await settle_down(pilot)


def stamp_on(reader: SimulatedReader) -> layout.WalletStamp:
    return layout.WalletStamp.from_bytes(layout.unframe(reader.content(EF_STAMP)))


async def test_forged_and_foreign_cards_are_refused(counter: Any) -> None:
    cfg, led, pid = counter
    reader = SimulatedReader()
    app = make_app(cfg, led, reader=reader)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        # Signed under this counter's name with another key: forged.
        forged = chip(CARD, pid, key=SigningKey(b"\x07" * 32))
        await present(pilot, reader, {EF_CARD: forged})
        assert "Card refused" in message(pilot) and "Forged or altered" in message(pilot)
        assert home(pilot).panel.view is None and home(pilot).card_no == ""
        # Signed by a counter this one does not know.
        await present(pilot, reader, {EF_CARD: chip(CARD, pid, key=node_key("x"), node="x")})
        assert "Unknown issuer" in message(pilot)
        # Genuine signature, but the patient on the card is not this card's patient.
        await present(pilot, reader, {EF_CARD: chip(CARD, "P-cashier-01-000999")})
        assert "does not match its record" in message(pilot)
        # A genuine card copied onto another chip (UID differs).
        await present(pilot, reader, {EF_CARD: chip(CARD, pid)}, uid=b"\x04\x99\x99\x99")
        assert "Copied card" in message(pilot)
        assert home(pilot).panel.view is None
        # And the genuine card opens the panel.
        await present(pilot, reader, {EF_CARD: chip(CARD, pid)})
        view = home(pilot).panel.view
        assert view is not None and view.patient.patient_id == pid
        assert home(pilot).card_entry == "chip"


async def test_signer_enrolled_after_start_is_learned_from_the_ledger(counter: Any) -> None:
    cfg, led, pid = counter
    reader = SimulatedReader()
    app = make_app(cfg, led, reader=reader)
    other = node_key("cashier-02")
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        files = {EF_CARD: chip(CARD, pid, key=other, node="cashier-02")}
        await present(pilot, reader, files)
        assert "Unknown issuer" in message(pilot)
        await led.set_node_keys({"cashier-02": (other.public_key, "cashier")})  # sync did it
        reader.remove()
        await present(pilot, reader, files)
        # the key is learned (the signature verifies now) — and the card is still refused:
        # the ledger says cashier-01 issued it, so data cashier-02 signed is not this card
        assert "Card not issued as recorded" in message(pilot), message(pilot)
        assert home(pilot).panel.view is None


async def test_a_running_desk_learns_a_rotation_and_keeps_the_cards_issued_before(
        counter: Any, tmp_path: Path) -> None:
    """Issue 11: cashier-02 issues a card, rotates its key, issues another.  A counter
    whose app is open learns the rotation through sync (its cached keys are re-read when
    a card does not verify): both cards open the patient; the first one's data signed
    with the new key (never cashier-02's key at that card's issue) is refused."""
    from edge_node.ledger import Ledger
    from edge_node.service import CounterService
    from protocol.keyring import KeySpan

    cfg, led, _ = counter
    old, new = node_key("cashier-02"), SigningKey(b"\x42" * 32)
    path = tmp_path / "c2.sqlite3"

    async def issue_at_c2(key: SigningKey, card_no: str, uid: bytes) -> tuple[str, bytes]:
        c2 = await Ledger.open(path, "cashier-02", key)
        try:
            svc = CounterService(c2, "op.qian")
            pid = await svc.next_patient_id()
            data = issue_card(key, "cashier-02", card_no=card_no, patient_no=pid,
                              issued_ms=1, uid=uid)
            await svc.register_patient(name="赵六", sex="F", birth_date="1960-01-01",
                                       phone="13700137000", card_no=card_no,
                                       first_deposit=5_000, expect_patient_id=pid,
                                       chip_uid=uid.hex())
            return pid, frame(data.to_bytes())
        finally:
            await c2.close()

    async def sync_from_c2() -> None:  # what the sync daemon does: directory, then events
        c2 = await Ledger.open(path, "cashier-02", new if rotated else old)
        try:
            spans = (await c2.keyring())["cashier-02"]
            current = spans[-1].key
            await led.set_node_keys({"cashier-02": (current, "cashier")},
                                    {"cashier-02": spans})
            await led.ingest(await c2.own_events_after(0))
        finally:
            await c2.close()

    rotated = False
    uid1, uid2 = b"\x04\x21\x21\x21", b"\x04\x22\x22\x22"
    pid1, card1 = await issue_at_c2(old, "8600000021", uid1)
    await sync_from_c2()
    reader = SimulatedReader()
    app = make_app(cfg, led, reader=reader)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await present(pilot, reader, {EF_CARD: card1}, uid=uid1)
        view = home(pilot).panel.view
        assert view is not None and view.patient.patient_id == pid1, message(pilot)
        # cashier-02 rotates and issues again; sync brings both to this open counter
        c2 = await Ledger.open(path, "cashier-02", old)
        await c2.rotate_own_key(new.public_key, (await c2.head()).seq + 1)
        await c2.close()
        rotated = True
        pid2, card2 = await issue_at_c2(new, "8600000022", uid2)
        await sync_from_c2()
        assert (await led.keyring())["cashier-02"][-1] == KeySpan(new.public_key, 4)
        for files, uid, pid in ((card2, uid2, pid2), (card1, uid1, pid1)):
            reader.remove()
            await present(pilot, reader, {EF_CARD: files}, uid=uid)
            view = home(pilot).panel.view
            assert view is not None and view.patient.patient_id == pid, message(pilot)
        reader.remove()
        reminted = issue_card(new, "cashier-02", card_no="8600000021", patient_no=pid1,
                              issued_ms=1, uid=uid1)
        await present(pilot, reader, {EF_CARD: frame(reminted.to_bytes())}, uid=uid1)
        assert "Forged or altered" in message(pilot) and home(pilot).panel.view is None


async def test_a_card_any_other_counter_signs_for_a_patient_is_refused(counter: Any) -> None:
    """Issue 11: a pharmacy counter's (valid, enrolled) key minting a card for the
    cashier's patient on a new chip; and the genuine data copied to another chip when
    the ledger recorded the chip it was issued on."""
    cfg, led, pid = counter
    pharmacy = node_key("pharmacy-01")
    await led.set_node_keys({"pharmacy-01": (pharmacy.public_key, "pharmacy")})
    reader = SimulatedReader()
    app = make_app(cfg, led, reader=reader)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await present(pilot, reader, {EF_CARD: chip(CARD, pid, key=pharmacy,
                                                    node="pharmacy-01")})
        assert "Card not issued as recorded" in message(pilot)
        assert "pharmacy-01" in message(pilot) and home(pilot).panel.view is None


async def test_issue_writes_and_verifies_the_card_before_the_ledger(counter: Any) -> None:
    cfg, led, _ = counter
    reader = SimulatedReader()
    app = make_app(cfg, led, reader=reader)
    blank_uid = b"\x04\xb1\xa4\x4b"
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await present(pilot, reader, {}, uid=blank_uid)  # a blank card on the reader
        before = (await led.head()).seq
        await pilot.press("f2")
        await settle_down(pilot)
        await type_text(pilot, "李梅")
        await fill(pilot, "#national_id", ID_FEMALE)
        await fill(pilot, "#phone", "13912345678")
        await fill(pilot, "#card_no", "8600000002")
        await fill(pilot, "#first_deposit", "200")
        # First try: the card is pulled mid-write. Nothing may reach the ledger.
        reader.fail_next_write = CardRemovedError("The card left the reader.")
        await pilot.press("ctrl+s")
        await confirm(pilot)
        assert not isinstance(app.screen, HomeScreen)
        assert "present the card and issue again" in form_error(pilot)
        assert (await led.head()).seq == before
        assert await led.get("cards", "8600000002") is None
        # Second try: written, read back, then registered; the first deposit is stamped.
        await pilot.press("ctrl+s")
        await confirm(pilot)
        for _ in range(5):
            await settle_down(pilot)
        assert isinstance(app.screen, HomeScreen), form_error(pilot)
    card = layout.parse_card_file(reader.content(EF_CARD))
    record = await led.get("cards", "8600000002")
    assert (card.card_no, card.patient_no, card.uid) == ("8600000002", record.patient_id,
                                                        blank_uid)
    stamp = stamp_on(reader)
    assert (stamp.seq, stamp.balance, stamp.patient_no) == (1, 20_000, record.patient_id)
    acct = await led.get("accounts", record.patient_id)
    assert (acct.stamp_seq, acct.stamp_balance) == (1, 20_000)
    assert record.chip_uid == blank_uid.hex() and record.issued_node == cfg.node_id
    # Issue 11: the issuer's own key re-minting the card on another chip (a stolen key,
    # or a copy) is refused, because the ledger recorded the chip it was issued on.
    reminted = layout.issue_card(led.key, cfg.node_id, card_no="8600000002",
                                 patient_no=record.patient_id, issued_ms=2,
                                 uid=b"\x04\x77\x77\x77")
    app = make_app(cfg, led, reader=reader)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await present(pilot, reader, {EF_CARD: layout.frame(reminted.to_bytes())},
                      uid=b"\x04\x77\x77\x77")
        assert "Copied card" in message(pilot) and home(pilot).panel.view is None


async def test_issue_refuses_a_card_that_is_already_issued(counter: Any) -> None:
    cfg, led, pid = counter
    reader = SimulatedReader()
    app = make_app(cfg, led, reader=reader)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await present(pilot, reader, {EF_CARD: chip(CARD, pid)})
        await pilot.press("f7")  # replace card: but the old card is still on the reader
        await settle_down(pilot)
        await fill(pilot, "#new_card_no", "8600000009")
        await pilot.press("ctrl+s")
        await confirm(pilot)
        assert "already issued as card 8600000001" in form_error(pilot)
        await pilot.press("escape")
        await settle_down(pilot)
        # With a blank card on the reader, the new card is written, then replaced.
        reader.present(b"\x04\x55\x66\x77", {})
        await settle_down(pilot)
        home(pilot).card_no = CARD  # the panel still shows the patient of the old card
        await pilot.press("f7")
        await settle_down(pilot)
        await fill(pilot, "#new_card_no", "8600000009")
        await pilot.press("ctrl+s")
        await confirm(pilot)
        assert isinstance(app.screen, HomeScreen), form_error(pilot)
    new = layout.parse_card_file(reader.content(EF_CARD))
    assert (new.card_no, new.patient_no) == ("8600000009", pid)
    assert (await led.get("cards", CARD)).status == "replaced"


async def test_stamp_after_a_charge_and_a_replayed_old_stamp_is_flagged(counter: Any) -> None:
    cfg, led, pid = counter
    reader = SimulatedReader()
    app = make_app(cfg, led, reader=reader)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await present(pilot, reader, {EF_CARD: chip(CARD, pid)})
        await charge_cbc(pilot)
        first = stamp_on(reader)
        acct = await led.get("accounts", pid)
        assert (first.seq, first.balance) == (acct.money_seq, acct.balance)  # #2 after it
        assert first.event_hash == (await led.history(pid))[0].hash()
        copied = {EF_CARD: reader.content(EF_CARD), EF_STAMP: reader.content(EF_STAMP)}
        await pilot.press("f3")  # a deposit: stamped too
        await settle_down(pilot)
        await type_text(pilot, "10")
        await pilot.press("enter", "enter")
        await confirm(pilot)
        for _ in range(5):
            await settle_down(pilot)
        assert stamp_on(reader).seq == first.seq + 1
        assert "Possible cloned card" not in flags(pilot)
        reader.remove()
        # A copy of the card made before the deposit comes back with the older stamp.
        await present(pilot, reader, copied)
        assert home(pilot).panel.view is not None
        assert "Possible cloned card" in flags(pilot)


async def test_newer_stamp_from_an_offline_counter_limits_the_charge(counter: Any) -> None:
    cfg, led, pid = counter
    reader = SimulatedReader()
    app = make_app(cfg, led, reader=reader)
    other = node_key("cashier-02")
    await led.set_node_keys({"cashier-02": (other.public_key, "cashier")})
    # Counter 02, offline, charged ¥95.00 and stamped the card: #2, ¥5.00 left.
    newer = make_stamp(other, "cashier-02", card_no=CARD, patient_no=pid, account=pid,
                       balance=500, seq=2, event_hash=bytes(32), at_ms=1)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await present(pilot, reader, {EF_CARD: chip(CARD, pid),
                                      EF_STAMP: frame(newer.to_bytes())})
        assert "¥5.00" in flags(pilot)
        before = (await led.head()).seq
        await pilot.press("f4")
        await settle_down(pilot)
        await type_text(pilot, "lb201")
        await pilot.press("enter", "ctrl+s")
        await settle_down(pilot)  # refused by the dry run, before any question
        assert not isinstance(app.screen, ConfirmScreen)
        assert "not synced" in form_error(pilot) and "short" in form_error(pilot)
        assert (await led.head()).seq == before  # refused: nothing written


async def test_stamp_write_failure_warns_and_is_rewritten_at_the_next_tap(
        counter: Any) -> None:
    cfg, led, pid = counter
    reader = SimulatedReader()
    app = make_app(cfg, led, reader=reader)
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await present(pilot, reader, {EF_CARD: chip(CARD, pid)})
        reader.fail_next_write = CardRemovedError("The card left the reader.")
        await charge_cbc(pilot)
        assert "wallet stamp was not written" in message(pilot)
        acct = await led.get("accounts", pid)
        assert acct.balance < 10_000 and acct.stamp_seq == 2  # the charge stands
        assert not any(reader.content(EF_STAMP))  # nothing on the card yet
        reader.remove()
        await present(pilot, reader, {EF_CARD: chip(CARD, pid)})
        assert stamp_on(reader).seq == 2  # written now
        assert "Possible cloned card" not in flags(pilot)


async def test_typed_number_at_a_reader_counter_is_flagged_manual(counter: Any) -> None:
    cfg, led, pid = counter
    app = make_app(cfg, led, reader=SimulatedReader())
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot)
        await tap(pilot, CARD)
        assert home(pilot).card_entry == "manual"
        assert "typed by hand" in flags(pilot)
        await pilot.press("f3")
        await settle_down(pilot)
        await type_text(pilot, "10")
        await pilot.press("enter", "enter")
        await confirm(pilot)
    ev = (await led.history(pid))[0]
    assert ev.kind == "account.deposited" and ev.body["card_entry"] == "manual"
    assert "stamp_seq" not in ev.body  # no chip read: no stamp promised


async def test_demo_cards_carry_the_real_patient_and_keep_their_stamp(tmp_path: Path) -> None:
    import asyncio

    from edge_node import demo

    _config, app = await asyncio.to_thread(demo.build, tmp_path, "en")
    async with app.run_test(size=SIZE) as pilot:
        await log_in(pilot, "demo", "1234")
        await pilot.press("ctrl+t")
        for _ in range(20):
            await settle_down(pilot)
            if home(pilot).panel.view is not None:
                break
        assert home(pilot).panel.view is not None, message(pilot)
        await charge_cbc(pilot)
        await pilot.press("ctrl+t", "ctrl+t", "ctrl+t")  # round the three demo cards
        for _ in range(20):
            await settle_down(pilot)
        cards = app.cards  # type: ignore[attr-defined]
        stamp_file = cards.images[cards.uid_of("8600000001")][EF_STAMP]
        assert layout.WalletStamp.from_bytes(layout.unframe(stamp_file)).seq == 3
        assert "Possible cloned card" not in flags(pilot)
