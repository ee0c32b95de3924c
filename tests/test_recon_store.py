"""The reconciler kept in central's store (central/recon_store.py): the same reports as the
pure reconciler over the same batches, whatever it keeps in memory and whenever it is
reopened; a restart replays nothing; memory stays within its budget."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central import conflicts as cf
from central.recon_store import RESIDENT, StoredReconciler, ask_refold, software, wipe
from central.reconcile import Incoming, Reconciler, Report
from central.store import CentralStore, enrol_central
from protocol.crypto import SigningKey, blake2b_256
from protocol.domain import REGISTRY
from protocol.event import Event, decode_event, sign_event
from protocol.hlc import Hlc
from tests.conftest import TEST_PATIENT_KEYS, node_key
from tests.test_core_properties import _signed, histories, interleave
from tests.test_reconcile import T0, Node, Sim, _step

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


async def _store_events(store: CentralStore, arrivals: list[tuple[Event, bytes]]) -> None:
    """Put events in the store's cursor as they arrived (the reconciler's input: what
    ingest stored; ingest itself is tested elsewhere)."""
    await store.write_many([
        ("INSERT INTO events (pos, node, seq, hash, data, received_ms, hlc_wall, hlc_counter)"
         " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
         [(i + 1, ev.node, ev.seq, blake2b_256(data), data, ev.hlc.wall, ev.hlc.wall,
           ev.hlc.counter) for i, (ev, data) in enumerate(arrivals)]),
        ("UPDATE cursor SET pos = ?", (len(arrivals),))])


def _same(a: Report, b: Report) -> None:
    assert b.conflicts == a.conflicts
    assert b.withdrawn == a.withdrawn
    assert b.resolutions == a.resolutions


async def _compare(path: Path, arrivals: list[tuple[Event, bytes]], cuts: list[int],
                   reopen: set[int], budget: int) -> int:
    """Feed the same batches to both; return how many conflicts were reported."""
    store = await CentralStore.open(path)
    try:
        await _store_events(store, arrivals)
        pure = Reconciler()
        stored = StoredReconciler(store, budget=budget)
        await stored.open()
        found, start = 0, 0
        for k, end in enumerate(cuts):
            batch = [Incoming(ev, ev.hlc.wall, start + i + 1)
                     for i, (ev, _) in enumerate(arrivals[start:end])]
            want = pure.add(batch)
            got, statements = await stored.add(batch)
            _same(want, got)
            await store.write_many(statements)
            stored.committed()
            resident = sum(len(stored.rec.state.table(rt)) for rt in RESIDENT)
            assert stored.pos == end and stored.size() <= budget + resident
            found += len(want.conflicts)
            if k in reopen:  # a restart: a new process reads the checkpoint
                stored = StoredReconciler(store, budget=budget)
                await stored.open()
                assert stored.pos == end
            start = end
        # the store holds the pure reconciler's whole state
        held = {}
        for rt in REGISTRY.records:
            rows = sorted(tuple(msgpack.unpackb(bytes(d), raw=False)) for d in
                          [r[0] for r in await store.read(
                              "SELECT data FROM recon_records WHERE tbl = ?", (rt.TABLE,))])
            if rows:
                held[rt.TABLE] = rows
        assert held == {t: [tuple(r) for r in rows] for t, rows in pure.state.dump().items()}
        return found
    finally:
        await store.close()


def _cuts(n: int, rnd: Any) -> list[int]:
    out, i = [], 0
    while i < n:
        i = min(n, i + rnd.randint(1, 7))
        out.append(i)
    return out


@SETTINGS
@given(histories(max_events=40), st.randoms(use_true_random=False), st.sampled_from([0, 25]))
def test_any_history_gives_the_pure_reconcilers_reports_batch_by_batch(
        chains: dict[str, list[Event]], rnd: Any, budget: int) -> None:
    signed = _signed(chains)
    events = {(ev.node, ev.seq): (ev, data) for node, datas in signed.items()
              for ev, data in ((decode_event(d), d) for d in datas)}
    order = interleave({n: [decode_event(d) for d in ds] for n, ds in signed.items()}, rnd)
    arrivals = [events[(ev.node, ev.seq)] for ev in order]
    cuts = _cuts(len(arrivals), rnd)
    reopen = {k for k in range(len(cuts)) if rnd.random() < 0.3}
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(_compare(Path(d) / "c.sqlite3", arrivals, cuts, reopen, budget))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), st.integers(20, 80))
def test_counters_histories_with_conflicts_give_the_same_reports(
        data: st.DataObject, n_steps: int) -> None:
    """Counters' plausible days (double spends, lost cards used, refunds, settlements,
    replacements: conflicts raised and withdrawn as late events arrive)."""
    sim = Sim([Node("cashier-a"), Node("cashier-b"), Node("cashier-c")])
    for i in range(n_steps):
        _step(sim, data, i)
    signed = _signed({n: [e for e in sim.events if e.node == n] for n in
                      {e.node for e in sim.events}})
    by_id = {(ev.node, ev.seq): (ev, d) for ds in signed.values()
             for ev, d in ((decode_event(d), d) for d in ds)}
    rnd = data.draw(st.randoms(use_true_random=False))
    # arrival: each counter's chain in order, counters mixed (offline, then synced)
    order = interleave({n: [decode_event(d) for d in ds] for n, ds in signed.items()}, rnd)
    arrivals = [by_id[(ev.node, ev.seq)] for ev in order]
    cuts = _cuts(len(arrivals), rnd)
    reopen = {k for k in range(len(cuts)) if rnd.random() < 0.3}
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(_compare(Path(d) / "c.sqlite3", arrivals, cuts, reopen, 0))


def test_the_property_tests_see_conflicts() -> None:
    """(The comparison above is only worth something if the histories raise conflicts.)"""
    rnd = __import__("random").Random(7)
    sim = Sim([Node("cashier-a"), Node("cashier-b")])
    a, b = sim.nodes
    for i in range(6):
        sim.write(a, "patient.registered", {"patient_id": f"P{i}", "name": f"病人{i % 4}",
                                            "sex": "F", "birth_date": "1980-01-01",
                                            "phone": "13900000000"})
        sim.write(a, "account.deposited", {"patient_id": f"P{i}", "amount": 1000,
                                           "method": "cash", "receipt_no": f"D{i}"})
    sim.sync(b)
    from tests.conftest import item
    for n in (a, b):
        sim.write(n, "account.charged", {"charge_id": f"X-{n.name}", "patient_id": "P0",
                                         "items": [item(800)], "amount": 800,
                                         "department": "lab"}, globally=False)
    signed = _signed({n: [e for e in sim.events if e.node == n] for n in ("cashier-a",
                                                                           "cashier-b")})
    arrivals = [(decode_event(d), d) for n in ("cashier-b", "cashier-a") for d in signed[n]]
    with tempfile.TemporaryDirectory() as d:
        found = asyncio.run(_compare(Path(d) / "c.sqlite3", arrivals,
                                     _cuts(len(arrivals), rnd), {1, 3}, 0))
    assert found >= 3  # the overdraft, and two likely duplicates (P0 = P4, P1 = P5)


# -------------------------------------------------------------- through ConflictWatch
async def _watch_day(tmp_path: Path) -> tuple[CentralStore, list[tuple[Event, bytes]]]:
    sim = Sim([Node("cashier-a"), Node("cashier-b")])
    a, b = sim.nodes
    from tests.conftest import item
    for i in range(40):
        n = (a, b)[i % 2]
        sim.write(n, "patient.registered", {"patient_id": f"P{i}", "name": f"病人{i}",
                                            "sex": "F", "birth_date": "1980-01-01",
                                            "phone": f"1390000{i:04d}"})
        sim.write(n, "account.deposited", {"patient_id": f"P{i}", "amount": 1000,
                                           "method": "cash", "receipt_no": f"D{i}"})
    sim.sync(a)
    sim.sync(b)
    for n in (a, b):  # both spend most of P3's balance offline: one overdraft
        sim.write(n, "account.charged", {"charge_id": f"X-{n.name}", "patient_id": "P3",
                                         "items": [item(800)], "amount": 800,
                                         "department": "lab"}, globally=False)
    signed = _signed({n.name: [e for e in sim.events if e.node == n.name] for n in (a, b)})
    arrivals = [(decode_event(d), d) for n in ("cashier-a", "cashier-b") for d in signed[n]]
    store = await CentralStore.open(tmp_path / "c.sqlite3")
    await enrol_central(store, SigningKey(b"\x05" * 32))
    await _store_events(store, arrivals)
    return store, arrivals


async def test_a_restarted_watch_replays_nothing_and_raises_nothing_twice(
        tmp_path: Path) -> None:
    store, arrivals = await _watch_day(tmp_path)
    try:
        watch = cf.ConflictWatch(store, announce=False, budget=50)
        assert await watch.catch_up(page=7) == len(arrivals)
        book = await cf.list_conflicts(store)
        [c] = [x for x in book if x.status == "open"]
        assert c.kind == "overdraft" and c.patients == ("P3",)
        assert watch.stored.size() <= 50  # within its budget
        again = cf.ConflictWatch(store, announce=False, budget=50)
        assert await again.catch_up() == 0  # started at the checkpoint: nothing replayed
        assert again.stored.loads == 0 and again.stored.size() == 0
        assert await cf.list_conflicts(store) == book
        # the restarted one goes on where the first stopped: a deposit made earlier at a
        # third counter, arriving late, shows P3 held enough — the overdraft is withdrawn
        # (P3's timeline and the scope's last ids come back from the store)
        from protocol.event import sign_event
        from protocol.hlc import Hlc
        from tests.conftest import node_key
        from tests.test_reconcile import T0
        _, data, _ = sign_event(node_key("cashier-c"), node="cashier-c", seq=1,
                                prev=b"\x00" * 32, hlc=Hlc(T0 + 1, 0), operator="op",
                                kind="account.deposited", body={
                                    "patient_id": "P3", "amount": 1000, "method": "cash",
                                    "receipt_no": "D-late"})
        ev = decode_event(data)
        pos = len(arrivals) + 1
        await store.write_many([
            ("INSERT INTO events (pos, node, seq, hash, data, received_ms, hlc_wall,"
             " hlc_counter) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
             (pos, ev.node, ev.seq, blake2b_256(data), data, ev.hlc.wall, ev.hlc.wall,
              ev.hlc.counter)), ("UPDATE cursor SET pos = ?", (pos,))])
        assert await again.catch_up() == 1
        assert {x.id: x.status for x in await cf.list_conflicts(store)} == {
            x.id: "withdrawn" for x in book}
        assert again.stored.loads > 0  # P3's timeline came back from the store
    finally:
        await store.close()


async def test_a_refold_asked_by_another_process_rebuilds_the_state(tmp_path: Path) -> None:
    store, arrivals = await _watch_day(tmp_path)
    try:
        watch = cf.ConflictWatch(store, announce=False)
        await watch.catch_up()
        before = await store.read("SELECT tbl, k, data FROM recon_records ORDER BY tbl, k")
        # someone changes the accounts table by hand, then IT asks for a refold
        await store.write_many([("UPDATE accounts SET balance = 1", ()), *ask_refold()])
        assert await watch.catch_up() == len(arrivals)  # every event again, at once
        assert await store.read("SELECT count(*) FROM accounts WHERE balance = 1") == [(0,)]
        assert await store.read(
            "SELECT tbl, k, data FROM recon_records ORDER BY tbl, k") == before
        assert await watch.catch_up() == 0  # asked once, done once
        [c] = await cf.list_conflicts(store, status="open")
        assert c.kind == "overdraft"
    finally:
        await store.close()


async def test_state_folded_by_other_software_is_refolded(tmp_path: Path) -> None:
    store, arrivals = await _watch_day(tmp_path)
    try:
        await cf.ConflictWatch(store, announce=False).catch_up()
        [(meta,)] = await store.read("SELECT value FROM meta WHERE key = 'recon'")
        assert software() in str(meta)
        await store.write_many([("UPDATE meta SET value = ? WHERE key = 'recon'",
                                 (str(meta).replace(software(), "0:old:old"),))])
        assert await cf.ConflictWatch(store, announce=False).catch_up() == len(arrivals)
        assert len(await cf.list_conflicts(store, status="open")) == 1
    finally:
        await store.close()


async def test_a_failed_write_loses_nothing(tmp_path: Path) -> None:
    """The book and the state are written in one transaction: if it fails, the next
    catch-up does the batch again from the checkpoint (memory was ahead: dropped)."""
    store, arrivals = await _watch_day(tmp_path)
    try:
        watch = cf.ConflictWatch(store, announce=False)
        real = store.write_many
        calls = 0

        async def failing(statements: Any) -> None:
            nonlocal calls
            calls += any("key = 'recon'" in sql for sql, _ in statements)  # a batch's write
            if calls == 2:
                raise OSError("disk full")
            await real(statements)
        store.write_many = failing  # type: ignore[method-assign]
        try:
            await watch.catch_up(page=30)
        except OSError:
            pass
        store.write_many = real  # type: ignore[method-assign]
        assert watch.pos == 30
        await watch.catch_up(page=30)
        assert watch.pos == len(arrivals)
        pure = Reconciler()
        pure.add([ev for ev, _ in arrivals])
        assert {r[0]: r[1] for r in await store.read(
            "SELECT patient_id, balance FROM accounts")} == {
            a.patient_id: a.balance for a in pure.state.all(
                __import__("protocol.account", fromlist=["Account"]).Account)}
        [c] = await cf.list_conflicts(store, status="open")
        assert c.kind == "overdraft"
    finally:
        await store.close()


def test_identity_groups_and_cards_are_loaded_whole_when_a_member_moves_away() -> None:
    """Three records share one ID number (each with a card, the merge remedy lists them);
    one is corrected to another number batches later: the two left are still one person
    (their group and cards come from the store, the third's row is memory's)."""
    from tests.conftest import ID_FEMALE, ID_MALE
    sim = Sim([Node("cashier-a"), Node("cashier-b"), Node("cashier-c")])
    for i, n in enumerate(sim.nodes):  # three counters offline: none knows the others
        assert sim.write(n, "patient.registered", {
            "patient_id": f"P{i}", "name": f"病人{i}", "sex": "F", "birth_date": "1980-01-01",
            "national_id": ID_FEMALE, "phone": f"1390000000{i}"}, globally=False)
        assert sim.write(n, "card.issued", {"card_no": f"8600000{i:03d}",
                                            "patient_id": f"P{i}"}, globally=False)
        assert sim.write(n, "account.deposited", {
            "patient_id": f"P{i}", "amount": 1000 + i, "method": "cash",
            "receipt_no": f"D{i}"}, globally=False)
    assert sim.write(sim.nodes[0], "patient.updated", TEST_PATIENT_KEYS.sealed_details(
        "P0", {"patient_id": "P0", "national_id": ID_MALE}), globally=False)
    signed = _signed({n.name: [e for e in sim.events if e.node == n.name] for n in sim.nodes})
    arrivals = [(decode_event(d), d) for n in ("cashier-a", "cashier-b", "cashier-c")
                for d in signed[n][:3]] + [(decode_event(signed["cashier-a"][3]),
                                            signed["cashier-a"][3])]
    with tempfile.TemporaryDirectory() as d:
        found = asyncio.run(_compare(Path(d) / "c.sqlite3", arrivals, [3, 6, 9, 10], set(), 0))
    assert found == 3  # P0+P1, then P0+P1+P2 (P0+P1 withdrawn), then P1+P2 (the rest)


def test_a_stock_timeline_kept_in_part_is_completed_once_it_goes_below_zero() -> None:
    """A stock's facts are loaded only when it is below zero: batches that leave it above
    zero keep only their own facts in memory (the working set kept: a big budget); when a
    later one takes it below, the store's facts are added to those, each once."""
    from protocol.event import sign_event
    from protocol.hlc import Hlc
    from tests.conftest import node_key
    from tests.test_reconcile import T0
    bodies = [("stock.received", {"pharmacy": "ph1", "code": "AMOX", "qty": 10}),
              ("stock.adjusted", {"pharmacy": "ph1", "code": "AMOX", "delta": -4,
                                  "reason": "damaged"}),
              ("stock.adjusted", {"pharmacy": "ph1", "code": "AMOX", "delta": -4,
                                  "reason": "damaged"}),
              ("stock.adjusted", {"pharmacy": "ph1", "code": "AMOX", "delta": -4,
                                  "reason": "damaged"}),
              ("stock.received", {"pharmacy": "ph1", "code": "AMOX", "qty": 3})]
    arrivals, prev = [], b"\x00" * 32
    for seq, (kind, body) in enumerate(bodies, 1):
        _, data, prev = sign_event(node_key("pharmacy-01"), node="pharmacy-01", seq=seq,
                                   prev=prev, hlc=Hlc(T0 + seq, 0), operator="op", kind=kind,
                                   body=body)
        arrivals.append((decode_event(data), data))
    with tempfile.TemporaryDirectory() as d:
        found = asyncio.run(_compare(Path(d) / "c.sqlite3", arrivals, [1, 2, 3, 4, 5], set(),
                                     10_000))
    assert found == 1  # -2 after the third adjustment (its facts listed once each); +1: withdrawn


