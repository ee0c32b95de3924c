"""The sync wire messages: frozen values, one canonical msgpack map per websocket frame.

Theory of operation
-------------------
Every frame is the canonical encoding (:mod:`protocol.codec`) of a map with a ``type``
key naming the message and exactly that message's fields, no more and no fewer.  The
protocol version travels in ``hello`` (the counter's proposal) and ``welcome``
(central's acceptance): a peer speaking another version gets an ``error`` with code
``version`` before anything else happens.

:func:`decode_message` turns bytes into one of the message classes below or raises a
:class:`~protocol.errors.ProtocolError` (``DecodeError`` for bytes that are not a
canonical value or are over :data:`MAX_FRAME_SIZE`, ``SchemaError`` for a value of the
wrong shape).  It never raises anything else, whatever the bytes: a Hypothesis test
holds it to that.  Events inside ``push`` and ``events`` stay as encoded bytes here;
the receiver decodes and verifies them (:func:`protocol.event.decode_event`), so the
bytes that are hashed and stored are the very bytes that were signed.

    counter                                central
    hello(node, proto, nonce, head)  ─────►
                                     ◄─────  challenge(nonce, sig over counter's nonce,
                                                       central's key rotations)
    auth(sig over central's nonce)   ─────►
                                     ◄─────  welcome(proto, head held, cursor, directory)
    push(batch, events)              ─────►
                                     ◄─────  ack(batch, stored, head)       after commit
    pull(cursor)                     ─────►
                                     ◄─────  events(after, cursor, events, more,
                                                    central's attestation)
                                     ◄─────  events(...)        live, once caught up
    snapshot_get(id, offset)         ─────►  (protocol 5: a new or rebuilt counter)
                                     ◄─────  snapshot(id, manifest, sig, offset, data, last)…
    ping / pong                      ◄────►
    error(code, message)             ◄────►  then the connection closes
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from protocol import codec
from protocol.crypto import HASH_SIZE, PUBLIC_KEY_SIZE, SIGNATURE_SIZE
from protocol.errors import DecodeError, SchemaError
from protocol.event import MAX_EVENT_SIZE, NODE_ID_RE
from protocol.keyring import KeySpan, check_spans, single

#: 2: a directory entry may carry the node's keys over its seqs (``keys``).  3: a
#: challenge may carry central's key rotation statements (``rotations``,
#: :mod:`protocol.rotation`).  4: every ``events`` frame with events carries central's
#: attestation (``attest``, :func:`protocol.session.attestation_payload`).  5: a counter
#: may ask for central's signed snapshot of the projections (``snapshot_get``, answered by
#: ``snapshot`` frames: :mod:`protocol.snapshot`).  Central
#: speaks every version in :data:`SUPPORTED_VERSIONS` and answers a counter in its own
#: (to a version-1 counter: the directory without ``keys``; to one before 3: no
#: ``rotations``; before 4: no ``attest``), so counters may lag behind; a counter whose
#: version a central refuses (an older central) proposes the one before it
#: (:data:`OLDEST_ATTESTED` - 1 at the lowest), so centrals may lag behind too.
PROTOCOL_VERSION = 5
SUPPORTED_VERSIONS = frozenset({1, 2, 3, 4, 5})
OLDEST_ATTESTED = 4  # the first version whose events frames central attests
OLDEST_SNAPSHOT = 5  # the first version in which a counter may ask for a snapshot
NONCE_SIZE = 32
STORE_ID_SIZE = 16
MAX_BATCH_EVENTS = 500
MAX_BATCH_BYTES = 1 << 20
# A frame holds at most one batch plus its envelope; anything larger is refused with
# an ``error`` (code ``too_large``) before it is decoded.
MAX_FRAME_SIZE = MAX_BATCH_BYTES + MAX_EVENT_SIZE + 4096
MAX_DIRECTORY = 10_000
MAX_KEYS = 100  # keys in one node's history
MAX_ROTATIONS = 100  # central's rotation statements in one challenge
MAX_TEXT = 1000
SNAPSHOT_ID_SIZE = 32  # BLAKE2b-256 of a snapshot's manifest
MAX_MANIFEST = 1 << 19  # a snapshot's manifest (its heads: one per node), sent in a part of its own
SNAPSHOT_CHUNK = 1 << 19  # bytes of a snapshot's compressed stream in one frame

# Counter roles as edge_node.config knows them, plus central itself.
ROLES = frozenset({"central", "cashier", "triage", "doctor", "lab", "pharmacy", "kiosk"})


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One enrolled node as central knows it: who may sign events, with which key.

    ``key`` is the node's current key (the one it authenticates with); ``keys`` its
    history of keys over its seqs (:mod:`protocol.keyring`), sent only when it is more
    than ``key`` from seq 1 on (a rotated or revoked node), so the entry of a node that
    never rotated is the map earlier versions know.
    """

    node: str
    key: bytes
    role: str
    revoked: bool = False
    keys: tuple[KeySpan, ...] = ()

    @property
    def spans(self) -> tuple[KeySpan, ...]:
        """The node's keys over its seqs (``key`` from seq 1 when none were sent)."""
        return self.keys or single(self.key)

    def to_map(self) -> dict[str, Any]:
        m: dict[str, Any] = {"node": self.node, "key": self.key, "role": self.role,
                             "revoked": self.revoked}
        if self.keys and self.keys != single(self.key):
            m["keys"] = [{"key": s.key, "from": s.from_seq, "until": s.until_seq}
                         for s in self.keys]
        return m


