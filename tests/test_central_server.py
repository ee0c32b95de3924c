"""Central's websocket server in-process on 127.0.0.1: bad input gets a clean error,
nothing of it is stored, and other counters carry on."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import serve

from central.conflicts import ConflictWatch, list_conflicts
from central.recon_store import StoredView
from central.server import WS_MAX_SIZE, CentralServer
from central.store import CentralStore, enrol_central
from protocol import codec
from protocol.crypto import ZERO_HASH, SigningKey, blake2b_256
from protocol.event import ChainHead, decode_event, sign_event
from protocol.hlc import Hlc
from protocol.messages import (
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    Ack,
    Error,
    Events,
    Hello,
    Pong,
    Welcome,
    decode_message,
)
from protocol.session import EdgeSession

CENTRAL_KEY = SigningKey(b"C" * 32)
KEYS = {n: SigningKey(n.encode().ljust(32, b".")) for n in ("good-01", "bad-01", "gone-01")}


def deposit(node: str, seq: int, amount: int) -> dict[str, object]:
    """A valid deposit body (central refuses a known kind with a bad one)."""
    return {"patient_id": f"P-{node}-1", "amount": amount, "method": "cash",
            "receipt_no": f"D-{node}-{seq}"}


def chain(node: str, n: int, *, start: int = 1, prev: bytes = ZERO_HASH,
          key: SigningKey | None = None, amount: int = 100) -> list[bytes]:
    out = []
    for seq in range(start, start + n):
        _, data, prev = sign_event(key or KEYS[node], node=node, seq=seq, prev=prev,
                                   hlc=Hlc(1_000 + seq, 0), operator="op.li",
                                   kind="account.deposited", body=deposit(node, seq, amount))
        out.append(data)
    return out


@dataclass
class Central:
    store: CentralStore
    app: CentralServer
    port: int

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/sync"


@pytest.fixture
async def central(tmp_path: Path) -> AsyncIterator[Central]:
    store = await CentralStore.open(tmp_path / "central.sqlite3")
    await enrol_central(store, CENTRAL_KEY)
    for n, k in KEYS.items():
        await store.enrol(n, k.public_key, "cashier")
    await store.revoke("gone-01")
    app = CentralServer(store, CENTRAL_KEY, handshake_timeout_s=2)
    async with serve(app.handler, "127.0.0.1", 0, process_request=app.process_request,
                     max_size=WS_MAX_SIZE) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        yield Central(store, app, port)
    await app.close()
    await store.close()


class Client:
    def __init__(self, ws: ClientConnection, node: str, key: SigningKey) -> None:
        self.ws = ws
        self.s = EdgeSession(node, key, CENTRAL_KEY.public_key, os.urandom(32))

    async def recv(self) -> object:
        async with asyncio.timeout(5):
            return self.s.receive(await self.ws.recv())  # type: ignore[arg-type]

    async def handshake(self, head: ChainHead = ChainHead()) -> Welcome:
        await self.ws.send(self.s.send_hello(head))
        await self.recv()
        await self.ws.send(self.s.send_auth())
        w = await self.recv()
        assert isinstance(w, Welcome)
        return w


async def raw_error(ws: ClientConnection) -> Error:
    """The error frame central answers with; then the connection must close."""
    async with asyncio.timeout(5):
        msg = decode_message(await ws.recv())  # type: ignore[arg-type]
        assert isinstance(msg, Error), msg
        await ws.wait_closed()
    return msg


async def connected(central: Central, node: str, key: SigningKey | None = None) -> Client:
    ws = await connect(central.url, max_size=WS_MAX_SIZE)
    c = Client(ws, node, key or KEYS[node])
    await c.handshake()
    return c


async def push_ok(c: Client, events: list[bytes], last_seq: int) -> Ack:
    await c.ws.send(c.s.send_push(events, last_seq))
    ack = await c.recv()
    assert isinstance(ack, Ack)
    return ack


def _hello(node: str = "bad-01", proto: int = PROTOCOL_VERSION) -> bytes:
    return Hello(node, proto, os.urandom(32), 0, ZERO_HASH).encode()


def _bad_sig(data: bytes) -> bytes:
    m = codec.decode(data)
    m["sig"] = bytes(64)
    return codec.encode(m)


BAD_FIRST_FRAMES = {
    "garbage": (b"\xc1\xff\x00garbage", "decode"),
    "truncated": (_hello()[:-5], "decode"),
    "wrong_version": (_hello(proto=99), "version"),
    "oversized": (b"\x00" * (MAX_FRAME_SIZE + 10), "too_large"),
    "not_hello": (Pong(1).encode(), "unexpected"),
}


@pytest.mark.parametrize("case", sorted(BAD_FIRST_FRAMES))
async def test_bad_first_frame_gets_clean_error(central: Central, case: str) -> None:
    good = await connected(central, "good-01")
    frame, code = BAD_FIRST_FRAMES[case]
    async with connect(central.url, max_size=WS_MAX_SIZE) as ws:
        await ws.send(frame)
        err = await raw_error(ws)
    assert err.code == code, err
    assert await central.store.count() == 0
    # the counter already connected is unaffected
    assert (await push_ok(good, chain("good-01", 2), 2)).stored == 2
    await good.ws.close()


async def _refusal_after_auth(central: Central, node: str, key: SigningKey) -> Error:
    """Hello, then the challenge central sends whoever asks, the auth, and its answer."""
    async with connect(central.url, max_size=WS_MAX_SIZE) as ws:
        c = Client(ws, node, key)
        await ws.send(c.s.send_hello(ChainHead()))
        await c.recv()  # a challenge, signed by central: every node id gets one
        await ws.send(c.s.send_auth())
        return await raw_error(ws)


async def test_unknown_revoked_and_wrong_key_nodes_get_one_answer(
        central: Central, caplog: pytest.LogCaptureFixture) -> None:
    """Node ids cannot be listed: the three refusals are the same frame after the same
    steps; only central's log says which it was."""
    caplog.set_level("WARNING", logger="onecard.central")
    answers = [await _refusal_after_auth(central, "nobody-01", SigningKey(b"n" * 32)),
               await _refusal_after_auth(central, "gone-01", KEYS["gone-01"]),
               await _refusal_after_auth(central, "good-01", SigningKey(b"x" * 32))]
    assert {(e.code, e.message) for e in answers} == {("not_authorised", answers[0].message)}
    assert "ask IT" in answers[0].message
    logged = caplog.text
    assert "not enrolled" in logged and "revoked" in logged and "does not verify" in logged
    assert await central.store.count() == 0


