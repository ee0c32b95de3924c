"""Keyboard-wedge readers: magnetic-stripe readers and barcode/QR scanners that type a line.

A line is one of:

- a plain card number (``0012345678``) — magnetic stripe or barcode; it carries no
  signature, so the card is identified by number only (``signed=False``);
- a magnetic-stripe track as the reader sends it: track 2 ``;0012345678=…?`` or
  track 1 ``%B0012345678^NAME^…?`` — the number is taken from it;
- a printed/QR card: ``OC1:<base64url of the signed card record>``, optionally after
  the card number in clear (``0012345678 OC1:…``); the record is the same signed
  :class:`~edge_node.card.layout.CardData` a chip holds (with an empty UID), so it is
  verified offline the same way, and a clear number that differs is refused.

Parsing is a pure function (:func:`parse_line`); :class:`WedgeReader` only turns lines
into events, and :meth:`WedgeReader.manual_entry` is the staff fallback (flagged
``medium="manual"`` so the event written for it says so).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import functools
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from edge_node.card import layout
from edge_node.card.reader import (
    CardError,
    CardFault,
    CardPresented,
    EventQueue,
    ReaderEvent,
    ReaderStatus,
)

QR_PREFIX = "OC1:"
MAX_LINE = 4096  # a QR card record is well under 1 KiB
CARD_NO_RE = re.compile(r"^[0-9A-Za-z]{4,32}$")
_TRACK2 = re.compile(r"^;([0-9]{4,32})(?:=[^?]*)?\?.?$")
_TRACK1 = re.compile(r"^%B([0-9]{4,32})\^[^?]*\?.?$")


@dataclass(frozen=True, slots=True)
class WedgeLine:
    """What a typed line says: the card number (may be ""), and a signed record if any."""

    card_no: str
    record: bytes  # framed card record from a QR code, b"" for plain numbers


class WedgeParseError(CardError):
    code = "unreadable_scan"
    title = "Scan not understood"


def encode_qr(card: layout.CardData) -> str:
    """The text a printed/QR card carries for ``card`` (issued with an empty UID)."""
    return QR_PREFIX + base64.urlsafe_b64encode(card.to_bytes()).rstrip(b"=").decode("ascii")


def parse_line(line: str) -> WedgeLine:
    """Parse one scanned/swiped line; raises :class:`WedgeParseError` for anything else."""
    text = line.strip()
    if not text:
        raise WedgeParseError("Nothing was scanned. Scan or swipe the card again.")
    qr = ""
    clear = text
    pos = text.find(QR_PREFIX)
    if pos >= 0:
        clear = text[:pos].strip().rstrip("|").strip()
        qr = text[pos + len(QR_PREFIX) :].strip()
    if qr:
        try:
            raw = base64.urlsafe_b64decode(qr + "=" * (-len(qr) % 4))
        except (binascii.Error, ValueError):
            raise WedgeParseError(
                "The QR code is damaged or incomplete. Scan it again, or type the card number."
            ) from None
        if clear and not CARD_NO_RE.match(clear):
            raise WedgeParseError(f"'{clear}' is not a card number.")
        return WedgeLine(clear, layout.frame(raw))
    for pattern in (_TRACK2, _TRACK1):
        m = pattern.match(clear)
        if m:
            return WedgeLine(m.group(1), b"")
    if CARD_NO_RE.match(clear):
        return WedgeLine(clear, b"")
    raise WedgeParseError(
        "The scan is not a card number or a patient card code. Scan or swipe again, or type "
        "the card number."
    )


class WedgeReader:
    """A keyboard-wedge reader: the TUI feeds it complete lines, or it follows ``device``.

    With a ``device`` (a serial or USB-serial scanner, ``/dev/ttyACM0``; any tty, pty or
    FIFO that delivers lines) it reads the device itself: a device that is missing or
    goes away (cable pulled) is reported as ``reader_missing`` once, and it is opened
    again every ``retry_s`` until it is back (``ready``) or the reader is stopped.
    """

    def __init__(self, name: str = "Keyboard wedge", device: str = "", *,
                 retry_s: float = 2.0) -> None:
        self.name = name
        self.device = device
        self.retry_s = retry_s
        self._queue = EventQueue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue.bind(asyncio.get_running_loop())
        if self.device:
            self._task = asyncio.create_task(self._follow(), name=f"wedge {self.device}")
        else:
            self._queue.put(ReaderStatus(self.name, "ready", "Scanner ready."))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._queue.put(ReaderStatus(self.name, "stopped", "Scanner stopped."))

    async def _follow(self) -> None:
        """Open the device, feed its lines; when it fails or goes away, say so and retry."""
        said = ""
        while True:
            try:
                transport, stream = await self._open()
            except OSError as exc:
                problem = f"Scanner {self.device} is not there ({exc.strerror}): check its cable."
            except ValueError as exc:
                problem = f"Scanner {self.device} cannot be read ({exc})."
            else:
                said = ""
                self._queue.put(ReaderStatus(self.name, "ready",
                                             f"Scanner ready on {self.device}."))
                try:
                    await self.run_stream(stream)
                except OSError:  # EIO/ENODEV: unplugged mid-read
                    pass
                finally:
                    transport.close()
                problem = f"Scanner {self.device} went away: check its cable."
            if problem != said:  # each problem said once, not at every retry
                self._queue.put(ReaderStatus(self.name, "reader_missing", problem + " Retrying."))
                said = problem
            await asyncio.sleep(self.retry_s)

    async def _open(self) -> tuple[asyncio.ReadTransport, asyncio.StreamReader]:
        """The device as a line stream (OSError: it is missing; ValueError: it is not a tty,
        pipe or socket)."""
        pipe = os.fdopen(os.open(self.device, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY),
                         "rb", 0)
        stream = asyncio.StreamReader(limit=MAX_LINE)
        try:
            transport, _ = await asyncio.get_running_loop().connect_read_pipe(
                functools.partial(asyncio.StreamReaderProtocol, stream), pipe)
        except (OSError, ValueError) as exc:
            pipe.close()
            raise ValueError(str(exc)) from exc
        return transport, stream

    async def next_event(self, timeout: float | None = None) -> ReaderEvent:
        return await self._queue.get(timeout)

    def events(self) -> AsyncIterator[ReaderEvent]:
        return self._queue.iterate()

    async def write_file(self, fid: int, payload: bytes, *, uid: bytes) -> None:
        raise CardError("Magnetic-stripe and printed cards cannot be written; nothing was stored.")

    def feed_line(self, line: str) -> CardPresented:
        """A line arrived from the scanner: post (and return) its event."""
        now = time.monotonic_ns()
        try:
            parsed = parse_line(line)
        except WedgeParseError as exc:
            event = CardPresented(self.name, "wedge", fault=exc.fault, seen_ns=now, read_ns=now)
        else:
            event = CardPresented(
                self.name, "wedge", card_file=parsed.record, typed=parsed.card_no,
                seen_ns=now, read_ns=now,
            )  # fmt: skip
        self._queue.put(event)
        return event

    def manual_entry(self, card_no: str) -> CardPresented:
        """Staff typed the card number (reader broken, card damaged): flagged as manual."""
        now = time.monotonic_ns()
        text = card_no.strip()
        fault = None
        if not CARD_NO_RE.match(text):
            fault = CardFault(
                "bad_card_number", "Not a card number", f"'{text}' is not a card number."
            )
        event = CardPresented(
            self.name, "manual", typed=text, fault=fault, seen_ns=now, read_ns=now
        )
        self._queue.put(event)
        return event

    async def run_stream(self, stream: asyncio.StreamReader, *, max_line: int = MAX_LINE) -> None:
        """Feed lines from a device stream until EOF (e.g. a scanner on a serial port)."""
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line over the stream's limit: noise, not a card
                self.feed_line("")  # "nothing was scanned: scan again"
                continue
            if not raw:
                return
            self.feed_line(raw[:max_line].decode("utf-8", "replace"))