@dataclass(frozen=True, slots=True)
class Message:
    """Base of every wire message; ``TYPE`` is the value of the frame's ``type`` key."""

    TYPE: ClassVar[str] = ""

    def to_map(self) -> dict[str, Any]:
        m: dict[str, Any] = {"type": self.TYPE}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, tuple):
                v = [x.to_map() if isinstance(x, DirectoryEntry) else x for x in v]
            m[f.name] = v
        return m

    def encode(self) -> bytes:
        """The frame's bytes (canonical msgpack)."""
        return codec.encode(self.to_map())


@dataclass(frozen=True, slots=True)
class Hello(Message):
    """Counter → central, first frame: who I am, my fresh nonce, where my chain stands."""

    TYPE: ClassVar[str] = "hello"
    node: str
    proto: int
    nonce: bytes
    head_seq: int
    head_hash: bytes


@dataclass(frozen=True, slots=True)
class Challenge(Message):
    """Central → counter: central's fresh nonce, and its signature over the counter's.

    ``rotations``: central's key rotation statements (encoded central events, in seq
    order), so a counter that pinned an earlier key of central's can follow them to the
    key that signed ``sig``; sent only when central has rotated (the map is the one
    earlier versions know otherwise)."""

    TYPE: ClassVar[str] = "challenge"
    nonce: bytes
    sig: bytes
    rotations: tuple[bytes, ...] = ()

    def to_map(self) -> dict[str, Any]:
        m: dict[str, Any] = {"type": self.TYPE, "nonce": self.nonce, "sig": self.sig}
        if self.rotations:
            m["rotations"] = list(self.rotations)
        return m


@dataclass(frozen=True, slots=True)
class Auth(Message):
    """Counter → central: the counter's signature over central's nonce."""

    TYPE: ClassVar[str] = "auth"
    sig: bytes


