"""Card layout, signatures, wallet-stamp decisions, keyboard wedge: the pure parts."""

from __future__ import annotations

import hashlib
import os
import tty
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_node.card import layout
from edge_node.card.layout import (
    CardData,
    CardRecord,
    IssueRecord,
    KnownBalance,
    StaticKeys,
    decide_balance,
    identify,
    issue_card,
    make_stamp,
)
from edge_node.card.reader import (
    CardPresented,
    CardRemoved,
    NoCard,
    ReaderStatus,
    SimulatedReader,
)
from edge_node.card.wedge import WedgeParseError, WedgeReader, encode_qr, parse_line
from protocol.crypto import SigningKey
from protocol.keyring import KeySpan
from tests.support.vcard import CardApplet, CardImage


def key(node: str) -> SigningKey:
    return SigningKey(hashlib.sha256(node.encode()).digest())


A, B, MALLORY = key("cashier-01"), key("cashier-02"), key("mallory")
KEYS = StaticKeys({"cashier-01": A.public_key, "cashier-02": B.public_key})
UID = bytes.fromhex("04a1b2c3d4e5f6")
EVENT = hashlib.blake2b(b"event", digest_size=32).digest()


def card(**kw: object) -> CardData:
    args: dict[str, object] = dict(
        card_no="8600000001", patient_no="P-cashier-01-1", issued_ms=1_790_000_000_000, uid=UID
    )
    args.update(kw)
    return issue_card(A, "cashier-01", **args)  # type: ignore[arg-type]


def chip(data: CardData) -> bytes:
    return layout.frame(data.to_bytes())


def stamp(balance: int, seq: int, *, signer: SigningKey = A, node: str = "cashier-01") -> bytes:
    s = make_stamp(
        signer, node, card_no="8600000001", patient_no="P-cashier-01-1",
        account="P-cashier-01-1", balance=balance, seq=seq, event_hash=EVENT, at_ms=1,
    )  # fmt: skip
    return layout.frame(s.to_bytes())


def ident(card_file: bytes, uid: bytes = UID, medium: str = "chip", typed: str = ""):  # type: ignore[no-untyped-def]
    return identify(medium=medium, uid=uid, card_file=card_file, typed=typed, keys=KEYS)


# ------------------------------------------------------------------------- card data


def test_issued_card_is_accepted_offline() -> None:
    got = ident(chip(card()))
    assert got.refusal is None and got.signed
    assert (got.card_no, got.patient_no) == ("8600000001", "P-cashier-01-1")


def test_altered_card_number_is_refused_as_forged() -> None:
    good = card()
    altered = CardData("8600000002", good.patient_no, good.issued_ms, good.issuer, UID, good.sig)
    assert ident(chip(altered)).refusal.code == "bad_signature"  # type: ignore[union-attr]


def test_card_signed_by_unknown_counter_is_refused() -> None:
    forged = issue_card(
        MALLORY, "cashier-99", card_no="8600000001", patient_no="P-x", issued_ms=1, uid=UID
    )
    refusal = ident(chip(forged)).refusal
    assert refusal is not None and refusal.code == "unknown_signer"
    assert "cashier-99" in refusal.message


def test_known_counter_name_with_wrong_key_is_refused() -> None:
    forged = issue_card(
        MALLORY, "cashier-01", card_no="8600000001", patient_no="P-x", issued_ms=1, uid=UID
    )
    assert ident(chip(forged)).refusal.code == "bad_signature"  # type: ignore[union-attr]


def test_data_copied_to_another_chip_is_refused() -> None:
    assert ident(chip(card()), uid=b"\x04\x99\x99\x99").refusal.code == "copied_card"  # type: ignore[union-attr]


def test_blank_and_damaged_cards_are_refused_with_what_to_do() -> None:
    blank = ident(bytes(64)).refusal
    assert blank is not None and blank.code == "blank_card" and "Issue it again" in blank.message
    damaged = ident(b"OC\x01\x00\x05hello").refusal
    assert damaged is not None and damaged.code == "damaged_card"