async def _append(store: CentralStore, data: bytes) -> None:
    ev = decode_event(data)
    [(top,)] = await store.read("SELECT pos FROM cursor")
    await store.write_many([
        ("INSERT INTO events (pos, node, seq, hash, data, received_ms, hlc_wall, hlc_counter)"
         " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (int(top) + 1, ev.node, ev.seq, blake2b_256(data),
                                              data, ev.hlc.wall, ev.hlc.wall, ev.hlc.counter)),
        ("UPDATE cursor SET pos = ?", (int(top) + 1,))])


async def test_a_damaged_state_row_is_a_conflict_and_everything_is_refolded(
        tmp_path: Path) -> None:
    """Whatever row of the reconciler's state does not read back (garbage in a record, an
    identity, a scope's ids, the checkpoint), the next catch-up says so in a conflict,
    drops the state and refolds every event: the same state and book as before, and the
    reconciler goes on."""
    store, arrivals = await _watch_day(tmp_path)
    try:
        watch = cf.ConflictWatch(store, announce=False)
        assert await watch.catch_up() == len(arrivals)
        book = {c.id: c.status for c in await cf.list_conflicts(store)}
        prev = b"\x00" * 32
        for seq, damage in enumerate((
                "UPDATE recon_records SET data = X'c1ffee' WHERE tbl = 'accounts'",
                "UPDATE recon_identity SET person = '[not json'",
                "UPDATE recon_emitted SET ids = '{'",
                "UPDATE meta SET value = '[1, 2' WHERE key = 'recon'"), 1):
            await store.write_many([(damage, ())])
            # a restart, then a late event touching P3: its records, identity and scope
            # are read back
            restarted = cf.ConflictWatch(store, announce=False)
            await restarted.catch_up()
            _, data, prev = sign_event(node_key("cashier-c"), node="cashier-c", seq=seq,
                                       prev=prev, hlc=Hlc(T0 + seq, 0), operator="op",
                                       kind="patient.updated",
                                       body={"patient_id": "P3", "sex": "MF"[seq % 2]})
            await _append(store, data)
            await restarted.catch_up()
            damaged = await cf.list_conflicts(store, kind="reconcile_error")
            assert [c.title for c in damaged] == ["Reconciler state damaged: refolded"], damage
            got = await store.read("SELECT tbl, k, data FROM recon_records ORDER BY tbl, k")
            await store.write_many(wipe())  # what a clean refold of the same events makes
            assert await cf.ConflictWatch(store, announce=False).catch_up() == len(
                arrivals) + seq
            assert await store.read(
                "SELECT tbl, k, data FROM recon_records ORDER BY tbl, k") == got, damage
            assert {c.id: c.status for c in await cf.list_conflicts(store)
                    if c.kind != "reconcile_error"} == book
            await store.write_many([("DELETE FROM conflicts WHERE kind = 'reconcile_error'",
                                     ())])
    finally:
        await store.close()


async def test_stored_bytes_that_do_not_decode_are_a_conflict_and_the_checkpoint_passes_them(
        tmp_path: Path) -> None:
    store, arrivals = await _watch_day(tmp_path)
    try:
        watch = cf.ConflictWatch(store, announce=False)
        await watch.catch_up()
        top = len(arrivals) + 1
        await store.write_many([
            ("INSERT INTO events (pos, node, seq, hash, data, received_ms) VALUES"
             " (?, 'cashier-z', 1, X'00', X'c1c1c1', 0)", (top,)),
            ("UPDATE cursor SET pos = ?", (top,))])
        assert await watch.catch_up() == 1
        [bad] = await cf.list_conflicts(store, kind="reconcile_error")
        assert f"position {top}" in bad.title
        again = StoredReconciler(store)
        await again.open()
        assert again.pos == top  # a restart does not read it again
    finally:
        await store.close()
