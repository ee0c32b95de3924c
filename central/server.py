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

With ``tls_cert``/``tls_key`` configured the port speaks TLS only: ``wss://`` for counters,
``https://`` for ``/healthz`` and ``/metrics`` (:mod:`central.tls`); without them, plain
``ws://``/``http://`` (the demo, loopback, or a TLS proxy in front).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hmac
import ipaddress
import logging
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from central.config import CentralConfig, CentralConfigError, load_key
from central.conflicts import ConflictWatch
from central.privacy import Granter
from central.recon_store import StoredView
from central.reconcile import ReconcileConfig
from central.store import (
    NOT_AUTHORISED,
    CentralStore,
    Keys,
    NodeRecord,
    Prepared,
    enrol_central,
    prepare_events,
)
from protocol.crypto import SigningKey
from protocol.errors import ProtocolError
from protocol.event import CENTRAL
from protocol.hlc import Hlc
from protocol.messages import (
    MAX_FRAME_SIZE,
    NONCE_SIZE,
    SUPPORTED_VERSIONS,
    Auth,
    Hello,
    Ping,
    Pull,
    Push,
    SnapshotGet,
)
from protocol.privacy import KeyFileError, PatientKeys
from protocol.session import AuthError, CentralSession, RemoteError, SessionError

log = logging.getLogger("onecard.central.server")

# websockets' own hard limit: frames between MAX_FRAME_SIZE and this get a protocol
# ``error`` (too_large); beyond it websockets closes with 1009 before we see them.
WS_MAX_SIZE = 2 * MAX_FRAME_SIZE
MAX_PAGES_PER_WAKE = 1000
PIPELINE = 4  # pushes checked ahead of the commit, per connection
#: how often serve looks for events other processes stored (the CLI, the console; another
#: instance on PostgreSQL tells at once by NOTIFY) and whether the reconciler is free
WATCH_INTERVAL_S = float(os.environ.get("ONECARD_CENTRAL_WATCH_S", "1.0"))


