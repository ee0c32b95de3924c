"""Sans-I/O sync sessions: one state machine for the counter, one for central.

Theory of operation
-------------------
A session holds no socket and reads no clock.  The I/O layer feeds it each received
frame with :meth:`receive`, which returns the decoded :mod:`~protocol.messages` value
after checking that the message is allowed in the current state and moving to the next
one; it asks the session for each frame to send through a ``send_*`` method, which
checks the same way and returns the bytes.  Nonces and keys are arguments, so tests
are deterministic and the same code runs in the server, the daemon and an in-memory
pair.

Each end has two tables, ``state -> {message type: next state}``: what it may receive
and what it may send.  An ``error`` may be received or sent in any state except
CLOSED, and moves to CLOSED.

    counter (EdgeSession)                     central (CentralSession)
    START      -send hello->      HELLO_SENT   AWAIT_HELLO -recv hello-> HELLO_RECEIVED
    HELLO_SENT -recv challenge->  CHALLENGED   HELLO_RECEIVED -send challenge-> CHALLENGED
    CHALLENGED -send auth->       AUTH_SENT    CHALLENGED -recv auth-> AUTHENTICATED
    AUTH_SENT  -recv welcome->    READY        AUTHENTICATED -send welcome-> READY
    READY: send push/pull/ping/pong,           READY: recv push/pull/ping/pong,
           recv ack/events/ping/pong                  send ack/events/ping/pong
           (5: send snapshot_get,                     (5: recv snapshot_get,
               recv snapshot)                             send snapshot)

Two kinds of failure, as in h11:

* the *peer* misbehaved (bad bytes, a message out of turn, a signature that does not
  verify, an ack for a batch never sent, events that skip cursor positions): ``receive``
  raises a :class:`~protocol.errors.ProtocolError` subclass whose ``code`` is the one to
  put in the ``error`` frame.  The caller must then send :meth:`send_error` (best
  effort) and close; the session is CLOSED already.
* *we* misused the session (sending out of turn): :class:`LocalProtocolError`, a
  programming error, raised before anything is produced.

Attestation (protocol 4): central signs every ``events`` frame it sends with events —
one signature over the counter's node id, central's store id, the frame's range and
the BLAKE2b-256 hashes of its events (:func:`attestation_payload`).  Central checked
every one of those events' signatures at push; the attestation says so, and the
counter's session checks that one signature with the key central authenticated with
(and recomputes the hashes from the bytes received) instead of one signature per
event.  A frame with events whose attestation is missing or does not verify (another
key, another store, another counter, altered bytes) is refused: :class:`AttestationError`.
The events' own signatures are still checked, later, by the counter
(:mod:`edge_node.sync.sigcheck`).

Snapshots (protocol 5, :mod:`protocol.snapshot`): the first ``snapshot`` frame of an
answer carries the manifest and central's signature over it, which the counter's
session checks with the key central authenticated with (and that the manifest's hash
is the snapshot's id); the frames after it must continue the same snapshot's stream
byte for byte from the offset asked.  What the stream holds is checked by the caller,
against the manifest's hashes, before it is installed.

Authentication: each side signs the other's fresh 32-byte nonce, bound to both nonces
and the counter's node id and to the direction, so a signature from one handshake is
useless in any other, and a counter's signature can never pass for central's.  Central
signs with its current key and offers its key rotation statements with the challenge
(protocol 3); a counter whose pinned key is an earlier one of central's accepts the
current key only through statements its pin signed (:mod:`protocol.rotation`), and
then says so in :attr:`EdgeSession.rotations` for the caller to record the new pin.
"""

from __future__ import annotations

import enum
from dataclasses import replace

