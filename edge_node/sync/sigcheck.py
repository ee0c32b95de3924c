"""The background check of attested events' own signatures.

Theory of operation
-------------------
Central checks every event's signature when a counter pushes it.  Since protocol 4 it
says so in every ``events`` frame it sends: one Ed25519 signature over the frame's
events' hashes, its store, range and recipient (:func:`protocol.session.attestation_payload`).
The counter's session checks that one signature and the hashes; the ledger then stores
and folds the frame's events without checking each one's own signature on the hot path,
and marks them pending (:meth:`edge_node.ledger.Ledger.ingest`, table ``sig_pending``).

This module checks them afterwards, so that every event is still verified end to end,
by this counter, with its node's key at its seq (the keyring): :class:`SignatureChecker`
takes the oldest pending events a batch at a time, verifies them in one worker thread
of its own at the lowest CPU priority (libsodium runs without the GIL, and the kernel
gives the ingest, the TUI and central the CPU first), and records the outcome in one
transaction.  The marks live in the ledger, so a check cut off by a restart resumes
where it stopped; a batch is at most ``batch`` events, and the loop waits for new
pending events (or ``idle_s``) when there are none.

An attested event whose own signature does not verify is a **finding**: central
attested a forgery, so central is compromised or buggy.  It is recorded
(``sig_findings``) and logged at CRITICAL once; the event stays stored and folded (the
ledger's state is the fold of its events: same events, same state), ``onecard-edge
verify`` names it, the daemon tells central (an ``error`` frame, code ``attestation``)
and shows it as its last error, and from then on the ledger trusts no attestation:
every event is verified before it is stored, as with a central that does not attest.
A failure of the check itself (the disk) is logged and retried with backoff, never a
traceback in a loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from protocol.crypto import is_valid_signature
from protocol.errors import ProtocolError
from protocol.event import decode_event, signed_parts
from protocol.keyring import Keyring, KeySpan, key_at

log = logging.getLogger("onecard.edge.sigcheck")

BATCH = 256  # events verified per step (about 15 ms of one core)
BACKGROUND_NICE = 19


class Finding(Protocol):
    rowid: int
    node: str
    seq: int
    reason: str


class CheckLedger(Protocol):
    """What the checker needs of :class:`edge_node.ledger.Ledger`."""

    async def signatures_pending(self, limit: int = BATCH) -> list[tuple[int, str, int, bytes]]: ...
    async def keyring(self) -> dict[str, tuple[KeySpan, ...]]: ...
    async def record_signature_checks(self, ok: Sequence[int],
                                      bad: Sequence[tuple[int, str]]) -> Sequence[Finding]: ...


def check_signatures(rows: Sequence[tuple[int, str, int, bytes]], keys: Keyring
                     ) -> tuple[list[int], list[tuple[int, str]]]:
    """Verify each ``(rowid, node, seq, data)`` with its node's key at its seq: the rowids
    that verify, and ``(rowid, why)`` of those that do not."""
    ok: list[int] = []
    bad: list[tuple[int, str]] = []
    for rowid, node, seq, data in rows:
        key = key_at(keys.get(node, ()), seq)
        if key is None:
            bad.append((rowid, f"no key of {node} is valid at seq {seq}"))
            continue
        parts = signed_parts(data)
        if parts is None:  # not laid out canonically: decode it (never seen)
            try:
                ev = decode_event(data)
            except ProtocolError as exc:
                bad.append((rowid, f"{exc.code}: {exc}"))
                continue
            parts = (ev.signing_bytes(), ev.sig)
        if is_valid_signature(key, parts[0], parts[1]):
            ok.append(rowid)
        else:
            bad.append((rowid, "its signature does not verify with its node's key"))
    return ok, bad


def _background_priority() -> None:
    """Run this thread at the lowest CPU priority (Linux: niceness is per thread)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


class SignatureChecker:
    """Checks the ledger's pending attested events until ``stop`` is set."""

    def __init__(self, ledger: CheckLedger, *, batch: int = BATCH, idle_s: float = 5.0,
                 on_finding: Callable[[Sequence[Finding]], None] | None = None) -> None:
        self.ledger = ledger
        self.batch = batch
        self.idle_s = idle_s
        self.on_finding = on_finding
        #: set when new pending events were stored (the receiver sets it)
        self.wake = asyncio.Event()
        self.checked = 0  # events checked by this checker
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    async def step(self) -> int:
        """Check up to ``batch`` pending events; how many were checked (0: none pending)."""
        rows = await self.ledger.signatures_pending(self.batch)
        if not rows:
            return 0
        keys = await self.ledger.keyring()
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="sigcheck", initializer=_background_priority)
        loop = asyncio.get_running_loop()
        ok, bad = await loop.run_in_executor(self._pool, check_signatures, rows, keys)
        found = await self.ledger.record_signature_checks(ok, bad)
        self.checked += len(rows)
        for f in found:
            log.critical("SECURITY: central attested %s seq %d but its own signature does "
                         "not verify (%s): central is compromised or buggy. The event stays "
                         "stored and folded and `onecard-edge verify` names it; from now on "
                         "this counter verifies every event itself. Tell central IT.",
                         f.node, f.seq, f.reason)
        if found and self.on_finding is not None:
            self.on_finding(found)
        return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            self.wake.clear()  # before the query: a store during it wakes the wait below
            try:
                n = await self.step()
                failures = 0
            except Exception as exc:  # the disk, a locked ledger: log, back off, retry
                failures += 1
                log.warning("background signature check failed (%s: %s); retrying",
                            type(exc).__name__, exc)
                n = 0
            if n and not failures:
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

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
