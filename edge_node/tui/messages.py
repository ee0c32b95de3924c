"""Messages between the counter's widgets and screens (posted, never called across)."""

from __future__ import annotations

from textual.message import Message

from edge_node.service import Receipt


class CardTapped(Message):
    """A card was presented (reader) or its number typed/scanned; ``entry`` as in events."""

    def __init__(self, card_no: str, entry: str = "chip", tapped: object = None) -> None:
        super().__init__()
        self.card_no = card_no
        self.entry = entry
        self.tapped = tapped  # the cardsource.Tapped read from a reader (None: typed)


class ReaderNotice(Message):
    """Something the reader wants staff to know (status change, unreadable card)."""

    def __init__(self, text: str, problem: bool = False) -> None:
        super().__init__()
        self.text = text
        self.problem = problem


class OperationDone(Message):
    """A business was done and committed: show it, print it, refresh the panel."""

    def __init__(self, receipt: Receipt, card_no: str = "") -> None:
        super().__init__()
        self.receipt = receipt
        self.card_no = card_no