from protocol import codec
from protocol.crypto import SigningKey, blake2b_256, fingerprint, is_valid_signature, verify
from protocol.errors import ProtocolError, SignatureError
from protocol.event import ChainHead
from protocol.messages import (
    NONCE_SIZE,
    OLDEST_ATTESTED,
    OLDEST_SNAPSHOT,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    Ack,
    Auth,
    Challenge,
    DirectoryEntry,
    Error,
    Events,
    Hello,
    Message,
    Ping,
    Pong,
    Pull,
    Push,
    SnapshotGet,
    SnapshotPart,
    Welcome,
    decode_message,
)
from protocol.rotation import Rotation, follow
from protocol.snapshot import signing_payload

AUTH_CONTEXT = "onecard/sync/1"
ATTEST_CONTEXT = "onecard/attest/1"


class SessionError(ProtocolError):
    """The peer sent a well-formed message that is not allowed now (out of turn, etc.)."""

    code = "unexpected"


class VersionError(ProtocolError):
    """The peer speaks a protocol version we do not."""

    code = "version"


class AuthError(ProtocolError):
    """The peer failed authentication (signature over our nonce, unknown or revoked key)."""

    code = "auth"


class AttestationError(ProtocolError):
    """Central's attestation of an ``events`` frame is missing or does not verify."""

    code = "attestation"


class RemoteError(ProtocolError):
    """The peer sent an ``error`` frame; ``code`` and ``message`` are the peer's."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class LocalProtocolError(RuntimeError):
    """This side used the session out of turn: a bug in the caller, not the peer's fault."""


class State(enum.Enum):
    START = "start"
    HELLO_SENT = "hello_sent"
    CHALLENGED = "challenged"
    AUTH_SENT = "auth_sent"
    AWAIT_HELLO = "await_hello"
    HELLO_RECEIVED = "hello_received"
    AUTHENTICATED = "authenticated"
    READY = "ready"
    CLOSED = "closed"


S = State
Table = dict[State, dict[type[Message], State]]

EDGE_RECEIVE: Table = {
    S.START: {},
    S.HELLO_SENT: {Challenge: S.CHALLENGED},
    S.CHALLENGED: {},
    S.AUTH_SENT: {Welcome: S.READY},
    S.READY: {Ack: S.READY, Events: S.READY, SnapshotPart: S.READY, Ping: S.READY,
              Pong: S.READY},
    S.CLOSED: {},
}
EDGE_SEND: Table = {
    S.START: {Hello: S.HELLO_SENT},
    S.HELLO_SENT: {},
    S.CHALLENGED: {Auth: S.AUTH_SENT},
    S.AUTH_SENT: {},
    S.READY: {Push: S.READY, Pull: S.READY, SnapshotGet: S.READY, Ping: S.READY,
              Pong: S.READY},
    S.CLOSED: {},
}
CENTRAL_RECEIVE: Table = {
    S.AWAIT_HELLO: {Hello: S.HELLO_RECEIVED},
    S.HELLO_RECEIVED: {},
    S.CHALLENGED: {Auth: S.AUTHENTICATED},
    S.AUTHENTICATED: {},
    S.READY: {Push: S.READY, Pull: S.READY, SnapshotGet: S.READY, Ping: S.READY,
              Pong: S.READY},
    S.CLOSED: {},
}
CENTRAL_SEND: Table = {
    S.AWAIT_HELLO: {},
    S.HELLO_RECEIVED: {Challenge: S.CHALLENGED},
    S.CHALLENGED: {},
    S.AUTHENTICATED: {Welcome: S.READY},
    S.READY: {Ack: S.READY, Events: S.READY, SnapshotPart: S.READY, Ping: S.READY,
              Pong: S.READY},
    S.CLOSED: {},
}


def auth_payload(signer: str, node: str, edge_nonce: bytes, central_nonce: bytes) -> bytes:
    """The bytes a side signs: direction, node id and both nonces, canonically encoded."""
    return codec.encode([AUTH_CONTEXT, signer, node, edge_nonce, central_nonce])