@dataclass(eq=False)
class Conn:
    ws: ServerConnection
    session: CentralSession
    node: str = ""
    node_key: Keys = b""  # the node's keys over its seqs, once authenticated
    reported_seq: int = 0  # the counter's own head, as its hello said
    # The counter holds less of its own chain than central (re-installed, restored from
    # an old backup): its own events are fed back to it along with everyone's.
    recovering: bool = False
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
        executor: Executor | None = None,
        prepare_parts: int = 1,
        watch: ConflictWatch | None = None,
        metrics_allow: tuple[str, ...] = ("127.0.0.1", "::1"),
        metrics_token: str = "",
        refusal_interval_s: float = 60.0,
        granter: Granter | None = None,
        key_file: Path | None = None,
        versions: frozenset[int] = SUPPORTED_VERSIONS,
        snapshot_dir: Path | None = None,
        reconciler: ReconcilerProcess | None = None,
    ) -> None:
        #: where ``onecard-central snapshot`` leaves the counters' snapshots (None: none
        #: given: a counter asking is told there is none)
        self.snapshot_dir = snapshot_dir
        #: the protocol versions spoken; from 4 on, every events frame is attested
        #: (central's signature over its events' hashes: protocol.session)
        self.versions = versions
        self.key_file = key_file  # re-read when central's key is rotated (rotate-central)
        self.watch = watch
        #: gives each counter key its patient keys as it connects (central.privacy)
        self.granter = granter
        self.metrics_allow = tuple(ipaddress.ip_network(a, strict=False) for a in metrics_allow)
        self.metrics_token = metrics_token
        self.refusals = RefusalLog(refusal_interval_s)
        self._poked = asyncio.Event()
        # One reconciliation at a time: concurrent catch-ups (a commit per connected counter,
        # plus the poll for other processes' events) would each decode the same new rows.
        self._reconciling = asyncio.Lock()
        self._wanted = asyncio.Event()  # a catch-up is asked for (the reconciler task)
        self._idle = asyncio.Event()  # … and every one asked for is done
        self._idle.set()
        self._reconcile_task: asyncio.Task[None] | None = None
        self._closed = False  # (:meth:`close`: no catch-up is started after it)
        #: the reconciler's own process, when serving (:func:`run_server`); else
        #: :meth:`reconcile_soon` runs catch-ups in a task of this process
        self.reconciler = reconciler
        self.retry_s = WATCH_INTERVAL_S  # a failed catch-up is tried again after this
        self.executor = executor
        self.prepare_parts = max(1, prepare_parts)
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
            if not self._may_read_metrics(conn, request):
                self.refusals.note(_address(conn), "metrics", "/metrics not allowed")
                return conn.respond(HTTPStatus.FORBIDDEN, "forbidden\n")
            return conn.respond(HTTPStatus.OK, await self.metrics_text())
        return None

    def _may_read_metrics(self, conn: ServerConnection, request: Request) -> bool:
        """From an address in ``metrics_allow``, or with ``Authorization: Bearer <token>``."""
        if self.metrics_token:
            given = request.headers.get("Authorization", "")
            if hmac.compare_digest(given.encode(), f"Bearer {self.metrics_token}".encode()):
                return True
        try:
            addr = ipaddress.ip_address(_address(conn))
        except ValueError:
            return False
        return any(addr in net for net in self.metrics_allow)

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
            "# TYPE onecard_reconciler_behind gauge",  # events stored, not yet reconciled
            f"onecard_reconciler_behind {max(0, top - await StoredView(self.store).folded_to())}",
            "# TYPE onecard_refused_total counter",
        ]
        lines += [f'onecard_refused_total{{code="{c}"}} {n}' for c, n in sorted(m.refused.items())]
        revoked = {n.id for n in await self.store.nodes() if n.revoked}
        lines.append("# TYPE onecard_counter_lag gauge")
        for node, lag in sorted((await self.store.lags()).items()):
            if node != CENTRAL and node not in revoked:
                lines.append(f'onecard_counter_lag{{node="{node}"}} {lag}')
        lines.append("# TYPE onecard_conflicts_active gauge")  # open or acknowledged
        for kind, n in await self.store.read(
                "SELECT kind, COUNT(*) FROM conflicts WHERE status IN ('open', 'acknowledged')"
                " GROUP BY kind ORDER BY kind"):
            lines.append(f'onecard_conflicts_active{{kind="{kind}"}} {n}')
        lines.append("# TYPE onecard_counter_pending gauge")
        for rec in await self.store.nodes():
            if rec.id != CENTRAL and not rec.revoked:
                lines.append(f'onecard_counter_pending{{node="{rec.id}"}} {rec.pending}')
        return "\n".join(lines) + "\n"

    async def _recv(self, conn: Conn, timeout: float | None = None) -> bytes:
        async with asyncio.timeout(timeout):
            data = await conn.ws.recv()
        if isinstance(data, str):
            raise SessionError("text frames are not part of the protocol; send binary frames")
        return data

    async def _refuse(self, conn: Conn, code: str, message: str, why: str = "") -> None:
        self.metrics.refused[code] = self.metrics.refused.get(code, 0) + 1
        self.refusals.note(_address(conn.ws), f"{code} {why or message}",
                           f"refused node={conn.node or '?'} code={code} {why or message}",
                           conn.node[:64])
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await conn.ws.send(conn.session.send_error(code, message))
                await conn.ws.close(1008 if code != "internal" else 1011, code)

    # ----------------------------------------------------------------- handler

    async def handler(self, ws: ServerConnection) -> None:
        conn = Conn(ws, self.session())
        feeder: asyncio.Task[None] | None = None
        registered = False
        try:
            async with asyncio.timeout(self.handshake_timeout_s):
                await self._handshake(conn)
            self.conns.add(conn)
            registered = True
            await self.store.touch(conn.node, online=True, reported_seq=conn.reported_seq)
            log.info("connected node=%s", conn.node)
            feeder = asyncio.create_task(self._feed(conn))
            await self._read_loop(conn)
        except RemoteError as exc:
            if exc.code != "attestation":
                await self._refuse(conn, exc.code, str(exc), getattr(exc, "why", ""))
            else:  # a counter found an event we attested whose own signature fails
                log.critical("SECURITY: node=%s reports: %s", conn.node or "?", exc.message)
        except ProtocolError as exc:
            await self._refuse(conn, exc.code, str(exc), getattr(exc, "why", ""))
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

    def session(self) -> CentralSession:
        """A new connection's session: it attests the events frames it sends."""
        return CentralSession(self.key, os.urandom(NONCE_SIZE), self.versions)

    async def _handshake(self, conn: Conn) -> None:
        """Hello, challenge, auth, welcome.

        Unknown, revoked and wrong-key nodes get one answer after the same steps: each is
        challenged (an unknown or revoked one against a random key, so no answer can
        verify) and refused with :data:`NOT_AUTHORISED`, so a client cannot list which
        node ids exist.  Central's own log says which it was.
        """
        s = conn.session
        hello = s.receive(await self._recv(conn))
        assert isinstance(hello, Hello)
        conn.node = hello.node
        conn.reported_seq = hello.head_seq
        rec = await self.store.node(hello.node)
        why = ("not enrolled" if rec is None else "revoked" if rec.revoked else "")
        await conn.ws.send(s.send_challenge(os.urandom(32) if why or rec is None
                                            else rec.pubkey,
                                            await self.store.rotation_statements()))
        try:
            auth = s.receive(await self._recv(conn))
        except AuthError:
            why = why or "its answer does not verify with the enrolled key"
        if why or rec is None:
            raise _Refusal("not_authorised", NOT_AUTHORISED, why or "not enrolled")
        assert isinstance(auth, Auth)
        await self._grant(conn.node, rec)
        conn.node_key = await self.store.key_spans(conn.node)
        head = await self.store.head(conn.node)
        conn.recovering = hello.head_seq < head.seq
        if conn.recovering:
            log.warning("node=%s is recovering: it holds its chain to seq %d, central to %d",
                        conn.node, hello.head_seq, head.seq)
        await conn.ws.send(
            s.send_welcome(
                head,
                await self.store.cursor(),
                await self.store.directory(),
                await self.store.store_id(),
            )
        )

    async def _grant(self, node: str, rec: NodeRecord) -> None:
        """Grant the counter's current key its patient keys if it lacks them (before the
        welcome, so it pulls them in this session).  A failure is logged, never a refusal:
        the counter syncs all the same and is granted at its next connection."""
        if self.granter is None:
            return
        try:
            state = self.watch.reconciler.state if self.watch is not None else None
            await self.granter.ensure(node, rec.pubkey, rec.role, state)
        except Exception:
            log.exception("node=%s: could not grant its patient keys (next connection "
                          "tries again)", node)

    async def _read_loop(self, conn: Conn) -> None:
        """Read frames; pushes are checked as they arrive and committed in order.

        Checking (decode + verify, in worker threads) of the next batch overlaps the
        commit of the previous one; at most ``PIPELINE`` pushes wait, so a fast
        counter cannot make central buffer without bound.
        """
        s = conn.session
        queue: asyncio.Queue[tuple[Push, asyncio.Future[list[Prepared]]] | None] = asyncio.Queue(
            PIPELINE
        )
        committer = asyncio.create_task(self._commit_loop(conn, queue))
        try:
            while not s.closed:
                reader = asyncio.ensure_future(self._recv(conn))
                done, _ = await asyncio.wait(
                    (reader, committer), return_when=asyncio.FIRST_COMPLETED
                )
                if committer in done:
                    reader.cancel()
                    with contextlib.suppress(BaseException):
                        await reader
                    committer.result()  # raises the ingest error, if any
                    return
                msg = s.receive(reader.result())
                if isinstance(msg, Push):
                    fut = asyncio.ensure_future(self._prepare(conn, msg.events))
                    put = asyncio.ensure_future(queue.put((msg, fut)))
                    done, _ = await asyncio.wait(
                        (put, committer), return_when=asyncio.FIRST_COMPLETED
                    )
                    if committer in done:
                        put.cancel()
                        fut.cancel()
                        committer.result()
                        return
                elif isinstance(msg, Pull):
                    conn.sent_cursor = msg.cursor
                    await self.store.touch(conn.node, pull_cursor=msg.cursor)
                    conn.wake.set()
                elif isinstance(msg, SnapshotGet):
                    await self._send_snapshot(conn, msg)
                elif isinstance(msg, Ping):
                    await conn.ws.send(s.send_pong(msg.n))
        finally:
            if not committer.done():
                committer.cancel()
                with contextlib.suppress(BaseException):
                    await committer

    async def _send_snapshot(self, conn: Conn, msg: SnapshotGet) -> None:
        """A new or rebuilt counter's bootstrap (protocol 5): central's newest snapshot."""
        from central.snapshot import send_snapshot

        where = self.snapshot_dir if self.snapshot_dir is not None else Path("/nonexistent")
        log.info("snapshot asked node=%s from=%d", conn.node, msg.offset)
        await send_snapshot(conn.ws, conn.session, self.key, where, msg)

    async def _prepare(self, conn: Conn, events: tuple[bytes, ...]) -> list[Prepared]:
        n = len(events)
        if n < 64:  # a few live events: checking here beats a round trip to a worker
            return prepare_events(conn.node, conn.node_key, events)
        loop = asyncio.get_running_loop()
        parts = max(1, min(self.prepare_parts, n // 64))
        step = -(-n // parts)
        futs = [
            loop.run_in_executor(
                self.executor, _prepare_part, conn.node, conn.node_key, events[i : i + step], i
            )
            for i in range(0, n, step)
        ]
        results = await asyncio.gather(*futs)
        # links: checked by the store's ingest
        return [Prepared(seq, prev, h, data, problem, Hlc(wall, counter), stale)
                for part, at in zip(results, range(0, n, step), strict=True)
                for (seq, prev, h, problem, wall, counter, stale), data
                in zip(part, events[at : at + step], strict=True)]

    async def _catch_up(self) -> None:
        assert self.watch is not None
        async with self._reconciling:
            await self.watch.catch_up()

    def reconcile_soon(self) -> None:
        """Have the reconciler catch up with what was just stored (or refused: its
        quarantine evidence) without waiting for it: the ack means "stored durably at
        central", and reconciliation follows behind, a catch-up at a time, each taking
        every event stored by then.  The reconciler is a process of its own under
        :func:`run_server` (:class:`ReconcilerProcess`), else a task of this one."""
        if self.watch is None or self._closed:
            return
        if self.reconciler is not None:
            self.reconciler.poke()
            return
        self._wanted.set()
        self._idle.clear()
        if self._reconcile_task is None or self._reconcile_task.done():
            self._reconcile_task = asyncio.get_running_loop().create_task(
                self._reconcile_loop())

    async def _reconcile_loop(self) -> None:
        """Catch up whenever asked; a failure is logged and tried again after
        ``retry_s`` (the stored events are the truth: nothing is lost meanwhile)."""
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            try:
                await self._catch_up()
            except Exception:  # a reconciler bug must not stop sync: log, retry later
                log.exception("reconciler failed (tried again in %.1f s)", self.retry_s)
                await asyncio.sleep(self.retry_s)
                self._wanted.set()
            if not self._wanted.is_set():
                self._idle.set()

    async def reconciled(self) -> None:
        """Return once every catch-up asked of the reconciler task is done (the task of
        this process: without a :class:`ReconcilerProcess`)."""
        await self._idle.wait()

    async def close(self) -> None:
        """Stop the reconciler task after the catch-up under way (which completes: it
        runs shielded), so the store can be closed."""
        self._closed = True
        task, self._reconcile_task = self._reconcile_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        if self.watch is not None:
            await self.watch.settled()

    async def _commit_loop(
        self,
        conn: Conn,
        queue: asyncio.Queue[tuple[Push, asyncio.Future[list[Prepared]]] | None],
    ) -> None:
        s = conn.session
        while True:
            item = await queue.get()
            if item is None:
                return
            msg, fut = item
            t0 = time.perf_counter()
            prepared = await fut
            try:
                result = await self.store.ingest(
                    conn.node, list(msg.events), key=conn.node_key, prepared=prepared
                )
            except ProtocolError:
                # A refused push may have left evidence in quarantine (an equivocation, a
                # chain break, a bad body), which only a catch-up raises as a conflict (and
                # the events before a bad body were stored): ask for one now, as for
                # stored events, or it waits until some other node's events arrive.
                self.reconcile_soon()
                raise
            if result.stored:
                # relay first: the other counters' feeds read the store, not the
                # reconciler, so they need not wait for it
                self._notify(conn.node)
            if result.stored:
                # the ack means "stored durably at central": the reconciler follows behind
                # (asked first, so an ack also means a catch-up over it is on its way)
                self.reconcile_soon()
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

    async def watch_store(self, interval_s: float = 1.0) -> None:
        """Reconcile and push events other processes stored (a resolution from the CLI,
        another central instance's counters, the reconciler's announcements); keep the
        reconciler going (a catch-up asked for at least every ``interval_s``: one that
        failed is retried, and a reconciler process that died is started again)."""
        last = await self.store.cursor()
        while self.watch is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), interval_s)
            self._poked.clear()
            try:
                self.refusals.flush()
                await self.follow_key()
                await self.close_revoked()
                top = await self.store.cursor()
                grew = top > last
                if grew:
                    self._notify("")  # wake every feeder: cheap when nothing is new for it
                    last = top
                if self.reconciler is not None:
                    self.reconciler.ensure_running()
                    if grew:  # (another process's events: the reconciler's own timer
                        self.reconciler.poke()  # would see them within a second too)
                    # the key grants the reconciler folded: the granter reads them here
                    await self.watch.stored.load_resident()
                elif (not self.watch.leased or self.watch.pos < top
                      or self.watch.indexing):
                    # (not leased: another instance reconciles; take over if it died,
                    # from its checkpoint)
                    self.reconcile_soon()
            except Exception:
                log.exception("watching the store failed")

    async def follow_key(self) -> None:
        """Sign with central's new key once ``rotate-central`` (another process) gave it:
        the store names it and the key file holds it.  Open sessions are closed, so each
        counter authenticates central afresh (following the rotation statement) and gets
        central's keys over its seqs before any event the new key signs."""
        rec = await self.store.node(CENTRAL)
        if rec is None or rec.pubkey == self.key.public_key or self.key_file is None:
            return
        try:
            key = load_key(self.key_file)
        except CentralConfigError:
            return
        if key.public_key != rec.pubkey:
            return  # the key file is not renamed yet: next round
        self.key = key
        self.store.central_key = key
        if self.watch is not None:
            self.watch.key = key
        if self.granter is not None:
            self.granter.key = key
        log.warning("central's key was rotated: signing with %s from now on; closing %d "
                    "open sessions so the counters authenticate the new key",
                    key.fingerprint, len(self.conns))
        for conn in list(self.conns):
            with contextlib.suppress(Exception):
                await conn.ws.close(1012, "central's key was rotated")

    async def _revoked(self, conn: Conn) -> bool:
        """Whether ``conn``'s node was revoked since it connected; if so, close it."""
        rec = await self.store.node(conn.node)
        if rec is not None and not rec.revoked:
            return False
        log.warning("node=%s was revoked: closing its session", conn.node)
        await self._refuse(conn, "not_authorised", NOT_AUTHORISED, "revoked while connected")
        return True

    async def close_revoked(self) -> None:
        """Close the open session of every node revoked since it connected (``revoke`` is
        another process: this is how the serving one learns of it)."""
        if not self.conns:
            return
        revoked = {n.id for n in await self.store.nodes() if n.revoked}
        for conn in list(self.conns):
            if conn.node in revoked:
                await self._revoked(conn)

    def poke(self) -> None:
        """Events were stored by another process (another central instance: its NOTIFY):
        relay them and reconcile now rather than at the next poll."""
        self._notify("")
        self._poked.set()

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
                page = await self.store.events_after(
                    conn.sent_cursor, exclude_node=None if conn.recovering else conn.node
                )
                if page.events and await self._revoked(conn):
                    return  # revoked meanwhile: not one more event to it
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


class RefusalLog:
    """Refusals logged without letting a flood fill the log.

    The first refusal of a kind (its code and reason) from an address in an interval is
    logged as it is; the rest like it are counted, and when the interval is over one
    summary line says how many more there were and for which node ids.  A flood of bad
    connections from one address is then one line per interval, while each refused
    counter still shows its reason at once.
    """

    def __init__(self, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self._open: dict[tuple[str, str], tuple[float, int, set[str]]] = {}

    def note(self, address: str, key: str, line: str, node: str = "") -> None:
        now = self.clock()
        self.flush(now)
        got = self._open.get((address, key))
        if got is None:
            log.warning("%s (from %s)", line, address)
            self._open[(address, key)] = (now, 0, {node} if node else set())
        else:
            since, n, nodes = got
            if len(nodes) < 5 and node:
                nodes.add(node)
            self._open[(address, key)] = (since, n + 1, nodes)

    def flush(self, now: float | None = None) -> None:
        """Write the summary of every (address, kind) whose interval is over."""
        now = self.clock() if now is None else now
        for (address, key), (since, n, nodes) in list(self._open.items()):
            if now - since < self.interval_s:
                continue
            del self._open[(address, key)]
            if n:
                who = f" nodes {', '.join(sorted(nodes))}" if nodes else ""
                log.warning("refused %d more like that from %s in the last %.0f s: %s%s",
                            n, address, self.interval_s, key, who)


def _address(ws: ServerConnection) -> str:
    try:
        peer = ws.remote_address
    except Exception:
        return "?"
    return str(peer[0]) if isinstance(peer, tuple) and peer else "?"


class _Refusal(ProtocolError):
    def __init__(self, code: str, message: str, why: str = "") -> None:
        super().__init__(message)
        self.why = why  # what central's log says (the counter is told only ``message``)
        self.code = code


#: how much lower the reconciler process's CPU priority is than ingest's (``nice``): when
#: both want the cores (a burst of pushes), acks go first and the reconciler catches up
#: behind; alone, it has them all
RECONCILER_NICE = int(os.environ.get("ONECARD_RECONCILER_NICE", "10"))
RECONCILER_COMM = b"onecard-recon"  # the reconciler process's name (``ps -o comm``)


class ReconcilerProcess:
    """Central's reconciler (:class:`ConflictWatch`) in a process of its own.

    ``serve`` stores and acks; this process folds what was stored, a catch-up at a time,
    each taking every event stored by then (a burst is a few large catch-ups), on the
    other core and at a lower CPU priority.  It is told of each commit by a byte on a pipe
    and also catches up every ``interval_s`` (events of other processes, a failed
    catch-up tried again).  It takes the store's reconciler lease, so exactly one process
    reconciles a store, and resumes from the stored checkpoint wherever it was stopped
    (killed between an ack and its catch-up, nothing is lost: the events are stored).
    It dies with ``serve`` (``PR_SET_PDEATHSIG``); ``serve`` starts it again if it dies.
    """

    def __init__(self, store_at: str | Path, key_file: Path, max_skew_ms: int,
                 interval_s: float = WATCH_INTERVAL_S, *,
                 patient_keys_file: Path | None = None) -> None:
        self.args = (str(store_at), str(key_file), max_skew_ms, interval_s,
                     logging.getLogger().getEffectiveLevel(),
                     str(patient_keys_file) if patient_keys_file else "")
        self.proc: multiprocessing.process.BaseProcess | None = None
        self._poke_fd = -1
        self.starts = 0

    def start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        r, w = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_reconciler_main, args=(r, os.getpid(), *self.args),
                           name="onecard-reconciler", daemon=True)
        proc.start()
        r.close()
        self._close_pipe()
        self._poke_fd = os.dup(w.fileno())
        w.close()
        os.set_blocking(self._poke_fd, False)
        self.proc = proc
        self.starts += 1

    def alive(self) -> bool:
        return self.proc is not None and self.proc.is_alive()

    def ensure_running(self) -> None:
        """Start it again if it died (its exit is logged); it resumes at its checkpoint."""
        if self.proc is not None and not self.proc.is_alive():
            log.error("the reconciler process exited (code %s): starting it again",
                      self.proc.exitcode)
            self.proc.close()
            self.proc = None
            self.start()

    def poke(self) -> None:
        """Ask for a catch-up (never blocks: a full pipe already asks)."""
        if self._poke_fd < 0:
            return
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self._poke_fd, b"\0")

    def stop(self, timeout_s: float = 10.0) -> None:
        """End it (a catch-up under way is cut: its transaction is not committed and the
        next start folds that batch again from the checkpoint)."""
        self._close_pipe()
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        proc.join(timeout_s)
        if proc.is_alive():
            proc.kill()
            proc.join(timeout_s)
        proc.close()

    def _close_pipe(self) -> None:
        if self._poke_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._poke_fd)
            self._poke_fd = -1


