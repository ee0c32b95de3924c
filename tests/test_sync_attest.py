"""Central's attestation of pulled events (protocol 4) and the counter's background check
of each event's own signature: an in-process central on 127.0.0.1, real ledgers."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import serve

from central.server import WS_MAX_SIZE, CentralServer
from central.store import CentralStore, enrol_central
from edge_node.ledger import Ledger
from edge_node.sync.daemon import SyncOptions
from edge_node.sync.sigcheck import SignatureChecker
from protocol.crypto import SigningKey
from protocol.event import Event, decode_event, sign, unsigned_event
from protocol.messages import NONCE_SIZE, Events
from protocol.session import CentralSession
from tests.conftest import FakeClock, node_key
from tests.test_sync_daemon import CENTRAL_KEY, FAST, Central, client, open_counter, until, work

NO_CHECK = dataclasses.replace(FAST, check_signatures=False)
STRANGER = SigningKey(b"S" * 32)


class FaultySession(CentralSession):
    """Central's real session with one fault in the events frames it sends."""

    fault = ""
    target: tuple[str, int] = ("", 0)  # the (node, seq) the "forge" fault replaces

    def send_events(self, after: int, cursor: int, events: list[bytes], more: bool) -> bytes:
        if not events or self.fault == "":
            return super().send_events(after, cursor, events, more)
        if self.fault == "missing":  # protocol 4, but no attestation
            return self._emit(Events(after, cursor, tuple(events), more))
        if self.fault == "other_store":
            real, self._store = self._store, b"\xee" * 16
            try:
                return super().send_events(after, cursor, events, more)
            finally:
                self._store = real
        if self.fault == "other_key":
            real_key, self._key = self._key, STRANGER
            try:
                return super().send_events(after, cursor, events, more)
            finally:
                self._key = real_key
        assert self.fault == "forge"
        return super().send_events(after, cursor, [_forged(e, self.target) for e in events],
                                   more)


def _forged(data: bytes, target: tuple[str, int]) -> bytes:
    """``data``, or, for the target event, the same envelope with another amount signed by
    a stranger's key: chained where the real event is, its signature not its node's."""
    ev = decode_event(data)
    if (ev.node, ev.seq) != target:
        return data
    body = {**ev.body, "amount": 99_999_00}
    return sign(STRANGER, unsigned_event(node=ev.node, seq=ev.seq, prev=ev.prev, hlc=ev.hlc,
                                         operator=ev.operator, kind=ev.kind, body=body))[1]


class FaultyCentral(CentralServer):
    fault = ""
    target: tuple[str, int] = ("", 0)

    def session(self) -> CentralSession:
        s = FaultySession(self.key, os.urandom(NONCE_SIZE), self.versions)
        s.fault, s.target = self.fault, self.target
        return s


Start = Callable[..., Awaitable[Central]]


@pytest.fixture
async def start_central(tmp_path: Path) -> AsyncIterator[Start]:
    """Start an in-process central (a :class:`FaultyCentral` with ``fault``; speaking
    ``versions``); each is stopped and its ledgers closed at teardown."""
    stack: list[tuple[Any, Central]] = []

    async def start(fault: str = "", versions: frozenset[int] | None = None,
                    name: str = "central") -> Central:
        store = await CentralStore.open(tmp_path / f"{name}.sqlite3")
        await enrol_central(store, CENTRAL_KEY)
        app = FaultyCentral(store, CENTRAL_KEY, **({"versions": versions} if versions else {}))
        app.fault = fault
        srv = serve(app.handler, "127.0.0.1", 0, process_request=app.process_request,
                    max_size=WS_MAX_SIZE)
        server = await srv.__aenter__()
        c = Central(store, app, next(iter(server.sockets)).getsockname()[1])
        stack.append((srv, c))
        return c

    yield start
    for srv, c in reversed(stack):
        await srv.__aexit__(None, None, None)
        for x in reversed(c.opened):
            await x.close()
        await c.store.close()


async def _sync(ledgers: list[Ledger], central: Central, opts: SyncOptions,
                until_fn: Callable[[], Awaitable[bool]], what: str) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(client(led, opts, central.url).run(stop)) for led in ledgers]
    try:
        await until(until_fn, 30, what)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def _count(led: Ledger, sql: str) -> int:
    return int((await led.run(lambda c: c.execute(sql).fetchone()))[0])


async def _others(led: Ledger) -> int:
    return await _count(led, f"SELECT count(*) FROM events WHERE node != '{led.node_id}'")


async def _other_ids(led: Ledger) -> list[tuple[str, int]]:
    return [(str(n), int(q)) for n, q in await led.run(lambda c: c.execute(
        "SELECT node, seq FROM events WHERE node != ?", (led.node_id,)).fetchall())]


