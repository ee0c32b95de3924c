"""The sans-I/O sync sessions, joined in memory (no sockets), and the wire messages."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import codec
from protocol.crypto import ZERO_HASH, SigningKey
from protocol.errors import DecodeError, ProtocolError, SchemaError
from protocol.event import ChainHead, sign_event
from protocol.hlc import Hlc
from protocol.messages import (
    MAX_FRAME_SIZE,
    PROTOCOL_VERSION,
    Ack,
    Auth,
    Challenge,
    DirectoryEntry,
    Error,
    Events,
    FrameTooLarge,
    Hello,
    Ping,
    Pong,
    Pull,
    Push,
    Welcome,
    batch_events,
    decode_message,
)
from protocol.session import (
    CENTRAL_RECEIVE,
    CENTRAL_SEND,
    EDGE_RECEIVE,
    EDGE_SEND,
    AttestationError,
    AuthError,
    CentralSession,
    EdgeSession,
    LocalProtocolError,
    RemoteError,
    SessionError,
    State,
    VersionError,
)

CENTRAL_KEY = SigningKey(b"c" * 32)
EDGE_KEY = SigningKey(b"e" * 32)
OTHER_KEY = SigningKey(b"o" * 32)
N1, N2 = b"\x01" * 32, b"\x02" * 32
STORE = b"\x05" * 16


def events(n: int, key: SigningKey = EDGE_KEY, node: str = "cashier-01") -> list[bytes]:
    out, prev = [], ZERO_HASH
    for seq in range(1, n + 1):
        _, data, prev = sign_event(
            key,
            node=node,
            seq=seq,
            prev=prev,
            hlc=Hlc(1000 + seq, 0),
            operator="op.wang",
            kind="account.deposited",
            body={"patient_id": "P-1", "amount": 100 * seq, "method": "cash",
                  "receipt_no": f"D-{seq}"},
        )
        out.append(data)
    return out


class Pair:
    """An edge and a central session joined in memory, as h11's ConnectionPair."""

    def __init__(self, central_key: bytes | None = None, node_key: bytes | None = None) -> None:
        self.edge = EdgeSession("cashier-01", EDGE_KEY, central_key or CENTRAL_KEY.public_key, N1)
        self.central = CentralSession(CENTRAL_KEY, N2)
        self.node_key = node_key or EDGE_KEY.public_key

    def handshake(self) -> Welcome:
        hello = self.central.receive(self.edge.send_hello(ChainHead()))
        assert isinstance(hello, Hello) and hello.node == "cashier-01"
        ch = self.edge.receive(self.central.send_challenge(self.node_key))
        assert isinstance(ch, Challenge)
        assert isinstance(self.central.receive(self.edge.send_auth()), Auth)
        d = [DirectoryEntry("cashier-02", OTHER_KEY.public_key, "pharmacy")]
        w = self.edge.receive(self.central.send_welcome(ChainHead(), 7, d, STORE))
        assert isinstance(w, Welcome)
        return w


def test_handshake_push_ack_pull_events() -> None:
    p = Pair()
    w = p.handshake()
    assert p.edge.state is p.central.state is State.READY
    assert w.cursor == 7 and w.directory[0].node == "cashier-02"
    evs = events(3)
    push = p.central.receive(p.edge.send_push(evs, 3))
    assert isinstance(push, Push) and push.events == tuple(evs)
    ack = p.edge.receive(p.central.send_ack(push.batch, 3, ChainHead(3, b"h" * 32)))
    assert isinstance(ack, Ack) and p.edge.in_flight == 0
    assert isinstance(p.central.receive(p.edge.send_pull(0)), Pull)
    other = events(2, OTHER_KEY, "cashier-02")
    got = p.edge.receive(p.central.send_events(0, 5, other, True))
    assert isinstance(got, Events) and got.events == tuple(other)
    got = p.edge.receive(p.central.send_events(5, 9, [], False))
    assert p.edge.cursor == 9
    assert isinstance(p.central.receive(p.edge.send_ping(4)), Ping)
    assert p.edge.receive(p.central.send_pong(4)) == Pong(4)


def test_events_frames_are_attested_from_protocol_4_and_checked_by_the_edge() -> None:
    p = Pair()
    p.handshake()
    p.central.receive(p.edge.send_pull(0))
    other = events(3, OTHER_KEY, "cashier-02")
    frame = p.central.send_events(0, 5, other, True)
    msg = decode_message(frame)
    assert isinstance(msg, Events) and len(msg.attest) == 64 and p.edge.attested
    assert p.edge.receive(frame) == msg
    # a frame with one event's bytes changed no longer matches the attested hashes
    altered = Events(5, 8, (other[0], other[1], other[2][:-1] + b"\x01"), True, msg.attest)
    with pytest.raises(AttestationError, match="does not verify"):
        p.edge.receive(altered.encode())
    assert p.edge.closed