def _reconciler_main(pokes: Any, parent_pid: int, store_at: str, key_file: str,
                     max_skew_ms: int, interval_s: float, log_level: int,
                     patient_keys_file: str = "") -> None:
    """The reconciler process (:class:`ReconcilerProcess`)."""
    _worker_init(parent_pid)
    with contextlib.suppress(OSError, AttributeError):  # its name in ps, top, /proc/*/comm
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(15, RECONCILER_COMM)  # PR_SET_NAME
    logging.basicConfig(level=log_level, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
    with contextlib.suppress(OSError):
        os.nice(RECONCILER_NICE)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # (^C in serve's terminal: serve stops it)
    asyncio.run(_reconcile_forever(pokes, store_at, Path(key_file), max_skew_ms, interval_s,
                                   read_patient_keys(patient_keys_file)))


def read_patient_keys(path: str | Path | None) -> PatientKeys | None:
    """Central's patient keys for the reconciler's search index, if it has any (none, or
    a file that does not read: the index holds no names; the log says why)."""
    if not path or not Path(path).exists():
        return None
    try:
        return PatientKeys.read(Path(path))
    except KeyFileError as exc:
        log.error("the console's search will not find names: %s", exc)
        return None


async def _reconcile_forever(pokes: Any, store_at: str, key_file: Path, max_skew_ms: int,
                             interval_s: float, patient_keys: PatientKeys | None = None
                             ) -> None:
    fd = pokes.fileno()
    os.set_blocking(fd, False)
    wake = asyncio.Event()
    loop = asyncio.get_running_loop()

    def drained() -> None:
        try:
            if not os.read(fd, 65536):  # serve closed its end: it is stopping
                loop.remove_reader(fd)
        except BlockingIOError:
            return
        wake.set()

    loop.add_reader(fd, drained)
    store = await CentralStore.open(store_at, max_skew_ms=max_skew_ms)
    try:
        key = load_key(key_file)
        store.central_key = key
        watch = ConflictWatch(store, ReconcileConfig(max_skew_ms=max_skew_ms), key=key,
                              patient_keys=patient_keys)
        poked, failed = True, False  # (at start: resume from the checkpoint at once)
        while True:
            try:
                if not poked:  # the timer: follow the key; catch up only if behind
                    await _follow_key(store, watch, key_file)
                if (poked or failed or not watch.leased or watch.indexing
                        or await store.cursor() > watch.pos):
                    failed = True
                    await watch.catch_up()
                    failed = False
            except Exception:  # logged and tried again: nothing that is stored is lost
                log.exception("reconciler failed (tried again in %.1f s)", interval_s)
            poked = False
            with contextlib.suppress(TimeoutError):  # (making the search index: on soon)
                await asyncio.wait_for(wake.wait(), 0.05 if watch.indexing else interval_s)
                poked = True
            wake.clear()
    finally:
        await store.close()


async def _follow_key(store: CentralStore, watch: ConflictWatch, key_file: Path) -> None:
    """Announce with central's new key once ``rotate-central`` gave it (as serve does)."""
    rec = await store.node(CENTRAL)
    if rec is None or watch.key is None or rec.pubkey == watch.key.public_key:
        return
    try:
        key = load_key(key_file)
    except CentralConfigError:
        return
    if key.public_key == rec.pubkey:
        watch.key = store.central_key = key


async def run_server(
    config: CentralConfig,
    *,
    stop: asyncio.Event | None = None,
    on_listening: object = None,
) -> None:
    """Open the store and serve until ``stop`` is set (or forever)."""
    from central.tls import certificate_pin, server_context

    key = load_key(config.key_file)
    tls = server_context(config)  # a bad certificate or key: CentralConfigError, not serving
    store = await CentralStore.open(config.store_at, max_skew_ms=config.max_skew_ms)
    workers = config.verify_workers if config.verify_workers >= 0 else (os.cpu_count() or 1)
    # Signature checks run in worker processes (all cores, no GIL); 0 = in a thread here.
    executor: Executor | None = (
        concurrent.futures.ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )
        if workers > 0
        else None
    )
    reconciler: ReconcilerProcess | None = None
    app: CentralServer | None = None
    try:
        if executor is not None:  # start the workers now, not on the first push
            loop = asyncio.get_running_loop()
            await asyncio.gather(
                *(loop.run_in_executor(executor, os.getpid) for _ in range(workers))
            )
        await enrol_central(store, key)
        from central.limits import publish_configured

        await publish_configured(store, config)  # the config's [limits], if changed
        await store.mark_all_offline()
        had_keys = read_patient_keys(config.patient_keys_file)
        watch = ConflictWatch(store, ReconcileConfig(max_skew_ms=config.max_skew_ms), key=key,
                              patient_keys=had_keys)
        await watch.catch_up()  # before listening: the book is up to date when serving
        from central.privacy import ensure_keys_file

        patient_keys = ensure_keys_file(config, watch.reconciler.state)
        if had_keys is None:  # (made now: the search index is made again with them)
            watch.stored.index.use_keys(patient_keys)
        if workers > 0:  # the reconciler in a process of its own (verify_workers = 0:
            # everything in this one), which takes the lease this catch-up gives back
            await store.db.release_lease()
            watch.forget()
            reconciler = ReconcilerProcess(config.store_at, config.key_file,
                                           config.max_skew_ms,
                                           patient_keys_file=config.patient_keys_file)
            reconciler.start()
        granter = Granter(store, key, patient_keys,
                          config.reveal_roles, config.lookup_roles, config.name_roles)
        app = CentralServer(
            store,
            key,
            handshake_timeout_s=config.handshake_timeout_s,
            executor=executor,
            prepare_parts=max(1, workers),
            watch=watch,
            metrics_allow=config.metrics_allow,
            metrics_token=config.metrics_token,
            granter=granter,
            key_file=config.key_file,
            snapshot_dir=config.snapshots,
            reconciler=reconciler,
        )
        await store.db.listen(app.poke)  # events another instance stored: at once
        watcher = asyncio.create_task(app.watch_store(WATCH_INTERVAL_S))
        async with serve(
            app.handler,
            config.host,
            config.port,
            process_request=app.process_request,
            ssl=tls,
            max_size=WS_MAX_SIZE,
            max_queue=4,
            compression=None,
            ping_interval=config.ping_interval_s,
            ping_timeout=config.ping_interval_s,
            close_timeout=5,
        ) as server:
            port = _port(server)
            print(f"listening on {config.scheme}://{config.host}:{port}", flush=True)
            log.info("listening host=%s port=%d tls=%s db=%s", config.host, port,
                     "yes" if tls else "no", config.where)
            if config.tls_cert is not None:
                log.info("tls certificate %s pin %s", config.tls_cert,
                         certificate_pin(config.tls_cert))
            elif not _loopback(config.host):
                log.warning("serving plain ws:// on %s: counters' traffic is not encrypted; "
                            "set tls_cert and tls_key in [central] (docs/deployment.md)",
                            config.host or "every interface")
            if callable(on_listening):
                on_listening(port)
            try:
                if stop is None:
                    await asyncio.Future()
                else:
                    await stop.wait()
            finally:
                watcher.cancel()
                with contextlib.suppress(BaseException):
                    await watcher
    finally:
        if app is not None:  # (its connections are closed: nothing asks for more)
            await app.close()
        if reconciler is not None:
            await asyncio.to_thread(reconciler.stop)
        if executor is not None:  # (waited for: an exit with its workers still being
            # woken prints "Exception ignored … Bad file descriptor" into central's log)
            await asyncio.to_thread(executor.shutdown, True, cancel_futures=True)
        await store.close()


def _prepare_part(node: str, key: Keys, events: tuple[bytes, ...], first: int
                  ) -> list[tuple[int, bytes, bytes, str, int, int, str]]:
    """:func:`prepare_events` in a verify worker, answered without the events' bytes (the
    server has them) and as plain tuples: a tenth of the pickling a list of
    :class:`Prepared` costs the worker and the server."""
    return [(p.seq, p.prev, p.hash, p.problem, p.hlc.wall, p.hlc.counter, p.stale)
            for p in prepare_events(node, key, events, first)]


def _worker_init(parent_pid: int) -> None:
    """Die with central: a SIGKILLed central must not leave verify workers behind."""
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # central died before prctl took effect
        os._exit(0)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port(server: Server) -> int:
    for sock in server.sockets:
        return int(sock.getsockname()[1])
    raise RuntimeError("the server has no listening socket")
