"""Chip cards through the real reader stack: pcscd + vpcd + the virtual card in tests.support.

Every test drives :class:`edge_node.card.pcsc.PcscReader` against a real pcscd (run by
the ``stack`` fixture in a private network namespace) and waits on the reader's events,
never on fixed sleeps.  Two readers ("counters") share the one pcscd.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from edge_node.card import layout
from edge_node.card.layout import (
    CardData,
    CardRecord,
    KnownBalance,
    StaticKeys,
    check_record,
    decide_balance,
    identify,
    issue_card,
    make_stamp,
    remember_stamp,
)
from edge_node.card.pcsc import PcscReader
from edge_node.card.reader import (
    CardPresented,
    CardRemoved,
    CardRemovedError,
    ReaderEvent,
    ReaderStatus,
    write_card,
    write_stamp,
)
from protocol.crypto import SigningKey
from tests.support.pcsc_stack import PcscStack
from tests.support.vcard import CardImage, VirtualCard

# one pcscd per worker process (libpcsclite reads its socket path once per process):
# all on one worker, so the stack starts once in a run
pytestmark = [pytest.mark.pcsc, pytest.mark.xdist_group("pcsc")]

REPO = Path(__file__).resolve().parent.parent
EVENT_TIMEOUT = 5.0  # pcscd sees a card within ~0.4-0.8 s; 5 s means something is wrong


def key(node: str) -> SigningKey:
    return SigningKey(hashlib.sha256(node.encode()).digest())


KEY_A, KEY_B = key("cashier-01"), key("cashier-02")
KEYS = StaticKeys({"cashier-01": KEY_A.public_key, "cashier-02": KEY_B.public_key})


def blank(uid: bytes) -> CardImage:
    return CardImage.blank_onecard(uid, layout.AID, layout.EF_SIZES)


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscStack]:
    with PcscStack(tmp_path_factory.mktemp("pcsc")) as s:
        yield s


@pytest.fixture
def cards(stack: PcscStack, tmp_path: Path) -> Iterator[Callable[..., VirtualCard]]:
    made: list[VirtualCard] = []

    def make(
        reader: str, uid: bytes, image: CardImage | None = None, name: str = ""
    ) -> VirtualCard:
        state = tmp_path / f"{name or uid.hex()}.json"
        card = stack.card(reader, state, image if image is not None else blank(uid))
        made.append(card)
        return card

    yield make
    for card in made:
        card.remove()
    for reader in stack.readers:  # leave the readers empty for the next test
        stack.wait_card_state(reader, present=False)


@pytest.fixture
async def readers(stack: PcscStack) -> AsyncIterator[tuple[PcscReader, PcscReader]]:
    """Counter A on reader 00 00, counter B on reader 00 01, both ready."""
    a, b = PcscReader(stack.readers[0]), PcscReader(stack.readers[1])
    for r in (a, b):
        await r.start()
        await status(r, "ready")
    yield a, b
    for r in (a, b):
        await r.stop()


async def next_of(reader: PcscReader, kind: type, timeout: float = EVENT_TIMEOUT) -> ReaderEvent:
    """The next event of ``kind`` (status lines in between are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        ev = await reader.next_event(max(0.01, deadline - time.monotonic()))
        if isinstance(ev, kind):
            return ev
        assert isinstance(ev, ReaderStatus), f"unexpected {ev!r} while waiting for {kind}"


async def presented(reader: PcscReader) -> CardPresented:
    ev = await next_of(reader, CardPresented)
    assert isinstance(ev, CardPresented)
    return ev


async def status(reader: PcscReader, state: str, timeout: float = 10.0) -> ReaderStatus:
    deadline = time.monotonic() + timeout
    while True:
        ev = await reader.next_event(max(0.01, deadline - time.monotonic()))
        if isinstance(ev, ReaderStatus) and ev.state == state:
            return ev


async def issue(
    reader: PcscReader, ev: CardPresented, card_no: str = "8600000001", node: str = "cashier-01"
) -> CardData:
    data = issue_card(
        KEY_A if node == "cashier-01" else KEY_B, node, card_no=card_no,
        patient_no="P-cashier-01-1", issued_ms=1_790_000_000_000, uid=ev.uid,
    )  # fmt: skip
    await write_card(reader, ev.uid, data)
    return data


def ident(ev: CardPresented) -> layout.Identity:
    return identify(medium=ev.medium, uid=ev.uid, card_file=ev.card_file, typed="", keys=KEYS)


# ------------------------------------------------------------------------------ cases


async def test_issue_then_read_at_another_counter(
    stack: PcscStack, readers: tuple[PcscReader, PcscReader], cards: Callable[..., VirtualCard]
) -> None:
    a, b = readers
    uid = b"\x04\x11\x22\x33\x44\x55\x66"
    at_a = cards(stack.readers[0], uid, name="card")
    at_a.insert()
    ev = await presented(a)
    assert ev.uid == uid and ident(ev).refusal is not None  # blank until issued
    await issue(a, ev)
    at_a.remove()
    assert isinstance(await next_of(a, CardRemoved), CardRemoved)

    # The same card (same content file) at counter B's reader.
    at_b = stack.card(stack.readers[1], at_a.state)
    at_b.insert()
    try:
        seen = await presented(b)
        got = ident(seen)
        assert got.refusal is None and got.signed
        assert (got.card_no, got.patient_no) == ("8600000001", "P-cashier-01-1")
        record = CardRecord("8600000001", "P-cashier-01-1", "active")
        assert check_record(got.card_no, got.patient_no, record) is None
        lost = CardRecord("8600000001", "P-cashier-01-1", "lost")
        assert check_record(got.card_no, got.patient_no, lost).code == "card_lost"  # type: ignore[union-attr]
        assert seen.read_ns - seen.seen_ns < 100_000_000  # read within 100 ms of the event
    finally:
        at_b.remove()


async def test_removal_and_reinsertion(
    stack: PcscStack, readers: tuple[PcscReader, PcscReader], cards: Callable[..., VirtualCard]
) -> None:
    a, _ = readers
    card = cards(stack.readers[0], b"\x04\x00\x00\x01")
    card.insert()
    first = await presented(a)
    await issue(a, first)
    card.remove()
    await next_of(a, CardRemoved)
    card.insert()
    again = await presented(a)
    assert again.uid == first.uid and ident(again).refusal is None
    card.remove()
    await next_of(a, CardRemoved)


async def test_two_readers_on_one_pcscd_see_only_their_cards(
    stack: PcscStack, readers: tuple[PcscReader, PcscReader], cards: Callable[..., VirtualCard]
) -> None:
    a, b = readers
    ca = cards(stack.readers[0], b"\x04\xaa")
    cb = cards(stack.readers[1], b"\x04\xbb")
    ca.insert()
    cb.insert()
    ev_a, ev_b = await asyncio.gather(presented(a), presented(b))
    assert (ev_a.uid, ev_b.uid) == (b"\x04\xaa", b"\x04\xbb")
    assert (ev_a.reader, ev_b.reader) == tuple(stack.readers)


async def test_forged_altered_and_copied_cards_are_refused(
    stack: PcscStack, readers: tuple[PcscReader, PcscReader], cards: Callable[..., VirtualCard]
) -> None:
    a, _ = readers
    uid = b"\x04\x0f\x0f\x0f"
    good = issue_card(
        KEY_A, "cashier-01", card_no="8600000007", patient_no="P-7", issued_ms=1, uid=uid
    )
    stranger = issue_card(
        SigningKey(bytes(32)), "cashier-66", card_no="8600000007", patient_no="P-7",
        issued_ms=1, uid=uid,
    )  # fmt: skip
    altered = CardData("8600000008", "P-7", 1, "cashier-01", uid, good.sig)
    cases = {
        "bad_signature": (uid, altered),
        "unknown_signer": (uid, stranger),
        "copied_card": (b"\x04\x99\x99\x99", good),  # good data on another chip
    }
    for expected, (chip_uid, data) in cases.items():
        image = blank(chip_uid)
        framed = layout.frame(data.to_bytes())
        image.apps[layout.AID][layout.EF_CARD][: len(framed)] = framed
        card = cards(stack.readers[0], chip_uid, image, name=expected)
        card.insert()
        ev = await presented(a)
        refusal = ident(ev).refusal
        assert refusal is not None and refusal.code == expected, (expected, refusal)
        assert refusal.title and refusal.message
        card.remove()
        await next_of(a, CardRemoved)


async def test_unknown_card_type_and_apdu_errors_are_reported(
    stack: PcscStack, readers: tuple[PcscReader, PcscReader], cards: Callable[..., VirtualCard]
) -> None:
    a, _ = readers
    transit = CardImage(b"\x04\x77", {bytes.fromhex("A0000006320101"): {0x1001: bytearray(64)}})
    card = cards(stack.readers[0], b"\x04\x77", transit)
    card.insert()
    ev = await presented(a)
    assert ev.fault is not None and ev.fault.code == "unknown_card_type"
    assert "not a hospital patient card" in ev.fault.message
    card.remove()
    await next_of(a, CardRemoved)

    no_ef = CardImage(b"\x04\x78", {layout.AID: {layout.EF_STAMP: bytearray(256)}})
    broken = cards(stack.readers[0], b"\x04\x78", no_ef)
    broken.insert()
    ev = await presented(a)
    assert ev.fault is not None and ev.fault.code == "apdu_error" and "6A82" in ev.fault.message


async def test_pcscd_gone_and_back(
    stack: PcscStack, readers: tuple[PcscReader, PcscReader], cards: Callable[..., VirtualCard]
) -> None:
    a, _ = readers
    card = cards(stack.readers[0], b"\x04\x50")
    card.insert()
    await presented(a)
    stack.stop_pcscd()
    try:
        await next_of(a, CardRemoved)  # a card cannot be "in" a reader nobody serves
        down = await status(a, "no_service")
        assert "pcscd" in down.message and "by hand" in down.message
    finally:
        stack.start_pcscd()
    await status(a, "ready")
    card.insert()  # vpcd is new: the card connects again
    back = await presented(a)
    assert back.uid == b"\x04\x50"


async def test_reader_gone_and_back(
    stack: PcscStack, readers: tuple[PcscReader, PcscReader], cards: Callable[..., VirtualCard]
) -> None:
    a, _ = readers
    original = tuple(e.friendly for e in stack.entries)
    stack.swap_readers(("Some Other Reader",))  # our reader is no longer connected
    try:
        missing = await status(a, "reader_missing")
        assert a.name in missing.message and "not connected" in missing.message
    finally:
        stack.swap_readers(original)
    await status(a, "ready")
    card = cards(a.name, b"\x04\x51")
    card.insert()
    assert (await presented(a)).uid == b"\x04\x51"


def _wait_line(proc: subprocess.Popen[bytes], prefix: bytes, timeout: float) -> bytes:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith(prefix):
                return line
    raise AssertionError(f"card process printed no {prefix!r} within {timeout} s")


def _card_process(stack: PcscStack, state: Path, delay_ms: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, *stack.card_process_args(stack.readers[0], state, delay_ms)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_line(proc, b"READY", 10)
    return proc


async def test_card_pulled_mid_write_is_never_half_issued(
    stack: PcscStack, readers: tuple[PcscReader, PcscReader], tmp_path: Path
) -> None:
    a, _ = readers
    state = tmp_path / "pulled.json"
    uid = bytes(blank(b"\x04\x60").uid)
    blank(uid).save(state)
    # A card that already holds valid data (a re-issue): pulling it must not leave it valid.
    proc = _card_process(stack, state, delay_ms=0)
    try:
        await issue(a, await presented(a), card_no="8600000060")
    finally:
        proc.kill()
        proc.wait(5)
    await next_of(a, CardRemoved)

    proc = _card_process(stack, state, delay_ms=200)
    try:
        ev = await presented(a)
        assert ident(ev).refusal is None
        writing = asyncio.create_task(issue(a, ev, card_no="8600000061"))
        # Kill the card after the header was zeroed and the body written, before the header.
        await asyncio.to_thread(_wait_line, proc, b"WRITE 0101 0 ", 5)
        await asyncio.to_thread(_wait_line, proc, b"WRITE 0101 5 ", 5)
        proc.kill()
        with pytest.raises(CardRemovedError) as err:
            await asyncio.wait_for(writing, 10)
        assert "Put it back" in err.value.message
    finally:
        proc.kill()
        proc.wait(5)
    await next_of(a, CardRemoved)

    proc = _card_process(stack, state, delay_ms=0)  # the same card, put back
    try:
        ev = await presented(a)
        refusal = ident(ev).refusal
        assert refusal is not None and refusal.code == "blank_card"  # neither old nor half new
        await issue(a, ev, card_no="8600000061")
        proc.kill()
        proc.wait(5)
        await next_of(a, CardRemoved)
        proc = _card_process(stack, state, delay_ms=0)
        good = ident(await presented(a))
        assert good.refusal is None and good.card_no == "8600000061"
    finally:
        proc.kill()
        proc.wait(5)
    await next_of(a, CardRemoved)


async def test_wallet_stamp_carries_spending_between_offline_counters(
    stack: PcscStack, readers: tuple[PcscReader, PcscReader], cards: Callable[..., VirtualCard]
) -> None:
    a, b = readers
    uid = b"\x04\x5a\x5a"
    card_a = cards(stack.readers[0], uid, name="wallet")
    card_a.insert()
    ev = await presented(a)
    data = await issue(a, ev)
    # Both counters are offline and last synced at money event #3, balance 100.00.
    known_a = known_b = KnownBalance("P-cashier-01-1", balance=10_000, money_seq=3)

    # Counter A charges 30.00 and stamps the card.
    view_a = decide_balance(known_a, ev.stamp_file, KEYS, card_no=data.card_no,
                            patient_no=data.patient_no)  # fmt: skip
    after_a = make_stamp(
        KEY_A, "cashier-01", card_no=data.card_no, patient_no=data.patient_no,
        account="P-cashier-01-1", balance=view_a.balance - 3_000, seq=view_a.next_seq,
        event_hash=hashlib.blake2b(b"charge@A", digest_size=32).digest(), at_ms=2,
    )  # fmt: skip
    await write_stamp(a, uid, after_a)
    card_a.remove()
    await next_of(a, CardRemoved)
    old_card = card_a.state.read_bytes()  # someone copies the card now

    # Counter B has not seen A's charge, but reads it from the card.
    card_b = stack.card(stack.readers[1], card_a.state)
    card_b.insert()
    ev_b = await presented(b)
    view_b = decide_balance(known_b, ev_b.stamp_file, KEYS, card_no=data.card_no,
                            patient_no=data.patient_no)  # fmt: skip
    assert view_b.balance == 7_000 and view_b.source == "stamp" and not view_b.flags
    # B charges 20.00 and stamps; its ledger remembers the stamp it wrote.
    after_b = make_stamp(
        KEY_B, "cashier-02", card_no=data.card_no, patient_no=data.patient_no,
        account="P-cashier-01-1", balance=view_b.balance - 2_000, seq=view_b.next_seq,
        event_hash=hashlib.blake2b(b"charge@B", digest_size=32).digest(), at_ms=3,
    )  # fmt: skip
    await write_stamp(b, uid, after_b)
    known_b = remember_stamp(KnownBalance("P-cashier-01-1", 8_000, 4), after_b)
    card_b.remove()
    await next_of(b, CardRemoved)

    # The copy (with A's older stamp) is presented at B: refused the higher balance, flagged.
    card_b.state.write_bytes(old_card)
    replay = stack.card(stack.readers[1], card_b.state)
    replay.insert()
    try:
        ev_r = await presented(b)
        view_r = decide_balance(known_b, ev_r.stamp_file, KEYS, card_no=data.card_no,
                                patient_no=data.patient_no)  # fmt: skip
        assert view_r.possible_clone and view_r.balance == 5_000
        assert "cloned" in view_r.flags[0].title
    finally:
        replay.remove()