async def _pending_are_the_others(led: Ledger) -> bool:
    """Every other node's event, and none of this node's, awaits the background check."""
    rows = await led.run(lambda c: c.execute(
        "SELECT e.node = ?, count(*) FROM sig_pending p JOIN events e ON e.rowid = "
        "p.event_rowid GROUP BY 1", (led.node_id,)).fetchall())
    return dict(rows) == {0: await _others(led)}


@pytest.fixture
def verified(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every ``Event.verify_signature`` call in this process from now on (the ledger's
    per-event check at ingest), as ``(node, seq)``: a counting wrapper of the real one."""
    calls: list[tuple[str, int]] = []
    real = Event.verify_signature

    def counted(self: Event, public_key: bytes) -> None:
        calls.append((self.node, self.seq))
        real(self, public_key)

    monkeypatch.setattr(Event, "verify_signature", counted)
    return calls


async def test_attested_pages_skip_per_event_verify_then_are_checked_in_the_background(
    tmp_path: Path, start_central: Start, verified: list[tuple[str, int]]
) -> None:
    central = await start_central()
    a = await open_counter(tmp_path, central, "cashier-a1")
    b = await open_counter(tmp_path, central, "cashier-b1")
    await work(a, 40, "A1")  # 120 events
    await _sync([a], central, NO_CHECK, lambda: _eq(central.store.count(), 120), "a pushed")
    verified.clear()
    await _sync([b], central, NO_CHECK, lambda: _has(b, a, 120), "b has a's events")
    # Stored and folded, and not one of them verified on the way in (no call at all
    # while b pulled); each is marked pending instead.
    assert verified == []
    assert await _pending_are_the_others(b)
    assert await b.signatures_pending_count() == await _others(b) >= 120
    # same events, same state (once the daemon's background pass, stopped here with the
    # daemon, has written the search terms of a's patients)
    assert (await b.index_due(100))[1] == 0 and await b.index_due_count() == 0
    assert await b.dump_projections() == await _rebuilt(b)
    # the daemon's background check verifies them all, with each node's key
    stop = asyncio.Event()
    task = asyncio.create_task(client(b, FAST, central.url).run(stop))
    await until(lambda: _zero(b.signatures_pending_count()), 30, "b's events checked")
    stop.set()
    await task
    assert await b.signature_findings() == []
    assert (await b.verify()).ok


async def test_a_forged_event_central_attests_is_found_and_trust_ends(
    tmp_path: Path, start_central: Start, caplog: pytest.LogCaptureFixture
) -> None:
    central = await start_central("forge")
    assert isinstance(central.app, FaultyCentral)
    a = await open_counter(tmp_path, central, "cashier-a2")
    b = await open_counter(tmp_path, central, "cashier-b2")
    await work(a, 3, "A2")  # 9 events; central's session forges a's last on the way out
    central.app.target = ("cashier-a2", 9)
    await _sync([a], central, FAST, lambda: _eq(central.store.count(), 9), "a pushed")
    caplog.set_level(logging.INFO)
    stop = asyncio.Event()
    tb = asyncio.create_task(client(b, FAST, central.url).run(stop))
    await until(lambda: _findings(b), 30, "the background check's finding")
    (f,) = await b.signature_findings()
    assert (f.node, f.seq) == ("cashier-a2", 9) and "does not verify" in f.reason
    # stored and folded as attested (same events, same state), and verify names it
    held = await b.event_at("cashier-a2", 9)
    assert held is not None and held[0].body["amount"] == 99_999_00
    await until(lambda: _zero(b.index_due_count()), 30, "b's index pass")
    assert await b.dump_projections() == await _rebuilt(b)
    report = await b.verify()
    assert not report.ok and (report.node, report.seq) == ("cashier-a2", 9)
    # told central (its log says so), logged loudly here, shown as the last error
    await until(lambda: _true(any("SECURITY: node=cashier-b2 reports" in r.getMessage()
                                  for r in caplog.records)), 30, "central told")
    assert any(r.levelno == logging.CRITICAL and r.name == "onecard.edge.sigcheck"
               for r in caplog.records)
    await until(lambda: _last_error_has(b, "安全警告：中心担保的 cashier-a2 第 9 条"), 30,
                "b shows it (in its language)")
    assert (await b.signature_findings())[0].reported
    stop.set()
    await tb
    # from now on b verifies every event itself: c's new events are not left pending
    c = await open_counter(tmp_path, central, "cashier-c2")
    await work(c, 2, "C2")
    await _sync([b, c], central, NO_CHECK, lambda: _has(b, c, 6), "b has c's events")
    assert await b.signatures_pending_count() == 0
    assert len(await b.signature_findings()) == 1
    assert sum("Traceback" in r.getMessage() for r in caplog.records) == 0


@pytest.mark.parametrize("fault", ["other_key", "missing", "other_store"])
async def test_a_page_whose_attestation_fails_is_refused_and_nothing_folded(
    tmp_path: Path, start_central: Start, caplog: pytest.LogCaptureFixture, fault: str
) -> None:
    central = await start_central(fault)
    a = await open_counter(tmp_path, central, "cashier-a3")
    b = await open_counter(tmp_path, central, "cashier-b3")
    await work(a, 2, "A3")
    await _sync([a], central, FAST, lambda: _eq(central.store.count(), 6), "a pushed")
    caplog.set_level(logging.INFO)
    seen: list[str] = []  # (each reconnection's welcome clears the last error again)

    async def refused() -> bool:
        err = (await b.sync_state()).last_error
        seen.extend([err] if "AttestationError" in err else [])
        return bool(seen)

    await _sync([b], central, FAST, refused, "b's refusal recorded")
    assert "refused, nothing stored" in seen[0]
    assert ("without its attestation" in seen[0]) == (fault == "missing")
    assert await b.event_count() == 0 and await b.signatures_pending_count() == 0
    assert await b.get("patients", "P-cashier-a3-000001") is None
    assert any("sync offline node=cashier-b3 AttestationError" in r.getMessage()
               for r in caplog.records)


async def test_a_central_without_attestation_gets_protocol_3_and_every_event_verified(
    tmp_path: Path, start_central: Start, caplog: pytest.LogCaptureFixture,
    verified: list[tuple[str, int]]
) -> None:
    old = await start_central(versions=frozenset({1, 2, 3}))  # refuses 4, as before it
    a = await open_counter(tmp_path, old, "cashier-a4")
    b = await open_counter(tmp_path, old, "cashier-b4")
    await work(a, 10, "A4")
    await _sync([a], old, FAST, lambda: _eq(old.store.count(), 30), "a pushed")
    caplog.set_level(logging.INFO)
    verified.clear()
    await _sync([b], old, FAST, lambda: _has(b, a, 30), "b has a's events")
    assert any("refused protocol 4" in r.getMessage() and "speaking protocol 3" in
               r.getMessage() for r in caplog.records)
    # nothing pending: every event was verified before it was stored, each once
    assert await b.signatures_pending_count() == 0 and await _others(b) >= 30
    assert sorted(verified) == sorted(await _other_ids(b))
    assert (await b.verify()).ok
    # the same events from an attesting central give the same state
    new = await start_central(name="central-new")
    await new.store.enrol("cashier-a4", node_key("cashier-a4").public_key, "cashier")
    await new.store.ingest("cashier-a4", await a.own_events_after(0))
    c = await open_counter(tmp_path, new, "cashier-c4")
    await _sync([c], new, NO_CHECK, lambda: _has(c, a, 30), "c has a's events")
    assert await c.signatures_pending_count() >= 30
    assert await _patients(b) == await _patients(c)


async def test_the_background_check_resumes_after_a_restart(
    tmp_path: Path, start_central: Start
) -> None:
    central = await start_central()
    a = await open_counter(tmp_path, central, "cashier-a5")
    b = await open_counter(tmp_path, central, "cashier-b5")
    await work(a, 50, "A5")  # 150 events
    await _sync([a, b], central, NO_CHECK, lambda: _has(b, a, 150), "b has a's events")
    total = await b.signatures_pending_count()
    first = SignatureChecker(b, batch=40)
    assert await first.step() == 40  # then the counter stops mid-check
    first.close()
    await b.close()
    b = await Ledger.open(tmp_path / "cashier-b5.sqlite3", "cashier-b5", node_key("cashier-b5"),
                          clock=FakeClock())
    central.opened.append(b)
    assert await b.signatures_pending_count() == total - 40
    stop = asyncio.Event()
    sync = client(b, FAST, central.url)
    task = asyncio.create_task(sync.run(stop))
    await until(lambda: _zero(b.signatures_pending_count()), 30, "the rest checked")
    stop.set()
    await task
    assert sync.checker.checked == total - 40  # resumed where it stopped, none twice
    assert await b.signature_findings() == [] and (await b.verify()).ok


# -- helpers ---------------------------------------------------------------------------------
async def _has(led: Ledger, other: Ledger, n: int) -> bool:
    return await _count(led, f"SELECT count(*) FROM events WHERE node = '{other.node_id}'") == n


async def _eq(aw: Awaitable[int], n: int) -> bool:
    return await aw == n


async def _zero(aw: Awaitable[int]) -> bool:
    return await aw == 0


async def _true(v: bool) -> bool:
    return v


async def _findings(led: Ledger) -> bool:
    return bool(await led.signature_findings())


async def _last_error_has(led: Ledger, text: str) -> bool:
    return text in (await led.sync_state()).last_error


async def _rebuilt(led: Ledger) -> dict[str, list[tuple[Any, ...]]]:
    """The projections ``led`` would have refolded from its events alone (then put back)."""
    await led.rebuild()
    return await led.dump_projections()


async def _patients(led: Ledger) -> list[tuple[Any, ...]]:
    return (await led.dump_projections())["accounts"]
