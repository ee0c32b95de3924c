"""Counter notices: what staff must do about a conflict central resolved.

Pure cases on folded histories, then one on real ledgers: two counters overdraw an
account offline, central's reconciler raises it and IT records the debt; the counter
says what is owed and why, refuses a new charge, and the next deposit collects it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from central.conflicts import ConflictWatch, list_conflicts, raised_body, resolve
from central.recon_store import wipe
from central.reconcile import Reconciler, reconcile
from central.store import CentralStore, enrol_central
from edge_node.errors import OperationRefused
from edge_node.i18n import Translator
from edge_node.ledger import Ledger
from edge_node.notices import Notice, conflict_kind, notices
from edge_node.service import CounterService
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.event import CENTRAL, Event, decode_event, sign_event
from protocol.hlc import Hlc
from tests.conftest import ID_MALE, LedgerFactory, item, node_key, registered
from tests.support import domain
from tests.support.central_seed import Chains
from tests.support.central_seed import node_key as seed_key
from tests.test_reconcile import T0, History

EN = Translator("en")


def _for(state: domain.View, pid: str, events: list[Event]) -> list[Notice]:
    mine = [e for e in events if pid in domain.patients_of(e.kind, e.body)]  # as the ledger
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
    assert _for(domain.fold(h.events), "P-1", h.events) == []  # nothing until central acts
    debt = _remedy(h, h.events, "overdraft", "debt")
    [n] = _for(domain.fold(h.events), "P-1", h.events)
    assert (n.code, n.urgent, conflict_kind(n.conflict_id)) == ("debt", True, "overdraft")
    assert n.conflict_id == debt.body["conflict_id"]
    assert n.text(EN) == "Owes ¥35.00 from an offline overdraft — collect before new charges"
    assert "离线透支" in n.text(Translator("zh")) and "¥35.00" in n.text(Translator("zh"))
    h.add("cashier-02", 600, "account.deposited",
          {"patient_id": "P-1", "amount": 5_000, "method": "cash", "receipt_no": "D-2"})
    [paid] = _for(domain.fold(h.events), "P-1", h.events)
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
    state = domain.fold(h.events)
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
    state = domain.fold(h.events)
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
    state = domain.fold(m.events)
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
    [rev] = _for(domain.fold(r.events), "P-1", r.events)
    assert rev.text(EN) == "Charge C-9 ¥20.00 reversed by central IT (a lost card used)"


def _raise(h: History, events: list[Event], kind: str, wall: int = 400) -> Event:
    [c] = [c for c in reconcile(events) if c.kind == kind]
    return h.add(CENTRAL, wall, "conflict.raised", raised_body(c), operator="reconciler")


def test_an_open_conflict_says_so_until_its_remedy_replaces_it() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 6_500)
    h.charge("cashier-01", 100, "P-1", "C-1", 5_000)
    h.charge("cashier-02", 101, "P-1", "C-2", 5_000)
    raised = _raise(h, h.events, "overdraft")
    assert raised.body["amount"] == 3_500 and raised.body["patients"] == ["P-1"]
    assert domain.fold(h.events).accounts == domain.fold(h.events[:-1]).accounts  # no money moves
    [n] = _for(domain.fold(h.events), "P-1", h.events)
    assert (n.code, n.urgent, n.conflict_id) == ("open", True, raised.body["conflict_id"])
    assert n.text(EN) == ("Open conflict: an offline overdraft of ¥35.00 — central IT is "
                          "reviewing; collect nothing until told")
    assert "离线透支" in n.text(Translator("zh")) and "¥35.00" in n.text(Translator("zh"))
    # announced twice (a replayed event): still one notice
    again = h.add(CENTRAL, 401, "conflict.raised", raised.body, operator="reconciler")
    assert [x.code for x in _for(domain.fold(h.events), "P-1", [raised, again])] == ["open"]
    debt = _remedy(h, h.events[:-1], "overdraft", "debt")
    assert debt.body["conflict_id"] == raised.body["conflict_id"]
    assert [(x.code, x.conflict_id) for x in _for(domain.fold(h.events), "P-1", h.events)] == [
        ("debt", raised.body["conflict_id"])]
    # another conflict of the same patient, still open, stays beside the remedy
    h.add(CENTRAL, 700, "conflict.raised",
                  {**raised.body, "conflict_id": "overdraft-ffffffffffff", "amount": 0},
                  operator="reconciler")
    codes = [(x.code, x.key) for x in _for(domain.fold(h.events), "P-1", h.events)]
    assert codes == [("open", "notice.open_no_amount"), ("debt", "notice.debt")]


def test_an_open_duplicate_is_shown_on_both_records_and_raised_is_not_a_resolution() -> None:
    m = History()
    m.patient("cashier-01", 0, "P-a", "8600000011", 1_000, nid=ID_MALE)
    m.patient("cashier-02", 5, "P-b", "8600000012", 2_000, nid=ID_MALE)
    raised = _raise(m, m.events, "duplicate_patient")
    assert set(domain.patients_of("conflict.raised", raised.body)) == {"P-a", "P-b"}
    assert ID_MALE not in raised.body["summary"]
    state = domain.fold(m.events)
    for pid in ("P-a", "P-b"):
        [n] = _for(state, pid, [raised])
        assert n.text(EN) == ("Open conflict: a duplicate registration — central IT is "
                              "reviewing; act on nothing until told")
    rec = Reconciler()
    first = rec.add(m.events[:-1])
    rep = rec.add([raised])  # central's own announcement: no resolution, no new conflict
    assert [c.kind for c in first.conflicts] == ["duplicate_patient"]
    assert (rep.conflicts, rep.resolutions, rep.withdrawn) == ([], [], [])


def test_a_raised_conflict_from_a_counter_gives_no_notice_and_is_flagged() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 1_000)
    forged = h.add("cashier-02", 10, "conflict.raised", {
        "conflict_id": "overdraft-000000000000", "conflict_kind": "overdraft",
        "patient_id": "P-1", "patients": ["P-1"], "amount": 100, "summary": "forged"})
    assert _for(domain.fold(h.events), "P-1", h.events) == []
    assert [c.kind for c in reconcile(h.events)] == ["malformed_event"]
    assert forged.node != CENTRAL


def test_a_forged_remedy_from_a_counter_gives_no_notice() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 1_000)
    h.add("cashier-02", 10, "debt.recorded", {"conflict_id": "overdraft-000000000000",
                                              "patient_id": "P-1", "amount": 99_000,
                                              "debit": 99_000, "reason": "forged"})
    assert _for(domain.fold(h.events), "P-1", h.events) == []


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



async def _central_kinds(store: CentralStore) -> list[tuple[int, str, str]]:
    rows = await store.read("SELECT seq, data FROM events WHERE node = ? ORDER BY seq",
                            (CENTRAL,))
    return [(int(seq), (e := decode_event(bytes(d))).kind, e.body["conflict_id"])
            for seq, d in rows]


async def test_central_announces_each_new_conflict_once_across_restarts(tmp_path: Path) -> None:
    key = SigningKey.generate()
    ch = Chains()
    ch.double_spend(T0)
    ch.patient("cashier-01", T0 + 200, "P-a", "8600000011", 1_000, "王五", nid=ID_MALE)
    ch.patient("cashier-02", T0 + 300, "P-b", "8600000012", 2_000, "王五", nid=ID_MALE)
    store = await CentralStore.open(tmp_path / "central.sqlite3")
    try:
        await enrol_central(store, key)
        for node in ("cashier-01", "cashier-02"):
            await store.enrol(node, seed_key(node).public_key, "cashier")
            await store.ingest(node, ch.encoded[node])
        await ConflictWatch(store, announce=False).catch_up()  # the book, no announcement
        assert await _central_kinds(store) == []
        assert len(await list_conflicts(store)) == 2
        # as if never seen: the book and the reconciler's state
        await store.write_many([("DELETE FROM conflicts", ()), *wipe()])
        await ConflictWatch(store).catch_up()
        announced = await _central_kinds(store)
        book = {r.kind: r for r in await list_conflicts(store)}
        assert set(book) == {"overdraft", "duplicate_patient"}
        assert sorted(cid for _, _, cid in announced) == sorted(r.id for r in book.values())
        assert [(s, k) for s, k, _ in announced] == [(1, "conflict.raised"),
                                                     (2, "conflict.raised")]
        watch = ConflictWatch(store)  # a restarted central: from its checkpoint
        await asyncio.gather(watch.catch_up(), watch.catch_up())
        assert await _central_kinds(store) == announced
        assert {r.status for r in await list_conflicts(store)} == {"open"}  # not resolutions
        await resolve(store, key, book["overdraft"].id, "debt", reason="owed",
                      operator="it.li")
        await watch.catch_up()
        after = await _central_kinds(store)
        assert after[:2] == announced and after[2][:2] == (3, "debt.recorded")
        statuses = {r.kind: r.status for r in await list_conflicts(store)}
        assert statuses == {"overdraft": "resolved", "duplicate_patient": "open"}
    finally:
        await store.close()
