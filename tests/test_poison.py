"""Poison through the real server: an enrolled counter signs bad bodies of every kind.

For each registered kind, signed events with each field missing, mistyped and at its
extremes (``tests/support/poison.py``, about a thousand) are pushed by an enrolled
counter with a valid key over a raw websocket to `onecard-central serve` (a real
process).  Each gets a clear ``invalid_event`` error naming the field; each is kept as
evidence and raised as exactly one integrity conflict; none is stored or relayed.
Meanwhile two honest counters (real sync daemons) keep working and syncing, and central
is restarted after the first, middle and last kind of a group and comes back with the
same book.

The kinds are dealt into :data:`SHARDS` groups of about as many cases each, one test per
group with its own central and counters, so that a parallel run (``make test``) spreads
them over its workers.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections import Counter as Tally
from collections import defaultdict
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from edge_node.ledger import wall_ms
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.domain import REGISTRY
from protocol.event import ChainHead, sign_event
from protocol.hlc import Hlc
from protocol.messages import Ack, Error, decode_message
from protocol.session import EdgeSession
from tests.support.poison import Case, cases
from tests.support.sync_cluster import Central, Counter, offline_work, wait_for

pytestmark = pytest.mark.slow

SHARDS = 5


def shard_kinds(shard: int, all_cases: list[Case]) -> set[str]:
    """The kinds of group ``shard`` of :data:`SHARDS`: largest kind first, each to the
    group with the fewest cases so far (every kind in exactly one group)."""
    load, groups = [0] * SHARDS, [set[str]() for _ in range(SHARDS)]
    for kind, n in sorted(Tally(c.kind for c in all_cases).items(), key=lambda kv: (-kv[1],
                                                                                   kv[0])):
        i = load.index(min(load))
        groups[i].add(kind)
        load[i] += n
    return groups[shard]


async def _push(central: Central, node: str, key: SigningKey, head: ChainHead,
                events: list[bytes], last_seq: int) -> Error | Ack:
    """One connection: handshake as ``node``, push ``events``, return the answer."""
    session = EdgeSession(node, key, bytes.fromhex(central.key_hex), os.urandom(32))
    async with connect(central.url, max_size=4 << 20) as ws:
        async def recv() -> object:
            async with asyncio.timeout(10):
                data = await ws.recv()
            return session.receive(data) if isinstance(data, bytes) else data
        await ws.send(session.send_hello(head))
        await recv()
        await ws.send(session.send_auth())
        await recv()  # welcome
        await ws.send(session.send_push(events, last_seq))
        async with asyncio.timeout(10):
            msg = decode_message(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(msg, Error | Ack), msg
    return msg


async def _poison(central: Central, key: SigningKey, head: ChainHead,
                  batch: list[Case]) -> list[Error | Ack]:
    out = []
    for case in batch:
        _, data, _ = sign_event(key, node="poison-01", seq=head.seq + 1, prev=head.hash,
                                hlc=Hlc(wall_ms(), 0), operator="op.x", kind=case.kind,
                                body=case.body)
        out.append(await _push(central, "poison-01", key, head, [data], head.seq + 1))
    return out


def _book(central: Central) -> dict[str, int]:
    c = sqlite3.connect(f"file:{central.db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(c.execute("SELECT kind, COUNT(*) FROM conflicts GROUP BY kind"))
    finally:
        c.close()


def _level(central: Central, a: Counter, b: Counter, own: int) -> bool:
    """Counter ``a``'s ``own`` events reached central, and all three hold the same."""
    held = central.event_ids()
    return (sum(1 for i in held if i[0] == a.node) == own
            and a.event_ids() == held == b.event_ids())


