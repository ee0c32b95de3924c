"""The signed, hash-chained event envelope.

Every fact in onecard is an :class:`Event` appended to the ledger of the node that
wrote it.  ``sig`` is the node's Ed25519 signature over the canonical bytes of every
other field; the event's hash is BLAKE2b-256 of the canonical bytes *with* the
signature, and the next event of the node carries it in ``prev``: a hash chain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from protocol import codec
from protocol.crypto import HASH_SIZE, SIGNATURE_SIZE, ZERO_HASH, SigningKey, blake2b_256, verify
from protocol.errors import ProtocolError, SchemaError, SignatureError
from protocol.hlc import MAX_COUNTER, MAX_WALL_MS, Hlc

ENVELOPE_VERSION = 1
SAFE_INT = 2**53 - 1  # seq and every envelope integer fit every store (and JSON)
MAX_EVENT_SIZE = 64 * 1024
NODE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
KIND_RE = re.compile(r"^[a-z][a-z_]{0,30}\.[a-z][a-z_]{0,30}$")
CENTRAL = "central"

NodeId = str
Seq = int
EventId = tuple[NodeId, Seq]

_FIELDS = ("v", "node", "seq", "prev", "hlc", "operator", "kind", "body", "sig")


@dataclass(frozen=True, slots=True)
class Event:
    """One signed fact. ``body`` must not be mutated after construction."""

    v: int
    node: NodeId
    seq: Seq
    prev: bytes
    hlc: Hlc
    operator: str
    kind: str
    body: dict[str, Any]
    sig: bytes = b""
    # the signed bytes, when this event was decoded from canonical bytes (saves re-encoding)
    signed: bytes = field(default=b"", compare=False, repr=False)

    @property
    def id(self) -> EventId:
        return (self.node, self.seq)

    def unsigned_map(self) -> dict[str, Any]:
        return {
            "v": self.v,
            "node": self.node,
            "seq": self.seq,
            "prev": self.prev,
            "hlc": self.hlc.to_list(),
            "operator": self.operator,
            "kind": self.kind,
            "body": self.body,
        }

    def signing_bytes(self) -> bytes:
        """The canonical bytes the signature covers (everything but ``sig``)."""
        return self.signed or codec.encode(self.unsigned_map())

    def to_map(self) -> dict[str, Any]:
        m = self.unsigned_map()
        m["sig"] = self.sig
        return m

    def encode(self) -> bytes:
        """Canonical bytes of the whole signed event (what is stored and sent)."""
        data = codec.encode(self.to_map())
        if len(data) > MAX_EVENT_SIZE:
            raise SchemaError(f"event is {len(data)} bytes, over the {MAX_EVENT_SIZE} limit")
        return data

    def hash(self) -> bytes:
        return blake2b_256(self.encode())

    def verify_signature(self, public_key: bytes) -> None:
        """Raise SignatureError unless ``sig`` is ``public_key``'s over this event."""
        verify(public_key, self.signing_bytes(), self.sig)

    def sort_key(self) -> tuple[int, int, str, int]:
        """The one deterministic merge order: (hlc, node, seq)."""
        return (self.hlc.wall, self.hlc.counter, self.node, self.seq)


def sign_event(
    key: SigningKey,
    *,
    node: NodeId,
    seq: Seq,
    prev: bytes,
    hlc: Hlc,
    operator: str,
    kind: str,
    body: dict[str, Any],
) -> tuple[Event, bytes, bytes]:
    """Build and sign an event; return ``(event, encoded bytes, hash)``.

    The body is canonicalised first (sorted keys, tuples as lists) so that
    ``decode_event(encoded) == event`` holds for the returned event.
    """
    return sign(key, unsigned_event(node=node, seq=seq, prev=prev, hlc=hlc, operator=operator,
                                    kind=kind, body=body))


def sign(key: SigningKey, unsigned: Event) -> tuple[Event, bytes, bytes]:
    """Sign an :func:`unsigned_event`: ``(event, encoded bytes, hash)``."""
    ev = replace(unsigned, sig=key.sign(unsigned.signing_bytes()))
    data = ev.encode()
    return ev, data, blake2b_256(data)


def unsigned_event(*, node: NodeId, seq: Seq, prev: bytes, hlc: Hlc, operator: str,
                   kind: str, body: dict[str, Any]) -> Event:
    """The event :func:`sign_event` signs (body canonicalised, envelope checked), without
    its signature: what a dry run previews."""
    canon_body = codec.decode(codec.encode(body))
    unsigned = Event(ENVELOPE_VERSION, node, seq, prev, hlc, operator, kind, canon_body)
    check_envelope(unsigned, signed=False)
    return unsigned


def check_envelope(ev: Event, *, signed: bool = True) -> None:
    """Raise SchemaError naming the first envelope field that is out of shape."""
    if ev.v != ENVELOPE_VERSION:
        raise SchemaError(f"v: envelope version {ev.v} is not supported (want {ENVELOPE_VERSION})")
    if type(ev.node) is not str or not NODE_ID_RE.match(ev.node):
        raise SchemaError(f"node: {ev.node!r} is not a valid node id (a-z, 0-9, . _ -)")
    if type(ev.seq) is not int or not 1 <= ev.seq <= SAFE_INT:
        raise SchemaError(f"seq: {ev.seq!r} must be an integer from 1 to 2^53-1")
    if type(ev.prev) is not bytes or len(ev.prev) != HASH_SIZE:
        raise SchemaError("prev: must be 32 bytes")
    if ev.seq == 1 and ev.prev != ZERO_HASH:
        raise SchemaError("prev: the first event of a node must have 32 zero bytes as prev")
    if not 0 <= ev.hlc.wall <= MAX_WALL_MS or not 0 <= ev.hlc.counter <= MAX_COUNTER:
        raise SchemaError(f"hlc: wall must be 0…{MAX_WALL_MS} ms (year 9999) and counter "
                          f"0…{MAX_COUNTER}; got {ev.hlc.to_list()}")
    if type(ev.operator) is not str or not 0 < len(ev.operator) <= 64:
        raise SchemaError("operator: must be a non-empty string of at most 64 characters")
    if type(ev.kind) is not str or not KIND_RE.match(ev.kind):
        raise SchemaError(f"kind: {ev.kind!r} is not of the form area.verb")
    if type(ev.body) is not dict:
        raise SchemaError("body: must be a map")
    if signed and (type(ev.sig) is not bytes or len(ev.sig) != SIGNATURE_SIZE):
        raise SchemaError("sig: must be 64 bytes")


