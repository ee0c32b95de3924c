"""A desk step that waits for its list refresh is not lost when the desk's own poll
replaces that refresh (the same exclusive worker group cancels the one under way): on a
busy machine the lab's tube label was never shown (edge_node.tui.screens.base.refreshed)."""

from __future__ import annotations

import asyncio

import pytest
from textual import work
from textual.app import App
from textual.worker import WorkerCancelled

from edge_node.tui.screens.base import refreshed


class Desk(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.done = 0
        self.started = asyncio.Event()

    @work(exclusive=True, group="lists")
    async def refresh_lists(self, force: bool = False) -> None:
        self.started.set()
        await asyncio.sleep(0.2)
        self.done += 1


async def poll_while_running(app: Desk) -> None:
    await app.started.wait()
    app.started.clear()
    app.refresh_lists()  # the desk's poll: cancels the refresh under way


async def test_a_refresh_the_poll_cancelled_is_waited_for_again() -> None:
    app = Desk()
    async with app.run_test():
        poll = asyncio.create_task(poll_while_running(app))
        await asyncio.wait_for(refreshed(lambda: app.refresh_lists(force=True)), 10)
        await poll
        assert app.done >= 1  # one refresh ran to its end before the step went on
        # what the desks did before: the step ended with the cancelled refresh
        poll = asyncio.create_task(poll_while_running(app))
        with pytest.raises(WorkerCancelled):
            await app.refresh_lists(force=True).wait()
        await poll