async def test_revocation_closes_an_open_session_before_one_more_event_reaches_it(
        central: Central) -> None:
    """An open session of a node revoked meanwhile gets not one more event: the next
    event to relay closes it instead (and an idle one is closed by close_revoked)."""
    bad = await connected(central, "bad-01")
    good = await connected(central, "good-01")
    await bad.ws.send(bad.s.send_pull(0))
    await push_ok(good, chain("good-01", 1), 1)
    first = await bad.recv()
    assert isinstance(first, Events) and len(first.events) == 1
    await central.store.revoke("bad-01")
    await push_ok(good, chain("good-01", 1, start=2, prev=blake2b_256(
        chain("good-01", 1)[0])), 2)
    err = await raw_error(bad.ws)
    assert err.code == "not_authorised"
    idle = await connected(central, "good-01")
    await central.store.revoke("good-01")
    await central.app.close_revoked()
    assert (await raw_error(idle.ws)).code == "not_authorised"


async def test_text_frame_is_refused(central: Central) -> None:
    async with connect(central.url) as ws:
        await ws.send("hello")
        assert (await raw_error(ws)).code == "unexpected"


BAD_PUSHES = ["bad_signature", "other_nodes_event", "chain_break", "equivocation",
              "garbage_event", "revoked_meanwhile"]


