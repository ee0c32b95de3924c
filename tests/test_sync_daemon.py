"""The counter's sync client against an in-process central on 127.0.0.1, real ledgers."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import serve

from central.server import WS_MAX_SIZE, CentralServer
from central.store import CentralStore, enrol_central
from edge_node.errors import OperationRefused
from edge_node.ledger import Ledger
from edge_node.service import CounterService
from edge_node.sync.daemon import SyncClient, SyncOptions, backoff_delay
from protocol.crypto import SigningKey
from tests.conftest import FakeClock, node_key

CENTRAL_KEY = SigningKey(b"K" * 32)
FAST = SyncOptions(poll_s=0.05, backoff_base_s=0.05, backoff_max_s=0.2, ping_interval_s=1,
                   ping_timeout_s=1)


class Central:
    def __init__(self, store: CentralStore, app: CentralServer, port: int) -> None:
        self.store, self.app, self.port = store, app, port
        self.url = f"ws://127.0.0.1:{port}/sync"
        # Ledgers and stores a test opened, closed at teardown even when the test failed
        # half-way: each holds a (non-daemon) aiosqlite thread that would keep pytest from
        # exiting after its summary.  Closing twice is harmless.
        self.opened: list[Ledger | CentralStore] = []


@pytest.fixture
async def central(tmp_path: Path) -> AsyncIterator[Central]:
    store = await CentralStore.open(tmp_path / "central.sqlite3")
    await enrol_central(store, CENTRAL_KEY)
    app = CentralServer(store, CENTRAL_KEY)
    async with serve(app.handler, "127.0.0.1", 0, process_request=app.process_request,
                     max_size=WS_MAX_SIZE) as srv:
        c = Central(store, app, next(iter(srv.sockets)).getsockname()[1])
        yield c
    for x in reversed(c.opened):
        await x.close()
    await store.close()


class Recording:
    """A ledger wrapper that records the size of every batch ingested."""

    def __init__(self, ledger: Ledger) -> None:
        self._l = ledger
        self.node_id = ledger.node_id
        self.batches: list[int] = []

    async def ingest(self, encoded: list[bytes], **kw: Any) -> int:
        self.batches.append(len(encoded))
        return await self._l.ingest(encoded, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._l, name)


async def open_counter(tmp_path: Path, central: Central, node: str, enrol: bool = True) -> Ledger:
    if enrol:
        await central.store.enrol(node, node_key(node).public_key, "cashier")
    led = await Ledger.open(tmp_path / f"{node}.sqlite3", node, node_key(node),
                            clock=FakeClock())
    central.opened.append(led)
    return led


async def work(ledger: Ledger, patients: int, tag: str) -> None:
    svc = CounterService(ledger, "op.zhao")
    for i in range(patients):
        await svc.register_patient(name="李四", sex="F", birth_date="1985-01-02",
                                   phone="13900139000", card_no=f"{tag}{i:06d}",
                                   first_deposit=5_000)


async def until(pred: Any, timeout: float, what: str) -> None:
    """Poll ``await pred()`` until true; fail naming ``what`` after ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not await pred():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def client(ledger: Any, opts: SyncOptions = FAST, url: str | list[str] = "") -> SyncClient:
    return SyncClient(ledger, node_key(ledger.node_id), url, CENTRAL_KEY.public_key, opts,
                      rng=random.Random(1))


def test_backoff_is_full_jitter_capped() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(a, 0.5, 30, rng) for a in range(40) for _ in range(5)]
    assert all(0 <= d <= 30 for d in delays)
    assert max(backoff_delay(0, 0.5, 30, rng) for _ in range(100)) <= 0.5
    assert max(delays[-50:]) > 15  # grows to the cap
    assert len({round(d, 6) for d in delays}) > 150  # jittered, not lock-step