@dataclass(frozen=True, slots=True)
class Welcome(Message):
    """Central → counter: accepted; what central holds of the counter; the key directory.

    ``head_seq``/``head_hash`` is the resume point: the counter pushes its events after
    it.  ``cursor`` is central's current pull position (for the status line's lag).
    ``store`` identifies central's store: pull cursors from another store (central
    restored from a backup) mean nothing, and the counter pulls from 0 again.
    """

    TYPE: ClassVar[str] = "welcome"
    proto: int
    head_seq: int
    head_hash: bytes
    cursor: int
    store: bytes
    directory: tuple[DirectoryEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Push(Message):
    """Counter → central: consecutive own events (encoded), batch numbers counting up."""

    TYPE: ClassVar[str] = "push"
    batch: int
    events: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Ack(Message):
    """Central → counter: batch ``batch`` is durably stored; central now holds up to head."""

    TYPE: ClassVar[str] = "ack"
    batch: int
    stored: int
    head_seq: int
    head_hash: bytes


@dataclass(frozen=True, slots=True)
class Pull(Message):
    """Counter → central: send me others' events after ``cursor``."""

    TYPE: ClassVar[str] = "pull"
    cursor: int


@dataclass(frozen=True, slots=True)
class Events(Message):
    """Central → counter: others' events with cursor positions in ``(after, cursor]``.

    ``more`` is true while the counter is still catching up (it should pull again from
    ``cursor``); once false, central sends new events unasked as they are committed,
    each frame starting where the previous one ended, so the counter can check that
    nothing was skipped.

    ``attest`` (protocol 4, with events only): central's signature over the frame's
    events' hashes, its store and range and the counter it is for: central checked
    every one of these events' signatures when it was pushed, and says so with one
    signature the counter checks instead of one per event (the counter still checks
    each event's own signature, later, off the hot path: :mod:`edge_node.sync.sigcheck`).
    """

    TYPE: ClassVar[str] = "events"
    after: int
    cursor: int
    events: tuple[bytes, ...]
    more: bool
    attest: bytes = b""

    def to_map(self) -> dict[str, Any]:
        m: dict[str, Any] = {"type": self.TYPE, "after": self.after, "cursor": self.cursor,
                             "events": list(self.events), "more": self.more}
        if self.attest:
            m["attest"] = self.attest
        return m


@dataclass(frozen=True, slots=True)
class SnapshotGet(Message):
    """Counter → central (protocol 5): send me your newest snapshot of the projections
    (``snapshot`` empty), or go on with snapshot ``snapshot`` from byte ``offset`` of its
    compressed stream (a download cut short)."""

    TYPE: ClassVar[str] = "snapshot_get"
    snapshot: bytes
    offset: int


@dataclass(frozen=True, slots=True)
class SnapshotPart(Message):
    """Central → counter: part of a snapshot's compressed stream, from byte ``offset``.

    The first part of an answer carries the snapshot's ``manifest`` (canonical bytes,
    :class:`protocol.snapshot.Manifest`) and central's signature over it; the parts
    after it carry neither.  ``snapshot`` is the manifest's BLAKE2b-256 (its id); empty,
    with no manifest and ``last`` true: central has no snapshot to give.  ``last``: the
    stream ends with this part."""

    TYPE: ClassVar[str] = "snapshot"
    snapshot: bytes
    manifest: bytes
    sig: bytes
    offset: int
    data: bytes
    last: bool


@dataclass(frozen=True, slots=True)
class Ping(Message):
    """Either way: are you there? Answered by a pong with the same ``n``."""

    TYPE: ClassVar[str] = "ping"
    n: int


@dataclass(frozen=True, slots=True)
class Pong(Message):
    TYPE: ClassVar[str] = "pong"
    n: int


@dataclass(frozen=True, slots=True)
class Error(Message):
    """Either way, last frame before closing: a stable ``code`` and a plain message."""

    TYPE: ClassVar[str] = "error"
    code: str
    message: str = field(default="")


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (Hello, Challenge, Auth, Welcome, Push, Ack, Pull, Events, SnapshotGet,
                SnapshotPart, Ping, Pong, Error)
}


# ---------------------------------------------------------------------------- checks


def _int(m: dict[str, Any], name: str, lo: int = 0) -> int:
    v = m[name]
    if type(v) is not int or v < lo:
        raise SchemaError(f"{name}: must be an integer ≥ {lo}")
    return v


def _bytes(m: dict[str, Any], name: str, size: int) -> bytes:
    v = m[name]
    if type(v) is not bytes or len(v) != size:
        raise SchemaError(f"{name}: must be {size} bytes")
    return v


def _str(m: dict[str, Any], name: str, max_len: int = MAX_TEXT) -> str:
    v = m[name]
    if type(v) is not str or len(v) > max_len:
        raise SchemaError(f"{name}: must be a string of at most {max_len} characters")
    return v


def _node(m: dict[str, Any], name: str) -> str:
    v = _str(m, name, 63)
    if not NODE_ID_RE.match(v):
        raise SchemaError(f"{name}: {v!r} is not a valid node id")
    return v


def _bool(m: dict[str, Any], name: str) -> bool:
    v = m[name]
    if type(v) is not bool:
        raise SchemaError(f"{name}: must be true or false")
    return v


def _event_list(m: dict[str, Any], name: str, *, allow_empty: bool) -> tuple[bytes, ...]:
    v = m[name]
    if type(v) is not list:
        raise SchemaError(f"{name}: must be a list of encoded events")
    if not allow_empty and not v:
        raise SchemaError(f"{name}: must not be empty")
    if len(v) > MAX_BATCH_EVENTS:
        raise SchemaError(f"{name}: {len(v)} events is over the batch limit {MAX_BATCH_EVENTS}")
    for i, e in enumerate(v):
        if type(e) is not bytes or not 0 < len(e) <= MAX_EVENT_SIZE:
            raise SchemaError(f"{name}[{i}]: must be 1 to {MAX_EVENT_SIZE} bytes")
    return tuple(v)


