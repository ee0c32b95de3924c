"""The five findings of the domain-core issue, each as a regression test.

1. A signed event with a bad body stopped every counter (central relayed it; every
   counter's ingest failed on it forever).  Now central refuses it at push (the poison
   suite, ``tests/test_poison.py``, does that for every kind and field); and an event
   that is stored somewhere anyway — written before this version — is stored and
   skipped by every counter's fold, and flagged, never fatal.
2. An honest merge took central down for good: a charge on a record merged while its
   counter was offline, and a merge of an overdrawn record.  Both through real
   processes here: a conflict is raised, central keeps serving and restarts, and the
   money comes out right.
3. Folding the same events in two orders gave two states: the same events now give the
   same state in any order (and Hypothesis checks it for every kind,
   ``tests/test_core_properties.py``).
4. One bad clock moved everyone's: a stamp far ahead is flagged whatever its counter,
   never adopted by a counter, and the counter's daily report keeps its own time; an
   envelope integer beyond what stores hold is refused at decode.
5. A new kind cost eight edits: ``tests/test_domain.py`` adds one with one declaration.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from central import conflicts as cf
from central.reconcile import Reconciler
from central.store import CentralStore, enrol_central
from edge_node import receipt, reports
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.staff import Approval
from protocol.account import Account
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.domain import REGISTRY
from protocol.errors import SchemaError
from protocol.event import Event, decode_event, sign_event
from protocol.hlc import Hlc
from tests.conftest import ID_MALE, LedgerFactory, item, node_key, registered
from tests.support.sync_cluster import Central, Counter, wait_for
from tests.test_conflicts_e2e_kinds import _on, _register, _resolve
from tests.test_reconcile import T0, History

SUP = Approval("sup.li", "李主管", "supervisor")  # a supervisor's checked approval

YEAR_MS = 365 * 86_400_000


# -- 1 ------------------------------------------------------------------------------------
async def test_a_stored_bad_body_is_kept_and_skipped_by_the_counter(
        make_ledger: LedgerFactory) -> None:
    """An event stored before central refused such bodies reaches a counter: it is kept
    (chains stay whole), folded nowhere, described as unreadable, and sync goes on."""
    led = await make_ledger("cashier-02")
    key = node_key("cashier-01")
    await led.set_node_keys({"cashier-01": (key.public_key, "cashier")})
    bodies = [("patient.registered", {"patient_id": "P-1", "sex": "M",  # no name
                                      "birth_date": "1990-03-07", "phone": "13800138000"}),
              ("account.deposited", {"patient_id": "P-1", "amount": 500, "method": "cash",
                                     "receipt_no": "D-1"})]
    prev, datas = ZERO_HASH, []
    for seq, (kind, body) in enumerate(bodies, 1):
        _, data, prev = sign_event(key, node="cashier-01", seq=seq, prev=prev,
                                   hlc=Hlc(T0 + seq, 0), operator="op", kind=kind, body=body)
        datas.append(data)
    assert await led.ingest(datas) == 2
    assert await led.get("patients", "P-1") is None  # the bad registration folds nowhere
    assert (await led.get("accounts", "P-1")).balance == 500  # the good deposit does
    [bad, good] = [decode_event(d) for d in datas]
    assert REGISTRY.describe(bad, "zh") == "无法读取的事件（已标记）"
    assert [e.kind for e in await led.history("P-1")] == ["account.deposited",
                                                           "patient.registered"]
    assert (await led.verify()).ok
    # and central, had it stored one, flags it and merges the rest
    rep = Reconciler().add([bad, good])
    assert [c.kind for c in rep.conflicts] == ["malformed_event"]


async def test_a_phone_tag_without_its_phone_stops_no_index(make_ledger: LedgerFactory,
                                                              tmp_path: Path) -> None:
    """A patient.updated that passes validation with a malformed phone tag and no phone
    (found by trying): the fold takes a tag only with its detail, so the stray tag is
    dropped; the counter ingests and indexes the rest and finds the patient by the new
    name, and central's reconciler indexes it for the console.  (The index's terms also
    skip a malformed phone tag themselves: edge_node.search._plain_terms.)"""
    from central.recon_store import StoredView
    from tests.conftest import TEST_PATIENT_KEYS as keys

    pid = "P-cashier-01-000001"
    bodies = [("patient.registered", {"patient_id": pid, "sex": "M", "birth_date": "1990-03-07",
                                      **keys.sealed_details(pid, {"name": "张三",
                                                                  "phone": "13800138000"})}),
              ("patient.updated", {"patient_id": pid, "phone_tag": "abc",
                                   **keys.sealed_details(pid, {"name": "李四"})})]
    assert REGISTRY.validate(*bodies[1], "cashier-01") == []
    key = node_key("cashier-01")
    prev, datas = ZERO_HASH, []
    for seq, (kind, body) in enumerate(bodies, 1):
        _, data, prev = sign_event(key, node="cashier-01", seq=seq, prev=prev,
                                   hlc=Hlc(T0 + seq, 0), operator="op", kind=kind, body=body)
        datas.append(data)
    led = await make_ledger("cashier-02")
    await led.set_node_keys({"cashier-01": (key.public_key, "cashier")})
    assert await led.ingest(datas) == 2
    svc = CounterService(led, "op")
    assert [h.patient.patient_id for h in await svc.search_patients("李四", 10)] == [pid]
    assert (await led.get("patients", pid)).phone_tag == keys.phone_tag("13800138000")
    central = await CentralStore.open(tmp_path / "central.sqlite3")
    try:
        await central.enrol("cashier-01", key.public_key, "cashier")
        await central.ingest("cashier-01", datas)
        watch = cf.ConflictWatch(central, announce=False, patient_keys=keys)
        await watch.catch_up()
        assert await StoredView(central).search("李四", keys, 10) == [pid]
    finally:
        await central.close()


# -- 2 ------------------------------------------------------------------------------------
DUP_A, DUP_B = "8600000071", "8600000072"
SAME = {"sex": "M", "birth_date": "1990-03-07", "national_id": ID_MALE}


def _book(central: Central) -> dict[str, tuple[str, str, int]]:
    c = sqlite3.connect(f"file:{central.db}?mode=ro", uri=True, timeout=10)
    try:
        return {k: (i, s, a) for k, i, s, a in
                c.execute("SELECT kind, id, status, amount FROM conflicts")}
    finally:
        c.close()


def _balance(counter: Counter, card: str) -> int:
    return int(_on(counter, lambda s: s.lookup_card(card)).account.balance)


def _same(central: Central, counters: list[Counter], at_least: int) -> bool:
    """Every counter holds what central holds (and that is at least ``at_least`` events)."""
    held = central.event_ids()
    return len(held) >= at_least and all(k.event_ids() == held for k in counters)


def _serving(central: Central) -> None:
    assert central.proc is not None and central.proc.poll() is None, "central exited"
    log = (central.dir / "central.log").read_text(encoding="utf-8")
    assert "Traceback" not in log, log[-3000:]


@pytest.mark.slow
def test_a_charge_on_a_record_merged_while_its_counter_was_offline(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    a = Counter.create(tmp_path, "cashier-01", central)
    b = Counter.create(tmp_path, "cashier-02", central)
    _on(a, _register(DUP_A, "周九", **SAME))
    _on(b, _register(DUP_B, "周九", **SAME))
    central.start()
    try:
        for k in (a, b):
            k.start_sync()
        wait_for(lambda: "duplicate_patient" in _book(central), 30, "the duplicate")
        b.stop()  # B goes offline; IT merges meanwhile
        _resolve(central, _book(central)["duplicate_patient"][0], "merge")
        wait_for(lambda: _balance(a, DUP_A) == 20_000, 30, "the merge at A")
        # B still knows the old record and its card: it charges all it held there
        _on(b, lambda s: s.charge(DUP_B, [item(10_000)], "lab"))
        b.start_sync()
        wait_for(lambda: "merged_record_used" in _book(central), 30, "the late charge")
        _serving(central)
        cid, status, amount = _book(central)["merged_record_used"]
        assert (status, amount) == ("open", 10_000)
        central.stop()  # and it restarts
        central.start()
        _serving(central)
        _resolve(central, cid, "move")  # the old record's debt follows its money
        wait_for(lambda: _balance(a, DUP_A) == 10_000 and _balance(b, DUP_B) == 10_000, 30,
                 "the move on both counters")
        # a settlement now pays out what the patient has: ¥100, not ¥200
        receipt = _on(a, lambda s: s.settle(DUP_A, approval=SUP))
        assert receipt.events[0].body["amount"] == 10_000
        wait_for(lambda: _same(central, [a, b], 0), 30, "all")
        assert _book(central)["merged_record_used"][1] == "resolved"
    finally:
        for k in (a, b):
            k.stop()
        central.stop()


@pytest.mark.slow
def test_merging_an_overdrawn_record(tmp_path: Path) -> None:
    central = Central.init(tmp_path / "central")
    a = Counter.create(tmp_path, "cashier-01", central)
    b = Counter.create(tmp_path, "cashier-02", central)
    c = Counter.create(tmp_path, "cashier-03", central)
    _on(a, _register(DUP_A, "周九", **SAME))
    _on(b, _register(DUP_B, "周九", **SAME))
    central.start()
    try:
        for k in (a, b, c):
            k.start_sync()
        wait_for(lambda: _same(central, [a, b, c], 6), 30, "both records everywhere")
        for k in (b, c):
            k.stop()
        for k in (b, c):  # two counters spend the second record's ¥100 offline, ¥80 each
            _on(k, lambda s: s.charge(DUP_B, [item(8_000)], "lab"))
        for k in (b, c):
            k.start_sync()
        wait_for(lambda: {"overdraft", "duplicate_patient"} <= set(_book(central)), 30,
                 "overdraft and duplicate")
        _resolve(central, _book(central)["duplicate_patient"][0], "merge")  # owes ¥60
        wait_for(lambda: _balance(a, DUP_A) == 4_000, 30, "the merge")
        _serving(central)
        assert "reconcile_error" not in _book(central)
        central.stop()
        central.start()
        _serving(central)
        assert _on(a, lambda s: s.settle(DUP_A, approval=SUP)).events[0].body["amount"] == 4_000
    finally:
        for k in (a, b, c):
            k.stop()
        central.stop()


# -- 3 ------------------------------------------------------------------------------------
def test_the_two_orders_that_gave_two_states_now_give_one() -> None:
    h = History()
    dep = h.add("cashier-01", 10, "account.deposited", {"patient_id": "P-1", "amount": 500,
                                                         "method": "cash", "receipt_no": "D"})
    grant = h.add("cashier-03", 15, "account.credit_granted", {
        "patient_id": "P-1", "limit": 500, "reason": "trauma", "authorised_by": "dr.chen"})
    settle = h.add("cashier-02", 20, "account.settled", {"patient_id": "P-1", "amount": 500,
                                                         "method": "cash", "invoice_no": "I"})
    end = h.add("cashier-03", 25, "account.credit_granted", {
        "patient_id": "P-1", "limit": 0, "reason": "discharged", "authorised_by": "dr.chen"})
    states = []
    for order in ([dep, grant, settle, end], [end, settle, dep, grant],
                  [grant, end, settle, dep]):
        a = REGISTRY.fold(order).get_or_new(Account, "P-1")
        states.append((a.balance, a.closed, a.credit_limit))
    # the latest, in (hlc, node, seq), of the settlement and the deposit decides "closed";
    # the latest grant decides the credit — on every node
    assert states == [(0, 1, 0)] * 3


# -- 4 ------------------------------------------------------------------------------------
async def test_a_clock_far_ahead_is_not_adopted_and_the_day_keeps_its_own_time(
        tmp_path: Path) -> None:
    now = T0
    victim = await Ledger.open(tmp_path / "v.sqlite3", "cashier-02", node_key("cashier-02"),
                               clock=lambda: now)
    try:
        key = node_key("cashier-09")
        await victim.set_node_keys({"cashier-09": (key.public_key, "cashier")})
        _, skewed, _ = sign_event(key, node="cashier-09", seq=1, prev=ZERO_HASH,
                                  hlc=Hlc(T0 + 20 * YEAR_MS, 1), operator="op",
                                  kind="patient.updated",
                                  body={"patient_id": "P-x", "phone": "13900000000"})
        assert await victim.ingest([skewed]) == 1  # stored …
        svc = CounterService(victim, "op.wang")
        await registered(svc, deposit=5_000)
        [dep] = [e for e in await victim.history((await victim.get("cards", "8600000001"))
                                                  .patient_id) if e.kind == "account.deposited"]
        assert dep.hlc.wall < T0 + 60_000  # … but its clock not adopted
        day = reports.business_day(now)
        report = await reports.daily_report(victim, day)
        assert report.deposits["cash"].amount == 5_000  # today's 日结 has it
        r = await svc.deposit("8600000001", 1_000, "cash")
        assert r.at_ms == now  # and its receipt is stamped with this counter's time
        assert "2026-09-21 22:13" in receipt.render_text(r, node="cashier-02", operator="op.wang")
    finally:
        await victim.close()


def test_a_stamp_far_ahead_is_flagged_whatever_its_counter() -> None:
    h = History()
    ev = h.add("cashier-09", 20 * YEAR_MS, "patient.updated",
               {"patient_id": "P-x", "phone": "13900000000"}, counter=1)
    from central.reconcile import Incoming
    rep = Reconciler().add([Incoming(ev, T0)])
    assert [c.kind for c in rep.conflicts] == ["clock_skew"]


@pytest.mark.parametrize("field,value", [("wall", 2**63 - 1), ("counter", 2**63 - 1),
                                         ("seq", 2**63 - 1), ("wall", 2**53)])
def test_envelope_integers_beyond_what_stores_hold_are_refused(field: str, value: int) -> None:
    key = SigningKey(b"\x07" * 32)
    hlc = Hlc(value, 0) if field == "wall" else Hlc(T0, value) if field == "counter" \
        else Hlc(T0, 0)
    ev = Event(1, "cashier-01", value if field == "seq" else 1, ZERO_HASH, hlc, "op",
               "patient.updated", {"patient_id": "P-1", "phone": "13900000000"})
    from protocol import codec
    m = ev.to_map()
    m["sig"] = key.sign(codec.encode(ev.unsigned_map()))
    with pytest.raises(SchemaError, match="hlc|seq"):
        decode_event(codec.encode(m))
    with pytest.raises(SchemaError):
        sign_event(key, node="cashier-01", seq=ev.seq, prev=ZERO_HASH, hlc=hlc,
                   operator="op", kind=ev.kind, body=ev.body)


# -- a reconciler failure stops nobody -----------------------------------------------------
def test_a_detector_that_fails_is_a_conflict_and_the_rest_goes_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from central import reconcile

    def broken(tl: Any) -> list[Any]:
        if tl.pid == "P-2":
            raise RuntimeError("a bug")
        return []
    monkeypatch.setattr(reconcile, "PATIENT_DETECTORS",
                        [*reconcile.PATIENT_DETECTORS, broken])
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 6_500)
    h.patient("cashier-01", 5, "P-2", "8600000002", 1_000, phone="13900000000")
    h.charge("cashier-01", 100, "P-1", "C-1", 5_000)
    h.charge("cashier-02", 101, "P-1", "C-2", 5_000)
    with caplog.at_level(logging.ERROR):
        rep = Reconciler().add(h.events)
    assert sorted(c.kind for c in rep.conflicts) == ["overdraft", "reconcile_error"]
    assert "p:P-2" in next(c.title for c in rep.conflicts if c.kind == "reconcile_error")
    assert "a bug" in caplog.text


async def test_a_reconciler_that_fails_never_stops_the_watch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = await CentralStore.open(tmp_path / "c.sqlite3")
    try:
        key = SigningKey(b"\x05" * 32)
        await enrol_central(store, key)
        node = node_key("cashier-01")
        await store.enrol("cashier-01", node.public_key, "cashier")
        _, data, _ = sign_event(node, node="cashier-01", seq=1, prev=ZERO_HASH,
                                hlc=Hlc(T0, 0), operator="op", kind="account.deposited",
                                body={"patient_id": "P-1", "amount": 500, "method": "cash",
                                      "receipt_no": "D-1"})
        await store.ingest("cashier-01", [data])
        watch = cf.ConflictWatch(store)

        def boom(*a: Any, **k: Any) -> Any:
            raise RuntimeError("a bug")
        monkeypatch.setattr(watch.reconciler, "plan", boom)
        assert await watch.catch_up() == 1  # done with the batch, not stuck on it
        [row] = await cf.list_conflicts(store)
        assert row.kind == "reconcile_error" and "a bug" in row.explanation
        # the checkpoint moved past it: a restarted watch does not fail on it again
        monkeypatch.undo()
        again = cf.ConflictWatch(store)
        assert await again.catch_up() == 0 and again.pos == watch.pos
    finally:
        await store.close()


async def test_central_starts_over_a_stored_bad_body(tmp_path: Path) -> None:
    """A store holding an event this version refuses (stored by an older central) is
    reconciled at start: one conflict, nothing raised, the server comes up."""
    from central.config import CentralConfig
    from central.server import run_server
    from central.store import _now_ms

    db = tmp_path / "c.sqlite3"
    store = await CentralStore.open(db)
    key = SigningKey(b"\x05" * 32)
    (tmp_path / "central.key").write_text(key.seed.hex(), encoding="ascii")
    node = node_key("cashier-01")
    await enrol_central(store, key)
    await store.enrol("cashier-01", node.public_key, "cashier")
    _, data, h = sign_event(node, node="cashier-01", seq=1, prev=ZERO_HASH, hlc=Hlc(T0, 0),
                            operator="op", kind="patient.registered", body={"patient_id": "P"})
    await store.write_many([
        ("UPDATE cursor SET pos = pos + 1", ()),
        ("INSERT INTO events (pos, node, seq, hash, data, received_ms) VALUES "
         "(1, 'cashier-01', 1, ?, ?, ?)", (h, data, _now_ms())),
        ("UPDATE nodes SET head_seq = 1, head_hash = ? WHERE id = 'cashier-01'", (h,))])
    await store.close()
    cfg = CentralConfig(tmp_path / "c.toml", db=db, key_file=tmp_path / "central.key", port=0,
                        verify_workers=0)
    stop, up = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_server(cfg, stop=stop, on_listening=lambda p: up.set()))
    waiting = asyncio.create_task(up.wait())
    await asyncio.wait([task, waiting], timeout=20, return_when=asyncio.FIRST_COMPLETED)
    assert up.is_set(), task.exception() if task.done() else "not listening after 20 s"
    stop.set()
    await task
    store = await CentralStore.open(db)
    try:
        assert [r.kind for r in await cf.list_conflicts(store)] == ["malformed_event"]
    finally:
        await store.close()



async def test_central_stamps_its_events_after_what_it_holds(tmp_path: Path) -> None:
    """A remedy sorts after every event it was decided on (the reconciler's premise that
    "before, in merge order" means "known to the writer"), but a clock beyond
    ``max_skew_ms`` does not drag central's along."""
    store = await CentralStore.open(tmp_path / "c.sqlite3", max_skew_ms=300_000)
    try:
        key = SigningKey(b"\x05" * 32)
        await enrol_central(store, key)
        node = node_key("cashier-01")
        await store.enrol("cashier-01", node.public_key, "cashier")
        now, prev, datas = T0, ZERO_HASH, []
        for seq, ahead in ((1, 120_000), (2, 20 * YEAR_MS)):  # 2 min fast, then 20 years
            _, data, prev = sign_event(node, node="cashier-01", seq=seq, prev=prev,
                                       hlc=Hlc(now + ahead, 7), operator="op",
                                       kind="account.deposited",
                                       body={"patient_id": "P-1", "amount": 500,
                                             "method": "cash", "receipt_no": f"D-{seq}"})
            datas.append(data)
        await store.ingest("cashier-01", datas[:1], now_ms=now)
        [first] = await cf.sign_central(store, key, [("conflict.accepted", {
            "conflict_id": "overdraft-000000000000", "reason": "x"})], operator="it", now_ms=now)
        assert first.hlc > decode_event(datas[0]).hlc
        await store.ingest("cashier-01", datas[1:], now_ms=now)
        [second] = await cf.sign_central(store, key, [("conflict.accepted", {
            "conflict_id": "overdraft-000000000001", "reason": "x"})], operator="it", now_ms=now)
        assert first.hlc < second.hlc < Hlc(now + 300_000, 0)  # the 20-year stamp: not believed
    finally:
        await store.close()
