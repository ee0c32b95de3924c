"""Node health: every counter's role, whether it is online, when it was last seen, its lag
and what it holds that central has not received (pending)."""

from __future__ import annotations

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from central.console.data import ConsoleData
from central.console.screens import Table, bind_keys
from protocol.money import yuan


class NodesScreen(Screen[None]):
    DEFAULT_CSS = """
    NodesScreen #legend { height: auto; padding: 0 1; color: $text-muted; }
    NodesScreen #nodes { height: 1fr; }
    """
    AUTO_FOCUS = "#nodes"

    def __init__(self, data: ConsoleData) -> None:
        super().__init__()
        self.data = data
        tr = self.tr = data.tr
        bind_keys(self, [("escape", "app.pop_screen", tr("key.back"), True),
                         ("q", "app.pop_screen", tr("key.close"), False),
                         ("r", "reload", tr("key.refresh"), True)])

    def compose(self) -> ComposeResult:
        tr = self.tr
        yield Header(show_clock=False)
        yield Static(tr("nodes.legend") + "\n" + tr("nodes.exposure"), id="legend")
        table = Table(id="nodes", cursor_type="row", zebra_stripes=True)
        table.add_columns(*(tr(f"col.{c}") for c in (
            "node", "role", "state", "last_seen", "head", "lag", "pending", "conflicts",
            "fingerprint", "cap", "exposure", "overruns")))
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
        tr = self.tr
        for n in nodes:
            table.add_row(n.id, tr.word("role", n.role), tr.word("state", n.state),
                          tr.ago(now - n.last_seen_ms) if n.last_seen_ms else tr("never"),
                          str(n.head_seq), str(n.lag), str(n.pending), str(n.open_conflicts),
                          n.fingerprint, yuan(n.cap) if n.cap else "-",
                          yuan(n.exposure) if n.exposure else "-", str(n.overruns),
                          key=n.id)
