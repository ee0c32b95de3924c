"""Counter notices: what staff must do about a conflict central resolved.

Pure cases on folded histories, then one on real ledgers: two counters overdraw an
account offline, central's reconciler raises it and IT records the debt; the counter
says what is owed and why, refuses a new charge, and the next deposit collects it.
"""

from __future__ import annotations

import pytest

from central.reconcile import reconcile
from edge_node.errors import OperationRefused
from edge_node.i18n import Translator
from edge_node.ledger import Ledger
from edge_node.notices import Notice, conflict_kind, notices
from edge_node.service import CounterService
from protocol import fold
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import CENTRAL, Event, decode_event, sign_event
from protocol.hlc import Hlc
from tests.conftest import ID_MALE, LedgerFactory, item, node_key, registered
from tests.test_reconcile import History

EN = Translator("en")


def _for(state: fold.State, pid: str, events: list[Event]) -> list[Notice]:
    mine = [e for e in events if pid in (e.body.get("patient_id"), e.body.get("survivor_id"),
                                         e.body.get("merged_id"))]
    cards = [c for c in state.cards.values() if c.patient_id == pid]
    return notices(state.patients[pid], state.account(pid), cards, mine)


def _remedy(h: History, events: list[Event], kind: str, code: str, wall: int = 500) -> Event:
    [c] = [c for c in reconcile(events) if c.kind == kind]
    option = c.remedy(code)
    assert option is not None
    [(k, body)] = option.events
    return h.add(CENTRAL, wall, k, {**body, "reason": "checked with the ward"},
                 operator="it.li")


def test_overdraft_debt_says_how_much_and_why_then_paid_after_a_deposit() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 6_500)
    h.charge("cashier-01", 100, "P-1", "C-1", 5_000)
    h.charge("cashier-02", 101, "P-1", "C-2", 5_000)
    assert _for(fold.fold(h.events), "P-1", h.events) == []  # nothing until central acts
    debt = _remedy(h, h.events, "overdraft", "debt")
    [n] = _for(fold.fold(h.events), "P-1", h.events)
    assert (n.code, n.urgent, conflict_kind(n.conflict_id)) == ("debt", True, "overdraft")
    assert n.conflict_id == debt.body["conflict_id"]
    assert n.text(EN) == "Owes ¥35.00 from an offline overdraft — collect before new charges"
    assert "离线透支" in n.text(Translator("zh")) and "¥35.00" in n.text(Translator("zh"))
    h.add("cashier-02", 600, "account.deposited",
          {"patient_id": "P-1", "amount": 5_000, "method": "cash", "receipt_no": "D-2"})
    [paid] = _for(fold.fold(h.events), "P-1", h.events)
    assert paid.code == "debt_paid" and not paid.urgent
    assert paid.text(EN) == "Debt of ¥35.00 from an offline overdraft paid"


def test_over_refund_debt_taken_from_the_balance_owes_nothing_more() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    h.charge("cashier-01", 10, "P-1", "C-1", 5_000)
    for node, amount in (("cashier-01", 5_000), ("cashier-02", 3_000)):
        h.add(node, 50, "account.refunded", {"refund_id": f"R-{node}", "charge_id": "C-1",
                                            "patient_id": "P-1", "amount": amount,
                                            "to": "deposit", "approved_by": "s", "reason": "r"})
    _remedy(h, h.events, "over_refund", "debt")
    state = fold.fold(h.events)
    assert state.accounts["P-1"].balance == 10_000
    [n] = _for(state, "P-1", h.events)
    assert n.code == "debt_paid" and "over-refund" in n.text(EN)