_FIELD_SET = frozenset(_FIELDS)


def event_from_map(m: Any, signed: bytes = b"") -> Event:
    """Build an Event from a decoded map, refusing missing or unknown fields."""
    # The usual shape (the nine fields, each of its type) checked in one pass, then the
    # envelope's rules (every ingest decodes each event it receives: the hot path);
    # anything else takes the checks field by field, which name what is wrong.
    if type(m) is dict and len(m) == 9 and m.keys() == _FIELD_SET:
        hlc = m["hlc"]
        if (type(m["v"]) is int and type(m["node"]) is str and type(m["seq"]) is int
                and type(m["prev"]) is bytes and type(m["operator"]) is str
                and type(m["kind"]) is str and type(m["body"]) is dict
                and type(m["sig"]) is bytes and type(hlc) is list and len(hlc) == 2
                and type(hlc[0]) is int and type(hlc[1]) is int):
            ev = Event(m["v"], m["node"], m["seq"], m["prev"], Hlc(hlc[0], hlc[1]),
                       m["operator"], m["kind"], m["body"], m["sig"], signed)
            check_envelope(ev)
            return ev
    return checked_event_from_map(m, signed)


def checked_event_from_map(m: Any, signed: bytes = b"") -> Event:
    """:func:`event_from_map` without its one-pass check of the usual shape: each field
    checked in turn, the first that is wrong named."""
    if type(m) is not dict:
        raise SchemaError("event: must be a map")
    missing = [f for f in _FIELDS if f not in m]
    if missing:
        raise SchemaError(f"event: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(m) - set(_FIELDS))
    if unknown:
        raise SchemaError(f"event: unknown field(s) {', '.join(unknown)}")
    hlc = m["hlc"]
    if type(hlc) is not list or len(hlc) != 2 or not all(type(x) is int for x in hlc):
        raise SchemaError("hlc: must be [wall_ms, counter] integers")
    for name, typ in (("v", int), ("seq", int), ("node", str), ("operator", str), ("kind", str),
                      ("prev", bytes), ("sig", bytes), ("body", dict)):
        if type(m[name]) is not typ:
            raise SchemaError(f"{name}: expected {typ.__name__}, got {type(m[name]).__name__}")
    ev = Event(m["v"], m["node"], m["seq"], m["prev"], Hlc(hlc[0], hlc[1]), m["operator"],
               m["kind"], m["body"], m["sig"], signed)
    check_envelope(ev)
    return ev


# A canonical event is a 9-entry map whose last two entries are "sig" (64-byte bin) and
# "v" (a fixint): its signed bytes are the same map without the "sig" entry.
_SIG_ENTRY = b"\xa3sig\xc4\x40"
_TAIL = len(_SIG_ENTRY) + 64 + 3


def signed_parts(data: bytes) -> tuple[bytes, bytes] | None:
    """``(signed bytes, signature)`` of a canonical encoded event, cut from its bytes
    without decoding them (None: not laid out as a canonical event is; decode it)."""
    if (len(data) > _TAIL and data[0] == 0x89
            and data[-_TAIL:-_TAIL + len(_SIG_ENTRY)] == _SIG_ENTRY
            and data[-3:-1] == b"\xa1v" and data[-1] < 0x80):
        return b"\x88" + data[1:-_TAIL] + data[-3:], data[-_TAIL + len(_SIG_ENTRY):-3]
    return None


def decode_event(data: bytes) -> Event:
    """Decode and shape-check one encoded event (signature not checked: see verify)."""
    m = codec.decode(data, max_size=MAX_EVENT_SIZE)
    parts = signed_parts(bytes(data))
    return event_from_map(m, parts[0] if parts is not None else b"")


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where a node's chain stands: last seq and that event's hash."""

    seq: Seq = 0
    hash: bytes = ZERO_HASH


def check_link(head: ChainHead, ev: Event) -> None:
    """Raise ProtocolError unless ``ev`` is the next event after ``head``."""
    if ev.seq != head.seq + 1:
        raise ChainError(f"{ev.node}: expected seq {head.seq + 1}, got {ev.seq}")
    if ev.prev != head.hash:
        raise ChainError(f"{ev.node} seq {ev.seq}: prev does not match the hash of seq {head.seq}")


class ChainError(ProtocolError):
    """An event does not continue its node's hash chain (gap, reorder or alteration)."""

    code = "chain"


def verify_chain(
    events: list[Event], public_key: bytes, head: ChainHead = ChainHead()
) -> ChainHead:
    """Check signatures and links of consecutive events of one node; return the new head."""
    for ev in events:
        check_link(head, ev)
        try:
            ev.verify_signature(public_key)
        except SignatureError:
            raise SignatureError(f"{ev.node} seq {ev.seq}: signature does not verify") from None
        head = ChainHead(ev.seq, ev.hash())
    return head