@pytest.mark.parametrize("shard", range(SHARDS), ids=lambda i: f"kinds{i + 1}of{SHARDS}")
def test_every_kind_poisoned_field_by_field_stops_nobody(tmp_path: Path, shard: int) -> None:
    all_cases = cases()
    kinds = shard_kinds(shard, all_cases)
    assert len(kinds) >= len(REGISTRY.kinds) // SHARDS - 1, kinds
    central = Central.init(tmp_path / "central")
    a = Counter.create(tmp_path, "cashier-01", central)
    b = Counter.create(tmp_path, "cashier-02", central)
    key = SigningKey.generate()
    central.enrol("poison-01", key)
    total = asyncio.run(offline_work(a, patients=1, charges=1))  # type: ignore[arg-type]
    by_kind: dict[str, list[Case]] = defaultdict(list)
    for case in all_cases:
        by_kind[case.kind].append(case)
    assert ("patient.registered", "name: missing") in {(c.kind, c.what)
                                                       for c in by_kind["patient.registered"]}
    assert set(by_kind) == set(REGISTRY.kinds)  # every kind has poison (and one group)
    mine = {k: v for k, v in by_kind.items() if k in kinds}
    central.start()
    for k in (a, b):
        k.start_sync()
    raised = 0
    try:
        ordered = sorted(mine.items())
        restarts = {0, len(ordered) // 2, len(ordered) - 1}  # (each restart costs seconds)
        for i, (kind, batch) in enumerate(ordered):
            answers = asyncio.run(_poison(central, key, ChainHead(), batch))
            for case, ans in zip(batch, answers, strict=True):
                assert isinstance(ans, Error), (case, ans)
                assert ans.code == "invalid_event", (case, ans)
                assert "poison-01 seq 1" in ans.message and kind in ans.message, ans.message
                first = REGISTRY.validate(kind, case.body, "poison-01")[0]
                assert first.message in ans.message, (case, ans.message)  # says what is wrong
            raised += len(batch)
            # honest counters keep working and syncing through it
            total += asyncio.run(offline_work(a, patients=1, charges=0))  # type: ignore
            wait_for(lambda n=total: _level(central, a, b, n), 30, f"honest sync ({kind})")
            wait_for(lambda n=raised: _book(central).get("malformed_event", 0) == n, 30,
                     f"one conflict per poison event ({kind})")
            if i not in restarts:
                continue
            central.stop()  # and central restarts cleanly, with the same book
            central.start()
            wait_for(lambda n=raised: _book(central).get("malformed_event", 0) == n, 30,
                     f"the book after a restart ({kind})")
        # never stored, never relayed; all kept as evidence; nothing else went wrong
        assert not [i for i in central.event_ids() | b.event_ids() if i[0] == "poison-01"]
        c = sqlite3.connect(f"file:{central.db}?mode=ro", uri=True)
        assert c.execute("SELECT COUNT(*) FROM quarantine WHERE kind = 'malformed_event'"
                         ).fetchone()[0] == raised
        c.close()
        assert "reconcile_error" not in _book(central)
        log = (central.dir / "central.log").read_text(encoding="utf-8")
        assert "Traceback" not in log, log[-3000:]
        # the honest counters agree on everything
        assert a.event_ids() == b.event_ids() == central.event_ids()
        assert a.balances() == b.balances()
    finally:
        for k in (a, b):
            k.stop()
        central.stop()


def test_a_bad_event_after_good_ones_stores_the_good_ones(tmp_path: Path) -> None:
    """The events before a poisoned one in a batch are honest work: they are stored."""
    central = Central.init(tmp_path / "central")
    key = SigningKey.generate()
    central.enrol("poison-01", key)
    central.start()
    try:
        prev, batch = ZERO_HASH, []
        bodies = [{"patient_id": "P-p-1", "amount": 500, "method": "cash",
                   "receipt_no": f"D-{i}"} for i in (1, 2)] + [{"patient_id": "P-p-1"}]
        for seq, body in enumerate(bodies, 1):
            _, data, prev = sign_event(key, node="poison-01", seq=seq, prev=prev,
                                       hlc=Hlc(wall_ms(), 0), operator="op",
                                       kind="account.deposited", body=body)
            batch.append(data)
        ans = asyncio.run(_push(central, "poison-01", key, ChainHead(), batch, 3))
        assert isinstance(ans, Error) and ans.code == "invalid_event"
        assert "seq 3" in ans.message and "amount: required" in ans.message
        assert sorted(s for n, s, _ in central.event_ids() if n == "poison-01") == [1, 2]
        wait_for(lambda: _book(central).get("malformed_event", 0) == 1, 10, "the conflict")
    finally:
        central.stop()