def test_blocked_card_merged_record_and_reversed_charge() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    for node, new in (("cashier-01", "8600000002"), ("cashier-02", "8600000003")):
        h.add(node, 20, "card.replaced", {"old_card_no": "8600000001", "new_card_no": new,
                                          "patient_id": "P-1"})
    block = _remedy(h, h.events, "double_replacement", "block")
    state = fold.fold(h.events)
    [n] = _for(state, "P-1", h.events)
    assert n.code == "card_blocked" and n.urgent
    blocked = block.body["card_no"]
    valid = ({"8600000002", "8600000003"} - {blocked}).pop()
    assert n.text(EN) == (f"Card {blocked} blocked by central IT (a double replacement): keep "
                          f"it if presented; valid card {valid}")

    m = History()
    m.patient("cashier-01", 0, "P-a", "8600000011", 1_000, nid=ID_MALE)
    m.patient("cashier-02", 5, "P-b", "8600000012", 2_000, nid=ID_MALE)
    _remedy(m, m.events, "duplicate_patient", "merge")
    state = fold.fold(m.events)
    [gone] = _for(state, "P-b", m.events)
    assert (gone.code, gone.urgent) == ("merged_into", True)
    assert gone.text(EN) == "Record merged into P-a: use that record"
    [kept] = _for(state, "P-a", m.events)
    assert kept.text(EN) == "Record P-b was merged into this one (same person)"

    r = History()
    r.patient("cashier-01", 0, "P-1", "8600000001", 10_000)
    r.add("cashier-01", 10, "card.reported_lost", {"card_no": "8600000001", "patient_id": "P-1",
                                                   "verified_by": "id_card"})
    r.charge("cashier-02", 20, "P-1", "C-9", 2_000, card="8600000001")
    _remedy(r, r.events, "lost_card_used", "reverse")
    [rev] = _for(fold.fold(r.events), "P-1", r.events)
    assert rev.text(EN) == "Charge C-9 ¥20.00 reversed by central IT (a lost card used)"


def test_a_forged_remedy_from_a_counter_gives_no_notice() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 1_000)
    h.add("cashier-02", 10, "debt.recorded", {"conflict_id": "overdraft-000000000000",
                                              "patient_id": "P-1", "amount": 99_000,
                                              "debit": 99_000, "reason": "forged"})
    assert _for(fold.fold(h.events), "P-1", h.events) == []


async def _exchange(src: Ledger, dst: Ledger) -> None:
    """What sync does: ``dst`` stores the events of ``src`` it does not hold yet."""
    await dst.ingest([d for _, d in await src.events()
                      if decode_event(d).node != dst.node_id])


async def test_counter_shows_the_debt_refuses_a_charge_and_a_deposit_collects_it(
        make_ledger: LedgerFactory) -> None:
    central_key = SigningKey.generate()
    a, b = await make_ledger("cashier-01"), await make_ledger("cashier-02")
    keys = {n: (node_key(n).public_key, "cashier") for n in ("cashier-01", "cashier-02")}
    keys[CENTRAL] = (central_key.public_key, "central")
    for led in (a, b):
        await led.set_node_keys(keys)
    sa, sb = CounterService(a, "op.wang"), CounterService(b, "op.li")
    pid = await registered(sa, "8600000001", deposit=6_500)
    await _exchange(a, b)
    for s in (sa, sb):  # offline: each takes ¥50.00 of the ¥65.00 it knows of
        await s.charge("8600000001", [item(5_000)], "lab")
    await _exchange(a, b)
    await _exchange(b, a)
    everything = [decode_event(d) for _, d in await a.events()]
    [conflict] = reconcile(everything)
    option = conflict.remedy("debt")
    assert option is not None
    [(kind, body)] = option.events
    _, data, _ = sign_event(central_key, node=CENTRAL, seq=1, prev=ZERO_HASH,
                            hlc=Hlc(everything[-1].hlc.wall + 1000, 0), operator="it.li",
                            kind=kind, body={**body, "reason": "owed by the patient"})
    await a.ingest([data])

    async def shown() -> list[str]:
        view = await sa.lookup_card("8600000001")
        history = await sa.history(pid, 20)
        return [n.text(EN) for n in notices(view.patient, view.account, view.cards, history)]

    assert await shown() == [
        "Owes ¥35.00 from an offline overdraft — collect before new charges"]
    with pytest.raises(OperationRefused):
        await sa.charge("8600000001", [item(100)], "lab")
    await sa.deposit("8600000001", 5_000, "cash")
    assert await shown() == ["Debt of ¥35.00 from an offline overdraft paid"]
    receipt = await sa.charge("8600000001", [item(1_000)], "lab")
    assert receipt.balance == 500