@given(st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_any_single_byte_change_is_refused(pos: int, flip: int) -> None:
    raw = bytearray(chip(card()))
    i = layout.HEADER_SIZE + pos % (len(raw) - layout.HEADER_SIZE)
    raw[i] ^= flip
    assert ident(bytes(raw)).refusal is not None


def test_write_plan_zeroes_header_first_and_writes_it_last() -> None:
    payload = card().to_bytes()
    plan = layout.write_plan(512, payload)
    assert plan[0] == (0, bytes(layout.HEADER_SIZE))
    assert plan[-1] == (0, layout.frame(payload)[: layout.HEADER_SIZE])
    image = bytearray(512)
    for offset, data in plan[:-1]:  # everything but the final header: reads as blank
        image[offset : offset + len(data)] = data
    assert ident(bytes(image)).refusal.code == "blank_card"  # type: ignore[union-attr]
    image[0 : layout.HEADER_SIZE] = plan[-1][1]
    assert ident(bytes(image[: layout.needed_length(bytes(image))])).refusal is None


def test_ledger_record_checks() -> None:
    rec = CardRecord("8600000001", "P-cashier-01-1", "active")
    assert layout.check_record("8600000001", "P-cashier-01-1", rec) is None
    assert layout.check_record("8600000001", "P-other", rec).code == "card_mismatch"  # type: ignore[union-attr]
    lost = CardRecord("8600000001", "P-cashier-01-1", "lost")
    assert layout.check_record("8600000001", None, lost).code == "card_lost"  # type: ignore[union-attr]
    replaced = CardRecord("8600000001", "P-cashier-01-1", "replaced")
    assert layout.check_record("8600000001", None, replaced).code == "card_replaced"  # type: ignore[union-attr]
    assert layout.check_record("8600000001", None, None).code == "unknown_card"  # type: ignore[union-attr]


# ----------------------------------------------------------------------- wallet stamp

KNOWN = KnownBalance("P-cashier-01-1", balance=10_000, money_seq=3)


def decide(stamp_file: bytes, known: KnownBalance = KNOWN) -> layout.BalanceView:
    return decide_balance(
        known, stamp_file, KEYS, card_no="8600000001", patient_no="P-cashier-01-1"
    )


def test_newer_valid_stamp_lowers_the_balance() -> None:
    view = decide(stamp(7_000, 4))
    assert (view.balance, view.money_seq, view.source, view.next_seq) == (7_000, 4, "stamp", 5)
    assert not view.flags and not view.ignored


def test_newer_stamp_never_raises_the_balance() -> None:
    view = decide(stamp(50_000, 4))
    assert view.balance == 10_000 and view.money_seq == 4


def test_forged_stamp_is_ignored_and_reported() -> None:
    forged = decide(stamp(1, 9, signer=MALLORY))
    assert forged.balance == 10_000 and forged.ignored[0].code == "bad_signature"
    unknown = decide(stamp(1, 9, signer=MALLORY, node="cashier-77"))
    assert unknown.balance == 10_000 and unknown.ignored[0].code == "unknown_signer"
    raw = bytearray(stamp(7_000, 4))
    raw[-3] ^= 0x01
    assert decide(bytes(raw)).ignored and decide(bytes(raw)).balance == 10_000


def test_old_stamp_is_flagged_as_possible_clone() -> None:
    view = decide(stamp(7_000, 2))
    assert view.possible_clone and view.balance == 10_000 and view.source == "ledger"


def test_same_seq_different_balance_is_flagged_and_lower_used() -> None:
    view = decide(stamp(9_000, 3))
    assert view.balance == 9_000 and view.flags[0].code == "stamp_diverged"
    same = decide(stamp(10_000, 3))
    assert same.balance == 10_000 and not same.flags


def test_stamp_of_another_card_is_ignored() -> None:
    other = decide_balance(
        KNOWN, stamp(1_000, 9), KEYS, card_no="8600000009", patient_no="P-cashier-01-1"
    )
    assert other.balance == 10_000 and other.ignored[0].code == "stamp_not_this_card"


def test_no_stamp_uses_the_ledger() -> None:
    assert decide(b"").balance == 10_000 and decide(bytes(10)).source == "ledger"


# ------------------------------------------------------------ rotated issuer keys (issue 11)

# cashier-01 rotated after its seq 5: A signed 1..5, A2 signs from 6 on
A2 = key("cashier-01 second key")
ROTATED = StaticKeys({"cashier-01": A2.public_key, "cashier-02": B.public_key},
                     {"cashier-01": (KeySpan(A.public_key, 1, 6), KeySpan(A2.public_key, 6))})


def rotated(data_key: SigningKey, issued_seq: int | None, *, node: str = "cashier-01",
            card_no: str = "8600000001") -> layout.Identity:
    data = issue_card(data_key, "cashier-01", card_no="8600000001",
                      patient_no="P-cashier-01-1", issued_ms=1, uid=UID)
    rec = None if issued_seq is None else IssueRecord(card_no, node, issued_seq)
    return identify(medium="chip", uid=UID, card_file=chip(data), typed="", keys=ROTATED,
                    issued=rec)


def test_a_card_is_checked_with_the_issuer_key_valid_at_its_issuing_event() -> None:
    # issued at seq 3 (before the rotation) with the old key: accepted after it
    assert rotated(A, 3).refusal is None and rotated(A, 5).refusal is None
    # issued at seq 6 (after the rotation): the new key's, not the retired one's
    assert rotated(A2, 6).refusal is None
    assert rotated(A, 6).refusal.code == "bad_signature"  # type: ignore[union-attr]
    assert rotated(A, 40).refusal.code == "bad_signature"  # type: ignore[union-attr]
    # ... and the new key cannot have signed a card recorded before its span
    assert rotated(A2, 5).refusal.code == "bad_signature"  # type: ignore[union-attr]
    assert rotated(MALLORY, 3).refusal.code == "bad_signature"  # type: ignore[union-attr]
    # a node that never rotated: its one key at every seq
    data = card()
    for seq, ok in ((1, True), (10**9, True)):
        got = identify(medium="chip", uid=UID, card_file=chip(data), typed="", keys=KEYS,
                       issued=IssueRecord("8600000001", "cashier-01", seq))
        assert (got.refusal is None) == ok


def test_a_card_the_ledger_does_not_tie_to_its_signer_may_be_any_of_its_keys() -> None:
    """Unknown here (not synced yet), or recorded as another counter's (refused as such
    by the ledger check next): the signature only says who signed — any key the signer
    has had, never another node's."""
    assert rotated(A, None).refusal is None  # unknown here
    assert rotated(A, 6, node="cashier-02").refusal is None  # the ledger names another
    assert rotated(A, 6, card_no="8600000009").refusal is None  # another card's record
    assert rotated(A, 0).refusal is None  # a record with no issuing seq
    assert rotated(MALLORY, None).refusal.code == "bad_signature"  # type: ignore[union-attr]
    assert ROTATED.keys_of("cashier-01") == (A2.public_key, A.public_key)
    assert ROTATED.keys_of("nobody") == () and ROTATED.key_at("nobody", 1) is None


def test_a_stamp_written_before_its_writer_rotated_still_counts() -> None:
    view = decide_balance(KNOWN, stamp(7_000, 4), ROTATED, card_no="8600000001",
                          patient_no="P-cashier-01-1")
    assert (view.balance, view.ignored) == (7_000, ())
    forged = decide_balance(KNOWN, stamp(1, 9, signer=MALLORY), ROTATED,
                            card_no="8600000001", patient_no="P-cashier-01-1")
    assert forged.ignored[0].code == "bad_signature" and forged.balance == 10_000


@given(
    st.integers(-10**6, 10**6), st.integers(0, 50), st.integers(-10**6, 10**6),
    st.integers(1, 50),
)  # fmt: skip
def test_stamp_decision_never_exceeds_the_ledger(
    known_balance: int, known_seq: int, stamp_balance: int, stamp_seq: int
) -> None:
    known = KnownBalance("P-cashier-01-1", known_balance, known_seq)
    view = decide(stamp(stamp_balance, stamp_seq), known)
    assert view.balance <= known_balance
    assert view.money_seq >= known_seq
    assert view.possible_clone == (stamp_seq < known_seq)


def test_stamp_requires_integer_fen() -> None:
    with pytest.raises(ValueError):
        make_stamp(
            A, "cashier-01", card_no="1", patient_no="p", account="p", balance=1.5,  # type: ignore[arg-type]
            seq=1, event_hash=EVENT, at_ms=1,
        )  # fmt: skip


# ------------------------------------------------------------------------------ wedge


def test_wedge_lines() -> None:
    assert parse_line("8600000001\r\n").card_no == "8600000001"
    assert parse_line(";8600000001=4912?").card_no == "8600000001"
    assert parse_line("%B8600000001^ZHANG/SAN^49?").card_no == "8600000001"
    with pytest.raises(WedgeParseError):
        parse_line("hello world!")
    with pytest.raises(WedgeParseError):
        parse_line("   ")


def test_printed_qr_card_is_verified_like_a_chip() -> None:
    printed = card(uid=b"")
    line = parse_line(encode_qr(printed))
    got = ident(line.record, uid=b"", medium="wedge", typed=line.card_no)
    assert got.refusal is None and got.signed and got.patient_no == "P-cashier-01-1"
    with_clear = parse_line("8600000001 " + encode_qr(printed))
    assert ident(with_clear.record, b"", "wedge", with_clear.card_no).refusal is None
    mismatch = parse_line("8600000002 " + encode_qr(printed))
    refusal = ident(mismatch.record, b"", "wedge", mismatch.card_no).refusal
    assert refusal is not None and refusal.code == "card_number_mismatch"
    truncated = parse_line(encode_qr(printed)[:-10])
    assert ident(truncated.record, b"", "wedge").refusal is not None


def test_plain_numbers_and_manual_entry_are_unsigned_and_flagged() -> None:
    plain = ident(b"", uid=b"", medium="wedge", typed="8600000001")
    assert plain.refusal is None and not plain.signed and not plain.manual
    manual = ident(b"", uid=b"", medium="manual", typed="8600000001")
    assert manual.manual and not manual.signed


async def test_wedge_reader_events() -> None:
    reader = WedgeReader()
    await reader.start()
    assert (await reader.next_event(1)).state == "ready"  # type: ignore[union-attr]
    reader.feed_line("8600000001")
    ev = await reader.next_event(1)
    assert isinstance(ev, CardPresented) and ev.typed == "8600000001" and ev.fault is None
    reader.feed_line("??")
    bad = await reader.next_event(1)
    assert isinstance(bad, CardPresented) and bad.fault is not None
    assert bad.fault.code == "unreadable_scan"
    reader.manual_entry("8600000001")
    man = await reader.next_event(1)
    assert isinstance(man, CardPresented) and man.medium == "manual"


async def test_simulated_reader_round_trip() -> None:
    reader = SimulatedReader()
    await reader.start()
    await reader.next_event(1)
    with pytest.raises(NoCard):
        await reader.write_file(layout.EF_CARD, b"x", uid=UID)
    reader.present(UID, {})
    ev = await reader.next_event(1)
    assert isinstance(ev, CardPresented) and ident(ev.card_file).refusal.code == "blank_card"  # type: ignore[union-attr]
    await reader.write_file(layout.EF_CARD, card().to_bytes(), uid=UID)
    assert ident(reader.content(layout.EF_CARD)).refusal is None
    reader.remove()
    assert isinstance(await reader.next_event(1), CardRemoved)


# ------------------------------------------------------------- the emulator's applet


def applet() -> CardApplet:
    return CardApplet(CardImage.blank_onecard(UID, layout.AID, layout.EF_SIZES))


def test_emulator_speaks_iso7816() -> None:
    a = applet()
    assert a.process(layout.GET_UID) == UID + b"\x90\x00"
    assert a.process(layout.read_binary(0, 4)) == b"\x69\x86"  # nothing selected
    assert a.process(bytes([0, 0xA4, 4, 0x0C, 3]) + b"\xa0\x00\x01") == b"\x6a\x82"
    for p2 in (0x00, 0x04):  # P2 00/04 return FCI/FCP
        r = a.process(bytes([0, 0xA4, 4, p2, len(layout.AID)]) + layout.AID)
        assert r.endswith(b"\x90\x00") and len(r) > 2
    assert a.process(layout.select_aid()) == b"\x90\x00"
    fcp = a.process(bytes([0, 0xA4, 2, 0x04, 2, 1, 1]))
    assert fcp[-2:] == b"\x90\x00" and b"\x80\x02\x02\x00" in fcp  # size 512
    assert a.process(layout.select_ef(layout.EF_CARD)) == b"\x90\x00"
    assert a.process(layout.update_binary(10, b"abc")) == b"\x90\x00"  # no Le
    assert a.process(layout.update_binary(13, b"de") + b"\x00") == b"\x90\x00"  # with Le
    assert a.process(layout.read_binary(10, 5)) == b"abcde\x90\x00"
    ef = bytes(a.image.apps[layout.AID][layout.EF_CARD])
    assert a.process(bytes([0, 0xB0, 0, 10])) == ef[10:266] + b"\x90\x00"  # no Le: 256
    assert a.process(layout.read_binary(510, 4)) == b"\x00\x00\x62\x82"
    assert a.process(layout.update_binary(511, b"ab")) == b"\x6b\x00"
    assert a.process(bytes([0x80, 0xCA, 0, 0, 0])) == b"\x6e\x00"  # class not supported
    assert a.process(bytes([0x00, 0x20, 0, 0, 0])) == b"\x6d\x00"  # INS not supported


def test_card_package_does_not_need_pyscard() -> None:
    """The TUI and the demo import edge_node.card; only a chip reader's setup loads pyscard."""
    import subprocess
    import sys

    code = "import sys, edge_node.card; print('smartcard' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert out.stdout.strip() == "False"


async def test_wedge_reader_follows_a_scanner_device_that_comes_and_goes(
        tmp_path: Path) -> None:
    """A serial scanner as udev shows it (a stable symlink to a tty): missing, plugged in,
    read line by line, pulled out, plugged in again — each said once, nothing lost."""
    link = tmp_path / "scanner"  # like /dev/serial/by-id/usb-…
    reader = WedgeReader("Scanner", str(link), retry_s=0.02)

    async def until(pred: Callable[[object], bool]) -> object:
        for _ in range(200):
            ev = await reader.next_event(5)
            if pred(ev):
                return ev
        raise AssertionError("event never came")

    def status(state: str) -> Callable[[object], bool]:
        return lambda ev: isinstance(ev, ReaderStatus) and ev.state == state

    def plug() -> int:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.symlink(os.ttyname(slave), link)
        os.close(slave)
        return master

    await reader.start()
    try:
        gone = await until(status("reader_missing"))
        assert "is not there" in gone.message  # type: ignore[attr-defined]
        master = plug()
        ready = await until(status("ready"))
        assert str(link) in ready.message  # type: ignore[attr-defined]
        os.write(master, b"8600000001\r\n??\n;8600000002=4912?\n")
        got = [await until(lambda ev: isinstance(ev, CardPresented)) for _ in range(3)]
        assert [(e.typed, e.fault is None) for e in got] == [  # type: ignore[attr-defined]
            ("8600000001", True), ("", False), ("8600000002", True)]
        os.close(master)  # the cable is pulled
        link.unlink()
        away = await until(status("reader_missing"))
        assert "went away" in away.message  # type: ignore[attr-defined]
        master = plug()  # and plugged in again
        await until(status("ready"))
        os.write(master, b"8600000003\n")
        again = await until(lambda ev: isinstance(ev, CardPresented))
        assert again.typed == "8600000003"  # type: ignore[attr-defined]
        os.close(master)
    finally:
        await reader.stop()
    assert (await until(status("stopped"))) is not None
