"""Node health: every counter's role, whether it is online, when it was last seen, its lag
and what it holds that central has not received (pending)."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from central.console.data import ConsoleData
from central.console.format import ago
from central.console.screens import Table


class NodesScreen(Screen[None]):
    DEFAULT_CSS = """
    NodesScreen #legend { height: auto; padding: 0 1; color: $text-muted; }
    NodesScreen #nodes { height: 1fr; }
    """
    AUTO_FOCUS = "#nodes"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back"),
                Binding("r", "reload", "Refresh")]

    def __init__(self, data: ConsoleData) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False)
        yield Static("lag: events central holds that the node has not received yet · "
                     "pending: the node's own events central has not received, as the node "
                     "said when last seen · conflicts: open or acknowledged ones naming the "
                     "node", id="legend")
        table = Table(id="nodes", cursor_type="row", zebra_stripes=True)
        table.add_columns("node", "role", "state", "last seen", "head", "lag", "pending",
                          "conflicts", "key fingerprint")
        yield table
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    def action_reload(self) -> None:
        self.load()

    @work(exclusive=True, group="nodes")
    async def load(self) -> None:
        nodes = await self.data.nodes()
        now = self.data.clock()
        table = self.query_one("#nodes", DataTable)
        table.clear()
        for n in nodes:
            table.add_row(n.id, n.role, n.state,
                          ago(now - n.last_seen_ms) if n.last_seen_ms else "never",
                          str(n.head_seq), str(n.lag), str(n.pending), str(n.open_conflicts),
                          n.fingerprint,
                          key=n.id)