def _directory(m: dict[str, Any]) -> tuple[DirectoryEntry, ...]:
    v = m["directory"]
    if type(v) is not list or len(v) > MAX_DIRECTORY:
        raise SchemaError(f"directory: must be a list of at most {MAX_DIRECTORY} entries")
    out = []
    for i, e in enumerate(v):
        if type(e) is not dict or set(e) - {"keys"} != {"node", "key", "role", "revoked"}:
            raise SchemaError(f"directory[{i}]: must be a map of node, key, role, revoked"
                              " (and keys)")
        out.append(
            DirectoryEntry(
                node=_node(e, "node"),
                key=_bytes(e, "key", PUBLIC_KEY_SIZE),
                role=_str(e, "role", 32),
                revoked=_bool(e, "revoked"),
                keys=_spans(e, f"directory[{i}].keys") if "keys" in e else (),
            )
        )
    return tuple(out)


def _rotations(m: dict[str, Any]) -> tuple[bytes, ...]:
    v = m["rotations"]
    if type(v) is not list or not 0 < len(v) <= MAX_ROTATIONS:
        raise SchemaError(f"rotations: must be a list of 1 to {MAX_ROTATIONS} encoded events")
    for i, e in enumerate(v):
        if type(e) is not bytes or not 0 < len(e) <= MAX_EVENT_SIZE:
            raise SchemaError(f"rotations[{i}]: must be 1 to {MAX_EVENT_SIZE} bytes")
    return tuple(v)


def _spans(e: dict[str, Any], name: str) -> tuple[KeySpan, ...]:
    v = e["keys"]
    if type(v) is not list or not 0 < len(v) <= MAX_KEYS:
        raise SchemaError(f"{name}: must be a list of 1 to {MAX_KEYS} keys")
    out = []
    for j, s in enumerate(v):
        if type(s) is not dict or set(s) != {"key", "from", "until"}:
            raise SchemaError(f"{name}[{j}]: must be a map of key, from, until")
        out.append(KeySpan(_bytes(s, "key", PUBLIC_KEY_SIZE), _int(s, "from", 1),
                           _int(s, "until")))
    why = check_spans(out)
    if why:
        raise SchemaError(f"{name}: {why}")
    return tuple(out)


def _from_map(m: dict[str, Any]) -> Message:
    t = m.get("type")
    cls = MESSAGE_TYPES.get(t) if type(t) is str else None
    if cls is None:
        raise SchemaError(f"type: {t!r} is not a sync message type")
    want = {f.name for f in fields(cls)} | {"type"}
    if cls is Challenge and "rotations" not in m:
        want.discard("rotations")  # optional: only after central rotated its key
    if cls is Events and "attest" not in m:
        want.discard("attest")  # optional: protocol 4, frames with events
    if set(m) != want:
        missing = sorted(want - set(m))
        unknown = sorted(set(m) - want)
        raise SchemaError(f"{t}: missing field(s) {missing}, unknown field(s) {unknown}")
    if cls is Hello:
        return Hello(
            node=_node(m, "node"),
            proto=_int(m, "proto"),
            nonce=_bytes(m, "nonce", NONCE_SIZE),
            head_seq=_int(m, "head_seq"),
            head_hash=_bytes(m, "head_hash", HASH_SIZE),
        )
    if cls is Challenge:
        return Challenge(nonce=_bytes(m, "nonce", NONCE_SIZE), sig=_bytes(m, "sig", SIGNATURE_SIZE),
                         rotations=_rotations(m) if "rotations" in m else ())
    if cls is Auth:
        return Auth(sig=_bytes(m, "sig", SIGNATURE_SIZE))
    if cls is Welcome:
        return Welcome(
            proto=_int(m, "proto"),
            head_seq=_int(m, "head_seq"),
            head_hash=_bytes(m, "head_hash", HASH_SIZE),
            cursor=_int(m, "cursor"),
            store=_bytes(m, "store", STORE_ID_SIZE),
            directory=_directory(m),
        )
    if cls is Push:
        return Push(batch=_int(m, "batch", 1), events=_event_list(m, "events", allow_empty=False))
    if cls is Ack:
        return Ack(
            batch=_int(m, "batch", 1),
            stored=_int(m, "stored"),
            head_seq=_int(m, "head_seq"),
            head_hash=_bytes(m, "head_hash", HASH_SIZE),
        )
    if cls is Pull:
        return Pull(cursor=_int(m, "cursor"))
    if cls is Events:
        after = _int(m, "after")
        cursor = _int(m, "cursor")
        if cursor < after:
            raise SchemaError("events: cursor must not be before after")
        evs = _event_list(m, "events", allow_empty=True)
        if len(evs) > cursor - after:
            raise SchemaError("events: more events than cursor positions")
        attest = _bytes(m, "attest", SIGNATURE_SIZE) if "attest" in m else b""
        if attest and not evs:
            raise SchemaError("events: an attestation without events")
        return Events(after=after, cursor=cursor, events=evs, more=_bool(m, "more"),
                      attest=attest)
    if cls is SnapshotGet:
        sid = m["snapshot"]
        if type(sid) is not bytes or len(sid) not in (0, SNAPSHOT_ID_SIZE):
            raise SchemaError(f"snapshot: must be empty or {SNAPSHOT_ID_SIZE} bytes")
        offset = _int(m, "offset")
        if not sid and offset:
            raise SchemaError("snapshot_get: an offset needs the snapshot it is in")
        return SnapshotGet(snapshot=sid, offset=offset)
    if cls is SnapshotPart:
        return _snapshot_part(m)
    if cls is Ping:
        return Ping(n=_int(m, "n"))
    if cls is Pong:
        return Pong(n=_int(m, "n"))
    return Error(code=_str(m, "code", 64), message=_str(m, "message"))


