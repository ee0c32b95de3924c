"""The sync daemon's background pass of due search terms (edge_node/sync/indexer.py).

Its ledger here is a stand-in that counts what is due and when each batch was written;
the real ledger's side (index_later, index_due, search of due patients) is tested in
test_search.py and, with real daemons and central, in test_sync_daemon.py.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from edge_node.sync.indexer import IndexWriter


class Due:
    """What an ingest left due, written ``limit`` at a time."""

    def __init__(self, due: int, fail: int = 0) -> None:
        self.due = due
        self.fail = fail  # the next calls that fail (the disk)
        self.calls: list[tuple[float, int]] = []  # (loop time, due before the call)

    async def index_due(self, limit: int = 32) -> tuple[int, int]:
        self.calls.append((asyncio.get_running_loop().time(), self.due))
        if self.fail:
            self.fail -= 1
            raise OSError("disk I/O error")
        n = min(limit, self.due)
        self.due -= n
        return n, self.due


async def until(pred: object, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not pred():  # type: ignore[operator]
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


async def test_the_pass_waits_for_a_quiet_moment_then_writes_everything() -> None:
    led = Due(0)
    w = IndexWriter(led, batch=4, quiet_s=0.1, every_s=30, max_due=1000, idle_s=30)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await until(lambda: led.calls, 5, "the first step (what a last run left)")
    loop = asyncio.get_running_loop()
    ingests: list[float] = []
    for _ in range(10):  # frames keep coming: each marks 3 patients due
        led.due += 3
        w.ingested()
        ingests.append(loop.time())
        await asyncio.sleep(0.02)
    await until(lambda: led.due == 0, 10, "everything written")
    stop.set()
    await task
    assert w.written == 30
    for at, _ in led.calls[1:]:  # no batch less than quiet_s after a frame
        last = max((t for t in ingests if t <= at), default=None)
        assert last is None or at - last >= 0.1 - 0.005, (at, last)


async def test_past_max_due_batches_go_between_frames() -> None:
    led = Due(100)
    w = IndexWriter(led, batch=10, quiet_s=5.0, every_s=30, max_due=50, idle_s=30)
    w.due = 100  # (as the last step said)
    stop = asyncio.Event()
    w.ingested()  # a frame just now: not quiet for 5 s
    task = asyncio.create_task(w.run(stop))
    await until(lambda: led.due < 50, 2, "written down to max_due before the quiet")
    stop.set()
    await task
    assert 40 <= led.due < 50  # and no further: below max_due it waits for the quiet


async def test_a_steady_trickle_of_frames_gets_a_batch_every_so_often() -> None:
    led = Due(0)
    w = IndexWriter(led, batch=2, quiet_s=5.0, every_s=0.2, max_due=1000, idle_s=30)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await until(lambda: led.calls, 5, "the first step (what a last run left)")
    for _ in range(200):  # frames every 10 ms, never 5 s without one
        if w.written >= 6:
            break
        led.due += 1
        w.ingested()
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert w.written >= 6  # written while the frames went on
    steps = [at for at, _ in led.calls]
    assert all(b - a >= 0.2 - 0.005 for a, b in itertools.pairwise(steps)), steps


async def test_a_failing_pass_is_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    led = Due(5, fail=1)
    w = IndexWriter(led, batch=10, quiet_s=0.0, idle_s=30)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    await until(lambda: led.due == 0, 10, "written after the failure")
    stop.set()
    await task
    assert [r.getMessage() for r in caplog.records if r.name == "onecard.edge.indexer"] == [
        "background index pass failed (OSError: disk I/O error); retrying"]
    assert len(led.calls) == 2