def attestation_payload(store: bytes, node: str, after: int, cursor: int,
                        hashes: list[bytes]) -> bytes:
    """The bytes central signs for one ``events`` frame: the store and range it is from,
    the counter it is for, and its events' hashes in order."""
    return codec.encode([ATTEST_CONTEXT, store, node, after, cursor, b"".join(hashes)])


class _Session:
    _receive_table: Table
    _send_table: Table

    def __init__(self, state: State) -> None:
        self.state = state

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def _accept(self, data: bytes) -> Message:
        """Decode ``data`` and move along the receive table, or close and raise."""
        if self.state is State.CLOSED:
            raise SessionError("a frame arrived after the session closed")
        try:
            msg = decode_message(data)
        except ProtocolError:
            self.state = State.CLOSED
            raise
        if isinstance(msg, Error):
            self.state = State.CLOSED
            raise RemoteError(msg.code, msg.message)
        nxt = self._receive_table[self.state].get(type(msg))
        if nxt is None:
            bad = self.state
            self.state = State.CLOSED
            raise SessionError(f"{msg.TYPE} is not allowed in state {bad.value}")
        self.state = nxt
        return msg

    def _emit(self, msg: Message) -> bytes:
        nxt = self._send_table[self.state].get(type(msg))
        if nxt is None:
            raise LocalProtocolError(f"cannot send {msg.TYPE} in state {self.state.value}")
        data = msg.encode()
        self.state = nxt
        return data

    def _fail(self, exc: ProtocolError) -> ProtocolError:
        self.state = State.CLOSED
        return exc

    def send_error(self, code: str, message: str) -> bytes:
        """The last frame to send before closing (allowed in any state but CLOSED)."""
        if self.state is State.CLOSED:
            # Still produce the frame: the caller closes right after, and telling the
            # peer why is worth more than strictness here.
            return Error(code[:64], message[:1000]).encode()
        self.state = State.CLOSED
        return Error(code[:64], message[:1000]).encode()

    def send_ping(self, n: int) -> bytes:
        return self._emit(Ping(n))

    def send_pong(self, n: int) -> bytes:
        return self._emit(Pong(n))