def _snapshot_part(m: dict[str, Any]) -> SnapshotPart:
    sid, manifest, sig, data = m["snapshot"], m["manifest"], m["sig"], m["data"]
    if type(sid) is not bytes or len(sid) not in (0, SNAPSHOT_ID_SIZE):
        raise SchemaError(f"snapshot: must be empty or {SNAPSHOT_ID_SIZE} bytes")
    if type(manifest) is not bytes or len(manifest) > MAX_MANIFEST:
        raise SchemaError(f"manifest: must be at most {MAX_MANIFEST} bytes")
    if type(sig) is not bytes or len(sig) not in (0, SIGNATURE_SIZE):
        raise SchemaError(f"sig: must be empty or {SIGNATURE_SIZE} bytes")
    if bool(manifest) != bool(sig):
        raise SchemaError("snapshot: a manifest comes with its signature, and only with it")
    if type(data) is not bytes or len(data) > SNAPSHOT_CHUNK:
        raise SchemaError(f"data: must be at most {SNAPSHOT_CHUNK} bytes")
    part = SnapshotPart(snapshot=sid, manifest=manifest, sig=sig, offset=_int(m, "offset"),
                        data=data, last=_bool(m, "last"))
    if not sid and (manifest or data or not part.last or part.offset):
        raise SchemaError("snapshot: 'none to give' is one empty last part")
    return part


def decode_message(data: bytes) -> Message:
    """Decode one frame; raise DecodeError/SchemaError (ProtocolError) for anything else."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"a frame must be binary, got {type(data).__name__}")
    if len(data) > MAX_FRAME_SIZE:
        raise FrameTooLarge(f"frame of {len(data)} bytes is over the {MAX_FRAME_SIZE}-byte limit")
    value = codec.decode(bytes(data), max_size=MAX_FRAME_SIZE)
    if type(value) is not dict:
        raise SchemaError("a frame must be a map with a type")
    return _from_map(value)


class FrameTooLarge(DecodeError):
    """A frame over :data:`MAX_FRAME_SIZE`."""

    code = "too_large"


def batch_events(
    encoded: list[bytes], *, max_events: int = MAX_BATCH_EVENTS, max_bytes: int = MAX_BATCH_BYTES
) -> list[list[bytes]]:
    """Split encoded events into batches of at most ``max_events`` and ``max_bytes``.

    A single event is never split; one over ``max_bytes`` on its own still gets a batch
    (events are at most MAX_EVENT_SIZE, far below the batch limit).
    """
    batches: list[list[bytes]] = []
    cur: list[bytes] = []
    size = 0
    for e in encoded:
        if cur and (len(cur) >= max_events or size + len(e) > max_bytes):
            batches.append(cur)
            cur, size = [], 0
        cur.append(e)
        size += len(e)
    if cur:
        batches.append(cur)
    return batches