@pytest.mark.parametrize("case", BAD_PUSHES)
async def test_bad_push_gets_clean_error_and_stores_nothing(central: Central, case: str) -> None:
    good = await connected(central, "good-01")
    bad = await connected(central, "bad-01")
    first = chain("bad-01", 3)
    await push_ok(bad, first, 3)
    head = await central.store.head("bad-01")
    nxt = chain("bad-01", 2, start=4, prev=head.hash)
    if case == "bad_signature":
        batch, code = [nxt[0], _bad_sig(nxt[1])], "signature"
    elif case == "other_nodes_event":
        batch, code = [nxt[0], *chain("good-01", 1)], "wrong_node"
    elif case == "chain_break":
        batch, code = chain("bad-01", 1, start=5, prev=head.hash), "chain"
    elif case == "equivocation":
        batch, code = chain("bad-01", 3, amount=777)[2:], "equivocation"
    elif case == "garbage_event":
        batch, code = [nxt[0], b"\x81\xa1a\xc1"], "decode"
    else:
        await central.store.revoke("bad-01")
        batch, code = nxt, "revoked"
    before = await central.store.event_ids()
    await bad.ws.send(bad.s.send_push(batch, 5))
    err = await raw_error(bad.ws)
    assert err.code == code, err
    assert err.message  # says what was wrong
    assert await central.store.event_ids() == before  # nothing of the batch stored
    if case in ("equivocation", "chain_break"):  # signed evidence, kept for central IT
        kept = await central.store.read("SELECT kind, node, seq FROM quarantine")
        assert kept == [(case, "bad-01", 3 if case == "equivocation" else 5)]
    else:
        assert await central.store.quarantined() == []
    assert (await push_ok(good, chain("good-01", 1), 1)).stored == 1
    await good.ws.close()


@pytest.mark.parametrize("case", ["equivocation", "chain_break"])
async def test_refused_evidence_is_a_conflict_by_the_time_the_refusal_arrives(
        central: Central, case: str) -> None:
    """A refusal that quarantined evidence has the reconciler raise its conflict at once,
    not whenever some other node's events next arrive."""
    central.app.watch = ConflictWatch(central.store, announce=False)
    bad = await connected(central, "bad-01")
    await push_ok(bad, chain("bad-01", 3), 3)
    async with asyncio.timeout(10):
        await central.app.reconciled()  # the watch has seen everything stored
    assert await list_conflicts(central.store) == []
    head = await central.store.head("bad-01")
    if case == "equivocation":
        batch, code = chain("bad-01", 3, amount=777)[2:], "equivocation"
    else:
        batch, code = chain("bad-01", 1, start=5, prev=head.hash), "chain"
    await bad.ws.send(bad.s.send_push(batch, 5))
    assert (await raw_error(bad.ws)).code == code
    async with asyncio.timeout(10):  # (asked for before the refusal was sent)
        await central.app.reconciled()
    rows = await list_conflicts(central.store, kind=case)
    assert [(r.kind, r.nodes, r.status) for r in rows] == [(case, ("bad-01",), "open")]


async def test_acks_do_not_wait_for_a_slow_reconciler(central: Central) -> None:
    """The ack means "stored": pushes are acked while the reconciler is held, and the
    reconciler then folds all of them in one catch-up, with no further push."""
    watch = central.app.watch = ConflictWatch(central.store, announce=False)
    gate, entered = asyncio.Event(), asyncio.Event()
    folded = watch.catch_up
    calls = 0

    async def held() -> int:
        nonlocal calls
        calls += 1
        entered.set()
        await gate.wait()
        return await folded()

    watch.catch_up = held  # type: ignore[method-assign]
    c = await connected(central, "good-01")
    evs = chain("good-01", 6)
    for i in range(0, 6, 2):
        assert (await push_ok(c, evs[i:i + 2], i + 2)).stored == 2
    async with asyncio.timeout(10):
        await entered.wait()
    top = await central.store.cursor()
    assert await StoredView(central.store).folded_to() < top and calls == 1
    gate.set()
    async with asyncio.timeout(10):
        await central.app.reconciled()
    assert await StoredView(central.store).folded_to() == top == watch.pos
    assert calls == 2  # the first (held) catch-up, and one more for what came meanwhile
    await c.ws.close()