class EdgeSession(_Session):
    """The counter's end: hello, prove who it is, then push own events and pull others'.

    After :meth:`receive` returns a ``Challenge`` the caller sends :meth:`send_auth`.
    It tracks pushed batches so an ``ack`` for a batch never sent, or out of order, is
    refused, and it checks that ``events`` frames follow each other with no gap.
    """

    _receive_table = EDGE_RECEIVE
    _send_table = EDGE_SEND

    def __init__(self, node: str, key: SigningKey, central_key: bytes, nonce: bytes,
                 proto: int = PROTOCOL_VERSION) -> None:
        super().__init__(State.START)
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"a nonce is {NONCE_SIZE} bytes")
        if proto not in SUPPORTED_VERSIONS:
            raise ValueError(f"protocol {proto} is not one this code speaks")
        self.node = node
        #: the protocol version proposed in the hello (and required of the welcome)
        self.proto = proto
        self._key = key
        self._central_key = central_key
        #: central's rotations followed from the pinned key in this handshake (empty:
        #: central answered with the pinned key itself)
        self.rotations: tuple[Rotation, ...] = ()
        self._nonce = nonce
        self._central_nonce = b""
        self._next_batch = 1
        self._in_flight: list[tuple[int, int]] = []  # (batch, last seq in it)
        self.cursor: int | None = None  # where the next events frame must start
        self.welcome: Welcome | None = None
        #: the snapshot download in progress: (id asked, or b"" for the newest; the next
        #: offset expected; whether its first part has come)
        self._snapshot: tuple[bytes, int, bool] | None = None
        #: the manifest of the snapshot being received (checked: central signed it)
        self.snapshot_manifest = b""

    @property
    def central_key(self) -> bytes:
        """The key central authenticated with: the pinned one, or the one its rotation
        statements, signed by the pinned key, lead to."""
        return self._central_key

    @property
    def in_flight(self) -> int:
        """How many pushed batches are not yet acknowledged."""
        return len(self._in_flight)

    @property
    def attested(self) -> bool:
        """Whether every ``events`` frame received with events carries central's
        attestation, checked by :meth:`receive` (protocol 4 and later)."""
        return self.proto >= OLDEST_ATTESTED

    def send_hello(self, head: ChainHead) -> bytes:
        return self._emit(Hello(self.node, self.proto, self._nonce, head.seq, head.hash))

    def send_auth(self) -> bytes:
        sig = self._key.sign(auth_payload("edge", self.node, self._nonce, self._central_nonce))
        return self._emit(Auth(sig))

    def send_push(self, events: list[bytes], last_seq: int) -> bytes:
        """A push of own encoded ``events`` ending at ``last_seq``; returns the frame."""
        if not events:
            raise LocalProtocolError("a push needs at least one event")
        batch = self._next_batch
        data = self._emit(Push(batch, tuple(events)))
        self._next_batch += 1
        self._in_flight.append((batch, last_seq))
        return data

    def send_pull(self, cursor: int) -> bytes:
        """Ask for others' events after ``cursor``; following events frames start there."""
        data = self._emit(Pull(cursor))
        self.cursor = cursor
        return data

    def send_snapshot_get(self, snapshot: bytes = b"", offset: int = 0) -> bytes:
        """Ask for central's newest snapshot (``snapshot`` empty), or for the rest of
        ``snapshot`` from ``offset`` (protocol 5; one answer at a time)."""
        if self.proto < OLDEST_SNAPSHOT:
            raise LocalProtocolError(f"protocol {self.proto} has no snapshots")
        if self._snapshot is not None:
            raise LocalProtocolError("a snapshot answer is still coming")
        data = self._emit(SnapshotGet(snapshot, offset))
        self._snapshot = (snapshot, offset, False)
        return data

    def receive(self, data: bytes) -> Message:
        """Take one frame; return its message or raise ProtocolError (then send error, close)."""
        msg = self._accept(data)
        if isinstance(msg, SnapshotPart):
            self._check_snapshot_part(msg)
        elif isinstance(msg, Challenge):
            payload = auth_payload("central", self.node, self._nonce, msg.nonce)
            if not is_valid_signature(self._central_key, payload, msg.sig):
                key, steps = follow(self._central_key, msg.rotations)
                if not steps or not is_valid_signature(key, payload, msg.sig):
                    raise self._fail(AuthError(_unendorsed(self._central_key, key, steps)))
                self._central_key, self.rotations = key, steps
            self._central_nonce = msg.nonce
        elif isinstance(msg, Welcome):
            if msg.proto != self.proto:
                raise self._fail(VersionError(f"central answered protocol {msg.proto} to "
                                              f"our {self.proto}"))
            self.welcome = msg
        elif isinstance(msg, Ack):
            if not self._in_flight or self._in_flight[0][0] != msg.batch:
                raise self._fail(SessionError(f"ack for batch {msg.batch}, which is not next"))
            _, last_seq = self._in_flight.pop(0)
            if msg.head_seq < last_seq:
                raise self._fail(
                    SessionError(
                        f"ack for batch {msg.batch} says central holds only"
                        f" seq {msg.head_seq} < {last_seq}"
                    )
                )
        elif isinstance(msg, Events):
            if self.cursor is None or msg.after != self.cursor:
                raise self._fail(
                    SessionError(f"events start after {msg.after}, expected after {self.cursor}")
                )
            if self.attested and msg.events:
                self._check_attestation(msg)
            self.cursor = msg.cursor
        return msg

    def _check_snapshot_part(self, msg: SnapshotPart) -> None:
        if self._snapshot is None:
            raise self._fail(SessionError("a snapshot part that was not asked for"))
        asked, offset, started = self._snapshot
        if not started:
            if not msg.snapshot:  # central has none (the message's checks: an empty last)
                self._snapshot = None
                return
            if asked and msg.snapshot != asked:
                offset = 0  # replaced at central meanwhile: the newest, from its start
            if not msg.manifest:
                raise self._fail(SessionError("a snapshot answer must start with its manifest"))
            if blake2b_256(msg.manifest) != msg.snapshot:
                raise self._fail(SessionError("the snapshot's manifest is not the one its id "
                                              "names"))
            if not is_valid_signature(self._central_key, signing_payload(msg.manifest),
                                      msg.sig):
                raise self._fail(AttestationError(
                    "the snapshot's manifest is not signed by central's key "
                    f"{fingerprint(self._central_key)}: refused, nothing kept"))
            self.snapshot_manifest = msg.manifest
        elif msg.manifest or msg.snapshot != asked:
            raise self._fail(SessionError("a snapshot part of another answer"))
        if msg.offset != offset:
            raise self._fail(SessionError(f"snapshot part at byte {msg.offset}, expected "
                                          f"{offset}"))
        self._snapshot = None if msg.last else (msg.snapshot, offset + len(msg.data), True)

    def _check_attestation(self, msg: Events) -> None:
        assert self.welcome is not None
        where = f"{len(msg.events)} events after cursor {msg.after} (to {msg.cursor})"
        if not msg.attest:
            raise self._fail(AttestationError(
                f"central (protocol {self.proto}) sent {where} without its attestation: "
                "refused, nothing stored"))
        payload = attestation_payload(self.welcome.store, self.node, msg.after, msg.cursor,
                                      [blake2b_256(e) for e in msg.events])
        if not is_valid_signature(self._central_key, payload, msg.attest):
            raise self._fail(AttestationError(
                f"central's attestation of {where} does not verify with central's key "
                f"{fingerprint(self._central_key)} for store {self.welcome.store.hex()} and "
                f"{self.node} (another key, another store or counter, or altered events): "
                "refused, nothing stored"))