async def test_catch_up_after_days_offline_goes_in_bounded_batches(
    tmp_path: Path, central: Central
) -> None:
    a = await open_counter(tmp_path, central, "cashier-a1")
    b = Recording(await open_counter(tmp_path, central, "cashier-b1"))
    await work(a, 400, "A1")  # 1200 events written "while offline"
    stop = asyncio.Event()
    small = SyncOptions(batch_events=100, poll_s=0.05)
    ta = asyncio.create_task(client(a, small, central.url).run(stop))
    await until(lambda: _eq(central.store.count(), 1200), 30, "a pushed")
    assert central.app.metrics.batches >= 12  # ≤ 100 events a push
    tb = asyncio.create_task(client(b, FAST, central.url).run(stop))
    await until(lambda: _eq(b._l.event_count(), 1200), 30, "b caught up")
    assert max(b.batches) <= 500 and sum(b.batches) == 1200 and len(b.batches) >= 3
    st = await b._l.sync_state()
    assert st.online and st.received == 1200 and st.pull_cursor == 1200 and st.pending == 0
    # b's projections now include a's work: a's patients and balances, and, once b's
    # background pass wrote the search terms of a's patients, the same search index
    await until(lambda: _eq(b._l.index_due_count(), 0), 30, "b's index pass")
    assert await b._l.dump_projections() == await a.dump_projections()
    stop.set()
    await asyncio.gather(ta, tb)
    assert not (await a.sync_state()).online
    await a.close()
    await b._l.close()


async def _eq(aw: Any, n: int) -> bool:
    return bool(await aw == n)


async def test_counter_enrolled_later_is_learned_by_reconnecting(
    tmp_path: Path, central: Central
) -> None:
    a = await open_counter(tmp_path, central, "cashier-a2")
    stop = asyncio.Event()
    ta = asyncio.create_task(client(a, FAST, central.url).run(stop))
    await until(lambda: _online(a), 10, "a online")
    # c enrols after a's welcome: a does not know c's key yet
    c = await open_counter(tmp_path, central, "cashier-c2")
    await work(c, 3, "C2")
    tc = asyncio.create_task(client(c, FAST, central.url).run(stop))
    await until(lambda: _eq(a.event_count(), 9), 15, "a has c's events")
    assert "cashier-c2" in await a.node_keys()
    stop.set()
    await asyncio.gather(ta, tc)
    await a.close()
    await c.close()


async def _online(ledger: Ledger) -> bool:
    return (await ledger.sync_state()).online


async def test_status_records_offline_with_reason_when_central_is_unreachable(
    tmp_path: Path, central: Central
) -> None:
    a = await open_counter(tmp_path, central, "cashier-a3")
    await work(a, 2, "A3")
    stop = asyncio.Event()
    t = asyncio.create_task(client(a, FAST, "ws://127.0.0.1:9/sync").run(stop))
    await until(lambda: _has_error(a), 10, "error recorded")
    st = await a.sync_state()
    assert not st.online and st.pending == 6 and "link" in st.last_error
    stop.set()
    await t
    await a.close()


async def _pending(ledger: Ledger) -> int:
    return (await ledger.sync_state()).pending


async def _has_error(ledger: Ledger) -> bool:
    return bool((await ledger.sync_state()).last_error)


async def test_revoked_counter_is_told_why_and_keeps_its_events(
    tmp_path: Path, central: Central
) -> None:
    a = await open_counter(tmp_path, central, "cashier-a4")
    await work(a, 1, "A4")
    await central.store.revoke("cashier-a4")
    stop = asyncio.Event()
    t = asyncio.create_task(client(a, FAST, central.url).run(stop))
    await until(lambda: _has_error(a), 10, "refusal recorded")
    st = await a.sync_state()
    assert "ask IT" in st.last_error and st.pending == 3  # one answer for any refusal
    assert await central.store.count() == 0
    stop.set()
    await t
    await a.close()


async def test_forked_chain_is_not_pushed(tmp_path: Path, central: Central) -> None:
    """Central holds a different seq 1 for this node (e.g. a ledger restored elsewhere)."""
    other = await Ledger.open(tmp_path / "elsewhere.sqlite3", "cashier-a5", node_key("cashier-a5"),
                              clock=FakeClock(1_800_000_000_000))
    central.opened.append(other)
    await central.store.enrol("cashier-a5", node_key("cashier-a5").public_key, "cashier")
    await work(other, 1, "X5")
    stop = asyncio.Event()
    t = asyncio.create_task(client(other, FAST, central.url).run(stop))
    await until(lambda: _eq(central.store.count(), 3), 10, "first history pushed")
    stop.set()
    await t
    await other.close()
    a = await Ledger.open(tmp_path / "a5.sqlite3", "cashier-a5", node_key("cashier-a5"),
                          clock=FakeClock())
    central.opened.append(a)
    await work(a, 2, "A5")
    stop = asyncio.Event()
    t = asyncio.create_task(client(a, FAST, central.url).run(stop))
    await until(lambda: _has_error(a), 10, "fork noticed")
    assert "forked" in (await a.sync_state()).last_error
    assert await central.store.count() == 3
    stop.set()
    await t
    await a.close()


