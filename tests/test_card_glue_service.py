"""The ledger side of wallet stamps: event fields, the fold, the migration, the service checks."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_node import migrations
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CardWallet, CounterService, known_money
from edge_node.staff import Approval
from protocol.account import Account
from protocol.crypto import ZERO_HASH
from protocol.domain import REGISTRY
from protocol.event import Event, sign_event
from protocol.hlc import Hlc
from tests.conftest import FakeClock, item, node_key, registered
from tests.support.domain import fold

SUP = Approval("sup.li", "李主管", "supervisor")  # a supervisor's checked approval


def charged(i: int, amount: int, stamp_seq: int | None = None, stamp_balance: int = 0) -> Event:
    body: dict[str, object] = {"charge_id": f"C{i}", "patient_id": "P-a-1", "amount": amount,
                               "items": [item(amount)], "department": "x"}
    if stamp_seq is not None:
        body |= {"stamp_seq": stamp_seq, "stamp_balance": stamp_balance}
    return Event(1, "a", i, bytes(32), Hlc(i, 0), "op", "account.charged", body, b"")


def test_stamp_fields_are_optional_but_go_together() -> None:
    base = {"patient_id": "P-a-1", "amount": 100, "method": "cash", "receipt_no": "D1"}
    assert REGISTRY.validate("account.deposited", base) == []
    assert REGISTRY.validate("account.deposited", base | {"stamp_seq": 3, "stamp_balance": 0}) == []
    half = REGISTRY.validate("account.deposited", base | {"stamp_seq": 3})
    assert [p.code for p in half] == ["stamp.incomplete"]
    bad = REGISTRY.validate("account.settled", {"patient_id": "P-a-1", "amount": 0,
                                                "method": "cash", "invoice_no": "I1",
                                                "stamp_seq": 0, "stamp_balance": 0})
    assert [p.code for p in bad] == ["field.range"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9), st.integers(-500, 500)), min_size=1, max_size=12),
       st.randoms(use_true_random=False))
def test_newest_stamp_is_kept_in_any_order(stamps: list[tuple[int, int]], rnd: object) -> None:
    events = [charged(i + 1, 10, seq, bal) for i, (seq, bal) in enumerate(stamps)]
    events.append(charged(99, 10))  # an old-style event without a stamp changes nothing
    shuffled = list(events)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = fold(events).accounts["P-a-1"], fold(shuffled).accounts["P-a-1"]
    top = max(seq for seq, _ in stamps)
    expect = (top, min(bal for seq, bal in stamps if seq == top))
    assert (a.stamp_seq, a.stamp_balance) == (b.stamp_seq, b.stamp_balance) == expect


def test_known_money_takes_the_lowest_newest_knowledge() -> None:
    acct = Account("P-a-1", balance=10_000, money_seq=5)
    assert known_money(acct) == (10_000, 5)
    assert known_money(acct, CardWallet(4, 1_000)) == (10_000, 5)  # older card: ledger
    assert known_money(acct, CardWallet(6, 7_000)) == (7_000, 6)  # newer card: lower
    assert known_money(acct, CardWallet(6, 90_000)) == (10_000, 6)  # never higher
    ahead = Account("P-a-1", balance=10_000, money_seq=5, stamp_seq=7, stamp_balance=6_000)
    assert known_money(ahead) == (6_000, 7)  # a stamp written/accepted beyond its events
    behind = Account("P-a-1", balance=10_000, money_seq=8, stamp_seq=7, stamp_balance=6_000)
    assert known_money(behind) == (10_000, 8)  # events since: the ledger's sums
    synced = Account("P-a-1", balance=10_000, money_seq=7, stamp_seq=7, stamp_balance=6_000)
    assert known_money(synced) == (10_000, 7)  # e.g. central credited 40.00 since


async def test_an_old_ledger_is_migrated_and_its_projections_refolded(tmp_path: Path) -> None:
    """A ledger of migrations 1-2 (no stamps, old projection tables holding a stale
    row) opens with every migration applied and projections folded from its events."""
    path = tmp_path / "old.sqlite3"
    key = node_key("cashier-01")
    conn = sqlite3.connect(path, isolation_level=None)
    saved = migrations.MIGRATIONS
    try:
        migrations.MIGRATIONS = saved[:2]
        migrations.migrate(conn)
        body = {"patient_id": "P-x-1", "amount": 500, "method": "cash", "receipt_no": "D-1"}
        ev, data, h = sign_event(key, node="cashier-01", seq=1, prev=ZERO_HASH,
                                 hlc=Hlc(1_790_000_000_000, 0), operator="op",
                                 kind="account.deposited", body=body)
        conn.execute("INSERT INTO events (node, seq, hash, hlc_wall, hlc_counter, operator, "
                     "kind, data) VALUES (?, 1, ?, ?, 0, 'op', ?, ?)",
                     (ev.node, h, ev.hlc.wall, ev.kind, data))
        conn.execute("INSERT INTO heads VALUES ('cashier-01', 1, ?)", (h,))
        conn.execute("INSERT INTO accounts VALUES ('P-x-1', 99, 0, 5, 0, 0, 0, 0, 1, 0)")
    finally:
        migrations.MIGRATIONS = saved
        conn.close()
    ledger = await Ledger.open(path, "cashier-01", key, clock=FakeClock())
    try:
        acct = await ledger.get("accounts", "P-x-1")
        assert (acct.balance, acct.deposited, acct.stamp_seq) == (500, 500, 0)
        assert (await ledger.verify()).ok
        versions = await ledger.run(lambda c: [r[0] for r in c.execute(
            "SELECT version FROM schema_migrations ORDER BY version")])
        assert versions == [v for v, _, _ in migrations.MIGRATIONS]
    finally:
        await ledger.close()


async def test_charge_is_refused_above_a_newer_card_stamp(service: CounterService) -> None:
    pid = await registered(service, deposit=10_000)
    newer = CardWallet(seq=5, balance=3_000)  # the card was charged elsewhere, offline
    with pytest.raises(OperationRefused) as exc:
        await service.charge("8600000001", [item(4_000)], "x", wallet=newer, stamp=True)
    assert exc.value.problems[0].code == "charge.insufficient_card"
    assert "¥30.00" in exc.value.problems[0].message
    assert (await service.patient(pid)).account.balance == 10_000  # nothing written
    r = await service.charge("8600000001", [item(2_500)], "x", wallet=newer, stamp=True)
    body = r.events[0].body
    assert (body["stamp_seq"], body["stamp_balance"]) == (6, 500)  # after the card's #5
    acct = (await service.patient(pid)).account
    assert (acct.balance, acct.money_seq, acct.stamp_seq, acct.stamp_balance) == \
        (7_500, 2, 6, 500)
    # The ledger remembers: without the card, the stamp's lower balance still counts.
    with pytest.raises(OperationRefused) as again:
        await service.charge("8600000001", [item(600)], "x")
    assert again.value.problems[0].code == "charge.insufficient_card"
    assert await service.ledger.rebuild() > 0
    assert (await service.patient(pid)).account == acct  # the fold agrees with the live rows


async def test_stamp_seq_follows_the_ledger_without_a_card_stamp(
        service: CounterService) -> None:
    pid = await registered(service, deposit=10_000)
    reg = await service.history(pid)
    assert "stamp_seq" not in reg[0].body  # registered without a chip: no stamp
    d = await service.deposit("8600000001", 1_000, "cash", stamp=True)
    assert (d.events[0].body["stamp_seq"], d.events[0].body["stamp_balance"]) == (2, 11_000)
    r = await service.refund((await service.charge("8600000001", [item(1_000)], "x",
                                                    stamp=True)).number,
                             400, "deposit", "li", "wrong item", stamp=True, approval=SUP)
    assert (r.events[0].body["stamp_seq"], r.events[0].body["stamp_balance"]) == (4, 10_400)


async def test_settlement_waits_for_sync_when_the_card_knows_more(
        service: CounterService) -> None:
    pid = await registered(service, deposit=10_000)
    with pytest.raises(OperationRefused) as exc:
        await service.settle("8600000001", wallet=CardWallet(3, 2_000), stamp=True, approval=SUP)
    assert exc.value.problems[0].code == "settle.card_newer"
    r = await service.settle("8600000001", wallet=CardWallet(1, 10_000), stamp=True, approval=SUP)
    assert r.events[0].body["amount"] == 10_000 and r.events[0].body["stamp_balance"] == 0
    assert (await service.patient(pid)).account.balance == 0


async def test_registration_checks_the_patient_id_written_to_the_card(
        service: CounterService) -> None:
    predicted = await service.next_patient_id()
    assert predicted == "P-cashier-01-000001"
    r = await service.register_patient(name="张三", card_no="8600000001", first_deposit=1_000,
                                       phone="13800138000", sex="M", birth_date="1990-01-01",
                                       expect_patient_id=predicted, stamp=True)
    assert r.patient.patient_id == predicted
    assert (r.events[2].body["stamp_seq"], r.events[2].body["stamp_balance"]) == (1, 1_000)
    stale = predicted  # the next registration gets another id
    with pytest.raises(OperationRefused) as exc:
        await service.register_patient(name="李四", card_no="8600000002", first_deposit=1_000,
                                       phone="13800138001", sex="M", birth_date="1990-01-01",
                                       expect_patient_id=stale)
    assert exc.value.problems[0].code == "patient.id_moved"
    assert await service.ledger.event_count() == 3  # nothing of the refused one


def test_the_card_record_keeps_the_seq_of_the_event_that_issued_it() -> None:
    """Issue 11: the tap checks a card with its issuer's key at this seq; the earliest
    issuing event holds (card.issued or card.replaced), in any order."""
    def ev(node: str, seq: int, wall: int, kind: str, body: dict[str, object]) -> Event:
        return Event(1, node, seq, bytes(32), Hlc(wall, 0), "op", kind, body, b"")

    issued = ev("a", 7, 100, "card.issued", {"card_no": "8600000001", "patient_id": "P-a-1"})
    replaced = ev("b", 3, 200, "card.replaced", {"old_card_no": "8600000001",
                                                  "new_card_no": "8600000002",
                                                  "patient_id": "P-a-1"})
    again = ev("c", 9, 300, "card.issued", {"card_no": "8600000002", "patient_id": "P-a-1"})
    for order in ([issued, replaced, again], [again, replaced, issued]):
        cards = fold(order).cards
        assert (cards["8600000001"].issued_node, cards["8600000001"].issued_seq) == ("a", 7)
        assert (cards["8600000002"].issued_node, cards["8600000002"].issued_seq) == ("b", 3)
