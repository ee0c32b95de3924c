"""Central's websocket server: the I/O around :class:`protocol.session.CentralSession`.

One connection per counter, binary frames only.  The handshake (hello, challenge, auth,
welcome) must finish within ``handshake_timeout_s``.  Then the connection runs two
tasks: the *reader* takes pushes (ingested batch by batch, ``ack`` only after the
commit) and the one ``pull``; the *feeder* streams others' events from the pulled
cursor, page by page, and afterwards every newly committed batch of another node as
it lands.  Backpressure is the socket's: the feeder awaits each send, the counter reads
one frame at a time, so neither side buffers more than a frame or two.

Anything the peer gets wrong ends its connection with an ``error`` frame (code and
message) and nothing of the offending batch stored; other connections carry on.
``GET /healthz`` and ``GET /metrics`` (Prometheus text) answer on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from central.config import CentralConfig, load_key
from central.store import CentralStore, enrol_central, prepare_batch
from protocol.crypto import SigningKey
from protocol.errors import ProtocolError
from protocol.event import CENTRAL
from protocol.messages import MAX_FRAME_SIZE, NONCE_SIZE, Auth, Hello, Ping, Pull, Push
from protocol.session import CentralSession, SessionError

log = logging.getLogger("onecard.central.server")

# websockets' own hard limit: frames between MAX_FRAME_SIZE and this get a protocol
# ``error`` (too_large); beyond it websockets closes with 1009 before we see them.
WS_MAX_SIZE = 2 * MAX_FRAME_SIZE
MAX_PAGES_PER_WAKE = 1000


@dataclass(eq=False)
class Conn:
    ws: ServerConnection
    session: CentralSession
    node: str = ""
    node_key: bytes = b""
    sent_cursor: int | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class Metrics:
    ingested: int = 0
    batches: int = 0
    ingest_seconds: float = 0.0
    refused: dict[str, int] = field(default_factory=dict)


class CentralServer:
    """Serves counters from one store with one central key."""

    def __init__(
        self,
        store: CentralStore,
        key: SigningKey,
        *,
        handshake_timeout_s: float = 10.0,
    ) -> None:
        self.store = store
        self.key = key
        self.handshake_timeout_s = handshake_timeout_s
        self.conns: set[Conn] = set()
        self.metrics = Metrics()

    # ----------------------------------------------------------------- plumbing

    async def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return conn.respond(HTTPStatus.OK, "ok\n")
        if request.path == "/metrics":
            return conn.respond(HTTPStatus.OK, await self.metrics_text())
        return None

    async def metrics_text(self) -> str:
        m = self.metrics
        top = await self.store.cursor()
        lines = [
            "# TYPE onecard_connected_counters gauge",
            f"onecard_connected_counters {len(self.conns)}",
            "# TYPE onecard_events_ingested_total counter",
            f"onecard_events_ingested_total {m.ingested}",
            "# TYPE onecard_ingest_batches_total counter",
            f"onecard_ingest_batches_total {m.batches}",
            "# TYPE onecard_ingest_seconds_total counter",
            f"onecard_ingest_seconds_total {m.ingest_seconds:.6f}",
            "# TYPE onecard_cursor gauge",
            f"onecard_cursor {top}",
            "# TYPE onecard_refused_total counter",
        ]
        lines += [f'onecard_refused_total{{code="{c}"}} {n}' for c, n in sorted(m.refused.items())]
        lines.append("# TYPE onecard_counter_lag gauge")
        for node, lag in sorted((await self.store.lags()).items()):
            if node != CENTRAL:
                lines.append(f'onecard_counter_lag{{node="{node}"}} {lag}')
        return "\n".join(lines) + "\n"

    async def _recv(self, conn: Conn, timeout: float | None = None) -> bytes:
        async with asyncio.timeout(timeout):
            data = await conn.ws.recv()
        if isinstance(data, str):
            raise SessionError("text frames are not part of the protocol; send binary frames")
        return data

    async def _refuse(self, conn: Conn, code: str, message: str) -> None:
        self.metrics.refused[code] = self.metrics.refused.get(code, 0) + 1
        log.warning("refused node=%s code=%s %s", conn.node or "?", code, message)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await conn.ws.send(conn.session.send_error(code, message))
                await conn.ws.close(1008 if code != "internal" else 1011, code)

    # ----------------------------------------------------------------- handler

    async def handler(self, ws: ServerConnection) -> None:
        conn = Conn(ws, CentralSession(self.key, os.urandom(NONCE_SIZE)))
        feeder: asyncio.Task[None] | None = None
        registered = False
        try:
            async with asyncio.timeout(self.handshake_timeout_s):
                await self._handshake(conn)
            self.conns.add(conn)
            registered = True
            await self.store.touch(conn.node, online=True)
            log.info("connected node=%s", conn.node)
            feeder = asyncio.create_task(self._feed(conn))
            await self._read_loop(conn)
        except ProtocolError as exc:
            await self._refuse(conn, exc.code, str(exc))
        except TimeoutError:
            await self._refuse(conn, "timeout", "the handshake did not finish in time")
        except ConnectionClosed:
            pass
        except Exception as exc:  # never let one connection's bug take the server down
            log.exception("internal error node=%s", conn.node or "?")
            await self._refuse(conn, "internal", f"central failed: {type(exc).__name__}")
        finally:
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(BaseException):
                    await feeder
            if registered:
                self.conns.discard(conn)
                with contextlib.suppress(Exception):
                    await self.store.touch(conn.node, online=False)
                log.info("disconnected node=%s", conn.node)

    async def _handshake(self, conn: Conn) -> None:
        s = conn.session
        hello = s.receive(await self._recv(conn))
        assert isinstance(hello, Hello)
        conn.node = hello.node
        rec = await self.store.node(hello.node)
        if rec is None:
            raise _Refusal("unknown_node", f"{hello.node} is not enrolled at central")
        if rec.revoked:
            raise _Refusal("revoked", f"{hello.node} has been revoked")
        conn.node_key = rec.pubkey
        await conn.ws.send(s.send_challenge(rec.pubkey))
        auth = s.receive(await self._recv(conn))
        assert isinstance(auth, Auth)
        head = await self.store.head(conn.node)
        await conn.ws.send(
            s.send_welcome(head, await self.store.cursor(), await self.store.directory())
        )

    async def _read_loop(self, conn: Conn) -> None:
        s = conn.session
        while not s.closed:
            data = await self._recv(conn)
            msg = s.receive(data)
            if isinstance(msg, Push):
                t0 = time.perf_counter()
                prepared = await asyncio.to_thread(
                    prepare_batch, conn.node, conn.node_key, msg.events
                )
                result = await self.store.ingest(
                    conn.node, list(msg.events), key=conn.node_key, prepared=prepared
                )
                await conn.ws.send(s.send_ack(msg.batch, result.stored, result.head))
                self.metrics.batches += 1
                self.metrics.ingested += result.stored
                self.metrics.ingest_seconds += time.perf_counter() - t0
                if result.stored:
                    log.info(
                        "ingested node=%s stored=%d head=%d pos=%d..%d",
                        conn.node,
                        result.stored,
                        result.head.seq,
                        result.first_pos,
                        result.last_pos,
                    )
                    self._notify(conn.node)
            elif isinstance(msg, Pull):
                conn.sent_cursor = min(msg.cursor, await self.store.cursor())
                await self.store.touch(conn.node, pull_cursor=msg.cursor)
                conn.wake.set()
            elif isinstance(msg, Ping):
                await conn.ws.send(s.send_pong(msg.n))

    def _notify(self, source: str) -> None:
        for c in self.conns:
            if c.node != source and c.sent_cursor is not None:
                c.wake.set()

    async def _feed(self, conn: Conn) -> None:
        """Stream others' events to ``conn`` from its pull cursor, then as they commit."""
        try:
            await self._feed_loop(conn)
        except (ConnectionClosed, asyncio.CancelledError):
            raise
        except Exception:
            log.exception("feeder failed node=%s", conn.node)
            await conn.ws.close(1011, "internal")

    async def _feed_loop(self, conn: Conn) -> None:
        s = conn.session
        while not s.closed:
            await conn.wake.wait()
            conn.wake.clear()
            lag_cursor = conn.sent_cursor
            for _ in range(MAX_PAGES_PER_WAKE):
                assert conn.sent_cursor is not None
                page = await self.store.events_after(conn.sent_cursor, exclude_node=conn.node)
                if not page.events:
                    # Only the node's own events lie ahead: nothing to send, but it is
                    # up to date (for the lag figure), so record the position.
                    lag_cursor = page.cursor
                    break
                await conn.ws.send(s.send_events(page.after, page.cursor, page.events, page.more))
                conn.sent_cursor = lag_cursor = page.cursor
                if not page.more:
                    break
            else:
                conn.wake.set()  # more to send: go round again without waiting
            if lag_cursor is not None:
                with contextlib.suppress(Exception):
                    await self.store.touch(conn.node, pull_cursor=lag_cursor)


class _Refusal(ProtocolError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


async def run_server(
    config: CentralConfig,
    *,
    stop: asyncio.Event | None = None,
    on_listening: object = None,
) -> None:
    """Open the store and serve until ``stop`` is set (or forever)."""
    key = load_key(config.key_file)
    store = await CentralStore.open(config.db)
    try:
        await enrol_central(store, key)
        await store.mark_all_offline()
        app = CentralServer(store, key, handshake_timeout_s=config.handshake_timeout_s)
        async with serve(
            app.handler,
            config.host,
            config.port,
            process_request=app.process_request,
            max_size=WS_MAX_SIZE,
            max_queue=4,
            compression=None,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=5,
        ) as server:
            port = _port(server)
            print(f"listening on ws://{config.host}:{port}", flush=True)
            log.info("listening host=%s port=%d db=%s", config.host, port, config.db)
            if callable(on_listening):
                on_listening(port)
            if stop is None:
                await asyncio.Future()
            else:
                await stop.wait()
    finally:
        await store.close()


def _port(server: Server) -> int:
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    raise RuntimeError("the server has no listening socket")