def _unendorsed(pinned: bytes, reached: bytes, steps: tuple[Rotation, ...]) -> str:
    why = (f"nor the key {fingerprint(reached)} its rotation statements lead to" if steps else
           "and no key rotation signed by the pinned key names the key central used")
    return (f"central's signature does not match the pinned central key {fingerprint(pinned)}, "
            f"{why}: refused (a new central key is taken only from a rotation the pinned "
            "key signed, or pinned by hand in [sync] central_key)")


class CentralSession(_Session):
    """Central's end of one counter's connection.

    After ``receive`` returns the ``Hello``, the caller looks the node up and either sends
    :meth:`send_error` (unknown, revoked) or :meth:`send_challenge` with the node's
    enrolled key; after the ``Auth`` it sends :meth:`send_welcome`.
    """

    _receive_table = CENTRAL_RECEIVE
    _send_table = CENTRAL_SEND

    def __init__(self, key: SigningKey, nonce: bytes,
                 versions: frozenset[int] = SUPPORTED_VERSIONS) -> None:
        super().__init__(State.AWAIT_HELLO)
        if len(nonce) != NONCE_SIZE:
            raise ValueError(f"a nonce is {NONCE_SIZE} bytes")
        self.versions = versions  # the protocol versions this central speaks
        self._store = b""  # central's store id, once the welcome named it
        self._key = key
        self._nonce = nonce
        self.hello: Hello | None = None
        self._node_key = b""
        self._last_batch = 0
        self.pulled = False

    @property
    def node(self) -> str:
        if self.hello is None:
            raise LocalProtocolError("no hello yet")
        return self.hello.node

    @property
    def authenticated(self) -> bool:
        return self.state in (State.AUTHENTICATED, State.READY)

    def send_challenge(self, node_key: bytes, rotations: tuple[bytes, ...] = ()) -> bytes:
        """Challenge the counter, which must prove it holds the private half of ``node_key``;
        with central's key ``rotations`` (statements, in seq order) for a counter of
        protocol 3 or later."""
        if self.hello is None:
            raise LocalProtocolError("no hello yet")
        self._node_key = node_key
        sig = self._key.sign(
            auth_payload("central", self.hello.node, self.hello.nonce, self._nonce)
        )
        offered = tuple(rotations) if self.hello.proto >= 3 else ()
        return self._emit(Challenge(self._nonce, sig, offered))

    def send_welcome(
        self,
        head: ChainHead,
        cursor: int,
        directory: list[DirectoryEntry] | tuple[DirectoryEntry, ...],
        store: bytes,
    ) -> bytes:
        """Accept the counter: resume point, pull position, key directory, store id.

        In the counter's protocol version: a version-1 counter gets each node's current
        key only (it cannot decode key histories)."""
        proto = self.hello.proto if self.hello is not None else PROTOCOL_VERSION
        entries = tuple(directory) if proto >= 2 else tuple(
            replace(e, keys=()) for e in directory)
        data = self._emit(Welcome(proto, head.seq, head.hash, cursor, store, entries))
        self._store = store
        return data

    @property
    def attests(self) -> bool:
        """Whether :meth:`send_events` attests (the counter speaks protocol 4 or later)."""
        return self.hello is not None and self.hello.proto >= OLDEST_ATTESTED

    def send_ack(self, batch: int, stored: int, head: ChainHead) -> bytes:
        return self._emit(Ack(batch, stored, head.seq, head.hash))

    def send_snapshot_part(self, snapshot: bytes, offset: int, data: bytes, last: bool,
                           manifest: bytes = b"", sig: bytes = b"") -> bytes:
        """A part of a snapshot's stream (the first of an answer with its manifest and
        central's signature over it: :func:`protocol.snapshot.signing_payload`)."""
        return self._emit(SnapshotPart(snapshot, manifest, sig, offset, data, last))

    def send_events(self, after: int, cursor: int, events: list[bytes], more: bool) -> bytes:
        """Others' events at cursor positions ``(after, cursor]``; to a counter of protocol
        4 or later, attested: central's signature says it checked every one of them."""
        attest = b""
        if events and self.attests and self.state is State.READY:
            attest = self._key.sign(attestation_payload(
                self._store, self.node, after, cursor, [blake2b_256(e) for e in events]))
        return self._emit(Events(after, cursor, tuple(events), more, attest))

    def receive(self, data: bytes) -> Message:
        """Take one frame; return its message or raise ProtocolError (then send error, close)."""
        msg = self._accept(data)
        if isinstance(msg, Hello):
            if msg.proto not in self.versions:
                raise self._fail(
                    VersionError(
                        f"protocol {msg.proto} is not supported (central speaks "
                        f"{', '.join(map(str, sorted(self.versions)))})"
                    )
                )
            self.hello = msg
        elif isinstance(msg, Auth):
            assert self.hello is not None
            try:
                verify(
                    self._node_key,
                    auth_payload("edge", self.hello.node, self.hello.nonce, self._nonce),
                    msg.sig,
                )
            except SignatureError:
                raise self._fail(
                    AuthError(f"{self.hello.node}: signature does not match the enrolled key")
                ) from None
        elif isinstance(msg, Push):
            if msg.batch <= self._last_batch:
                raise self._fail(
                    SessionError(f"push batch {msg.batch} after batch {self._last_batch}")
                )
            self._last_batch = msg.batch
        elif isinstance(msg, SnapshotGet):
            assert self.hello is not None
            if self.hello.proto < OLDEST_SNAPSHOT:
                raise self._fail(SessionError(f"snapshot_get in protocol {self.hello.proto}"))
        elif isinstance(msg, Pull):
            if self.pulled:
                raise self._fail(SessionError("pull may be sent once per connection"))
            self.pulled = True
        return msg
