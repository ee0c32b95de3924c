"""The background pass that writes the search terms of patients the sync daemon ingested.

Theory of operation
-------------------
Indexing a patient's sealed name is most of what ingesting others' events costs a
counter (keyed tags of every prefix of its name, substrings, pinyin and initials: ~80
index rows a patient, :mod:`edge_node.search`).  So the daemon's ingest folds and stores
the events and only *marks* the patients whose terms are due (``patient_search_due``,
one row a patient, in the ingest's transaction: :meth:`~edge_node.ledger.Ledger.ingest`
with ``index_later``); until their terms are written a search checks those patients one
by one (their sealed names opened with the counter's keys and matched as the index
would match them), so a patient who arrived a second ago is found all the same.

:class:`IndexWriter` writes the due terms afterwards, a few patients a transaction
(:meth:`~edge_node.ledger.Ledger.index_due`), when the daemon is not ingesting: it waits
until no events frame was ingested for ``quiet_s``, so a catch-up's frames are stored
first and its index follows, and a live event waits for at most one small batch.  So
that a steady trickle of frames (a busy hospital: never ``quiet_s`` without one) does
not leave patients due for ever, one batch goes between frames at least every
``every_s``; and more than ``max_due`` patients due (a long catch-up), batches go
between frames until fewer are, so the one-by-one check of a search stays bounded.
The marks live in the ledger: a pass cut off by a restart resumes where it stopped.  A
failure (the disk) is logged and retried with backoff, never a traceback in a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from edge_node import search

log = logging.getLogger("onecard.edge.indexer")

BATCH = 64  # patients a transaction (~70 ms of one core for the bench's sealed names: fewer
#            and the index's pages are written again for every few rows)
QUIET_S = 0.5  # no events frame ingested for this long: the pass may run
EVERY_S = 2.0  # …and one batch between frames at least this often
MAX_DUE = search.MAX_DUE  # patients due past which the pass runs between frames too


class IndexLedger(Protocol):
    """What the writer needs of :class:`edge_node.ledger.Ledger`."""

    async def index_due(self, limit: int = BATCH) -> tuple[int, int]: ...


class IndexWriter:
    """Writes the ledger's due index terms until ``stop`` is set."""

    def __init__(self, ledger: IndexLedger, *, batch: int = BATCH, quiet_s: float = QUIET_S,
                 every_s: float = EVERY_S, max_due: int = MAX_DUE, idle_s: float = 5.0
                 ) -> None:
        self.ledger = ledger
        self.batch = batch
        self.quiet_s = quiet_s
        self.every_s = every_s
        self.max_due = max_due
        self.idle_s = idle_s
        #: set when an ingest marked terms due (the receiver sets it, :meth:`ingested`)
        self.wake = asyncio.Event()
        self.written = 0  # records whose terms this writer wrote
        self.due = 0  # records due after the last step
        self._last_ingest = 0.0
        self._last_step = 0.0

    def ingested(self) -> None:
        """An events frame was just ingested (its records' terms marked due)."""
        self._last_ingest = asyncio.get_running_loop().time()
        self.wake.set()

    async def step(self) -> int:
        """Write up to ``batch`` records' due terms; how many were written."""
        self._last_step = asyncio.get_running_loop().time()
        n, self.due = await self.ledger.index_due(self.batch)
        self.written += n
        return n

    async def _quiet(self, stop: asyncio.Event) -> None:
        """Wait until no frame was ingested for ``quiet_s``, or the last batch is
        ``every_s`` old (not while ``max_due`` or more are due: then a batch goes between
        frames)."""
        loop = asyncio.get_running_loop()
        for _ in range(1000):  # (bounded: each round waits out the quiet left)
            now = loop.time()
            left = min(self._last_ingest + self.quiet_s, self._last_step + self.every_s) - now
            if left <= 0 or self.due >= self.max_due or stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await stop.wait()

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():  # (the first step finds what a last run left due)
            await self._quiet(stop)
            if stop.is_set():
                break
            self.wake.clear()  # before the step: an ingest during it wakes the wait below
            try:
                n = await self.step()
                failures = 0
            except Exception as exc:  # the disk, a locked ledger: log, back off, retry
                failures += 1
                log.warning("background index pass failed (%s: %s); retrying",
                            type(exc).__name__, exc)
                n = 0
            if n and self.due:
                continue
            wait = self.idle_s if not failures else min(60.0, 0.5 * 2 ** min(failures, 7))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    waiters = [asyncio.ensure_future(stop.wait())]
                    if not failures:
                        waiters.append(asyncio.ensure_future(self.wake.wait()))
                    try:
                        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for w in waiters:
                            w.cancel()