def test_a_protocol_3_edge_gets_and_takes_frames_without_attestation() -> None:
    p = Pair()
    p.edge = EdgeSession("cashier-01", EDGE_KEY, CENTRAL_KEY.public_key, N1, proto=3)
    w = p.handshake()
    assert w.proto == 3 and not p.edge.attested and not p.central.attests
    p.central.receive(p.edge.send_pull(0))
    got = p.edge.receive(p.central.send_events(0, 2, events(2, OTHER_KEY, "cashier-02"), False))
    assert isinstance(got, Events) and got.attest == b""
    # a central speaking up to 3 refuses a protocol-4 hello, as an older central does
    old = CentralSession(CENTRAL_KEY, N2, frozenset({1, 2, 3}))
    with pytest.raises(VersionError, match="central speaks 1, 2, 3"):
        old.receive(EdgeSession("cashier-01", EDGE_KEY, CENTRAL_KEY.public_key, N1)
                    .send_hello(ChainHead()))


def test_an_attestation_without_events_is_refused_by_the_decoder() -> None:
    with pytest.raises(SchemaError, match="attestation without events"):
        decode_message(codec.encode({"type": "events", "after": 0, "cursor": 1, "events": [],
                                     "more": False, "attest": b"s" * 64}))


def test_edge_refuses_central_with_another_key() -> None:
    p = Pair(central_key=OTHER_KEY.public_key)
    p.central.receive(p.edge.send_hello(ChainHead()))
    with pytest.raises(AuthError):
        p.edge.receive(p.central.send_challenge(EDGE_KEY.public_key))
    assert p.edge.closed


def test_central_refuses_edge_with_another_key() -> None:
    p = Pair(node_key=OTHER_KEY.public_key)  # enrolled key differs from the edge's
    p.central.receive(p.edge.send_hello(ChainHead()))
    p.edge.receive(p.central.send_challenge(p.node_key))
    with pytest.raises(AuthError):
        p.central.receive(p.edge.send_auth())
    assert p.central.closed


def test_auth_signature_from_another_handshake_is_refused() -> None:
    """A recorded auth frame replayed into a fresh session (new central nonce) fails."""
    p = Pair()
    p.central.receive(p.edge.send_hello(ChainHead()))
    p.edge.receive(p.central.send_challenge(EDGE_KEY.public_key))
    old_auth = p.edge.send_auth()
    fresh = CentralSession(CENTRAL_KEY, b"\x03" * 32)
    fresh.receive(Hello("cashier-01", PROTOCOL_VERSION, N1, 0, ZERO_HASH).encode())
    fresh.send_challenge(EDGE_KEY.public_key)
    with pytest.raises(AuthError):
        fresh.receive(old_auth)


def test_wrong_protocol_version_is_refused() -> None:
    c = CentralSession(CENTRAL_KEY, N2)
    with pytest.raises(VersionError) as e:
        c.receive(Hello("cashier-01", 99, N1, 0, ZERO_HASH).encode())
    assert e.value.code == "version" and c.closed


SAMPLES = [
    Hello("cashier-01", PROTOCOL_VERSION, N1, 0, ZERO_HASH),
    Challenge(N2, b"s" * 64),
    Auth(b"s" * 64),
    Welcome(PROTOCOL_VERSION, 0, ZERO_HASH, 0, STORE, ()),
    Push(1, (events(1)[0],)),
    Ack(1, 1, 1, ZERO_HASH),
    Pull(0),
    Events(0, 1, (), False),
    Events(0, 1, (events(1)[0],), False, b"s" * 64),
    Ping(1),
    Pong(1),
]


def _drive_central_to(state: State) -> CentralSession:
    p = Pair()
    if state is State.AWAIT_HELLO:
        return p.central
    p.central.receive(p.edge.send_hello(ChainHead()))
    if state is State.HELLO_RECEIVED:
        return p.central
    p.edge.receive(p.central.send_challenge(EDGE_KEY.public_key))
    if state is State.CHALLENGED:
        return p.central
    p.central.receive(p.edge.send_auth())
    if state is State.AUTHENTICATED:
        return p.central
    p.edge.receive(p.central.send_welcome(ChainHead(), 0, [], STORE))
    return p.central


def _drive_edge_to(state: State) -> EdgeSession:
    p = Pair()
    if state is State.START:
        return p.edge
    p.central.receive(p.edge.send_hello(ChainHead()))
    if state is State.HELLO_SENT:
        return p.edge
    p.edge.receive(p.central.send_challenge(EDGE_KEY.public_key))
    if state is State.CHALLENGED:
        return p.edge
    p.central.receive(p.edge.send_auth())
    if state is State.AUTH_SENT:
        return p.edge
    p.edge.receive(p.central.send_welcome(ChainHead(), 0, [], STORE))
    return p.edge


def _out_of_turn(table: dict[State, dict[type, State]]) -> list[object]:
    return [
        pytest.param(state, msg, id=f"{state.value}-{msg.TYPE}")
        for state in table
        if state is not State.CLOSED
        for msg in SAMPLES
        if type(msg) not in table[state]
    ]


@pytest.mark.parametrize(("state", "msg"), _out_of_turn(CENTRAL_RECEIVE))
def test_central_refuses_every_message_out_of_turn(state: State, msg: object) -> None:
    s = _drive_central_to(state)
    with pytest.raises(SessionError):
        s.receive(msg.encode())  # type: ignore[attr-defined]
    assert s.closed


