"""Patient cards: readers (PC/SC chip, keyboard wedge, simulated), the chip layout, checks.

``edge_node.card.layout`` is pure (bytes and keys in, values out); the readers only move
bytes and deliver events to the asyncio loop.  ``edge_node.card.pcsc`` needs pyscard and
is imported only by whoever configures a chip reader.
"""

from edge_node.card.layout import (
    BalanceView,
    CardData,
    CardRecord,
    Identity,
    IssueRecord,
    KeyDirectory,
    KnownBalance,
    Refusal,
    StaticKeys,
    WalletStamp,
    check_record,
    decide_balance,
    identify,
    issue_card,
    make_stamp,
)
from edge_node.card.reader import (
    CardError,
    CardPresented,
    CardReader,
    CardRemoved,
    ReaderEvent,
    ReaderStatus,
    SimulatedReader,
)
from edge_node.card.wedge import WedgeReader

__all__ = [
    "BalanceView",
    "CardData",
    "CardError",
    "CardPresented",
    "CardReader",
    "CardRecord",
    "CardRemoved",
    "Identity",
    "IssueRecord",
    "KeyDirectory",
    "KnownBalance",
    "ReaderEvent",
    "ReaderStatus",
    "Refusal",
    "SimulatedReader",
    "StaticKeys",
    "WalletStamp",
    "WedgeReader",
    "check_record",
    "decide_balance",
    "identify",
    "issue_card",
    "make_stamp",
]
