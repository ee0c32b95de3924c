"""A conflict's life at central beyond detection: announced, withdrawn, resolved once.

- Events arriving late can show a conflict was none (the deposit made offline before
  the charge that looked like an overdraft): central withdraws its announcement with a
  ``conflict.withdrawn`` and the counter's "open conflict" notice goes away; a restart,
  which replays the transient conflict, announces nothing again.
- Central's chain has several writers (the server's announcements, the CLI, consoles):
  each signs on the head it reads inside the store's write transaction, so concurrent
  writers through separate connections never fork it, and two people resolving the same
  conflict at once sign one remedy.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from central.conflicts import (
    ConflictWatch,
    ResolveError,
    get_conflict,
    list_conflicts,
    raised_body,
    resolve,
    sign_central,
)
from central.reconcile import reconcile
from central.store import CentralStore, enrol_central
from edge_node.notices import notices
from protocol.crypto import SigningKey
from protocol.event import CENTRAL, ChainHead, Event, decode_event, verify_chain
from tests.support import domain
from tests.support.central_seed import Chains
from tests.support.central_seed import node_key as seed_key
from tests.test_reconcile import T0, History


def _open_codes(events: list[Event], pid: str) -> list[str]:
    """The notice codes a counter holding ``events`` shows for ``pid``."""
    state = domain.fold(events)
    mine = [e for e in events if pid in domain.patients_of(e.kind, e.body)]
    cards = [c for c in state.cards.values() if c.patient_id == pid]
    return [n.code for n in notices(state.patients[pid], state.account(pid), cards, mine)]


def test_withdrawn_closes_the_open_notice_and_a_newer_raise_opens_it_again() -> None:
    h = History()
    h.patient("cashier-01", 0, "P-1", "8600000001", 1_000)
    h.charge("cashier-02", 100, "P-1", "C-1", 5_000)
    [c] = reconcile(h.events)
    body = raised_body(c)
    h.add(CENTRAL, 200, "conflict.raised", body, operator="reconciler")
    assert _open_codes(h.events, "P-1") == ["open"]
    withdrawn = {k: body[k] for k in ("conflict_id", "conflict_kind", "patient_id", "patients")}
    h.add(CENTRAL, 300, "conflict.withdrawn", {**withdrawn, "reason": "covered"},
          operator="reconciler")
    assert _open_codes(h.events, "P-1") == []
    assert domain.fold(h.events).accounts == domain.fold(h.events[:-2]).accounts  # no money
    h.add(CENTRAL, 400, "conflict.raised", body, operator="reconciler")
    assert _open_codes(h.events, "P-1") == ["open"]
    # what central reads of its own announcements: neither a conflict nor a resolution
    assert [x.kind for x in reconcile(h.events)] == ["overdraft"]


async def _central_events(store: CentralStore) -> list[Event]:
    rows = await store.read("SELECT data FROM events WHERE node = ? ORDER BY seq", (CENTRAL,))
    return [decode_event(bytes(d)) for (d,) in rows]


async def _all_events(store: CentralStore) -> list[Event]:
    return [decode_event(bytes(d)) for (d,) in await store.read("SELECT data FROM events")]


async def test_a_late_deposit_withdraws_the_announced_overdraft_once(tmp_path: Path) -> None:
    key = SigningKey.generate()
    ch = Chains()
    ch.patient("cashier-01", T0, "P-1", "8600000001", 1_000, "张三")
    ch.add("cashier-01", T0 + 50, "account.deposited",
           {"patient_id": "P-1", "amount": 5_000, "method": "cash", "receipt_no": "D-2"})
    ch.charge("cashier-02", T0 + 100, "P-1", "C-1", 5_000, "8600000001")
    store = await CentralStore.open(tmp_path / "central.sqlite3")
    try:
        await enrol_central(store, key)
        for node in ("cashier-01", "cashier-02"):
            await store.enrol(node, seed_key(node).public_key, "cashier")
        watch = ConflictWatch(store)
        await store.ingest("cashier-01", ch.encoded["cashier-01"][:3])  # the deposit waits
        await store.ingest("cashier-02", ch.encoded["cashier-02"])
        await watch.catch_up()
        [raised] = await _central_events(store)
        [row] = await list_conflicts(store)
        assert (raised.kind, raised.body["conflict_id"], row.status) == (
            "conflict.raised", row.id, "open")
        assert _open_codes(await _all_events(store), "P-1") == ["open"]

        await store.ingest("cashier-01", ch.encoded["cashier-01"][3:])  # cashier-01 syncs
        await watch.catch_up()
        kinds = [(e.seq, e.kind, e.body["conflict_id"]) for e in await _central_events(store)]
        assert kinds == [(1, "conflict.raised", row.id), (2, "conflict.withdrawn", row.id)]
        assert (await get_conflict(store, row.id)).status == "withdrawn"  # type: ignore[union-attr]
        assert _open_codes(await _all_events(store), "P-1") == []
        await watch.catch_up()  # nothing new: nothing said
        restarted = ConflictWatch(store)  # replays the transient overdraft page by page
        await restarted.catch_up(page=4)
        assert len(await _central_events(store)) == 2
        assert (await get_conflict(store, row.id)).status == "withdrawn"  # type: ignore[union-attr]
        with pytest.raises(ResolveError, match="no remedy|already"):
            await resolve(store, key, row.id, "nonexistent", reason="x", operator="it.li")
    finally:
        await store.close()


async def test_a_catch_up_under_a_steady_stream_of_pushes_ends_and_announces(
        tmp_path: Path) -> None:
    """A catch-up ends at the cursor it saw when it started (a page past it at most), so
    pushes stored while it runs cannot keep it going, and what it found is announced; the
    next catch-up folds the rest."""
    ch = Chains()
    ch.patient("cashier-01", T0, "P-1", "8600000001", 1_000, "张三")
    ch.charge("cashier-02", T0 + 100, "P-1", "C-1", 5_000, "8600000001")
    for i in range(40):  # a counter's stream of visits
        ch.patient("cashier-02", T0 + 200 + 10 * i, f"P-S{i}", f"86100000{i:02d}", 500,
                   f"病人{i}")
    later = ch.encoded["cashier-02"][1:]
    store = await CentralStore.open(tmp_path / "central.sqlite3")
    try:
        await enrol_central(store, SigningKey.generate())
        for node in ("cashier-01", "cashier-02"):
            await store.enrol(node, seed_key(node).public_key, "cashier")
        await store.ingest("cashier-01", ch.encoded["cashier-01"])
        await store.ingest("cashier-02", ch.encoded["cashier-02"][:1])  # the overdraft
        watch = ConflictWatch(store)
        until = await store.cursor()
        stream = iter(range(0, len(later), 3))
        read = store.events_since

        async def while_pushes_arrive(after: int, limit: int = 5000
                                      ) -> list[tuple[int, bytes, int]]:
            i = next(stream, None)  # a push of 3 events lands before each page is read
            if i is not None:
                await store.ingest("cashier-02", later[i:i + 3])
            return await read(after, limit)

        store.events_since = while_pushes_arrive  # type: ignore[method-assign]
        fed = await watch.catch_up(page=2)
        assert until <= watch.pos <= until + 2 and fed == watch.pos
        assert watch.pos < await store.cursor()  # the rest is the next catch-up's
        [raised] = await _central_events(store)  # announced at its end
        [row] = await list_conflicts(store)
        assert (raised.kind, raised.body["conflict_id"], row.kind) == (
            "conflict.raised", row.id, "overdraft")
        store.events_since = read  # type: ignore[method-assign]
        await watch.catch_up()
        assert watch.pos == await store.cursor()
    finally:
        await store.close()


async def test_concurrent_writers_never_fork_centrals_chain(tmp_path: Path) -> None:
    """Two connections (as the server and the CLI are) append at once, 20 batches each."""
    key = SigningKey.generate()
    path = tmp_path / "central.sqlite3"
    a = await CentralStore.open(path)
    await enrol_central(a, key)
    b = await CentralStore.open(path)
    await enrol_central(b, key)
    try:
        async def writer(store: CentralStore, tag: str) -> None:
            for i in range(20):
                items = [("conflict.accepted", {"conflict_id": f"overdraft-{tag}{i:011x}",
                                                "reason": f"batch {tag}{i}"})] * (1 + i % 3)
                await sign_central(store, key, items, operator=f"it.{tag}")

        await asyncio.gather(writer(a, "a"), writer(b, "b"))
        events = await _central_events(a)
        assert len(events) == 2 * sum(1 + i % 3 for i in range(20))
        head = verify_chain(events, key.public_key, ChainHead())  # gapless, linked, signed
        assert head == await a.head(CENTRAL) == await b.head(CENTRAL)
        assert await a.quarantined() == []
        clocks = [e.hlc for e in events]
        assert clocks == sorted(clocks) and len(set(clocks)) == len(clocks)  # seq order = time
    finally:
        await b.close()
        await a.close()


async def test_two_people_resolving_one_conflict_sign_one_remedy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both read the conflict open, then both sign: the check under the write lock lets
    one remedy through.  (Both reads are held until each has read: on a busy machine
    one resolve could otherwise finish before the other reads, which its first check
    refuses before the lock: right, but not this test's case.)"""
    import central.conflicts as cf_module

    real_get = cf_module.get_conflict
    read = 0
    both_read = asyncio.Event()

    async def read_together(store: CentralStore, cid: str) -> Any:
        nonlocal read
        row = await real_get(store, cid)
        read += 1
        if read == 2:
            both_read.set()
        await asyncio.wait_for(both_read.wait(), 30)
        return row
    monkeypatch.setattr(cf_module, "get_conflict", read_together)
    key = SigningKey.generate()
    ch = Chains()
    ch.double_spend(T0)
    path = tmp_path / "central.sqlite3"
    a = await CentralStore.open(path)
    await enrol_central(a, key)
    for node in ("cashier-01", "cashier-02"):
        await a.enrol(node, seed_key(node).public_key, "cashier")
        await a.ingest(node, ch.encoded[node])
    await ConflictWatch(a, announce=False).catch_up()
    b = await CentralStore.open(path)
    await enrol_central(b, key)
    try:
        [row] = await list_conflicts(a)
        results = await asyncio.gather(
            resolve(a, key, row.id, "debt", reason="owed, told the family", operator="it.li"),
            resolve(b, key, row.id, "debt", reason="owed", operator="it.wang"),
            return_exceptions=True)
        done = [r for r in results if isinstance(r, list)]
        refused = [r for r in results if isinstance(r, ResolveError)]
        assert len(done) == 1 and len(refused) == 1, results
        assert "resolved meanwhile" in str(refused[0])
        [remedy] = await _central_events(a)
        assert remedy.kind == "debt.recorded" and remedy.body["conflict_id"] == row.id
        final = await get_conflict(b, row.id)
        assert final is not None and final.status == "resolved"
        assert final.resolved_event == f"{CENTRAL} #{remedy.seq}"
        assert final.resolved_by == remedy.operator
    finally:
        await b.close()
        await a.close()
