"""A node's signing keys over its chain: which key signs which seqs.

Theory of operation
-------------------
A node signs its events with one key at a time.  Rotating the key (``onecard-central
rotate``) does not re-sign anything: the old key stays valid for the seqs it signed and
the new one takes over from a seq on.  So a node's keys are **spans**: ``(key, from,
until)``, the key valid for the node's seqs ``from ≤ seq < until`` (``until`` 0: open,
no end yet).  The spans of one node never overlap and follow each other; revocation
closes the open span after the last seq central holds, so nothing the node signs later
verifies anywhere.

Every verifier — central's ingest and ``verify``, a counter's ingest, ``verify`` and its
backup check — asks :func:`key_at` for the one key of an event's ``(node, seq)`` and
checks the signature with that key alone: an old key cannot sign past its span, a new
one cannot sign before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

OPEN = 0  # ``until`` of the span in use: no end yet


@dataclass(frozen=True, slots=True)
class KeySpan:
    """One key of a node and the seqs it signs: ``from_seq ≤ seq < until_seq``."""

    key: bytes
    from_seq: int = 1
    until_seq: int = OPEN  # exclusive; OPEN: still in use

    def holds(self, seq: int) -> bool:
        return self.from_seq <= seq and (self.until_seq == OPEN or seq < self.until_seq)

    @property
    def is_open(self) -> bool:
        return self.until_seq == OPEN


#: per node, its spans in order of ``from_seq``
Keyring = Mapping[str, Sequence[KeySpan]]


def key_at(spans: Iterable[KeySpan], seq: int) -> bytes | None:
    """The key valid at ``seq`` among one node's ``spans`` (None: no key signs it)."""
    for s in spans:
        if s.holds(seq):
            return s.key
    return None


def keyring_key(keys: Keyring, node: str, seq: int) -> bytes | None:
    """The key that signs ``node``'s event ``seq`` (None: the node or seq has none)."""
    return key_at(keys.get(node, ()), seq)


def check_spans(spans: Sequence[KeySpan]) -> str:
    """Why ``spans`` (one node's, in order) are not a valid key history ("" if they are):
    starting at seq ≥ 1, none overlapping, only the last open.  A span may be empty
    (``until == from``: a key rotated away or revoked before it signed anything)."""
    last_until = 0
    for i, s in enumerate(spans):
        if len(s.key) != 32:
            return f"span {i}: a public key is 32 bytes"
        if s.from_seq < 1:
            return f"span {i}: from must be ≥ 1"
        if s.until_seq != OPEN and s.until_seq < s.from_seq:
            return f"span {i}: until must not be before from"
        if i and (last_until == OPEN or s.from_seq < last_until):
            return f"span {i}: overlaps the span before it"
        last_until = s.until_seq
    return ""


def single(key: bytes) -> tuple[KeySpan, ...]:
    """The history of a node that never rotated: one key from its first seq on."""
    return (KeySpan(key, 1, OPEN),)
