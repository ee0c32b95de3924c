"""The always-visible line: online/offline, events waiting to sync, last sync, counter, operator.

Offline is a normal state for a counter, so it is shown calmly (no red).  The sync
process updates ``sync_state`` in the shared ledger; this bar polls it in a worker.
Narrower than :data:`NARROW` columns (a tty console's 80) it says the same in short
words and leaves the counter's id out, so the operator and the clock stay on it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from edge_node.ledger import SyncState
from edge_node.tui.context import Counter

POLL_S = 2.0
NARROW = 120


class StatusBar(Horizontal):
    DEFAULT_CSS = """
    StatusBar { dock: top; height: 1; background: $panel; color: $text; }
    StatusBar > Static { width: auto; padding: 0 1; }
    StatusBar #sync.online { color: $success; }
    StatusBar #sync.offline { color: $text-muted; }
    StatusBar #reader { width: 1fr; text-wrap: nowrap; text-overflow: ellipsis; }
    StatusBar #reader.problem { color: $warning; }
    StatusBar #clock { dock: right; }
    StatusBar.narrow #node { display: none; }
    """

    sync: reactive[SyncState | None] = reactive(None)
    operator: reactive[str] = reactive("")
    reader_text: reactive[str] = reactive("")
    reader_problem: reactive[bool] = reactive(False)
    narrow: reactive[bool] = reactive(False)

    def __init__(self, counter: Counter) -> None:
        super().__init__()
        self.counter = counter

    def compose(self) -> ComposeResult:
        yield Static(id="sync", classes="offline")
        yield Static(id="pending")
        yield Static(id="operator")
        yield Static(id="last-sync")
        yield Static(self.counter.tr("status.counter", node=self.counter.config.node_id),
                     id="node")
        yield Static(id="reader")
        yield Static(id="clock")

    def on_mount(self) -> None:
        self.refresh_status()
        self.set_interval(POLL_S, self.refresh_status)

    def on_resize(self) -> None:
        self.narrow = self.size.width < NARROW

    def watch_narrow(self, narrow: bool) -> None:
        self.set_class(narrow, "narrow")
        self.relabel()

    def relabel(self) -> None:
        """Every text again, in the counter's (new) language and the bar's width."""
        self.query_one("#node", Static).update(
            self.counter.tr("status.counter", node=self.counter.config.node_id))
        self.watch_sync(self.sync)
        self.watch_operator(self.operator)
        self.watch_reader_text(self.reader_text)

    def _local(self, ms: int, fmt: str) -> str:
        tz = ZoneInfo(self.counter.config.timezone)
        return dt.datetime.fromtimestamp(ms / 1000, tz).strftime(fmt)

    @work(exclusive=True, exit_on_error=False, group="status")
    async def refresh_status(self) -> None:
        op = self.counter.operator
        self.operator = op.name if op else ""
        self.query_one("#clock", Static).update(self._local(self.counter.clock(), "%H:%M"))
        try:
            self.sync = await self.counter.ledger.sync_state()
        except Exception:  # a busy ledger must not take the status bar down
            return

    def watch_sync(self, state: SyncState | None) -> None:
        if state is None:
            return
        tr, short = self.counter.tr, self.narrow
        online = self.query_one("#sync", Static)
        online.set_class(state.online, "online")
        online.set_class(not state.online, "offline")
        online.update(tr("status.online") if state.online else
                      tr("status.offline_short" if short else "status.offline"))
        self.query_one("#pending", Static).update(
            tr("status.recovering") if state.recovering else tr("status.pending",
                                                                n=state.pending))
        last = self.query_one("#last-sync", Static)
        when = self._local(state.last_sync_ms, "%m-%d %H:%M") if state.last_sync_ms else ""
        if short:
            last.update(tr("status.last_sync_short", when=when) if when
                        else tr("status.never_short"))
        else:
            last.update(tr("status.last_sync", when=when or tr("status.never")))

    def watch_operator(self, name: str) -> None:
        tr = self.counter.tr
        self.query_one("#operator", Static).update(
            tr("status.operator", op=name) if name else tr("status.no_operator"))

    def watch_reader_text(self, text: str) -> None:
        self.query_one("#reader", Static).update(
            self.counter.tr("status.reader", msg=text) if text else "")

    def watch_reader_problem(self, problem: bool) -> None:
        self.query_one("#reader", Static).set_class(problem, "problem")