async def test_a_failing_reconciler_is_logged_and_retried_and_never_stops_ingest(
        central: Central, caplog: pytest.LogCaptureFixture) -> None:
    watch = central.app.watch = ConflictWatch(central.store, announce=False)
    central.app.retry_s = 0.01
    folded = watch.catch_up
    failures = 3

    async def flaky() -> int:
        nonlocal failures
        if failures:
            failures -= 1
            raise RuntimeError("a reconciler bug")
        return await folded()

    watch.catch_up = flaky  # type: ignore[method-assign]
    c = await connected(central, "good-01")
    evs = chain("good-01", 4)
    assert (await push_ok(c, evs[:2], 2)).stored == 2
    assert (await push_ok(c, evs[2:], 4)).stored == 2
    async with asyncio.timeout(10):
        await central.app.reconciled()
    assert failures == 0
    assert await StoredView(central.store).folded_to() == await central.store.cursor()
    assert sum("reconciler failed" in r.getMessage() for r in caplog.records) == 3
    await c.ws.close()


async def test_replayed_old_batch_is_a_noop_and_replayed_auth_is_refused(
    central: Central,
) -> None:
    c = await connected(central, "bad-01")
    evs = chain("bad-01", 4)
    assert (await push_ok(c, evs, 4)).stored == 4
    await c.ws.close()
    # a new session (or an attacker replaying captured frames) re-sends the old batch
    c2 = await connected(central, "bad-01")
    ack = await push_ok(c2, evs, 4)
    assert (ack.stored, ack.head_seq) == (0, 4)
    assert await central.store.count() == 4
    await c2.ws.close()
    # a recorded auth frame is useless in another handshake (fresh nonces)
    ws1 = await connect(central.url)
    s1 = EdgeSession("bad-01", KEYS["bad-01"], CENTRAL_KEY.public_key, os.urandom(32))
    await ws1.send(s1.send_hello(ChainHead()))
    s1.receive(await ws1.recv())  # type: ignore[arg-type]
    recorded = s1.send_auth()
    await ws1.close()
    async with connect(central.url) as ws2:
        await ws2.send(Hello("bad-01", PROTOCOL_VERSION, os.urandom(32), 0, ZERO_HASH).encode())
        await ws2.recv()
        await ws2.send(recorded)
        assert (await raw_error(ws2)).code == "not_authorised"


async def test_impostor_without_the_key_is_refused(central: Central) -> None:
    async with connect(central.url) as ws:
        c = Client(ws, "good-01", SigningKey(b"X" * 32))
        await ws.send(c.s.send_hello(ChainHead()))
        await c.recv()
        await ws.send(c.s.send_auth())
        assert (await raw_error(ws)).code == "not_authorised"


async def test_handshake_timeout_closes_silent_connection(central: Central) -> None:
    async with connect(central.url) as ws:
        assert (await raw_error(ws)).code == "timeout"  # 2 s in this fixture


async def test_pull_then_live_events_with_no_gap(central: Central) -> None:
    a = await connected(central, "good-01")
    b = await connected(central, "bad-01")
    await push_ok(a, chain("good-01", 3), 3)
    await b.ws.send(b.s.send_pull(0))
    got = await b.recv()
    assert isinstance(got, Events) and len(got.events) == 3 and not got.more
    head = await central.store.head("good-01")
    await push_ok(a, chain("good-01", 2, start=4, prev=head.hash), 5)
    live = await b.recv()  # pushed to b unasked, continuing from the last cursor
    assert isinstance(live, Events) and live.after == got.cursor and len(live.events) == 2
    # a's own pushes are never sent back to a
    await a.ws.send(a.s.send_pull(0))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await a.ws.recv()


async def test_healthz_and_metrics_on_the_same_port(central: Central) -> None:
    async def get(path: str) -> bytes:
        r, w = await asyncio.open_connection("127.0.0.1", central.port)
        w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        async with asyncio.timeout(5):
            data = await r.read()
        w.close()
        return data

    health = await get("/healthz")
    assert health.startswith(b"HTTP/1.1 200") and health.endswith(b"ok\n")
    c = await connected(central, "good-01")
    await push_ok(c, chain("good-01", 2), 2)
    head = await central.store.head("good-01")
    _, bad, _ = sign_event(KEYS["bad-01"], node="bad-01", seq=1, prev=ZERO_HASH,
                           hlc=Hlc(1_000, 0), operator="op.li", kind="account.deposited",
                           body={"amount": 5})  # signed, but no patient, method or receipt
    b = await connected(central, "bad-01")
    await b.ws.send(b.s.send_push([bad], 1))
    assert (await raw_error(b.ws)).code == "invalid_event"
    await ConflictWatch(central.store, announce=False).catch_up()
    metrics = (await get("/metrics")).decode()
    assert "onecard_connected_counters 1" in metrics
    assert "onecard_events_ingested_total 2" in metrics
    assert 'onecard_conflicts_active{kind="malformed_event"} 1' in metrics
    assert 'onecard_refused_total{code="invalid_event"} 1' in metrics
    assert head.seq == 2
    await c.ws.close()


