"""From card-reader events to what the counter acts on: a card number, or a notice.

Works with :class:`edge_node.card.reader.CardReader` (chip, keyboard wedge, simulated):
a chip's EF_CARD is parsed with :mod:`edge_node.card.layout`; a wedge's ``typed`` text
is the number itself.  :class:`TypedCardSource` is the smallest reader there is (a
card number per tap), for tests and for counters with no reader at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol


class CardSource(Protocol):
    """What the counter needs from a reader: start, stop, and a stream of events."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def events(self) -> AsyncIterator[Any]: ...


@dataclass(frozen=True, slots=True)
class Tapped:
    """A card number read: ``entry`` is ``chip``, ``wedge`` or ``manual`` (event field)."""

    card_no: str
    entry: str


@dataclass(frozen=True, slots=True)
class Notice:
    """A reader status line or an unreadable card, for the status bar / panel."""

    text: str
    problem: bool = False
    blank: bool = False


def interpret(event: Any) -> Tapped | Notice | None:
    """What a reader event means for the counter (``None``: nothing to show)."""
    if hasattr(event, "state") and hasattr(event, "message"):  # ReaderStatus
        return Notice(str(event.message), problem=event.state in ("no_service",
                                                                    "reader_missing"))
    if not (hasattr(event, "card_file") or hasattr(event, "typed")):  # CardRemoved
        return None
    fault = getattr(event, "fault", None)
    if fault is not None:
        return Notice(f"{fault.title}: {fault.message}", problem=True)
    typed = str(getattr(event, "typed", "") or "").strip()
    raw = bytes(getattr(event, "card_file", b"") or b"")
    if raw:
        try:
            from edge_node.card.layout import CardFormatError, parse_card_file
        except ImportError:  # the card package is optional for the TUI
            return Notice("this counter cannot read chip cards", problem=True)
        try:
            card = parse_card_file(raw)
        except CardFormatError as exc:
            return Notice(str(exc), problem=True, blank=exc.code == "blank")
        return Tapped(card.card_no, "chip")
    if typed:
        medium = getattr(event, "medium", "wedge")
        return Tapped(typed, "manual" if medium == "manual" else "wedge")
    return Notice("the card holds no data (blank or not issued)", problem=True, blank=True)


@dataclass(frozen=True, slots=True)
class TypedCard:
    """The event :class:`TypedCardSource` delivers (shaped like a wedge ``CardPresented``)."""

    typed: str
    medium: str = "wedge"
    card_file: bytes = b""
    fault: None = None


class TypedCardSource:
    """A reader that "reads" whatever number :meth:`tap` is given."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[TypedCard] = asyncio.Queue()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def tap(self, card_no: str) -> None:
        self._queue.put_nowait(TypedCard(card_no))

    async def events(self) -> AsyncIterator[Any]:  # type: ignore[override]
        while True:
            yield await self._queue.get()
