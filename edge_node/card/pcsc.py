"""The PC/SC chip card reader (pyscard's ``smartcard.scard`` over pcscd).

Theory of operation
-------------------
One *watcher* thread per configured reader owns a PC/SC context and sits in
``SCardGetStatusChange`` (event-driven: it wakes when pcscd reports a change, the
timeout only bounds how long a dead service can go unnoticed).  When a card arrives it
reads it at once, in the same thread, and posts one :class:`CardPresented` (raw files +
the time of the PC/SC event) to the asyncio loop; removal posts :class:`CardRemoved`.

Writes run in a second, single-thread executor with its own context (PC/SC contexts
are per thread), inside a card transaction, and read the file back before returning.

Nothing blocking ever runs on the event loop.  Failures become :class:`ReaderStatus`
events (pcscd not running, reader missing) and the watcher retries until stopped:
pcscd restarting or a reader plugged back in needs nobody to press anything.  Several
readers on one pcscd are several :class:`PcscReader` objects, each with its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from smartcard import scard  # type: ignore[import-untyped]

from edge_node.card import layout
from edge_node.card.reader import (
    ApduError,
    CardError,
    CardFault,
    CardPresented,
    CardRemoved,
    CardRemovedError,
    EventQueue,
    NoCard,
    ReaderEvent,
    ReaderState,
    ReaderStatus,
    ReaderUnavailable,
    ServiceUnavailable,
    UnknownCardType,
    WriteNotVerified,
)

log = logging.getLogger("onecard.card.pcsc")

PNP = "\\\\?PnP?\\Notification"

_SERVICE_GONE = {
    scard.SCARD_E_NO_SERVICE,
    scard.SCARD_E_SERVICE_STOPPED,
    scard.SCARD_E_INVALID_HANDLE,
    scard.SCARD_F_COMM_ERROR,
}
_READER_GONE = {
    scard.SCARD_E_UNKNOWN_READER,
    scard.SCARD_E_READER_UNAVAILABLE,
    scard.SCARD_E_NO_READERS_AVAILABLE,
}
_CARD_GONE = {
    scard.SCARD_W_REMOVED_CARD,
    scard.SCARD_E_NO_SMARTCARD,
    scard.SCARD_W_UNPOWERED_CARD,
    scard.SCARD_E_COMM_DATA_LOST,
    scard.SCARD_W_UNRESPONSIVE_CARD,
}
# The card was reset or lost for one APDU: pcscd powers idle cards down and up again
# (and can race a new connection), or the card really left. Retried once on a fresh
# connection; if the card is gone, the retry fails and the first error stands.
_CARD_RESET = {
    scard.SCARD_W_RESET_CARD,
    scard.SCARD_E_NOT_TRANSACTED,  # pcsc-lite: the reader driver lost the card mid-APDU
}


class _CardReset(CardRemovedError):
    """A card error worth one retry on a new connection (see ``_CARD_RESET``)."""


NO_SERVICE_MSG = (
    "The card service (pcscd) is not running. Cards cannot be read; enter the card number "
    "by hand, or ask IT to start pcscd. Reading resumes by itself when it is back."
)


def _reader_missing_msg(name: str) -> str:
    return (
        f"Card reader '{name}' is not connected. Check its cable; reading resumes by itself "
        "when it is back. Meanwhile enter card numbers by hand."
    )


def _err_text(hr: int) -> str:
    try:
        return str(scard.SCardGetErrorMessage(hr)).strip()
    except Exception:  # pragma: no cover - pyscard always has a message
        return hex(hr & 0xFFFFFFFF)


def _raise_for(hr: int, reader: str, doing: str) -> None:
    """Turn a PC/SC result code into the CardError staff should see."""
    if hr == scard.SCARD_S_SUCCESS:
        return
    if hr in _SERVICE_GONE:
        raise ServiceUnavailable(NO_SERVICE_MSG)
    if hr in _READER_GONE:
        raise ReaderUnavailable(_reader_missing_msg(reader))
    if hr in _CARD_GONE or hr in _CARD_RESET:
        cls = _CardReset if hr in _CARD_RESET else CardRemovedError
        raise cls(
            f"The card left the reader (or stopped answering) while {doing}. Put it back "
            f"and hold it still until the counter says it is done. [{_err_text(hr)}]"
        )
    raise CardError(f"The reader failed while {doing}: {_err_text(hr)}.")


class _Card:
    """One connected card: transmit with status-word checks (runs in a reader thread)."""

    def __init__(self, reader: str, handle: Any, protocol: int) -> None:
        self.reader = reader
        self.handle = handle
        self.protocol = protocol

    def transmit(self, apdu: bytes, doing: str) -> tuple[bytes, int]:
        hr, response = scard.SCardTransmit(self.handle, self.protocol, list(apdu))
        _raise_for(hr, self.reader, doing)
        if len(response) < 2:
            # vpcd reports a card that vanished mid-APDU as an empty answer.
            raise _CardReset(
                f"The card stopped answering while {doing}. Put it back and hold it still "
                "until the counter says it is done."
            )
        sw = (response[-2] << 8) | response[-1]
        return bytes(response[:-2]), sw

    def expect_ok(self, apdu: bytes, doing: str, ok: tuple[int, ...] = (0x9000,)) -> bytes:
        data, sw = self.transmit(apdu, doing)
        if sw not in ok:
            raise ApduError(
                f"The card refused {doing} (status {sw:04X}: {layout.sw_text(sw)}).", sw
            )
        return data

    def uid(self) -> bytes:
        data, sw = self.transmit(layout.GET_UID, "reading the card's serial number")
        return data if sw == 0x9000 else b""

    def select_app(self) -> None:
        _, sw = self.transmit(layout.select_aid(), "selecting the patient card application")
        if sw in (0x6A82, 0x6A81, 0x6D00, 0x6E00):
            raise UnknownCardType(
                "This card is not a hospital patient card (it has no OneCard application). "
                "Ask for the patient card, or enter the card number by hand."
            )
        if sw != 0x9000:
            raise ApduError(
                f"The card refused opening the patient card application (status {sw:04X}).", sw
            )

    def read_ef(self, fid: int, *, optional: bool = False) -> bytes:
        _, sw = self.transmit(layout.select_ef(fid), f"selecting file {fid:04X}")
        if sw == 0x6A82 and optional:
            return b""
        if sw != 0x9000:
            raise ApduError(f"The card has no file {fid:04X} (status {sw:04X}).", sw)
        ok = (0x9000, 0x6282)
        data = self.expect_ok(layout.read_binary(0, 0), f"reading file {fid:04X}", ok)
        need = layout.needed_length(data[: layout.HEADER_SIZE])
        need = min(need, layout.EF_SIZES.get(fid, need))
        while len(data) < need:
            le = min(layout.READ_CHUNK, need - len(data)) & 0xFF
            more = self.expect_ok(layout.read_binary(len(data), le), f"reading file {fid:04X}", ok)
            if not more:
                break
            data += more
        return data[:need] if any(data[: layout.HEADER_SIZE]) else data[: layout.HEADER_SIZE]


def _connect(ctx: Any, reader: str) -> _Card:
    hr, handle, protocol = scard.SCardConnect(
        ctx, reader, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1
    )
    if hr == scard.SCARD_E_NO_SMARTCARD or hr == scard.SCARD_W_REMOVED_CARD:
        raise NoCard("Put the card on the reader, then try again.")
    if hr == scard.SCARD_W_UNRESPONSIVE_CARD or hr == scard.SCARD_E_PROTO_MISMATCH:
        raise UnknownCardType("The card does not answer like a patient card. Try it again.")
    _raise_for(hr, reader, "connecting to the card")
    return _Card(reader, handle, protocol)


def _disconnect(card: _Card) -> None:
    with contextlib.suppress(Exception):
        scard.SCardDisconnect(card.handle, scard.SCARD_LEAVE_CARD)


def read_card_files(card: _Card) -> tuple[bytes, bytes, bytes]:
    """(uid, EF_CARD, EF_STAMP) of a connected card; raises CardError."""
    uid = card.uid()
    card.select_app()
    card_file = card.read_ef(layout.EF_CARD)
    stamp_file = card.read_ef(layout.EF_STAMP, optional=True)
    return uid, card_file, stamp_file


class PcscReader:
    """A chip reader on pcscd, watched by name (e.g. ``"ACS ACR122U 00 00"``)."""

    def __init__(self, reader_name: str, *, watch_timeout: float = 2.0, retry: float = 0.5):
        self.name = reader_name
        self.watch_timeout = watch_timeout
        self.retry = retry
        self._queue = EventQueue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._watch_ctx: Any = None
        self._ctx_lock = threading.Lock()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"pcsc-io:{reader_name}")
        self._io_ctx: Any = None
        self._status: tuple[ReaderState, str] | None = None
        self.card_present = False

    # ------------------------------------------------------------------ asyncio side

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._queue.bind(asyncio.get_running_loop())
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, name=f"pcsc-watch:{self.name}", daemon=True
        )
        self._thread.start()

    async def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stop.set()
        with self._ctx_lock:
            if self._watch_ctx is not None:
                scard.SCardCancel(self._watch_ctx)
        await asyncio.to_thread(thread.join, 5.0)
        self._thread = None
        await asyncio.get_running_loop().run_in_executor(self._io, self._release_io_ctx)
        self._queue.put(ReaderStatus(self.name, "stopped", "Card reader stopped."))

    async def next_event(self, timeout: float | None = None) -> ReaderEvent:
        return await self._queue.get(timeout)

    def events(self) -> AsyncIterator[ReaderEvent]:
        return self._queue.iterate()

    async def write_file(self, fid: int, payload: bytes, *, uid: bytes) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._io, self._write_blocking, fid, payload, uid)

    async def read_now(self) -> CardPresented:
        """Read the card that is on the reader now (e.g. to re-check after an error)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._io, self._read_blocking)

    # ------------------------------------------------------------------- I/O thread

    def _io_context(self) -> Any:
        if self._io_ctx is None:
            hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            _raise_for(hr, self.name, "opening the card service")
            self._io_ctx = ctx
        return self._io_ctx

    def _release_io_ctx(self) -> None:
        if self._io_ctx is not None:
            with contextlib.suppress(Exception):
                scard.SCardReleaseContext(self._io_ctx)
            self._io_ctx = None

    def _with_card(self, fn: Any) -> Any:
        """Run ``fn(card)`` on a fresh connection; one retry on a reset or stale context."""
        first: CardError | None = None
        for _attempt in (1, 2):
            try:
                card = _connect(self._io_context(), self.name)
            except ServiceUnavailable:
                # A context from before a pcscd restart is dead: retry with a new one.
                self._release_io_ctx()
                if first is not None:
                    raise first from None
                first = ServiceUnavailable(NO_SERVICE_MSG)
                continue
            except CardError:
                if first is not None:
                    raise first from None
                raise
            try:
                return fn(card)
            except _CardReset as exc:
                if first is not None:
                    raise
                first = exc
            finally:
                _disconnect(card)
        assert first is not None
        raise first

    def _read_blocking(self) -> CardPresented:
        seen = time.monotonic_ns()

        def read(card: _Card) -> CardPresented:
            uid, card_file, stamp_file = read_card_files(card)
            return CardPresented(
                self.name, "chip", uid, card_file, stamp_file, seen_ns=seen,
                read_ns=time.monotonic_ns(),
            )  # fmt: skip

        result: CardPresented = self._with_card(read)
        return result

    def _write_blocking(self, fid: int, payload: bytes, uid: bytes) -> None:
        size = layout.EF_SIZES[fid]
        plan = layout.write_plan(size, payload)
        expected = layout.frame(payload)

        def write(card: _Card) -> None:
            hr = scard.SCardBeginTransaction(card.handle)
            _raise_for(hr, self.name, "starting to write the card")
            try:
                if card.uid() != uid:
                    raise CardRemovedError(
                        "A different card is on the reader now; nothing was written to it. "
                        "Put the original card back."
                    )
                card.select_app()
                card.expect_ok(layout.select_ef(fid), f"selecting file {fid:04X}")
                for offset, chunk in plan:
                    card.expect_ok(layout.update_binary(offset, chunk), "writing the card")
                back = card.read_ef(fid)
                if back != expected:
                    raise WriteNotVerified(
                        "The card did not keep what was written (read-back differs). Try "
                        "again; if it fails twice, use a new card."
                    )
            finally:
                with contextlib.suppress(Exception):
                    scard.SCardEndTransaction(card.handle, scard.SCARD_LEAVE_CARD)

        self._with_card(write)

    # --------------------------------------------------------------- watcher thread

    def _status_event(self, state: ReaderState, message: str) -> None:
        if self._status == (state, message):
            return
        self._status = (state, message)
        log.info("reader=%s state=%s", self.name, state)
        self._queue.put_threadsafe(ReaderStatus(self.name, state, message))

    def _card_gone(self) -> None:
        if self.card_present:
            self.card_present = False
            self._queue.put_threadsafe(CardRemoved(self.name))

    def _watch(self) -> None:
        while not self._stop.is_set():
            hr, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if hr != scard.SCARD_S_SUCCESS:
                self._card_gone()
                self._status_event("no_service", NO_SERVICE_MSG)
                self._stop.wait(self.retry)
                continue
            with self._ctx_lock:
                self._watch_ctx = ctx
            try:
                self._watch_context(ctx)
            except Exception:  # keep watching whatever happened; the log says what
                log.exception("reader=%s watcher failed; restarting", self.name)
                self._stop.wait(self.retry)
            finally:
                with self._ctx_lock:
                    self._watch_ctx = None
                with contextlib.suppress(Exception):
                    scard.SCardReleaseContext(ctx)

    def _watch_context(self, ctx: Any) -> None:
        """Watch until the service goes away (return) or stop is requested."""
        timeout_ms = int(self.watch_timeout * 1000)
        while not self._stop.is_set():
            hr, readers = scard.SCardListReaders(ctx, [])
            if hr in _SERVICE_GONE:
                self._card_gone()
                self._status_event("no_service", NO_SERVICE_MSG)
                return
            if hr != scard.SCARD_S_SUCCESS or self.name not in readers:
                self._card_gone()
                self._status_event("reader_missing", _reader_missing_msg(self.name))
                # Sleep until pcscd's reader list changes (event), bounded by the timeout.
                hr, _ = scard.SCardGetStatusChange(
                    ctx, timeout_ms, [(PNP, scard.SCARD_STATE_UNAWARE | (len(readers) << 16))]
                )
                if hr in _SERVICE_GONE:
                    self._card_gone()
                    self._status_event("no_service", NO_SERVICE_MSG)
                    return
                if hr == scard.SCARD_E_CANCELLED:
                    return
                self._stop.wait(0.05)  # never spin if the service answers at once
                continue
            self._status_event("ready", f"Card reader '{self.name}' ready.")
            if not self._watch_reader(ctx, timeout_ms):
                return

    def _watch_reader(self, ctx: Any, timeout_ms: int) -> bool:
        """Follow the reader's state; False when the service went away or stop was asked."""
        current = scard.SCARD_STATE_UNAWARE
        while not self._stop.is_set():
            hr, states = scard.SCardGetStatusChange(ctx, timeout_ms, [(self.name, current)])
            seen = time.monotonic_ns()
            if hr == scard.SCARD_E_TIMEOUT:
                continue
            if hr == scard.SCARD_E_CANCELLED:
                return False
            if hr in _SERVICE_GONE:
                self._card_gone()
                self._status_event("no_service", NO_SERVICE_MSG)
                return False
            if hr in _READER_GONE:
                self._card_gone()
                return True
            if hr != scard.SCARD_S_SUCCESS:
                log.warning("reader=%s status error %s", self.name, _err_text(hr))
                self._stop.wait(self.retry)
                return True
            _, event_state, _atr = states[0]
            if event_state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_UNAVAILABLE):
                self._card_gone()
                return True  # the reader left: back to waiting for it
            current = event_state & ~scard.SCARD_STATE_CHANGED
            if event_state & scard.SCARD_STATE_PRESENT:
                if not self.card_present:
                    self.card_present = True
                    self._queue.put_threadsafe(self._read_presented(ctx, seen, event_state))
            elif event_state & scard.SCARD_STATE_EMPTY:
                self._card_gone()
        return False

    def _read_presented(self, ctx: Any, seen: int, event_state: int) -> CardPresented:
        fault: CardFault | None = None
        uid = card_file = stamp_file = b""
        if event_state & scard.SCARD_STATE_MUTE:
            fault = UnknownCardType(
                "The card does not answer. It may not be a chip card, or be damaged."
            ).fault
        else:
            for attempt in (1, 2):
                card: _Card | None = None
                try:
                    card = _connect(ctx, self.name)
                    uid, card_file, stamp_file = read_card_files(card)
                    fault = None
                    break
                except _CardReset as exc:
                    fault = exc.fault
                    if attempt == 2:
                        break
                except CardError as exc:
                    fault = exc.fault
                    break
                finally:
                    if card is not None:
                        _disconnect(card)
        return CardPresented(
            self.name, "chip", uid, card_file, stamp_file, fault=fault, seen_ns=seen,
            read_ns=time.monotonic_ns(),
        )  # fmt: skip
