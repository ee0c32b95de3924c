"""The sync daemon: one websocket to central, kept up for as long as the counter runs.

Theory of operation
-------------------
Each connection runs :class:`protocol.session.EdgeSession` over a websocket:

1. handshake (hello → challenge → auth → welcome) within ``handshake_timeout_s``;
   central's key is the one pinned in the config, or the one central's rotation
   statements signed by it lead to (:mod:`protocol.rotation`: the new pin is kept in the
   ledger, :meth:`~edge_node.ledger.Ledger.central_pin`).  The welcome's directory of
   enrolled keys, with each rotated node's keys over its seqs, goes into the ledger
   (so other counters' events and cards verify, each with the key of its seq),
   and the welcome's head says up to where central holds our chain: the resume point.
   When central holds more of our chain than the ledger (a re-installed counter, a
   ledger restored from an old backup), the counter is *recovering*: the ledger
   records central's head and refuses own appends until its chain is back, the pull
   starts from 0, and central (seeing the hello's lower head) sends our own events
   too; the ledger verifies them with our own key and chains them like any node's.
2. then two tasks until the link drops or ``stop`` is set:

   * the **pusher** reads own events after the last acked/sent seq from the ledger,
     ``≤ 500`` events and ``≤ 1 MiB`` a batch, with at most ``window`` batches awaiting
     their ``ack``; idle, it polls the ledger (the TUI appends in another process);
   * the **receiver** handles ``ack`` (records ``acked_seq``) and ``events`` (ingests
     the batch into the ledger — verified and chained there — and records the new
     pull cursor in the same transaction).  One frame is read only after the last one
     is stored, and the socket's queue is two frames, so catching up after days
     offline uses bounded memory.  The search terms of the patients a frame brings
     are written afterwards, in the background (:mod:`edge_node.sync.indexer`).

   Central attests every events frame (protocol 4): the session checks central's one
   signature over the frame's event hashes, and the ledger stores and folds the events
   with their own signatures pending; the **background check**
   (:mod:`edge_node.sync.sigcheck`, running for as long as the daemon, online or not)
   verifies each of them later at the lowest CPU priority.  A central that refuses
   protocol 4 (an older central) is asked again at once in protocol 3: it does not
   attest, and the ledger verifies every event before storing it.  A finding of the
   background check (central attested a forgery) is told to central in an ``error``
   frame (code ``attestation``), shown as the last error, and ends trust in
   attestations (:class:`~edge_node.ledger.SignatureFinding`).

Every step that changes what is durable happens in the ledger first and is recorded
second, so a crash between the two repeats work (a re-sent push or a re-pulled batch
is a no-op) and never skips any.

Over ``wss://`` the link is TLS (:mod:`edge_node.sync.tls`): central's certificate is
verified (system CAs, ``ca_file``) or pinned (``tls_pin``) before the handshake, which
still checks the pinned central key.  A certificate that fails is said plainly in the
last error and retried with backoff like a refusal (IT may fix central meanwhile).

Link failures (refused, reset, stalled, central restarting) end the connection; the
daemon waits an exponential backoff with full jitter (0.5 s doubling to 30 s, reset
after a welcome) and reconnects.  Status for the TUI — online, last successful sync,
pending, received, last error — is written to the ledger's ``sync_state``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import sqlite3
import ssl
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidMessage, InvalidURI

from edge_node.db import transaction
from edge_node.errors import ConfigError
from edge_node.i18n import Translator
from edge_node.snapshot import base_heads
from edge_node.sync.indexer import IndexWriter
from edge_node.sync.sigcheck import SignatureChecker
from edge_node.sync.tls import CertificateRefused, check_pin, client_context, describe_tls_error
from protocol.crypto import blake2b_256, fingerprint
from protocol.errors import ProtocolError
from protocol.event import ChainHead, decode_event
from protocol.keyring import KeySpan
from protocol.messages import (
    MAX_BATCH_BYTES,
    MAX_BATCH_EVENTS,
    MAX_FRAME_SIZE,
    NONCE_SIZE,
    OLDEST_ATTESTED,
    PROTOCOL_VERSION,
    Ack,
    Challenge,
    Events,
    Ping,
    Welcome,
)
from protocol.rotation import Rotation
from protocol.session import EdgeSession, RemoteError

if TYPE_CHECKING:
    from edge_node.config import EdgeConfig
    from protocol.crypto import SigningKey

log = logging.getLogger("onecard.edge.sync")


class SyncLedger(Protocol):
    """What the daemon needs of :class:`edge_node.ledger.Ledger`."""

    node_id: str

    async def head(self) -> ChainHead: ...
    async def own_events_after(
        self, seq: int, limit: int = 500, max_bytes: int = 1 << 20
    ) -> list[bytes]: ...
    async def ingest(self, encoded: list[bytes], *, attested: bool = False,
                     index_later: bool = False, pull_cursor: int | None = None) -> int: ...
    async def index_due(self, limit: int = 32) -> tuple[int, int]: ...
    async def set_node_keys(self, keys: dict[str, tuple[bytes, str]],
                            spans: dict[str, Sequence[KeySpan]] | None = None) -> None: ...
    async def sync_state(self) -> SyncStateLike: ...
    async def update_sync_state(self, **fields: object) -> None: ...
    async def run(self, fn: Callable[..., Any], *args: Any) -> Any: ...
    async def central_holds(self, seq: int) -> None: ...
    async def central_pin(self, configured: bytes) -> tuple[bytes, int]: ...
    async def adopt_central_key(self, configured: bytes,
                                rotations: Sequence[Rotation]) -> None: ...
    async def signatures_pending(self, limit: int = 256) -> list[tuple[int, str, int, bytes]]: ...
    async def keyring(self) -> dict[str, tuple[KeySpan, ...]]: ...
    async def record_signature_checks(self, ok: Sequence[int],
                                      bad: Sequence[tuple[int, str]]) -> Sequence[Any]: ...
    async def signature_findings(self, *, unreported: bool = False) -> Sequence[Any]: ...
    async def mark_findings_reported(self, rowids: Sequence[int]) -> None: ...


class SyncStateLike(Protocol):
    @property
    def pull_cursor(self) -> int: ...
    @property
    def received(self) -> int: ...
    @property
    def acked_seq(self) -> int: ...


SYNC_CACHE_KIB = 32 * 1024  # the sync daemon's SQLite page cache


class SyncFailed(Exception):
    """This connection cannot go on (central refused us, our chain and central's differ…)."""


@dataclass(frozen=True, slots=True)
class SyncOptions:
    batch_events: int = MAX_BATCH_EVENTS
    batch_bytes: int = MAX_BATCH_BYTES
    window: int = 4  # pushed batches awaiting their ack
    poll_s: float = 0.1  # an idle pusher queries the ledger at least this often, and
    watch_s: float = 0.005  # checks this often whether the WAL file changed (a stat)
    settle_s: float = 0.05  # …and asks the ledger every tick while it changed this recently
    handshake_timeout_s: float = 10.0
    ack_timeout_s: float = 60.0
    ping_interval_s: float = 5.0  # websocket keepalive: a stalled link is dropped after
    ping_timeout_s: float = 10.0  # about interval + timeout
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    #: check attested events' own signatures in the background (tests turn it off to
    #: look at what is pending)
    check_signatures: bool = True
    #: others' patients' search terms written by the background pass, not in the ingest
    #: (:mod:`edge_node.sync.indexer`; tests turn it off to look at what is due)
    index_later: bool = True

    @classmethod
    def from_env(cls) -> SyncOptions:
        """Defaults, with ``ONECARD_SYNC_PING_S`` / ``ONECARD_SYNC_BACKOFF_MAX_S`` overrides.

        (Tests and drills shorten the keepalive and backoff without a config change.)
        """
        kw: dict[str, float] = {}
        ping = os.environ.get("ONECARD_SYNC_PING_S")
        if ping:
            kw["ping_interval_s"] = float(ping)
            kw["ping_timeout_s"] = float(ping)
        bmax = os.environ.get("ONECARD_SYNC_BACKOFF_MAX_S")
        if bmax:
            kw["backoff_max_s"] = float(bmax)
        return cls(**kw)  # type: ignore[arg-type]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base·2^attempt)] (attempt counts from 0)."""
    return rng.uniform(0.0, min(cap, base * (2 ** min(attempt, 30))))


class SyncClient:
    """Keeps one counter's ledger in sync with central until ``stop`` is set."""

    def __init__(
        self,
        ledger: SyncLedger,
        key: SigningKey,
        url: str | Sequence[str],
        central_key: bytes,
        options: SyncOptions | None = None,
        *,
        rng: random.Random | None = None,
        wal_path: str | None = None,
        tls: ssl.SSLContext | None = None,
        tls_pin: str = "",
        language: str = "zh",
        after_welcome: Callable[[ClientConnection, EdgeSession, Welcome],
                                Awaitable[None]] | None = None,
    ) -> None:
        #: instead of syncing, run this once central welcomed us, then hang up (the
        #: snapshot download of ``onecard-edge bootstrap``: edge_node.snapshot)
        self.after_welcome = after_welcome
        self.wal_path = wal_path
        self.tls = tls  # for wss:// (``client_context``); None: plain ws://
        self.tls_pin = tls_pin
        self.tr = Translator(language)
        self.ledger = ledger
        self.node = ledger.node_id
        self.key = key
        #: the central instances, in the order tried: a failed attempt moves to the next
        #: at once; the backoff waits only once every one has failed in a row
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("no central URL")
        self._turn = 0
        self.central_key = central_key
        self.opt = options or SyncOptions()
        self.rng = rng or random.Random()
        self.connections = 0
        self._welcomed = False
        self._opened = False  # the websocket (and TLS) handshake of this attempt finished
        self.recovering = False
        self._recover_to = 0
        #: set when a pull has caught up (an ``events`` frame with nothing more to come)
        self.caught_up = asyncio.Event()
        #: the protocol version proposed to each central URL: the newest, or the one
        #: before attestation once that central refused the newest (an older central)
        self._proto: dict[str, int] = {}
        self.found = asyncio.Event()  # the background check recorded a finding
        self.checker = SignatureChecker(ledger, on_finding=lambda _: self.found.set())
        self.indexer = IndexWriter(ledger)

    @property
    def url(self) -> str:
        """The central instance this attempt connects to."""
        return self.urls[self._turn]

    async def run(self, stop: asyncio.Event) -> None:
        background = []
        if self.opt.check_signatures:
            background.append(asyncio.create_task(self.checker.run(stop), name="sync-sigcheck"))
        if self.opt.index_later:
            background.append(asyncio.create_task(self.indexer.run(stop), name="sync-index"))
        try:
            await self._run(stop)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await asyncio.to_thread(self.checker.close)

    async def _run(self, stop: asyncio.Event) -> None:
        attempt = 0
        failed_in_turn = 0  # attempts failed in a row since the last welcome
        while not stop.is_set():
            self._welcomed = False
            refused = False
            try:
                await self._connect_once(stop)
            except CertificateRefused as exc:
                refused = True  # not central: it will be the same next time
                await self._offline(str(exc))
            except ssl.SSLError as exc:  # before OSError: say what is wrong with TLS
                refused = True
                await self._offline(describe_tls_error(exc, self.tr))
            except ConnectionResetError as exc:
                if self.tls is not None and not self._opened:
                    # a plain central reads our TLS hello as a bad HTTP request and drops it
                    await self._offline(self.tr("sync.tls_failed", why=self.tr(
                        "sync.tls_reset", why=str(exc) or type(exc).__name__)))
                else:
                    await self._offline(f"link: {type(exc).__name__}: {exc}")
            except InvalidMessage as exc:
                # not an HTTP answer: on a ws:// URL most likely a TLS-only central
                why = f"{type(exc).__name__}: {exc}"
                await self._offline(why if self.tls else self.tr("sync.not_tls", why=why))
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                await self._offline(f"link: {type(exc).__name__}: {exc}")
            except RemoteError as exc:
                proto = self._proto.get(self.url, PROTOCOL_VERSION)
                if exc.code == "version" and not self._welcomed and proto >= OLDEST_ATTESTED:
                    # an older central: ask again at once in the version before ours (down
                    # to the one before attestation)
                    self._proto[self.url] = proto - 1
                    log.warning("central %s refused protocol %d (%s): speaking protocol %d%s",
                                self.url, proto, exc.message, proto - 1,
                                ", without attested events; every event is verified here"
                                if proto - 1 < OLDEST_ATTESTED else "")
                    continue
                # central refused what we sent (it will again): back off, don't hammer it
                refused = True
                await self._offline(f"central refused: {exc.code}: {exc.message}")
            except (ProtocolError, SyncFailed) as exc:
                await self._offline(f"{type(exc).__name__}: {exc}")
            except InvalidURI:
                raise  # a config error: retrying cannot help
            except Exception as exc:  # e.g. the ledger's disk: log, back off, try again
                log.exception("sync failed node=%s", self.node)
                await self._offline(f"{type(exc).__name__}: {exc}")
            else:
                await self._offline("")
            if stop.is_set():
                break
            if self._welcomed and not refused:
                attempt = 0
                failed_in_turn = 0
            if len(self.urls) > 1:
                # fail over: the next central instance at once, until each has failed
                self._turn = (self._turn + 1) % len(self.urls)
                failed_in_turn += 1
                if failed_in_turn % len(self.urls):
                    log.warning("sync failover node=%s trying %s", self.node, self.url)
                    continue
            delay = backoff_delay(
                attempt, self.opt.backoff_base_s, self.opt.backoff_max_s, self.rng
            )
            attempt += 1
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await stop.wait()

    async def _offline(self, error: str) -> None:
        if error:
            log.warning("sync offline node=%s %s", self.node, error)
        fields: dict[str, object] = {"online": False}
        if error:
            fields["last_error"] = error[:500]
        with contextlib.suppress(Exception):
            await self.ledger.update_sync_state(**fields)

    async def _connect_once(self, stop: asyncio.Event) -> None:
        """One connection's life, until the link drops or ``stop`` is set."""
        opt = self.opt
        tls: dict[str, Any] = {"ssl": self.tls} if self.tls is not None else {}
        self._opened = False
        async with connect(
            self.url,
            **tls,
            max_size=2 * MAX_FRAME_SIZE,
            max_queue=2,
            compression=None,
            open_timeout=opt.handshake_timeout_s,
            ping_interval=opt.ping_interval_s,
            ping_timeout=opt.ping_timeout_s,
            close_timeout=2,
        ) as ws:
            self._opened = True
            if self.tls_pin:  # before any frame of ours: only the upgrade request went out
                try:
                    check_pin(ws.transport.get_extra_info("ssl_object"), self.tls_pin, self.tr)
                except CertificateRefused:
                    await ws.close()
                    raise
            self.connections += 1
            pin, _ = await self.ledger.central_pin(self.central_key)
            session = EdgeSession(self.node, self.key, pin, os.urandom(NONCE_SIZE),
                                  self._proto.get(self.url, PROTOCOL_VERSION))
            try:
                async with asyncio.timeout(opt.handshake_timeout_s):
                    welcome = await self._handshake(ws, session)
                if session.rotations:
                    await self._adopt(session)
                if self.after_welcome is not None:
                    await self.after_welcome(ws, session, welcome)
                    return
                await self._resume(welcome)
                self._welcomed = True
                await self._serve(ws, session, stop)
            except ProtocolError as exc:
                if not isinstance(exc, RemoteError):  # tell central why we hang up
                    with contextlib.suppress(Exception):
                        await ws.send(session.send_error(exc.code, str(exc)))
                raise
            finally:
                await ws.close()

    async def _recv(self, ws: ClientConnection) -> bytes:
        data = await ws.recv()
        if isinstance(data, str):
            raise ProtocolError("central sent a text frame")
        return data

    async def _handshake(self, ws: ClientConnection, s: EdgeSession) -> Welcome:
        await ws.send(s.send_hello(await self.ledger.head()))
        msg = s.receive(await self._recv(ws))
        assert isinstance(msg, Challenge)
        await ws.send(s.send_auth())
        welcome = s.receive(await self._recv(ws))
        assert isinstance(welcome, Welcome)
        return welcome

    async def _adopt(self, s: EdgeSession) -> None:
        """Central authenticated with a new key its rotation statements, signed by the
        pinned key, lead to: pin that key (in the ledger) for the connections after."""
        await self.ledger.adopt_central_key(self.central_key, s.rotations)
        last = s.rotations[-1]
        log.warning("central's key was rotated node=%s: now pinning %s (central's statement "
                    "seq %d, signed by the key pinned before, %s)", self.node,
                    fingerprint(last.new), last.seq, fingerprint(last.old))

    async def _resume(self, w: Welcome) -> None:
        """Take the directory and the resume point from the welcome; refuse a forked chain."""
        await self.ledger.set_node_keys(
            {e.node: (e.key, e.role) for e in w.directory if e.node != self.node},
            {e.node: e.spans for e in w.directory},  # a rotated node's keys over its seqs
        )
        head = await self.ledger.head()
        # Central's head for this node, first: no own append until the chain is back.
        await self.ledger.central_holds(w.head_seq)
        self.recovering = w.head_seq > head.seq
        self._recover_to = w.head_seq
        if self.recovering:
            log.warning(
                "recovering from central node=%s own_head=%d central_holds=%d: pulling our "
                "own events back; appends wait", self.node, head.seq, w.head_seq
            )
        elif w.head_seq:
            mine = await self.ledger.own_events_after(w.head_seq - 1, limit=1)
            based = (await self.ledger.run(base_heads)).get(self.node)
            if based is not None and w.head_seq <= based.seq:
                # the chain to there came with central's snapshot (bootstrap): no event here
                if based != ChainHead(w.head_seq, w.head_hash):
                    raise SyncFailed(
                        f"central holds this counter's chain to seq {w.head_seq}, but the "
                        f"snapshot it started from held it to seq {based.seq}: the chains "
                        "have forked; central IT must look at this counter")
            elif not mine or decode_event(mine[0]).seq != w.head_seq:
                raise SyncFailed(f"own event seq {w.head_seq} is missing from the ledger")
            elif blake2b_256(mine[0]) != w.head_hash:
                raise SyncFailed(
                    f"central holds a different event at our seq {w.head_seq}: the chains "
                    "have forked; central IT must look at this counter"
                )
        await self.ledger.update_sync_state(online=True, last_sync_ms=_now_ms(),
                                            last_error=await self._findings_note())
        log.info(
            "sync online node=%s central_holds=%d own_head=%d", self.node, w.head_seq, head.seq
        )

    async def _findings_note(self) -> str:
        """The last error to show while central's attestations are not trusted ("": none)."""
        found = await self.ledger.signature_findings()
        if not found:
            return ""
        f = found[0]
        log.warning("central attested a forgery (%s seq %d, %s): its attestations are not "
                    "trusted; every event is verified here", f.node, f.seq, f.reason)
        return self.tr("sync.forged_attested", node=f.node, seq=f.seq, n=len(found))

    async def _report_findings(self, ws: ClientConnection, s: EdgeSession) -> None:
        """Tell central of each finding not told yet (an ``error`` frame, code
        ``attestation``), then end the connection: the next one verifies every event."""
        while True:
            self.found.clear()  # before the query: a finding during it wakes the wait
            found = await self.ledger.signature_findings(unreported=True)
            if found:
                what = "; ".join(f"{f.node} seq {f.seq}: {f.reason}" for f in found[:5])
                text = (f"{self.node}: central attested {len(found)} event(s) whose own "
                        f"signature does not verify ({what}): central is compromised or "
                        "buggy; this counter trusts no attestation from now on")
                await ws.send(s.send_error("attestation", text))
                await self.ledger.mark_findings_reported([f.rowid for f in found])
                raise SyncFailed(f"told central: {text}")
            await self.found.wait()

    def _wal_signature(self) -> tuple[int, int] | None:
        """The WAL file's mtime and size: they change with (nearly) every commit.

        Only ``stat``: opening and closing a file of the database in this process would
        drop SQLite's POSIX locks on it.  A change hidden by mtime's granularity is
        caught by the ``poll_s`` query.
        """
        if self.wal_path is None:
            return None
        try:
            st = os.stat(self.wal_path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    async def _idle(self, woken: asyncio.Event, sig: tuple[int, int] | None) -> None:
        """Wait until an ack arrives, the ledger's WAL changes, or ``poll_s`` passes.

        The TUI appends in another process; a stat of the WAL file every ``watch_s``
        notices that within milliseconds for the price of a system call, where a
        query per tick would cost a thread hop.  (Without a WAL path: poll_s ticks.)

        A commit's frames reach the WAL file before the commit is published (after its
        fsync): a query in between finds nothing new although the WAL already shows the
        change.  So while the WAL was written less than ``settle_s`` ago, the wait ends
        after one tick and the pusher asks again.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + self.opt.poll_s
        tick = self.opt.watch_s if self.wal_path is not None else self.opt.poll_s
        settling = sig is not None and time.time_ns() - sig[0] < self.opt.settle_s * 1e9
        for _ in range(int(self.opt.poll_s / tick) + 1):
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, min(tick, end - loop.time()))):
                    await woken.wait()
            if (woken.is_set() or settling or loop.time() >= end
                    or self._wal_signature() != sig):
                return

    async def _serve(self, ws: ClientConnection, s: EdgeSession, stop: asyncio.Event) -> None:
        st = await self.ledger.sync_state()
        acked = st.acked_seq
        received = st.received
        cursor = st.pull_cursor
        assert s.welcome is not None
        held = await self.ledger.run(_read_store_id)
        if held != s.welcome.store:
            if cursor:
                # Our cursor counts positions in another central store (central was
                # restored from a backup or rebuilt): pull everything again; events
                # already held are no-ops.
                log.warning(
                    "sync cursor reset node=%s was=%d: central's store changed", self.node, cursor
                )
                cursor = 0
                await self.ledger.update_sync_state(pull_cursor=0)
            await self.ledger.run(_write_store_id, s.welcome.store)
        if self.recovering and cursor:
            # our own lost events may lie before the cursor: pull everything again
            # (events already held are no-ops)
            cursor = 0
            await self.ledger.update_sync_state(pull_cursor=0)
        await ws.send(s.send_pull(cursor))
        acked_changed = asyncio.Event()

        async def pusher() -> None:
            sent = acked
            waiting_since: float | None = None  # oldest unacked push, for ack_timeout_s
            loop = asyncio.get_running_loop()
            while True:
                # Clear first and sample the WAL before querying, so an ack or an
                # append landing during the query still wakes the wait below.
                acked_changed.clear()
                sig = self._wal_signature()
                if s.in_flight < self.opt.window:
                    evs = await self.ledger.own_events_after(
                        sent, limit=self.opt.batch_events, max_bytes=self.opt.batch_bytes
                    )
                    if evs:
                        await ws.send(s.send_push(evs, sent + len(evs)))
                        sent += len(evs)
                        if waiting_since is None:
                            waiting_since = loop.time()
                        continue
                if s.in_flight == 0:
                    waiting_since = None
                elif waiting_since is not None and (
                    loop.time() - waiting_since > self.opt.ack_timeout_s
                ):
                    raise TimeoutError(f"no ack within {self.opt.ack_timeout_s} s")
                await self._idle(acked_changed, sig)
                if acked_changed.is_set():
                    waiting_since = loop.time() if s.in_flight else None

        async def receiver() -> None:
            nonlocal received
            while True:
                msg = s.receive(await self._recv(ws))
                if isinstance(msg, Ack):
                    await self.ledger.update_sync_state(
                        acked_seq=msg.head_seq, last_sync_ms=_now_ms()
                    )
                    acked_changed.set()
                elif isinstance(msg, Events):
                    if msg.events:  # (the cursor, count and time in the same transaction)
                        n = await self.ledger.ingest(list(msg.events), attested=s.attested,
                                                     index_later=self.opt.index_later,
                                                     pull_cursor=msg.cursor)
                    else:
                        n = 0
                        await self.ledger.update_sync_state(pull_cursor=msg.cursor,
                                                            last_sync_ms=_now_ms())
                    if n and s.attested:
                        self.checker.wake.set()
                    if n and self.opt.index_later:
                        self.indexer.ingested()
                    received += n
                    if n:
                        log.info("sync received node=%s new=%d cursor=%d", self.node, n, msg.cursor)
                    if self.recovering and n:
                        own = await self.ledger.head()
                        if own.seq >= self._recover_to:
                            self.recovering = False
                            log.warning("recovered node=%s own chain back to seq %d from "
                                        "central; appends resume", self.node, own.seq)
                    if not msg.more:
                        self.caught_up.set()
                elif isinstance(msg, Ping):
                    await ws.send(s.send_pong(msg.n))

        tasks = [
            asyncio.create_task(pusher(), name="sync-pusher"),
            asyncio.create_task(receiver(), name="sync-receiver"),
            asyncio.create_task(self._report_findings(ws, s), name="sync-report"),
            asyncio.create_task(stop.wait(), name="sync-stop"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]


_STORE_KEY = "sync.central_store"


def _read_store_id(conn: sqlite3.Connection) -> bytes | None:
    """The id of the central store our pull cursor counts in (ledger ``meta`` table)."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_STORE_KEY,)).fetchone()
    return None if row is None else bytes(row[0])


def _write_store_id(conn: sqlite3.Connection, store: bytes) -> None:
    with transaction(conn):
        conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                     (_STORE_KEY, store))


async def run(
    config: EdgeConfig,
    *,
    stop: asyncio.Event | None = None,
    options: SyncOptions | None = None,
) -> None:
    """Run the counter's sync until ``stop`` is set (or SIGINT/SIGTERM when not given)."""
    from edge_node.ledger import Ledger

    if not logging.getLogger().handlers:  # one line per event to stderr (journald)
        logging.basicConfig(
            level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
        )
    key = config.load_key()
    central_key = config.sync.central_public_key
    own_stop = stop is None
    stop = stop or asyncio.Event()
    if own_stop:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    ledger = await Ledger.open(config.db, config.node_id, key, rule_config=config.rules,
                               max_skew_ms=config.sync.max_skew_ms)
    try:
        # The daemon writes others' patients' search terms (random keys all over the
        # index): a page cache of SYNC_CACHE_KIB, not SQLite's 2 MiB, keeps most of the
        # index's pages in memory for the background pass.
        await ledger.run(lambda c: c.execute(f"PRAGMA cache_size=-{SYNC_CACHE_KIB}"))
        try:
            tls = client_context(config.sync)
        except ConfigError as exc:  # `onecard-edge info` shows it too
            with contextlib.suppress(Exception):
                await ledger.update_sync_state(online=False, last_error=str(exc)[:500])
            raise
        client = SyncClient(
            ledger,
            key,
            config.sync.urls,
            central_key,
            options or SyncOptions.from_env(),
            wal_path=f"{config.db}-wal",
            tls=tls,
            tls_pin=config.sync.tls_pin,
            language=config.language,
        )
        log.info("sync starting node=%s central=%s", config.node_id,
                 " ".join(config.sync.urls))
        try:
            await client.run(stop)
        except InvalidURI as exc:
            why = f"[sync] central_url is not a websocket URL: {exc}"
            with contextlib.suppress(Exception):  # `onecard-edge info` shows it too
                await ledger.update_sync_state(online=False, last_error=why[:500])
            raise SystemExit(why) from None
    finally:
        with contextlib.suppress(Exception):
            await ledger.update_sync_state(online=False)
        await ledger.close()
