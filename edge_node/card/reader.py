"""The card reader interface the counter uses, its events, errors, and a simulated reader.

A reader delivers frozen events through an asyncio queue, in the order they happened:

- :class:`ReaderStatus` — the reader's state changed (ready, pcscd not running, reader
  unplugged …), with a plain-language line for the counter's status bar;
- :class:`CardPresented` — a card was presented and *read* (raw file contents, not yet
  verified: :func:`edge_node.card.layout` decides), or could not be read (``fault``);
- :class:`CardRemoved` — the card left the reader.

Writing (issue, replacement, wallet stamps) is ``await reader.write_file(...)``: it
writes then reads back, and raises a :class:`CardError` when anything goes wrong.

Exceptions raised to callers (one tree)::

    CardError                    title + message for staff; ``code`` is stable
    ├── ServiceUnavailable       pcscd (the PC/SC service) is not running
    ├── ReaderUnavailable        the configured reader is not connected
    ├── NoCard                   no card in the reader
    ├── CardRemovedError         the card left the reader during an operation
    ├── UnknownCardType          not a OneCard card (no application)
    ├── ApduError                the card answered an error status word
    └── WriteNotVerified         read-back after writing differs
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol

from edge_node.card import layout

Medium = Literal["chip", "wedge", "simulated", "manual"]
ReaderState = Literal["starting", "ready", "no_service", "reader_missing", "stopped"]


# ----------------------------------------------------------------------------- errors


class CardError(Exception):
    """Base of every card/reader failure; ``title``/``message`` are shown to staff."""

    code = "card"
    title = "Card reader problem"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def fault(self) -> CardFault:
        return CardFault(self.code, self.title, self.message)


class ServiceUnavailable(CardError):
    code = "no_service"
    title = "Card service not running"


class ReaderUnavailable(CardError):
    code = "reader_missing"
    title = "Card reader not connected"


class NoCard(CardError):
    code = "no_card"
    title = "No card in the reader"


class CardRemovedError(CardError):
    code = "card_removed"
    title = "Card removed too early"


class UnknownCardType(CardError):
    code = "unknown_card_type"
    title = "Not a patient card"


class ApduError(CardError):
    code = "apdu_error"
    title = "Card refused a command"

    def __init__(self, message: str, sw: int = 0) -> None:
        super().__init__(message)
        self.sw = sw


class WriteNotVerified(CardError):
    code = "write_not_verified"
    title = "Card write failed"


# ----------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class CardFault:
    """A read that failed, as carried on an event (errors are values here)."""

    code: str
    title: str
    message: str


@dataclass(frozen=True, slots=True)
class ReaderStatus:
    reader: str
    state: ReaderState
    message: str
    at_ns: int = field(default_factory=time.monotonic_ns)


@dataclass(frozen=True, slots=True)
class CardPresented:
    """A card was presented and read.

    ``seen_ns`` is ``time.monotonic_ns()`` when the reader reported the card (the PC/SC
    event), ``read_ns`` when its files were read: latency figures start at ``seen_ns``.
    ``card_file``/``stamp_file`` are the raw EF contents (b"" when absent); ``typed``
    is the text a keyboard wedge or staff typed (b"" card_file then, unless it carried
    a signed payload).
    """

    reader: str
    medium: Medium
    uid: bytes = b""
    card_file: bytes = b""
    stamp_file: bytes = b""
    typed: str = ""
    fault: CardFault | None = None
    seen_ns: int = field(default_factory=time.monotonic_ns)
    read_ns: int = field(default_factory=time.monotonic_ns)


@dataclass(frozen=True, slots=True)
class CardRemoved:
    reader: str
    at_ns: int = field(default_factory=time.monotonic_ns)


ReaderEvent = ReaderStatus | CardPresented | CardRemoved


# -------------------------------------------------------------------------- interface


class CardReader(Protocol):
    """What the counter needs from any reader (chip, keyboard wedge, simulated)."""

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def next_event(self, timeout: float | None = None) -> ReaderEvent:
        """The next event; ``TimeoutError`` when none comes within ``timeout`` seconds."""
        ...

    def events(self) -> AsyncIterator[ReaderEvent]: ...

    async def write_file(self, fid: int, payload: bytes, *, uid: bytes) -> None:
        """Write ``payload`` to EF ``fid`` of the card with ``uid``, then read it back.

        Raises :class:`CardError`; on :class:`CardRemovedError` the card must be treated
        as not written (issue again).
        """
        ...


class EventQueue:
    """The asyncio side shared by readers: a queue, filled from any thread."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[ReaderEvent] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def put(self, event: ReaderEvent) -> None:
        """Post from the event loop's thread."""
        self._queue.put_nowait(event)

    def put_threadsafe(self, event: ReaderEvent) -> None:
        """Post from a reader thread (never blocks it)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # loop closed between check and call
            loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def get(self, timeout: float | None = None) -> ReaderEvent:
        if timeout is None:
            return await self._queue.get()
        async with asyncio.timeout(timeout):
            return await self._queue.get()

    def get_nowait(self) -> ReaderEvent | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    async def iterate(self) -> AsyncIterator[ReaderEvent]:
        while True:
            yield await self._queue.get()


# -------------------------------------------------------------------------- simulated


class SimulatedReader:
    """An in-memory chip reader for the demo and unit tests: same events, no hardware."""

    def __init__(self, name: str = "Simulated reader") -> None:
        self.name = name
        self._queue = EventQueue()
        self._card: dict[int, bytearray] | None = None
        self._uid = b""
        self.fail_next_write: CardError | None = None

    async def start(self) -> None:
        self._queue.bind(asyncio.get_running_loop())
        self._queue.put(ReaderStatus(self.name, "ready", "Simulated reader ready"))

    async def stop(self) -> None:
        self._queue.put(ReaderStatus(self.name, "stopped", "Reader stopped"))

    async def next_event(self, timeout: float | None = None) -> ReaderEvent:
        return await self._queue.get(timeout)

    def events(self) -> AsyncIterator[ReaderEvent]:
        return self._queue.iterate()

    def present(self, uid: bytes, files: dict[int, bytes]) -> None:
        """Put a card with these EF contents on the reader (an event follows)."""
        self._uid = uid
        self._card = {}
        for fid, size in layout.EF_SIZES.items():
            content = bytearray(size)
            data = files.get(fid, b"")
            content[: len(data)] = data
            self._card[fid] = content
        now = time.monotonic_ns()
        card_file, stamp_file = self._used(layout.EF_CARD), self._used(layout.EF_STAMP)
        self._queue.put(
            CardPresented(
                self.name, "simulated", uid, card_file, stamp_file, seen_ns=now, read_ns=now
            )
        )

    def remove(self) -> None:
        self._card = None
        self._queue.put(CardRemoved(self.name))

    def _used(self, fid: int) -> bytes:
        assert self._card is not None
        content = bytes(self._card[fid])
        return content[: layout.needed_length(content)]

    async def write_file(self, fid: int, payload: bytes, *, uid: bytes) -> None:
        if self.fail_next_write is not None:
            err, self.fail_next_write = self.fail_next_write, None
            raise err
        if self._card is None:
            raise NoCard("Put the card on the reader, then try again.")
        if uid != self._uid:
            raise CardRemovedError("A different card is on the reader; nothing was written.")
        framed = layout.frame(payload)
        self._card[fid][: len(framed)] = framed
        if bytes(self._card[fid][: len(framed)]) != framed:
            raise WriteNotVerified("The card did not keep what was written.")

    def content(self, fid: int) -> bytes:
        """The EF content as stored (tests)."""
        if self._card is None:
            raise NoCard("no card")
        return self._used(fid)


# ------------------------------------------------------------------ issuing, stamping


async def write_card(reader: CardReader, uid: bytes, card: layout.CardData) -> None:
    """Issue: write the signed card data to the chip with ``uid`` and verify it.

    Hand the card over only when this returns.  On :class:`CardRemovedError` the card
    is blank (the header goes first), never half-issued: present it and issue again.
    """
    if card.uid != uid:
        raise ValueError("the card data must be signed for this chip's UID")
    await reader.write_file(layout.EF_CARD, card.to_bytes(), uid=uid)


async def write_stamp(reader: CardReader, uid: bytes, stamp: layout.WalletStamp) -> None:
    """Write the wallet stamp after a money event (verified like the card data).

    A failure here never undoes the money event: the ledger has it; the next counter
    just learns of it later (through sync), and the stale stamp is flagged there.
    """
    await reader.write_file(layout.EF_STAMP, stamp.to_bytes(), uid=uid)
