"""Central's key rotation: how a counter that pinned central's old key comes to its new one.

Theory of operation
-------------------
Every counter pins central's public key (``[sync] central_key``) and authenticates
central in the handshake by it.  ``onecard-central rotate-central`` gives central a new
key the way a counter's is rotated (:mod:`protocol.keyring`): the old key stays valid for
central's seqs up to the rotation, the new one signs from the next seq on.  Its last
event signed with the old key is the **rotation statement**: ``audit.node_changed`` for
node ``central``, action ``rotate``, naming the new ``public_key`` and its ``from_seq``
(which must be the statement's own seq + 1: nothing else lies between).

Central offers its statements, in order, with every challenge (protocol 3).  A counter
whose pinned key does not verify the challenge follows them from its pin: a statement
counts only when the key reached so far verifies its signature, so the key at the end
of the walk is endorsed by the pinned key through an unbroken line of central's own
signatures.  Only if that key verifies the challenge is central accepted, and the
counter records the new pin (in its ledger) for the connections after.  A key that no
statement signed by the pin names — a stranger's key, a statement signed by any other
key — is refused, and the pin stays as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol.crypto import PUBLIC_KEY_SIZE, is_valid_signature
from protocol.errors import ProtocolError
from protocol.event import CENTRAL, Event, decode_event

KIND = "audit.node_changed"
MAX_ROTATIONS = 100  # statements followed (protocol.messages.MAX_ROTATIONS)


@dataclass(frozen=True, slots=True)
class Rotation:
    """One statement: central's event ``seq``, signed by ``old``, hands over to ``new``."""

    seq: int
    old: bytes
    new: bytes
    from_seq: int
    data: bytes  # the signed event, as central holds it


def statement_body(public_key: bytes, from_seq: int, fingerprint: str) -> dict[str, object]:
    """The body of central's rotation statement (``audit.node_changed``)."""
    return {"node": CENTRAL, "action": "rotate", "fingerprint": fingerprint,
            "from_seq": from_seq, "public_key": public_key.hex()}


def read_statement(data: bytes) -> tuple[Event, bytes] | None:
    """The event and the new key of a rotation statement (None: ``data`` is not one).

    Only the shape is checked here, not the signature: that needs the key it must be
    signed with (:func:`follow`)."""
    try:
        ev = decode_event(data)
    except ProtocolError:
        return None
    b = ev.body
    if ev.node != CENTRAL or ev.kind != KIND or type(b) is not dict:
        return None
    if b.get("node") != CENTRAL or b.get("action") != "rotate":
        return None
    hexkey, start = b.get("public_key"), b.get("from_seq")
    if type(hexkey) is not str or type(start) is not int or start != ev.seq + 1:
        return None
    try:
        key = bytes.fromhex(hexkey)
    except ValueError:
        return None
    return (ev, key) if len(key) == PUBLIC_KEY_SIZE else None


def follow(pinned: bytes, statements: Sequence[bytes]) -> tuple[bytes, tuple[Rotation, ...]]:
    """The key ``pinned`` endorses among ``statements`` (central's, in seq order), and
    the rotations that lead there (none: the pin itself).

    A statement counts when the key reached so far signed it; the others (an earlier
    rotation before the pin, anything signed by another key) are skipped."""
    key, steps = pinned, list[Rotation]()
    for data in statements[:MAX_ROTATIONS]:
        got = read_statement(data)
        if got is None:
            continue
        ev, new = got
        if steps and ev.seq <= steps[-1].seq:
            continue  # out of order: never back
        if new == key or not is_valid_signature(key, ev.signing_bytes(), ev.sig):
            continue
        steps.append(Rotation(ev.seq, key, new, ev.seq + 1, data))
        key = new
    return key, tuple(steps)
