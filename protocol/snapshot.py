"""A snapshot of the projections at a cursor position, signed by central (pure).

Theory of operation
-------------------
A counter in a hospital with years of history does not fold ten million events before
it can serve a patient: it takes central's *snapshot* — the projections every counter
folds (patients, cards, accounts, charges, … and the patient search index), as folded
from every event up to one position of central's store — and then pulls the events
after that position as any counter does.  The snapshot is a SQLite file in the
counter ledger's own schema with no events in it, sent as one zstd stream
(:mod:`central.snapshot` makes it, :mod:`edge_node.snapshot` installs it).

The :class:`Manifest` says what the file is: central's store and the position it was
folded to, each node's chain head there (so the events after it link on, and a
counter's own chain continues where central holds it), the clock, the fold's and the
index's fingerprints (a counter of another version cannot use it), the file's size and
the stream's size and BLAKE2b-256 (the file is the stream's one decompression: the hash
of the stream vouches for it, and is five times less to hash).  Central signs the manifest's
canonical bytes with its key (:func:`signing_payload`); the counter checks that
signature with the key central authenticated with, and the file's hash against the
manifest, before anything is installed.

What the counter then trusts: central's signature for the history before the
position (those events stay at central, whose ``verify`` walks their chains), and
each event after it verified as ever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protocol import codec
from protocol.crypto import HASH_SIZE, blake2b_256
from protocol.errors import SchemaError
from protocol.event import NODE_ID_RE, ChainHead

SNAPSHOT_CONTEXT = "onecard-snapshot-v1"
FORMAT = 1  # the file's layout: a counter ledger's schema, no events, zstd stream


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a snapshot file is (the bytes central signs: :meth:`encode`)."""

    store: bytes  # central's store id (positions count in it)
    cursor: int  # every event at a position ≤ cursor is folded in, none after
    events: int  # how many events that is
    heads: dict[str, ChainHead]  # each node's chain head at ``cursor``
    clock: tuple[int, int]  # (wall ms, counter): the newest stamp folded in
    registry: str  # the fold's fingerprint (protocol.domain.REGISTRY.fingerprint())
    index: str  # the search index's fingerprint ("" when names were not indexed)
    raw_size: int  # bytes of the SQLite file
    hash: bytes  # BLAKE2b-256 of its zstd stream (what is sent)
    size: int  # bytes of that stream
    made_ms: int
    format: int = FORMAT
    extra: dict[str, Any] = field(default_factory=dict)

    def to_map(self) -> dict[str, Any]:
        return {
            "context": SNAPSHOT_CONTEXT, "format": self.format, "store": self.store,
            "cursor": self.cursor, "events": self.events,
            "heads": [[n, h.seq, h.hash] for n, h in sorted(self.heads.items())],
            "clock": list(self.clock), "registry": self.registry, "index": self.index,
            "raw_size": self.raw_size, "hash": self.hash, "size": self.size,
            "made_ms": self.made_ms, "extra": self.extra,
        }

    def encode(self) -> bytes:
        return codec.encode(self.to_map())

    @property
    def id(self) -> bytes:
        """The snapshot's id: the BLAKE2b-256 of the manifest's bytes."""
        return blake2b_256(self.encode())

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        """The manifest in ``data`` (canonical bytes), or SchemaError/DecodeError."""
        m = codec.decode(data)
        want = {"context", "format", "store", "cursor", "events", "heads", "clock",
                "registry", "index", "raw_size", "hash", "size", "made_ms", "extra"}
        if type(m) is not dict or set(m) != want:
            raise SchemaError("snapshot manifest: not a manifest map")
        if m["context"] != SNAPSHOT_CONTEXT:
            raise SchemaError(f"snapshot manifest: context {m['context']!r}")
        if m["format"] != FORMAT:
            raise SchemaError(f"snapshot manifest: format {m['format']!r} is not one this "
                              f"version reads ({FORMAT})")
        heads: dict[str, ChainHead] = {}
        if type(m["heads"]) is not list:
            raise SchemaError("snapshot manifest: heads must be a list")
        for h in m["heads"]:
            if (type(h) is not list or len(h) != 3 or type(h[0]) is not str
                    or not NODE_ID_RE.match(h[0]) or type(h[1]) is not int or h[1] < 1
                    or type(h[2]) is not bytes or len(h[2]) != HASH_SIZE or h[0] in heads):
                raise SchemaError(f"snapshot manifest: bad head {h!r}")
            heads[h[0]] = ChainHead(h[1], h[2])
        for name in ("cursor", "events", "raw_size", "size", "made_ms"):
            if type(m[name]) is not int or m[name] < 0:
                raise SchemaError(f"snapshot manifest: {name} must be an integer ≥ 0")
        clock = m["clock"]
        if type(clock) is not list or len(clock) != 2 or any(type(c) is not int for c in clock):
            raise SchemaError("snapshot manifest: clock must be [wall, counter]")
        for name in ("store", "hash"):
            if type(m[name]) is not bytes:
                raise SchemaError(f"snapshot manifest: {name} must be bytes")
        if len(m["hash"]) != HASH_SIZE:
            raise SchemaError("snapshot manifest: hash must be a BLAKE2b-256")
        for name in ("registry", "index"):
            if type(m[name]) is not str:
                raise SchemaError(f"snapshot manifest: {name} must be text")
        if type(m["extra"]) is not dict:
            raise SchemaError("snapshot manifest: extra must be a map")
        return cls(store=m["store"], cursor=m["cursor"], events=m["events"], heads=heads,
                   clock=(clock[0], clock[1]), registry=m["registry"], index=m["index"],
                   raw_size=m["raw_size"], hash=m["hash"], size=m["size"],
                   made_ms=m["made_ms"], extra=m["extra"])


def signing_payload(manifest: bytes) -> bytes:
    """The bytes central signs for a snapshot: its context and the manifest's bytes."""
    return codec.encode([SNAPSHOT_CONTEXT, manifest])