async def _http(port: int, path: str, headers: str = "") -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
            .encode())
    async with asyncio.timeout(5):
        data = await r.read()
    w.close()
    return data


async def test_metrics_are_for_allowed_addresses_or_the_token_and_omit_revoked_nodes(
        central: Central) -> None:
    listed = (await _http(central.port, "/metrics")).decode()  # 127.0.0.1: allowed by default
    assert listed.startswith("HTTP/1.1 200") and 'node="good-01"' in listed
    assert "gone-01" not in listed  # revoked: not listed
    token = "s3cret-token-0123456789"
    app = CentralServer(central.store, CENTRAL_KEY, metrics_allow=("10.0.0.0/8",),
                        metrics_token=token)
    async with serve(app.handler, "127.0.0.1", 0, process_request=app.process_request) as srv:
        port = next(iter(srv.sockets)).getsockname()[1]
        refused = await _http(port, "/metrics")
        assert refused.startswith(b"HTTP/1.1 403") and b"onecard_" not in refused
        wrong = await _http(port, "/metrics", "Authorization: Bearer nope\r\n")
        assert wrong.startswith(b"HTTP/1.1 403")
        ok = await _http(port, "/metrics", f"Authorization: Bearer {token}\r\n")
        assert ok.startswith(b"HTTP/1.1 200") and b"onecard_cursor" in ok
        assert (await _http(port, "/healthz")).startswith(b"HTTP/1.1 200")  # health stays open


def test_a_flood_of_refusals_from_one_address_is_one_line_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    from central.server import RefusalLog

    now = [0.0]
    refusals = RefusalLog(60, clock=lambda: now[0])
    caplog.set_level("WARNING", logger="onecard.central")
    for i in range(10_000):
        now[0] = i * 0.001
        refusals.note("10.9.9.9", "not_authorised not enrolled", "refused node=x", f"n{i % 7}")
    refusals.note("10.9.9.9", "decode bad frame", "refused: bad frame")  # another reason
    refusals.note("10.1.1.1", "not_authorised not enrolled", "refused node=y")  # another host
    assert len(caplog.records) == 3
    now[0] = 61
    refusals.flush()
    assert len(caplog.records) == 4
    summary = caplog.records[-1].getMessage()
    assert "9999 more" in summary and "10.9.9.9" in summary and "n0, n1" in summary


async def test_pending_is_what_the_counter_said_it_holds_and_central_has_not(
        central: Central) -> None:
    """Node health "pending": the hello's head minus what central stored, as of last seen."""
    events = chain("good-01", 9)
    c = Client(await connect(central.url, max_size=WS_MAX_SIZE), "good-01", KEYS["good-01"])
    last = decode_event(events[-1])
    await c.handshake(ChainHead(9, blake2b_256(events[-1])))
    assert last.seq == 9
    await push_ok(c, events[:4], 4)
    await c.ws.close()  # the link drops before the rest is pushed
    for _ in range(100):
        rec = await central.store.node("good-01")
        assert rec is not None
        if not rec.online:
            break
        await asyncio.sleep(0.02)
    assert (rec.online, rec.head.seq, rec.reported_seq, rec.pending) == (False, 4, 9, 5)
    metrics = await central.app.metrics_text()
    assert 'onecard_counter_pending{node="good-01"} 5' in metrics
    c = await connected(central, "good-01")  # back, but says nothing new: hello head 0 …
    await push_ok(c, events[4:], 9)          # … the pushes alone bring pending to 0
    rec = await central.store.node("good-01")
    assert rec is not None and (rec.head.seq, rec.pending) == (9, 0)
    await c.ws.close()