async def test_central_restored_from_an_old_backup_gets_everything_back(
    tmp_path: Path, central: Central
) -> None:
    """Central loses its store: counters re-push own events and re-pull from the start."""
    a = await open_counter(tmp_path, central, "cashier-a6")
    b = await open_counter(tmp_path, central, "cashier-b6")
    await work(a, 2, "A6")
    await work(b, 2, "B6")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client(x, FAST, central.url).run(stop)) for x in (a, b)]
    # (generous: waits for a condition; a loaded CI machine once took over 10 s here)
    await until(lambda: _eq(a.event_count(), 12), 30, "first convergence at a")
    await until(lambda: _eq(b.event_count(), 12), 30, "first convergence at b")
    stop.set()
    await asyncio.gather(*tasks)
    assert (await a.sync_state()).pull_cursor > 0
    # a brand-new central store (same central key): nothing held, cursor 0
    store2 = await CentralStore.open(tmp_path / "restored.sqlite3")
    central.opened.append(store2)
    await enrol_central(store2, CENTRAL_KEY)
    for x in (a, b):
        await store2.enrol(x.node_id, node_key(x.node_id).public_key, "cashier")
    app2 = CentralServer(store2, CENTRAL_KEY)
    async with serve(app2.handler, "127.0.0.1", 0, max_size=WS_MAX_SIZE) as srv:
        url2 = f"ws://127.0.0.1:{next(iter(srv.sockets)).getsockname()[1]}/sync"
        await work(b, 3, "B7")  # new work at b after the loss: b holds 15 events
        stop = asyncio.Event()
        tb = asyncio.create_task(client(b, FAST, url2).run(stop))
        # b alone refills central past a's old cursor (12): a's cursor must not be
        # trusted in this store, or a would skip b's events at positions 7..12
        await until(lambda: _eq(store2.count(), 15), 10, "b re-pushed")
        ta = asyncio.create_task(client(a, FAST, url2).run(stop))
        await until(lambda: _eq(store2.count(), 21), 10, "a re-pushed")
        await until(lambda: _eq(a.event_count(), 21), 10, "a has all of b's work")
        # central holding a's events is not a's knowing it: the acks are on their way
        await until(lambda: _eq(_pending(a), 0), 10, "a's re-pushed events acked")
        stop.set()
        await asyncio.gather(ta, tb)
    assert (await a.sync_state()).pending == 0
    await store2.close()
    await a.close()
    await b.close()


async def test_ledger_behind_central_recovers_its_own_chain_then_continues(
    tmp_path: Path, central: Central
) -> None:
    """A re-installed counter (same key, empty ledger): the daemon gets its own chain back
    from central, refuses own appends until it is back, and the next event is head+1."""
    old = await Ledger.open(tmp_path / "old.sqlite3", "cashier-r1", node_key("cashier-r1"),
                            clock=FakeClock())
    central.opened.append(old)
    await central.store.enrol("cashier-r1", node_key("cashier-r1").public_key, "cashier")
    b = await open_counter(tmp_path, central, "cashier-r2")
    await work(old, 2, "R1")
    await work(b, 1, "R2")
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client(x, FAST, central.url).run(stop)) for x in (old, b)]
    await until(lambda: _eq(central.store.count(), 9), 10, "central holds both")
    stop.set()
    await asyncio.gather(*tasks)
    lost = await old.head()
    await old.close()
    new = await Ledger.open(tmp_path / "new.sqlite3", "cashier-r1", node_key("cashier-r1"),
                            clock=FakeClock())
    central.opened.append(new)
    await new.central_holds(lost.seq)  # what the first welcome records, before any event
    with pytest.raises(OperationRefused) as refused:
        await work(new, 1, "R9")
    assert refused.value.codes == ["ledger.recovering"]
    assert not (await new.verify()).ok
    stop = asyncio.Event()
    t = asyncio.create_task(client(new, FAST, central.url).run(stop))
    await until(lambda: _eq(new.event_count(), 9), 10, "own chain and b's events back")
    assert await new.head() == lost
    assert (await new.verify()).ok
    await work(new, 1, "R3")
    assert (await new.head()).seq == lost.seq + 3  # continues; no seq reused
    await until(lambda: _eq(central.store.count(), 12), 10, "new work pushed")
    assert await central.store.quarantined() == []
    stop.set()
    await t
    await new.close()


