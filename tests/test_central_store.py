"""Central's store: atomic, idempotent ingest; quarantine; the gapless pull cursor."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from central.store import (
    CentralStore,
    RevokedNode,
    StaleKey,
    UnknownNode,
    WrongNode,
    prepare_batch,
)
from protocol import codec
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.errors import DecodeError, SignatureError
from protocol.event import ChainError, sign_event
from protocol.hlc import Hlc

KEYS = {n: SigningKey(bytes([i + 1]) * 32) for i, n in enumerate(["c1", "c2", "c3", "c4"])}


def deposit(node: str, seq: int, amount: int) -> dict[str, object]:
    """A valid deposit body (central refuses a known kind with a bad one)."""
    return {"patient_id": f"P-{node}-1", "amount": amount, "method": "cash",
            "receipt_no": f"D-{node}-{seq}"}


def chain(node: str, n: int, *, start: int = 1, prev: bytes = ZERO_HASH,
          key: SigningKey | None = None, amount: int = 100) -> list[bytes]:
    out = []
    for seq in range(start, start + n):
        _, data, prev = sign_event(key or KEYS[node], node=node, seq=seq, prev=prev,
                                   hlc=Hlc(1_000 + seq, 0), operator="op.wang",
                                   kind="account.deposited", body=deposit(node, seq, amount))
        out.append(data)
    return out


@pytest.fixture
async def store(tmp_path: Path) -> CentralStore:
    s = await CentralStore.open(tmp_path / "central.sqlite3")
    for n, k in KEYS.items():
        await s.enrol(n, k.public_key, "cashier")
    yield s  # type: ignore[misc]
    await s.close()


async def test_ingest_stores_batch_and_resend_is_a_noop(store: CentralStore) -> None:
    evs = chain("c1", 5)
    r = await store.ingest("c1", evs)
    assert (r.stored, r.head.seq, r.first_pos, r.last_pos) == (5, 5, 1, 5)
    again = await store.ingest("c1", evs[1:4])
    assert again.stored == 0 and again.head.seq == 5
    assert await store.count() == 5 and await store.cursor() == 5
    # overlapping resend plus new events: only the new ones are stored, positions follow
    more = chain("c1", 3, start=6, prev=r.head.hash)
    r2 = await store.ingest("c1", evs[3:] + more)
    assert (r2.stored, r2.first_pos, r2.last_pos) == (3, 6, 8)


@pytest.mark.parametrize("case", ["gap", "bad_sig", "wrong_node", "garbage", "inner_break"])
async def test_invalid_batches_store_nothing(store: CentralStore, case: str) -> None:
    good = chain("c1", 2)
    await store.ingest("c1", good[:1])
    if case == "gap":
        batch, exc = chain("c1", 3)[2:], ChainError
    elif case == "bad_sig":
        m = codec.decode(good[1])
        m["sig"] = bytes(64)
        batch, exc = [codec.encode(m)], SignatureError
    elif case == "wrong_node":
        batch, exc = chain("c2", 1), WrongNode
    elif case == "garbage":
        batch, exc = [good[1], b"\x93\x01"], DecodeError
    else:  # c1 seq 2, then c1 seq 3 signed on another history
        batch, exc = [good[1], *chain("c1", 1, start=3, prev=b"\x01" * 32)], ChainError
    with pytest.raises(exc):
        await store.ingest("c1", batch)
    assert await store.count() == 1 and (await store.head("c1")).seq == 1
    assert await store.cursor() == 1
    # signed events that break the chain are kept as evidence; the unsigned ones are not
    kept = await store.read("SELECT kind, seq FROM quarantine")
    breaks = {"gap": [("chain_break", 3)], "inner_break": [("chain_break", 3)]}
    assert kept == breaks.get(case, [])


async def test_chain_breaks_become_one_integrity_conflict_each(store: CentralStore) -> None:
    """A fork right after the head central holds, a gap: quarantined once however often the
    counter retries, and raised once each for central IT (never announced to counters)."""
    from central.conflicts import ConflictWatch, list_conflicts

    head = (await store.ingest("c1", chain("c1", 2))).head
    fork = chain("c1", 2, start=3, prev=b"\x02" * 32)  # seq 3 does not follow seq 2 held
    gap = chain("c2", 2, start=5)
    for _ in range(3):  # the counter's daemon retries with backoff
        with pytest.raises(ChainError, match="prev is not the hash of seq 2"):
            await store.ingest("c1", fork)
        with pytest.raises(ChainError, match="batch jumps to 5"):
            await store.ingest("c2", gap)
    q = await store.read("SELECT node, seq, kind, held_hash, reason FROM quarantine ORDER BY id")
    assert [(n, sq, k) for n, sq, k, _, _ in q] == [("c1", 3, "chain_break"),
                                                     ("c2", 5, "chain_break")]
    assert q[0][3] == head.hash and "prev is not the hash" in q[0][4]
    watch = ConflictWatch(store)
    await watch.catch_up()
    await watch.catch_up()
    rows = await list_conflicts(store, kind="chain_break")  # (these bodies are malformed too)
    assert [(r.kind, r.nodes, r.events, r.severity) for r in rows] == [
        ("chain_break", ("c1",), (("c1", 3),), "high"),
        ("chain_break", ("c2",), (("c2", 5),), "high")]
    assert "does not continue its hash chain" in rows[0].explanation
    assert "prev is not the hash of seq 2" in rows[0].explanation
    assert [r.code for r in rows[0].remedies] == ["accept"]
    # the book is not told to counters: central's own chain holds nothing
    assert (await store.head("central")).seq == 0
    # the console shows IT the refused event itself, and why it was refused
    from central.console.data import ConsoleData

    detail = await ConsoleData(store, language="en").detail(rows[0].id)
    assert detail is not None
    [card] = detail.events
    assert (card.ref, card.kind, card.quarantined) == ("c1 #3", "account.deposited",
                                                       "chain_break")
    assert card.lines[0] == "why: c1 seq 3: prev is not the hash of seq 2 central holds"
    assert card.lines[1] == "prev: " + "02" * 8 + "…"


async def test_unknown_and_revoked_nodes_are_refused(store: CentralStore) -> None:
    stranger = SigningKey(b"\x09" * 32)
    with pytest.raises(UnknownNode):
        await store.ingest("nobody", chain("nobody", 1, key=stranger))
    assert await store.revoke("c2")
    # its key ended at its revocation: what it signs later is refused, kept as evidence
    with pytest.raises(StaleKey) as refused:
        await store.ingest("c2", chain("c2", 1))
    assert refused.value.code == "not_authorised" and "c2 seq 1" in refused.value.why
    assert [(n, s) for n, s, _, _ in await store.quarantined()] == [("c2", 1)]
    assert await store.count() == 0
    # a revoked node stays revoked: neither enrol nor rotate gives it a key again
    new = SigningKey(b"\x0a" * 32)
    with pytest.raises(ValueError, match="stays revoked"):
        await store.enrol("c2", new.public_key, "cashier")
    with pytest.raises(ValueError, match="stays revoked"):
        await store.rotate("c2", new.public_key)
    with pytest.raises(RevokedNode):  # (a batch checked with its keys before the revocation)
        await store.ingest("c2", chain("c2", 1), key=KEYS["c2"].public_key,
                           prepared=prepare_batch("c2", KEYS["c2"].public_key, chain("c2", 1)))
    with pytest.raises(ValueError, match="onecard-central rotate c1"):
        await store.enrol("c1", new.public_key, "cashier")  # enrolled: rotate, not enrol


async def test_prepared_batch_checked_with_another_key_is_refused(store: CentralStore) -> None:
    evs = chain("c1", 1)
    prepared = prepare_batch("c1", KEYS["c1"].public_key, evs)
    with pytest.raises(SignatureError):
        await store.ingest("c1", evs, key=KEYS["c2"].public_key, prepared=prepared)


async def test_concurrent_ingests_give_gapless_commit_ordered_positions(
    store: CentralStore,
) -> None:
    """Four nodes push 20 batches each at once: positions 1..N, each batch contiguous."""
    async def push(node: str) -> list[tuple[int, int]]:
        spans, prev, seq = [], ZERO_HASH, 1
        for _ in range(20):
            batch = chain(node, 5, start=seq, prev=prev)
            r = await store.ingest(node, batch)
            spans.append((r.first_pos, r.last_pos))
            prev, seq = r.head.hash, seq + 5
        return spans

    spans = [s for node_spans in await asyncio.gather(*(push(n) for n in KEYS))
             for s in node_spans]
    assert sorted(p for a, b in spans for p in range(a, b + 1)) == list(range(1, 401))
    assert all(b - a == 4 for a, b in spans)
    assert await store.cursor() == 400