@pytest.mark.parametrize(("state", "msg"), _out_of_turn(EDGE_RECEIVE))
def test_edge_refuses_every_message_out_of_turn(state: State, msg: object) -> None:
    s = _drive_edge_to(state)
    with pytest.raises(SessionError):
        s.receive(msg.encode())  # type: ignore[attr-defined]
    assert s.closed


def test_sending_out_of_turn_is_a_local_error() -> None:
    e = EdgeSession("cashier-01", EDGE_KEY, CENTRAL_KEY.public_key, N1)
    with pytest.raises(LocalProtocolError):
        e.send_push(events(1), 1)
    c = CentralSession(CENTRAL_KEY, N2)
    with pytest.raises(LocalProtocolError):
        c.send_welcome(ChainHead(), 0, [], STORE)
    assert e.state is State.START and c.state is State.AWAIT_HELLO
    # the send tables name only messages of the sender's own direction
    assert all(Ack not in row for row in EDGE_SEND.values())
    assert all(Push not in row for row in CENTRAL_SEND.values())


def test_ack_for_unsent_batch_and_gap_in_events_are_refused() -> None:
    p = Pair()
    p.handshake()
    with pytest.raises(SessionError):
        p.edge.receive(Ack(1, 1, 1, ZERO_HASH).encode())
    p = Pair()
    p.handshake()
    p.central.receive(p.edge.send_pull(10))
    with pytest.raises(SessionError):  # starts after 11, not after 10: would skip one
        p.edge.receive(Events(11, 12, (), False).encode())


def test_second_pull_and_replayed_batch_number_are_refused() -> None:
    p = Pair()
    p.handshake()
    p.central.receive(p.edge.send_pull(0))
    with pytest.raises(SessionError):
        p.central.receive(Pull(0).encode())
    p = Pair()
    p.handshake()
    frame = p.edge.send_push(events(1), 1)
    p.central.receive(frame)
    with pytest.raises(SessionError):
        p.central.receive(frame)


def test_error_frame_closes_and_surfaces_code() -> None:
    p = Pair()
    p.handshake()
    with pytest.raises(RemoteError) as e:
        p.edge.receive(p.central.send_error("chain", "seq 5 missing"))
    assert e.value.code == "chain" and p.edge.closed and p.central.closed


@pytest.mark.parametrize(
    ("data", "exc"),
    [
        (b"", DecodeError),
        (b"\xc1", DecodeError),
        (codec.encode({"type": "hello"})[:-1], DecodeError),  # truncated
        (codec.encode([1, 2]), SchemaError),
        (codec.encode({"type": "nope"}), SchemaError),
        (codec.encode({"type": "ping", "n": 1, "extra": 2}), SchemaError),
        (codec.encode({"type": "ping", "n": -1}), SchemaError),
        (codec.encode({"type": "push", "batch": 1, "events": []}), SchemaError),
        (codec.encode({"type": "push", "batch": 1, "events": ["x"]}), SchemaError),
        (
            codec.encode({"type": "events", "after": 5, "cursor": 4, "events": [], "more": False}),
            SchemaError,
        ),
        (b"\x00" * (MAX_FRAME_SIZE + 1), FrameTooLarge),
    ],
)
def test_decoder_refuses_bad_frames(data: bytes, exc: type[Exception]) -> None:
    with pytest.raises(exc):
        decode_message(data)


def test_every_message_round_trips() -> None:
    for m in [
        *SAMPLES,
        Error("x", "y"),
        Welcome(1, 2, ZERO_HASH, 3, STORE, (DirectoryEntry("a", b"k" * 32, "cashier", True),)),
    ]:
        assert decode_message(m.encode()) == m


def test_batches_respect_count_and_bytes() -> None:
    evs = [b"x" * 100] * 1201
    assert [len(b) for b in batch_events(evs)] == [500, 500, 201]
    bs = batch_events(evs, max_bytes=1000)
    assert all(sum(map(len, b)) <= 1000 for b in bs) and sum(map(len, bs), 0) == 1201


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_escape_as_anything_but_protocol_errors(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_message(data)
    for s in (
        _drive_central_to(State.AWAIT_HELLO),
        _drive_central_to(State.READY),
        _drive_edge_to(State.HELLO_SENT),
        _drive_edge_to(State.READY),
    ):
        try:
            s.receive(data)
        except ProtocolError:
            assert s.closed


_frames = st.sampled_from([m.encode() for m in SAMPLES])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(_frames, st.binary(max_size=40)), max_size=6),
    st.sampled_from(["central", "edge"]),
)
def test_random_frame_sequences_only_raise_protocol_errors(frames: list[bytes], end: str) -> None:
    s = (
        _drive_central_to(State.AWAIT_HELLO)
        if end == "central"
        else _drive_edge_to(State.HELLO_SENT)
    )
    for f in frames:
        try:
            s.receive(f)
        except ProtocolError:
            assert s.closed
            break