async def test_an_idle_pusher_asks_again_while_a_commit_may_be_in_flight(
        tmp_path: Path) -> None:
    """A commit's frames reach the WAL before the commit is published: a query in that
    gap finds nothing though the WAL already changed.  While the WAL was written within
    ``settle_s`` the idle wait lasts one tick (the pusher asks again), so that append
    is pushed in milliseconds, not at the next ``poll_s``; an older WAL waits as before."""
    led = await Ledger.open(tmp_path / "c.sqlite3", "cashier-01", node_key("cashier-01"))
    wal = tmp_path / "watched-wal"  # (a file standing for the WAL: only stat()ed)
    opts = SyncOptions(poll_s=30.0, watch_s=0.005, settle_s=0.05)
    client = SyncClient(led, node_key("cashier-01"), "ws://127.0.0.1:1",
                        SigningKey.generate().public_key, opts, wal_path=str(wal))
    try:
        wal.write_bytes(b"frames")  # written just now, as by a commit not yet published
        sig = client._wal_signature()
        assert sig is not None
        await asyncio.wait_for(client._idle(asyncio.Event(), sig), 5)  # one tick, not 30 s
        old = wal.stat().st_mtime_ns - 10**9  # last written a second ago: settled
        os.utime(wal, ns=(old, old))
        sig = client._wal_signature()
        with pytest.raises(TimeoutError):  # nothing changes: it waits (up to poll_s)
            await asyncio.wait_for(client._idle(asyncio.Event(), sig), 0.3)
        woken = asyncio.Event()
        asyncio.get_running_loop().call_later(0.05, wal.write_bytes, b"more frames")
        await asyncio.wait_for(client._idle(woken, sig), 5)  # the WAL changed: it ends
    finally:
        await led.close()


async def test_a_counter_fails_over_to_the_next_central_instance_at_once(
        tmp_path: Path, central: Central) -> None:
    """``[sync] central_urls``: a dead instance is skipped, and when the instance in use
    dies the next one is tried at once; the backoff (here a minute, so waiting for it
    would fail the test) waits only after every instance failed in a row."""
    a = await open_counter(tmp_path, central, "cashier-f1")
    await work(a, 5, "F1")  # 15 events written offline
    slow = SyncOptions(poll_s=0.05, backoff_base_s=60, backoff_max_s=60, ping_interval_s=1,
                       ping_timeout_s=1)
    stop = asyncio.Event()
    dead = "ws://127.0.0.1:9/sync"
    # a second instance of the same central (one store, as two `serve` on one PostgreSQL)
    second = await serve(central.app.handler, "127.0.0.1", 0, max_size=WS_MAX_SIZE,
                         process_request=central.app.process_request)
    url2 = f"ws://127.0.0.1:{next(iter(second.sockets)).getsockname()[1]}/sync"
    c = client(a, slow, [dead, url2, central.url])
    t = asyncio.create_task(c.run(stop))
    try:
        await until(lambda: _eq(central.store.count(), 15), 15, "the push, past the dead one")
        assert c.url == url2
        second.close()  # the instance in use dies: its sessions drop
        await second.wait_closed()
        await work(a, 2, "F2")
        await until(lambda: _eq(central.store.count(), 21), 15, "the push, failed over")
        assert c.url == central.url
        st = await a.sync_state()
        assert st.online and st.pending == 0
    finally:
        stop.set()
        await t
